//! `iocmatch scan`: a grep-like filter. Regular files are mapped and split into large line-aligned pieces in place;
//! stdin, pipes and gzip are read into chunks of the same kind. Pieces are scanned on every core and written in
//! input order.

use super::IocArgs;
use anyhow::{Context, Result};
use iocmatch::scan::field::{last_header, TsvFields};
use iocmatch::scan::{FieldFilter, FieldHit, LineScanner, ScanStats, Sink};
use iocmatch::sink::{ecs, OutputFormat};
use iocmatch::source::{open_input, spans, Batch, ChunkReader, MappedFile, ReadAhead, Span};
use iocmatch::Snapshot;
use rayon::prelude::*;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub iocs: IocArgs,
    /// Files to scan (plain or gzip); stdin when none is given or for `-`.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// What to print for each line with a hit.
    #[arg(long, value_enum, default_value = "json")]
    pub output: OutputFormat,
    /// Scanning threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Lines longer than this are scanned up to this length and counted.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Read files into buffers instead of mapping them (as for stdin and gzip): for filesystems where mapping
    /// misbehaves.
    #[arg(long)]
    pub no_mmap: bool,
    /// Print lines, bytes, hits per type and MB/s to stderr at the end.
    #[arg(long)]
    pub stats: bool,
    /// Only hits in these fields count (globs on the dotted path: `dns.rrname`, `*_ip`, `id.resp_h`). A line with
    /// no known field (not JSON, Zeek TSV or key=value) still counts unless --fields-strict.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    pub fields: Vec<String>,
    /// With --fields: hits in lines without a known field do not count either.
    #[arg(long, requires = "fields")]
    pub fields_strict: bool,
    /// `--fields` compiled, set by `run`.
    #[arg(skip)]
    pub filter: Option<FieldFilter>,
}

const CHUNK_BYTES: usize = 1 << 20;

pub fn run(mut args: ScanArgs) -> Result<ExitCode> {
    if !args.fields.is_empty() {
        args.filter = Some(FieldFilter::new(&args.fields, args.fields_strict).map_err(anyhow::Error::msg)?);
    }
    let (snap, load_stats) = args.iocs.snapshot()?;
    for w in &load_stats.warnings {
        tracing::warn!("{w}");
    }
    let rejected = load_stats.total_rejected();
    if rejected > 0 {
        tracing::warn!(
            rejected,
            "some indicators were rejected; run `iocmatch check` for the reasons"
        );
    }
    tracing::info!(
        indicators = snap.len(),
        build_ms = snap.build_duration().as_millis() as u64,
        "snapshot built"
    );

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("starting scan threads")?;
    let inputs = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let progress = progress_bar(&inputs);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut total = ScanStats::default();
    let mut had_error = false;
    let started = Instant::now();
    for path in &inputs {
        let _span = tracing::info_span!("input", path = %path.display()).entered();
        match scan_input(&snap, path, &args, &pool, &mut out, &mut total, progress.as_ref()) {
            Ok(()) => {}
            Err(InputError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(exit_code(&total, false)),
            Err(InputError::Output(e)) => return Err(e).context("writing output"),
            Err(InputError::Input(msg)) => {
                eprintln!("iocmatch: {msg}");
                had_error = true;
            }
        }
    }
    if args.output == OutputFormat::Count {
        writeln!(out, "{}", total.lines_with_hits).ok();
    }
    if let Err(e) = out.flush() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing output");
        }
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    if args.stats {
        print_stats(&total, started.elapsed().as_secs_f64());
    }
    Ok(exit_code(&total, had_error))
}

