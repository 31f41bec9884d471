//! Swap under load: a scorer scores lines continuously while the refresher swaps 100 snapshots in.

use iocmatch::indicator::{Indicator, IndicatorSet, Provenance, Value};
use iocmatch::scan::scan_line;
use iocmatch::snapshot::SnapshotCell;
use iocmatch::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

fn snapshot(upto: u64) -> Snapshot {
    let set: IndicatorSet = (0..=upto)
        .map(|n| Indicator {
            value: Value::Domain(format!("ind{n}.example.net").into()),
            provenance: Provenance::default(),
            merged: 0,
        })
        .collect();
    Snapshot::build(set, upto)
}

#[test]
fn every_line_is_scored_once_and_new_indicators_hit_after_their_swap() {
    const SWAPS: u64 = 100;
    let cell = Arc::new(SnapshotCell::new(snapshot(0)));
    let done = Arc::new(AtomicBool::new(false));
    let olds: Arc<Mutex<Vec<Weak<Snapshot>>>> = Arc::default();

    let scorer = {
        let (cell, done) = (cell.clone(), done.clone());
        std::thread::spawn(move || {
            // (sequence number, indicator number in the line, snapshot version used, hit)
            let mut seen: Vec<(u64, u64, u64, bool)> = Vec::new();
            let mut hits = Vec::new();
            let mut seq = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                let snap = cell.load(); // one snapshot per batch, taken at the batch boundary
                for _ in 0..64 {
                    let n = seq % (SWAPS + 1);
                    let line = format!("seq={seq} GET http://a.ind{n}.example.net/");
                    scan_line(&snap, line.as_bytes(), &mut hits);
                    seen.push((seq, n, snap.version(), !hits.is_empty()));
                    seq += 1;
                }
                drop(snap);
                if finished {
                    return seen;
                }
            }
        })
    };
    for v in 1..=SWAPS {
        let old = cell.load();
        olds.lock().unwrap().push(Arc::downgrade(&old));
        drop(old);
        cell.swap(snapshot(v));
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    done.store(true, Ordering::Release);
    let seen = scorer.join().unwrap();

    let mut seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), seen.len(), "no line scored twice");
    assert_eq!(*seqs.last().unwrap() + 1, seen.len() as u64, "no line skipped");
    for (seq, n, version, hit) in &seen {
        assert_eq!(*hit, *version >= *n, "line {seq} with ind{n} scored on v{version}");
    }
    assert!(seen.iter().any(|s| s.2 == SWAPS), "the last snapshot served");
    let alive = olds.lock().unwrap().iter().filter(|w| w.upgrade().is_some()).count();
    assert_eq!(alive, 0, "every old snapshot was freed once in-flight batches ended");
}
