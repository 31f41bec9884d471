//! Sizing support, beside the data flow rather than in it: the deterministic workload generator and the scan
//! measurements that `iocmatch bench`, `benches/` and the workload tests share. Nothing on the matching path uses it.

mod workload;

pub use workload::{generate, indicator_set, indicators, misp_attributes, GenIndicator, Workload, WorkloadSpec};

use crate::scan::{scan_buffer, ScanStats};
use crate::Snapshot;
use std::time::Instant;

impl WorkloadSpec {
    /// `lines` log lines with 1% planted hits over `indicators` indicators: the shape every scan benchmark uses.
    pub fn scan(seed: u64, indicators: usize, lines: usize) -> Self {
        WorkloadSpec {
            seed,
            indicators,
            lines,
            hit_rate: 0.01,
        }
    }

    /// Indicators only, for build benchmarks.
    pub fn indicators_only(seed: u64, indicators: usize) -> Self {
        WorkloadSpec {
            seed,
            indicators,
            lines: 0,
            hit_rate: 0.0,
        }
    }

    /// The same workload with another fraction of planted hits.
    pub fn with_hit_rate(self, hit_rate: f64) -> Self {
        WorkloadSpec { hit_rate, ..self }
    }
}

/// Splits a buffer into `n` pieces on line boundaries, one per scanning thread.
pub fn split_lines(buf: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..=n {
        let mut end = if i == n {
            buf.len()
        } else {
            (buf.len() * i / n).max(start)
        };
        if end < buf.len() {
            end = memchr::memchr(b'\n', &buf[end..]).map_or(buf.len(), |j| end + j + 1);
        }
        out.push(&buf[start..end]);
        start = end;
    }
    out
}

/// Scans `buf` on `threads` threads, one line-aligned piece each, and sums their counts.
pub fn scan_threads(snap: &Snapshot, buf: &[u8], threads: usize) -> ScanStats {
    let parts = split_lines(buf, threads);
    let mut total = ScanStats::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|p| s.spawn(move || scan_buffer(snap, p, 1 << 20)))
            .collect();
        for h in handles {
            total.merge(&h.join().expect("scan thread"));
        }
    });
    total
}

/// The best wall time of `repeat` scans, in seconds, with the counts of the last.
pub fn best_scan(snap: &Snapshot, buf: &[u8], threads: usize, repeat: usize) -> (f64, ScanStats) {
    let mut best = f64::MAX;
    let mut stats = ScanStats::default();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        stats = scan_threads(snap, buf, threads);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, stats)
}

/// The literal text of an indicator, as a literal-only tool (grep -F, rg -F) is given it; `None` for networks.
pub fn literal(g: &GenIndicator) -> Option<String> {
    match g.misp_type {
        "url" => Some(g.value.trim_start_matches("http://").to_string()),
        "ip-dst" if g.value.contains('/') => None,
        _ => Some(g.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn split_lines_keeps_every_byte_on_line_boundaries() {
        let buf = b"a\nbb\nccc\ndddd\ne";
        let parts = split_lines(buf, 3);
        assert_eq!(parts.concat(), buf);
        assert!(parts[..2].iter().all(|p| p.is_empty() || p.ends_with(b"\n")));
    }
}
