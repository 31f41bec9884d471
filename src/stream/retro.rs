//! Retro-hunting: when a refresh adds indicators, the last `[retro] window` of every input topic is scanned
//! against a snapshot of the added indicators only, so the cost follows the window, not the whole set.
//!
//! Kafka is the store: a consumer of its own (group `<group_id>-retro`, assigned partitions, no commits into the
//! main group) seeks each partition with `offsets_for_times` to now − window and reads up to the high watermark
//! taken when the hunt was planned. Retro hits go to the hits topic with `iocmatch.retro: true` (and an
//! `iocmatch-retro` header), `matched.occurred` set to the record's time, and hit ids of their own. Refreshes that
//! arrive while a hunt runs are merged into the next one; the pending attributes and each partition's progress are
//! kept in the state directory, so a restart resumes the hunt instead of losing it. Throttled to
//! `[retro] max_mb_per_s` beside the live consumer.

use super::hit::{hit_id, per_indicator, record, Source};
use super::metrics::Metrics;
use super::settings::{client_config, KafkaSettings, RetroSettings};
use crate::load::{Loader, RawAttribute};
use crate::scan::{FieldHit, LineScanner, Sink};
use crate::shutdown::Shutdown;
use crate::{Policy, Snapshot};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

const PENDING: &str = "retro-pending.json";
const QUEUED: &str = "retro-queued.json";
const PROGRESS: &str = "retro-progress.json";

/// Where one partition's hunt stands: read from `next` up to (not including) `end`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Range {
    next: i64,
    end: i64,
}

/// One planned hunt: each `topic/partition`'s range, and the time of the latest refresh merged into it. Records
/// written at or after that time were already scored live with the new indicators, so they are skipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Progress {
    cutoff_ms: i64,
    partitions: BTreeMap<String, Range>,
}

/// What one refresh added, and when (Unix milliseconds, taken before its snapshot was swapped in).
pub type Added = (Vec<RawAttribute>, i64);

/// Runs retro-hunts until `shutdown`: `added` receives the attributes each refresh added.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    k: KafkaSettings,
    rs: RetroSettings,
    state_dir: PathBuf,
    policy: Policy,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    mut added: mpsc::UnboundedReceiver<Added>,
    shutdown: Shutdown,
) {
    let mut pending = read_attrs(&state_dir.join(PENDING));
    let mut queued = read_attrs(&state_dir.join(QUEUED));
    // Sets read back from disk without their refresh time are hunted up to the watermark: a record may be hit
    // twice (live and retro, with different ids), never missed.
    let mut cutoff = i64::MAX;
    let mut queued_cutoff = (!queued.is_empty()).then_some(i64::MAX);
    loop {
        if pending.is_empty() {
            pending = std::mem::take(&mut queued);
            cutoff = queued_cutoff.take().unwrap_or(i64::MIN);
            let _ = std::fs::remove_file(state_dir.join(QUEUED));
        }
        if pending.is_empty() {
            tokio::select! {
                _ = shutdown.wait() => return,
                a = added.recv() => match a {
                    Some((a, at)) => { pending = a; cutoff = at; }
                    None => return,
                },
            }
        }
        while let Ok((a, at)) = added.try_recv() {
            merge(&mut pending, a);
            cutoff = cutoff.max(at);
        }
        write_attrs(&state_dir.join(PENDING), &pending);
        let progress = match read_progress(&state_dir) {
            Some(p) => p,
            None => match tokio::task::block_in_place(|| plan(&k, rs.window, cutoff)) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("retro-hunt cannot be planned, retried in 30 s: {e}");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_secs(30)) => continue,
                    }
                }
            },
        };
        write_progress(&state_dir, &progress);
        let done = hunt(
            &k,
            rs.max_mb_per_s,
            &state_dir,
            &policy,
            &producer,
            &metrics,
            &pending,
            progress,
            &mut added,
            (&mut queued, &mut queued_cutoff),
            &shutdown,
        )
        .await;
        if !done {
            return; // stopping: what is left is on disk
        }
        pending.clear();
        let _ = std::fs::remove_file(state_dir.join(PENDING));
        let _ = std::fs::remove_file(state_dir.join(PROGRESS));
    }
}

