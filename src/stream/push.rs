//! The consumer of MISP's own Kafka topics (MISP's Kafka plugin: `misp_attribute`, and `misp_event` for event
//! deletes and event-level changes): each notification is parsed and handed to the refresher, which applies it
//! between REST pulls. It has its own group id and stops with the service.

use super::settings::{client_config, KafkaSettings};
use super::ServiceError;
use crate::refresh::push::Notice;
use crate::refresh::RefreshMetrics;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Subscribes to `topics` and sends their notifications into `tx`; returns the consuming task. A message that
/// cannot be read is logged with its topic, partition and offset, and counted (`misp_push`).
pub fn spawn(
    k: &KafkaSettings,
    topics: &[String],
    tx: mpsc::Sender<Notice>,
    metrics: Arc<RefreshMetrics>,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>, ServiceError> {
    let mut cc = client_config(k);
    cc.set("group.id", format!("{}-misp-push", k.group_id))
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc
        .create()
        .map_err(ServiceError::kafka("MISP push consumer", &k.brokers))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(ServiceError::kafka(
        format!("subscribing to {}", names.join(", ")),
        &k.brokers,
    ))?;
    let span = tracing::info_span!("misp_push", brokers = %k.brokers, topics = %names.join(","));
    Ok(tokio::spawn(tracing::Instrument::instrument(
        async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.wait() => return,
                    m = consumer.recv() => m,
                };
                match received {
                    Ok(m) => {
                        let loc = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
                        match m.payload().map(|p| crate::refresh::push::parse(p, &loc)) {
                            Some(Ok(Some(n))) => {
                                if tx.send(n).await.is_err() {
                                    return;
                                }
                            }
                            Some(Ok(None)) => {}
                            Some(Err(e)) => {
                                metrics.error("misp_push");
                                tracing::warn!(at = %loc, "MISP push message skipped: {e}");
                            }
                            None => tracing::warn!(at = %loc, "MISP push tombstone skipped"),
                        }
                    }
                    Err(e) => {
                        tracing::warn!("MISP push consumer: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        },
        span,
    )))
}
