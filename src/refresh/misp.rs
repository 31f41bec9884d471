//! The MISP REST client: `POST /attributes/restSearch` with explicit paging, incremental pulls by `timestamp`,
//! retries with backoff and jitter that honour 429, and a least-privilege check of the key's role.
//!
//! The traps from MISP's source are handled here: filters only work in a JSON body sent with exactly
//! `Content-Type: application/json`; filter values go as `0`/`1` because JSON `false` silently removes a filter;
//! rows are ordered by `Attribute.id asc` since MISP has no default order; paging stops on an empty page (a short
//! one may only have lost Allowedlist rows), and `X-Result-Count` is never trusted as a total.

use super::error::{PageNo, RefreshError};
use crate::config::MispConfig;
use crate::load::RawAttribute;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The MISP API key. It has no `Display`, and its `Debug` is redacted, so it cannot reach a log line or an error.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// Reads the key from the configured environment variable, or else the key file.
    pub fn load(cfg: &MispConfig) -> Result<ApiKey, RefreshError> {
        if let Ok(k) = std::env::var(&cfg.key_env) {
            let k = k.trim().to_string();
            if !k.is_empty() {
                return Ok(ApiKey(k));
            }
        }
        if let Some(path) = &cfg.key_file {
            warn_if_shared(path);
            let k = std::fs::read_to_string(path)
                .map_err(|e| RefreshError::Key(format!("cannot read key file {}: {e}", path.display())))?;
            let k = k.trim().to_string();
            if k.is_empty() {
                return Err(RefreshError::Key(format!("key file {} is empty", path.display())));
            }
            return Ok(ApiKey(k));
        }
        Err(RefreshError::Key(format!(
            "set the environment variable {} or misp.key_file to the MISP API key",
            cfg.key_env
        )))
    }

    /// A key for tests and embedding.
    pub fn from_secret(s: impl Into<String>) -> ApiKey {
        ApiKey(s.into())
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", m.permissions().mode() & 0o777),
                "the MISP key file is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &std::path::Path) {}

/// What `GET /users/view/me` says about the key's role. Advice for least privilege, never a reason to stop a pull:
/// only restSearch's own answer says whether the key may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleReport {
    pub role: String,
    /// `perm_*` flags the key has beyond what iocmatch needs.
    pub excess: Vec<String>,
    /// `perm_*` flags iocmatch will need and the role lacks: `perm_auth` (API access), and `perm_sighting` when
    /// sightings are on.
    pub lacking: Vec<String>,
}

/// Permissions iocmatch may need: API access, and sightings when sightings are on. `perm_audit` is in MISP's stock
/// read-only role, and `perm_view_feed_correlations` only lets a reader see more, so neither is excess.
fn needed(flag: &str, sightings: bool) -> bool {
    matches!(flag, "perm_auth" | "perm_audit" | "perm_view_feed_correlations") || (sightings && flag == "perm_sighting")
}

/// What one restSearch pull asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// Everything in scope: the reconciliation that catches hard deletes.
    Full,
    /// Attributes changed since the attribute-timestamp cursor (`timestamp`), deleted ones included.
    Changed { since: i64 },
    /// Every attribute of the events changed since (`event_timestamp`): event tags added or removed, MISP-to-MISP
    /// sync, which leave the attributes' own timestamps alone.
    EventsChanged { since: i64 },
    /// Every attribute of the events published since (`publish_timestamp`): publishing changes no timestamp the
    /// other pulls see.
    Published { since: i64 },
    /// Every attribute of these events (`eventid`): what a push notification triggers when the scope depends on
    /// event properties the notification does not carry.
    Events(Vec<String>),
}

impl Pull {
    /// Whether the pull reads whole events, with the scope applied locally.
    pub fn event_level(&self) -> bool {
        matches!(
            self,
            Pull::EventsChanged { .. } | Pull::Published { .. } | Pull::Events(_)
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Pull::Full => "full",
            Pull::Changed { .. } => "timestamp",
            Pull::EventsChanged { .. } => "event_timestamp",
            Pull::Published { .. } => "publish_timestamp",
            Pull::Events(_) => "eventid",
        }
    }
}

