//! One module per subcommand; shared indicator options live here.

pub mod bench;
pub mod check;
pub mod compile;
pub mod export;
pub mod fetch;
pub mod run;
pub mod scan;

use anyhow::{Context, Result};
use iocmatch::config::Config;
use iocmatch::load::{load_paths, LoadStats};
use iocmatch::refresh::{Refresher, StartedFrom};
use iocmatch::{IndicatorSet, Policy, Snapshot};
use std::path::PathBuf;

/// Where indicators come from and which of them to keep.
#[derive(clap::Args, Debug, Clone)]
pub struct IocArgs {
    /// Indicator source: MISP JSON (restSearch or events), a MISP feed directory, MISP CSV or a plain list.
    /// Repeatable; the format is detected from the content.
    #[arg(long = "iocs", value_name = "PATH", required_unless_present_any = ["config", "snapshot"])]
    pub iocs: Vec<PathBuf>,
    /// Take indicators from the sources in this config file instead (a live MISP pull, or the last-good cache).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["iocs", "snapshot"])]
    pub config: Option<PathBuf>,
    /// Map a snapshot file written by `iocmatch compile` (or kept in a service's `state_dir`): validated once,
    /// ready in milliseconds, its pages shared by every process that maps it.
    #[arg(long, value_name = "FILE", conflicts_with = "iocs")]
    pub snapshot: Option<PathBuf>,
    /// Also load attributes without `to_ids` and soft-deleted ones.
    #[arg(long)]
    pub all: bool,
    /// Reject IPv4 networks broader than this prefix length.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub min_v4_prefix: u8,
    /// Reject IPv6 networks broader than this prefix length.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub min_v6_prefix: u8,
}

impl IocArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            include_all: self.all,
            min_v4_prefix: self.min_v4_prefix,
            min_v6_prefix: self.min_v6_prefix,
        }
    }

    pub fn load(&self) -> Result<(IndicatorSet, LoadStats)> {
        load_paths(&self.iocs, self.policy()).context("loading indicators")
    }

    /// The snapshot to scan with: from `--iocs`, or from the config's sources (live, else the cache).
    pub fn snapshot(&self) -> Result<(std::sync::Arc<Snapshot>, LoadStats)> {
        if let Some(path) = &self.snapshot {
            let snap = Snapshot::open(path).context("opening the snapshot")?;
            return Ok((std::sync::Arc::new(snap), LoadStats::default()));
        }
        match &self.config {
            None => {
                let (set, stats) = self.load()?;
                Ok((std::sync::Arc::new(Snapshot::build(set, 1)), stats))
            }
            Some(path) => {
                let rt = runtime()?;
                let mut r = refresher(path)?;
                rt.block_on(r.check_key());
                let (from, report) = rt
                    .block_on(r.start())
                    .context("loading indicators from the config's sources")?;
                if from == StartedFrom::Cache {
                    eprintln!(
                        "iocmatch: MISP unreachable; scanning with the last-good cache (snapshot v{})",
                        report.version
                    );
                }
                let stats = r.metrics.last_load.lock().map(|s| s.clone()).unwrap_or_default();
                Ok((r.cell().load(), stats))
            }
        }
    }
}

/// A tokio runtime for the commands that talk to MISP.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A refresher from a config file.
pub fn refresher(path: &std::path::Path) -> Result<Refresher> {
    let cfg = Config::load(path)?;
    Refresher::new(cfg).with_context(|| format!("setting up sources from {}", path.display()))
}
