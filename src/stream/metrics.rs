//! Service metrics in the Prometheus text format, and the state `/readyz` reports.

use crate::refresh::RefreshMetrics;
use crate::snapshot::SnapshotCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct Metrics {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    /// (indicator type, source topic) → hits.
    pub hits: Mutex<BTreeMap<(String, String), u64>>,
    /// reason (`tombstone`, `invalid_utf8`, `oversized`) → messages.
    pub bad_messages: Mutex<BTreeMap<String, u64>>,
    pub in_flight: AtomicU64,
    pub commits: AtomicU64,
    pub commit_latency_us_sum: AtomicU64,
    pub produce_errors: AtomicU64,
    /// (topic, partition) → high watermark minus committed offset.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub assigned_partitions: AtomicU64,
    pub retro_started: AtomicU64,
    pub retro_finished: AtomicU64,
    pub retro_records: AtomicU64,
    pub retro_bytes: AtomicU64,
    pub retro_hits: AtomicU64,
    /// Records the running retro-hunt has still to read.
    pub retro_lag: AtomicU64,
}

impl Metrics {
    pub fn bad(&self, reason: &str) {
        *self
            .bad_messages
            .lock()
            .expect("metrics")
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub fn hit(&self, kind: &str, source: &str) {
        *self
            .hits
            .lock()
            .expect("metrics")
            .entry((kind.to_string(), source.to_string()))
            .or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, cell: &SnapshotCell, refresh: &RefreshMetrics) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, kind: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        counter("iocmatch_lines_total", "Log lines scored.", "counter");
        counter("iocmatch_bytes_total", "Bytes of log lines scored.", "counter");
        counter(
            "iocmatch_hits_total",
            "Indicator hits by indicator type and source topic.",
            "counter",
        );
        counter(
            "iocmatch_bad_messages_total",
            "Messages not scored normally, by reason.",
            "counter",
        );
        counter("iocmatch_snapshot_version", "Version of the serving snapshot.", "gauge");
        counter(
            "iocmatch_snapshot_age_seconds",
            "Seconds since the serving snapshot was built.",
            "gauge",
        );
        counter(
            "iocmatch_indicators",
            "Indicators in the serving snapshot by type.",
            "gauge",
        );
        counter(
            "iocmatch_refresh_errors_total",
            "Failed refreshes by source.",
            "counter",
        );
        counter(
            "iocmatch_rejected_indicators",
            "Indicators rejected at the last build, by reason.",
            "gauge",
        );
        counter(
            "iocmatch_filtered_indicators",
            "Indicators dropped by a warninglist or the allowlist at the last build.",
            "gauge",
        );
        counter(
            "iocmatch_consumer_lag",
            "High watermark minus committed offset, from librdkafka statistics (statistics.interval.ms).",
            "gauge",
        );
        counter("iocmatch_commits_total", "Offset commits.", "counter");
        counter(
            "iocmatch_commit_latency_seconds_sum",
            "Total time spent committing offsets.",
            "counter",
        );
        counter(
            "iocmatch_in_flight_messages",
            "Messages consumed whose hits are not yet acknowledged.",
            "gauge",
        );
        counter(
            "iocmatch_produce_errors_total",
            "Failed hit deliveries (retried).",
            "counter",
        );
        counter(
            "iocmatch_assigned_partitions",
            "Partitions assigned to this instance.",
            "gauge",
        );
        let _ = writeln!(s, "iocmatch_lines_total {}", self.lines.load(Ordering::Relaxed));
        let _ = writeln!(s, "iocmatch_bytes_total {}", self.bytes.load(Ordering::Relaxed));
        for ((kind, src), n) in self.hits.lock().expect("metrics").iter() {
            let _ = writeln!(s, "iocmatch_hits_total{{type=\"{kind}\",source=\"{}\"}} {n}", esc(src));
        }
        for (r, n) in self.bad_messages.lock().expect("metrics").iter() {
            let _ = writeln!(s, "iocmatch_bad_messages_total{{reason=\"{r}\"}} {n}");
        }
        let snap = cell.load();
        let _ = writeln!(s, "iocmatch_snapshot_version {}", snap.version());
        let age = SystemTime::now()
            .duration_since(snap.built_at())
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(s, "iocmatch_snapshot_age_seconds {age:.3}");
        for (k, n) in snap.counts() {
            let _ = writeln!(s, "iocmatch_indicators{{type=\"{k}\"}} {n}");
        }
        for (src, n) in refresh.errors.lock().expect("metrics").iter() {
            let _ = writeln!(s, "iocmatch_refresh_errors_total{{source=\"{}\"}} {n}", esc(src));
        }
        let load = refresh.last_load.lock().expect("metrics");
        for (r, n) in load.rejected_by_reason() {
            let _ = writeln!(s, "iocmatch_rejected_indicators{{reason=\"{r}\"}} {n}");
        }
        for (list, n) in &load.filtered {
            let _ = writeln!(s, "iocmatch_filtered_indicators{{list=\"{}\"}} {n}", esc(list));
        }
        drop(load);
        for ((t, p), lag) in self.lag.lock().expect("metrics").iter() {
            let _ = writeln!(
                s,
                "iocmatch_consumer_lag{{topic=\"{}\",partition=\"{p}\"}} {lag}",
                esc(t)
            );
        }
        let _ = writeln!(s, "iocmatch_commits_total {}", self.commits.load(Ordering::Relaxed));
        let _ = writeln!(
            s,
            "iocmatch_commit_latency_seconds_sum {:.6}",
            self.commit_latency_us_sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "iocmatch_in_flight_messages {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "iocmatch_produce_errors_total {}",
            self.produce_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "iocmatch_assigned_partitions {}",
            self.assigned_partitions.load(Ordering::Relaxed)
        );
        for (name, help, v) in [
            (
                "iocmatch_retro_hunts_started_total",
                "Retro-hunts started.",
                &self.retro_started,
            ),
            (
                "iocmatch_retro_hunts_finished_total",
                "Retro-hunts finished.",
                &self.retro_finished,
            ),
            (
                "iocmatch_retro_records_total",
                "Records a retro-hunt scanned.",
                &self.retro_records,
            ),
            (
                "iocmatch_retro_bytes_total",
                "Bytes a retro-hunt scanned.",
                &self.retro_bytes,
            ),
            (
                "iocmatch_retro_hits_total",
                "Retro-hunt hits produced.",
                &self.retro_hits,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP iocmatch_retro_lag_records Records the running retro-hunt has still to read.\n# TYPE iocmatch_retro_lag_records gauge\niocmatch_retro_lag_records {}",
            self.retro_lag.load(Ordering::Relaxed)
        );
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
