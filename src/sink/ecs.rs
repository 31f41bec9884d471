//! Hits as Elastic Common Schema documents: `threat.enrichments[]`, one entry per distinct indicator.
//!
//! Each enrichment carries the indicator as normalised at load (`indicator.name`), the ECS value fields of its type,
//! the exact text that matched, and the MISP provenance (event and attribute uuid, category, type, tags) under
//! `misp`, so an analyst can pivot back to MISP from any SIEM.

use crate::indicator::{Indicator, Kind, Value};
use crate::scan::{FieldHit, Hit};
use crate::snapshot::Snapshot;
use serde_json::{json, Map, Value as Json};
use std::time::SystemTime;

/// RFC 3339 in UTC with milliseconds, the form Elasticsearch's `date` type and every SIEM ingest path read.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The TLP markings ECS allows in `indicator.marking.tlp`; other `tlp:` tags stay in `misp.tags` only.
const ECS_TLP: [&str; 6] = ["WHITE", "CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"];

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
        // `indicator.ip` is an ECS `ip` field: a network or a range would be refused at indexing, so only a single
        // address goes there; `name` carries the network.
        Value::Net(n) if n.prefix_len() == n.max_prefix_len() => {
            o.insert("ip".into(), json!(name));
        }
        Value::Net(_) | Value::Range(..) => {}
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
        Value::Hash(_, h) => {
            let misp_type = ind.provenance.misp_type().to_ascii_lowercase();
            let algo = misp_type.strip_prefix("filename|").unwrap_or(&misp_type);
            match algo {
                "md5" | "sha1" | "sha256" | "sha384" | "sha512" | "ssdeep" | "tlsh" => {
                    o.insert("file".into(), json!({ "hash": { algo: h } }));
                }
                "malware-sample" => {
                    o.insert("file".into(), json!({ "hash": { "md5": h } }));
                }
                "imphash" => {
                    o.insert("file".into(), json!({ "pe": { "imphash": h } }));
                }
                t if t.starts_with("x509-fingerprint-") => {
                    o.insert("type".into(), json!("x509-certificate"));
                }
                // TLS client and server fingerprints identify software, not a file.
                t if t.starts_with("ja3") || t.starts_with("hassh") || t.starts_with("jarm") => {
                    o.insert("type".into(), json!("software"));
                }
                // ECS has no field for the other digests (sha224, SHA-3, SHA-512/t, authentihash, impfuzzy):
                // `name` carries the value and `misp.attribute.type` the algorithm.
                _ => {}
            }
        }
    }
    if let Some(port) = ind.provenance.port {
        o.insert("port".into(), json!(port.get()));
    }
    let tags = ind.provenance.all_tags();
    let tlp = tags
        .iter()
        .filter_map(|t| t.strip_prefix("tlp:"))
        .map(str::to_ascii_uppercase)
        .find(|t| ECS_TLP.contains(&t.as_str()));
    if let Some(tlp) = tlp {
        o.insert("marking".into(), json!({ "tlp": tlp }));
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

/// One `threat.enrichments[]` entry: `matched.field` is the field the hit is in (a JSON key path, a Zeek column, a
/// `key=value` key), or `event.original` for a line without fields.
pub fn enrichment(snap: &Snapshot, line: &[u8], fh: &FieldHit) -> Json {
    let hit = &fh.hit;
    let ind = snap.indicator(hit.indicator);
    json!({
        "indicator": indicator_fields(&ind),
        "matched": {
            "atomic": String::from_utf8_lossy(&line[hit.start as usize..hit.end as usize]),
            "type": "indicator_match_rule",
            "field": fh.field.as_deref().unwrap_or("event.original"),
        },
        "misp": misp_fields(&ind),
    })
}

/// The ECS document for one line with hits. `path` is `None` for stdin. A line read from a file has no time of its
/// own that iocmatch could trust, so `@timestamp` and `event.created` are both `created`, the time of the hit.
pub fn hit_document(
    snap: &Snapshot,
    line: &[u8],
    offset: u64,
    path: Option<&str>,
    hits: &[FieldHit],
    created: SystemTime,
) -> Json {
    let created = timestamp(created);
    let mut doc = json!({
        "@timestamp": created,
        "event": { "kind": "enrichment", "created": created, "original": String::from_utf8_lossy(line) },
        "threat": { "enrichments": hits.iter().map(|h| enrichment(snap, line, h)).collect::<Vec<_>>() },
        // ECS has no field for a byte offset (`log.offset` is a Beats field), so it is iocmatch's own.
        "iocmatch": { "snapshot_version": snap.version(), "offset": offset },
    });
    if let Some(p) = path {
        doc["log"] = json!({ "file": { "path": p } });
    }
    doc
}

/// Hits per ECS indicator type, for summaries.
pub fn kinds_in(snap: &Snapshot, hits: &[Hit]) -> Vec<Kind> {
    hits.iter().map(|h| snap.kind(h.indicator)).collect()
}
