//! The data-structure comparison behind the snapshot's design, for domain indicators:
//!
//! - `aho_corasick`: one automaton over all domains (contiguous NFA, ASCII case-insensitive, overlapping), the
//!   design card's first idea; boundary checks not even included;
//! - `naive_suffix_set`: tokenise host tokens, lower-case each into a `String`, look every label suffix up in a
//!   `std` `HashSet<String>`;
//! - `snapshot`: iocmatch's host table (one right-to-left hashing pass per token, a Bloom prefilter, a hashbrown
//!   table over an arena).
//!
//! Aho-Corasick at 1M domains takes ~24 s to build, so it runs at 1M only with `IOCMATCH_BENCH_AC_1M=1`.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iocmatch::bench::{generate, indicator_set, GenIndicator, WorkloadSpec};
use iocmatch::scan::scan_buffer;
use iocmatch::Snapshot;
use std::collections::HashSet;
use std::time::Duration;

fn domains(n: usize) -> (Vec<GenIndicator>, Vec<u8>) {
    let w = generate(&WorkloadSpec::scan(9, n * 2, 50_000));
    let d: Vec<GenIndicator> = w
        .indicators
        .into_iter()
        .filter(|i| i.misp_type == "domain")
        .take(n)
        .collect();
    (d, w.lines)
}

fn aho(ds: &[GenIndicator]) -> AhoCorasick {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(ds.iter().map(|d| d.value.as_str()))
        .unwrap()
}

fn naive_scan(set: &HashSet<String>, buf: &[u8]) -> usize {
    let mut hits = 0;
    for token in buf.split(|b| !(b.is_ascii_alphanumeric() || b".-_".contains(b))) {
        if !token.contains(&b'.') {
            continue;
        }
        let tok = String::from_utf8_lossy(token).to_ascii_lowercase();
        let tok = tok.trim_end_matches('.');
        let mut s = tok;
        loop {
            if set.contains(s) {
                hits += 1;
                break;
            }
            match s.find('.') {
                Some(i) => s = &s[i + 1..],
                None => break,
            }
        }
    }
    hits
}

fn compare(c: &mut Criterion) {
    let with_ac_1m = std::env::var_os("IOCMATCH_BENCH_AC_1M").is_some();
    for (n, name) in [(10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")] {
        let (ds, lines) = domains(n);
        let mut g = c.benchmark_group(format!("domains_{name}"));
        g.sample_size(10).measurement_time(Duration::from_secs(4));
        let set = indicator_set(&ds);
        g.bench_function("build/snapshot", |b| {
            b.iter_batched(|| set.clone(), |s| Snapshot::build(s, 1), BatchSize::LargeInput)
        });
        g.bench_function("build/naive_suffix_set", |b| {
            b.iter(|| ds.iter().map(|d| d.value.clone()).collect::<HashSet<String>>())
        });
        if n < 1_000_000 || with_ac_1m {
            g.bench_function("build/aho_corasick", |b| b.iter(|| aho(&ds)));
        }
        g.throughput(Throughput::Bytes(lines.len() as u64));
        let snap = Snapshot::build(set, 1);
        g.bench_function("scan/snapshot", |b| {
            b.iter(|| scan_buffer(&snap, &lines, 1 << 20).lines_with_hits)
        });
        let naive: HashSet<String> = ds.iter().map(|d| d.value.clone()).collect();
        g.bench_function("scan/naive_suffix_set", |b| b.iter(|| naive_scan(&naive, &lines)));
        if n < 1_000_000 || with_ac_1m {
            let ac = aho(&ds);
            g.bench_function("scan/aho_corasick", |b| {
                b.iter(|| ac.find_overlapping_iter(&lines[..]).count())
            });
        }
        g.finish();
    }
}

/// How to read the layout in place: typed `#[repr(C)]` slices cast with `bytemuck` (what the snapshot uses) against
/// decoding each slot field with `u32::from_le_bytes` from the raw bytes, the hand-written alternative. Both probe the
/// same 1M-key host table with the same keys (half present).
fn views(c: &mut Criterion) {
    use iocmatch::snapshot::keys::hash_key;
    use iocmatch::snapshot::layout::{KEY_EXTRAS, NONE};
    let n = 1_000_000;
    let set: iocmatch::IndicatorSet = (0..n)
        .map(|i| iocmatch::indicator::Indicator {
            value: iocmatch::indicator::Value::Domain(format!("d{i}.bulk.example").into()),
            provenance: Default::default(),
            merged: 0,
        })
        .collect();
    let snap = iocmatch::Snapshot::build(set, 1);
    let t = snap.base().host_table();
    let probes: Vec<(u64, Vec<u8>)> = (0..100_000)
        .map(|i| {
            let k = format!("d{}.bulk.example", i * 20 % (2 * n)).into_bytes();
            (hash_key(&k), k)
        })
        .collect();
    let raw: &[u8] = bytemuck::cast_slice(t.slots);
    let arena = t.arena;
    let le = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let tag = |h: u64| (h >> 32) as u32 ^ (h as u32).rotate_left(16);
    let present = probes.iter().filter(|(h, k)| t.probe(*h, k).is_some()).count();
    assert_eq!(present, probes.len() / 2, "half the probes are keys");
    let mut g = c.benchmark_group("layout_view");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("bytemuck_typed_slices", |b| {
        b.iter(|| probes.iter().filter(|(h, k)| t.probe(*h, k).is_some()).count())
    });
    g.bench_function("from_le_bytes_fields", |b| {
        b.iter(|| {
            probes
                .iter()
                .filter(|(h, k)| {
                    let mask = t.slots.len() - 1;
                    let mut i = *h as usize & mask;
                    loop {
                        let s = i * 16;
                        let key = le(raw, s + 4);
                        if key == NONE {
                            return false;
                        }
                        if le(raw, s) == tag(*h) {
                            let off = (key & !KEY_EXTRAS) as usize;
                            let len = u16::from_le_bytes([arena[off], arena[off + 1]]) as usize;
                            if arena[off + 2..off + 2 + len].eq_ignore_ascii_case(k) {
                                return true;
                            }
                        }
                        i = (i + 1) & mask;
                    }
                })
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, compare, views);
criterion_main!(benches);
