//! Exports: golden files for each format on the fixtures, a parser check of each, and no rewrite when nothing
//! changed.

use iocmatch::export::{self, ExportMeta, Format, Rendered, TypeFilter};
use iocmatch::load::load_paths;
use iocmatch::{Policy, Snapshot};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn fixture_snapshot() -> Snapshot {
    let paths = [
        PathBuf::from("fixtures/iocs/sample-restsearch.json"),
        PathBuf::from("fixtures/iocs/plain-list.txt"),
    ];
    let (set, _) = load_paths(&paths, Policy::default()).unwrap();
    Snapshot::build(set, 7)
}

fn meta() -> ExportMeta {
    ExportMeta {
        version: 7,
        generated_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000),
        misp_url: Some("https://misp.example.org".into()),
    }
}

fn rendered(format: Format) -> Vec<Rendered> {
    export::render(&fixture_snapshot(), format, &TypeFilter::default(), &meta())
}

/// Writes the files into a fresh directory and returns it with the output path.
fn written(format: Format) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = if format == Format::Suricata {
        dir.path().join("suricata")
    } else {
        dir.path().join("out")
    };
    export::write(&out, &rendered(format)).unwrap();
    (dir, out)
}

#[test]
fn every_format_matches_its_golden_file() {
    let update = std::env::var_os("IOCMATCH_UPDATE_GOLDEN").is_some();
    for (format, name) in [
        (Format::Zeek, "zeek"),
        (Format::Suricata, "suricata"),
        (Format::Nftables, "nftables"),
        (Format::Ipset, "ipset"),
        (Format::Rpz, "rpz"),
        (Format::Csv, "csv"),
        (Format::Jsonl, "jsonl"),
    ] {
        for f in rendered(format) {
            let file = if f.name.is_empty() {
                name.to_string()
            } else {
                format!("{name}-{}", f.name)
            };
            let golden = Path::new("tests/golden").join(&file);
            let text = format!("{}{}", f.header, String::from_utf8(f.body).unwrap());
            if update {
                std::fs::write(&golden, &text).unwrap();
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("missing {}", golden.display()));
            assert_eq!(text, want, "{file} differs from its golden file");
        }
    }
}

#[test]
fn zeek_intel_reads_back_as_tsv_with_a_fields_header() {
    let (_d, out) = written(Format::Zeek);
    let text = std::fs::read_to_string(out).unwrap();
    let mut fields: Option<Vec<&str>> = None;
    let mut rows = 0;
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = Some(f.split('\t').collect());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let f = fields.as_ref().expect("#fields comes before data");
        assert_eq!(
            f,
            &["indicator", "indicator_type", "meta.source", "meta.desc", "meta.url"]
        );
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), f.len(), "{line}");
        assert!(cols[1].starts_with("Intel::"), "{line}");
        assert!(cols.iter().all(|c| !c.is_empty()), "empty fields are written as -");
        rows += 1;
    }
    // 13 indicators; the range 62.34.18.1-62.34.18.9 becomes 4 subnets.
    assert_eq!(rows, 16);
    assert!(text.contains("62.34.17.0/24\tIntel::SUBNET"));
    assert!(text.contains("cirt.net/rfiinc.txt\tIntel::URL"));
    assert!(text.contains("https://misp.example.org/events/view/4242"));
}

#[test]
fn nftables_file_passes_nft_check() {
    let (_d, out) = written(Format::Nftables);
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!("SKIPPED: nft is not installed (Debian package nftables; scripts/test.sh installs it)");
        return;
    }
    let o = Command::new("nft").args(["-c", "-f"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "nft -c -f: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn rpz_zone_passes_named_checkzone() {
    let (_d, out) = written(Format::Rpz);
    if Command::new("named-checkzone").arg("-v").output().is_err() {
        eprintln!(
            "SKIPPED: named-checkzone is not installed (Debian package bind9-utils; scripts/test.sh installs it)"
        );
        return;
    }
    let o = Command::new("named-checkzone")
        .arg("rpz.iocmatch")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "named-checkzone: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let text = std::fs::read_to_string(out).unwrap();
    assert!(
        text.contains("redditmedia.com CNAME .\n*.redditmedia.com CNAME ."),
        "domains carry the suffix rule"
    );
    assert!(!text.contains("*.prod.debian.map.fastly.net"), "hostnames are exact");
}

#[test]
fn firewall_sets_are_merged_minimal() {
    let (_d, out) = written(Format::Ipset);
    let text = std::fs::read_to_string(out).unwrap();
    let adds: Vec<&str> = text.lines().filter(|l| l.starts_with("add iocmatch-v4 ")).collect();
    // The sample's 62.34.17.0/24 and the plain list's range 62.34.18.1-9 stay apart; duplicates merge.
    assert_eq!(adds.len(), 7, "{adds:?}");
    let mut snap_set = iocmatch::IndicatorSet::new();
    for v in ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7/32"] {
        snap_set.insert(iocmatch::Indicator {
            value: iocmatch::Value::Net(v.parse().unwrap()),
            provenance: Default::default(),
            merged: 0,
        });
    }
    let f = export::render(
        &Snapshot::build(snap_set, 1),
        Format::Nftables,
        &TypeFilter::default(),
        &meta(),
    );
    let body = String::from_utf8(f[0].body.clone()).unwrap();
    assert!(
        body.contains("misp_v4 { 10.0.0.0/24 }"),
        "adjacent and contained networks merge: {body}"
    );
}

