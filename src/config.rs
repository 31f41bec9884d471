//! The TOML configuration, with `IOCMATCH_<SECTION>_<KEY>` environment overrides.
//!
//! The MISP key is never part of the configuration: only the *name* of the environment variable or the *path* of
//! the file that holds it is, so a config file can be committed and shared.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Config {
    /// Where the last-good indicator cache lives.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Local indicator files or feed directories, read with the core loaders.
    #[serde(default)]
    pub iocs: Vec<PathBuf>,
    pub misp: Option<MispConfig>,
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    #[serde(default)]
    pub validation: ValidationConfig,
    #[serde(default)]
    pub refresh: RefreshConfig,
    /// Files rewritten after every successful refresh.
    #[serde(default)]
    pub export: Vec<ExportConfig>,
    /// The Kafka service's settings (read by `iocmatch run`).
    pub kafka: Option<toml::Table>,
    /// The metrics endpoint's settings (read by `iocmatch run`).
    pub metrics: Option<toml::Table>,
    /// The retro-hunt's settings (read by `iocmatch run`).
    pub retro: Option<toml::Table>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/iocmatch")
}

/// The MISP REST source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MispConfig {
    pub url: String,
    /// Name of the environment variable holding the API key.
    pub key_env: String,
    /// A file holding the API key (used when the variable is unset); warned about if group- or world-readable.
    pub key_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, for MISP's usual self-signed certificate.
    pub ca_bundle: Option<PathBuf>,
    /// Allow `http://` (for loopback tests only).
    pub allow_http: bool,
    /// Skip certificate verification. Every refresh then logs a warning.
    pub insecure_skip_verify: bool,
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub page_size: usize,
    /// Seconds between incremental pulls.
    pub interval_secs: u64,
    /// Seconds between full reconciliations (they catch hard deletes).
    pub full_sync_secs: u64,
    /// The fraction of the stored attributes a full pull may remove at once. A pull that removes more (a wrong
    /// filter, a half-restored MISP, a revoked sharing group) keeps the old set serving, is reported as an error
    /// and counted, and applies only when the next full pull confirms it. 1.0 turns the guard off.
    pub max_shrink: f64,
    /// Attempts per request before giving up.
    pub retries: u32,
    /// First retry delay; doubled each attempt, with jitter.
    pub backoff_ms: u64,
    /// Only attributes with `to_ids` (sent as `to_ids: 1` on full pulls).
    pub to_ids_only: bool,
    /// Only attributes of published events, when set.
    pub published: Option<bool>,
    pub types: Vec<String>,
    /// Include only attributes carrying one of these tags (attribute or event level).
    pub tags: Vec<String>,
    /// Exclude attributes carrying any of these tags (e.g. `tlp:red`).
    pub not_tags: Vec<String>,
    /// Include only events created by these organisations.
    pub orgs: Vec<String>,
    /// MISP's ZeroMQ feed (`tcp://misp:50000`): attribute and event notifications applied between REST pulls.
    pub zmq_url: Option<String>,
    /// Report hits back to MISP as sightings.
    pub sightings: bool,
    pub sighting_source: String,
}

impl Default for MispConfig {
    fn default() -> Self {
        MispConfig {
            url: String::new(),
            key_env: "IOCMATCH_MISP_KEY".into(),
            key_file: None,
            ca_bundle: None,
            allow_http: false,
            insecure_skip_verify: false,
            timeout_secs: 60,
            connect_timeout_secs: 10,
            page_size: 1000,
            interval_secs: 300,
            full_sync_secs: 86_400,
            max_shrink: 0.5,
            retries: 4,
            backoff_ms: 1000,
            to_ids_only: true,
            published: None,
            types: Vec::new(),
            tags: Vec::new(),
            not_tags: Vec::new(),
            orgs: Vec::new(),
            zmq_url: None,
            sightings: false,
            sighting_source: "iocmatch".into(),
        }
    }
}

