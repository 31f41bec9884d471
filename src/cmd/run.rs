//! `iocmatch run`: the Kafka service. This is where its parts are connected: the refresher (with the MISP push
//! consumer and the sightings reporter) keeps the snapshot cell current, and `stream::run` scores with that cell.
//! SIGTERM or SIGINT fires the one shutdown signal every part holds; the service drains, commits and exits 0.

use anyhow::{Context, Result};
use iocmatch::config::Config;
use iocmatch::refresh::{sightings, Refresher};
use iocmatch::shutdown::Shutdown;
use iocmatch::stream::{self, Inputs, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The service configuration (see iocmatch.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

async fn stop_signal() {
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
    let settings = Settings::from_config(&cfg)?;
    let rt = super::runtime()?;
    rt.block_on(serve(cfg, settings)).context("iocmatch run")?;
    Ok(ExitCode::SUCCESS)
}

/// The first read of every source (MISP, else the last-good cache).
async fn first_load(refresher: &mut Refresher) {
    match refresher.start().await {
        Ok((from, r)) => tracing::info!(
            ?from,
            version = r.version,
            indicators = r.total,
            "first snapshot loaded"
        ),
        Err(e) => tracing::error!("no indicators yet ({e}); serving the current snapshot until a refresh succeeds"),
    }
}

async fn serve(cfg: Config, settings: Settings) -> Result<()> {
    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            stop_signal().await;
            shutdown.trigger();
        }
    });
    let reporter = match &cfg.misp {
        Some(mc) if mc.sightings => Some(sightings::spawn(
            mc,
            settings.kafka.sighting_interval_secs,
            shutdown.clone(),
        )?),
        _ => None,
    };
    let mut refresher = Refresher::new(cfg)?;
    let retro = settings.retro.enabled().then(|| stream::RetroInput {
        added: refresher.retro_feed(),
        state_dir: refresher.config().state_dir.clone(),
        policy: refresher.policy().clone(),
    });
    // A compiled snapshot from the last run serves at once; the sources are then read in the background.
    let mapped = refresher.open_state();
    if mapped.is_none() {
        refresher.check_key().await;
        first_load(&mut refresher).await;
    }
    let (push_tx, push_rx) = tokio::sync::mpsc::channel(10_000);
    let mut push_tasks = Vec::new();
    let topics: Vec<String> = [&settings.kafka.misp_push_topic, &settings.kafka.misp_event_topic]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if !topics.is_empty() {
        let metrics = refresher.metrics.clone();
        push_tasks.push(stream::push::spawn(
            &settings.kafka,
            &topics,
            push_tx.clone(),
            metrics,
            shutdown.clone(),
        )?);
    }
    if let Some(url) = refresher.config().misp.as_ref().and_then(|m| m.zmq_url.clone()) {
        let metrics = refresher.metrics.clone();
        push_tasks.push(iocmatch::refresh::zmq::spawn(
            url,
            push_tx.clone(),
            metrics,
            shutdown.clone(),
        ));
    }
    drop(push_tx);
    let push_rx = (!push_tasks.is_empty()).then_some(push_rx);
    let (sightings_tx, sightings_task) = reporter.unzip();
    let inputs = Inputs {
        cell: refresher.cell(),
        refresh: refresher.metrics.clone(),
        sightings: sightings_tx,
        retro,
    };
    let refresh_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if mapped.is_some() {
                refresher.check_key().await;
                first_load(&mut refresher).await;
            }
            refresher.run(shutdown, push_rx).await
        }
    });
    let served = stream::run(settings, inputs, shutdown.clone()).await;
    shutdown.trigger();
    let rest = async {
        let _ = refresh_task.await;
        for t in push_tasks.into_iter().chain(sightings_task) {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), rest).await.is_err() {
        tracing::warn!("the refresher, push consumer or sightings reporter did not stop within 5 s");
    }
    Ok(served?)
}