fn exit_code(total: &ScanStats, had_error: bool) -> ExitCode {
    if had_error {
        ExitCode::from(2)
    } else if total.lines_with_hits > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

enum InputError {
    Input(String),
    Output(io::Error),
}

fn scan_input(
    snap: &Snapshot,
    path: &Path,
    args: &ScanArgs,
    pool: &rayon::ThreadPool,
    out: &mut impl Write,
    total: &mut ScanStats,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(), InputError> {
    let name = if path.as_os_str() == "-" {
        "(standard input)".to_string()
    } else {
        path.display().to_string()
    };
    let file_path = (path.as_os_str() != "-").then(|| path.display().to_string());
    let mut input = Input {
        snap,
        args,
        pool,
        path: file_path.as_deref(),
        tsv: None,
        out,
        total,
        progress,
    };
    if !args.no_mmap && path.as_os_str() != "-" {
        match MappedFile::open(path) {
            Ok(Some(map)) => return input.mapped(&map, path, &name),
            Ok(None) => {}
            Err(e) => return Err(InputError::Input(format!("{name}: {e}"))),
        }
    }
    let reader = open_input(path).map_err(|e| InputError::Input(format!("{name}: {e}")))?;
    let chunks = ChunkReader::new(reader, CHUNK_BYTES, args.max_line_bytes);
    // The next batch is read while this one is scanned.
    let mut ahead = ReadAhead::spawn(chunks, input.batch_len(), name.clone())
        .map_err(|e| InputError::Input(format!("{name}: {e}")))?;
    loop {
        let Some(Batch { chunks: batch, error }) = ahead.next_batch() else {
            return Ok(());
        };
        let read_error = error.map(|(at, e)| format!("{name}: read error after byte {at}: {e}"));
        let pieces: Vec<Piece> = batch
            .iter()
            .map(|c| Piece {
                data: &c.data,
                offset: c.offset,
                truncated: c.truncated,
                fields_header: c.fields_header.as_ref(),
            })
            .collect();
        input.scan(&pieces)?;
        for c in batch {
            ahead.recycle(c.data);
        }
        if let Some(msg) = read_error {
            return Err(InputError::Input(msg));
        }
    }
}

/// What the paging helper of a mapped scan does next: map a batch's pages in, or let a scanned batch's go.
enum Paging {
    In(std::ops::Range<usize>),
    Out(std::ops::Range<usize>),
}

/// A run of whole lines to scan: a chunk read into a buffer, or a span of a mapped file.
struct Piece<'a> {
    data: &'a [u8],
    /// Byte offset of `data[0]` in the input.
    offset: u64,
    /// Lines cut at the cap before they got here.
    truncated: u64,
    /// The piece's last Zeek `#fields` header, when it has one.
    fields_header: Option<&'a TsvFields>,
}

/// One input being scanned: where its pieces go, and the Zeek columns in effect so far.
struct Input<'a, W> {
    snap: &'a Snapshot,
    args: &'a ScanArgs,
    pool: &'a rayon::ThreadPool,
    path: Option<&'a str>,
    tsv: Option<TsvFields>,
    out: &'a mut W,
    total: &'a mut ScanStats,
    progress: Option<&'a indicatif::ProgressBar>,
}

impl<W: Write> Input<'_, W> {
    /// Pieces scanned at once: two per thread, so a thread with a slow piece does not hold the others up.
    fn batch_len(&self) -> usize {
        self.pool.current_num_threads() * 2
    }

    /// A mapped file, split into pieces in place; each batch's pages are let go once scanned. When the scanning
    /// threads leave a core free, a helper thread on it maps each batch's pages in while the batch before it is
    /// scanned and lets them go after: the page faults and unmapping (about 7% of a scanning thread's samples) are
    /// then off the scanning threads. With every core scanning, the helper only took time from them.
    fn mapped(&mut self, map: &MappedFile, file: &Path, name: &str) -> Result<(), InputError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.pool.current_num_threads() >= cores {
            self.mapped_batches(map, &mut |p| {
                if let Paging::Out(r) = p {
                    map.release(r)
                }
            })?;
        } else {
            self.mapped_with_helper(map, file, name)?;
        }
        if map.shrank() {
            let now = std::fs::metadata(file).map_or_else(|e| e.to_string(), |m| format!("{} bytes", m.len()));
            return Err(InputError::Input(format!(
                "{name}: the file was cut short while it was scanned ({} bytes when opened, now {now}); what was \
                 past its new end was not scanned",
                map.bytes().len()
            )));
        }
        Ok(())
    }

    /// [`Self::mapped`] with the paging on a helper thread.
    fn mapped_with_helper(&mut self, map: &MappedFile, file: &Path, name: &str) -> Result<(), InputError> {
        std::thread::scope(|s| {
            let (paging, todo) = std::sync::mpsc::channel::<Paging>();
            std::thread::Builder::new()
                .name("iocmatch-paging".into())
                .spawn_scoped(s, move || {
                    let _span = tracing::debug_span!("paging", file = %file.display()).entered();
                    for p in todo {
                        match p {
                            Paging::In(r) => map.populate(r),
                            Paging::Out(r) => map.release(r),
                        }
                    }
                })
                .map_err(|e| InputError::Input(format!("{name}: {e}")))?;
            // A send fails only if the helper is gone, and then the pages fault in and stay: nothing is lost.
            self.mapped_batches(map, &mut |p| {
                let _ = paging.send(p);
            })
        })
    }

    /// The batches of [`Self::mapped`]: `paging` is told to map each one's pages in before the one before it is
    /// scanned, and to let them go once it is scanned.
    fn mapped_batches(&mut self, map: &MappedFile, paging: &mut dyn FnMut(Paging)) -> Result<(), InputError> {
        let bytes = map.bytes();
        // Only sinks that attribute fields (or a field filter) need the Zeek headers: a count does not look.
        let headers = self.args.output != OutputFormat::Count || self.args.filter.is_some();
        let mut spans = spans(bytes, CHUNK_BYTES, self.args.max_line_bytes);
        let range = |b: &[Span]| Some(b.first()?.range.start..b.last()?.range.end);
        let mut next: Vec<Span> = spans.by_ref().take(self.batch_len()).collect();
        loop {
            let batch = std::mem::replace(&mut next, spans.by_ref().take(self.batch_len()).collect());
            let Some(scanned) = range(&batch) else {
                return Ok(());
            };
            if let Some(r) = range(&next) {
                paging(Paging::In(r));
            }
            let found: Vec<Option<TsvFields>> = batch
                .iter()
                .map(|s| headers.then(|| last_header(&bytes[s.range.clone()])).flatten())
                .collect();
            let pieces: Vec<Piece> = batch
                .iter()
                .zip(&found)
                .map(|(s, h)| Piece {
                    data: &bytes[s.range.clone()],
                    offset: s.range.start as u64,
                    truncated: s.truncated,
                    fields_header: h.as_ref(),
                })
                .collect();
            self.scan(&pieces)?;
            paging(Paging::Out(scanned));
        }
    }

    /// Scans a batch of pieces in parallel and writes their output in input order.
    fn scan(&mut self, pieces: &[Piece]) -> Result<(), InputError> {
        // The Zeek `#fields` header in effect at the start of each piece, in input order.
        let headers: Vec<Option<TsvFields>> = pieces
            .iter()
            .map(|p| {
                let at_start = self.tsv.clone();
                if let Some(h) = p.fields_header {
                    self.tsv = Some(h.clone());
                }
                at_start
            })
            .collect();
        let (snap, args, path) = (self.snap, self.args, self.path);
        let one = |(p, h): (&Piece, Option<TsvFields>)| scan_piece(snap, p, args, h, path);
        // One scanning thread scans on this one: handing every batch to a pool thread and waiting for it left
        // neither running for about a sixth of the time (the wake-up of a parked thread, twice a batch).
        let results: Vec<(Vec<u8>, ScanStats)> = if self.pool.current_num_threads() == 1 {
            pieces.iter().zip(headers).map(one).collect()
        } else {
            self.pool.install(|| pieces.par_iter().zip(headers).map(one).collect())
        };
        for (bytes, stats) in &results {
            self.out.write_all(bytes).map_err(InputError::Output)?;
            self.total.merge(stats);
        }
        if let Some(p) = self.progress {
            p.inc(pieces.iter().map(|c| c.data.len() as u64).sum());
        }
        Ok(())
    }
}