/// A feed by URL (MISP JSON feed, CSV or freetext) or a local path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub name: String,
    /// `http(s)://...` (a MISP feed's base URL, or a CSV/freetext file), or a local path.
    pub url: String,
    #[serde(default = "default_feed_format")]
    pub format: FeedFormat,
    #[serde(default = "default_feed_interval")]
    pub interval_secs: u64,
    /// CSV: the 0-based column holding the value (used when `value` is not set).
    #[serde(default)]
    pub value_column: usize,
    /// CSV: MISP's own feed setting, the 1-based columns holding values, comma-separated (`"2"`, `"1,3"`).
    pub value: Option<String>,
    /// CSV/freetext: MISP's exclusion regex; values it matches are skipped (`/^10\./`, PHP delimiters optional).
    pub exclude_regex: Option<String>,
    /// CSV/freetext: the MISP type of every value; guessed per value when absent.
    pub misp_type: Option<String>,
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    #[serde(default)]
    pub allow_http: bool,
}

fn default_feed_format() -> FeedFormat {
    FeedFormat::Misp
}
fn default_feed_interval() -> u64 {
    3600
}
fn default_delimiter() -> char {
    ','
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    Misp,
    Csv,
    Freetext,
}

/// Validation applied when a snapshot is built.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    pub min_v4_prefix: u8,
    pub min_v6_prefix: u8,
    /// A directory of MISP warninglist JSON files (`*.json`, searched recursively).
    pub warninglists_dir: Option<PathBuf>,
    /// Which of those lists apply. MISP ships every list disabled, and several (dynamic DNS, LOTS, link shorteners)
    /// hold the platforms real C2 lives on, so applying all of them would silently drop real indicators.
    pub warninglists: WarninglistSelection,
    /// Domains (suffix), CIDRs and hashes that must never alert, one a line.
    pub allowlist: Option<PathBuf>,
    /// Load attributes without `to_ids` too.
    pub include_all: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            min_v4_prefix: 8,
            min_v6_prefix: 24,
            warninglists_dir: None,
            warninglists: WarninglistSelection::default(),
            allowlist: None,
            include_all: false,
        }
    }
}

/// `validation.warninglists`: `"default"` (private and reserved ranges, empty-file hashes, top-site lists, cloud
/// ranges), `"all"`, `"misp"` (the lists the MISP server has enabled), or a list of names (the list's directory
/// name in misp-warninglists, such as `rfc1918`, or its `name`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WarninglistSelection {
    #[default]
    Default,
    All,
    Misp,
    Names(Vec<String>),
}

impl<'de> Deserialize<'de> for WarninglistSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Names(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Names(n) => Ok(WarninglistSelection::Names(n)),
            Raw::Word(w) => match w.as_str() {
                "default" => Ok(WarninglistSelection::Default),
                "all" => Ok(WarninglistSelection::All),
                "misp" => Ok(WarninglistSelection::Misp),
                other => Err(serde::de::Error::custom(format!(
                    "validation.warninglists = {other:?}: expected \"default\", \"all\", \"misp\" or a list of names"
                ))),
            },
        }
    }
}

/// How often local indicator files are checked for changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    pub files_interval_secs: u64,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            files_interval_secs: 30,
        }
    }
}

/// One exported file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub format: String,
    pub path: PathBuf,
    /// Only these indicator kinds (`domain`, `ipv4`, `md5`, ...); all when empty.
    #[serde(default)]
    pub types: Vec<String>,
}

const SECTIONS: [&str; 6] = ["misp", "validation", "refresh", "kafka", "metrics", "retro"];

