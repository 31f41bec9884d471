//! `iocmatch scan`: a grep-like filter. Regular files are mapped and split into large line-aligned pieces in place;
//! stdin, pipes and gzip are read into chunks of the same kind. Pieces are scanned on every core and written in
//! input order.

use super::IocArgs;
use anyhow::{Context, Result};
use iocmatch::scan::field::{last_header, TsvFields};
use iocmatch::scan::{FieldFilter, FieldHit, LineScanner, ScanStats, Sink};
use iocmatch::sink::{ecs, OutputFormat};
use iocmatch::source::{open_input, spans, Batch, Chunk, ChunkReader, MappedFile, ReadAhead, Span};
use iocmatch::Snapshot;
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
    let ahead = ReadAhead::spawn(chunks, input.batch_len(), name.clone())
        .map_err(|e| InputError::Input(format!("{name}: {e}")))?;
    let ahead = std::cell::RefCell::new(ahead);
    let mut batch = Vec::new().into_iter();
    let mut read_error = None;
    // A read error is reported once the chunks read before it are scanned and written.
    let pieces = std::iter::from_fn(|| loop {
        if let Some(c) = batch.next() {
            let Chunk {
                offset,
                data,
                truncated,
                fields_header,
            } = c;
            return Some(Ok(Piece {
                data,
                offset,
                truncated,
                fields_header,
            }));
        }
        if let Some(msg) = read_error.take() {
            return Some(Err(InputError::Input(msg)));
        }
        let Batch { chunks, error } = ahead.borrow_mut().next_batch()?;
        read_error = error.map(|(at, e)| format!("{name}: read error after byte {at}: {e}"));
        batch = chunks.into_iter();
    });
    input.scan(pieces, &mut |p| ahead.borrow().recycle(p.data))
}

/// What the paging helper of a mapped scan does next: map a piece's pages in, or let a scanned piece's go.
enum Paging {
    In(std::ops::Range<usize>),
    Out(std::ops::Range<usize>),
}

/// A run of whole lines to scan: a chunk read into a buffer (`D` is its `Vec`), or a span of a mapped file (a slice
/// of the map). A scanning thread holds it while it scans, and hands it back with the output.
struct Piece<D> {
    data: D,
    /// Byte offset of `data[0]` in the input.
    offset: u64,
    /// Lines cut at the cap before they got here.
    truncated: u64,
    /// The piece's last Zeek `#fields` header, when it has one.
    fields_header: Option<TsvFields>,
}

