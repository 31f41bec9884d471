//! CSV and JSON lines: every indicator with its type and full MISP provenance, for anything else.

use super::{ExportMeta, Rendered};
use crate::indicator::Indicator;
use serde_json::json;

fn record(i: &Indicator) -> serde_json::Value {
    let p = &i.provenance;
    let e = p.event();
    json!({
        "value": i.value.name(),
        "type": i.value.kind().as_str(),
        "ecs_type": i.value.kind().ecs_type(),
        "misp_type": p.misp_type(),
        "category": p.category(),
        "event_id": e.id,
        "event_uuid": e.uuid,
        "event_info": e.info,
        "attribute_uuid": p.attribute_uuid.map(|u| u.to_string()),
        "timestamp": p.timestamp.map(|t| t.get()),
        "tags": p.all_tags(),
    })
}

const COLUMNS: [&str; 11] = [
    "value",
    "type",
    "ecs_type",
    "misp_type",
    "category",
    "event_id",
    "event_uuid",
    "event_info",
    "attribute_uuid",
    "timestamp",
    "tags",
];

pub(super) fn csv(inds: &[&Indicator], _meta: &ExportMeta) -> Rendered {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    for i in inds {
        let r = record(i);
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|c| match &r[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(","),
                v => v.to_string(),
            })
            .collect();
        let _ = w.write_record(&row);
    }
    Rendered {
        name: String::new(),
        header: String::new(),
        body: w.into_inner().unwrap_or_default(),
    }
}

pub(super) fn jsonl(inds: &[&Indicator], _meta: &ExportMeta) -> Rendered {
    let mut b = Vec::new();
    for i in inds {
        serde_json::to_writer(&mut b, &record(i)).expect("JSON to a Vec");
        b.push(b'\n');
    }
    Rendered {
        name: String::new(),
        header: String::new(),
        body: b,
    }
}
