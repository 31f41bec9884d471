//! The `iocmatch` command line: thin wiring of the library's loaders, snapshot, scanner and sinks.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: loading examines attributes on every core and frees them on one, and glibc's
/// per-thread arenas spent a third of a 1M-indicator load consolidating those cross-thread frees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (the same index in mimalloc 2 and 3; the crate exports no name for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS after 1 s instead of mimalloc's 10 ms: a load frees and reallocates its
/// per-line temporaries batch after batch, and returning them at once made page zeroing a fifth of a 10M load. The
/// phases call `iocmatch::memory::release_freed` where they end, so the peak stays that of the larger phase.
fn purge_freed_memory_after_a_second() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return; // the operator's setting, which mimalloc read at start
    }
    // SAFETY: sets a process-wide allocator option; mimalloc reads it on every purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

#[derive(Parser, Debug)]
#[command(
    name = "iocmatch",
    version,
    about = "Match log lines against MISP indicators of compromise"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan files or stdin like grep and print each line with a hit as ECS JSON.
    Scan(cmd::scan::ScanArgs),
    /// Load indicators and report what loaded, what was rejected and why, and what was merged.
    Check(cmd::check::CheckArgs),
    /// Validate and compile indicators once into a snapshot file that `scan`, `check`, `export` and `run` map.
    Compile(cmd::compile::CompileArgs),
    /// Run as a Kafka pipeline component: consume log lines, score them, produce hits, commit after acknowledgement.
    Run(cmd::run::RunArgs),
    /// Pull indicators once from the config's sources, write the last-good cache and print a summary.
    Fetch(cmd::fetch::FetchArgs),
    /// Write the validated indicators in a native format: Zeek intel, Suricata datasets, nftables, ipset, RPZ, CSV, JSON lines.
    Export(cmd::export::ExportArgs),
    /// Size a deployment: build time, memory and lines/s for N generated indicators, beside grep and ripgrep.
    Bench(cmd::bench::BenchArgs),
}

/// Services log at info (API calls, swaps, commits); the grep-like tools only warn, keeping stderr quiet.
///
/// Colour only for a person at a terminal: a pipe, a file or a log collector gets plain text, and so does anyone who
/// set `NO_COLOR` (no-color.org: present and not empty). JSON logs never carry colour codes.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IOCMATCH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},librdkafka=warn,rdkafka=warn"))
    });
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colour = matches!(format, LogFormat::Text) && !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The error and its causes on one line, each cause once: library errors often name their source in their own
/// message already, and repeating it ("No such file or directory: No such file or directory") helps no one.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Whether this CPU lacks POPCNT, which an x86-64 build assumes (`.cargo/config.toml`): the scan would die of an
/// illegal instruction on its first line, so the binary says so before it starts. CPUID is asked directly, as
/// `is_x86_feature_detected!` answers from the build's own flags for a feature enabled at build time.
#[cfg(all(target_arch = "x86_64", target_feature = "popcnt"))]
fn cpu_lacks_popcnt() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 1 exists on every x86-64 CPU.
    let ecx = unsafe { std::arch::x86_64::__cpuid(1) }.ecx;
    ecx >> 23 & 1 == 0
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "popcnt")))]
fn cpu_lacks_popcnt() -> bool {
    false
}

fn main() -> ExitCode {
    if cpu_lacks_popcnt() {
        eprintln!(
            "iocmatch: this build assumes a CPU with POPCNT (x86-64-v2) and this one has none; \
             rebuild with RUSTFLAGS=\"\" cargo build --release"
        );
        return ExitCode::from(2);
    }
    purge_freed_memory_after_a_second();
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Run(_) | Command::Fetch(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, level);
    let result = match cli.command {
        Command::Scan(a) => cmd::scan::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Compile(a) => cmd::compile::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Fetch(a) => cmd::fetch::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Export(a) => cmd::export::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iocmatch: error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}
