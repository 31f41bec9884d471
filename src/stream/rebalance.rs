//! What the consume loop, the workers, the committer and librdkafka's callbacks share, and the callbacks
//! themselves: consumer lag from statistics, and draining a partition's in-flight work before it is revoked.

use super::metrics::Metrics;
use super::tracker::CommitTracker;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared between the consume loop, the workers, the committer and the rebalance callback.
pub(crate) struct Shared {
    pub tracker: Mutex<CommitTracker>,
    pub metrics: Arc<Metrics>,
    /// How long a revoke (and shutdown) waits for in-flight work.
    pub deadline: Duration,
}

impl Shared {
    /// A message is finished: every hit acknowledged, or it had none.
    pub fn done(&self, topic: &str, partition: i32, offset: i64) {
        self.tracker.lock().expect("tracker").done(topic, partition, offset);
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The consumer's librdkafka context.
pub(crate) struct Ctx(pub Arc<Shared>);

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
