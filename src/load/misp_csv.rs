//! MISP CSV exports (`returnFormat: csv`): `uuid,event_id,category,type,value,comment,to_ids,date,...`.

use super::{LoadError, Loader, RawAttribute};
use crate::indicator::EventMeta;
use std::collections::HashMap;
use std::sync::Arc;

/// A MISP CSV export starts with a header naming at least the `type` and `value` columns.
pub(super) fn looks_like_csv(bytes: &[u8]) -> bool {
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(first).to_ascii_lowercase();
    let cols: Vec<&str> = header.trim().split(',').map(|c| c.trim().trim_matches('"')).collect();
    cols.contains(&"type") && cols.contains(&"value")
}

pub(super) fn load(loader: &mut Loader, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| LoadError::Format {
            path: name.to_string(),
            msg: format!("unreadable CSV header: {e}"),
        })?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(n));
    let (Some(ti), Some(vi)) = (col("type"), col("value")) else {
        return Err(LoadError::Format {
            path: name.to_string(),
            msg: "CSV header lacks a type or value column".into(),
        });
    };
    let (uuid, event_id, category, to_ids, date, tags, deleted, comment) = (
        col("uuid"),
        col("event_id"),
        col("category"),
        col("to_ids"),
        col("date"),
        col("attribute_tag"),
        col("deleted"),
        col("comment"),
    );
    let mut events: HashMap<String, Arc<EventMeta>> = HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                loader
                    .stats
                    .warnings
                    .push(format!("{name}:{line}: unreadable CSV record: {e}"));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).filter(|s| !s.is_empty());
        let eid = get(event_id).map(str::to_string);
        let event = events
            .entry(eid.clone().unwrap_or_default())
            .or_insert_with(|| {
                Arc::new(EventMeta {
                    id: eid.clone(),
                    ..Default::default()
                })
            })
            .clone();
        let flag = |i: Option<usize>, default: bool| match get(i) {
            Some(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "true"),
            None => default,
        };
        let misp_type = get(Some(ti)).unwrap_or_default().to_string();
        loader.add_attribute(RawAttribute {
            value: get(Some(vi)).unwrap_or_default().to_string(),
            to_ids: flag(to_ids, true),
            deleted: flag(deleted, false),
            event,
            uuid: get(uuid).map(str::to_string),
            category: get(category).map(str::to_string),
            tags: get(tags)
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: get(date).and_then(|d| d.parse().ok()),
            comment: get(comment).map(str::to_string),
            location: format!("{name}:{line}").into(),
            misp_type: misp_type.into(),
        });
    }
    Ok(())
}
