//! A MISP-compatible HTTP server for the tests, serving real MISP JSON with MISP's real behaviour: string ids,
//! filters read only from a JSON body sent with `Content-Type: application/json`, an empty page past the last one,
//! the `X-Result-Count` quirk, the 403 body shape, incremental `timestamp` queries, soft deletes and `to_ids` flips,
//! and `/users/view/me` roles. Faults can be queued: 500, a hang, a truncated body, malformed JSON, 403, 429.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod kafka;

pub const KEY: &str = "Zk3q9VbN2mT8xL5pR7sW1cY4hJ6dF0gA3eK9uQ2i";

#[derive(Clone, Debug)]
pub enum Fault {
    ServerError,
    Hang(Duration),
    Truncated,
    Malformed,
    Forbidden,
    TooMany { retry_after: u64 },
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct MispState {
    pub attributes: Mutex<Vec<Value>>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub role: Mutex<Value>,
    /// How `/users/view/me` answers: as MISP does, or as a proxy, an older MISP or a feed server might.
    pub view_me: Mutex<ViewMe>,
    pub requests: Mutex<Vec<Recorded>>,
    pub feed_dir: Mutex<Option<std::path::PathBuf>>,
    pub feed_requests: Mutex<Vec<String>>,
    pub sightings: Mutex<Vec<Value>>,
    /// Values MISP's site Allowedlist removes from restSearch answers: after the SQL LIMIT, and not counted in
    /// `X-Skipped-Elements-Count` (`app/Model/MispAttribute.php`, fetchAttributes after the query).
    pub allowedlist: Mutex<Vec<String>>,
    /// Warninglists as MISP's `/warninglists/view/{id}` returns them (`Warninglist` with `WarninglistEntry` and
    /// `WarninglistType`); `/warninglists/index` lists them without entries.
    pub warninglists: Mutex<Vec<Value>>,
    /// Event-level state by event id, as MISP keeps it on the event row: tags, `timestamp`, `publish_timestamp`,
    /// `published`. An event without an entry has no tags, timestamps 0 and is published.
    pub events: Mutex<std::collections::HashMap<String, EventState>>,
}

#[derive(Clone, Debug)]
pub struct EventState {
    pub tags: Vec<String>,
    pub timestamp: i64,
    pub publish_timestamp: i64,
    pub published: bool,
}

impl Default for EventState {
    fn default() -> Self {
        EventState {
            tags: Vec::new(),
            timestamp: 0,
            publish_timestamp: 0,
            published: true,
        }
    }
}

/// Now, in Unix seconds: event-level changes are stamped with MISP's clock, which is this machine's here.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViewMe {
    #[default]
    Misp,
    /// 404 with MISP's error body, as a server without the endpoint answers.
    NotFound,
    /// 200 with the user but no `Role` object.
    NoRole,
}

pub fn read_only_role() -> Value {
    json!({"id": "6", "name": "Read Only", "perm_auth": true, "perm_add": false, "perm_modify": false,
           "perm_publish": false, "perm_admin": false, "perm_site_admin": false, "perm_sighting": false,
           "perm_tagger": false, "perm_sync": false})
}

pub fn admin_role() -> Value {
    json!({"id": "1", "name": "admin", "perm_auth": true, "perm_add": true, "perm_modify": true,
           "perm_publish": true, "perm_admin": true, "perm_site_admin": true, "perm_sighting": true,
           "perm_tagger": true, "perm_sync": true})
}

impl MispState {
    pub fn new() -> Arc<MispState> {
        let s = MispState::default();
        *s.role.lock().unwrap() = read_only_role();
        Arc::new(s)
    }

    /// Serves the attributes of a real MISP event export, as `/attributes/restSearch` would return them.
    pub fn load_event_fixture(&self, path: &Path) {
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let events: Vec<Value> = match &v["response"] {
            Value::Array(a) => a.iter().map(|e| e["Event"].clone()).collect(),
            _ => vec![v["Event"].clone()],
        };
        let mut attrs = self.attributes.lock().unwrap();
        for ev in events {
            let header = json!({"org_id": ev["org_id"], "distribution": ev["distribution"], "id": ev["id"],
                                "info": ev["info"], "orgc_id": ev["orgc_id"], "uuid": ev["uuid"]});
            let mut all: Vec<Value> = ev["Attribute"].as_array().cloned().unwrap_or_default();
            for o in ev["Object"].as_array().into_iter().flatten() {
                all.extend(o["Attribute"].as_array().cloned().unwrap_or_default());
            }
            for mut a in all {
                let id = (attrs.len() + 1).to_string();
                let o = a.as_object_mut().unwrap();
                o.insert("id".into(), json!(id));
                o.insert("event_id".into(), ev["id"].clone());
                o.insert("Event".into(), header.clone());
                o.entry("deleted").or_insert(json!(false));
                attrs.push(a);
            }
        }
    }

