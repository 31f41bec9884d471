//! The last-good cache: the validated attributes of the last successful build, in MISP restSearch JSON, so the
//! core loaders read it back and an operator can inspect it. Written atomically (temp file, fsync, rename).

use crate::load::{LoadError, Loader, RawAttribute};
use serde_json::json;
use std::path::{Path, PathBuf};

pub const CACHE_FILE: &str = "last-good.json";

/// The cache file inside a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(CACHE_FILE)
}

/// One attribute as MISP JSON, with its event and tags, so the loaders read back the same provenance.
pub fn attribute_json(a: &RawAttribute) -> serde_json::Value {
    json!({
        "uuid": a.uuid,
        "type": a.misp_type,
        "value": a.value,
        "category": a.category,
        "to_ids": a.to_ids,
        "deleted": a.deleted,
        "timestamp": a.timestamp.map(|t| t.to_string()),
        "comment": a.comment,
        "Tag": a.tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "Event": {
            "id": a.event.id,
            "uuid": a.event.uuid,
            "info": a.event.info,
            "Tag": a.event.tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        },
    })
}

/// Writes the cache for a snapshot version.
pub fn write<'a>(
    state_dir: &Path,
    version: u64,
    attrs: impl IntoIterator<Item = &'a RawAttribute>,
) -> std::io::Result<PathBuf> {
    let p = path(state_dir);
    write_to(&p, version, attrs)?;
    Ok(p)
}

/// Writes attributes as restSearch JSON to `p`, atomically (the cache, and the retro-hunt's pending set).
pub fn write_to<'a>(p: &Path, version: u64, attrs: impl IntoIterator<Item = &'a RawAttribute>) -> std::io::Result<()> {
    let doc = json!({
        "iocmatch_cache": { "format": 1, "snapshot_version": version },
        "response": { "Attribute": attrs.into_iter().map(attribute_json).collect::<Vec<_>>() },
    });
    crate::atomic_write::write_atomic(p, &serde_json::to_vec(&doc).expect("JSON values serialise"))
}

/// Reads the cache into a loader. A missing file is `Ok(false)`; a corrupt one is an error naming the file.
pub fn read_into(state_dir: &Path, loader: &mut Loader) -> Result<bool, LoadError> {
    let p = path(state_dir);
    if !p.exists() {
        return Ok(false);
    }
    loader.load_path(&p)?;
    Ok(true)
}
