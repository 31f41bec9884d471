//! `iocmatch compile`: validate and build once, write the snapshot file every other process maps.

use super::IocArgs;
use anyhow::{bail, Context, Result};
use iocmatch::snapshot::Compiled;
use iocmatch::IndicatorSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub iocs: IocArgs,
    /// The snapshot file to write (atomically: temp file, fsync, rename).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: CompileArgs) -> Result<ExitCode> {
    if args.iocs.snapshot.is_some() {
        bail!("compile takes --iocs or --config, not --snapshot");
    }
    let started = Instant::now();
    let (compiled, n, loaded, build) = if args.iocs.config.is_some() {
        // The refresher has validated and compiled the config's sources already: its base is written as it is.
        let (snap, stats) = args.iocs.snapshot()?;
        let set: IndicatorSet = snap.indicators().map(|(_, i)| i).collect();
        print!("{}", super::check::report(&set, &stats));
        (snap.base().clone(), set.len(), started.elapsed(), snap.build_duration())
    } else {
        let (set, stats) = args.iocs.load()?;
        let loaded = started.elapsed();
        print!("{}", super::check::report(&set, &stats));
        let n = set.len();
        let built = Instant::now();
        let compiled = Arc::new(Compiled::build(set, 1));
        (compiled, n, loaded, built.elapsed())
    };
    let written = Instant::now();
    compiled
        .write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "\nwrote {}: {n} indicators, {} bytes ({:.1} B/indicator), build id {:016x}; loaded and validated in {} ms, \
         compiled in {} ms, written in {} ms",
        args.out.display(),
        compiled.byte_len(),
        compiled.byte_len() as f64 / n.max(1) as f64,
        compiled.build_id(),
        loaded.as_millis(),
        build.as_millis(),
        written.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}