    /// Adds a synthetic attribute with MISP's typing to event 77; returns its uuid.
    pub fn add(&self, misp_type: &str, value: &str, timestamp: i64) -> String {
        self.add_to_event("77", misp_type, value, timestamp)
    }

    /// Adds a synthetic attribute with MISP's typing to an event; returns its uuid.
    pub fn add_to_event(&self, event_id: &str, misp_type: &str, value: &str, timestamp: i64) -> String {
        let mut attrs = self.attributes.lock().unwrap();
        let id = attrs.len() + 1;
        let uuid = format!("a0000000-0000-4000-8000-{id:012}");
        let event_uuid = format!("e0000000-0000-4000-8000-{:0>12}", event_id);
        attrs.push(json!({
            "id": id.to_string(), "event_id": event_id, "object_id": "0", "object_relation": null,
            "category": "Network activity", "type": misp_type, "to_ids": true, "uuid": uuid,
            "timestamp": timestamp.to_string(), "distribution": "5", "sharing_group_id": "0", "comment": "",
            "deleted": false, "disable_correlation": false, "first_seen": null, "last_seen": null, "value": value,
            "Event": {"org_id": "1", "distribution": "1", "id": event_id, "info": "test event", "orgc_id": "1",
                      "uuid": event_uuid}
        }));
        uuid
    }

    /// Changes an event the way MISP does: `f` edits its state (tags, publishing); `timestamp` bumps
    /// `Event.timestamp` when given (tagging does, publishing does not). Attribute timestamps stay.
    pub fn edit_event(&self, event_id: &str, timestamp: Option<i64>, f: impl FnOnce(&mut EventState)) {
        let mut events = self.events.lock().unwrap();
        let e = events.entry(event_id.to_string()).or_default();
        f(e);
        if let Some(t) = timestamp {
            e.timestamp = t;
        }
    }

    /// Edits an attribute by uuid the way MISP does: the change plus a bumped timestamp.
    pub fn edit(&self, uuid: &str, field: &str, value: Value, timestamp: i64) {
        let mut attrs = self.attributes.lock().unwrap();
        let a = attrs.iter_mut().find(|a| a["uuid"] == uuid).expect("uuid");
        a[field] = value;
        a["timestamp"] = json!(timestamp.to_string());
    }

    pub fn hard_delete(&self, uuid: &str) {
        self.attributes.lock().unwrap().retain(|a| a["uuid"] != uuid);
    }

    pub fn fault(&self, f: Fault) {
        self.faults.lock().unwrap().push_back(f);
    }

    /// Adds a warninglist the way MISP stores one (every field a string but `enabled`); returns its id.
    pub fn add_warninglist(&self, name: &str, kind: &str, entries: &[&str], types: &[&str], enabled: bool) -> String {
        let mut w = self.warninglists.lock().unwrap();
        let id = (w.len() + 1).to_string();
        let entry = |(i, v): (usize, &&str)| json!({"id": (i + 1).to_string(), "value": v, "warninglist_id": id, "comment": null});
        let ty = |(i, t): (usize, &&str)| json!({"id": (i + 1).to_string(), "type": t, "warninglist_id": id});
        w.push(json!({"Warninglist": {
            "id": id, "name": name, "type": kind, "description": "", "version": "1", "enabled": enabled,
            "default": true, "category": "false_positive", "warninglist_entry_count": entries.len().to_string(),
            "valid_attributes": types.join(", "),
            "WarninglistEntry": entries.iter().enumerate().map(entry).collect::<Vec<_>>(),
            "WarninglistType": types.iter().enumerate().map(ty).collect::<Vec<_>>(),
        }}));
        id
    }

    pub fn search_requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/attributes/restSearch")
            .cloned()
            .collect()
    }
}

fn forbidden(url: &str) -> Response {
    let msg = "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.";
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"name": msg, "message": msg, "url": url})),
    )
        .into_response()
}

fn authorised(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(KEY)
}

