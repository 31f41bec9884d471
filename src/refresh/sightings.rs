//! Hits reported back to MISP as sightings, beside the MISP client that sends them.
//!
//! MISP matches sightings by value exactly against `value1`/`value2` as stored (`app/Model/Sighting.php`,
//! saveSightings), and stores URLs with their scheme and CIDRs with their host bits, so a hit's normalised value
//! would sight nothing for those. A hit on a MISP attribute is therefore sighted by the attribute's uuid
//! (`/sightings/add` with `uuid`), with the log record's time as the sighting's `timestamp`; only values without a
//! uuid (feeds, local files) go by value. Scorers hand sightings over without waiting (a full queue drops and
//! counts them); each interval sends one sighting per distinct attribute, all of them, in chunks of concurrent
//! requests; what is pending when the service stops is sent before the reporter exits.

use super::misp::{ApiKey, MispClient};
use super::RefreshError;
use crate::config::MispConfig;
use crate::indicator::{Indicator, Uuid};
use crate::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Sightings queued for the reporter before scorers start dropping (and counting) them.
const QUEUE: usize = 10_000;

/// Requests in flight at once while an interval's sightings go out.
const CONCURRENT: usize = 8;

/// Values sent in one by-value request.
const VALUES_PER_REQUEST: usize = 500;

/// One hit to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The MISP attribute behind the indicator, when it came from MISP.
    pub uuid: Option<Uuid>,
    /// The indicator's value, for sources without uuids.
    pub value: String,
    /// When the log record was written (Unix seconds): the sighting's time in MISP.
    pub at: i64,
}

impl Sighting {
    /// The sighting for a hit on `ind` in a record written at `at`.
    pub fn of(ind: &Indicator, at: i64) -> Sighting {
        Sighting {
            uuid: ind.provenance.attribute_uuid,
            value: ind.value.name(),
            at,
        }
    }
}

/// What is pending for one interval: per attribute (or value), the newest record time and the hit count.
#[derive(Debug, Default)]
struct Pending {
    by_uuid: BTreeMap<Uuid, (i64, u64)>,
    by_value: BTreeMap<String, (i64, u64)>,
}

impl Pending {
    fn add(&mut self, s: Sighting) {
        let slot = match s.uuid {
            Some(u) => self.by_uuid.entry(u).or_default(),
            None => self.by_value.entry(s.value).or_default(),
        };
        slot.0 = slot.0.max(s.at);
        slot.1 += 1;
    }

    fn is_empty(&self) -> bool {
        self.by_uuid.is_empty() && self.by_value.is_empty()
    }
}

/// Starts the reporter for `misp` (when its `sightings` is on): the queue scorers send sightings into, and the
/// task.
pub fn spawn(
    misp: &MispConfig,
    every_secs: u64,
    shutdown: Shutdown,
) -> Result<(mpsc::Sender<Sighting>, JoinHandle<()>), RefreshError> {
    let client = Arc::new(MispClient::new(misp, ApiKey::load(misp)?)?);
    let (tx, rx) = mpsc::channel::<Sighting>(QUEUE);
    let task = tokio::spawn(report(client, rx, misp.sighting_source.clone(), every_secs, shutdown));
    Ok((tx, task))
}

async fn report(
    client: Arc<MispClient>,
    mut rx: mpsc::Receiver<Sighting>,
    source: String,
    every_secs: u64,
    shutdown: Shutdown,
) {
    let every = Duration::from_secs(every_secs.max(1));
    // The first report goes out one interval after start, not at once: an interval's hits go out together.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut pending = Pending::default();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait() => true,
            s = rx.recv() => match s {
                Some(s) => { pending.add(s); continue; }
                None => true,
            },
        };
        while let Ok(s) = rx.try_recv() {
            pending.add(s);
        }
        if !pending.is_empty() {
            send(&client, std::mem::take(&mut pending), &source).await;
        }
        if stopping {
            return;
        }
    }
}

/// Sends one interval's sightings: by uuid, [`CONCURRENT`] requests at a time, then the values without uuids.
async fn send(client: &Arc<MispClient>, pending: Pending, source: &str) {
    let hits: u64 = pending
        .by_uuid
        .values()
        .chain(pending.by_value.values())
        .map(|(_, n)| n)
        .sum();
    let (attributes, values) = (pending.by_uuid.len(), pending.by_value.len());
    let mut failed = 0usize;
    let items: Vec<(Uuid, i64)> = pending.by_uuid.into_iter().map(|(u, (at, _))| (u, at)).collect();
    for chunk in items.chunks(CONCURRENT) {
        let mut set = tokio::task::JoinSet::new();
        for (uuid, at) in chunk.iter().copied() {
            let (client, source) = (client.clone(), source.to_string());
            set.spawn(async move { (uuid, client.add_sighting(&uuid.to_string(), at, &source).await) });
        }
        while let Some(done) = set.join_next().await {
            if let Ok((uuid, Err(e))) = done {
                failed += 1;
                tracing::warn!(attribute = %uuid, "sighting not recorded: {e}");
            }
        }
    }
    let by_value: Vec<(String, i64)> = pending.by_value.into_iter().map(|(v, (at, _))| (v, at)).collect();
    for chunk in by_value.chunks(VALUES_PER_REQUEST) {
        let vals: Vec<String> = chunk.iter().map(|(v, _)| v.clone()).collect();
        let at = chunk.iter().map(|(_, t)| *t).max().unwrap_or(0);
        if let Err(e) = client.add_sightings(&vals, at, source).await {
            failed += vals.len();
            tracing::warn!(values = vals.len(), "sightings by value not recorded: {e}");
        }
    }
    tracing::info!(attributes, values, hits, failed, "sightings reported to MISP");
}
