//! Exports: the validated snapshot in the native formats of the rest of the security stack, so the same vetted set
//! reaches network sensors, firewalls and resolvers. Rendering is pure (snapshot in, bytes out); [`write`] puts the
//! files in place atomically and leaves a file alone when its content did not change.

mod firewall;
mod flat;
mod rpz;
mod suricata;
mod zeek;

use crate::indicator::{Indicator, Kind};
use crate::Snapshot;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("unknown export format {0:?} (zeek, suricata, nftables, ipset, rpz, csv, jsonl)")]
    UnknownFormat(String),
    #[error("unknown indicator type {0:?} in an export filter")]
    UnknownType(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Zeek Intel framework file.
    Zeek,
    /// Suricata datasets (a directory: one file per dataset type, plus rules using them).
    Suricata,
    /// An nftables set file (`nft -f`).
    Nftables,
    /// An `ipset restore` file.
    Ipset,
    /// A DNS Response Policy Zone.
    Rpz,
    /// CSV: value, type and MISP provenance.
    Csv,
    /// JSON lines: value, type and MISP provenance.
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Format as clap::ValueEnum>::from_str(s, true).map_err(|_| ExportError::UnknownFormat(s.to_string()))
    }
}

/// What the header of every exported file names.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    pub version: u64,
    pub generated_at: SystemTime,
    /// MISP base URL, for links back to events.
    pub misp_url: Option<String>,
}

/// One rendered file: a name (relative to the output; empty for single-file formats), a header (comment lines, or
/// empty where the format allows none) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub name: String,
    pub header: String,
    pub body: Vec<u8>,
}

/// Which indicators an export includes.
#[derive(Debug, Clone, Default)]
pub struct TypeFilter(Vec<Kind>);

impl TypeFilter {
    pub fn parse(types: &[String]) -> Result<TypeFilter, ExportError> {
        types
            .iter()
            .map(|t| {
                Kind::ALL
                    .into_iter()
                    .find(|k| k.as_str().eq_ignore_ascii_case(t.trim()))
                    .ok_or_else(|| ExportError::UnknownType(t.clone()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TypeFilter)
    }

    pub fn admits(&self, k: Kind) -> bool {
        self.0.is_empty() || self.0.contains(&k)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time, without a date library.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The summary line every header carries.
pub(crate) fn summary(meta: &ExportMeta, inds: &[&Indicator]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for i in inds {
        *counts.entry(i.value.kind().as_str()).or_insert(0usize) += 1;
    }
    let c: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!(
        "iocmatch snapshot v{} generated {}; {} indicators ({})",
        meta.version,
        rfc3339(meta.generated_at),
        inds.len(),
        if c.is_empty() { "none".to_string() } else { c.join(", ") }
    )
}

/// Renders a snapshot in a format.
pub fn render(snap: &Snapshot, format: Format, filter: &TypeFilter, meta: &ExportMeta) -> Vec<Rendered> {
    let owned: Vec<Indicator> = snap
        .indicators()
        .map(|(_, i)| i)
        .filter(|i| filter.admits(i.value.kind()))
        .collect();
    let inds: Vec<&Indicator> = owned.iter().collect();
    match format {
        Format::Zeek => vec![zeek::render(&inds, meta)],
        Format::Suricata => suricata::render(&inds, meta),
        Format::Nftables => vec![firewall::nftables(&inds, meta)],
        Format::Ipset => vec![firewall::ipset(&inds, meta)],
        Format::Rpz => vec![rpz::render(&inds, meta)],
        Format::Csv => vec![flat::csv(&inds, meta)],
        Format::Jsonl => vec![flat::jsonl(&inds, meta)],
    }
}

/// The content fingerprint written in headers, so an unchanged file is recognised and left alone.
fn fingerprint(body: &[u8]) -> String {
    format!("{:016x}", crate::snapshot::keys::stable_hash(body))
}

/// What [`write`] did with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub changed: bool,
}

/// Writes rendered files under `out` (a file for single-file formats, a directory for Suricata). A file whose
/// content is unchanged is not touched, so its modification time stays.
pub fn write(out: &Path, files: &[Rendered]) -> Result<Vec<Written>, ExportError> {
    let mut done = Vec::new();
    for f in files {
        let path = if f.name.is_empty() {
            out.to_path_buf()
        } else {
            out.join(&f.name)
        };
        let io = |source| ExportError::Io {
            path: path.display().to_string(),
            source,
        };
        let fp = fingerprint(&f.body);
        let mut bytes = Vec::with_capacity(f.header.len() + f.body.len() + 64);
        if !f.header.is_empty() {
            let marker = f
                .header
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("#");
            bytes.extend_from_slice(f.header.as_bytes());
            bytes.extend_from_slice(format!("{marker} content {fp}\n").as_bytes());
        }
        bytes.extend_from_slice(&f.body);
        let unchanged = match std::fs::read(&path) {
            Ok(old) if f.header.is_empty() => old == bytes,
            Ok(old) => {
                let head = &old[..old.len().min(f.header.len() + 256)];
                String::from_utf8_lossy(head).contains(&format!(" content {fp}\n"))
            }
            Err(_) => false,
        };
        if !unchanged {
            crate::atomic_write::write_atomic(&path, &bytes).map_err(io)?;
        }
        done.push(Written {
            path,
            changed: !unchanged,
        });
    }
    Ok(done)
}

/// The MISP event reference of an indicator: `event <id>` or its uuid.
pub(crate) fn event_ref(i: &Indicator) -> String {
    let e = i.provenance.event();
    match (&e.id, &e.uuid) {
        (Some(id), _) => format!("MISP event {id}"),
        (None, Some(u)) => format!("MISP event {u}"),
        _ => "MISP".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
