//! Feeds: MISP JSON feeds by URL (manifest first, then only events whose timestamp changed), CSV and freetext
//! files by URL (conditional GET with ETag / If-Modified-Since), and local files or directories.
//!
//! Each feed keeps its last good contribution: a failing pull logs, counts, and leaves it as it was.

use super::error::{PageNo, RefreshError};
use crate::config::{FeedConfig, FeedFormat};
use crate::indicator::{classify_plain, EventMeta};
use crate::load::{Loader, RawAttribute};
use crate::Policy;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    async fn get(&mut self, url: &str, conditional: bool) -> Result<Option<bytes::Bytes>, RefreshError> {
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
        if conditional {
            let h = resp.headers();
            self.etag = h.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
            self.last_modified = h.get(LAST_MODIFIED).and_then(|v| v.to_str().ok()).map(str::to_string);
        }
        let bytes = resp.bytes().await.map_err(|e| RefreshError::Body {
            url: url.to_string(),
            page: pg,
            message: e.to_string(),
        })?;
        Ok(Some(bytes))
    }

    async fn pull_misp(&mut self) -> Result<bool, RefreshError> {
        let base = self.cfg.url.trim_end_matches('/').to_string();
        let murl = format!("{base}/manifest.json");
        let Some(bytes) = self.get(&murl, true).await? else {
            return Ok(false);
        };
        let manifest: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| RefreshError::Json {
                url: murl.clone(),
                page: PageNo(None),
                message: e.to_string(),
            })?;
        let mut changed = false;
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
                Ok(Some(b)) => match collect_attributes(&eurl, &b) {
                    Ok(attrs) => {
                        self.events.insert(uuid.clone(), (ts, attrs));
                        changed = true;
                    }
                    Err(e) => tracing::warn!("{e}; keeping the previous copy of this event"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}; keeping the previous copy of this event"),
            }
        }
        Ok(changed)
    }

    async fn pull_text(&mut self) -> Result<bool, RefreshError> {
        let url = self.cfg.url.clone();
        let Some(bytes) = self.get(&url, true).await? else {
            return Ok(false);
        };
        let event = Arc::new(EventMeta {
            info: Some(format!("feed {}", self.cfg.name)),
            ..Default::default()
        });
        let text = String::from_utf8_lossy(&bytes);
        let mut attrs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let values: Vec<&str> = match self.cfg.format {
                FeedFormat::Csv => line
                    .split(self.cfg.delimiter)
                    .nth(self.cfg.value_column)
                    .into_iter()
                    .collect(),
                _ => line.split_whitespace().collect(),
            };
            for v in values {
                let v = v.trim().trim_matches('"');
                if v.is_empty() {
                    continue;
                }
                let t = self
                    .cfg
                    .misp_type
                    .clone()
                    .unwrap_or_else(|| classify_plain(v).to_string());
                attrs.push(RawAttribute {
                    misp_type: t,
                    value: v.to_string(),
                    to_ids: true,
                    event: event.clone(),
                    tags: vec![format!("feed:{}", self.cfg.name)],
                    location: format!("{url}:{}", i + 1),
                    ..Default::default()
                });
            }
        }
        self.flat = attrs;
        Ok(true)
    }
}
