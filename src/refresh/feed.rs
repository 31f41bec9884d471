//! Feeds: MISP JSON feeds by URL (manifest first, then only events whose timestamp changed), CSV and freetext
//! files by URL (conditional GET with ETag / If-Modified-Since), and local files or directories.
//!
//! Each feed keeps its last good contribution: a failing pull logs, counts, and leaves it as it was.

use super::error::{PageNo, RefreshError};
use crate::config::{FeedConfig, FeedFormat};
use crate::indicator::EventMeta;
use crate::load::{Loader, RawAttribute};
use crate::Policy;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// HTTP cache validators of one answer.
#[derive(Debug, Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// One configured feed and what it last contributed.
pub struct FeedSource {
    pub cfg: FeedConfig,
    http: reqwest::Client,
    etag: Option<String>,
    last_modified: Option<String>,
    /// MISP feeds: event uuid → (manifest timestamp, that event's attributes).
    events: HashMap<String, (i64, Vec<RawAttribute>)>,
    /// CSV/freetext/local: the whole contribution.
    flat: Vec<RawAttribute>,
    next_due: Instant,
    /// Requests made, for tests and metrics.
    pub requests: u64,
}

/// Every attribute in a MISP JSON document, before policy (the refresher applies it once, on the merged set).
pub fn collect_attributes(name: &str, bytes: &[u8]) -> Result<Vec<RawAttribute>, crate::load::LoadError> {
    let mut l = Loader::new(Policy {
        include_all: true,
        ..Policy::default()
    })
    .keep_accepted();
    l.load_bytes(name, bytes)?;
    Ok(l.take_accepted())
}

