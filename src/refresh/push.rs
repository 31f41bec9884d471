//! MISP push notifications (Kafka `misp_attribute` / `misp_event`, ZeroMQ `misp_json_attribute` /
//! `misp_json_event`): attribute adds, edits, soft deletes and deletes, and event-level changes, between REST pulls.
//! The REST reconciliation stays the source of truth: MISP builds these payloads as site admin, without event tags
//! and without a sharing or `published` check (`app/Model/MispAttribute.php` afterSave), so the refresher applies
//! its scope to them and asks REST about what they cannot tell.

use crate::load::{attribute_from_json, event_meta, lenient_bool, lenient_string, RawAttribute};
use serde_json::Value;
use std::sync::Arc;

/// One notification that concerns the indicator set.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// An attribute was added, edited, soft-deleted or deleted (`attr.deleted`). `published` is the event's flag
    /// when the payload carries the event (a hard delete carries none).
    Attribute {
        attr: RawAttribute,
        published: Option<bool>,
    },
    /// Something happened to a whole event. MISP deletes an event's attributes without an attribute notification
    /// and only announces the event `delete`; any other action (edit, publish, a tag added or removed) may change
    /// which of its attributes are in scope, so the refresher pulls that event again.
    Event {
        id: Option<String>,
        uuid: Option<String>,
        deleted: bool,
    },
}

/// Reads one notification. `Ok(None)` for other kinds (tags, sightings, keepalives, ...).
///
/// Payloads: `{"Attribute": {...}, "Event": {...}, "action": "add" | "edit" | "soft-delete" | "delete"}` (a hard
/// delete carries no `Event`); `{"Event": {...}, "action": "add" | "edit" | "publish" | "delete"}` for events, also
/// Kafka's `misp_event_publish` (attributes beside the event) and ZeroMQ's `misp_json` (attributes inside it). A
/// ZeroMQ frame is `<topic> <json>`; the topic is skipped.
pub fn parse(bytes: &[u8], location: &str) -> Result<Option<Notice>, String> {
    let bytes = match bytes.iter().position(|b| *b == b'{') {
        Some(i) if i > 0 && bytes[..i].starts_with(b"misp_json") => &bytes[i..],
        _ => bytes,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let action = v.get("action").and_then(Value::as_str).unwrap_or("edit");
    let event = v.get("Event").and_then(Value::as_object);
    if let Some(attr) = v.get("Attribute").and_then(Value::as_object) {
        let published = event.and_then(|e| e.get("published")).and_then(lenient_bool);
        let mut raw = attribute_from_json(attr, event.map(|e| Arc::new(event_meta(e))), location)?;
        if matches!(action, "delete" | "soft-delete") {
            raw.deleted = true;
        }
        if raw.uuid.is_none() {
            return Err("attribute notification without a uuid".into());
        }
        if raw.event.id.is_none() {
            if let Some(id) = attr.get("event_id").and_then(lenient_string) {
                Arc::make_mut(&mut raw.event).id = Some(id);
            }
        }
        return Ok(Some(Notice::Attribute { attr: raw, published }));
    }
    if let Some(e) = event {
        let id = e.get("id").and_then(lenient_string);
        let uuid = e.get("uuid").and_then(lenient_string);
        if id.is_none() && uuid.is_none() {
            return Err("event notification without an id or uuid".into());
        }
        return Ok(Some(Notice::Event {
            id,
            uuid,
            deleted: action == "delete",
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(n: Notice) -> (RawAttribute, Option<bool>) {
        match n {
            Notice::Attribute { attr, published } => (attr, published),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_edit_and_deletes_are_read() {
        let add = br#"{"Attribute":{"id":"9","type":"domain","value":"p.example.net","to_ids":"1","uuid":"u-1","timestamp":"300","deleted":false},"Event":{"id":"4","uuid":"e","info":"x","published":false},"action":"add"}"#;
        let (a, published) = attr(parse(add, "t").unwrap().unwrap());
        assert_eq!((a.value.as_str(), a.to_ids, a.deleted), ("p.example.net", true, false));
        assert_eq!(a.event.id.as_deref(), Some("4"));
        assert_eq!(published, Some(false));
        let hard = br#"{"Attribute":{"id":"9","event_id":"4","type":"domain","value":"p.example.net","uuid":"u-1","timestamp":"301"},"action":"delete"}"#;
        let (a, published) = attr(parse(hard, "t").unwrap().unwrap());
        assert!(a.deleted);
        assert_eq!((a.event.id.as_deref(), published), (Some("4"), None));
        let zmq = br#"misp_json_attribute {"Attribute":{"type":"ip-dst","value":"1.2.3.4","uuid":"u-2","deleted":true},"action":"soft-delete"}"#;
        assert!(attr(parse(zmq, "t").unwrap().unwrap()).0.deleted);
        assert!(parse(br#"{"Tag":{"id":"1"},"action":"attached to attribute"}"#, "t")
            .unwrap()
            .is_none());
        assert!(parse(br#"misp_json_self {"status":"0","uptime":10}"#, "t")
            .unwrap()
            .is_none());
        assert!(parse(b"nope", "t").is_err());
    }

    #[test]
    fn event_notifications_name_the_event() {
        let del = br#"misp_json_event {"Event":{"id":"77","uuid":"e0000000-0000-4000-8000-000000000077","info":"x"},"action":"delete"}"#;
        assert_eq!(
            parse(del, "t").unwrap(),
            Some(Notice::Event {
                id: Some("77".into()),
                uuid: Some("e0000000-0000-4000-8000-000000000077".into()),
                deleted: true
            })
        );
        // Kafka misp_event_publish: the raw fetchEvent array, attributes beside the event.
        let publish = br#"{"Event":{"id":"78","uuid":"e2"},"Attribute":[{"id":"1","type":"domain","value":"a.example"}],"action":"publish"}"#;
        assert!(matches!(
            parse(publish, "t").unwrap(),
            Some(Notice::Event { deleted: false, .. })
        ));
        assert!(parse(br#"{"Event":{"info":"no id"},"action":"edit"}"#, "t").is_err());
    }
}
