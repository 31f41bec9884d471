//! Scoring workers: each owns a set of partitions, scores their messages in order on the current snapshot through
//! the shared scan loop, and hands the hits to the producer; an offset becomes committable once every hit of its
//! message is acknowledged.

use super::hit::{per_indicator, record, Source};
use super::rebalance::Shared;
use super::settings::KafkaSettings;
use crate::scan::{FieldHit, LineScanner, Sink};
use crate::snapshot::{Snapshot, SnapshotCell};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// One consumed message, owned, on its way to a worker.
pub(crate) struct Msg {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Turns a message's hits into hit records (and sightings), counting each in the metrics.
struct KafkaSink<'a> {
    src: Source<'a>,
    shared: &'a Shared,
    sightings: Option<&'a mpsc::Sender<crate::refresh::sightings::Sighting>>,
    records: Vec<(String, Vec<u8>)>,
}

impl Sink for KafkaSink<'_> {
    fn matched(&mut self, snap: &Snapshot, _offset: usize, line: &[u8], hits: &[FieldHit]) {
        let now = SystemTime::now();
        // One record per indicator (its hit id stays per indicator), with one enrichment per field it is in.
        for same in per_indicator(hits) {
            let ind = snap.indicator(same[0].hit.indicator);
            self.shared.metrics.hit(ind.value.kind().as_str(), self.src.topic);
            if let Some(tx) = self.sightings {
                // Never blocks scoring: when the reporter is behind, the sighting is dropped and counted.
                let at = self.src.timestamp.map_or_else(
                    || {
                        now.duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64)
                    },
                    |ms| ms / 1000,
                );
                if tx.try_send(crate::refresh::sightings::Sighting::of(&ind, at)).is_err() {
                    self.shared.metrics.bad("sighting_dropped");
                }
            }
            let (id, doc) = record(snap, line, &same, &self.src, now);
            self.records
                .push((id, serde_json::to_vec(&doc).expect("JSON values serialise")));
        }
    }
}

/// Scores one partition's messages in order and hands their hits to the producer.
pub(crate) async fn worker(
    mut rx: mpsc::Receiver<(Msg, OwnedSemaphorePermit)>,
    cell: Arc<SnapshotCell>,
    producer: FutureProducer,
    shared: Arc<Shared>,
    k: KafkaSettings,
    sightings: Option<mpsc::Sender<crate::refresh::sightings::Sighting>>,
) {
    // Oversized messages are skipped below, so the scanner needs no cap of its own.
    let mut scanner = LineScanner::new(usize::MAX).with_filter(k.field_filter().ok().flatten());
    // The Zeek `#fields` header last seen on each partition, for the TSV lines after it.
    let mut headers: std::collections::HashMap<(Arc<str>, i32), crate::scan::field::TsvFields> = Default::default();
    while let Some((msg, permit)) = rx.recv().await {
        let (topic, partition, offset) = (msg.topic.clone(), msg.partition, msg.offset);
        let Some(payload) = msg.payload.as_deref() else {
            shared.metrics.bad("tombstone");
            tracing::warn!(%topic, partition, offset, "tombstone (null payload) skipped");
            shared.done(&topic, partition, offset);
            continue;
        };
        if payload.len() > k.max_message_bytes {
            shared.metrics.bad("oversized");
            tracing::warn!(%topic, partition, offset, bytes = payload.len(), limit = k.max_message_bytes, "oversized message skipped");
            shared.done(&topic, partition, offset);
            continue;
        }
        if std::str::from_utf8(payload).is_err() {
            shared.metrics.bad("invalid_utf8");
            tracing::warn!(%topic, partition, offset, "payload is not valid UTF-8; scanned as bytes");
        }
        shared.metrics.lines.fetch_add(1, Ordering::Relaxed);
        shared.metrics.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
        let mut sink = KafkaSink {
            src: Source {
                topic: &topic,
                partition,
                offset,
                timestamp: msg.timestamp,
                key: msg.key.as_deref(),
            },
            shared: &shared,
            sightings: sightings.as_ref(),
            records: Vec::new(),
        };
        // The snapshot is taken once per message: a message is never scored against two sets.
        let snap = cell.load();
        if !headers.is_empty() {
            scanner.set_tsv(headers.get(&(topic.clone(), partition)).cloned());
        }
        let hit = scanner.line(&snap, 0, payload, &mut sink);
        if payload.starts_with(b"#fields\t") {
            if let Some(h) = scanner.tsv() {
                headers.insert((topic.clone(), partition), h.clone());
            }
        }
        if !hit {
            shared.done(&topic, partition, offset);
            continue;
        }
        let records = sink.records;
        let version = snap.version().to_string();
        let (producer, shared, k, key) = (producer.clone(), shared.clone(), k.clone(), msg.key.clone());
        tokio::spawn(async move {
            for (id, payload) in &records {
                deliver(&producer, &k.hits_topic, key.as_deref(), payload, id, &version, &shared).await;
            }
            shared.done(&topic, partition, offset);
            drop(permit);
        });
    }
}

/// Produces one hit and waits for the broker's acknowledgement, retrying until it comes (at-least-once).
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    hit_id: &str,
    version: &str,
    shared: &Shared,
) {
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "iocmatch-snapshot-version",
                value: Some(version),
            })
            .insert(Header {
                key: "iocmatch-hit-id",
                value: Some(hit_id),
            });
        let mut rec = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        match producer.send(rec, Duration::from_secs(5)).await {
            Ok(_) => return,
            Err((e, _)) => {
                shared.metrics.produce_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, hit_id, "hit delivery failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
