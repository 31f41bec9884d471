//! The service loop: consume, score, produce, commit after acknowledgement, drain on shutdown.

use super::hit::{record, Source};
use super::http::{self, OpsState};
use super::metrics::Metrics;
use super::tracker::CommitTracker;
use crate::config::Config;
use crate::refresh::{RefreshError, Refresher, SnapshotCell};
use crate::scan::scan_line;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error("metrics endpoint {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// Topic names; a name starting with `^` is a regular expression.
    pub input_topics: Vec<String>,
    pub hits_topic: String,
    /// librdkafka properties passed through as they are (TLS, SASL, timeouts...).
    pub properties: BTreeMap<String, String>,
    /// Larger payloads are counted and skipped.
    pub max_message_bytes: usize,
    /// Scoring workers (default: cores).
    pub workers: usize,
    /// Messages queued per worker before consumption pauses.
    pub queue_depth: usize,
    /// Messages in flight (consumed, hits not yet acknowledged) before consumption pauses.
    pub max_in_flight: usize,
    pub commit_interval_ms: u64,
    /// How long shutdown may take to drain and commit.
    pub shutdown_deadline_secs: u64,
    /// MISP's own attribute topic (`misp_attribute`), applied between REST pulls when set.
    pub misp_push_topic: Option<String>,
    /// Seconds between sighting reports (when `misp.sightings` is on): one request at most per interval.
    pub sighting_interval_secs: u64,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            group_id: "iocmatch".into(),
            input_topics: vec!["logs".into()],
            hits_topic: "iocmatch-hits".into(),
            properties: BTreeMap::new(),
            max_message_bytes: 1 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_depth: 1024,
            max_in_flight: 10_000,
            commit_interval_ms: 1000,
            shutdown_deadline_secs: 30,
            misp_push_topic: None,
            sighting_interval_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MetricsSettings {
    listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

fn settings<T: for<'de> Deserialize<'de> + Default>(t: &Option<toml::Table>, what: &str) -> Result<T, ServiceError> {
    match t {
        None => Ok(T::default()),
        Some(t) => toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| ServiceError::Config(format!("[{what}]: {e}"))),
    }
}

/// One consumed message, owned, on its way to a worker.
struct Msg {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

/// Shared between the consume loop, the workers, the committer and the rebalance callback.
struct Shared {
    tracker: Mutex<CommitTracker>,
    metrics: Arc<Metrics>,
    deadline: Duration,
}

impl Shared {
    fn done(&self, topic: &str, partition: i32, offset: i64) {
        self.tracker.lock().expect("tracker").done(topic, partition, offset);
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Ctx(Arc<Shared>);

impl ClientContext for Ctx {
    /// Consumer lag comes from librdkafka's statistics (`statistics.interval.ms`): the high watermark of the last
    /// fetch against the committed offset, with no broker round trip and no lock held while waiting on the network.
    fn stats(&self, stats: rdkafka::Statistics) {
        let mut lag = BTreeMap::new();
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *p), part.consumer_lag);
                }
            }
        }
        *self.0.metrics.lag.lock().expect("metrics") = lag;
    }
}

impl ConsumerContext for Ctx {
    /// Before partitions are taken away, in-flight work for them finishes and its offsets are committed.
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let wait = || {
            let started = Instant::now();
            while started.elapsed() < self.0.deadline {
                let busy: usize = {
                    let t = self.0.tracker.lock().expect("tracker");
                    parts.iter().map(|(tp, p)| t.in_flight_for(tp, *p)).sum()
                };
                if busy == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // The callback runs inside `recv()` on a runtime worker: hand that worker's other tasks (the scorers and
        // deliveries being waited for) to another thread while this one waits.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
        let mut t = self.0.tracker.lock().expect("tracker");
        let mut commit = TopicPartitionList::new();
        for ((tp, p), next) in t.committable() {
            if parts.contains(&(tp.clone(), p)) {
                let _ = commit.add_partition_offset(&tp, p, Offset::Offset(next));
            }
        }
        for (tp, p) in &parts {
            t.forget(tp, *p);
        }
        drop(t);
        if commit.count() > 0 {
            if let Err(e) = base.commit(&commit, CommitMode::Sync) {
                tracing::warn!("commit before revoking partitions failed: {e}");
            }
        }
        tracing::info!(partitions = ?parts, "partitions revoked after draining");
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
        let n = base.assignment().map_or(0, |a| a.count());
        self.0.metrics.assigned_partitions.store(n as u64, Ordering::Relaxed);
    }
}

fn client_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (p, v) in &k.properties {
        c.set(p, v);
    }
    c
}

