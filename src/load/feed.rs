//! MISP JSON feed directories: `manifest.json` keyed by event uuid, plus one `<uuid>.json` per event.

use super::{LoadError, Loader};
use std::path::Path;

pub(super) fn load_dir(loader: &mut Loader, dir: &Path) -> Result<(), LoadError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| LoadError::Format {
        path: dir.display().to_string(),
        msg: format!("a directory must be a MISP JSON feed with a manifest.json ({e})"),
    })?;
    let manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| LoadError::Json {
            path: manifest_path.display().to_string(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })?;
    for uuid in manifest.keys() {
        if !is_uuid(uuid) {
            loader.stats.warnings.push(format!(
                "{}: skipping manifest key {uuid:?}: not a uuid",
                manifest_path.display()
            ));
            continue;
        }
        let path = dir.join(format!("{uuid}.json"));
        match std::fs::read(&path) {
            Ok(b) => {
                if let Err(e) = loader.load_bytes(&path.display().to_string(), &b) {
                    loader.stats.warnings.push(e.to_string());
                }
            }
            Err(e) => loader.stats.warnings.push(format!(
                "{}: listed in the manifest but unreadable: {e}",
                path.display()
            )),
        }
    }
    Ok(())
}

/// Feed event file names are uuids; checking them keeps a hostile manifest from naming other paths.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}
