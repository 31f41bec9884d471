//! Every hit document indexes as it is: each field iocmatch writes outside its own `iocmatch.*` and the MISP
//! provenance (`misp.*`, inside each enrichment) exists in ECS with a value of that field's type and, where ECS lists
//! them, one of its expected values. The reference is ECS 9.4.0's `ecs_flat.yml`, pinned in `fixtures/ecs/`.

use iocmatch::load::Loader;
use iocmatch::scan::field::unattributed;
use iocmatch::scan::scan_line;
use iocmatch::stream::hit::{record, Source};
use iocmatch::{Policy, Snapshot};
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

/// One ECS field: its type and its expected values (empty when ECS lists none).
struct Field {
    kind: String,
    expected: Vec<String>,
}

/// Reads the flat field list: a field starts at a line without indentation; its `type:` and `expected_values:` are
/// the lines indented by two spaces under it.
fn ecs_fields() -> HashMap<String, Field> {
    let text = include_str!("../fixtures/ecs/ecs_flat.yml");
    let mut out: HashMap<String, Field> = HashMap::new();
    let mut current: Option<String> = None;
    let mut in_expected = false;
    for line in text.lines() {
        if line.is_empty() {
            continue; // a blank line inside a multi-line description
        }
        if !line.starts_with(' ') {
            current = line.strip_suffix(':').map(|n| n.trim_matches('\'').to_string());
            if let Some(name) = &current {
                out.insert(
                    name.clone(),
                    Field {
                        kind: String::new(),
                        expected: Vec::new(),
                    },
                );
            }
            in_expected = false;
            continue;
        }
        let Some(f) = current.as_ref().and_then(|n| out.get_mut(n)) else {
            continue;
        };
        if let Some(t) = line.strip_prefix("  type: ") {
            f.kind = t.trim().to_string();
        }
        if line.starts_with("  expected_values:") {
            in_expected = true;
        } else if in_expected && line.starts_with("  - ") {
            f.expected.push(line[4..].trim().to_string());
        } else if line.starts_with("  ") && !line.starts_with("   ") {
            in_expected = false;
        }
    }
    out
}

