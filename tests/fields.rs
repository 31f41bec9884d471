//! `matched.field`: where in the line each hit is, on real lines from `fixtures/logs` (Suricata EVE, Zeek JSON and
//! TSV, Sysmon and Windows Security events, iptables key=value, Apache and sshd syslog), through the binary.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn log(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs").join(name)).unwrap()
}

/// Scans `input` with the indicators `iocs`; returns (indicator, field) for every enrichment, and the documents.
fn scan(iocs: &[&str], input: &str, extra: &[&str]) -> (BTreeSet<(String, String)>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("iocs.txt");
    std::fs::write(&list, iocs.join("\n")).unwrap();
    let file = dir.path().join("input.log");
    std::fs::write(&file, input).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args([
            "scan",
            "--threads",
            "2",
            "--iocs",
            list.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let docs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut pairs = BTreeSet::new();
    for d in &docs {
        for e in d["threat"]["enrichments"].as_array().unwrap() {
            pairs.insert((
                e["matched"]["atomic"].as_str().unwrap().to_string(),
                e["matched"]["field"].as_str().unwrap().to_string(),
            ));
        }
    }
    (pairs, docs)
}

fn pairs(p: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn json_lines_report_the_dotted_key_path() {
    let eve = log("rhaist__surevego__testdata_eve.json.log");
    let dns = eve
        .lines()
        .find(|l| l.contains("\"rrname\":\"prod.debian.map.fastly.net\""))
        .unwrap();
    let http = eve
        .lines()
        .find(|l| l.contains("\"hostname\":\"deb.debian.org\""))
        .unwrap();
    let input = format!("{dns}\n{http}\n");
    let (got, _) = scan(
        &["fastly.net", "172.21.3.254", "deb.debian.org", "54.230.202.37"],
        &input,
        &[],
    );
    assert_eq!(
        got,
        pairs(&[
            ("prod.debian.map.fastly.net", "dns.rrname"),
            ("172.21.3.254", "dest_ip"),
            ("deb.debian.org", "http.hostname"),
            ("54.230.202.37", "dest_ip"),
        ])
    );
    let zeek = log("OTRF__Security-Datasets__apt29_day2_zeek_NEWYORK_dns.json.log");
    let q = zeek
        .lines()
        .find(|l| l.contains("\"query\":\"ctldl.windowsupdate.com\""))
        .unwrap();
    let (got, _) = scan(&["windowsupdate.com", "10.0.0.4"], q, &[]);
    assert_eq!(
        got,
        pairs(&[("ctldl.windowsupdate.com", "query"), ("10.0.0.4", "id_resp_h")])
    );
}

#[test]
fn windows_events_name_the_event_data_key_and_a_value_under_two_keys_is_reported_under_both() {
    let otrf = log("OTRF__Security-Datasets__aadinternals_export_adfsdatabaseconfig_remotely.json.log");
    let sysmon = otrf
        .lines()
        .find(|l| l.contains("\"DestinationIp\":\"192.168.2.4\""))
        .unwrap();
    let (got, docs) = scan(&["192.168.2.4", "192.168.2.5"], sysmon, &[]);
    assert!(got.contains(&("192.168.2.4".into(), "DestinationIp".into())), "{got:?}");
    assert!(got.contains(&("192.168.2.5".into(), "SourceIp".into())), "{got:?}");
    assert_eq!(docs.len(), 1);
    // A Security 5156 event: the source address is a field and is also written out in the Message text.
    let wfp = otrf.lines().nth(9).unwrap();
    assert!(wfp.contains("\"SourceAddress\":\"192.168.2.5\""));
    let (got, docs) = scan(&["192.168.2.5"], wfp, &[]);
    assert_eq!(
        got,
        pairs(&[("192.168.2.5", "Message"), ("192.168.2.5", "SourceAddress")])
    );
    assert_eq!(
        docs[0]["threat"]["enrichments"].as_array().unwrap().len(),
        2,
        "one per indicator and field"
    );
}

#[test]
fn zeek_tsv_columns_come_from_the_files_fields_header() {
    let conn = log("tstack__lnav__logfile_bro_conn.log");
    let (got, _) = scan(&["208.85.42.28"], &conn, &[]);
    assert_eq!(got, pairs(&[("208.85.42.28", "id.resp_h")]));
    // Long enough to span chunks: the header found in the first chunk names the columns of the later ones.
    let mut big = conn.clone();
    let data: Vec<&str> = conn.lines().filter(|l| !l.starts_with('#')).collect();
    while big.len() < 3 << 20 {
        big.push_str(&data.join("\n"));
        big.push('\n');
    }
    big.push_str("1320279999.000000\tCzzz\t10.9.9.9\t5\t198.51.100.99\t80\ttcp\n");
    let (got, _) = scan(&["198.51.100.99"], &big, &[]);
    assert_eq!(got, pairs(&[("198.51.100.99", "id.resp_h")]));
}

#[test]
fn key_value_lines_name_the_key_and_plain_lines_stay_event_original() {
    let ipt = log("crowdsecurity__hub__iptables-scan-multi-port.log");
    let line = ipt.lines().next().unwrap();
    let (got, _) = scan(&["62.34.17.168", "10.73.140.49"], line, &[]);
    assert_eq!(got, pairs(&[("62.34.17.168", "SRC"), ("10.73.140.49", "DST")]));
    let ssh = log("crowdsecurity__hub__sshd-logs.log");
    let (got, _) = scan(&["35.188.49.176"], ssh.lines().next().unwrap(), &[]);
    assert_eq!(got, pairs(&[("35.188.49.176", "event.original")]));
    let apache = log("crowdsecurity__hub__apache-http-probing.log");
    let (got, _) = scan(&["cirt.net"], apache.lines().next().unwrap(), &[]);
    assert_eq!(
        got,
        pairs(&[("cirt.net", "event.original")]),
        "a URL query parameter is not a field"
    );
}

#[test]
fn fields_restrict_matching_to_the_named_fields() {
    let eve = log("rhaist__surevego__testdata_eve.json.log");
    let dns = eve
        .lines()
        .find(|l| l.contains("\"rrname\":\"prod.debian.map.fastly.net\""))
        .unwrap();
    let ssh = log("crowdsecurity__hub__sshd-logs.log");
    let input = format!("{dns}\n{}\n", ssh.lines().next().unwrap());
    let iocs = ["fastly.net", "172.21.3.254", "35.188.49.176"];
    let (got, _) = scan(&iocs, &input, &["--fields", "dns.*"]);
    assert_eq!(
        got,
        pairs(&[
            ("prod.debian.map.fastly.net", "dns.rrname"),
            ("35.188.49.176", "event.original")
        ]),
        "dest_ip is not a dns.* field; a line without fields keeps matching"
    );
    let (got, _) = scan(&iocs, &input, &["--fields", "dns.rrname,dest_ip", "--fields-strict"]);
    assert_eq!(
        got,
        pairs(&[
            ("prod.debian.map.fastly.net", "dns.rrname"),
            ("172.21.3.254", "dest_ip")
        ])
    );
}
