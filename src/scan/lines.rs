//! The one scan loop: lines in, hits pushed into a [`Sink`]. `scan` (stdout), `run` (Kafka) and `bench` (counts)
//! all go through [`LineScanner`], so the line cap, the counting and the call into the matcher live here only.

use super::field::{self, FieldFilter, FieldHit, TsvFields};
use super::line::scan_classified;
use super::{scan_line_with, Hit, Scratch};
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

/// Where lines with hits go: the stdout printer, the Kafka producer, or nothing when only counts matter. The scan
/// loop pushes into it, as ripgrep's searcher pushes into its `Sink`, so every output shares one loop.
pub trait Sink {
    /// A line with hits, each with the field it is in (one entry per indicator and field); `offset` is the line's
    /// byte offset in the buffer scanned, `line` is without `\n`/`\r`.
    fn matched(&mut self, snap: &Snapshot, offset: usize, line: &[u8], hits: &[FieldHit]);
}

/// Any closure over the same arguments is a sink.
impl<F: FnMut(&Snapshot, usize, &[u8], &[FieldHit])> Sink for F {
    fn matched(&mut self, snap: &Snapshot, offset: usize, line: &[u8], hits: &[FieldHit]) {
        self(snap, offset, line, hits)
    }
}

/// A sink that keeps nothing: for counts.
pub struct Discard;

impl Sink for Discard {
    fn matched(&mut self, _: &Snapshot, _: usize, _: &[u8], _: &[FieldHit]) {}
}

/// Scans lines into a sink and counts them. Kept per thread (or per Kafka worker) and reused, so scanning
/// allocates nothing per line. The snapshot is passed per call: a Kafka worker takes the current one per message.
#[derive(Debug)]
pub struct LineScanner {
    max_line: usize,
    hits: Vec<Hit>,
    scratch: Scratch,
    /// The Zeek `#fields` header in effect for the lines being scanned.
    tsv: Option<TsvFields>,
    filter: Option<FieldFilter>,
    /// Whether sinks want fields (a counting scan needs none, unless a filter needs them).
    attribute: bool,
    /// Everything counted so far.
    pub stats: ScanStats,
}

impl LineScanner {
    /// Lines longer than `max_line` are scanned up to that length and counted as truncated.
    pub fn new(max_line: usize) -> Self {
        LineScanner {
            max_line,
            hits: Vec::with_capacity(8),
            scratch: Scratch::new(),
            tsv: None,
            filter: None,
            attribute: true,
            stats: ScanStats::default(),
        }
    }

    /// Counts only hits in fields the filter keeps.
    pub fn with_filter(mut self, filter: Option<FieldFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// Classifies with a given path: for tests that hold every path to the same hits.
    pub fn with_path(mut self, path: super::classify::Path) -> Self {
        self.scratch = Scratch::with_path(path);
        self
    }

    /// Skips field attribution when no sink needs it (counting), unless a filter does.
    pub fn without_fields(mut self) -> Self {
        self.attribute = false;
        self
    }

    /// The Zeek columns in effect (a `#fields` line scanned replaces them).
    pub fn set_tsv(&mut self, tsv: Option<TsvFields>) {
        self.tsv = tsv;
    }

    pub fn tsv(&self) -> Option<&TsvFields> {
        self.tsv.as_ref()
    }

    /// Scans one line (a trailing `\n` or `\r\n` is not part of it). Returns whether it had hits.
    pub fn line(&mut self, snap: &Snapshot, offset: usize, line: &[u8], sink: &mut impl Sink) -> bool {
        let line = self.admit(line);
        scan_line_with(snap, line, &mut self.scratch, &mut self.hits);
        self.report(snap, offset, line, sink)
    }

    /// The line as scanned: without its line ends, cut at the cap (counted), and counted; a Zeek `#fields` header
    /// takes effect from here.
    #[inline]
    fn admit<'b>(&mut self, mut line: &'b [u8]) -> &'b [u8] {
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        if line.len() > self.max_line {
            line = &line[..self.max_line];
            self.stats.truncated_lines += 1;
        }
        self.stats.lines += 1;
        if line.starts_with(b"#fields\t") {
            self.tsv = field::tsv_header(line);
        }
        line
    }

    /// Attributes, filters and counts the hits of the line just scanned, and hands it to the sink.
    #[inline]
    fn report(&mut self, snap: &Snapshot, offset: usize, line: &[u8], sink: &mut impl Sink) -> bool {
        if self.hits.is_empty() {
            return false;
        }
        let mut hits = if self.attribute || self.filter.is_some() {
            field::attribute(snap, line, &self.hits, self.tsv.as_ref(), &mut self.scratch)
        } else {
            field::unattributed(&self.hits)
        };
        if let Some(f) = &self.filter {
            hits.retain(|h| f.keeps(h.field.as_deref()));
            if hits.is_empty() {
                return false;
            }
        }
        self.stats.lines_with_hits += 1;
        for (i, h) in hits.iter().enumerate() {
            if hits[..i].iter().all(|o| o.hit.indicator != h.hit.indicator) {
                *self
                    .stats
                    .hits
                    .entry(snap.indicator(h.hit.indicator).value.kind())
                    .or_default() += 1;
            }
        }
        sink.matched(snap, offset, line, &hits);
        true
    }

    /// Scans every line of `buf` (whole lines; the last may lack its `\n`). Each line is classified as its end is
    /// looked for, in one pass over its bytes.
    pub fn buffer(&mut self, snap: &Snapshot, buf: &[u8], sink: &mut impl Sink) {
        self.stats.bytes += buf.len() as u64;
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let raw = self.scratch.classify_line(rest);
            let line = self.admit(&rest[..raw]);
            if line.len() < raw {
                self.scratch.truncate(line.len());
            }
            scan_classified(snap, line, &mut self.scratch, &mut self.hits);
            self.report(snap, pos, line, sink);
            pos += raw + 1;
        }
    }
}

/// Scans a whole buffer of lines and returns only the counts: what benchmarks and sizing runs need.
pub fn scan_buffer(snap: &Snapshot, buf: &[u8], max_line: usize) -> ScanStats {
    let mut scanner = LineScanner::new(max_line).without_fields();
    scanner.buffer(snap, buf, &mut Discard);
    scanner.stats
}