/// Adds `more` to `into`, once per type and value.
fn merge(into: &mut Vec<RawAttribute>, more: Vec<RawAttribute>) {
    let mut seen: std::collections::HashSet<(String, String)> = into
        .iter()
        .map(|a| (a.misp_type.to_string(), a.value.clone()))
        .collect();
    for a in more {
        if seen.insert((a.misp_type.to_string(), a.value.clone())) {
            into.push(a);
        }
    }
}

/// The window of every input partition: from the first offset at or after now − window to the high watermark now.
fn plan(k: &KafkaSettings, window: Duration, cutoff_ms: i64) -> Result<Progress, String> {
    let consumer: BaseConsumer = client_config(k)
        .set("group.id", format!("{}-retro", k.group_id))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let since = SystemTime::now()
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    for topic in &k.input_topics {
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(since))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let starts = consumer
        .offsets_for_times(tpl, timeout)
        .map_err(|e| format!("offsets_for_times: {e}"))?;
    let mut out = Progress {
        cutoff_ms,
        partitions: BTreeMap::new(),
    };
    for e in starts.elements() {
        let (_, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), timeout)
            .map_err(|x| format!("watermarks of {}/{}: {x}", e.topic(), e.partition()))?;
        let next = match e.offset() {
            Offset::Offset(o) => o,
            _ => high, // no record at or after the time: nothing in the window
        };
        if next < high {
            out.partitions
                .insert(format!("{}/{}", e.topic(), e.partition()), Range { next, end: high });
        }
    }
    Ok(out)
}

/// Collects a retro message's hits as records.
struct RetroSink<'a> {
    src: Source<'a>,
    records: Vec<(String, Vec<u8>)>,
}

impl Sink for RetroSink<'_> {
    fn matched(&mut self, snap: &Snapshot, _offset: usize, line: &[u8], hits: &[FieldHit]) {
        let now = SystemTime::now();
        for same in per_indicator(hits) {
            let (_, mut doc) = record(snap, line, &same, &self.src, now);
            let name = snap.indicator(same[0].hit.indicator).value.name();
            // Its own id: a consumer tells retro hits from live ones and deduplicates each kind.
            let id = hit_id(
                self.src.topic,
                self.src.partition,
                self.src.offset,
                &format!("{name}\u{0}retro"),
            );
            doc["event"]["id"] = id.clone().into();
            doc["iocmatch"]["hit_id"] = id.clone().into();
            doc["iocmatch"]["retro"] = true.into();
            let occurred = doc["@timestamp"].clone();
            if let Some(enrichments) = doc["threat"]["enrichments"].as_array_mut() {
                for e in enrichments {
                    e["matched"]["occurred"] = occurred.clone();
                }
            }
            self.records
                .push((id, serde_json::to_vec(&doc).expect("JSON values serialise")));
        }
    }
}

