//! Hits as Elastic Common Schema documents: `threat.enrichments[]`, one entry per distinct indicator.
//!
//! Each enrichment carries the indicator as normalised at load (`indicator.name`), the ECS value fields of its type,
//! the exact text that matched, and the MISP provenance (event and attribute uuid, category, type, tags) under
//! `misp`, so an analyst can pivot back to MISP from any SIEM.

use crate::indicator::{Indicator, Kind, Value};
use crate::scan::Hit;
use crate::snapshot::Snapshot;
use serde_json::{json, Map, Value as Json};

/// The `indicator` object of an enrichment.
pub fn indicator_fields(ind: &Indicator) -> Json {
    let kind = ind.value.kind();
    let name = ind.value.name();
    let mut o = Map::new();
    o.insert("type".into(), json!(kind.ecs_type()));
    o.insert("name".into(), json!(name));
    o.insert("provider".into(), json!("misp"));
    match &ind.value {
        Value::Domain(d) | Value::Hostname(d) => {
            o.insert("url".into(), json!({ "domain": d }));
        }
        Value::Net(_) | Value::Range(..) => {
            o.insert("ip".into(), json!(name));
        }
        Value::Url(u) => {
            let (host, rest) = (&u.host, &u.rest);
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            let path = path
                .strip_prefix(|c: char| c == ':')
                .map_or(path, |p| p.find('/').map_or("", |i| &p[i..]));
            o.insert("url".into(), json!({ "full": name, "domain": host, "path": path }));
        }
        Value::Email(e) => {
            o.insert("email".into(), json!({ "address": e }));
        }
        Value::Hash(k, h) => {
            o.insert("file".into(), json!({ "hash": { k.as_str(): h } }));
        }
    }
    let tags = ind.provenance.all_tags();
    if let Some(tlp) = tags.iter().find_map(|t| t.strip_prefix("tlp:")) {
        o.insert("marking".into(), json!({ "tlp": tlp.to_ascii_uppercase() }));
    }
    Json::Object(o)
}

/// The MISP provenance of an indicator, as carried in every hit.
pub fn misp_fields(ind: &Indicator) -> Json {
    let p = &ind.provenance;
    let ev = p.event();
    let mut attribute = json!({
        "uuid": p.attribute_uuid.map(|u| u.to_string()),
        "category": p.category(),
        "type": p.misp_type(),
        "timestamp": p.timestamp.map(|t| t.get()),
    });
    if let Some(c) = p.comment() {
        attribute["comment"] = json!(c);
    }
    json!({
        "event": { "id": ev.id, "uuid": ev.uuid, "info": ev.info },
        "attribute": attribute,
        "tags": p.all_tags(),
    })
}

/// One `threat.enrichments[]` entry.
pub fn enrichment(snap: &Snapshot, line: &[u8], hit: &Hit) -> Json {
    let ind = snap.indicator(hit.indicator);
    json!({
        "indicator": indicator_fields(ind),
        "matched": {
            "atomic": String::from_utf8_lossy(&line[hit.start as usize..hit.end as usize]),
            "type": "indicator_match_rule",
            "field": "event.original",
        },
        "misp": misp_fields(ind),
    })
}

/// The ECS document for one line with hits. `path` is `None` for stdin.
pub fn hit_document(snap: &Snapshot, line: &[u8], offset: u64, path: Option<&str>, hits: &[Hit]) -> Json {
    let mut log = Map::new();
    log.insert("offset".into(), json!(offset));
    if let Some(p) = path {
        log.insert("file".into(), json!({ "path": p }));
    }
    json!({
        "event": { "kind": "enrichment", "original": String::from_utf8_lossy(line) },
        "log": log,
        "threat": { "enrichments": hits.iter().map(|h| enrichment(snap, line, h)).collect::<Vec<_>>() },
    })
}

/// Hits per ECS indicator type, for summaries.
pub fn kinds_in(snap: &Snapshot, hits: &[Hit]) -> Vec<Kind> {
    hits.iter().map(|h| snap.indicator(h.indicator).value.kind()).collect()
}
