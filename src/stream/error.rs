//! What can stop the Kafka service from starting. Each variant keeps its cause as a typed source.

use crate::refresh::RefreshError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("configuration [{section}]: {source}")]
    Settings {
        section: &'static str,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("configuration: {0} is required")]
    Missing(&'static str),
    #[error("configuration: {0}")]
    Invalid(String),
    /// `what` names the client or the call and the brokers.
    #[error("kafka {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error("metrics endpoint {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    /// A Kafka client error while doing `what` against `brokers`.
    pub(crate) fn kafka(what: impl Into<String>, brokers: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let what = format!("{} ({brokers})", what.into());
        move |source| ServiceError::Kafka {
            what,
            source: Box::new(source),
        }
    }
}
