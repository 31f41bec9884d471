//! The `[kafka]` and `[metrics]` tables of the config, with defaults for everything but the topics.

use super::ServiceError;
use crate::config::Config;
use rdkafka::config::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// Topic names; a name starting with `^` is a regular expression.
    pub input_topics: Vec<String>,
    pub hits_topic: String,
    /// librdkafka properties passed through as they are (TLS, SASL, timeouts...).
    pub properties: BTreeMap<String, String>,
    /// Larger payloads are counted and skipped.
    pub max_message_bytes: usize,
    /// Scoring workers (default: cores).
    pub workers: usize,
    /// Messages queued per worker before consumption pauses.
    pub queue_depth: usize,
    /// Messages in flight (consumed, hits not yet acknowledged) before consumption pauses.
    pub max_in_flight: usize,
    pub commit_interval_ms: u64,
    /// How long shutdown may take to drain and commit.
    pub shutdown_deadline_secs: u64,
    /// MISP's own attribute topic (`misp_attribute`), applied between REST pulls when set.
    pub misp_push_topic: Option<String>,
    /// MISP's event topic (`misp_event`): event deletes remove the event's attributes, other event changes (a tag,
    /// a publish) pull the event again.
    pub misp_event_topic: Option<String>,
    /// Seconds between sighting reports (when `misp.sightings` is on): one request at most per interval.
    pub sighting_interval_secs: u64,
    /// Only hits in these fields count (globs on the dotted path, `dns.rrname`); see `scan --fields`.
    pub fields: Vec<String>,
    /// With `fields`: hits in messages without a known field do not count either.
    pub fields_strict: bool,
}

impl KafkaSettings {
    /// The field filter `fields` asks for, if any.
    pub fn field_filter(&self) -> Result<Option<crate::scan::FieldFilter>, ServiceError> {
        if self.fields.is_empty() {
            return Ok(None);
        }
        crate::scan::FieldFilter::new(&self.fields, self.fields_strict)
            .map(Some)
            .map_err(|e| ServiceError::Invalid(format!("kafka.fields: {e}")))
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            group_id: "iocmatch".into(),
            input_topics: vec!["logs".into()],
            hits_topic: "iocmatch-hits".into(),
            properties: BTreeMap::new(),
            max_message_bytes: 1 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_depth: 1024,
            max_in_flight: 10_000,
            commit_interval_ms: 1000,
            shutdown_deadline_secs: 30,
            misp_push_topic: None,
            misp_event_topic: None,
            sighting_interval_secs: 10,
            fields: Vec::new(),
            fields_strict: false,
        }
    }
}

/// The `[metrics]` table: where `/metrics`, `/healthz` and `/readyz` listen (loopback by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// Everything the service reads from the config besides the refresher's sources.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub metrics: MetricsSettings,
    pub retro: RetroSettings,
}

/// The `[retro]` table: when a refresh adds indicators, how far back the input topics are hunted (`window`, a
/// duration such as `"24h"` or seconds; 0 turns it off) and how fast (`max_mb_per_s`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetroSettings {
    pub window: std::time::Duration,
    pub max_mb_per_s: f64,
}

impl Default for RetroSettings {
    fn default() -> Self {
        RetroSettings {
            window: std::time::Duration::from_secs(86_400),
            max_mb_per_s: 20.0,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetro {
    window: Option<toml::Value>,
    max_mb_per_s: Option<f64>,
}

impl RetroSettings {
    fn from_table(t: &Option<toml::Table>) -> Result<RetroSettings, ServiceError> {
        let raw: RawRetro = table(t, "retro")?;
        let mut r = RetroSettings::default();
        match raw.window {
            None => {}
            Some(toml::Value::Integer(secs)) if secs >= 0 => r.window = std::time::Duration::from_secs(secs as u64),
            Some(toml::Value::String(s)) if s.trim() == "0" => r.window = std::time::Duration::ZERO,
            Some(toml::Value::String(s)) => {
                r.window = humantime::parse_duration(&s)
                    .map_err(|e| ServiceError::Invalid(format!("retro.window = {s:?}: {e}")))?
            }
            Some(v) => {
                return Err(ServiceError::Invalid(format!(
                    "retro.window = {v}: a duration such as \"24h\""
                )))
            }
        }
        if let Some(m) = raw.max_mb_per_s {
            if m.is_nan() || m <= 0.0 {
                return Err(ServiceError::Invalid(format!(
                    "retro.max_mb_per_s = {m}: must be above 0"
                )));
            }
            r.max_mb_per_s = m;
        }
        Ok(r)
    }

    /// Whether retro-hunting is on.
    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Settings, ServiceError> {
        let kafka: KafkaSettings = table(&cfg.kafka, "kafka")?;
        if kafka.hits_topic.is_empty() {
            return Err(ServiceError::Missing("kafka.hits_topic"));
        }
        if kafka.input_topics.is_empty() {
            return Err(ServiceError::Missing("kafka.input_topics"));
        }
        kafka.field_filter()?;
        Ok(Settings {
            kafka,
            metrics: table(&cfg.metrics, "metrics")?,
            retro: RetroSettings::from_table(&cfg.retro)?,
        })
    }
}

fn table<T: for<'de> Deserialize<'de> + Default>(
    t: &Option<toml::Table>,
    section: &'static str,
) -> Result<T, ServiceError> {
    match t {
        None => Ok(T::default()),
        Some(t) => toml::Value::Table(t.clone())
            .try_into()
            .map_err(|source| ServiceError::Settings {
                section,
                source: Box::new(source),
            }),
    }
}

/// A librdkafka client config with the brokers and every pass-through property.
pub(crate) fn client_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (p, v) in &k.properties {
        c.set(p, v);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retro(text: &str) -> Result<RetroSettings, ServiceError> {
        let t: toml::Table = toml::from_str(text).unwrap();
        RetroSettings::from_table(&Some(t))
    }

    #[test]
    fn retro_window_is_a_duration_and_zero_turns_it_off() {
        assert_eq!(
            RetroSettings::from_table(&None).unwrap().window,
            std::time::Duration::from_secs(86_400)
        );
        assert_eq!(
            retro("window = \"6h\"").unwrap().window,
            std::time::Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            retro("window = 600").unwrap().window,
            std::time::Duration::from_secs(600)
        );
        assert!(!retro("window = 0").unwrap().enabled());
        assert!(!retro("window = \"0\"").unwrap().enabled());
        assert_eq!(retro("max_mb_per_s = 5.0").unwrap().max_mb_per_s, 5.0);
        assert!(retro("window = \"soon\"").is_err());
        assert!(retro("max_mb_per_s = 0.0").is_err());
        assert!(retro("windows = 1").is_err(), "unknown keys are refused");
    }
}
