//! The serving snapshot and its atomic replacement: what the refresher hands the scorers. It lives with the
//! snapshot, not the refresher, so a scorer (the Kafka service, the ops endpoint) needs no part of the refresher.
//!
//! Readers take an `Arc<Snapshot>` at a line or batch boundary and keep it until the batch ends, so a batch is
//! never scored against two sets or a half-built one. The refresher builds the next snapshot off the scoring path
//! and swaps it in with one atomic pointer store (`arc-swap`). The old snapshot is freed when the last batch holding
//! it finishes, so at most one old snapshot outlives a swap.

use crate::indicator::{Indicator, Kind, Value};
use crate::Snapshot;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a swap changed, per kind: for the swap log line and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangeReport {
    pub version: u64,
    pub build_ms: u64,
    pub added: BTreeMap<Kind, usize>,
    pub removed: BTreeMap<Kind, usize>,
    /// Same value, different provenance (tags, attribute, timestamp).
    pub changed: BTreeMap<Kind, usize>,
    pub total: usize,
}

impl ChangeReport {
    /// Compares two snapshots' indicator sets.
    pub fn between(old: &Snapshot, new: &Snapshot) -> ChangeReport {
        if old.is_empty() {
            // The first snapshot (or one mapped from a file at start): everything is added, nothing to decode.
            return ChangeReport {
                version: new.version(),
                build_ms: new.build_duration().as_millis() as u64,
                added: new.counts().clone(),
                total: new.len(),
                ..Default::default()
            };
        }
        if Arc::ptr_eq(old.base(), new.base()) {
            // Same base: only what either overlay adds or masks can differ.
            let mut ids: Vec<u32> = Vec::new();
            for o in [old.overlay(), new.overlay()].into_iter().flatten() {
                ids.extend(o.masked_ids());
            }
            ids.sort_unstable();
            ids.dedup();
            return Self::of(new, old.partial(&ids), new.partial(&ids));
        }
        Self::of(
            new,
            old.indicators().map(|(_, i)| i).collect(),
            new.indicators().map(|(_, i)| i).collect(),
        )
    }

    fn of(new: &Snapshot, old: Vec<Indicator>, fresh: Vec<Indicator>) -> ChangeReport {
        let before: HashMap<&Value, &Indicator> = old.iter().map(|i| (&i.value, i)).collect();
        let mut r = ChangeReport {
            version: new.version(),
            build_ms: new.build_duration().as_millis() as u64,
            total: new.len(),
            ..Default::default()
        };
        let mut seen = 0;
        for i in &fresh {
            match before.get(&i.value) {
                None => *r.added.entry(i.value.kind()).or_default() += 1,
                Some(o) => {
                    seen += 1;
                    if o.provenance != i.provenance {
                        *r.changed.entry(i.value.kind()).or_default() += 1;
                    }
                }
            }
        }
        if seen < old.len() {
            let after: std::collections::HashSet<&Value> = fresh.iter().map(|i| &i.value).collect();
            for i in &old {
                if !after.contains(&i.value) {
                    *r.removed.entry(i.value.kind()).or_default() += 1;
                }
            }
        }
        r
    }

    fn fmt_counts(m: &BTreeMap<Kind, usize>) -> String {
        if m.is_empty() {
            return "0".into();
        }
        m.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(",")
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "snapshot v{} swapped in: {} indicators, built in {} ms; added {}; removed {}; changed {}",
            self.version,
            self.total,
            self.build_ms,
            Self::fmt_counts(&self.added),
            Self::fmt_counts(&self.removed),
            Self::fmt_counts(&self.changed)
        )
    }
}

/// The currently serving snapshot, shared by every scorer.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
}

impl SnapshotCell {
    pub fn new(initial: Snapshot) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The snapshot to score the next batch with. Hold it for the whole batch.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Swaps in a new snapshot and reports what changed.
    pub fn swap(&self, next: Snapshot) -> ChangeReport {
        let next = Arc::new(next);
        let old = self.current.swap(next.clone());
        let report = ChangeReport::between(&old, &next);
        tracing::info!(version = report.version, "{}", report.summary());
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::{IndicatorSet, Provenance};

    fn snap(values: &[&str], version: u64) -> Snapshot {
        let set: IndicatorSet = values
            .iter()
            .map(|v| Indicator {
                value: Value::Domain((*v).into()),
                provenance: Provenance::default(),
                merged: 0,
            })
            .collect();
        Snapshot::build(set, version)
    }

    #[test]
    fn change_report_counts_added_and_removed_per_kind() {
        let r = ChangeReport::between(&snap(&["a.com", "b.com"], 1), &snap(&["b.com", "c.com", "d.com"], 2));
        assert_eq!(r.added.get(&Kind::Domain), Some(&2));
        assert_eq!(r.removed.get(&Kind::Domain), Some(&1));
        assert_eq!(r.version, 2);
    }

    #[test]
    fn the_old_snapshot_is_freed_when_its_last_reader_finishes() {
        let cell = SnapshotCell::new(snap(&["a.com"], 1));
        let reader = cell.load();
        let weak = Arc::downgrade(&reader);
        cell.swap(snap(&["b.com"], 2));
        assert!(weak.upgrade().is_some(), "an in-flight batch keeps it");
        drop(reader);
        assert!(weak.upgrade().is_none(), "memory returned once the batch ends");
        assert_eq!(cell.load().version(), 2);
    }
}