/// The rows of a pull, and the server's clock when it answered the first page (its `Date` header): the cursor for
/// the next event-level pulls, which have no row timestamp to take one from.
#[derive(Debug, Default)]
pub struct Pulled {
    pub attributes: Vec<RawAttribute>,
    pub server_time: Option<i64>,
}

/// SQL `LIKE` as MISP's tag filters use it on MySQL's default collation: `%` any run, `_` one character, any case.
pub fn sql_like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative wildcard match with one backtrack point, linear in practice.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '_' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '%' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '%' {
        i += 1;
    }
    i == p.len()
}

pub struct MispClient {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    cfg: MispConfig,
}

impl MispClient {
    pub fn new(cfg: &MispConfig, key: ApiKey) -> Result<MispClient, RefreshError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .user_agent(concat!("iocmatch/", env!("CARGO_PKG_VERSION")))
            .https_only(!cfg.allow_http);
        if let Some(ca) = &cfg.ca_bundle {
            let pem = std::fs::read(ca).map_err(|e| RefreshError::Io {
                path: ca.display().to_string(),
                message: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RefreshError::Io {
                path: ca.display().to_string(),
                message: format!("not a PEM certificate bundle: {e}"),
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if cfg.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b
            .build()
            .map_err(|e| RefreshError::Config(format!("HTTP client: {e}")))?;
        Ok(MispClient {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            key,
            cfg: cfg.clone(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request with retries. Returns the status, headers and body of the first non-retryable answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        page: Option<u32>,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), RefreshError> {
        let url = self.url(path);
        let pg = PageNo(page);
        if self.cfg.insecure_skip_verify {
            tracing::warn!(url = %url, "TLS certificate verification is OFF for MISP (insecure_skip_verify)");
        }
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let mut auth = reqwest::header::HeaderValue::from_str(&self.key.0)
                .map_err(|_| RefreshError::Key("the API key contains characters not allowed in a header".into()))?;
            auth.set_sensitive(true);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(AUTHORIZATION, auth)
                .header(ACCEPT, "application/json");
            if let Some(b) = body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(b).expect("JSON values serialise"));
            }
            let result = self.answer(req, &url, pg).await;
            let elapsed = started.elapsed().as_millis() as u64;
            let (err, wait) = match result {
                Ok((status, headers, bytes)) => {
                    tracing::debug!(method = %method, path, status = status.as_u16(), duration_ms = elapsed, "MISP answered");
                    return Ok((status, headers, bytes));
                }
                Err((e, retry_after)) => (e, retry_after),
            };
            tracing::info!(method = %method, path, page, duration_ms = elapsed, error = %err, "MISP API call failed");
            attempt += 1;
            if !err.retryable() || attempt > self.cfg.retries {
                return Err(err);
            }
            let backoff = self.cfg.backoff_ms.saturating_mul(1 << (attempt - 1).min(10));
            let jitter = fastrand::u64(0..=backoff / 2);
            let delay = wait.unwrap_or(Duration::from_millis(backoff + jitter));
            tracing::warn!(
                path,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying MISP request: {err}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// A transport failure as an error naming the URL and page: a timeout, a broken body, or anything else.
    fn classify(&self, e: &reqwest::Error, url: &str, page: PageNo, reading_body: bool) -> RefreshError {
        let url = url.to_string();
        if e.is_timeout() {
            RefreshError::Timeout {
                url,
                page,
                secs: self.cfg.timeout_secs,
            }
        } else if reading_body {
            RefreshError::Body {
                url,
                page,
                message: error_chain(e),
            }
        } else {
            RefreshError::Transport {
                url,
                page,
                message: error_chain(e),
            }
        }
    }

    /// Sends once and classifies the answer; a 429 comes back with the delay the server asked for.
    async fn answer(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        page: PageNo,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), (RefreshError, Option<Duration>)> {
        let resp = req
            .send()
            .await
            .map_err(|e| (self.classify(&e, url, page, false), None))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| (self.classify(&e, url, page, true), None))?;
        if status.is_success() {
            return Ok((status, headers, bytes));
        }
        let message = misp_message(&bytes);
        let u = url.to_string();
        let err = match status.as_u16() {
            403 => RefreshError::Forbidden { url: u, page, message },
            405 => RefreshError::NoApiAccess { url: u, message },
            code => RefreshError::Http {
                url: u,
                page,
                status: code,
                message,
            },
        };
        let wait = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(&headers))
            .flatten();
        Err((err, wait))
    }

    /// The restSearch body for one page of `pull`.
    ///
    /// Full and attribute-timestamp pulls filter on the server by every scope setting. The event-level pulls
    /// (`event_timestamp`, `publish_timestamp`, `eventid`) send no tag or type filter: they must see every row of
    /// the changed event, so a row that left the scope (its event was tagged `tlp:red`) comes back and is removed
    /// by [`MispClient::in_scope`], applied locally.
    pub fn search_body(&self, page: u32, pull: &Pull) -> Value {
        let c = &self.cfg;
        let mut b = json!({
            "returnFormat": "json",
            "order": "Attribute.id asc",
            "page": page,
            "limit": c.page_size,
            "includeEventTags": 1,
            "includeEventUuid": 1,
        });
        let o = b.as_object_mut().expect("object");
        match pull {
            Pull::Full if c.to_ids_only => {
                o.insert("to_ids".into(), json!(1));
            }
            Pull::Full => {}
            Pull::Changed { since } => {
                o.insert("timestamp".into(), json!(since));
            }
            Pull::EventsChanged { since } => {
                o.insert("event_timestamp".into(), json!(since));
            }
            Pull::Published { since } => {
                o.insert("publish_timestamp".into(), json!(since));
            }
            Pull::Events(ids) => {
                o.insert("eventid".into(), json!(ids));
            }
        }
        if !matches!(pull, Pull::Full) {
            o.insert("deleted".into(), json!([0, 1]));
        }
        if let Some(p) = c.published {
            o.insert("published".into(), json!(p as u8));
        }
        if !c.orgs.is_empty() {
            o.insert("org".into(), json!(c.orgs));
        }
        if pull.event_level() {
            return b;
        }
        if !c.types.is_empty() {
            o.insert("type".into(), json!(c.types));
        }
        if !c.tags.is_empty() || !c.not_tags.is_empty() {
            let mut t = serde_json::Map::new();
            if !c.tags.is_empty() {
                t.insert("OR".into(), json!(c.tags));
            }
            if !c.not_tags.is_empty() {
                t.insert("NOT".into(), json!(c.not_tags));
            }
            o.insert("tags".into(), Value::Object(t));
        }
        b
    }

    /// Whether an attribute is in the configured scope by what it carries: its type, and its tags with its event's
    /// (`includeEventTags`), matched as MISP matches tag names (SQL `LIKE`: `%` and `_` wildcards, any case).
    /// `published` and `orgs` are event properties the rows do not carry; they stay server-side filters.
    pub fn in_scope(&self, a: &RawAttribute) -> bool {
        let c = &self.cfg;
        let tagged = |patterns: &[String]| a.tags.iter().any(|t| patterns.iter().any(|p| sql_like(p, t)));
        (c.types.is_empty() || c.types.iter().any(|t| t.eq_ignore_ascii_case(&a.misp_type)))
            && (c.tags.is_empty() || tagged(&c.tags))
            && !tagged(&c.not_tags)
    }

    /// Whether the scope depends on what a MISP push notification does not carry (event tags, the event's
    /// organisation), so a pushed attribute must be confirmed by a REST pull of its event.
    pub fn scope_needs_event(&self) -> bool {
        !self.cfg.tags.is_empty() || !self.cfg.not_tags.is_empty() || !self.cfg.orgs.is_empty()
    }

    /// The `published` filter, which push notifications can be checked against (they carry `Event.published`).
    pub fn published_filter(&self) -> Option<bool> {
        self.cfg.published
    }

    /// Pulls every page of `pull`; paging ends on the empty page.
    pub async fn pull(&self, pull: &Pull) -> Result<Pulled, RefreshError> {
        let path = "/attributes/restSearch";
        let url = self.url(path);
        let mut out = Pulled::default();
        let mut page = 1u32;
        loop {
            let started = Instant::now();
            let body = self.search_body(page, pull);
            let (status, headers, bytes) = self.send(Method::POST, path, Some(&body), Some(page)).await?;
            if page == 1 {
                out.server_time = headers
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|d| httpdate::parse_http_date(d).ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
            }
            let rows = parse_attributes(&bytes, &url, page)?;
            let skipped: usize = header_num(&headers, "x-skipped-elements-count").unwrap_or(0);
            tracing::info!(
                method = "POST",
                path,
                pull = pull.name(),
                page,
                status = status.as_u16(),
                rows = rows.len(),
                duration_ms = started.elapsed().as_millis() as u64,
                "MISP API call"
            );
            let n = rows.len();
            out.attributes.extend(rows);
            // MISP removes Allowedlist matches after the SQL LIMIT without counting them in
            // X-Skipped-Elements-Count, so a short page is only a hint that the end is near: the empty page ends it.
            if n == 0 {
                return Ok(out);
            }
            if n + skipped < self.cfg.page_size {
                tracing::debug!(
                    page,
                    rows = n,
                    skipped,
                    "short page; asking for the next one to be sure"
                );
            }
            page += 1;
        }
    }

    /// Reports sightings by value (for indicators without a MISP attribute uuid), at `timestamp`.
    pub async fn add_sightings(&self, values: &[String], timestamp: i64, source: &str) -> Result<(), RefreshError> {
        self.sighting(
            json!({ "values": values, "timestamp": timestamp, "source": source }),
            values.len(),
        )
        .await
    }

    /// Reports one sighting of the attribute `uuid`, at `timestamp`: the form MISP attributes exactly, whatever the
    /// attribute's stored value looks like (a URL with its scheme, a CIDR with its host bits).
    pub async fn add_sighting(&self, uuid: &str, timestamp: i64, source: &str) -> Result<(), RefreshError> {
        self.sighting(json!({ "uuid": uuid, "timestamp": timestamp, "source": source }), 1)
            .await
    }

    /// `POST /sightings/add`. MISP answers "nothing matched" with HTTP 200 and a message, so the body is checked.
    async fn sighting(&self, body: Value, rows: usize) -> Result<(), RefreshError> {
        let path = "/sightings/add";
        let url = self.url(path);
        let started = Instant::now();
        let (status, _, bytes) = self.send(Method::POST, path, Some(&body), None).await?;
        tracing::debug!(
            method = "POST",
            path,
            status = status.as_u16(),
            rows,
            duration_ms = started.elapsed().as_millis() as u64,
            "MISP API call"
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if v.get("Sighting").is_some() {
            return Ok(());
        }
        Err(RefreshError::Http {
            url,
            page: PageNo(None),
            status: status.as_u16(),
            message: misp_message(&bytes),
        })
    }

    /// Reads the key's role and lists the permissions it has beyond what iocmatch needs.
    pub async fn whoami(&self) -> Result<RoleReport, RefreshError> {
        let path = "/users/view/me";
        let (v, url) = self.get_json(path).await?;
        let role = v
            .get("Role")
            .and_then(Value::as_object)
            .ok_or_else(|| RefreshError::Json {
                url: url.clone(),
                page: PageNo(None),
                message: "no Role object in /users/view/me".into(),
            })?;
        let flag = |k: &str| role.get(k).and_then(crate::load::lenient_bool).unwrap_or(false);
        let mut excess: Vec<String> = role
            .keys()
            .filter(|k| k.starts_with("perm_") && flag(k) && !needed(k, self.cfg.sightings))
            .cloned()
            .collect();
        excess.sort();
        let lacking = ["perm_auth", "perm_sighting"]
            .into_iter()
            .filter(|k| needed(k, self.cfg.sightings) && !flag(k))
            .map(String::from)
            .collect();
        Ok(RoleReport {
            role: role.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            excess,
            lacking,
        })
    }
}

impl MispClient {
    /// A GET whose answer must be JSON; returns it with the URL, for errors.
    async fn get_json(&self, path: &str) -> Result<(Value, String), RefreshError> {
        let url = self.url(path);
        let started = Instant::now();
        let (status, _, bytes) = self.send(Method::GET, path, None, None).await?;
        tracing::info!(
            method = "GET",
            path,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "MISP API call"
        );
        let v = serde_json::from_slice(&bytes).map_err(|e| RefreshError::Json {
            url: url.clone(),
            page: PageNo(None),
            message: e.to_string(),
        })?;
        Ok((v, url))
    }

    /// The warninglists the MISP server has enabled, as (id, name): `GET /warninglists/index`. MISP ships every
    /// list disabled and its admin enables a chosen set, which `validation.warninglists = "misp"` follows.
    pub async fn enabled_warninglists(&self) -> Result<Vec<(String, String)>, RefreshError> {
        let (v, url) = self.get_json("/warninglists/index").await?;
        let lists = v
            .get("Warninglists")
            .and_then(Value::as_array)
            .ok_or_else(|| RefreshError::Json {
                url,
                page: PageNo(None),
                message: "no Warninglists list in /warninglists/index".into(),
            })?;
        Ok(lists
            .iter()
            .filter_map(|w| w.get("Warninglist").unwrap_or(w).as_object())
            .filter(|w| w.get("enabled").and_then(crate::load::lenient_bool).unwrap_or(false))
            .filter_map(|w| {
                let id = w.get("id").and_then(crate::load::lenient_string)?;
                let name = w.get("name").and_then(Value::as_str)?.to_string();
                Some((id, name))
            })
            .collect())
    }

    /// One warninglist with its entries, `GET /warninglists/view/{id}`, as a misp-warninglists `list.json`, for a
    /// list the local warninglists directory does not have (one the MISP admin made).
    pub async fn warninglist(&self, id: &str) -> Result<Vec<u8>, RefreshError> {
        let (v, url) = self.get_json(&format!("/warninglists/view/{id}")).await?;
        let w = v.get("Warninglist").unwrap_or(&v);
        let strings = |list: &str, field: &str| -> Vec<Value> {
            w.get(list)
                .or_else(|| v.get(list))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get(field).and_then(Value::as_str).map(|s| json!(s)))
                .collect()
        };
        let name = w
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RefreshError::Json {
                url,
                page: PageNo(None),
                message: "no Warninglist.name".into(),
            })?;
        let file = json!({
            "name": name,
            "type": w.get("type").cloned().unwrap_or(json!("string")),
            "list": strings("WarninglistEntry", "value"),
            "matching_attributes": strings("WarninglistType", "type"),
        });
        Ok(serde_json::to_vec(&file).expect("JSON values serialise"))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn header_num(h: &HeaderMap, name: &str) -> Option<usize> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The delay a 429 asks for: `Retry-After` seconds, else `X-Rate-Limit-Reset` seconds; capped at 15 minutes.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs = header_num(h, "retry-after").or_else(|| header_num(h, "x-rate-limit-reset"))?;
    Some(Duration::from_secs(secs.min(900) as u64))
}

/// MISP's error body is `{"name","message","url"}`; fall back to the start of the body.
fn misp_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                .trim()
                .to_string()
        })
}

/// Reads a restSearch body: `{"response":{"Attribute":[...]}}`, or the shapes MISP uses when empty. Read straight
/// into attributes, never into a `Value` tree (some eight times the page's text).
pub fn parse_attributes(bytes: &[u8], url: &str, page: u32) -> Result<Vec<RawAttribute>, RefreshError> {
    let jerr = |message: String| RefreshError::Json {
        url: url.to_string(),
        page: PageNo(Some(page)),
        message,
    };
    let list = crate::load::restsearch_page(bytes).map_err(jerr)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.into_iter().enumerate() {
        match a {
            Ok(mut raw) => {
                raw.location = format!("{url} page {page} #{i}").into();
                out.push(raw)
            }
            Err(msg) => tracing::warn!("{url} page {page} #{i}: {msg}"),
        }
    }
    Ok(out)
}
