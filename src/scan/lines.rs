//! Splitting a buffer of whole lines into lines, with the line length cap applied.

use super::{scan_line, Hit};
use crate::indicator::Kind;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;

/// Counters for `--stats` and metrics; summed across chunks and threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub lines: u64,
    pub bytes: u64,
    pub lines_with_hits: u64,
    pub truncated_lines: u64,
    pub hits: BTreeMap<Kind, u64>,
}

impl ScanStats {
    pub fn merge(&mut self, o: &ScanStats) {
        self.lines += o.lines;
        self.bytes += o.bytes;
        self.lines_with_hits += o.lines_with_hits;
        self.truncated_lines += o.truncated_lines;
        for (k, v) in &o.hits {
            *self.hits.entry(*k).or_default() += v;
        }
    }

    pub fn total_hits(&self) -> u64 {
        self.hits.values().sum()
    }
}

/// Scans every line of `buf` (whole lines; the last may lack its `\n`) and calls `on_hit` for each line with hits,
/// with the line's offset in `buf`, its text (no `\n`, no `\r`) and the hits. Lines longer than `max_line` are
/// scanned up to that length and counted as truncated.
pub fn for_each_line(
    snap: &Snapshot,
    buf: &[u8],
    max_line: usize,
    stats: &mut ScanStats,
    mut on_hit: impl FnMut(usize, &[u8], &[Hit]),
) {
    let mut hits = Vec::with_capacity(8);
    let mut pos = 0;
    stats.bytes += buf.len() as u64;
    while pos < buf.len() {
        let end = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i);
        let mut line = &buf[pos..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.len() > max_line {
            line = &line[..max_line];
            stats.truncated_lines += 1;
        }
        stats.lines += 1;
        scan_line(snap, line, &mut hits);
        if !hits.is_empty() {
            stats.lines_with_hits += 1;
            for h in &hits {
                *stats.hits.entry(snap.indicator(h.indicator).value.kind()).or_default() += 1;
            }
            on_hit(pos, line, &hits);
        }
        pos = end + 1;
    }
}

/// Scans a whole buffer of lines and returns only the counts: what benchmarks and sizing runs need.
pub fn scan_buffer(snap: &Snapshot, buf: &[u8], max_line: usize) -> ScanStats {
    let mut stats = ScanStats::default();
    for_each_line(snap, buf, max_line, &mut stats, |_, _, _| {});
    stats
}