fn num(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn event_of(events: &std::collections::HashMap<String, EventState>, a: &Value) -> EventState {
    a["event_id"]
        .as_str()
        .and_then(|id| events.get(id))
        .cloned()
        .unwrap_or_default()
}

/// The attribute's own tag names and its event's: what MISP's `tags` filter matches.
fn tags_of(a: &Value, ev: &EventState) -> Vec<String> {
    let own = a["Tag"].as_array().into_iter().flatten();
    own.filter_map(|t| t["name"].as_str().map(str::to_string))
        .chain(ev.tags.iter().cloned())
        .collect()
}

async fn rest_search(State(s): State<Arc<MispState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.requests.lock().unwrap().push(Recorded {
        path: "/attributes/restSearch".into(),
        content_type: ct.clone(),
        body: parsed.clone(),
    });
    if !authorised(&headers) {
        return forbidden("/attributes/restSearch");
    }
    let fault = s.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::ServerError) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"name": "An Internal Error Has Occurred.", "message": "An Internal Error Has Occurred.", "url": "/attributes/restSearch"}))).into_response()
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        Some(Fault::Forbidden) => return forbidden("/attributes/restSearch"),
        Some(Fault::TooMany { retry_after }) => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"name": "Rate limit exceeded.", "message": "Rate limit exceeded.", "url": "/attributes/restSearch"}))).into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
            r.headers_mut().insert("x-rate-limit-limit", HeaderValue::from(10u64));
            r.headers_mut().insert("x-rate-limit-remaining", HeaderValue::from(0u64));
            r.headers_mut().insert("x-rate-limit-reset", HeaderValue::from(retry_after));
            return r;
        }
        Some(Fault::Malformed) => {
            return ([("content-type", "application/json")], "{\"response\": {\"Attribute\": [{\"id\": \"1\",").into_response()
        }
        Some(Fault::Truncated) => {
            // The headers and a first chunk go out, then the connection breaks mid-body.
            let stream = futures_util::stream::unfold(0u8, |step| async move {
                match step {
                    0 => Some((Ok::<_, std::io::Error>(b"{\"response\": {\"Attribute\": [".to_vec()), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((Err(std::io::Error::other("connection reset mid-body")), 2))
                    }
                    _ => None,
                }
            });
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap();
        }
        None => {}
    }
    // MISP parses filters only from a JSON body with exactly this content type; otherwise they are dropped.
    let filters = if ct.as_deref() == Some("application/json") {
        parsed
    } else {
        json!({})
    };
    if body.is_empty() || filters == json!({}) && ct.as_deref() == Some("application/json") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"name": "Either specify the search terms in the url, or POST a json with the filter parameters.", "message": "Either specify the search terms in the url, or POST a json with the filter parameters.", "url": "/attributes/restSearch"}))).into_response();
    }
    let attrs = s.attributes.lock().unwrap();
    let events = s.events.lock().unwrap().clone();
    let deleted = match &filters["deleted"] {
        Value::Null => vec![0],
        Value::Array(a) => a.iter().filter_map(num).collect(),
        v => vec![num(v).unwrap_or(0)],
    };
    let mut rows: Vec<&Value> = attrs
        .iter()
        .filter(|a| deleted.contains(&(a["deleted"].as_bool().unwrap_or(false) as i64)))
        .filter(|a| match &filters["to_ids"] {
            Value::Null => true,
            Value::Bool(false) => true, // JSON false removes the filter, as in MISP
            v => num(v) == Some(a["to_ids"].as_bool().unwrap_or(false) as i64),
        })
        .filter(|a| match num(&filters["timestamp"]) {
            Some(ts) => num(&a["timestamp"]).unwrap_or(0) >= ts,
            None => true,
        })
        .filter(|a| match &filters["type"] {
            Value::Array(t) => t.contains(&a["type"]),
            Value::String(t) => a["type"] == *t,
            _ => true,
        })
        .filter(|a| {
            let ev = event_of(&events, a);
            let ids = match &filters["eventid"] {
                Value::Null => None,
                Value::Array(ids) => Some(ids.iter().filter_map(num).collect::<Vec<_>>()),
                v => Some(num(v).into_iter().collect()),
            };
            let all_tags = tags_of(a, &ev);
            let like = |want: &Value| {
                let pats: Vec<String> = match want {
                    Value::Array(p) => p.iter().filter_map(|x| x.as_str().map(str::to_lowercase)).collect(),
                    Value::String(p) => vec![p.to_lowercase()],
                    _ => Vec::new(),
                };
                all_tags.iter().any(|t| pats.contains(&t.to_lowercase()))
            };
            num(&filters["published"]).is_none_or(|p| (p == 1) == ev.published)
                && num(&filters["event_timestamp"]).is_none_or(|t| ev.timestamp >= t)
                && num(&filters["publish_timestamp"]).is_none_or(|t| ev.publish_timestamp >= t)
                && ids.is_none_or(|ids| ids.contains(&num(&a["event_id"]).unwrap_or(-1)))
                && (filters["tags"]["OR"].is_null() || like(&filters["tags"]["OR"]))
                && (filters["tags"]["NOT"].is_null() || !like(&filters["tags"]["NOT"]))
        })
        .collect();
    rows.sort_by_key(|a| num(&a["id"]).unwrap_or(0));
    let limit = num(&filters["limit"]).unwrap_or(0).max(0) as usize;
    let page = num(&filters["page"]).unwrap_or(1).max(1) as usize;
    let page_rows: Vec<Value> = if limit == 0 {
        rows.into_iter().cloned().collect()
    } else {
        rows.into_iter().skip(limit * (page - 1)).take(limit).cloned().collect()
    };
    drop(attrs);
    let allowed = s.allowedlist.lock().unwrap().clone();
    let with_event_tags = num(&filters["includeEventTags"]) == Some(1);
    let page_rows: Vec<Value> = page_rows
        .into_iter()
        .filter(|a| !allowed.iter().any(|v| a["value"] == *v))
        .map(|mut a| {
            let ev = event_of(&events, &a);
            if with_event_tags && !ev.tags.is_empty() {
                // MISP's JsonExport appends event tags to the attribute's Tag list with "inherited": 1.
                let mut tags = a["Tag"].as_array().cloned().unwrap_or_default();
                for (i, t) in ev.tags.iter().enumerate() {
                    tags.push(json!({"id": (100 + i).to_string(), "name": t, "colour": "#ffffff", "numerical_value": null, "inherited": 1}));
                }
                a["Tag"] = Value::Array(tags);
            }
            a
        })
        .collect();
    let result_count = if limit > 0 && page_rows.len() == limit {
        limit + 1
    } else if page_rows.is_empty() {
        1
    } else {
        page_rows.len()
    };
    let mut r = axum::Json(json!({"response": {"Attribute": page_rows}})).into_response();
    r.headers_mut()
        .insert("x-result-count", HeaderValue::from(result_count));
    r.headers_mut()
        .insert("x-skipped-elements-count", HeaderValue::from(0u64));
    r
}