/// Runs until `shutdown` resolves, then drains, commits and returns.
pub async fn run(cfg: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServiceError> {
    let k: KafkaSettings = settings(&cfg.kafka, "kafka")?;
    let m: MetricsSettings = settings(&cfg.metrics, "metrics")?;
    if k.hits_topic.is_empty() || k.input_topics.is_empty() {
        return Err(ServiceError::Config(
            "kafka.input_topics and kafka.hits_topic are required".into(),
        ));
    }
    let sightings = match &cfg.misp {
        Some(mc) if mc.sightings => {
            let client = crate::refresh::misp::MispClient::new(mc, crate::refresh::misp::ApiKey::load(mc)?)?;
            let (tx, rx) = mpsc::channel::<String>(10_000);
            tokio::spawn(report_sightings(
                client,
                rx,
                mc.sighting_source.clone(),
                k.sighting_interval_secs,
            ));
            Some(tx)
        }
        _ => None,
    };
    let mut refresher = Refresher::new(cfg)?;
    refresher.check_key().await;
    match refresher.start().await {
        Ok((from, r)) => tracing::info!(
            ?from,
            version = r.version,
            indicators = r.total,
            "first snapshot loaded"
        ),
        Err(e) => tracing::error!("no indicators yet ({e}); serving an empty snapshot until a refresh succeeds"),
    }
    let cell = refresher.cell();
    let refresh_metrics = refresher.metrics.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let push_rx = match &k.misp_push_topic {
        Some(topic) => Some(spawn_push_consumer(&k, topic)?),
        None => None,
    };
    let refresh_task = tokio::spawn(refresher.run(stop_rx, push_rx));

    let metrics = Arc::new(Metrics::default());
    let addr = http::serve(
        &m.listen,
        Arc::new(OpsState {
            metrics: metrics.clone(),
            cell: cell.clone(),
            refresh: refresh_metrics,
        }),
    )
    .await
    .map_err(|source| ServiceError::Listen {
        addr: m.listen.clone(),
        source,
    })?;
    tracing::info!(%addr, "metrics endpoint listening");

    let shared = Arc::new(Shared {
        tracker: Mutex::new(CommitTracker::new()),
        metrics: metrics.clone(),
        deadline: Duration::from_secs(k.shutdown_deadline_secs),
    });
    let mut cc = client_config(&k);
    cc.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (p, v) in [
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
        ("statistics.interval.ms", "5000"),
    ] {
        if cc.get(p).is_none() {
            cc.set(p, v);
        }
    }
    let consumer: Arc<StreamConsumer<Ctx>> = Arc::new(
        cc.create_with_context(Ctx(shared.clone()))
            .map_err(|e| ServiceError::Kafka(format!("consumer for {}: {e}", k.brokers)))?,
    );
    let topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| ServiceError::Kafka(format!("subscribing to {topics:?}: {e}")))?;
    let producer: FutureProducer = client_config(&k)
        .create()
        .map_err(|e| ServiceError::Kafka(format!("producer for {}: {e}", k.brokers)))?;

    let permits = Arc::new(Semaphore::new(k.max_in_flight));
    let mut senders = Vec::with_capacity(k.workers);
    let mut workers = Vec::with_capacity(k.workers);
    for _ in 0..k.workers.max(1) {
        let (tx, rx) = mpsc::channel::<(Msg, tokio::sync::OwnedSemaphorePermit)>(k.queue_depth);
        senders.push(tx);
        workers.push(tokio::spawn(worker(
            rx,
            cell.clone(),
            producer.clone(),
            shared.clone(),
            k.clone(),
            sightings.clone(),
        )));
    }
    let committer = tokio::spawn(committer(consumer.clone(), shared.clone(), k.commit_interval_ms));

    consume(&consumer, &shared, &permits, senders, shutdown).await;

    tracing::info!("shutting down: draining in-flight work");
    let deadline = Instant::now() + Duration::from_secs(k.shutdown_deadline_secs);
    for w in workers {
        let _ = tokio::time::timeout_at(deadline.into(), w).await;
    }
    let _ = tokio::time::timeout_at(deadline.into(), permits.acquire_many(k.max_in_flight as u32)).await;
    committer.abort();
    commit_now(&consumer, &shared, CommitMode::Sync);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), refresh_task).await;
    let left = shared.tracker.lock().expect("tracker").in_flight();
    tracing::info!(left_in_flight = left, "stopped");
    Ok(())
}

fn fxhash(s: &str) -> usize {
    s.bytes().fold(0usize, |h, b| h.rotate_left(5) ^ b as usize)
}

/// Receives messages until `shutdown`, registering each with the tracker and queueing it for its partition's
/// worker. Waiting for an in-flight permit or a queue slot here is the backpressure: consumption pauses.
async fn consume(
    consumer: &StreamConsumer<Ctx>,
    shared: &Shared,
    permits: &Arc<Semaphore>,
    senders: Vec<mpsc::Sender<(Msg, tokio::sync::OwnedSemaphorePermit)>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = permits.clone().acquire_owned() => p.expect("semaphore open"),
        };
        let received = tokio::select! {
            _ = &mut shutdown => return,
            m = consumer.recv() => m,
        };
        let msg = match received {
            Ok(m) => Msg {
                topic: Arc::from(m.topic()),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
            },
            Err(e) => {
                tracing::warn!("consume error (librdkafka reconnects by itself): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        shared
            .tracker
            .lock()
            .expect("tracker")
            .received(&msg.topic, msg.partition, msg.offset);
        shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let w = (msg.partition as usize).wrapping_add(fxhash(&msg.topic)) % senders.len();
        if senders[w].send((msg, permit)).await.is_err() {
            return;
        }
    }
}

fn commit_now(consumer: &StreamConsumer<Ctx>, shared: &Shared, mode: CommitMode) {
    let offsets = shared.tracker.lock().expect("tracker").committable();
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), next) in &offsets {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*next));
    }
    let _span = tracing::debug_span!("commit", partitions = offsets.len()).entered();
    let started = Instant::now();
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            shared.metrics.commits.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .commit_latency_us_sum
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            shared.tracker.lock().expect("tracker").commit_failed(&offsets);
            tracing::warn!("offset commit failed (retried at the next interval): {e}");
        }
    }
}