fn is_remote(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

impl FeedSource {
    pub fn new(cfg: FeedConfig, timeout: Duration) -> Result<FeedSource, RefreshError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .https_only(!cfg.allow_http)
            .build()
            .map_err(|e| RefreshError::Config(format!("feed {}: {e}", cfg.name)))?;
        Ok(FeedSource {
            cfg,
            http,
            etag: None,
            last_modified: None,
            events: HashMap::new(),
            flat: Vec::new(),
            next_due: Instant::now(),
            requests: 0,
        })
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_due
    }

    /// The feed's current contribution (the last good one if the latest pull failed).
    pub fn attributes(&self) -> impl Iterator<Item = &RawAttribute> {
        self.events.values().flat_map(|(_, a)| a.iter()).chain(self.flat.iter())
    }

    /// Pulls the feed. Returns whether its contribution changed.
    pub async fn pull(&mut self) -> Result<bool, RefreshError> {
        use tracing::Instrument;
        let span = tracing::info_span!("feed", name = %self.cfg.name, url = %self.cfg.url);
        self.pull_in_span().instrument(span).await
    }

    async fn pull_in_span(&mut self) -> Result<bool, RefreshError> {
        self.next_due = Instant::now() + Duration::from_secs(self.cfg.interval_secs);
        if !is_remote(&self.cfg.url) {
            return self.pull_local();
        }
        match self.cfg.format {
            FeedFormat::Misp => self.pull_misp().await,
            FeedFormat::Csv | FeedFormat::Freetext => self.pull_text().await,
        }
    }

    fn pull_local(&mut self) -> Result<bool, RefreshError> {
        let mut l = Loader::new(Policy {
            include_all: true,
            ..Policy::default()
        })
        .keep_accepted();
        l.load_path(Path::new(&self.cfg.url))?;
        let attrs = l.take_accepted();
        let changed = attrs.len() != self.flat.len() || attrs.iter().zip(&self.flat).any(|(a, b)| a.value != b.value);
        self.flat = attrs;
        Ok(changed)
    }

    /// A GET; `conditional` sends the stored validators. Returns the body (`None` for 304) and the answer's
    /// validators, which the caller stores only once everything the answer points to has been applied: storing them
    /// first would turn the next pull into a 304 and a failed event would never be fetched again.
    async fn get(&mut self, url: &str, conditional: bool) -> Result<Option<(bytes::Bytes, Validators)>, RefreshError> {
        self.requests += 1;
        let started = Instant::now();
        let mut req = self.http.get(url);
        if conditional {
            if let Some(e) = &self.etag {
                req = req.header(IF_NONE_MATCH, e);
            }
            if let Some(m) = &self.last_modified {
                req = req.header(IF_MODIFIED_SINCE, m);
            }
        }
        let pg = PageNo(None);
        let resp = req.send().await.map_err(|e| RefreshError::Transport {
            url: url.to_string(),
            page: pg,
            message: e.to_string(),
        })?;
        let status = resp.status();
        tracing::info!(
            method = "GET",
            url,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "feed request"
        );
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(RefreshError::Http {
                url: url.to_string(),
                page: pg,
                status: status.as_u16(),
                message: status.canonical_reason().unwrap_or("").to_string(),
            });
        }
        let h = resp.headers();
        let header = |n| {
            h.get(n)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let bytes = resp.bytes().await.map_err(|e| RefreshError::Body {
            url: url.to_string(),
            page: pg,
            message: e.to_string(),
        })?;
        Ok(Some((bytes, validators)))
    }

    fn store_validators(&mut self, v: Validators) {
        self.etag = v.etag;
        self.last_modified = v.last_modified;
    }

    async fn pull_misp(&mut self) -> Result<bool, RefreshError> {
        let base = self.cfg.url.trim_end_matches('/').to_string();
        let murl = format!("{base}/manifest.json");
        let Some((bytes, validators)) = self.get(&murl, true).await? else {
            return Ok(false);
        };
        let manifest: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| RefreshError::Json {
                url: murl.clone(),
                page: PageNo(None),
                message: e.to_string(),
            })?;
        let mut changed = false;
        let mut failed = 0usize;
        let before = self.events.len();
        self.events.retain(|uuid, _| manifest.contains_key(uuid));
        changed |= self.events.len() != before;
        for (uuid, entry) in &manifest {
            if uuid.len() != 36 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                tracing::warn!(url = %murl, "skipping manifest key {uuid:?}: not a uuid");
                continue;
            }
            let ts = entry
                .get("timestamp")
                .and_then(crate::load::lenient_string)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            if self.events.get(uuid).is_some_and(|(known, _)| *known >= ts) {
                continue;
            }
            let eurl = format!("{base}/{uuid}.json");
            match self.get(&eurl, false).await {
                Ok(Some((b, _))) => match collect_attributes(&eurl, &b) {
                    Ok(attrs) => {
                        self.events.insert(uuid.clone(), (ts, attrs));
                        changed = true;
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!("{e}; keeping the previous copy of this event, retried next pull");
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    failed += 1;
                    tracing::warn!("{e}; keeping the previous copy of this event, retried next pull");
                }
            }
        }
        if failed == 0 {
            self.store_validators(validators);
        } else {
            tracing::warn!(url = %murl, failed, "feed events failed; the manifest is fetched again next pull");
        }
        Ok(changed)
    }

    async fn pull_text(&mut self) -> Result<bool, RefreshError> {
        let url = self.cfg.url.clone();
        let Some((bytes, validators)) = self.get(&url, true).await? else {
            return Ok(false);
        };
        let event = Arc::new(EventMeta {
            info: Some(format!("feed {}", self.cfg.name)),
            ..Default::default()
        });
        let text = String::from_utf8_lossy(&bytes);
        let values = text_feed_values(&self.cfg, &text)
            .map_err(|e| RefreshError::Config(format!("feed {}: {e}", self.cfg.name)))?;
        let attrs = values
            .into_iter()
            .map(|(line, misp_type, value)| RawAttribute {
                misp_type: misp_type.into(),
                value,
                to_ids: true,
                event: event.clone(),
                tags: vec![format!("feed:{}", self.cfg.name)],
                location: format!("{url}:{line}").into(),
                ..Default::default()
            })
            .collect();
        self.flat = attrs;
        self.store_validators(validators);
        Ok(true)
    }
}