async fn view_me(State(s): State<Arc<MispState>>, headers: HeaderMap) -> Response {
    s.requests.lock().unwrap().push(Recorded {
        path: "/users/view/me".into(),
        content_type: None,
        body: Value::Null,
    });
    if !authorised(&headers) {
        return forbidden("/users/view/me");
    }
    let role = s.role.lock().unwrap().clone();
    let mode = *s.view_me.lock().unwrap();
    match mode {
        ViewMe::Misp => axum::Json(
            json!({"User": {"id": "3", "email": "iocmatch@example.org", "role_id": role["id"]}, "Role": role}),
        )
        .into_response(),
        ViewMe::NotFound => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"name": "Not Found", "message": "Not Found", "url": "/users/view/me"})),
        )
            .into_response(),
        ViewMe::NoRole => {
            axum::Json(json!({"User": {"id": "3", "email": "iocmatch@example.org", "role_id": role["id"]}}))
                .into_response()
        }
    }
}

/// MISP answers a sighting that matched nothing with HTTP 200 and a message, as here.
async fn add_sightings(State(s): State<Arc<MispState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorised(&headers) {
        return forbidden("/sightings/add");
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.sightings.lock().unwrap().push(v.clone());
    let values: Vec<String> = v["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    // As Sighting.php saveSightings: by attribute uuid or id, else each value against the stored value exactly.
    let known = s
        .attributes
        .lock()
        .unwrap()
        .iter()
        .any(|a| match (&v["uuid"], &v["id"]) {
            (Value::String(u), _) => a["uuid"] == *u,
            (_, Value::String(id)) => a["id"] == *id,
            _ => values.iter().any(|x| a["value"] == *x),
        });
    if known {
        axum::Json(json!({"Sighting": {"id": "1", "attribute_id": "1", "event_id": "77", "org_id": "1", "date_sighting": "1700000000", "uuid": "s-1", "source": v["source"], "type": "0"}})).into_response()
    } else {
        axum::Json(json!({"message": "Could not add the Sighting. Reason: No valid attributes found that match the criteria."})).into_response()
    }
}

async fn warninglists_index(State(s): State<Arc<MispState>>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return forbidden("/warninglists/index");
    }
    let lists: Vec<Value> = s
        .warninglists
        .lock()
        .unwrap()
        .iter()
        .map(|w| {
            let mut w = w.clone();
            let o = w["Warninglist"].as_object_mut().unwrap();
            o.remove("WarninglistEntry");
            o.remove("WarninglistType");
            w
        })
        .collect();
    axum::Json(json!({ "Warninglists": lists })).into_response()
}

async fn warninglist_view(State(s): State<Arc<MispState>>, AxPath(id): AxPath<String>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return forbidden("/warninglists/view");
    }
    let found = s
        .warninglists
        .lock()
        .unwrap()
        .iter()
        .find(|w| w["Warninglist"]["id"] == id)
        .cloned();
    match found {
        Some(w) => axum::Json(w).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"name": "Invalid Warninglist.", "message": "Invalid Warninglist.", "url": format!("/warninglists/view/{id}")})),
        )
            .into_response(),
    }
}