/// A scanned piece, its place in the input, and its output and counts (or the panic that stopped its scan).
type Scanned<D> = (usize, Piece<D>, std::thread::Result<(Vec<u8>, ScanStats)>);

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
    /// Pieces read or mapped ahead of the one being handed out: two per thread.
    fn batch_len(&self) -> usize {
        self.pool.current_num_threads() * 2
    }

    /// A mapped file, split into pieces in place; each piece's pages are let go once its output is written. When
    /// the scanning threads leave a core free, a helper thread on it maps each piece's pages in before it is
    /// scanned and lets them go after: the page faults and unmapping (about 7% of a scanning thread's samples) are
    /// then off the scanning threads. With every core scanning, the helper only took time from them.
    fn mapped(&mut self, map: &MappedFile, file: &Path, name: &str) -> Result<(), InputError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.pool.current_num_threads() >= cores {
            self.mapped_pieces(map, &mut |p| {
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
            self.mapped_pieces(map, &mut |p| {
                let _ = paging.send(p);
            })
        })
    }

    /// The pieces of [`Self::mapped`]: `paging` is told to map each one's pages in [`Self::batch_len`] pieces
    /// before it is handed out, and to let them go once its output is written.
    fn mapped_pieces(&mut self, map: &MappedFile, paging: &mut dyn FnMut(Paging)) -> Result<(), InputError> {
        let bytes = map.bytes();
        // Only sinks that attribute fields (or a field filter) need the Zeek headers: a count does not look.
        let headers = self.args.output != OutputFormat::Count || self.args.filter.is_some();
        let mut spans = spans(bytes, CHUNK_BYTES, self.args.max_line_bytes);
        let mut ahead: std::collections::VecDeque<Span> = spans.by_ref().take(self.batch_len()).collect();
        for s in &ahead {
            paging(Paging::In(s.range.clone()));
        }
        let paging = std::cell::RefCell::new(paging);
        let pieces = std::iter::from_fn(|| {
            let s = ahead.pop_front()?;
            if let Some(next) = spans.next() {
                (paging.borrow_mut())(Paging::In(next.range.clone()));
                ahead.push_back(next);
            }
            let data = &bytes[s.range.clone()];
            Some(Ok(Piece {
                data,
                offset: s.range.start as u64,
                truncated: s.truncated,
                fields_header: headers.then(|| last_header(data)).flatten(),
            }))
        });
        self.scan(pieces, &mut |p| {
            let start = p.offset as usize;
            (paging.borrow_mut())(Paging::Out(start..start + p.data.len()))
        })
    }

    /// Scans the pieces and writes their output in input order; `done` gets each piece back once its output is
    /// written (a buffer to recycle, pages to let go). An error from `pieces` is returned once the pieces before it
    /// are written.
    ///
    /// With one scanning thread, each piece is scanned on this thread: handing every batch to a pool thread and
    /// waiting for it left neither running for about a sixth of the time (a parked thread's wake-up, twice a
    /// batch). With more, pieces go to the pool as they come, [`WINDOW_PER_THREAD`] a thread in flight, and each
    /// is written as soon as those before it are, so no scanning thread waits for the writer or for a slow piece
    /// of a batch.
    fn scan<D: AsRef<[u8]> + Send>(
        &mut self,
        pieces: impl Iterator<Item = Result<Piece<D>, InputError>>,
        done: &mut dyn FnMut(Piece<D>),
    ) -> Result<(), InputError> {
        let (snap, args, path) = (self.snap, self.args, self.path);
        let threads = self.pool.current_num_threads();
        if threads == 1 {
            for p in pieces {
                let p = p?;
                let tsv = self.enter(&p);
                let (out, stats) = scan_piece(snap, &p, args, tsv, path);
                self.write_one(p, &out, &stats, done)?;
            }
            return Ok(());
        }
        let window = threads * WINDOW_PER_THREAD;
        self.pool.in_place_scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<Scanned<D>>();
            let mut ready = std::collections::BTreeMap::new();
            let (mut sent, mut written) = (0, 0);
            let mut failed = None;
            for p in pieces {
                let p = match p {
                    Ok(p) => p,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let tsv = self.enter(&p);
                let tx = tx.clone();
                let i = sent;
                scope.spawn(move |_| {
                    // A panic goes to the writer as a result, which raises it again: a piece that never came back
                    // would have the writer wait for it for ever.
                    let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        scan_piece(snap, &p, args, tsv, path)
                    }));
                    // The receiver is gone only when writing failed, and then the output is not wanted.
                    let _ = tx.send((i, p, scanned));
                });
                sent += 1;
                while sent - written >= window {
                    self.receive(&rx, &mut ready, &mut written, done)?;
                }
            }
            while written < sent {
                self.receive(&rx, &mut ready, &mut written, done)?;
            }
            failed.map_or(Ok(()), Err)
        })
    }

    /// The Zeek columns in effect at the start of `p`; those of its last header from then on.
    fn enter<D>(&mut self, p: &Piece<D>) -> Option<TsvFields> {
        let at_start = self.tsv.clone();
        if let Some(h) = &p.fields_header {
            self.tsv = Some(h.clone());
        }
        at_start
    }

    /// Waits for one scanned piece, then writes every piece of `ready` that is next in input order, from
    /// `*written` on.
    fn receive<D: AsRef<[u8]>>(
        &mut self,
        rx: &std::sync::mpsc::Receiver<Scanned<D>>,
        ready: &mut std::collections::BTreeMap<usize, (Piece<D>, Vec<u8>, ScanStats)>,
        written: &mut usize,
        done: &mut dyn FnMut(Piece<D>),
    ) -> Result<(), InputError> {
        // Every sender is alive until the scope ends, so this only waits.
        let (i, p, scanned) = rx.recv().expect("a scanning task sends before it ends");
        let (out, stats) = scanned.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        ready.insert(i, (p, out, stats));
        while let Some((p, out, stats)) = ready.remove(written) {
            self.write_one(p, &out, &stats, done)?;
            *written += 1;
        }
        Ok(())
    }

    /// Writes one piece's output and counts it.
    fn write_one<D: AsRef<[u8]>>(
        &mut self,
        p: Piece<D>,
        out: &[u8],
        stats: &ScanStats,
        done: &mut dyn FnMut(Piece<D>),
    ) -> Result<(), InputError> {
        self.out.write_all(out).map_err(InputError::Output)?;
        self.total.merge(stats);
        if let Some(bar) = self.progress {
            bar.inc(p.data.as_ref().len() as u64);
        }
        done(p);
        Ok(())
    }
}

/// Pieces in flight per scanning thread: enough that a thread finds the next one queued while the writer catches
/// up, few enough that the output and pages held stay a few MiB a thread.
const WINDOW_PER_THREAD: usize = 4;

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

fn scan_piece<D: AsRef<[u8]>>(
    snap: &Snapshot,
    piece: &Piece<D>,
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
    scanner.buffer(snap, piece.data.as_ref(), &mut sink);
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