#[test]
fn suricata_datasets_are_base64_strings_and_hex_hashes_loaded_by_the_rules() {
    use base64::Engine;
    let (_d, out) = written(Format::Suricata);
    let domains = std::fs::read_to_string(out.join("domains.lst")).unwrap();
    let decoded: Vec<String> = domains
        .lines()
        .map(|l| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(l).unwrap()).unwrap())
        .collect();
    assert!(decoded.contains(&"redditmedia.com".to_string()), "{decoded:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("md5.lst")).unwrap(),
        "cc85d7649546d3c0b1607f761b73fec2\n"
    );
    let rules = std::fs::read_to_string(out.join("iocmatch.rules")).unwrap();
    for file in [
        "domains.lst",
        "ipv4.lst",
        "ipv6.lst",
        "md5.lst",
        "sha1.lst",
        "sha256.lst",
    ] {
        assert!(rules.contains(file), "{file} is used by a rule");
        assert!(out.join(file).exists());
    }
    let ipv4 = std::fs::read_to_string(out.join("ipv4.lst")).unwrap();
    assert!(
        ipv4.lines().any(|l| l == "62.34.17.200"),
        "a /24 is expanded into addresses"
    );
}

#[test]
fn csv_and_jsonl_carry_the_full_provenance() {
    let (_d, out) = written(Format::Csv);
    let mut r = csv::Reader::from_path(&out).unwrap();
    let headers = r.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 13);
    let ip = rows.iter().find(|r| &r[0] == "35.188.49.176").unwrap();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    assert_eq!(&ip[col("event_uuid")], "5f1c2a9e-7b1d-4c33-9a51-3c2b6f0e4242");
    assert_eq!(&ip[col("tags")], "tlp:amber");
    let (_d2, out) = written(Format::Jsonl);
    for line in std::fs::read_to_string(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["value"].is_string() && v["type"].is_string() && v.get("attribute_uuid").is_some());
    }
}

#[test]
fn files_are_rewritten_only_when_their_content_changes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("intel.dat");
    let first = export::write(&out, &rendered(Format::Zeek)).unwrap();
    assert!(first[0].changed);
    let mtime = std::fs::metadata(&out).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // A later snapshot version and time with the same indicators: nothing to rewrite.
    let mut m = meta();
    m.version = 8;
    m.generated_at += Duration::from_secs(60);
    let again = export::write(
        &out,
        &export::render(&fixture_snapshot(), Format::Zeek, &TypeFilter::default(), &m),
    )
    .unwrap();
    assert!(!again[0].changed);
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), mtime);
    let only_ips = TypeFilter::parse(&["ipv4".into()]).unwrap();
    let changed = export::write(&out, &export::render(&fixture_snapshot(), Format::Zeek, &only_ips, &m)).unwrap();
    assert!(changed[0].changed);
}

#[test]
fn a_refresh_that_changes_nothing_leaves_exported_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let iocs = std::fs::canonicalize("fixtures/iocs/sample-restsearch.json").unwrap();
    let cfg_text = format!(
        "state_dir = {state:?}\niocs = [{iocs:?}]\n[[export]]\nformat = \"zeek\"\npath = {z:?}\n[[export]]\nformat = \"rpz\"\npath = {r:?}\n[[export]]\nformat = \"suricata\"\npath = {s:?}\ntypes = [\"domain\"]\n",
        state = dir.path().join("state").display().to_string(),
        iocs = iocs.display().to_string(),
        z = dir.path().join("iocmatch.intel").display().to_string(),
        r = dir.path().join("iocmatch.rpz").display().to_string(),
        s = dir.path().join("suricata").display().to_string(),
    );
    let cfg = iocmatch::config::Config::parse(&cfg_text, "t.toml", &[]).unwrap();
    let mut r = iocmatch::refresh::Refresher::new(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(r.start()).unwrap();
    let files = [
        "iocmatch.intel",
        "iocmatch.rpz",
        "suricata/domains.lst",
        "suricata/iocmatch.rules",
    ];
    let mtimes: Vec<SystemTime> = files
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().modified().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    rt.block_on(r.refresh(true)).unwrap();
    let after: Vec<SystemTime> = files
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(mtimes, after);
}

