//! `iocmatch bench`: size a deployment on this hardware. For each indicator count it generates a deterministic
//! workload, builds the snapshot, and measures build time, resident memory, scan throughput on one thread and on all
//! cores, and hits found against hits planted. `--real DIR` scans the user's own log files instead of generated
//! lines. `--compare` runs `grep -F -f`, `rg -F -f` and, when the Python `hyperscan` package is installed,
//! Hyperscan (literal, caseless, block mode) on the same files and literals.

use anyhow::{bail, Context, Result};
use iocmatch::bench::{best_scan, generate, indicator_set, literal, Workload, WorkloadSpec};
use iocmatch::Snapshot;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Indicator set sizes, comma-separated, with k/M suffixes (e.g. `10k,100k,1M,10M`).
    #[arg(long, default_value = "10k,100k,1M", value_delimiter = ',')]
    pub indicators: Vec<String>,
    /// Log lines to generate (about 200 bytes each).
    #[arg(long, default_value_t = 200_000)]
    pub lines: usize,
    /// Fraction of lines with a planted hit (the same fraction again gets a look-alike).
    #[arg(long, default_value_t = 0.01)]
    pub hit_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads for the multi-core measurement (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Scan repetitions; the best run counts.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Also time `grep -F -f`, `rg -F -f` and Hyperscan (Python `hyperscan` package) on the same files and
    /// literals.
    #[arg(long)]
    pub compare: bool,
    /// grep and rg are compared only up to this many literals: rg took 7.4 GB of memory for 1M here.
    #[arg(long, default_value = "1M")]
    pub compare_max: String,
    /// Hyperscan is compared only up to this many literals: its compile time grows steeply (77 s for 1M here).
    #[arg(long, default_value = "1M")]
    pub hyperscan_max: String,
    /// Scan the log files in this directory (every regular file, in name order, `.gz` decompressed) instead of
    /// generated lines: sizing on your own logs. No hits are planted in them; hits found are reported as found.
    #[arg(long, value_name = "DIR")]
    pub real: Option<PathBuf>,
    /// Write the generated logs and indicators (MISP restSearch JSON and a plain list) here.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
    /// Print results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct Row {
    indicators: usize,
    log_bytes: usize,
    lines: usize,
    /// Parse-free validation, normalisation and dedupe of the generated attributes.
    validate_seconds: f64,
    /// Compiling the validated set into the snapshot.
    build_seconds: f64,
    /// The bytes the snapshot's layout holds: what one more snapshot costs during a swap. Exact, where a
    /// difference of RSS is not (the allocator returns the previous size's memory on its own schedule).
    snapshot_bytes: usize,
    bytes_per_indicator: f64,
    /// How much the process's RSS grew over load and build: the snapshot plus what the allocator kept; negative
    /// when it returned more of the previous size's memory meanwhile.
    rss_growth_bytes: i64,
    scan_1t_mb_s: f64,
    scan_1t_lines_s: f64,
    threads: usize,
    scan_nt_mb_s: f64,
    scan_nt_lines_s: f64,
    speedup: f64,
    hits_planted: usize,
    hits_found: u64,
    /// Scanned the user's logs (`--real`): nothing planted.
    real_logs: bool,
    compare: Vec<ToolRow>,
}

#[derive(Serialize, Debug)]
struct ToolRow {
    tool: String,
    /// Pattern compile time, for tools that report it (Hyperscan).
    compile_seconds: Option<f64>,
    seconds: f64,
    mb_s: f64,
    max_rss_bytes: i64,
    /// iocmatch's single-thread throughput divided by this tool's.
    iocmatch_speed_ratio: f64,
    note: String,
}

fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000.0),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    let n: f64 = num.parse().with_context(|| format!("bad indicator count {s:?}"))?;
    Ok((n * mul) as usize)
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let sizes: Vec<usize> = args.indicators.iter().map(|s| parse_size(s)).collect::<Result<_>>()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rows = Vec::new();
    if !args.json {
        println!(
            "iocmatch bench: {} lines, hit rate {}, seed {}, {threads} threads",
            args.lines, args.hit_rate, args.seed
        );
    }
    let real = match &args.real {
        Some(dir) => Some(read_real_logs(dir)?),
        None => None,
    };
    let hyperscan_max = parse_size(&args.hyperscan_max)?;
    let compare_max = parse_size(&args.compare_max)?;
    for n in sizes {
        let mut w = generate(&WorkloadSpec {
            seed: args.seed,
            indicators: n,
            lines: if real.is_some() { 0 } else { args.lines },
            hit_rate: args.hit_rate,
        });
        if let Some((lines, count)) = &real {
            w.lines.clone_from(lines);
            w.line_count = *count;
            w.planted = 0;
        }
        let dir = match &args.write {
            Some(d) => {
                let d = d.join(format!("n{n}"));
                write_workload(&d, &w)?;
                Some(d)
            }
            None => None,
        };
        iocmatch::memory::release_freed();
        let before = rss_bytes();
        let started = Instant::now();
        let set = indicator_set(&w.indicators);
        let validate_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let snap = Snapshot::build(set, 1);
        let build_seconds = started.elapsed().as_secs_f64();
        iocmatch::memory::release_freed();
        let resident = rss_bytes() - before;
        let snapshot_bytes = snap.index_bytes();
        let (t1, s1) = best_scan(&snap, &w.lines, 1, args.repeat);
        let (tn, _) = best_scan(&snap, &w.lines, threads, args.repeat);
        let mb = w.lines.len() as f64 / 1e6;
        let mut row = Row {
            indicators: n,
            log_bytes: w.lines.len(),
            lines: w.line_count,
            validate_seconds,
            build_seconds,
            snapshot_bytes,
            bytes_per_indicator: snapshot_bytes as f64 / n.max(1) as f64,
            rss_growth_bytes: resident,
            scan_1t_mb_s: mb / t1,
            scan_1t_lines_s: w.line_count as f64 / t1,
            threads,
            scan_nt_mb_s: mb / tn,
            scan_nt_lines_s: w.line_count as f64 / tn,
            speedup: t1 / tn,
            hits_planted: w.planted,
            hits_found: s1.lines_with_hits,
            real_logs: real.is_some(),
            compare: Vec::new(),
        };
        drop(snap);
        if args.compare {
            let skipped = |tool: &str, flag: &str, max: &str| ToolRow {
                note: format!("not run above --{flag} {max}"),
                ..ToolRow::new(tool)
            };
            let (grep_rg, hs) = (n <= compare_max, n <= hyperscan_max);
            let tmp;
            let d = match &dir {
                Some(d) => d.clone(),
                None if grep_rg || hs => {
                    tmp = tempfile::tempdir().context("creating a temporary directory")?;
                    write_workload(tmp.path(), &w)?;
                    tmp.path().to_path_buf()
                }
                None => PathBuf::new(),
            };
            for tool in ["grep", "rg"] {
                row.compare.push(match grep_rg {
                    true => run_tool(tool, &d, mb, row.scan_1t_mb_s),
                    false => skipped(tool, "compare-max", &args.compare_max),
                });
            }
            row.compare.push(match hs {
                true => run_hyperscan(&d, mb, row.scan_1t_mb_s),
                false => skipped("hyperscan", "hyperscan-max", &args.hyperscan_max),
            });
        }
        if !args.json {
            print_row(&row);
        }
        rows.push(row);
    }
    if args.json {
        serde_json::to_writer_pretty(std::io::stdout(), &rows)?;
        println!();
    } else if args.compare {
        println!(
            "\nNote: grep, rg and Hyperscan see only the literal values: no domain-suffix, token-boundary or CIDR rules, so they"
        );
        println!(
            "miss subdomains and addresses inside networks and report look-alikes that iocmatch correctly rejects."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every regular file of `dir` in name order (gzip decompressed), as one buffer of lines, and its line count.
fn read_real_logs(dir: &Path) -> Result<(Vec<u8>, usize)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut buf = Vec::new();
    for f in &files {
        let mut r = iocmatch::source::open_input(f).with_context(|| format!("opening {}", f.display()))?;
        std::io::Read::read_to_end(&mut r, &mut buf).with_context(|| format!("reading {}", f.display()))?;
        if !buf.is_empty() && !buf.ends_with(b"\n") {
            buf.push(b'\n');
        }
    }
    if buf.is_empty() {
        bail!("no log lines in {}", dir.display());
    }
    let lines = memchr::memchr_iter(b'\n', &buf).count();
    Ok((buf, lines))
}

fn print_row(r: &Row) {
    println!(
        "\n{:>10} indicators | log {:.1} MB, {} lines | validate {:.3} s, build {:.3} s | snapshot {:.1} MB ({:.0} B/indicator)",
        r.indicators,
        r.log_bytes as f64 / 1e6,
        r.lines,
        r.validate_seconds,
        r.build_seconds,
        r.snapshot_bytes as f64 / 1e6,
        r.bytes_per_indicator
    );
    println!(
        "{:>10} scan 1 thread: {:>8.1} MB/s {:>11.0} lines/s | {} threads: {:>8.1} MB/s {:>11.0} lines/s ({:.2}x) | {}",
        "",
        r.scan_1t_mb_s,
        r.scan_1t_lines_s,
        r.threads,
        r.scan_nt_mb_s,
        r.scan_nt_lines_s,
        r.speedup,
        if r.real_logs {
            format!("{} lines with hits (real logs, none planted)", r.hits_found)
        } else {
            format!("hits {}/{} planted", r.hits_found, r.hits_planted)
        }
    );
    for t in &r.compare {
        if t.seconds > 0.0 {
            let how = match t.compile_seconds {
                Some(c) => format!("(compile {c:.2} s)"),
                None => "-F -f:".to_string(),
            };
            println!(
                "{:>10} {:<4} {how} {:>8.1} MB/s in {:.2} s, max RSS {:.1} MB | iocmatch 1 thread / this = {:.1}x",
                "",
                t.tool,
                t.mb_s,
                t.seconds,
                t.max_rss_bytes as f64 / 1e6,
                t.iocmatch_speed_ratio
            );
        } else {
            println!("{:>10} {:<4}: {}", "", t.tool, t.note);
        }
    }
}

impl ToolRow {
    fn new(tool: &str) -> Self {
        ToolRow {
            tool: tool.to_string(),
            compile_seconds: None,
            seconds: 0.0,
            mb_s: 0.0,
            max_rss_bytes: 0,
            iocmatch_speed_ratio: 0.0,
            note: String::new(),
        }
    }
}

/// The Hyperscan timing script, run by the machine's `python3` (embedded, so an installed binary has it).
const HYPERSCAN_SCRIPT: &str = include_str!("../../scripts/hyperscan_scan.py");

/// Hyperscan on the same literals and logs: compile time, the best of three block-mode scans (the file read
/// into memory first, as iocmatch's bench scans from memory) and the peak RSS the script reports.
fn run_hyperscan(dir: &Path, mb: f64, ours: f64) -> ToolRow {
    let mut row = ToolRow::new("hyperscan");
    let out = Command::new("python3")
        .arg("-c")
        .arg(HYPERSCAN_SCRIPT)
        .arg(dir.join("literals.txt"))
        .arg(dir.join("logs.txt"))
        .stderr(Stdio::piped())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            row.note = format!("not run (python3: {e})");
            return row;
        }
    };
    if out.status.code() == Some(3) {
        row.note = "not available: `pip install hyperscan` to compare".into();
        return row;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    let field = |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(|v| v.as_f64());
    match (field("scan_seconds"), out.status.success()) {
        (Some(secs), true) if secs > 0.0 => {
            row.compile_seconds = field("compile_seconds");
            row.seconds = secs;
            row.mb_s = mb / secs;
            row.max_rss_bytes = field("max_rss_bytes").unwrap_or(0.0) as i64;
            row.iocmatch_speed_ratio = ours / row.mb_s;
        }
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            row.note = format!("failed: {}", err.lines().last().unwrap_or("no output"));
        }
    }
    row
}

