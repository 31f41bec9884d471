//! The service loop: consume, hand each message to its partition's worker, commit what was acknowledged, and on
//! shutdown drain and commit before returning. The refresher is built by the caller (`iocmatch run`), which hands
//! over the snapshot cell it swaps; this module never touches the refresher itself.

use super::http::{self, OpsState};
use super::metrics::Metrics;
use super::rebalance::{Ctx, Shared};
use super::settings::{client_config, Settings};
use super::tracker::CommitTracker;
use super::worker::{worker, Msg};
use super::ServiceError;
use crate::refresh::RefreshMetrics;
use crate::shutdown::Shutdown;
use crate::snapshot::SnapshotCell;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// What the service scores with and reports on, from the caller.
pub struct Inputs {
    /// The serving snapshot, swapped by the refresher.
    pub cell: Arc<SnapshotCell>,
    /// The refresher's counters, shown on `/metrics`.
    pub refresh: Arc<RefreshMetrics>,
    /// Where hit values go to be reported to MISP as sightings, when that is on.
    pub sightings: Option<mpsc::Sender<crate::refresh::sightings::Sighting>>,
    /// What each refresh added, for retro-hunting (`[retro] window` above 0).
    pub retro: Option<RetroInput>,
}

/// The retro-hunt's inputs from the refresher.
pub struct RetroInput {
    pub added: mpsc::UnboundedReceiver<super::retro::Added>,
    pub state_dir: std::path::PathBuf,
    pub policy: crate::Policy,
}

/// Runs until `shutdown` fires, then drains in-flight work, commits and returns. `/metrics` and the committer stop
/// with it.
pub async fn run(settings: Settings, inputs: Inputs, shutdown: Shutdown) -> Result<(), ServiceError> {
    let Settings {
        kafka: k,
        metrics: m,
        retro: rs,
    } = settings;
    let metrics = Arc::new(Metrics::default());
    let (addr, http_task) = http::serve(
        &m.listen,
        Arc::new(OpsState {
            metrics: metrics.clone(),
            cell: inputs.cell.clone(),
            refresh: inputs.refresh,
        }),
        shutdown.clone(),
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
            .map_err(ServiceError::kafka("consumer", &k.brokers))?,
    );
    let topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(ServiceError::kafka(format!("subscribing to {topics:?}"), &k.brokers))?;
    let producer: FutureProducer = client_config(&k)
        .create()
        .map_err(ServiceError::kafka("producer", &k.brokers))?;

    let permits = Arc::new(Semaphore::new(k.max_in_flight));
    let mut senders = Vec::with_capacity(k.workers);
    let mut workers = Vec::with_capacity(k.workers);
    for _ in 0..k.workers.max(1) {
        let (tx, rx) = mpsc::channel::<(Msg, OwnedSemaphorePermit)>(k.queue_depth);
        senders.push(tx);
        workers.push(tokio::spawn(worker(
            rx,
            inputs.cell.clone(),
            producer.clone(),
            shared.clone(),
            k.clone(),
            inputs.sightings.clone(),
        )));
    }
    let retro = match inputs.retro {
        Some(r) if rs.enabled() => Some(tokio::spawn(super::retro::run(
            k.clone(),
            rs.clone(),
            r.state_dir,
            r.policy,
            producer.clone(),
            metrics.clone(),
            r.added,
            shutdown.clone(),
        ))),
        _ => None,
    };
    let committer = tokio::spawn(committer(
        consumer.clone(),
        shared.clone(),
        k.commit_interval_ms,
        shutdown.clone(),
    ));

    consume(&consumer, &shared, &permits, senders, &shutdown).await;

    tracing::info!("shutting down: draining in-flight work");
    let deadline = Instant::now() + Duration::from_secs(k.shutdown_deadline_secs);
    for w in workers {
        let _ = tokio::time::timeout_at(deadline.into(), w).await;
    }
    let _ = tokio::time::timeout_at(deadline.into(), permits.acquire_many(k.max_in_flight as u32)).await;
    let _ = committer.await;
    if let Some(r) = retro {
        let _ = tokio::time::timeout_at(deadline.into(), r).await;
    }
    commit_now(&consumer, &shared, CommitMode::Sync);
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
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
    senders: Vec<mpsc::Sender<(Msg, OwnedSemaphorePermit)>>,
    shutdown: &Shutdown,
) {
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => return,
            p = permits.clone().acquire_owned() => p.expect("semaphore open"),
        };
        let received = tokio::select! {
            _ = shutdown.wait() => return,
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

/// Commits what is committable every interval until shutdown; the final commit after draining is `run`'s.
async fn committer(consumer: Arc<StreamConsumer<Ctx>>, shared: Arc<Shared>, every_ms: u64, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms.max(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let (c, s) = (consumer.clone(), shared.clone());
        let _ = tokio::task::spawn_blocking(move || commit_now(&c, &s, CommitMode::Sync)).await;
    }
}

/// For tests and tools: the header value of a produced hit.
pub fn header_value<'a>(h: &'a impl Headers, name: &str) -> Option<&'a [u8]> {
    h.iter().find(|x| x.key == name).and_then(|x| x.value)
}
