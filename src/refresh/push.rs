//! MISP push notifications (Kafka `misp_attribute`, ZeroMQ `misp_json_attribute`): add, edit, soft-delete and
//! delete between REST pulls. The REST reconciliation stays the source of truth.

use crate::load::{attribute_from_json, event_meta, RawAttribute};
use serde_json::Value;
use std::sync::Arc;

/// Reads one attribute notification. `Ok(None)` for other notification kinds (tags, sightings, ...).
///
/// Payload: `{"Attribute": {...}, "Event": {...}, "action": "add" | "edit" | "soft-delete" | "delete"}`; a hard
/// delete carries no `Event`. A ZeroMQ frame `misp_json_attribute {...}` is accepted too.
pub fn parse(bytes: &[u8], location: &str) -> Result<Option<RawAttribute>, String> {
    let bytes = match bytes.iter().position(|b| *b == b'{') {
        Some(i) if i > 0 && bytes[..i].starts_with(b"misp_json") => &bytes[i..],
        _ => bytes,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(attr) = v.get("Attribute").and_then(Value::as_object) else {
        return Ok(None);
    };
    let event = v
        .get("Event")
        .and_then(Value::as_object)
        .map(|e| Arc::new(event_meta(e)));
    let mut raw = attribute_from_json(attr, event, location)?;
    let action = v.get("action").and_then(Value::as_str).unwrap_or("edit");
    if matches!(action, "delete" | "soft-delete") {
        raw.deleted = true;
    }
    if raw.uuid.is_none() {
        return Err("attribute notification without a uuid".into());
    }
    Ok(Some(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_edit_and_deletes_are_read() {
        let add = br#"{"Attribute":{"id":"9","type":"domain","value":"p.example.net","to_ids":"1","uuid":"u-1","timestamp":"300","deleted":false},"Event":{"id":"4","uuid":"e","info":"x"},"action":"add"}"#;
        let a = parse(add, "t").unwrap().unwrap();
        assert_eq!((a.value.as_str(), a.to_ids, a.deleted), ("p.example.net", true, false));
        assert_eq!(a.event.id.as_deref(), Some("4"));
        let hard = br#"{"Attribute":{"id":"9","type":"domain","value":"p.example.net","uuid":"u-1","timestamp":"301"},"action":"delete"}"#;
        assert!(parse(hard, "t").unwrap().unwrap().deleted);
        let zmq = br#"misp_json_attribute {"Attribute":{"type":"ip-dst","value":"1.2.3.4","uuid":"u-2","deleted":true},"action":"soft-delete"}"#;
        assert!(parse(zmq, "t").unwrap().unwrap().deleted);
        assert!(parse(br#"{"Tag":{"id":"1"},"action":"attached to attribute"}"#, "t")
            .unwrap()
            .is_none());
        assert!(parse(b"nope", "t").is_err());
    }
}
