//! MISP's ZeroMQ feed (`misp.zmq_url`): a SUB socket on `misp_json_attribute` and `misp_json_event`, the push
//! channel most MISP servers have enabled. Each frame is `<topic> <json>` (`app/files/scripts/mispzmq/mispzmq.py`);
//! notifications go to the refresher like Kafka's. The socket reconnects on its own; a connection that errors, or
//! stays silent longer than MISP's 10 s keepalive (`misp_json_self`) allows, is dropped and made again.

use super::push::{parse, Notice};
use super::RefreshMetrics;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zeromq::{Socket, SocketRecv, SubSocket};

/// The topics subscribed to: attribute changes, event changes, and the keepalive that shows the link is up.
pub const TOPICS: [&str; 3] = ["misp_json_attribute", "misp_json_event", "misp_json_self"];

/// How long a connection may stay silent before it is made again (MISP sends a keepalive every 10 s).
const SILENCE: Duration = Duration::from_secs(45);

/// Subscribes to `url` until `shutdown`, sending notifications into `tx`. A frame that cannot be read is logged
/// with the URL and topic, and counted (`misp_zmq`).
pub fn spawn(
    url: String,
    tx: mpsc::Sender<Notice>,
    metrics: Arc<RefreshMetrics>,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let ended = tokio::select! {
                _ = shutdown.wait() => return,
                e = tracing::Instrument::instrument(subscribe(&url, &tx, &metrics), tracing::info_span!("misp_zmq", url = %url)) => e,
            };
            match ended {
                Ended::ReceiverGone => return,
                Ended::Connected(why) => {
                    backoff = Duration::from_millis(200);
                    tracing::warn!(url = %url, "MISP ZeroMQ connection lost ({why}); reconnecting");
                }
                Ended::NotConnected(why) => {
                    metrics.error("misp_zmq");
                    tracing::warn!(url = %url, retry_ms = backoff.as_millis() as u64, "cannot subscribe to MISP ZeroMQ: {why}");
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

enum Ended {
    ReceiverGone,
    /// The socket received before it failed.
    Connected(String),
    NotConnected(String),
}

async fn subscribe(url: &str, tx: &mpsc::Sender<Notice>, metrics: &RefreshMetrics) -> Ended {
    let mut socket = SubSocket::new();
    if let Err(e) = socket.connect(url).await {
        return Ended::NotConnected(e.to_string());
    }
    for t in TOPICS {
        if let Err(e) = socket.subscribe(t).await {
            return Ended::NotConnected(format!("subscribing to {t}: {e}"));
        }
    }
    tracing::info!(topics = ?TOPICS, "subscribed to MISP ZeroMQ");
    loop {
        let msg = match tokio::time::timeout(SILENCE, socket.recv()).await {
            Err(_) => return Ended::Connected(format!("silent for {} s", SILENCE.as_secs())),
            Ok(Err(e)) => return Ended::Connected(e.to_string()),
            Ok(Ok(m)) => m,
        };
        for frame in msg.into_vec() {
            let topic = frame.split(|b| *b == b' ').next().unwrap_or(&[]);
            let loc = format!("{url} {}", String::from_utf8_lossy(&topic[..topic.len().min(40)]));
            match parse(&frame, &loc) {
                Ok(Some(n)) => {
                    if tx.send(n).await.is_err() {
                        return Ended::ReceiverGone;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    metrics.error("misp_zmq");
                    tracing::warn!(at = %loc, "MISP ZeroMQ frame skipped: {e}");
                }
            }
        }
    }
}
