//! Snapshot build and scan throughput at 10k, 100k and 1M generated indicators, per log format and per indicator
//! type, and load throughput per MISP format. Run with `cargo bench --bench build_and_scan`; the README's performance
//! table cites these groups.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iocmatch::bench::{generate, indicator_set, misp_attributes, WorkloadSpec};
use iocmatch::load::Loader;
use iocmatch::scan::scan_buffer;
use iocmatch::Policy;
use iocmatch::Snapshot;
use std::time::Duration;

const SIZES: &[(usize, &str)] = &[(10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")];

fn scan_all(snap: &Snapshot, buf: &[u8]) -> u64 {
    scan_buffer(snap, buf, 1 << 20).lines_with_hits
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for &(n, name) in SIZES {
        let w = generate(&WorkloadSpec::indicators_only(1, n));
        let set = indicator_set(&w.indicators);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(name, |b| {
            b.iter_batched(|| set.clone(), |s| Snapshot::build(s, 1), BatchSize::LargeInput)
        });
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for &(n, name) in SIZES {
        let w = generate(&WorkloadSpec::scan(1, n, 100_000));
        let snap = w.snapshot();
        g.throughput(Throughput::Bytes(w.lines.len() as u64));
        g.bench_function(name, |b| b.iter(|| scan_all(&snap, &w.lines)));
    }
    g.finish();
}

/// Load and validation throughput per MISP format, 100k generated indicators: a restSearch answer (split and parsed
/// on every core), an event export (read into fields) and a plain list.
fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let w = generate(&WorkloadSpec::indicators_only(1, 100_000));
    let attrs = misp_attributes(&w.indicators);
    let plain: String = w.indicators.iter().map(|i| format!("{}\n", i.value)).collect();
    let docs = [
        (
            "restsearch",
            serde_json::json!({ "response": { "Attribute": attrs } }).to_string(),
        ),
        (
            "event",
            serde_json::json!({ "Event": { "id": "1", "info": "bench", "Attribute": attrs } }).to_string(),
        ),
        ("plain", plain),
    ];
    for (name, doc) in &docs {
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut l = Loader::new(Policy::default());
                l.load_bytes("bench", doc.as_bytes()).expect("generated documents load");
                l.finish().0.len()
            })
        });
    }
    g.finish();
}

/// Selects the lines of one log format.
type LinePicker = fn(&str) -> bool;

/// Scan cost per log format: the same 100k indicators, lines of one format at a time (selected by a marker each
/// format's lines carry).
fn scan_per_format(c: &mut Criterion) {
    let w = generate(&WorkloadSpec::scan(3, 100_000, 200_000));
    let snap = w.snapshot();
    let text = String::from_utf8(w.lines).unwrap();
    let formats: [(&str, LinePicker); 6] = [
        ("apache", |l| l.contains("HTTP/1.1\"")),
        ("zeek_dns", |l| l.contains("\tC_INTERNET\t")),
        ("suricata_eve", |l| l.starts_with("{\"timestamp\"")),
        ("sysmon", |l| l.starts_with("{\"EventID\"")),
        ("syslog", |l| l.contains("postfix/smtpd")),
        ("firewall_csv", |l| l.contains(",fw01,")),
    ];
    let mut g = c.benchmark_group("scan_format");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, pick) in formats {
        let buf: String = text.lines().filter(|l| pick(l)).flat_map(|l| [l, "\n"]).collect();
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(name, |b| b.iter(|| scan_all(&snap, buf.as_bytes())));
    }
    g.finish();
}

/// Scan cost per indicator type: a snapshot holding only one type, over the same mixed lines.
fn scan_per_type(c: &mut Criterion) {
    let w = generate(&WorkloadSpec::scan(4, 100_000, 100_000));
    let mut g = c.benchmark_group("scan_type");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(w.lines.len() as u64));
    for t in ["domain", "ip-dst", "url", "md5", "sha256", "email-src"] {
        let only: Vec<_> = w.indicators.iter().filter(|i| i.misp_type == t).cloned().collect();
        let snap = Snapshot::build(indicator_set(&only), 1);
        g.bench_function(t, |b| b.iter(|| scan_all(&snap, &w.lines)));
    }
    g.finish();
}

criterion_group!(benches, build, scan, scan_per_format, scan_per_type, load);
criterion_main!(benches);
