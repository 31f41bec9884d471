//! Hit records for Kafka: the ECS document for one indicator hit, plus where the line came from, the snapshot
//! version, and a deterministic hit id so consumers can deduplicate (delivery is at-least-once).

use crate::scan::FieldHit;
use crate::sink::ecs;
use crate::Snapshot;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a message came from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
}

/// `hash(topic, partition, offset, indicator)` as 16 hex digits: the same for every redelivery of a hit.
pub fn hit_id(topic: &str, partition: i32, offset: i64, indicator: &str) -> String {
    let text = format!("{topic}\u{0}{partition}\u{0}{offset}\u{0}{indicator}");
    let a = crate::snapshot::keys::stable_hash(text.as_bytes());
    let b = crate::snapshot::keys::stable_hash(format!("{text}\u{1}").as_bytes());
    format!("{a:016x}{b:016x}")
}

/// A line's hits grouped per indicator, in line order: one Kafka record each, with one enrichment per field.
pub fn per_indicator(hits: &[FieldHit]) -> Vec<Vec<FieldHit>> {
    let mut groups: Vec<Vec<FieldHit>> = Vec::new();
    for h in hits {
        match groups.iter_mut().find(|g| g[0].hit.indicator == h.hit.indicator) {
            Some(g) => g.push(h.clone()),
            None => groups.push(vec![h.clone()]),
        }
    }
    groups
}

/// The record for one indicator's hits in one line (one per field it is in, at least one), made at `created`.
///
/// `@timestamp` is the source record's time (when the log line entered Kafka), so a hit sorts beside the line it
/// came from; `event.created` is when iocmatch produced the hit. ECS has no Kafka fields, so where the line came from
/// is under `iocmatch.kafka`.
pub fn record(
    snap: &Snapshot,
    line: &[u8],
    hits: &[FieldHit],
    src: &Source<'_>,
    created: SystemTime,
) -> (String, Value) {
    let name = snap.indicator(hits[0].hit.indicator).value.name();
    let id = hit_id(src.topic, src.partition, src.offset, &name);
    let record_time = src
        .timestamp
        .map(|t| UNIX_EPOCH + Duration::from_millis(t.max(0) as u64))
        .unwrap_or(created);
    let doc = json!({
        "@timestamp": ecs::timestamp(record_time),
        "event": { "kind": "enrichment", "id": id, "created": ecs::timestamp(created), "original": String::from_utf8_lossy(line) },
        "threat": { "enrichments": hits.iter().map(|h| ecs::enrichment(snap, line, h)).collect::<Vec<_>>() },
        "iocmatch": {
            "hit_id": id,
            "snapshot_version": snap.version(),
            "kafka": {
                "topic": src.topic,
                "partition": src.partition,
                "offset": src.offset,
                "timestamp": src.timestamp,
                "key": src.key.map(|k| String::from_utf8_lossy(k).into_owned()),
            },
        },
    });
    (id, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ids_are_deterministic_and_distinct() {
        assert_eq!(hit_id("logs", 0, 5, "evil.com"), hit_id("logs", 0, 5, "evil.com"));
        assert_ne!(hit_id("logs", 0, 5, "evil.com"), hit_id("logs", 1, 5, "evil.com"));
        assert_ne!(hit_id("logs", 0, 5, "evil.com"), hit_id("logs", 0, 6, "evil.com"));
        assert_ne!(hit_id("logs", 0, 5, "evil.com"), hit_id("logs", 0, 5, "evil.net"));
    }
}
