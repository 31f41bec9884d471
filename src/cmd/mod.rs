//! One module per subcommand; shared indicator options live here.

pub mod bench;
pub mod check;
pub mod scan;

use anyhow::{Context, Result};
use iocmatch::load::{load_paths, LoadStats};
use iocmatch::{IndicatorSet, Policy};
use std::path::PathBuf;

/// Where indicators come from and which of them to keep.
#[derive(clap::Args, Debug, Clone)]
pub struct IocArgs {
    /// Indicator source: MISP JSON (restSearch or events), a MISP feed directory, MISP CSV or a plain list.
    /// Repeatable; the format is detected from the content.
    #[arg(long = "iocs", value_name = "PATH", required = true)]
    pub iocs: Vec<PathBuf>,
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
}
