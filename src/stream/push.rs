//! The consumer of MISP's own attribute topic (MISP's Kafka plugin): each notification is parsed and handed to the
//! refresher, which applies it between REST pulls. It has its own group id and stops with the service.

use super::settings::{client_config, KafkaSettings};
use super::ServiceError;
use crate::load::RawAttribute;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Subscribes to `topic` and returns the attributes as they arrive, with the consuming task.
pub fn spawn(
    k: &KafkaSettings,
    topic: &str,
    shutdown: Shutdown,
) -> Result<(mpsc::Receiver<RawAttribute>, JoinHandle<()>), ServiceError> {
    let mut cc = client_config(k);
    cc.set("group.id", format!("{}-misp-push", k.group_id))
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cc
        .create()
        .map_err(ServiceError::kafka("MISP push consumer", &k.brokers))?;
    consumer
        .subscribe(&[topic])
        .map_err(ServiceError::kafka(format!("subscribing to {topic}"), &k.brokers))?;
    let (tx, rx) = mpsc::channel(10_000);
    let task = tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = shutdown.wait() => return,
                m = consumer.recv() => m,
            };
            match received {
                Ok(m) => {
                    let loc = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
                    match m.payload().map(|p| crate::refresh::push::parse(p, &loc)) {
                        Some(Ok(Some(a))) => {
                            if tx.send(a).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(None)) => {}
                        Some(Err(e)) => tracing::warn!(at = %loc, "MISP push message skipped: {e}"),
                        None => tracing::warn!(at = %loc, "MISP push tombstone skipped"),
                    }
                }
                Err(e) => {
                    tracing::warn!("MISP push consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok((rx, task))
}