/// Prepares CSV text for the parser: empty and `#` comment lines become a lone delimiter (a record with no value;
/// the parser would skip an empty line without counting it, and every later line number would be off), and the
/// blanks between a delimiter and an opening quote (`"a", "b"`, as ThreatFox writes its CSV) are dropped, so the field
/// is read as quoted, as PHP's `str_getcsv` in MISP's feed import reads it.
fn csv_prepared(text: &str, delimiter: u8) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let line_start = i == 0 || b[i - 1] == b'\n';
        if line_start {
            let end = memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |n| i + n);
            let body = b[i..end].trim_ascii();
            if body.is_empty() || body[0] == b'#' {
                out.push(delimiter);
                i = end;
                if i < b.len() {
                    out.push(b'\n');
                    i += 1;
                }
                continue;
            }
        }
        out.push(b[i]);
        if b[i] == delimiter {
            let mut j = i + 1;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The values of a CSV or freetext feed as MISP's feed import reads them, with the line each came from.
///
/// CSV is parsed with quoting (the `csv` crate), `#` lines are comments, and the value columns are MISP's 1-based
/// `value` setting (`"2"`, `"1,3"`), or `value_column` (0-based) when that is not set. Freetext is every
/// whitespace-separated word. Each value is refanged and typed as a plain list types it (so `1.2.3.4:443` is an
/// `ip-dst|port`) unless the feed names a MISP type, and values the exclusion regex matches are skipped.
pub fn text_feed_values(cfg: &FeedConfig, text: &str) -> Result<Vec<(usize, String, String)>, String> {
    let exclude = match cfg.exclude_regex.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(
            super::warninglist::php_regex(r)
                .or_else(|| regex::Regex::new(r).ok())
                .ok_or_else(|| format!("exclude_regex {r:?} does not compile"))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    let mut push = |line: usize, raw: &str| {
        let v = raw.trim().trim_matches('"');
        if v.is_empty() || exclude.as_ref().is_some_and(|re| re.is_match(v)) {
            return;
        }
        let (t, v) = match &cfg.misp_type {
            Some(t) => (t.clone(), v.to_string()),
            None => {
                let (t, v) = crate::load::typed(v);
                (t.to_string(), v)
            }
        };
        out.push((line, t, v));
    };
    match cfg.format {
        FeedFormat::Csv => {
            let columns: Vec<usize> = match &cfg.value {
                Some(v) => v
                    .split(',')
                    .map(|c| match c.trim().parse::<usize>() {
                        Ok(n) if n >= 1 => Ok(n - 1),
                        _ => Err(format!("value {v:?}: columns are 1-based numbers, comma-separated")),
                    })
                    .collect::<Result<_, _>>()?,
                None => vec![cfg.value_column],
            };
            let delimiter = u8::try_from(cfg.delimiter).map_err(|_| "the delimiter must be one ASCII character")?;
            let text = csv_prepared(text, delimiter);
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(&text[..]);
            for rec in rdr.records() {
                let Ok(rec) = rec else { continue };
                let line = rec.position().map_or(0, |p| p.line() as usize);
                for &c in &columns {
                    if let Some(v) = rec.get(c) {
                        push(line, v);
                    }
                }
            }
        }
        _ => {
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.starts_with('#') {
                    continue;
                }
                for word in line.split_whitespace() {
                    push(i + 1, word);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::text_feed_values;
    use crate::config::{FeedConfig, FeedFormat};

    fn cfg(format: FeedFormat, extra: &str) -> FeedConfig {
        let f = if format == FeedFormat::Csv { "csv" } else { "freetext" };
        toml::from_str(&format!("name = \"t\"\nurl = \"/x\"\nformat = \"{f}\"\n{extra}")).unwrap()
    }

    #[test]
    fn csv_feeds_use_misp_one_based_columns_quoting_and_the_exclusion_regex() {
        // The shape of a ThreatFox CSV export: quoted fields, `ip:port` values, comments.
        let text = "# ThreatFox IOCs\n\
            \"2024-05-01 10:00:00\", \"1262930\", \"185.220.101.47:443\", \"ip:port\", \"botnet_cc\"\n\
            \"2024-05-01 10:01:00\", \"1262931\", \"evil[.]example\", \"domain\", \"botnet_cc\"\n\
            \"2024-05-01 10:02:00\", \"1262932\", \"10.1.2.3:80\", \"ip:port\", \"botnet_cc\"\n\
            \"2024-05-01 10:03:00\", \"1262933\", \"a, b.example\", \"domain\", \"x\"\n";
        let c = cfg(FeedFormat::Csv, "value = \"3\"\nexclude_regex = \"/^10\\\\./\"");
        let got = text_feed_values(&c, text).unwrap();
        let typed: Vec<(&str, &str)> = got.iter().map(|(_, t, v)| (t.as_str(), v.as_str())).collect();
        assert_eq!(
            typed,
            [
                ("ip-dst|port", "185.220.101.47|443"),
                ("domain", "evil[.]example"),
                ("domain", "a, b.example")
            ]
        );
        assert_eq!(got[0].0, 2, "the line it came from");
        let two = cfg(FeedFormat::Csv, "value = \"3,5\"");
        assert_eq!(text_feed_values(&two, text).unwrap().len(), 8);
        assert!(text_feed_values(&cfg(FeedFormat::Csv, "value = \"0\""), text).is_err());
        assert!(text_feed_values(&cfg(FeedFormat::Csv, "exclude_regex = \"/(/\""), text).is_err());
    }

    #[test]
    fn freetext_feeds_type_words_as_plain_lists_do() {
        let text = "C2 at 185.220.101.47:8080 and hxxp://evil[.]example/gate\n# a comment 1.2.3.4\n";
        let got = text_feed_values(&cfg(FeedFormat::Freetext, ""), text).unwrap();
        let types: Vec<&str> = got.iter().map(|(_, t, _)| t.as_str()).collect();
        assert!(types.contains(&"ip-dst|port") && types.contains(&"url"), "{got:?}");
        assert!(!got.iter().any(|(_, _, v)| v == "1.2.3.4"), "comments are skipped");
    }
}
