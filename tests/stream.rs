//! `iocmatch run` against a real Kafka-protocol broker (tansu). Each scenario asserts the exact set of hit ids.

mod common;

use common::kafka::{free_port, Broker};
use iocmatch::load::load_paths;
use iocmatch::scan::scan_line;
use iocmatch::stream::hit::hit_id;
use iocmatch::{Policy, Snapshot};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SAMPLE: &str = "fixtures/iocs/sample-restsearch.json";

/// Real log lines from the fixtures: every line of the sshd and iptables logs (hits and non-hits).
fn log_lines() -> Vec<String> {
    let mut v = Vec::new();
    for f in [
        "crowdsecurity__hub__sshd-logs.log",
        "crowdsecurity__hub__iptables-scan-multi-port.log",
        "zeek__zeek__opt.basic__dns.log",
    ] {
        v.extend(
            std::fs::read_to_string(Path::new("fixtures/logs").join(f))
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    v
}

fn snapshot() -> Snapshot {
    let (set, _) = load_paths(&[PathBuf::from(SAMPLE)], Policy::default()).unwrap();
    Snapshot::build(set, 1)
}

/// The hit ids the service must emit for lines at these coordinates.
fn expected(topic: &str, lines: &[Option<Vec<u8>>], coords: &[(i32, i64)]) -> BTreeSet<String> {
    let snap = snapshot();
    let mut out = BTreeSet::new();
    let mut hits = Vec::new();
    for (line, (p, o)) in lines.iter().zip(coords) {
        let Some(l) = line else { continue };
        if l.len() > 1000 {
            continue;
        }
        scan_line(&snap, l, &mut hits);
        for h in &hits {
            out.insert(hit_id(topic, *p, *o, &snap.indicator(h.indicator).value.name()));
        }
    }
    out
}

struct Service {
    child: Child,
    metrics_port: u16,
}

impl Service {
    fn start(cfg: &Path) -> Service {
        let text = std::fs::read_to_string(cfg).unwrap();
        let metrics_port = text
            .split("127.0.0.1:")
            .last()
            .unwrap()
            .trim_end_matches(['"', '\n'])
            .parse()
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
            .args(["run", "--config"])
            .arg(cfg)
            .env("IOCMATCH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("IOCMATCH_TEST_SERVICE_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .spawn()
            .unwrap();
        Service { child, metrics_port }
    }

    fn metrics(&self) -> String {
        self.get("/metrics")
    }

    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                return (st.code(), err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return (None, "did not exit in time".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, broker: &Broker, group: &str, extra_kafka: &str) -> PathBuf {
    let sample = std::fs::canonicalize(SAMPLE).unwrap();
    let text = format!(
        "state_dir = {state:?}\niocs = [{iocs:?}]\n\n[kafka]\nbrokers = \"{b}\"\ngroup_id = \"{group}\"\ninput_topics = [\"logs\"]\nhits_topic = \"hits\"\ncommit_interval_ms = 200\nmax_message_bytes = 1000\nshutdown_deadline_secs = 20\n{extra_kafka}\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        state = dir.join("state").display().to_string(),
        iocs = sample.display().to_string(),
        b = broker.brokers(),
        port = free_port(),
    );
    let p = dir.join(format!("{group}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Reads the hits topic until every wanted id was seen (or `secs` pass); the broker client blocks, so off the runtime.
fn read_hits(broker: &Broker, want: &BTreeSet<String>, secs: u64) -> (Vec<String>, Vec<String>) {
    tokio::task::block_in_place(|| broker.collect_hits("hits", want, Duration::from_secs(secs)))
}

fn payloads() -> Vec<Option<Vec<u8>>> {
    log_lines().into_iter().map(|l| Some(l.into_bytes())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_exactly_the_expected_hits_survives_bad_input_and_drains_on_sigterm() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let mut lines = payloads();
    // Bad input among the good: a tombstone, invalid UTF-8 with an indicator, an oversized message.
    lines.insert(3, None);
    lines.insert(5, Some(b"\xff\xfe invalid utf-8 from 35.188.49.176 \xc3".to_vec()));
    let mut big = b"35.188.49.176 ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    lines.insert(7, Some(big));
    let coords = broker.produce("logs", &lines).await;
    let want = expected("logs", &lines, &coords);
    assert!(want.len() > 20, "{}", want.len());

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &broker,
        "g1",
        "[kafka.properties]\n\"statistics.interval.ms\" = \"300\"",
    );
    let svc = Service::start(&cfg);
    let (ids, versions) = read_hits(&broker, &want, 60);
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want, "exactly the expected hits");
    assert!(
        versions.iter().all(|v| v == "1"),
        "hits carry the snapshot version header"
    );
    let m = svc.metrics();
    assert!(m.contains("iocmatch_bad_messages_total{reason=\"tombstone\"} 1"), "{m}");
    assert!(m.contains("iocmatch_bad_messages_total{reason=\"oversized\"} 1"), "{m}");
    assert!(
        m.contains("iocmatch_bad_messages_total{reason=\"invalid_utf8\"} 1"),
        "{m}"
    );
    assert!(m.contains("iocmatch_hits_total{type=\"ipv4\",source=\"logs\"}"), "{m}");
    for name in [
        "iocmatch_snapshot_version 1",
        "iocmatch_consumer_lag",
        "iocmatch_commit_latency_seconds_sum",
        "iocmatch_in_flight_messages",
        "iocmatch_indicators{type=\"domain\"}",
        "iocmatch_rejected_indicators{reason=",
    ] {
        assert!(m.contains(name), "{name} in {m}");
    }
    // Lag comes from librdkafka's statistics: once everything is consumed and committed, it is 0 per partition.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let caught_up = |m: &str| {
        (0..2).all(|p| {
            m.contains(&format!(
                "iocmatch_consumer_lag{{topic=\"logs\",partition=\"{p}\"}} 0\n"
            ))
        })
    };
    while !caught_up(&svc.metrics()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up(&svc.metrics()), "{}", svc.metrics());
    assert!(svc.get("/healthz").starts_with("HTTP/1.0 200"));
    assert!(
        svc.get("/readyz").starts_with("HTTP/1.0 200"),
        "ready: snapshot loaded and partitions assigned"
    );
    svc.signal(libc::SIGTERM);
    let (code, err) = svc.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    let committed = broker.committed("g1", "logs", 2);
    let mut ends = vec![0i64; 2];
    for (p, o) in &coords {
        ends[*p as usize] = ends[*p as usize].max(o + 1);
    }
    assert_eq!(committed, ends, "everything consumed is committed on shutdown");
}

fn many_payloads(times: usize) -> Vec<Option<Vec<u8>>> {
    let base = payloads();
    (0..times).flat_map(|_| base.iter().cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_no_hit() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let lines = many_payloads(20);
    let coords = broker.produce("logs", &lines).await;
    let want = expected("logs", &lines, &coords);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &broker, "g2", "");
    let svc = Service::start(&cfg);
    // Killed mid-stream: shortly after its first hits, with hits produced and acknowledged but offsets not all committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let hits = |m: &str| -> u64 {
        m.lines()
            .filter_map(|l| {
                l.strip_prefix("iocmatch_hits_total{")?
                    .rsplit(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    while hits(&svc.metrics()) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    svc.signal(libc::SIGKILL);
    let committed = broker.committed("g2", "logs", 2);
    let _ = svc.wait(Duration::from_secs(5));
    let _svc2 = Service::start(&cfg);
    let (ids, _) = read_hits(&broker, &want, 90);
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        got, want,
        "every expected hit is present after kill -9 and restart, and nothing else"
    );
    eprintln!(
        "kill -9 test: killed 30 ms after its first hit, offsets {committed:?} committed of {} lines; after the \
         restart {} hit records for {} distinct hits ({} duplicates)",
        lines.len(),
        ids.len(),
        got.len(),
        ids.len() - got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_together_emit_every_hit() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg_a = config(dir.path(), &broker, "g3", "");
    std::fs::rename(&cfg_a, dir.path().join("g3a.toml")).unwrap();
    let cfg_b = config(dir.path(), &broker, "g3", "");
    let a = Service::start(&dir.path().join("g3a.toml"));
    let b_svc = Service::start(&cfg_b);
    std::thread::sleep(Duration::from_secs(3));
    let lines = many_payloads(5);
    let coords = broker.produce("logs", &lines).await;
    let want = expected("logs", &lines, &coords);
    let (ids, _) = read_hits(&broker, &want, 90);
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want);
    let (ma, mb) = (a.metrics(), b_svc.metrics());
    assert!(ma.contains("iocmatch_lines_total") && mb.contains("iocmatch_lines_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_swap_mid_stream_makes_later_lines_hit() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 1);
    broker.create_topic("hits", 1);
    let misp = common::MispState::new();
    misp.add("domain", "first.example.net", 100);
    let url = common::serve(misp.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let misp_cfg = common::write_config(dir.path(), &url, "interval_secs = 1", "");
    let text = std::fs::read_to_string(&misp_cfg).unwrap();
    // Live scoring only: with retro-hunting on, the first line would also come back as a retro hit.
    let kafka = std::fs::read_to_string(config(dir.path(), &broker, "g4", "")).unwrap();
    let kafka_tail = &kafka[kafka.find("[kafka]").unwrap()..];
    let kafka_tail = format!("[retro]\nwindow = 0\n{kafka_tail}");
    let cfg = dir.path().join("swap.toml");
    std::fs::write(&cfg, format!("{text}\n{kafka_tail}")).unwrap();
    let svc = Service::start(&cfg);
    let before = vec![Some(b"GET http://c2.late.example.net/gate first.example.net".to_vec())];
    let c1 = broker.produce("logs", &before).await;
    let w1: BTreeSet<String> = [hit_id("logs", c1[0].0, c1[0].1, "first.example.net")].into();
    let (ids, _) = read_hits(&broker, &w1, 60);
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        w1,
        "late.example.net is not an indicator yet"
    );
    misp.add("domain", "late.example.net", 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !svc.metrics().contains("iocmatch_indicators{type=\"domain\"} 2") {
        assert!(
            Instant::now() < deadline,
            "the new indicator never reached the snapshot"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = vec![Some(b"GET http://c2.late.example.net/gate again".to_vec())];
    let c2 = broker.produce("logs", &after).await;
    let mut w2 = w1.clone();
    w2.insert(hit_id("logs", c2[0].0, c2[0].1, "late.example.net"));
    let (ids, _) = read_hits(&broker, &w2, 60);
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        w2,
        "lines after the swap hit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misp_push_applies_adds_and_soft_deletes_and_hits_are_sighted() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 1);
    broker.create_topic("hits", 1);
    broker.create_topic("misp_attribute", 1);
    broker.create_topic("misp_event", 1);
    let misp = common::MispState::new();
    misp.add("domain", "rest.example.net", 100);
    misp.add_to_event("66", "domain", "event66.example.net", 100);
    let url = common::serve(misp.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let misp_cfg = common::write_config(
        dir.path(),
        &url,
        "interval_secs = 3600\nsightings = true\nsighting_source = \"iocmatch-test\"",
        "",
    );
    let text = std::fs::read_to_string(&misp_cfg).unwrap();
    let kafka = std::fs::read_to_string(config(
        dir.path(),
        &broker,
        "g5",
        "misp_push_topic = \"misp_attribute\"\nmisp_event_topic = \"misp_event\"\nsighting_interval_secs = 1",
    ))
    .unwrap();
    let cfg = dir.path().join("push.toml");
    std::fs::write(&cfg, format!("{text}\n{}", &kafka[kafka.find("[kafka]").unwrap()..])).unwrap();
    let svc = Service::start(&cfg);
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !svc.metrics().contains(needle) {
            assert!(Instant::now() < deadline, "never saw {needle}:\n{}", svc.metrics());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    tokio::task::block_in_place(|| wait_for("iocmatch_indicators{type=\"domain\"} 2"));
    // MISP deletes an event's attributes without attribute notifications: only the event delete on misp_event.
    let event_delete =
        br#"{"Event":{"id":"66","uuid":"e0000000-0000-4000-8000-000000000066","info":"test event"},"action":"delete"}"#;
    broker.produce("misp_event", &[Some(event_delete.to_vec())]).await;
    tokio::task::block_in_place(|| wait_for("iocmatch_indicators{type=\"domain\"} 1"));
    let add = br#"{"Attribute":{"id":"900","event_id":"77","type":"domain","category":"Network activity","value":"pushed.example.net","to_ids":true,"uuid":"b0000000-0000-4000-8000-000000000900","timestamp":"500","deleted":false},"Event":{"id":"77","uuid":"e0000000-0000-4000-8000-000000000077","info":"test event"},"action":"add"}"#;
    broker.produce("misp_attribute", &[Some(add.to_vec())]).await;
    tokio::task::block_in_place(|| wait_for("iocmatch_indicators{type=\"domain\"} 2"));
    let c = broker
        .produce("logs", &[Some(b"dns query x.pushed.example.net A".to_vec())])
        .await;
    let want: BTreeSet<String> = [hit_id("logs", c[0].0, c[0].1, "pushed.example.net")].into();
    let (ids, _) = read_hits(&broker, &want, 60);
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want);
    let soft = br#"{"Attribute":{"id":"900","event_id":"77","type":"domain","value":"pushed.example.net","to_ids":true,"uuid":"b0000000-0000-4000-8000-000000000900","timestamp":"600","deleted":true},"Event":{"id":"77"},"action":"soft-delete"}"#;
    let stale = br#"{"Attribute":{"id":"900","event_id":"77","type":"domain","value":"pushed.example.net","to_ids":true,"uuid":"b0000000-0000-4000-8000-000000000900","timestamp":"550","deleted":false},"Event":{"id":"77"},"action":"edit"}"#;
    broker
        .produce("misp_attribute", &[Some(soft.to_vec()), Some(stale.to_vec())])
        .await;
    tokio::task::block_in_place(|| wait_for("iocmatch_indicators{type=\"domain\"} 1"));
    // Sightings: the hit was reported by attribute uuid, at the record's time, with the configured source.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = misp.sightings.lock().unwrap().clone();
        if let Some(body) = s.iter().find(|b| b["uuid"] == "b0000000-0000-4000-8000-000000000900") {
            assert_eq!(body["source"], "iocmatch-test");
            let ts = body["timestamp"].as_i64().unwrap();
            assert!((ts - common::now()).abs() < 120, "the record's time: {ts}");
            break;
        }
        assert!(Instant::now() < deadline, "no sighting reported: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_survived_without_losing_hits() {
    let Some(mut broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let first = payloads();
    let c1 = broker.produce("logs", &first).await;
    let mut want = expected("logs", &first, &c1);
    let dir = tempfile::tempdir().unwrap();
    let _svc = Service::start(&config(dir.path(), &broker, "g6", ""));
    let (ids, _) = read_hits(&broker, &want, 60);
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    tokio::task::block_in_place(|| broker.restart(Duration::from_secs(2)));
    let second = payloads();
    let c2 = broker.produce("logs", &second).await;
    want.extend(expected("logs", &second, &c2));
    let (ids, _) = read_hits(&broker, &want, 90);
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        want,
        "consumption resumed after the outage, nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_regex_subscribes_to_every_matching_topic_and_no_other() {
    let Some(broker) = Broker::start() else { return };
    for t in ["app-logs-a", "app-logs-b", "other-logs", "hits"] {
        broker.create_topic(t, 1);
    }
    let lines = payloads();
    let mut want = BTreeSet::new();
    for t in ["app-logs-a", "app-logs-b"] {
        let coords = broker.produce(t, &lines).await;
        want.extend(expected(t, &lines, &coords));
    }
    // The look-alike topic carries the same lines; none of its hits may appear.
    broker.produce("other-logs", &lines).await;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(config(dir.path(), &broker, "g6", ""))
        .unwrap()
        .replace(r#"input_topics = ["logs"]"#, r#"input_topics = ["^app-logs-.*"]"#);
    let cfg = dir.path().join("regex.toml");
    std::fs::write(&cfg, text).unwrap();
    let _svc = Service::start(&cfg);
    let (ids, _) = read_hits(&broker, &want, 60);
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        want,
        "hits of both matching topics, none of other-logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeek_tsv_fields_are_kept_per_partition_and_json_keys_are_reported() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    // Two Zeek writers on two partitions, with different columns: each line is named by its own partition's header.
    broker
        .produce_to(
            "logs",
            &[
                (0, b"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h"),
                (1, b"#fields\tts\tuid\tsrc\tdst"),
                (
                    0,
                    b"1320279554.496300\tCg9xqq3JAcZusspA86\t192.168.2.76\t52025\t35.188.49.176",
                ),
                (1, b"1320279554.496300\tCg9xqq3JAcZusspA87\t192.168.2.76\t35.188.49.176"),
                (
                    0,
                    br#"{"event_type":"ssh","src_ip":"35.188.49.176","dest_ip":"10.0.0.1"}"#,
                ),
            ],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(&config(dir.path(), &broker, "g-fields", ""));
    let docs = tokio::task::block_in_place(|| broker.collect_docs("hits", 3, Duration::from_secs(60)));
    drop(svc);
    let mut fields: Vec<(i64, i64, String)> = docs
        .iter()
        .map(|d| {
            (
                d["iocmatch"]["kafka"]["partition"].as_i64().unwrap(),
                d["iocmatch"]["kafka"]["offset"].as_i64().unwrap(),
                d["threat"]["enrichments"][0]["matched"]["field"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            (0, 1, "id.resp_h".to_string()),
            (0, 2, "src_ip".to_string()),
            (1, 1, "dst".to_string())
        ]
    );
}

/// A config for the MISP test server at `url` (pulled every second) and the broker, with retro-hunting on.
fn retro_config(dir: &Path, broker: &Broker, url: &str, group: &str, mb_per_s: f64) -> PathBuf {
    let misp_cfg = common::write_config(dir, url, "interval_secs = 1", "");
    let text = std::fs::read_to_string(&misp_cfg).unwrap();
    let kafka = std::fs::read_to_string(config(dir, broker, group, "")).unwrap();
    let cfg = dir.join("retro.toml");
    let retro = format!("[retro]\nwindow = \"1h\"\nmax_mb_per_s = {mb_per_s:?}\n");
    std::fs::write(
        &cfg,
        format!("{text}\n{retro}\n{}", &kafka[kafka.find("[kafka]").unwrap()..]),
    )
    .unwrap();
    cfg
}

/// Waits (off the runtime) until the service's metrics contain `needle`.
fn wait_metric(svc: &Service, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !svc.metrics().contains(needle) {
        assert!(Instant::now() < deadline, "never saw {needle}:\n{}", svc.metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_adds_indicators_hunts_the_recent_logs_for_them() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 2);
    broker.create_topic("hits", 1);
    let misp = common::MispState::new();
    misp.add("domain", "known.example.net", 100);
    let url = common::serve(misp.clone()).await;
    // Traffic that passed before MISP published the indicator.
    let old = broker
        .produce(
            "logs",
            &[
                Some(b"dns query a.late.example.net A".to_vec()),
                Some(b"nothing to see".to_vec()),
                Some(b"GET http://late.example.net/x HTTP/1.1".to_vec()),
            ],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = retro_config(dir.path(), &broker, &url, "g-retro", 1.0);
    let svc = Service::start(&cfg);
    let wait_for = |needle: &str| wait_metric(&svc, needle);
    tokio::task::block_in_place(|| wait_for("iocmatch_indicators{type=\"domain\"} 1"));
    tokio::task::block_in_place(|| wait_for("iocmatch_lines_total 3"));
    misp.add("domain", "late.example.net", common::now());
    tokio::task::block_in_place(|| wait_for("iocmatch_retro_hunts_finished_total 1"));
    // A new line after the refresh is a live hit, with a live id.
    let live = broker
        .produce("logs", &[Some(b"dns query b.late.example.net A".to_vec())])
        .await;
    let docs = tokio::task::block_in_place(|| broker.collect_docs("hits", 3, Duration::from_secs(60)));
    let m = svc.metrics();
    drop(svc);
    let retro: Vec<&serde_json::Value> = docs.iter().filter(|d| d["iocmatch"]["retro"] == true).collect();
    let mut at: Vec<(i64, i64)> = retro
        .iter()
        .map(|d| {
            let k = &d["iocmatch"]["kafka"];
            (k["partition"].as_i64().unwrap(), k["offset"].as_i64().unwrap())
        })
        .collect();
    at.sort();
    let mut want = vec![(old[0].0 as i64, old[0].1), (old[2].0 as i64, old[2].1)];
    want.sort();
    assert_eq!(
        at, want,
        "the two old lines with the new indicator, nothing else: {docs:?}"
    );
    for d in &retro {
        let k = &d["iocmatch"]["kafka"];
        let live_id = hit_id(
            "logs",
            k["partition"].as_i64().unwrap() as i32,
            k["offset"].as_i64().unwrap(),
            "late.example.net",
        );
        assert_ne!(
            d["iocmatch"]["hit_id"],
            live_id.as_str(),
            "retro ids differ from live ids"
        );
        assert_eq!(
            d["threat"]["enrichments"][0]["matched"]["occurred"], d["@timestamp"],
            "the record's time"
        );
        assert_eq!(d["event"]["kind"], "enrichment");
    }
    let live_doc = docs
        .iter()
        .find(|d| d["iocmatch"]["retro"].is_null())
        .expect("a live hit");
    assert_eq!(live_doc["iocmatch"]["kafka"]["offset"], live[0].1);
    assert!(m.contains("iocmatch_retro_hits_total 2"), "{m}");
    assert!(m.contains("iocmatch_retro_records_total"), "{m}");
    assert!(
        !dir.path().join("state/retro-pending.json").exists(),
        "a finished hunt leaves no state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retro_hunt_killed_midway_resumes_after_a_restart() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 1);
    broker.create_topic("hits", 1);
    let misp = common::MispState::new();
    misp.add("domain", "known.example.net", 100);
    let url = common::serve(misp.clone()).await;
    let filler = "x".repeat(300);
    let lines: Vec<Option<Vec<u8>>> = (0..3000)
        .map(|i| {
            let host = if i % 100 == 7 {
                "c2.resume.example.net"
            } else {
                "quiet.example.org"
            };
            Some(format!("{i} dns query {host} {filler}").into_bytes())
        })
        .collect();
    let coords = broker.produce("logs", &lines).await;
    let want: BTreeSet<i64> = coords
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 == 7)
        .map(|(_, c)| c.1)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // About 1 MB of window at 0.2 MB/s: five seconds of hunting, killed (kill -9) a third of the way in.
    let cfg = retro_config(dir.path(), &broker, &url, "g-resume", 0.2);
    let svc = Service::start(&cfg);
    tokio::task::block_in_place(|| wait_metric(&svc, "iocmatch_lines_total 3000"));
    misp.add("domain", "resume.example.net", common::now());
    tokio::task::block_in_place(|| wait_metric(&svc, "iocmatch_retro_hunts_started_total 1"));
    tokio::task::block_in_place(|| wait_metric(&svc, "iocmatch_retro_records_total 1"));
    std::thread::sleep(Duration::from_millis(1500));
    drop(svc);
    assert!(
        dir.path().join("state/retro-pending.json").exists(),
        "the hunt is on disk"
    );
    let svc = Service::start(&cfg);
    tokio::task::block_in_place(|| wait_metric(&svc, "iocmatch_retro_hunts_finished_total 1"));
    drop(svc);
    let docs = tokio::task::block_in_place(|| broker.collect_docs("hits", 10_000, Duration::from_secs(5)));
    let got: BTreeSet<i64> = docs
        .iter()
        .filter(|d| d["iocmatch"]["retro"] == true)
        .map(|d| d["iocmatch"]["kafka"]["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(got, want, "every old line with the new indicator, across the restart");
}

/// A million generated domains plus `c2.restart.example`, compiled into `state_dir` as a previous run leaves it.
fn million_in_state_dir(state_dir: &Path) -> u64 {
    use iocmatch::indicator::{Indicator, IndicatorSet, Provenance, Value};
    let mut set = IndicatorSet::new();
    for i in 0..1_000_000 {
        set.insert(Indicator {
            value: Value::Domain(format!("d{i}.bulk.example").into()),
            provenance: Provenance::default(),
            merged: 0,
        });
    }
    set.insert(Indicator {
        value: Value::Domain("c2.restart.example".into()),
        provenance: Provenance::default(),
        merged: 0,
    });
    let snap = Snapshot::build(set, 41);
    std::fs::create_dir_all(state_dir).unwrap();
    snap.base()
        .write(&state_dir.join(iocmatch::refresh::SNAPSHOT_FILE))
        .unwrap();
    snap.version()
}

/// Polls `/readyz` until it names the snapshot version; returns how long that took from `since`.
fn serving(svc: &Service, version: u64, since: Instant) -> Duration {
    let want = format!("snapshot v{version} (1000001 indicators");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if svc.get("/readyz").contains(&want) {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "never served v{version}: {}",
            svc.get("/readyz")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_9_serves_the_compiled_snapshot_while_misp_hangs() {
    let Some(broker) = Broker::start() else { return };
    broker.create_topic("logs", 1);
    broker.create_topic("hits", 1);
    let state = common::MispState::new();
    for _ in 0..20 {
        state.fault(common::Fault::Hang(Duration::from_secs(120)));
    }
    let url = common::serve(state.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let version = million_in_state_dir(&dir.path().join("state"));
    let misp_cfg = common::write_config(dir.path(), &url, "timeout_secs = 120", "");
    let kafka = std::fs::read_to_string(config(dir.path(), &broker, "restart", "")).unwrap();
    let cfg = dir.path().join("restart.toml");
    let misp = std::fs::read_to_string(&misp_cfg).unwrap();
    std::fs::write(&cfg, format!("{misp}\n{}", &kafka[kafka.find("[kafka]").unwrap()..])).unwrap();

    let started = Instant::now();
    let svc = Service::start(&cfg);
    let first = tokio::task::block_in_place(|| serving(&svc, version, started));
    broker
        .produce(
            "logs",
            &[Some(b"dns query x.c2.restart.example from 10.0.0.1".to_vec())],
        )
        .await;
    let docs = tokio::task::block_in_place(|| broker.collect_docs("hits", 1, Duration::from_secs(60)));
    assert_eq!(docs.len(), 1, "the mapped snapshot scores while every MISP call hangs");
    assert_eq!(
        docs[0]["threat"]["enrichments"][0]["indicator"]["name"],
        "c2.restart.example"
    );
    assert!(
        state.search_requests().len() <= 1 && started.elapsed() < Duration::from_secs(120),
        "no restSearch has answered yet"
    );
    svc.signal(libc::SIGKILL);
    let _ = svc.wait(Duration::from_secs(10));

    let restarted = Instant::now();
    let svc = Service::start(&cfg);
    let second = tokio::task::block_in_place(|| serving(&svc, version, restarted));
    eprintln!("1M compiled snapshot served {first:?} after the first start, {second:?} after kill -9 and restart");
}