async fn committer(consumer: Arc<StreamConsumer<Ctx>>, shared: Arc<Shared>, every_ms: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms.max(10)));
    loop {
        tick.tick().await;
        let (c, s) = (consumer.clone(), shared.clone());
        let _ = tokio::task::spawn_blocking(move || commit_now(&c, &s, CommitMode::Sync)).await;
    }
}

/// Scores one partition's messages in order and hands their hits to the producer.
async fn worker(
    mut rx: mpsc::Receiver<(Msg, tokio::sync::OwnedSemaphorePermit)>,
    cell: Arc<SnapshotCell>,
    producer: FutureProducer,
    shared: Arc<Shared>,
    k: KafkaSettings,
    sightings: Option<mpsc::Sender<String>>,
) {
    let mut hits = Vec::new();
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
        let mut line = payload;
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        shared.metrics.lines.fetch_add(1, Ordering::Relaxed);
        shared.metrics.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        // The snapshot is taken once per message: a message is never scored against two sets.
        let snap = cell.load();
        scan_line(&snap, line, &mut hits);
        if hits.is_empty() {
            shared.done(&topic, partition, offset);
            continue;
        }
        let src = Source {
            topic: &topic,
            partition,
            offset,
            timestamp: msg.timestamp,
            key: msg.key.as_deref(),
        };
        let version = snap.version().to_string();
        let records: Vec<(String, Vec<u8>)> = hits
            .iter()
            .map(|h| {
                shared
                    .metrics
                    .hit(snap.indicator(h.indicator).value.kind().as_str(), &topic);
                if let Some(tx) = &sightings {
                    // Never blocks scoring: when the reporter is behind, the sighting is dropped and counted.
                    if tx.try_send(snap.indicator(h.indicator).value.name()).is_err() {
                        shared.metrics.bad("sighting_dropped");
                    }
                }
                let (id, doc) = record(&snap, line, h, &src, std::time::SystemTime::now());
                (id, serde_json::to_vec(&doc).expect("JSON values serialise"))
            })
            .collect();
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

/// Consumes MISP's attribute topic and forwards each notification to the refresher.
fn spawn_push_consumer(
    k: &KafkaSettings,
    topic: &str,
) -> Result<mpsc::Receiver<crate::load::RawAttribute>, ServiceError> {
    let mut cc = client_config(k);
    cc.set("group.id", format!("{}-misp-push", k.group_id))
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc
        .create()
        .map_err(|e| ServiceError::Kafka(format!("MISP push consumer for {}: {e}", k.brokers)))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| ServiceError::Kafka(format!("subscribing to {topic}: {e}")))?;
    let (tx, rx) = mpsc::channel(10_000);
    tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(m) => {
                    let loc = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
                    match m.payload().map(|p| crate::refresh::push::parse(p, &loc)) {
                        Some(Ok(Some(a))) => {
                            if tx.send(a).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(None)) => {}
                        Some(Err(e)) => tracing::warn!(at = %loc, "MISP push message skipped: {e}"),
                        None => tracing::warn!(at = %loc, "MISP push tombstone skipped"),
                    }
                }
                Err(e) => {
                    tracing::warn!("MISP push consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok(rx)
}

/// Batches hit values and reports them to MISP as sightings, one request per interval at most.
async fn report_sightings(
    client: crate::refresh::misp::MispClient,
    mut rx: mpsc::Receiver<String>,
    source: String,
    every_secs: u64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs.max(1)));
    let mut pending = std::collections::BTreeSet::new();
    loop {
        tick.tick().await;
        while let Ok(v) = rx.try_recv() {
            pending.insert(v);
        }
        if rx.is_closed() && pending.is_empty() {
            return;
        }
        if pending.is_empty() {
            continue;
        }
        let batch: Vec<String> = std::mem::take(&mut pending).into_iter().take(500).collect();
        if let Err(e) = client.add_sightings(&batch, &source).await {
            tracing::warn!(values = batch.len(), "sightings not recorded: {e}");
        }
    }
}

/// For tests and tools: the header value of a produced hit.
pub fn header_value<'a>(h: &'a impl Headers, name: &str) -> Option<&'a [u8]> {
    h.iter().find(|x| x.key == name).and_then(|x| x.value)
}
