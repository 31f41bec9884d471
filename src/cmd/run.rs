//! `iocmatch run`: the Kafka service. SIGTERM or SIGINT stops consuming, drains, commits and exits 0.

use anyhow::{Context, Result};
use iocmatch::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The service configuration (see iocmatch.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let cfg = Config::load(&args.config)?;
    let rt = super::runtime()?;
    rt.block_on(iocmatch::stream::run(cfg, shutdown_signal()))
        .context("iocmatch run")?;
    Ok(ExitCode::SUCCESS)
}
