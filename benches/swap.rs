//! Scan throughput while snapshots are swapped in a loop, against the same scan with no swaps. A scorer takes the
//! snapshot once per 1 MiB chunk, as `scan` and `run` do; the swapper replaces a 100k-indicator snapshot every
//! second (the goal) and every 10 ms (a stress case where the other core rebuilds non-stop).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iocmatch::bench::{generate, indicator_set, WorkloadSpec};
use iocmatch::scan::scan_buffer;
use iocmatch::snapshot::SnapshotCell;
use iocmatch::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn scan_chunks(cell: &SnapshotCell, buf: &[u8]) -> u64 {
    let mut hits = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let mut end = (pos + (1 << 20)).min(buf.len());
        end = memchr_next_line(buf, end);
        let snap = cell.load();
        hits += scan_buffer(&snap, &buf[pos..end], 1 << 20).lines_with_hits;
        pos = end;
    }
    hits
}

fn memchr_next_line(buf: &[u8], at: usize) -> usize {
    buf[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(buf.len(), |i| at + i + 1)
}

fn swap(c: &mut Criterion) {
    let w = generate(&WorkloadSpec::scan(5, 100_000, 100_000));
    let set = indicator_set(&w.indicators);
    let cell = Arc::new(SnapshotCell::new(Snapshot::build(set.clone(), 1)));
    let mut g = c.benchmark_group("swap");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(w.lines.len() as u64));
    g.bench_function("scan_no_swaps", |b| b.iter(|| scan_chunks(&cell, &w.lines)));

    for (name, every) in [
        ("scan_while_swapping_every_1s", 1000),
        ("scan_while_swapping_every_10ms", 10),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (cell, stop, set) = (cell.clone(), stop.clone(), set.clone());
            std::thread::spawn(move || {
                let mut v = 2;
                let mut next = Some(Snapshot::build(set.clone(), v));
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(every));
                    cell.swap(next.take().expect("prepared"));
                    v += 1;
                    next = Some(Snapshot::build(set.clone(), v));
                }
            })
        };
        g.bench_function(name, |b| b.iter(|| scan_chunks(&cell, &w.lines)));
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
    }
    g.finish();
}

/// An incremental refresh of 100 attributes (50 changed, 50 added) over a compiled base: finding the base entries,
/// laying out the overlay and swapping it in with its change report. `IOCMATCH_OVERLAY_BASE` sets the base size
/// (default 1M; the README quotes 10M).
fn overlay(c: &mut Criterion) {
    use iocmatch::indicator::{Indicator, IndicatorSet, Provenance, Value};
    let n: usize = std::env::var("IOCMATCH_OVERLAY_BASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dom = |s: String| Indicator {
        value: Value::Domain(s.into()),
        provenance: Provenance::default(),
        merged: 0,
    };
    let base: IndicatorSet = (0..n).map(|i| dom(format!("d{i}.bulk.example"))).collect();
    let cell = SnapshotCell::new(Snapshot::build(base, 1));
    let base = cell.load().base().clone();
    let changed: Vec<Value> = (0..50)
        .map(|i| Value::Domain(format!("d{}.bulk.example", i * 7919 % n).into()))
        .collect();
    let mut g = c.benchmark_group("overlay");
    g.sample_size(20);
    let mut v = 2;
    g.bench_function(format!("refresh_100_over_{n}"), |b| {
        b.iter(|| {
            let masked: Vec<u32> = changed.iter().filter_map(|x| base.find(x)).collect();
            let adds: IndicatorSet = changed
                .iter()
                .cloned()
                .map(|value| Indicator {
                    value,
                    provenance: Provenance::default(),
                    merged: 1,
                })
                .chain((0..50).map(|i| dom(format!("new{i}.fresh.example"))))
                .collect();
            v += 1;
            cell.swap(Snapshot::with_overlay(base.clone(), adds, &masked, v))
        })
    });
    g.finish();
}

criterion_group!(benches, swap, overlay);
criterion_main!(benches);