/// One hunt over `progress` for `attrs`. Returns false when it stopped for shutdown (progress is on disk).
#[allow(clippy::too_many_arguments)]
async fn hunt(
    k: &KafkaSettings,
    max_mb_per_s: f64,
    state_dir: &Path,
    policy: &Policy,
    producer: &FutureProducer,
    metrics: &Metrics,
    attrs: &[RawAttribute],
    mut progress: Progress,
    added: &mut mpsc::UnboundedReceiver<Added>,
    (queued, queued_cutoff): (&mut Vec<RawAttribute>, &mut Option<i64>),
    shutdown: &Shutdown,
) -> bool {
    let mut l = Loader::new(policy.clone());
    for a in attrs {
        l.add_attribute(a.clone());
    }
    let (set, _) = l.finish();
    let snap = Snapshot::build(set, 0);
    metrics.retro_started.fetch_add(1, Ordering::Relaxed);
    let remaining = |p: &Progress| {
        p.partitions
            .values()
            .map(|r| (r.end - r.next).max(0) as u64)
            .sum::<u64>()
    };
    metrics.retro_lag.store(remaining(&progress), Ordering::Relaxed);
    tracing::info!(
        indicators = snap.len(),
        partitions = progress.partitions.len(),
        records = remaining(&progress),
        "retro-hunt started"
    );
    let consumer: BaseConsumer = match client_config(k)
        .set("group.id", format!("{}-retro", k.group_id))
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("retro-hunt consumer: {e}");
            return true;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for (tp, r) in &progress.partitions {
        if let Some((t, p)) = tp.rsplit_once('/').and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?))) {
            let _ = tpl.add_partition_offset(t, p, Offset::Offset(r.next));
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        tracing::error!("retro-hunt assign: {e}");
        return true;
    }
    let mut scanner = LineScanner::new(k.max_message_bytes);
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut since_save = 0u32;
    let rate = (max_mb_per_s.max(0.1) * 1e6) as u64;
    while progress.partitions.values().any(|r| r.next < r.end) {
        if shutdown.is_triggered() {
            write_progress(state_dir, &progress);
            return false;
        }
        while let Ok((a, at)) = added.try_recv() {
            merge(queued, a);
            *queued_cutoff = Some(queued_cutoff.unwrap_or(at).max(at));
            write_attrs(&state_dir.join(QUEUED), queued);
        }
        let polled = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)));
        let Some(m) = polled else { continue };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("retro-hunt consumer: {e}");
                continue;
            }
        };
        let key = format!("{}/{}", m.topic(), m.partition());
        let cutoff = progress.cutoff_ms;
        let Some(r) = progress.partitions.get_mut(&key) else {
            continue;
        };
        if m.offset() >= r.end {
            r.next = r.end;
            continue;
        }
        r.next = m.offset() + 1;
        if m.timestamp().to_millis().is_some_and(|t| t >= cutoff) {
            continue; // written after the refresh: scored live with the new indicators already
        }
        let payload = m.payload().unwrap_or_default();
        bytes += payload.len() as u64;
        metrics.retro_records.fetch_add(1, Ordering::Relaxed);
        metrics.retro_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
        let mut sink = RetroSink {
            src: Source {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key(),
            },
            records: Vec::new(),
        };
        scanner.line(&snap, 0, payload, &mut sink);
        for (id, doc) in sink.records {
            metrics.retro_hits.fetch_add(1, Ordering::Relaxed);
            produce(producer, &k.hits_topic, &id, &doc, metrics).await;
        }
        metrics.retro_lag.store(remaining(&progress), Ordering::Relaxed);
        since_save += 1;
        if since_save >= 1000 {
            since_save = 0;
            write_progress(state_dir, &progress);
        }
        // Throttle: never faster than max_mb_per_s, so the live consumer keeps its share.
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            if wait > Duration::from_millis(5) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    metrics.retro_finished.fetch_add(1, Ordering::Relaxed);
    metrics.retro_lag.store(0, Ordering::Relaxed);
    tracing::info!(bytes, secs = started.elapsed().as_secs_f64(), "retro-hunt finished");
    true
}

async fn produce(producer: &FutureProducer, topic: &str, id: &str, doc: &[u8], metrics: &Metrics) {
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "iocmatch-hit-id",
                value: Some(id),
            })
            .insert(Header {
                key: "iocmatch-retro",
                value: Some("true"),
            });
        match producer
            .send(
                FutureRecord::<(), [u8]>::to(topic).payload(doc).headers(headers),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(_) => return,
            Err((e, _)) => {
                metrics.produce_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, hit_id = id, "retro hit delivery failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn read_attrs(path: &Path) -> Vec<RawAttribute> {
    if !path.exists() {
        return Vec::new();
    }
    let mut l = Loader::new(Policy {
        include_all: true,
        ..Policy::default()
    })
    .keep_accepted();
    match l.load_path(path) {
        Ok(()) => l.take_accepted(),
        Err(e) => {
            tracing::error!("ignoring a corrupt retro-hunt state file: {e}");
            Vec::new()
        }
    }
}

fn write_attrs(path: &Path, attrs: &[RawAttribute]) {
    if let Err(e) = crate::refresh::cache::write_to(path, 0, attrs) {
        tracing::error!(path = %path.display(), "cannot keep the retro-hunt state: {e}");
    }
}

fn read_progress(state_dir: &Path) -> Option<Progress> {
    let b = std::fs::read(state_dir.join(PROGRESS)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn write_progress(state_dir: &Path, p: &Progress) {
    let bytes = serde_json::to_vec(p).expect("JSON values serialise");
    if let Err(e) = crate::atomic_write::write_atomic(&state_dir.join(PROGRESS), &bytes) {
        tracing::error!("cannot keep the retro-hunt progress: {e}");
    }
}
