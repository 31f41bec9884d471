//! Hits reported back to MISP as sightings, beside the MISP client that sends them. Scorers hand over indicator
//! values without waiting (a full queue drops and counts); one request goes out per interval at most, and what is
//! pending when the service stops is sent before the reporter exits.

use super::misp::{ApiKey, MispClient};
use super::RefreshError;
use crate::config::MispConfig;
use crate::shutdown::Shutdown;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Values queued for the reporter before scorers start dropping (and counting) sightings.
const QUEUE: usize = 10_000;

/// Starts the reporter for `misp` (when its `sightings` is on): the queue scorers send hit values into, and the task.
pub fn spawn(
    misp: &MispConfig,
    every_secs: u64,
    shutdown: Shutdown,
) -> Result<(mpsc::Sender<String>, JoinHandle<()>), RefreshError> {
    let client = MispClient::new(misp, ApiKey::load(misp)?)?;
    let (tx, rx) = mpsc::channel::<String>(QUEUE);
    let task = tokio::spawn(report(client, rx, misp.sighting_source.clone(), every_secs, shutdown));
    Ok((tx, task))
}

async fn report(
    client: MispClient,
    mut rx: mpsc::Receiver<String>,
    source: String,
    every_secs: u64,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs.max(1)));
    let mut pending = BTreeSet::new();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait() => true,
        };
        while let Ok(v) = rx.try_recv() {
            pending.insert(v);
        }
        if !pending.is_empty() {
            let batch: Vec<String> = std::mem::take(&mut pending).into_iter().take(500).collect();
            if let Err(e) = client.add_sightings(&batch, &source).await {
                tracing::warn!(values = batch.len(), "sightings not recorded: {e}");
            }
        }
        if stopping || rx.is_closed() {
            return;
        }
    }
}