/// Every leaf of a document as (dotted path, value); array elements keep their parent's path.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for v in a {
                leaves(prefix, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

fn own_namespace(path: &str) -> bool {
    path.starts_with("iocmatch.") || path.starts_with("threat.enrichments.misp.")
}

/// Whether `v` is a valid value of an ECS type, as Elasticsearch would index it.
fn fits(kind: &str, v: &Value) -> bool {
    let one = |v: &Value| match kind {
        "keyword" | "wildcard" | "match_only_text" | "text" | "constant_keyword" => v.is_string(),
        "long" | "unsigned_long" => v.is_u64() || v.is_i64(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => v.as_str().is_some_and(|s| {
            // RFC 3339 with milliseconds in UTC, as ECS's examples write it.
            s.len() == 24 && s.ends_with('Z') && humantime::parse_rfc3339(s).is_ok()
        }),
        _ => false,
    };
    match v {
        Value::Array(a) => a.iter().all(one),
        Value::Null => true,
        v => one(v),
    }
}

fn check(doc: &Value, fields: &HashMap<String, Field>, seen: &mut Vec<String>) {
    let mut all = Vec::new();
    leaves("", doc, &mut all);
    for (path, value) in all {
        if own_namespace(&path) {
            continue;
        }
        let f = fields
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is not an ECS field ({doc})"));
        assert!(
            fits(&f.kind, &value),
            "{path} = {value} is not a valid ECS {} ({doc})",
            f.kind
        );
        if !f.expected.is_empty() {
            let s = value.as_str().unwrap_or_default();
            assert!(
                f.expected.iter().any(|e| e == s),
                "{path} = {s:?} is not one of {:?}",
                f.expected
            );
        }
        seen.push(path);
    }
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/iocs/sample-restsearch.json");

/// Attributes beyond the sample: each shape of value field the ECS mapping has.
fn extra() -> Value {
    serde_json::json!([
        {"type": "ip-dst", "value": "198.51.100.0/24", "to_ids": true, "Tag": [{"name": "tlp:amber+strict"}]},
        {"type": "ip-range", "value": "203.0.113.1-203.0.113.5", "to_ids": true, "Tag": [{"name": "tlp:ex:chr"}]},
        {"type": "sha224", "value": "a".repeat(56), "to_ids": true},
        {"type": "sha256", "value": "b".repeat(64), "to_ids": true},
        {"type": "url", "value": "http://evil.example/gate.php?id=1", "to_ids": true},
        {"type": "email-src", "value": "bad@evil.example", "to_ids": true},
        {"type": "hostname", "value": "c2.evil.example", "to_ids": true},
        {"type": "ip-src", "value": "2001:db8::5", "to_ids": true},
        {"type": "imphash", "value": "f34d5f2d4577ed6d9ceec516c1f5a744", "to_ids": true},
        {"type": "ja3-fingerprint-md5", "value": "e7d705a3286e19ea42f587b344ee6865", "to_ids": true},
        {"type": "x509-fingerprint-sha1", "value": "3a0c5f1e2d4b6a8c9e0f1a2b3c4d5e6f7a8b9c0d", "to_ids": true},
        {"type": "ssdeep", "value": "96:s4Ud1Lj96tHHlZDrwciQmA:sF1LjEtHHlZDrw1mA", "to_ids": true},
        {"type": "ip-dst|port", "value": "192.0.2.77|4444", "to_ids": true}
    ])
}

fn snapshot() -> Snapshot {
    let mut l = Loader::new(Policy::default());
    l.load_path(std::path::Path::new(SAMPLE)).unwrap();
    l.load_bytes("extra.json", extra().to_string().as_bytes()).unwrap();
    Snapshot::build(l.finish().0, 7)
}

const LINES: &str = "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502\n\
    deny 198.51.100.7 and 203.0.113.3\n\
    file aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa and bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\
    GET http://evil.example/gate.php?id=1 from bad@evil.example via c2.evil.example\n\
    peer [2001:db8::5]:443\n\
    pe f34d5f2d4577ed6d9ceec516c1f5a744 ja3 e7d705a3286e19ea42f587b344ee6865 cert 3A:0C:5F:1E:2D:4B:6A:8C:9E:0F:1A:2B:3C:4D:5E:6F:7A:8B:9C:0D \
    fuzzy 96:s4Ud1Lj96tHHlZDrwciQmA:sF1LjEtHHlZDrw1mA to 192.0.2.77:4444\n";

#[test]
fn scan_hits_use_only_ecs_fields_with_their_types() {
    let fields = ecs_fields();
    assert!(fields.len() > 1000 && fields["@timestamp"].kind == "date");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("lines.log");
    std::fs::write(&input, LINES).unwrap();
    let list = dir.path().join("extra.json");
    std::fs::write(&list, extra().to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args([
            "scan",
            "--iocs",
            SAMPLE,
            "--iocs",
            list.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seen = Vec::new();
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 6);
    for d in &docs {
        check(d, &fields, &mut seen);
        assert_eq!(d["@timestamp"], d["event"]["created"]);
        assert!(d["iocmatch"]["snapshot_version"].is_u64());
    }
    for must in [
        "@timestamp",
        "event.created",
        "threat.enrichments.indicator.ip",
        "threat.enrichments.indicator.file.hash.sha256",
        "threat.enrichments.indicator.url.full",
        "threat.enrichments.indicator.email.address",
        "threat.enrichments.indicator.marking.tlp",
        "threat.enrichments.indicator.file.pe.imphash",
        "threat.enrichments.indicator.file.hash.ssdeep",
        "threat.enrichments.indicator.port",
        "log.file.path",
    ] {
        assert!(seen.iter().any(|p| p == must), "{must} never written: {seen:?}");
    }
}

#[test]
fn kafka_hits_use_only_ecs_fields_and_keep_the_record_time() {
    let fields = ecs_fields();
    let snap = snapshot();
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_123);
    let mut seen = Vec::new();
    let mut hits = Vec::new();
    for (n, line) in LINES.lines().enumerate() {
        scan_line(&snap, line.as_bytes(), &mut hits);
        assert!(!hits.is_empty(), "{line}");
        for h in &hits {
            let src = Source {
                topic: "logs",
                partition: 1,
                offset: n as i64,
                timestamp: Some(1_700_000_000_456),
                key: Some(b"host-1"),
            };
            let (_, doc) = record(
                &snap,
                line.as_bytes(),
                &unattributed(std::slice::from_ref(h)),
                &src,
                created,
            );
            check(&doc, &fields, &mut seen);
            assert_eq!(doc["@timestamp"], "2023-11-14T22:13:20.456Z");
            assert_eq!(doc["event"]["created"], "2025-11-24T16:00:00.123Z");
            assert_eq!(doc["iocmatch"]["kafka"]["offset"], n as i64);
            assert_eq!(doc["iocmatch"]["snapshot_version"], 7);
        }
    }
    let no_time = Source {
        topic: "logs",
        partition: 0,
        offset: 0,
        timestamp: None,
        key: None,
    };
    scan_line(&snap, LINES.lines().next().unwrap().as_bytes(), &mut hits);
    let first = LINES.lines().next().unwrap().as_bytes();
    let (_, doc) = record(&snap, first, &unattributed(&hits[..1]), &no_time, created);
    assert_eq!(
        doc["@timestamp"], doc["event"]["created"],
        "no record time: the hit's time"
    );
}
