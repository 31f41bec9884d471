//! `iocmatch fetch`: pull once, write the last-good cache, print a summary. For cron and air-gapped transfer.

use anyhow::{Context, Result};
use iocmatch::refresh::cache;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The config file naming the MISP server, feeds and state directory.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: FetchArgs) -> Result<ExitCode> {
    let rt = super::runtime()?;
    let mut r = super::refresher(&args.config)?;
    let started = Instant::now();
    rt.block_on(r.check_key());
    let report = rt.block_on(r.refresh(true)).context("pulling indicators")?;
    let snap = r.cell().load();
    println!(
        "fetched {} attributes from MISP; snapshot v{} holds {} indicators (built in {} ms); {:.2} s in all",
        r.store_len(),
        report.version,
        snap.len(),
        report.build_ms,
        started.elapsed().as_secs_f64()
    );
    for (k, n) in snap.counts() {
        println!("  {:<10} {n:>9}", k.as_str());
    }
    let stats = r.metrics.last_load.lock().map(|s| s.clone()).unwrap_or_default();
    let rejected = stats.total_rejected();
    let filtered: usize = stats.filtered.values().sum();
    println!("rejected: {rejected}; dropped by warninglists/allowlist: {filtered}");
    println!("cache: {}", cache::path(&r.config().state_dir).display());
    Ok(ExitCode::SUCCESS)
}
