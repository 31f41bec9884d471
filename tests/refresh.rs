//! The refresher against a MISP-compatible test server serving real MISP JSON.

mod common;

use common::{Fault, MispState, KEY};
use iocmatch::config::Config;
use iocmatch::refresh::push::Notice;
use iocmatch::refresh::{Refresher, StartedFrom};
use iocmatch::scan::scan_line;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GLUPTEBA: &str = "fixtures/misp/events/eset__glupteba_glupteba.misp-event.json";

fn refresher(cfg_path: &Path) -> Refresher {
    Refresher::new(Config::load(cfg_path).unwrap()).unwrap()
}

fn hits(r: &Refresher, line: &str) -> Vec<String> {
    let snap = r.cell().load();
    let mut h = Vec::new();
    scan_line(&snap, line.as_bytes(), &mut h);
    h.iter().map(|h| snap.indicator(h.indicator).value.name()).collect()
}

async fn server_with(fixture: Option<&str>) -> (Arc<MispState>, String, tempfile::TempDir) {
    let state = MispState::new();
    if let Some(f) = fixture {
        state.load_event_fixture(Path::new(f));
    }
    let url = common::serve(state.clone()).await;
    (state, url, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_pages_through_real_misp_json_with_correct_requests() {
    let (state, url, dir) = server_with(Some(GLUPTEBA)).await;
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    let (from, report) = r.start().await.unwrap();
    assert_eq!(from, StartedFrom::Live);
    // glupteba: 321 attributes, all to_ids; regkey is unsupported; 4 domain|ip give 8 indicators.
    assert_eq!(r.store_len(), 321);
    assert!(report.total > 300, "{report:?}");
    assert_eq!(
        hits(&r, "GET http://x.server-1.ostdownload.xyz/x from 5.79.87.139"),
        ["server-1.ostdownload.xyz", "5.79.87.139"]
    );
    let reqs = state.search_requests();
    assert_eq!(
        reqs.len(),
        8,
        "321 rows in pages of 50: six full pages, a short one and the empty one"
    );
    for (i, q) in reqs.iter().enumerate() {
        assert_eq!(q.content_type.as_deref(), Some("application/json"));
        assert_eq!(q.body["returnFormat"], "json");
        assert_eq!(q.body["order"], "Attribute.id asc");
        assert_eq!(q.body["page"], i + 1);
        assert_eq!(q.body["limit"], 50);
        assert_eq!(q.body["to_ids"], 1, "0/1, never JSON false");
    }
    let cache = std::fs::read_to_string(dir.path().join("state/last-good.json")).unwrap();
    assert!(cache.contains("server-1.ostdownload.xyz"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_stops_on_an_empty_page_past_the_last_one() {
    let (state, url, dir) = server_with(None).await;
    for i in 0..100 {
        state.add("domain", &format!("d{i}.example.net"), 1_700_000_000);
    }
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    assert_eq!(r.store_len(), 100);
    assert_eq!(state.search_requests().len(), 3, "two full pages, then an empty one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_short_of_allowedlisted_rows_does_not_end_the_pull() {
    // MISP drops site-Allowedlist matches after the LIMIT and leaves them out of X-Skipped-Elements-Count
    // (app/Model/MispAttribute.php), so page 1 comes back with 49 of 50 rows although 50 more follow.
    let (state, url, dir) = server_with(None).await;
    for i in 0..100 {
        state.add("domain", &format!("d{i}.example.net"), 1_700_000_000);
    }
    state.allowedlist.lock().unwrap().push("d7.example.net".into());
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    assert_eq!(r.store_len(), 99, "the rows after the short page are pulled too");
    assert_eq!(hits(&r, "d99.example.net"), ["d99.example.net"]);
    assert_eq!(
        state.search_requests().len(),
        3,
        "a short page, a full one, then the empty one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_pull_applies_adds_soft_deletes_and_to_ids_flips() {
    let (state, url, dir) = server_with(None).await;
    let a = state.add("domain", "keep.example.net", 100);
    let b = state.add("domain", "softdel.example.net", 100);
    let c = state.add("domain", "flip.example.net", 100);
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    assert_eq!(r.store_len(), 3);
    state.add("ip-dst", "203.0.113.9", 200);
    state.edit(&b, "deleted", serde_json::json!(true), 200);
    state.edit(&c, "to_ids", serde_json::json!(false), 200);
    let report = r.refresh(false).await.unwrap();
    let reqs = state.search_requests();
    let last = reqs
        .iter()
        .rev()
        .find(|q| q.body.get("timestamp").is_some())
        .unwrap()
        .body
        .clone();
    assert_eq!(last["timestamp"], 100, "incremental by timestamp cursor");
    assert_eq!(last["deleted"], serde_json::json!([0, 1]));
    assert!(last.get("to_ids").is_none(), "to_ids flips must be visible");
    assert_eq!(r.store_len(), 2);
    assert_eq!(
        hits(&r, "x.keep.example.net 203.0.113.9"),
        ["keep.example.net", "203.0.113.9"]
    );
    assert!(hits(&r, "softdel.example.net flip.example.net").is_empty());
    assert_eq!(report.removed.values().sum::<usize>(), 2);
    assert_eq!(report.added.values().sum::<usize>(), 1);
    let _ = a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_reconciliation_catches_hard_deletes() {
    let (state, url, dir) = server_with(None).await;
    let gone = state.add("domain", "gone.example.net", 100);
    state.add("domain", "stays.example.net", 100);
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    state.hard_delete(&gone);
    r.refresh(false).await.unwrap();
    assert_eq!(r.store_len(), 2, "an incremental pull cannot see a hard delete");
    r.refresh(true).await.unwrap();
    assert_eq!(r.store_len(), 1);
    assert!(hits(&r, "gone.example.net").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_replace_the_serving_snapshot() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "evil.example.net", 100);
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    let v = r.cell().load().version();
    let cases: Vec<(Vec<Fault>, &str)> = vec![
        (vec![Fault::ServerError; 3], "HTTP 500"),
        (vec![Fault::Hang(Duration::from_secs(3)); 3], "timed out"),
        (vec![Fault::Truncated; 3], "truncated"),
        (vec![Fault::Malformed], "malformed JSON"),
        (vec![Fault::Forbidden], "MISP rejected the API key"),
    ];
    for (faults, want) in cases {
        for f in faults {
            state.fault(f);
        }
        let e = r.refresh(true).await.unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert!(
            e.contains(&format!("{url}/attributes/restSearch")) && e.contains("(page 1)"),
            "names URL and page: {e}"
        );
        assert!(!e.contains(KEY));
        assert_eq!(r.cell().load().version(), v, "the last good snapshot keeps serving");
        assert_eq!(hits(&r, "evil.example.net"), ["evil.example.net"]);
        state.faults.lock().unwrap().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_a_403_is_not() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "evil.example.net", 100);
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    state.fault(Fault::ServerError);
    r.start().await.unwrap();
    assert_eq!(
        state.search_requests().len(),
        3,
        "one 500, its retry, then the empty page 2"
    );
    state.fault(Fault::Forbidden);
    let before = state.search_requests().len();
    assert!(r.refresh(true).await.is_err());
    assert_eq!(state.search_requests().len(), before + 1, "403 is final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_for_retry_after() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "evil.example.net", 100);
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    state.fault(Fault::TooMany { retry_after: 1 });
    let t = Instant::now();
    r.start().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(950), "waited {:?}", t.elapsed());
    assert_eq!(r.store_len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_role_is_checked_for_excess_privilege_and_api_access() {
    let (state, url, dir) = server_with(None).await;
    let r = refresher(&common::write_config(dir.path(), &url, "", ""));
    let ro = r.check_key().await.unwrap();
    assert!(ro.excess.is_empty() && ro.lacking.is_empty(), "{ro:?}");
    // MISP's stock read-only role carries perm_audit: it is not excess.
    state.role.lock().unwrap()["perm_audit"] = serde_json::json!(true);
    assert!(r.check_key().await.unwrap().excess.is_empty());
    *state.role.lock().unwrap() = common::admin_role();
    let admin = r.check_key().await.unwrap();
    for f in [
        "perm_add",
        "perm_modify",
        "perm_publish",
        "perm_admin",
        "perm_site_admin",
        "perm_sighting",
    ] {
        assert!(admin.excess.contains(&f.to_string()), "{f} in {:?}", admin.excess);
    }
    let with_sightings = refresher(&common::write_config(dir.path(), &url, "sightings = true", ""));
    let admin_sighting = with_sightings.check_key().await.unwrap();
    assert!(!admin_sighting.excess.contains(&"perm_sighting".to_string()));
    assert!(admin_sighting.lacking.is_empty());
    // With sightings on, a role without perm_sighting is told that sightings will fail; still never excess.
    *state.role.lock().unwrap() = common::read_only_role();
    let ro_sighting = with_sightings.check_key().await.unwrap();
    assert_eq!(ro_sighting.lacking, ["perm_sighting"]);
    assert!(!ro_sighting.excess.contains(&"perm_sighting".to_string()));
    state.role.lock().unwrap()["perm_auth"] = serde_json::json!(false);
    assert_eq!(r.check_key().await.unwrap().lacking, ["perm_auth"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_check_that_cannot_read_the_role_never_stops_the_pull() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "evil.example.net", 1);
    let cfg = common::write_config(dir.path(), &url, "", "");
    for mode in [common::ViewMe::NotFound, common::ViewMe::NoRole] {
        *state.view_me.lock().unwrap() = mode;
        let c = cfg.display().to_string();
        let out = tokio::task::spawn_blocking(move || run_cli(&["fetch", "--config", &c], b""))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {stderr}");
        assert!(
            stderr.contains("could not check the MISP key's role"),
            "{mode:?}: {stderr}"
        );
        assert_eq!(stderr.matches("could not check").count(), 1, "warned once: {stderr}");
        let c = cfg.display().to_string();
        let out = tokio::task::spawn_blocking(move || run_cli(&["scan", "--config", &c], b"to evil.example.net\n"))
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The pull's own refusal is still an error.
    *state.view_me.lock().unwrap() = common::ViewMe::Misp;
    for _ in 0..4 {
        state.fault(Fault::Forbidden);
    }
    let c = cfg.display().to_string();
    let out = tokio::task::spawn_blocking(move || run_cli(&["fetch", "--config", &c], b""))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_misp_at_start_serves_the_cache_and_a_corrupt_cache_is_ignored() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "cached.example.net", 100);
    let cfg = common::write_config(dir.path(), &url, "", "");
    let mut r = refresher(&cfg);
    r.start().await.unwrap();
    drop(r);
    // MISP now answers 500 to everything.
    for _ in 0..10 {
        state.fault(Fault::ServerError);
    }
    let mut r2 = refresher(&cfg);
    let (from, _) = r2.start().await.unwrap();
    assert_eq!(from, StartedFrom::Cache);
    assert_eq!(hits(&r2, "cached.example.net"), ["cached.example.net"]);
    state.faults.lock().unwrap().clear();
    state.add("domain", "fresh.example.net", 200);
    r2.refresh(false).await.unwrap();
    assert_eq!(
        hits(&r2, "fresh.example.net cached.example.net").len(),
        2,
        "the first good pull replaces the cache"
    );
    // A corrupt cache is ignored with an error, and the refresher refetches.
    std::fs::write(dir.path().join("state/last-good.json"), b"{\"response\": {\"Attr").unwrap();
    for _ in 0..10 {
        state.fault(Fault::ServerError);
    }
    assert!(refresher(&cfg).start().await.is_err(), "no MISP and no usable cache");
    state.faults.lock().unwrap().clear();
    let (from, _) = refresher(&cfg).start().await.unwrap();
    assert_eq!(from, StartedFrom::Live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warninglists_and_the_allowlist_drop_indicators_and_say_which_list() {
    let (state, url, dir) = server_with(None).await;
    state.add("ip-dst", "10.1.2.3", 1);
    state.add("domain", "www.google.com", 1);
    state.add("md5", "d41d8cd98f00b204e9800998ecf8427e", 1);
    state.add("domain", "mine.corp.example", 1);
    state.add("domain", "evil.example.net", 1);
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, "corp.example\n").unwrap();
    let validation = format!(
        "warninglists_dir = {:?}\nallowlist = {:?}\n",
        warninglists_dir(),
        allow.display().to_string()
    );
    let mut r = refresher(&config_with_validation(dir.path(), &url, &validation));
    r.start().await.unwrap();
    assert_eq!(r.cell().load().len(), 1);
    let stats = r.metrics.last_load.lock().unwrap().clone();
    assert_eq!(
        stats.filtered.get("warninglist: List of RFC 1918 CIDR blocks"),
        Some(&1)
    );
    assert_eq!(
        stats.filtered.get("warninglist: Top 10K most-used sites from Tranco"),
        Some(&1)
    );
    assert_eq!(
        stats.filtered.get("warninglist: List of known hashes for empty files"),
        Some(&1)
    );
    assert_eq!(stats.filtered.get("allowlist"), Some(&1));
}

fn stored(r: &Refresher) -> Vec<String> {
    let mut v: Vec<String> = r.cell().load().indicators().map(|(_, i)| i.value.name()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_tags_and_publishing_reach_the_set_without_a_full_sync() {
    // Tagging an event and publishing it leave the attributes' timestamps alone (app/Model/Event.php), so the
    // attribute-timestamp pull cannot see either; the event_timestamp and publish_timestamp passes do.
    let (state, url, dir) = server_with(None).await;
    state.add_to_event("77", "domain", "a.example.net", 100);
    state.add_to_event("88", "domain", "b.example.net", 100);
    state.edit_event("88", Some(100), |e| e.published = false);
    let extra = "not_tags = [\"tlp:red\"]\npublished = true\nfull_sync_secs = 86400";
    let mut r = refresher(&common::write_config(dir.path(), &url, extra, ""));
    r.start().await.unwrap();
    assert_eq!(stored(&r), ["a.example.net"], "event 88 is not published");

    state.edit_event("77", Some(common::now()), |e| e.tags.push("tlp:red".into()));
    r.refresh(false).await.unwrap();
    assert_eq!(
        stored(&r),
        Vec::<String>::new(),
        "the event turned tlp:red: its attribute goes"
    );
    let reqs = state.search_requests();
    let passes: Vec<&serde_json::Value> = reqs.iter().rev().take(4).map(|q| &q.body).collect();
    let event_pass = passes
        .iter()
        .find(|b| b.get("event_timestamp").is_some())
        .expect("an event_timestamp pass");
    assert!(event_pass.get("tags").is_none(), "scoped locally: {event_pass}");
    assert_eq!(event_pass["deleted"], serde_json::json!([0, 1]));
    assert!(
        passes.iter().any(|b| b.get("publish_timestamp").is_some()),
        "a publish_timestamp pass"
    );
    assert!(passes.iter().all(|b| b["published"] == 1));

    state.edit_event("88", None, |e| {
        e.published = true;
        e.publish_timestamp = common::now();
    });
    r.refresh(false).await.unwrap();
    assert_eq!(stored(&r), ["b.example.net"], "event 88 was published");

    state.edit_event("77", Some(common::now()), |e| e.tags.clear());
    r.refresh(false).await.unwrap();
    assert_eq!(stored(&r), ["a.example.net", "b.example.net"], "tlp:red removed again");
    let last_cursor = state
        .search_requests()
        .iter()
        .rev()
        .find_map(|q| q.body.get("timestamp").cloned())
        .unwrap();
    assert_eq!(last_cursor, 100, "event-level rows never move the attribute cursor");
}

fn push_add(uuid: &str, event: &str, misp_type: &str, value: &str, published: bool) -> Notice {
    let payload = serde_json::json!({
        "Attribute": {"id": "900", "event_id": event, "type": misp_type, "category": "Network activity",
                      "value": value, "to_ids": true, "uuid": uuid, "timestamp": common::now().to_string(),
                      "deleted": false},
        "Event": {"id": event, "uuid": format!("e0000000-0000-4000-8000-{event:0>12}"), "info": "x",
                  "published": published, "orgc_id": "1", "Orgc": {"id": "1", "name": "ORGNAME"}},
        "action": "add"
    });
    iocmatch::refresh::push::parse(payload.to_string().as_bytes(), "test")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_attributes_pass_the_scope_and_unknown_event_tags_are_asked_of_rest() {
    // MISP builds the push payload as site admin, without event tags and without an ACL or published check
    // (app/Model/MispAttribute.php afterSave): a push is a trigger, not the truth.
    let (state, url, dir) = server_with(None).await;
    state.add_to_event("70", "domain", "old.example.net", 100);
    let extra = "not_tags = [\"tlp:red\"]\npublished = true\ntypes = [\"domain\", \"ip-dst\"]";
    let mut r = refresher(&common::write_config(dir.path(), &url, extra, ""));
    r.start().await.unwrap();
    // MISP has saved them (the push follows the save): one in a tlp:red event, one in a clean one.
    let red = state.add_to_event("77", "domain", "red.example.net", common::now());
    state.edit_event("77", Some(common::now()), |e| e.tags.push("tlp:red".into()));
    let ok = state.add_to_event("78", "domain", "ok.example.net", common::now());
    let before = state.search_requests().len();
    r.apply_push(vec![
        push_add(&red, "77", "domain", "red.example.net", true),
        push_add(&ok, "78", "domain", "ok.example.net", true),
        push_add(
            "a0000000-0000-4000-8000-000000009991",
            "78",
            "md5",
            "d41d8cd98f00b204e9800998ecf8427f",
            true,
        ),
        push_add(
            "a0000000-0000-4000-8000-000000009992",
            "79",
            "domain",
            "draft.example.net",
            false,
        ),
    ])
    .await
    .unwrap();
    assert_eq!(stored(&r), ["ok.example.net", "old.example.net"]);
    let reqs = state.search_requests();
    assert_eq!(reqs.len(), before + 2, "one eventid pull (and its empty page)");
    assert_eq!(reqs[before].body["eventid"], serde_json::json!(["77", "78"]));
    assert!(reqs[before].body.get("tags").is_none());

    // MISP deletes an event's attributes with no attribute notification, only the event delete.
    let del = br#"{"Event":{"id":"78","uuid":"e0000000-0000-4000-8000-000000000078","info":"x"},"action":"delete"}"#;
    let n = iocmatch::refresh::push::parse(del, "test").unwrap().unwrap();
    r.apply_push(vec![n]).await.unwrap();
    assert_eq!(stored(&r), ["old.example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_sighted_by_attribute_uuid_at_the_record_time_and_none_is_dropped() {
    // MISP matches sightings by value against value1/value2 as stored (app/Model/Sighting.php), so a URL (stored
    // with its scheme) or a CIDR (with its host bits) hit by its normalised value sights nothing.
    let (state, url, dir) = server_with(None).await;
    let u_url = state.add("url", "http://evil.example.org/gate.php", 100);
    let u_dom = state.add("domain", "c2.example.net", 100);
    let u_net = state.add("ip-dst", "198.51.100.7/24", 100);
    let bulk: Vec<String> = (0..1200)
        .map(|i| state.add("domain", &format!("bulk{i}.example.com"), 100))
        .collect();
    let cfg_path = common::write_config(
        dir.path(),
        &url,
        "sightings = true\nsighting_source = \"iocmatch-test\"\npage_size = 5000",
        "",
    );
    let mut r = refresher(&cfg_path);
    r.start().await.unwrap();
    let snap = r.cell().load();
    let shutdown = iocmatch::shutdown::Shutdown::new();
    let misp_cfg = Config::load(&cfg_path).unwrap().misp.unwrap();
    let (tx, task) = iocmatch::refresh::sightings::spawn(&misp_cfg, 3600, shutdown.clone()).unwrap();
    let mut lines: Vec<String> = vec![
        "GET http://evil.example.org/gate.php?id=1 HTTP/1.1".into(),
        "query x.c2.example.net A".into(),
        "conn to 198.51.100.200:443".into(),
        "query x.c2.example.net AAAA".into(),
    ];
    lines.extend((0..1200).map(|i| format!("dns bulk{i}.example.com")));
    for (i, line) in lines.iter().enumerate() {
        let mut h = Vec::new();
        scan_line(&snap, line.as_bytes(), &mut h);
        assert_eq!(h.len(), 1, "{line}");
        let s = iocmatch::refresh::sightings::Sighting::of(&snap.indicator(h[0].indicator), 1_700_000_000 + i as i64);
        tx.send(s).await.unwrap();
    }
    // The interval has not come; stopping sends what is pending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.trigger();
    task.await.unwrap();
    let sent = state.sightings.lock().unwrap().clone();
    let uuids: std::collections::BTreeMap<String, &serde_json::Value> = sent
        .iter()
        .map(|b| (b["uuid"].as_str().unwrap().to_string(), b))
        .collect();
    assert_eq!(sent.len(), 1203, "one sighting per distinct attribute, none cut");
    assert_eq!(uuids.len(), 1203);
    for u in bulk.iter().chain([&u_url, &u_dom, &u_net]) {
        assert!(uuids.contains_key(u.as_str()), "{u} not sighted");
    }
    assert_eq!(uuids[&u_url]["timestamp"], 1_700_000_000, "the record's time");
    assert_eq!(uuids[&u_dom]["timestamp"], 1_700_000_003, "the newest of its two hits");
    assert!(sent.iter().all(|b| b["source"] == "iocmatch-test"));
}

/// A config for the test server with a `[validation]` section appended.
fn config_with_validation(dir: &Path, url: &str, validation: &str) -> std::path::PathBuf {
    let cfg = common::write_config(dir, url, "", "");
    let text = std::fs::read_to_string(&cfg).unwrap() + "[validation]\n" + validation;
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn warninglists_dir() -> String {
    std::fs::canonicalize("fixtures/misp/warninglists")
        .unwrap()
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warninglists_are_the_safe_default_a_named_set_or_the_set_misp_has_enabled() {
    // MISP ships every warninglist disabled (app/Model/Warninglist.php); applying a whole directory drops real C2
    // hosted on shared platforms. Real lists: fixtures/misp/warninglists (misp-warninglists @84f0610).
    let (state, url, dir) = server_with(None).await;
    for (t, v) in [
        ("domain", "x.duckdns.org"),
        ("domain", "x.ngrok.io"),
        ("url", "https://bit.ly/3xYzAbc"),
        ("domain", "www.google.com"),
        ("ip-dst", "10.1.2.3"),
        ("domain", "partner.example"),
        ("domain", "evil.example.net"),
    ] {
        state.add(t, v, 1);
    }
    let values = stored;
    let wl = warninglists_dir();
    let mut r = refresher(&config_with_validation(
        dir.path(),
        &url,
        &format!("warninglists_dir = {wl:?}\n"),
    ));
    r.start().await.unwrap();
    assert_eq!(
        values(&r),
        [
            "bit.ly/3xYzAbc",
            "evil.example.net",
            "partner.example",
            "x.duckdns.org",
            "x.ngrok.io"
        ],
        "the default drops the top site and the private address, never the C2 on platforms"
    );
    let stats = r.metrics.last_load.lock().unwrap().clone();
    assert_eq!(stats.warninglists.len(), 4, "{:?}", stats.warninglists);

    let dir2 = tempfile::tempdir().unwrap();
    let named = format!("warninglists_dir = {wl:?}\nwarninglists = [\"rfc1918\", \"lots-project\"]\n");
    let mut r = refresher(&config_with_validation(dir2.path(), &url, &named));
    r.start().await.unwrap();
    assert_eq!(
        values(&r),
        ["evil.example.net", "partner.example", "www.google.com"],
        "only the named lists: LOTS (chosen on purpose) drops the platforms' C2, tranco10k is not applied"
    );

    // "misp": the server has rfc1918 (also in the directory) and a list of its own enabled, tranco10k disabled.
    state.add_warninglist(
        "List of RFC 1918 CIDR blocks",
        "cidr",
        &["10.0.0.0/8"],
        &["ip-src", "ip-dst"],
        true,
    );
    state.add_warninglist(
        "Top 10K most-used sites from Tranco",
        "hostname",
        &["google.com"],
        &["domain"],
        false,
    );
    state.add_warninglist("Our partners", "hostname", &["partner.example"], &["ALL"], true);
    let dir3 = tempfile::tempdir().unwrap();
    let misp = format!("warninglists_dir = {wl:?}\nwarninglists = \"misp\"\n");
    let mut r = refresher(&config_with_validation(dir3.path(), &url, &misp));
    r.start().await.unwrap();
    assert_eq!(
        values(&r),
        [
            "bit.ly/3xYzAbc",
            "evil.example.net",
            "www.google.com",
            "x.duckdns.org",
            "x.ngrok.io"
        ],
        "MISP's enabled set: its own list fetched from MISP, tranco10k off"
    );
    let stats = r.metrics.last_load.lock().unwrap().clone();
    assert_eq!(stats.filtered.get("warninglist: Our partners"), Some(&1));
    assert_eq!(
        stats.filtered.get("warninglist: List of RFC 1918 CIDR blocks"),
        Some(&1)
    );

    // A name the directory does not have, and a regex that does not compile, are reported and counted where
    // `check` shows them; the rest of the list still applies.
    let dir4 = tempfile::tempdir().unwrap();
    let lists = dir4.path().join("lists");
    std::fs::create_dir_all(lists.join("bad-regex")).unwrap();
    std::fs::write(
        lists.join("bad-regex/list.json"),
        r#"{"name":"Broken regexes","type":"regex","version":1,"description":"","list":["/(unclosed/","/^partner\\.example$/"]}"#,
    )
    .unwrap();
    let typo = format!(
        "warninglists_dir = {:?}\nwarninglists = [\"rfc1819\", \"bad-regex\"]\n",
        lists.display().to_string()
    );
    let mut r = refresher(&config_with_validation(dir4.path(), &url, &typo));
    r.start().await.unwrap();
    let stats = r.metrics.last_load.lock().unwrap().clone();
    assert_eq!(stats.warnings.len(), 2, "{:?}", stats.warnings);
    assert!(
        stats.warnings.iter().any(|w| w.contains("rfc1819")),
        "{:?}",
        stats.warnings
    );
    assert!(
        stats
            .warnings
            .iter()
            .any(|w| w.contains("Broken regexes") && w.contains("(unclosed")),
        "{:?}",
        stats.warnings
    );
    assert_eq!(
        stats.filtered.get("warninglist: Broken regexes"),
        Some(&1),
        "the good pattern applies"
    );
}

/// Serves a copy of the fixture MISP feed whose manifest lists only the events the fixture carries (the real
/// manifest lists more), and writes a config with that feed; returns the feed directory, the event file names
/// (sorted) and the config path.
fn misp_feed(state: &MispState, url: &str, dir: &Path) -> (std::path::PathBuf, Vec<String>, std::path::PathBuf) {
    let src = Path::new("fixtures/misp/feed/infoblox");
    let out = dir.join("feed");
    std::fs::create_dir_all(&out).unwrap();
    let mut events = Vec::new();
    for e in std::fs::read_dir(src).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name != "manifest.json" && name.ends_with(".json") {
            std::fs::copy(src.join(&name), out.join(&name)).unwrap();
            events.push(name);
        }
    }
    events.sort();
    let mut manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    manifest.retain(|uuid, _| events.contains(&format!("{uuid}.json")));
    std::fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    *state.feed_dir.lock().unwrap() = Some(out.clone());
    let top = format!("[[feeds]]\nname = \"infoblox\"\nurl = \"{url}/feed\"\nformat = \"misp\"\nallow_http = true\n");
    let cfg_path = dir.join("feeds.toml");
    std::fs::write(
        &cfg_path,
        format!("state_dir = {:?}\n{top}", dir.join("st").display().to_string()),
    )
    .unwrap();
    (out, events, cfg_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misp_feed_by_url_fetches_only_changed_events_and_honours_etag() {
    let (state, url, dir) = server_with(None).await;
    let (_, _, cfg_path) = misp_feed(&state, &url, dir.path());
    let mut r = refresher(&cfg_path);
    let (from, _) = r.start().await.unwrap();
    assert_eq!(from, StartedFrom::LocalOnly);
    assert!(r.cell().load().len() > 100);
    let first = state.feed_requests.lock().unwrap().clone();
    assert_eq!(first[0], "manifest.json");
    assert_eq!(first.len(), 4, "each manifest event once: {first:?}");
    state.feed_requests.lock().unwrap().clear();
    r.refresh(true).await.unwrap();
    assert_eq!(
        *state.feed_requests.lock().unwrap(),
        ["manifest.json"],
        "304: nothing else fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_event_that_failed_is_fetched_again_though_the_manifest_is_unchanged() {
    // The manifest's ETag is stored only once every changed event it lists was applied (app/Model/Feed.php reads
    // events by manifest): otherwise the next manifest answers 304 and the failed event is never fetched again.
    let (state, url, dir) = server_with(None).await;
    let (feed_copy, events, cfg_path) = misp_feed(&state, &url, dir.path());
    let held_back = feed_copy.join(&events[0]);
    let aside = dir.path().join("aside.json");
    std::fs::rename(&held_back, &aside).unwrap();
    let mut r = refresher(&cfg_path);
    r.start().await.unwrap();
    let partial = r.cell().load().len();
    std::fs::rename(&aside, &held_back).unwrap();
    state.feed_requests.lock().unwrap().clear();
    r.refresh(true).await.unwrap();
    let second = state.feed_requests.lock().unwrap().clone();
    assert_eq!(
        second,
        ["manifest.json".to_string(), events[0].clone()],
        "only the failed event again"
    );
    assert!(
        r.cell().load().len() > partial,
        "{partial} -> {}",
        r.cell().load().len()
    );
    state.feed_requests.lock().unwrap().clear();
    r.refresh(true).await.unwrap();
    assert_eq!(*state.feed_requests.lock().unwrap(), ["manifest.json"], "now 304");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_of_100k_attributes() {
    let (state, url, dir) = server_with(None).await;
    for i in 0..100_000 {
        state.add(
            if i % 3 == 0 { "ip-dst" } else { "domain" },
            &if i % 3 == 0 {
                format!("198.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
            } else {
                format!("host{i}.example.net")
            },
            1_700_000_000,
        );
    }
    let mut r = refresher(&common::write_config(
        dir.path(),
        &url,
        "page_size = 5000\ntimeout_secs = 60",
        "",
    ));
    let t = Instant::now();
    r.start().await.unwrap();
    eprintln!("full sync of 100k attributes: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(r.store_len(), 100_000);
    assert_eq!(r.cell().load().len(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_default_and_a_configured_ca_works() {
    let state = MispState::new();
    state.add("domain", "tls.example.net", 1);
    let (url, ca_pem) = common::serve_tls(state.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // Default: the self-signed certificate is rejected.
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    let e = r.start().await.unwrap_err().to_string();
    assert!(
        e.contains(&url) && (e.contains("certificate") || e.contains("Certificate")),
        "{e}"
    );
    // A configured CA bundle makes it work.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let mut r = refresher(&common::write_config(
        dir.path(),
        &url,
        &format!("ca_bundle = {:?}", ca.display().to_string()),
        "",
    ));
    r.start().await.unwrap();
    assert_eq!(hits(&r, "tls.example.net"), ["tls.example.net"]);
    // Skipping verification works only when asked for explicitly.
    let mut r = refresher(&common::write_config(
        dir.path(),
        &url,
        "insecure_skip_verify = true",
        "",
    ));
    r.start().await.unwrap();
    assert_eq!(r.store_len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_feed_by_url_uses_its_column_mapping_and_etag() {
    let (state, url, dir) = server_with(None).await;
    let feed_dir = dir.path().join("feed");
    std::fs::create_dir_all(&feed_dir).unwrap();
    std::fs::write(
        feed_dir.join("bad.csv"),
        "# first_seen,ip,port\n2024-01-01,198.51.100.7,443\n2024-01-02,198.51.100.8,80\n",
    )
    .unwrap();
    *state.feed_dir.lock().unwrap() = Some(feed_dir);
    let cfg_path = dir.path().join("csv.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "state_dir = {:?}\n[[feeds]]\nname = \"c2ips\"\nurl = \"{url}/feed/bad.csv\"\nformat = \"csv\"\nvalue_column = 1\nmisp_type = \"ip-dst\"\nallow_http = true\n",
            dir.path().join("st").display().to_string()
        ),
    )
    .unwrap();
    let mut r = refresher(&cfg_path);
    r.start().await.unwrap();
    assert_eq!(hits(&r, "to 198.51.100.8:80"), ["198.51.100.8"]);
    r.refresh(true).await.unwrap();
    let reqs = state.feed_requests.lock().unwrap().clone();
    assert_eq!(reqs, ["bad.csv", "bad.csv"]);
    assert_eq!(r.cell().load().len(), 2, "a 304 keeps the contribution");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freetext_and_csv_feeds_refang_before_they_classify() {
    let (state, url, dir) = server_with(None).await;
    let feed_dir = dir.path().join("feed");
    std::fs::create_dir_all(&feed_dir).unwrap();
    // Values as reports publish them (an ESET-style list): every one is defanged.
    std::fs::write(
        feed_dir.join("report.txt"),
        "101.36.125[.]203 18.216.127{.}143\n2001:db8[:]:7 10.20.30[.]0/24\nhxxps://evil[.]example/gate.php bad[@]evil[.]example\n",
    )
    .unwrap();
    std::fs::write(feed_dir.join("c2.csv"), "first_seen,ip\n2024-01-01,198.51.100(.)9\n").unwrap();
    // The shape of a ThreatFox CSV export: comment header, quoted fields with a blank after each comma, ip:port.
    std::fs::write(
        feed_dir.join("threatfox.csv"),
        "################################################################\n\
         # ThreatFox IOCs: CSV export                                   #\n\
         # \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\"\n\
         \"2024-05-01 10:00:00\", \"1262930\", \"185.220.101.47:443\", \"ip:port\", \"botnet_cc\"\n\
         \"2024-05-01 10:02:00\", \"1262932\", \"10.1.2.3:80\", \"ip:port\", \"botnet_cc\"\n",
    )
    .unwrap();
    *state.feed_dir.lock().unwrap() = Some(feed_dir);
    let cfg_path = dir.path().join("feeds.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "state_dir = {:?}\n[[feeds]]\nname = \"report\"\nurl = \"{url}/feed/report.txt\"\nformat = \"freetext\"\nallow_http = true\n\
             [[feeds]]\nname = \"c2\"\nurl = \"{url}/feed/c2.csv\"\nformat = \"csv\"\nvalue_column = 1\nallow_http = true\n\
             [[feeds]]\nname = \"threatfox\"\nurl = \"{url}/feed/threatfox.csv\"\nformat = \"csv\"\nvalue = \"3\"\nexclude_regex = \"/^10\\\\./\"\nallow_http = true\n",
            dir.path().join("st").display().to_string()
        ),
    )
    .unwrap();
    let mut r = refresher(&cfg_path);
    r.start().await.unwrap();
    for (line, want) in [
        ("dst=101.36.125.203", "101.36.125.203"),
        ("dst=18.216.127.143", "18.216.127.143"),
        ("dst=2001:db8::7", "2001:db8::7"),
        ("dst=10.20.30.99", "10.20.30.0/24"),
        ("GET https://evil.example/gate.php", "evil.example/gate.php"),
        ("from bad@evil.example", "bad@evil.example"),
        ("dst=198.51.100.9", "198.51.100.9"),
        ("dst=185.220.101.47 dport=443", "185.220.101.47"),
    ] {
        assert_eq!(hits(&r, line), [want], "{line}");
    }
    assert!(hits(&r, "dst=10.1.2.3").is_empty(), "the exclusion regex drops it");
}

#[test]
fn the_key_never_appears_in_logs_or_errors() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut errors = Vec::new();
    rt.block_on(async {
        let (state, url, dir) = server_with(None).await;
        state.add("domain", "evil.example.net", 1);
        *state.role.lock().unwrap() = common::admin_role();
        let cfg = common::write_config(dir.path(), &url, "", "");
        let mut r = refresher(&cfg);
        let role = r.check_key().await;
        errors.push(format!("{role:?}"));
        r.start().await.unwrap();
        for f in [
            Fault::ServerError,
            Fault::ServerError,
            Fault::ServerError,
            Fault::Forbidden,
            Fault::Malformed,
        ] {
            state.fault(f);
            if let Err(e) = r.refresh(true).await {
                errors.push(e.to_string());
                errors.push(format!("{e:?}"));
            }
        }
        errors.push(format!("{:?}", iocmatch::refresh::misp::ApiKey::from_secret(KEY)));
        errors.push(format!("{:?}", Config::load(&cfg).unwrap()));
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("MISP API call"), "audit lines are logged");
    assert!(logs.contains("perm_site_admin"), "excess permissions are named");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    for e in &errors {
        assert!(!e.contains(KEY), "the key leaked into {e}");
    }
}

fn run_cli(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(args)
        .env("IOCMATCH_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_writes_the_cache_and_scan_config_uses_misp_or_the_cache() {
    let (state, url, dir) = server_with(Some(GLUPTEBA)).await;
    *state.role.lock().unwrap() = common::admin_role();
    let cfg = common::write_config(dir.path(), &url, "", "");
    let cfg_s = cfg.display().to_string();
    let c = cfg_s.clone();
    let out = tokio::task::spawn_blocking(move || run_cli(&["fetch", "--config", &c], b""))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("fetched 321 attributes"), "{stdout}");
    assert!(stdout.contains("last-good.json"), "{stdout}");
    assert!(
        stderr.contains("perm_site_admin"),
        "excess privilege is warned at start: {stderr}"
    );
    assert!(!stderr.contains(KEY) && !stdout.contains(KEY));
    let c = cfg_s.clone();
    let out = tokio::task::spawn_blocking(move || run_cli(&["scan", "--config", &c], b"beacon to 5.79.87.139\n"))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for _ in 0..20 {
        state.fault(Fault::ServerError);
    }
    let c = cfg_s.clone();
    let out = tokio::task::spawn_blocking(move || run_cli(&["scan", "--config", &c], b"beacon to 5.79.87.139\n"))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("last-good cache"));
}

#[test]
fn the_example_config_parses() {
    let c = Config::load(Path::new("iocmatch.example.toml")).unwrap();
    assert_eq!(c.misp.unwrap().not_tags, ["tlp:red"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_are_reloaded_only_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("local.txt");
    std::fs::write(&list, "local-one.example.net\n").unwrap();
    let cfg = dir.path().join("local.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\niocs = [{:?}]\n",
            dir.path().join("st").display().to_string(),
            list.display().to_string()
        ),
    )
    .unwrap();
    let mut r = refresher(&cfg);
    r.start().await.unwrap();
    let v1 = r.cell().load().version();
    r.refresh(false).await.unwrap();
    assert_eq!(r.cell().load().version(), v1, "nothing changed, no new snapshot");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&list, "local-one.example.net\nlocal-two.example.net\n").unwrap();
    r.refresh(false).await.unwrap();
    assert_eq!(r.cell().load().version(), v1 + 1);
    assert_eq!(hits(&r, "local-two.example.net"), ["local-two.example.net"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pull_that_shrinks_the_set_sharply_waits_for_a_second_one() {
    let (state, url, dir) = server_with(None).await;
    for i in 0..10 {
        state.add("domain", &format!("c2-{i}.evil.example"), 100 + i);
    }
    let mut r = refresher(&common::write_config(dir.path(), &url, "", ""));
    r.start().await.unwrap();
    assert_eq!(r.store_len(), 10);
    // MISP now answers with three of the ten (a wrong filter, a half-restored server).
    state.attributes.lock().unwrap().truncate(3);
    let e = r.refresh(true).await.unwrap_err().to_string();
    assert!(e.contains("shrink the set from 10 to 3"), "{e}");
    assert_eq!(
        hits(&r, "dns c2-9.evil.example"),
        ["c2-9.evil.example"],
        "the old set keeps serving"
    );
    assert_eq!(r.metrics.errors.lock().unwrap().get("misp_shrink"), Some(&1));
    // The next full pull says the same: confirmed, applied.
    r.refresh(true).await.unwrap();
    assert_eq!(r.store_len(), 3);
    assert!(hits(&r, "dns c2-9.evil.example").is_empty());
    assert_eq!(hits(&r, "dns c2-1.evil.example"), ["c2-1.evil.example"]);
    // Within bounds (3 to 2 is a third) nothing waits.
    state.attributes.lock().unwrap().truncate(2);
    r.refresh(true).await.unwrap();
    assert_eq!(r.store_len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_changes_overlay_the_compiled_base_which_state_dir_keeps_for_a_restart() {
    let (state, url, dir) = server_with(None).await;
    state.add("domain", "keep.example.net", 100);
    let gone = state.add("domain", "gone.example.net", 100);
    let edited = state.add("ip-dst", "198.51.100.7", 100);
    let cfg = common::write_config(dir.path(), &url, "", "");
    let mut r = refresher(&cfg);
    r.start().await.unwrap();
    let base = r.cell().load().base().clone();
    assert!(r.cell().load().overlay().is_none());
    let file = dir.path().join("state").join(iocmatch::refresh::SNAPSHOT_FILE);
    assert!(file.exists(), "a full build keeps the compiled base in state_dir");

    // An add, a delete and an edit: laid over the same base, nothing recompiled.
    state.add("domain", "new.example.net", 200);
    state.edit(&gone, "deleted", serde_json::json!(true), 200);
    state.edit(&edited, "comment", serde_json::json!("now with a comment"), 200);
    let report = r.refresh(false).await.unwrap();
    let snap = r.cell().load();
    assert!(Arc::ptr_eq(snap.base(), &base), "the base stays");
    let o = snap.overlay().expect("an overlay");
    assert_eq!(
        o.weight(),
        2 + 2,
        "two overlay entries (add, edit), two masked (delete, edit)"
    );
    let mut got = hits(&r, "new.example.net keep.example.net gone.example.net 198.51.100.7");
    got.sort();
    assert_eq!(got, ["198.51.100.7", "keep.example.net", "new.example.net"]);
    assert_eq!(report.added.values().sum::<usize>(), 1);
    assert_eq!(report.removed.values().sum::<usize>(), 1);
    assert_eq!(report.changed.values().sum::<usize>(), 1);
    assert_eq!(snap.len(), 3);
    let ip = snap
        .indicators()
        .find(|(_, i)| i.value.name() == "198.51.100.7")
        .unwrap()
        .1;
    assert_eq!(
        ip.provenance.comment(),
        Some("now with a comment"),
        "the overlay carries the new provenance"
    );

    // A second attribute with a value the base holds: merged provenance needs a full build.
    state.add("domain", "keep.example.net", 300);
    r.refresh(false).await.unwrap();
    let snap = r.cell().load();
    assert!(
        snap.overlay().is_none() && !Arc::ptr_eq(snap.base(), &base),
        "recompiled"
    );
    let keep = snap
        .indicators()
        .find(|(_, i)| i.value.name() == "keep.example.net")
        .unwrap()
        .1;
    assert_eq!(keep.merged, 1);
    let version = snap.version();
    drop(r);

    // A restart maps the kept base before any source is read, at the version it had.
    let mut r2 = refresher(&cfg);
    assert_eq!(r2.open_state(), Some(version));
    assert_eq!(
        hits(&r2, "new.example.net keep.example.net"),
        ["new.example.net", "keep.example.net"]
    );
    drop(r2);

    // A corrupt one is set aside and the sources rebuild it.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let mut r3 = refresher(&cfg);
    assert_eq!(r3.open_state(), None);
    assert!(file.with_extension("iocm.corrupt").exists());
    r3.start().await.unwrap();
    assert!(file.exists(), "rebuilt");
    assert_eq!(hits(&r3, "keep.example.net"), ["keep.example.net"]);
}