/// Runs `tool -F -f literals.txt -c logs.txt`, measuring wall time and the child's peak RSS.
fn run_tool(tool: &str, dir: &Path, mb: f64, ours: f64) -> ToolRow {
    let mut row = ToolRow::new(tool);
    let started = Instant::now();
    let child = Command::new(tool)
        .args(["-F", "-c", "-f"])
        .arg(dir.join("literals.txt"))
        .arg(dir.join("logs.txt"))
        // Not /dev/null: GNU grep detects that and stops at the first match.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            row.note = format!("not run ({e}); install it to compare");
            return row;
        }
    };
    // Peak RSS is polled from /proc (VmHWM is per address space, so it starts afresh at exec; the rusage of a
    // forked child would count the parent's pages).
    let pid = child.id() as libc::pid_t;
    let hwm_path = format!("/proc/{pid}/status");
    let mut status = 0;
    let mut hwm_kb = 0i64;
    loop {
        if let Ok(st) = std::fs::read_to_string(&hwm_path) {
            if let Some(kb) = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
            {
                hwm_kb = hwm_kb.max(kb);
            }
        }
        // SAFETY: polls our own child, which is not waited for anywhere else.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 {
            row.note = "could not wait for the process".into();
            return row;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if code > 1 {
        row.note = format!("exited with status {code}");
        return row;
    }
    row.seconds = secs;
    row.mb_s = mb / secs;
    row.max_rss_bytes = hwm_kb * 1024;
    row.iocmatch_speed_ratio = ours / row.mb_s;
    row
}

fn write_workload(dir: &Path, w: &Workload) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("logs.txt"), &w.lines).with_context(|| format!("writing {}", dir.display()))?;
    let mut lits = std::io::BufWriter::new(std::fs::File::create(dir.join("literals.txt"))?);
    let mut plain = std::io::BufWriter::new(std::fs::File::create(dir.join("indicators.txt"))?);
    for g in &w.indicators {
        if let Some(l) = literal(g) {
            writeln!(lits, "{l}")?;
        }
        writeln!(plain, "{}", g.value)?;
    }
    lits.flush()?;
    plain.flush()?;
    let attrs = iocmatch::bench::misp_attributes(&w.indicators);
    let f = std::io::BufWriter::new(std::fs::File::create(dir.join("indicators.restsearch.json"))?);
    serde_json::to_writer(f, &serde_json::json!({ "response": { "Attribute": attrs } }))?;
    if w.indicators.is_empty() {
        bail!("no indicators generated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("10k").unwrap(), 10_000);
        assert_eq!(parse_size("1M").unwrap(), 1_000_000);
        assert_eq!(parse_size("2.5M").unwrap(), 2_500_000);
        assert!(parse_size("x").is_err());
    }
}