async fn feed_file(State(s): State<Arc<MispState>>, AxPath(name): AxPath<String>, headers: HeaderMap) -> Response {
    s.feed_requests.lock().unwrap().push(name.clone());
    let Some(dir) = s.feed_dir.lock().unwrap().clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if name.contains('/') || name.contains("..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Ok(bytes) = std::fs::read(dir.join(&name)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{:x}-{}\"", bytes.len(), bytes.iter().map(|b| *b as u64).sum::<u64>());
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = bytes.into_response();
    r.headers_mut().insert("etag", HeaderValue::from_str(&etag).unwrap());
    r
}

pub fn router(state: Arc<MispState>) -> Router {
    Router::new()
        .route("/attributes/restSearch", post(rest_search))
        .route("/users/view/me", get(view_me))
        .route("/sightings/add", post(add_sightings))
        .route("/feed/{name}", get(feed_file))
        .route("/warninglists/index", get(warninglists_index))
        .route("/warninglists/view/{id}", get(warninglist_view))
        .with_state(state)
}

/// Starts the server on a loopback port; returns its base URL.
pub async fn serve(state: Arc<MispState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    format!("http://{addr}")
}

/// Starts the server with TLS (a self-signed certificate for `localhost`); returns the URL and the CA PEM.
pub async fn serve_tls(state: Arc<MispState>) -> (String, String) {
    let _ = rustls_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.key_pair.serialize_pem();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem.clone().into_bytes(), key_pem.into_bytes())
        .await
        .unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(std_listener, config)
            .serve(router(state).into_make_service())
            .await
            .unwrap();
    });
    (format!("https://localhost:{}", addr.port()), cert_pem)
}

/// The test binary links rustls with two crypto back ends (reqwest's and axum-server's), so it picks one.
fn rustls_provider() -> bool {
    rustls::crypto::ring::default_provider().install_default().is_ok()
}

/// Writes a config for the test server; returns the config path. The key goes in a mode-600 file.
pub fn write_config(dir: &Path, url: &str, extra_misp: &str, extra_top: &str) -> std::path::PathBuf {
    let key_file = dir.join("misp.key");
    std::fs::write(&key_file, KEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let allow_http = url.starts_with("http://");
    let cfg = format!(
        "state_dir = {state:?}\n{extra_top}\n[misp]\nurl = {url:?}\nallow_http = {allow_http}\nkey_env = \"IOCMATCH_TEST_UNSET_KEY\"\nkey_file = {key:?}\n{timeout}connect_timeout_secs = 2\nretries = 2\nbackoff_ms = 10\n{interval}{page}{extra_misp}\n",
        timeout = if extra_misp.contains("timeout_secs") { "" } else { "timeout_secs = 2\n" },
        interval = if extra_misp.contains("interval_secs") { "" } else { "interval_secs = 0\n" },
        page = if extra_misp.contains("page_size") { "" } else { "page_size = 50\n" },
        state = dir.join("state").display().to_string(),
        key = key_file.display().to_string(),
    );
    let p = dir.join("iocmatch.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}