/// Parses `iprep.list` and `iprep-categories.txt` the way Suricata's `src/reputation.c` does (OISF/suricata,
/// `SRepLoadCatFileFromFD`/`SRepCatSplitLine` and `SRepLoadFileFromFD`/`SRepSplitLine`): lines starting with `#`,
/// a space, a tab or a line break are comments; a category line is `<id>,<short name>[,<description>]` with the id
/// below `SREP_MAX_CATS` (60) and the short name under `SREP_SHORTNAME_LEN` (32); a reputation line is exactly
/// `<ip>,<category>,<score>` with the category below 60 and the score at most `SREP_MAX_VAL` (127), a netblock when
/// the first field holds a `/`. The rule keyword is checked against `detect-iprep.c`'s `PARSE_REGEX`.
#[test]
fn suricata_networks_are_ip_reputation_cidrs_as_suricata_parses_them() {
    let (_d, out) = written(Format::Suricata);
    let is_comment = |l: &str| l.is_empty() || l.starts_with(['#', ' ', '\t', '\r']);
    let cats = std::fs::read_to_string(out.join("iprep-categories.txt")).unwrap();
    let mut names = std::collections::HashMap::new();
    for line in cats.lines().filter(|l| !is_comment(l)) {
        let mut f = line.splitn(3, ',');
        let id: u8 = f.next().unwrap().parse().unwrap();
        let name = f.next().expect("a short name");
        assert!(id < 60 && !name.is_empty() && name.len() < 32, "{line}");
        names.insert(name.to_string(), id);
    }
    let list = std::fs::read_to_string(out.join("iprep.list")).unwrap();
    let mut nets = Vec::new();
    for line in list.lines().filter(|l| !is_comment(l)) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 3, "{line}");
        assert!(f[0].contains('/'), "a netblock: {line}");
        let net: ipnet::IpNet = f[0].parse().unwrap();
        let cat: u8 = f[1].parse().unwrap();
        let score: u8 = f[2].parse().unwrap();
        assert!(cat < 60 && names.values().any(|c| *c == cat) && score <= 127, "{line}");
        nets.push(net);
    }
    // The plain list's range 62.34.18.1-62.34.18.9 as its CIDR cover; the /24 stays expanded in the dataset.
    for want in ["62.34.18.1/32", "62.34.18.2/31", "62.34.18.4/30", "62.34.18.8/31"] {
        assert!(nets.contains(&want.parse().unwrap()), "{want} in {nets:?}");
    }
    assert!(!nets.contains(&"62.34.17.0/24".parse().unwrap()));
    let rules = std::fs::read_to_string(out.join("iocmatch.rules")).unwrap();
    let keyword =
        regex::Regex::new(r"iprep:\s*(any|src|dst|both)\s*,\s*([A-Za-z0-9\-_]+)\s*,\s*(<|>|=)\s*,\s*([0-9]+)\s*;")
            .unwrap();
    let used: Vec<String> = keyword.captures_iter(&rules).map(|c| c[2].to_string()).collect();
    assert_eq!(used.len(), 2, "{rules}");
    assert!(
        used.iter().all(|n| names.contains_key(n)),
        "the rules name a category of the file"
    );
    assert!(rules.contains("reputation-categories-file:") && rules.contains("- iprep.list"));
}

#[test]
fn zeek_file_says_domains_match_exactly_and_the_suffix_script_uses_zeeks_own_events() {
    let (_d, out) = written(Format::Zeek);
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.contains("subdomains are seen only with"), "{text}");
    assert!(text.contains("deploy/zeek/iocmatch-domain-suffix.zeek"));
    let script = std::fs::read_to_string("deploy/zeek/iocmatch-domain-suffix.zeek").unwrap();
    // The handlers have the prototypes of Zeek's own `policy/frameworks/intel/seen/{dns,http-headers,ssl}.zeek`,
    // and the Where values are those `where-locations.zeek` declares.
    for line in [
        "event dns_request(c: connection, msg: dns_msg, query: string, qtype: count, qclass: count)",
        "event http_header(c: connection, is_orig: bool, name: string, value: string)",
        "event ssl_extension_server_name(c: connection, is_orig: bool, names: string_vec)",
        "DNS::IN_REQUEST",
        "HTTP::IN_HOST_HEADER",
        "SSL::IN_SERVER_NAME",
        "$indicator_type=Intel::DOMAIN",
        "while ( i + 1 < n )",
    ] {
        assert!(script.contains(line), "{line}");
    }
    // The walk it implements: from the second label while at least two labels remain.
    let parents = |name: &str| -> Vec<String> {
        let labels: Vec<&str> = name.split('.').collect();
        (1..labels.len().saturating_sub(1))
            .map(|i| labels[i..].join("."))
            .collect()
    };
    assert_eq!(parents("a.b.evil.com"), ["b.evil.com", "evil.com"]);
    assert!(parents("evil.com").is_empty());
}