/// Writes each line with hits as `scan --output` says, into the piece's output buffer (kept in input order).
struct OutputSink<'a> {
    out: Vec<u8>,
    format: OutputFormat,
    piece_offset: u64,
    path: Option<&'a str>,
}

impl Sink for OutputSink<'_> {
    fn matched(&mut self, snap: &Snapshot, offset: usize, line: &[u8], hits: &[FieldHit]) {
        match self.format {
            OutputFormat::Json => {
                let now = std::time::SystemTime::now();
                let doc = ecs::hit_document(snap, line, self.piece_offset + offset as u64, self.path, hits, now);
                serde_json::to_writer(&mut self.out, &doc).expect("JSON to a Vec cannot fail");
                self.out.push(b'\n');
            }
            OutputFormat::Lines => {
                self.out.extend_from_slice(line);
                self.out.push(b'\n');
            }
            OutputFormat::Count => {}
        }
    }
}

fn scan_piece(
    snap: &Snapshot,
    piece: &Piece,
    args: &ScanArgs,
    tsv: Option<TsvFields>,
    path: Option<&str>,
) -> (Vec<u8>, ScanStats) {
    let mut sink = OutputSink {
        out: Vec::new(),
        format: args.output,
        piece_offset: piece.offset,
        path,
    };
    let mut scanner = LineScanner::new(args.max_line_bytes).with_filter(args.filter.clone());
    if args.output == OutputFormat::Count {
        scanner = scanner.without_fields();
    }
    scanner.set_tsv(tsv);
    scanner.stats.truncated_lines = piece.truncated;
    scanner.buffer(snap, piece.data, &mut sink);
    (sink.out, scanner.stats)
}

fn progress_bar(inputs: &[PathBuf]) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() || inputs.iter().any(|p| p.as_os_str() == "-") {
        return None;
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn print_stats(total: &ScanStats, secs: f64) {
    let mb = total.bytes as f64 / 1e6;
    eprintln!(
        "lines: {}  bytes: {}  lines with hits: {}  truncated lines: {}  elapsed: {:.3}s  {:.1} MB/s",
        total.lines,
        total.bytes,
        total.lines_with_hits,
        total.truncated_lines,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 }
    );
    for (k, n) in &total.hits {
        eprintln!("hits {}: {n}", k.as_str());
    }
}
