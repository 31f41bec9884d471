//! Plain indicator lists: one value a line, `#` comments, the type guessed from the value's shape.

use super::{LoadError, Loader, RawAttribute};
use crate::indicator::{classify_plain, EventMeta};
use std::sync::Arc;

pub(super) fn load(loader: &mut Loader, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let event = Arc::new(EventMeta::default());
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value = line.split_whitespace().next().unwrap_or_default();
        let misp_type = classify_plain(value);
        loader.add_attribute(RawAttribute {
            misp_type: misp_type.to_string(),
            value: value.to_string(),
            to_ids: true,
            deleted: false,
            event: event.clone(),
            location: format!("{name}:{}", i + 1),
            ..Default::default()
        });
    }
    Ok(())
}