impl Config {
    /// Reads a config file and applies `IOCMATCH_*` environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::parse(&text, &path.display().to_string(), &env)
    }

    /// Parses config text; `env` is the environment to take overrides from.
    pub fn parse(text: &str, name: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let perr = |msg: String| ConfigError::Parse {
            path: name.to_string(),
            msg,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| perr(e.to_string()))?;
        apply_env(&mut table, env);
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| perr(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(m) = &self.misp {
            if m.url.is_empty() {
                return Err(ConfigError::Invalid("misp.url is required".into()));
            }
            if m.url.starts_with("http://") && !m.allow_http {
                return Err(ConfigError::Invalid(format!(
                    "misp.url {} is plain http; MISP needs https (set allow_http = true only for loopback tests)",
                    m.url
                )));
            }
            if !m.url.starts_with("https://") && !m.url.starts_with("http://") {
                return Err(ConfigError::Invalid(format!(
                    "misp.url {} is not an http(s) URL",
                    m.url
                )));
            }
            if m.page_size == 0 {
                return Err(ConfigError::Invalid("misp.page_size must be at least 1".into()));
            }
        }
        for f in &self.feeds {
            if f.url.starts_with("http://") && !f.allow_http {
                return Err(ConfigError::Invalid(format!(
                    "feed {} uses plain http; set allow_http = true for it if that is intended",
                    f.name
                )));
            }
        }
        Ok(())
    }
}

/// `IOCMATCH_MISP_PAGE_SIZE=50` sets `misp.page_size`; `IOCMATCH_STATE_DIR=/x` sets `state_dir`. Values are read
/// as TOML (numbers, booleans, arrays) and fall back to strings. The key variable itself is never a setting.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) {
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("IOCMATCH_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        if rest.ends_with("key") || rest == "log" || rest.is_empty() {
            continue;
        }
        let value = parse_env_value(v);
        match SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) {
            Some(section) => {
                let key = rest[section.len() + 1..].to_string();
                let entry = table
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = entry {
                    t.insert(key, value);
                }
            }
            None => {
                table.insert(rest, value);
            }
        }
    }
}

fn parse_env_value(v: &str) -> toml::Value {
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_refresher_config_works_as_is() {
        let c = Config::parse(
            "state_dir = \"/var/lib/iocmatch\"\n\n[misp]\nurl = \"http://127.0.0.1:8443\"\nallow_http = true\npage_size = 500\n",
            "t.toml",
            &[],
        )
        .unwrap();
        let m = c.misp.unwrap();
        assert_eq!(m.page_size, 500);
        assert_eq!(m.key_env, "IOCMATCH_MISP_KEY");
        assert!(m.to_ids_only);
    }

    #[test]
    fn the_minimal_service_config_works_as_is() {
        let c = Config::parse(
            "state_dir = \"/var/lib/iocmatch\"\niocs = [\"/etc/iocmatch/indicators.json\"]\n\n[kafka]\nbrokers = \"127.0.0.1:9092\"\ngroup_id = \"iocmatch\"\ninput_topics = [\"logs\"]\nhits_topic = \"iocmatch-hits\"\n",
            "t.toml",
            &[],
        )
        .unwrap();
        assert_eq!(c.iocs.len(), 1);
        assert!(c.kafka.is_some());
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        let e = Config::parse("[misp]\nurl = \"http://misp.example\"\n", "t.toml", &[]).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
    }

    #[test]
    fn environment_overrides_settings_but_never_the_key() {
        let env = vec![
            ("IOCMATCH_MISP_PAGE_SIZE".to_string(), "50".to_string()),
            ("IOCMATCH_STATE_DIR".to_string(), "/tmp/x".to_string()),
            ("IOCMATCH_MISP_KEY".to_string(), "secret".to_string()),
        ];
        let c = Config::parse("[misp]\nurl = \"https://misp.example\"\n", "t.toml", &env).unwrap();
        assert_eq!(c.misp.unwrap().page_size, 50);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_misp_keys_are_errors_that_name_the_file() {
        let e = Config::parse("[misp]\nurl = \"https://m\"\napikey = \"x\"\n", "conf.toml", &[]).unwrap_err();
        assert!(e.to_string().starts_with("conf.toml"), "{e}");
    }
}
