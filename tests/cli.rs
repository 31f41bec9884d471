//! The `iocmatch` binary on the real fixtures, as a user runs it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SAMPLE: &str = "fixtures/iocs/sample-restsearch.json";

fn iocmatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run iocmatch")
}

fn iocmatch_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

/// The output's documents without the time each hit was made, which is all two scans of one input may differ in.
fn untimed(out: &Output) -> Vec<serde_json::Value> {
    json_lines(out)
        .into_iter()
        .map(|mut d| {
            d.as_object_mut().unwrap().remove("@timestamp");
            d["event"].as_object_mut().unwrap().remove("created");
            d
        })
        .collect()
}

fn log(name: &str) -> String {
    format!("fixtures/logs/{name}")
}

#[test]
fn scan_emits_ecs_enrichments_with_provenance_for_real_sshd_lines() {
    let out = iocmatch(&["scan", "--iocs", SAMPLE, &log("crowdsecurity__hub__sshd-logs.log")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = json_lines(&out);
    let text = std::fs::read_to_string(log("crowdsecurity__hub__sshd-logs.log")).unwrap();
    let expected = text.lines().filter(|l| l.contains("35.188.49.176")).count();
    assert_eq!(docs.len(), expected);
    let d = &docs[0];
    assert_eq!(d["iocmatch"]["offset"], 0);
    assert_eq!(d["log"]["file"]["path"], log("crowdsecurity__hub__sshd-logs.log"));
    assert!(d["event"]["original"].as_str().unwrap().contains("Invalid user pascal"));
    let e = &d["threat"]["enrichments"][0];
    assert_eq!(e["indicator"]["type"], "ipv4-addr");
    assert_eq!(e["indicator"]["name"], "35.188.49.176");
    assert_eq!(e["indicator"]["ip"], "35.188.49.176");
    assert_eq!(e["indicator"]["marking"]["tlp"], "AMBER");
    assert_eq!(e["matched"]["atomic"], "35.188.49.176");
    assert_eq!(e["matched"]["type"], "indicator_match_rule");
    assert_eq!(e["misp"]["event"]["uuid"], "5f1c2a9e-7b1d-4c33-9a51-3c2b6f0e4242");
    assert_eq!(e["misp"]["attribute"]["uuid"], "0d6a5b8c-1f2e-4a3b-8c7d-000000009003");
    assert_eq!(e["misp"]["attribute"]["category"], "Network activity");
    assert_eq!(e["misp"]["tags"][0], "tlp:amber");
    // log.offset points at the line's first byte in the file.
    for d in &docs {
        let off = d["iocmatch"]["offset"].as_u64().unwrap() as usize;
        assert!(text[off..].starts_with(d["event"]["original"].as_str().unwrap()));
    }
}

#[test]
fn each_indicator_type_hits_its_real_log_line() {
    let cases = [
        (
            "tstack__lnav__logfile_bro_http.log",
            "domain-name",
            "redditmedia.com",
            "e.thumbs.redditmedia.com",
        ),
        (
            "OTRF__Security-Datasets__apt29_day2_zeek_NEWYORK_dns.json.log",
            "domain-name",
            "nsatc.net",
            "audownload.windowsupdate.nsatc.net",
        ),
        (
            "rhaist__surevego__testdata_eve.json.log",
            "domain-name",
            "prod.debian.map.fastly.net",
            "prod.debian.map.fastly.net",
        ),
        (
            "crowdsecurity__hub__iptables-scan-multi-port.log",
            "ipv4-addr",
            "62.34.17.0/24",
            "62.34.17.168",
        ),
        (
            "zeek__zeek__opt.basic__dns.log",
            "ipv6-addr",
            "fe80::217:f2ff:fed7:cf65",
            "fe80::217:f2ff:fed7:cf65",
        ),
        (
            "crowdsecurity__hub__apache-http-probing.log",
            "url",
            "cirt.net/rfiinc.txt",
            "cirt.net/rfiinc.txt",
        ),
        (
            "OTRF__Security-Datasets__apt29_day1_zeek_SCRANTON_files.json.log",
            "file",
            "cc85d7649546d3c0b1607f761b73fec2",
            "cc85d7649546d3c0b1607f761b73fec2",
        ),
        (
            "tstack__lnav__logfile_shop_access_log.log",
            "email-addr",
            "help@moz.com",
            "help@moz.com",
        ),
    ];
    for (file, ecs_type, name, atomic) in cases {
        let out = iocmatch(&["scan", "--iocs", SAMPLE, &log(file)]);
        let found = json_lines(&out).iter().any(|d| {
            d["threat"]["enrichments"].as_array().unwrap().iter().any(|e| {
                e["indicator"]["type"] == ecs_type && e["indicator"]["name"] == name && e["matched"]["atomic"] == atomic
            })
        });
        assert!(found, "{name} in {file}");
    }
}

#[test]
fn lookalikes_and_filtered_attributes_never_hit_the_fixture_logs() {
    let out = iocmatch(&["scan", "--iocs", SAMPLE, "fixtures/logs"]);
    assert_eq!(out.status.code(), Some(2), "a directory is not a log file");
    let files: Vec<String> = std::fs::read_dir("fixtures/logs")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["scan", "--iocs", SAMPLE];
    args.extend(files.iter().map(String::as_str));
    let out = iocmatch(&args);
    for d in json_lines(&out) {
        for e in d["threat"]["enrichments"].as_array().unwrap() {
            let name = e["indicator"]["name"].as_str().unwrap();
            assert!(
                !["ddit.com", "www.reddit.com", "172.17.0.1"].contains(&name),
                "{name} must not load or hit"
            );
        }
    }
}

#[test]
fn output_lines_prints_raw_lines_like_grep_and_count_counts() {
    let f = log("crowdsecurity__hub__sshd-logs.log");
    let lines = iocmatch(&["scan", "--iocs", SAMPLE, "--output", "lines", &f]);
    let text = std::fs::read_to_string(&f).unwrap();
    let want: String = text
        .lines()
        .filter(|l| l.contains("35.188.49.176"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(String::from_utf8(lines.stdout).unwrap(), want);
    let count = iocmatch(&["scan", "--iocs", SAMPLE, "--output", "count", &f]);
    assert_eq!(
        String::from_utf8(count.stdout).unwrap().trim(),
        want.lines().count().to_string()
    );
}

#[test]
fn exit_status_is_0_on_hit_1_on_none_2_on_error() {
    let none = iocmatch(&["scan", "--iocs", SAMPLE, &log("crowdsecurity__hub__bind9-refused.log")]);
    assert_eq!(none.status.code(), Some(1));
    assert!(none.stdout.is_empty());
    let missing = iocmatch(&[
        "scan",
        "--iocs",
        SAMPLE,
        "no/such/file.log",
        &log("crowdsecurity__hub__sshd-logs.log"),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no/such/file.log"), "{err}");
    assert!(!missing.stdout.is_empty(), "the other file is still scanned");
    let bad_iocs = iocmatch(&[
        "scan",
        "--iocs",
        "no/such/iocs.json",
        &log("crowdsecurity__hub__sshd-logs.log"),
    ]);
    assert_eq!(bad_iocs.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_iocs.stderr).contains("no/such/iocs.json"));
}

#[test]
fn stdin_and_dash_are_scanned_without_a_file_path() {
    let input = b"a line\r\nconnect to 35.188.49.176\r\n";
    for args in [vec!["scan", "--iocs", SAMPLE], vec!["scan", "--iocs", SAMPLE, "-"]] {
        let out = iocmatch_stdin(&args, input);
        assert_eq!(out.status.code(), Some(0));
        let docs = json_lines(&out);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["iocmatch"]["offset"], 8);
        assert_eq!(
            docs[0]["event"]["original"], "connect to 35.188.49.176",
            "no \\r in the line"
        );
        assert!(docs[0]["log"].get("file").is_none());
    }
}

#[test]
fn gzip_input_is_read_directly() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("sshd.log.gz");
    let raw = std::fs::read(log("crowdsecurity__hub__sshd-logs.log")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap();
    let plain = iocmatch(&[
        "scan",
        "--iocs",
        SAMPLE,
        "--output",
        "lines",
        &log("crowdsecurity__hub__sshd-logs.log"),
    ]);
    let zipped = iocmatch(&["scan", "--iocs", SAMPLE, "--output", "lines", gz.to_str().unwrap()]);
    assert_eq!(zipped.status.code(), Some(0));
    assert_eq!(plain.stdout, zipped.stdout);
    // A pipe cannot seek back after the magic bytes are peeked: it is read through a buffer instead.
    let piped = iocmatch_stdin(
        &["scan", "--iocs", SAMPLE, "--output", "lines"],
        &std::fs::read(&gz).unwrap(),
    );
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(plain.stdout, piped.stdout);
}

#[test]
fn a_gzip_cut_short_is_scanned_up_to_the_break_and_the_break_is_named() {
    // Several chunks' worth of lines with hits all through, compressed and cut in the middle.
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    for i in 0..120_000u32 {
        if i % 991 == 0 {
            writeln!(raw, "{i} Invalid user from 35.188.49.176 port {i}").unwrap();
        } else {
            writeln!(raw, "{i} GET /index.html from 192.0.2.{} ok", i % 250).unwrap();
        }
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    let gz = enc.finish().unwrap();
    let cut = dir.path().join("cut.log.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    for threads in ["1", "2"] {
        let out = iocmatch(&[
            "scan",
            "--iocs",
            SAMPLE,
            "--threads",
            threads,
            "--output",
            "lines",
            cut.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let at: usize = err
            .split("read error after byte ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte named in {err}"));
        assert!(err.contains(cut.to_str().unwrap()), "{err}");
        // Every whole line read before the break is scanned and written, in order; the cut line after them is not.
        let before: Vec<u8> = raw[..at]
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| l.ends_with(b"\n"))
            .filter(|l| l.windows(13).any(|w| w == b"35.188.49.176"))
            .flatten()
            .copied()
            .collect();
        assert!(before.len() > 1_000, "{at}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&before),
            "threads {threads}"
        );
    }
}

#[test]
fn many_threads_keep_input_order_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    for i in 0..200_000u32 {
        if i % 997 == 0 {
            writeln!(f, "{i} Invalid user from 35.188.49.176 port {i}").unwrap();
        } else {
            writeln!(f, "{i} GET /index.html from 192.0.2.{} ok", i % 250).unwrap();
        }
    }
    drop(f);
    let one = iocmatch(&["scan", "--iocs", SAMPLE, "--threads", "1", big.to_str().unwrap()]);
    let four = iocmatch(&["scan", "--iocs", SAMPLE, "--threads", "4", big.to_str().unwrap()]);
    // The same documents in the same order; only the time each hit was made may differ.
    assert_eq!(untimed(&one), untimed(&four));
    let docs = json_lines(&four);
    assert_eq!(docs.len(), 200_000 / 997 + 1);
    let offsets: Vec<u64> = docs.iter().map(|d| d["iocmatch"]["offset"].as_u64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_mapped_file_scans_as_the_same_bytes_piped_or_read() {
    // Several pieces' worth of lines, with what splitting must keep whole: a Zeek header taking effect mid-file,
    // lines over the cap, CRLF, and a last line without a line feed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.log");
    let mut data = Vec::new();
    for i in 0..60_000u32 {
        match i % 20_000 {
            0 => data.extend_from_slice(b"#fields\tts\tuid\tid.orig_h\tquery\n"),
            7_000 => data.extend_from_slice(b"#fields\tts\tquery\tanswers\n"),
            _ => {}
        }
        if i % 4_999 == 0 {
            data.extend_from_slice(b"35.188.49.176 ");
            data.extend(std::iter::repeat_n(b'x', 9_000));
            data.extend_from_slice(b" 62.34.17.1\n");
        }
        let line = format!(
            "{i}\tC{i}\t192.0.2.{}\t{}\r\n",
            i % 250,
            ["ok.example", "35.188.49.176"][(i % 613 == 0) as usize]
        );
        data.extend_from_slice(line.as_bytes());
    }
    data.extend_from_slice(b"last 35.188.49.176");
    std::fs::write(&path, &data).unwrap();
    let file = path.to_str().unwrap();
    for extra in [
        &["--threads", "2"][..],
        &["--threads", "1", "--fields", "id.orig_h,query"],
        &["--threads", "2", "--fields", "id.orig_h,query"],
    ] {
        let mut args = vec!["scan", "--iocs", SAMPLE, "--max-line-bytes", "4000", "--stats"];
        args.extend_from_slice(extra);
        let piped = iocmatch_stdin(&args, &data);
        let mut read = args.clone();
        read.extend(["--no-mmap", file]);
        let read = iocmatch(&read);
        args.push(file);
        let mapped = iocmatch(&args);
        let stats = |o: &Output| {
            let e = String::from_utf8_lossy(&o.stderr).to_string();
            e.lines()
                .find(|l| l.starts_with("lines:"))
                .unwrap()
                .split("elapsed")
                .next()
                .unwrap()
                .to_string()
        };
        assert!(stats(&mapped).contains("truncated lines: 13"), "{}", stats(&mapped));
        assert_eq!(stats(&mapped), stats(&read));
        assert_eq!(stats(&mapped), stats(&piped));
        let docs = untimed(&mapped);
        assert!(docs.len() > 100, "{}", docs.len());
        assert_eq!(docs, untimed(&read));
        // Piped input has no file path; everything else is the same.
        let no_path = |mut v: Vec<serde_json::Value>| {
            for d in &mut v {
                d.as_object_mut().unwrap().remove("log");
            }
            v
        };
        assert_eq!(no_path(docs), no_path(untimed(&piped)));
    }
}

#[test]
fn over_long_lines_are_scanned_up_to_the_cap_and_counted() {
    let mut input = b"35.188.49.176 ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend(b" 62.34.17.1\nnext 35.188.49.176\n");
    let out = iocmatch_stdin(
        &["scan", "--iocs", SAMPLE, "--max-line-bytes", "100", "--stats"],
        &input,
    );
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["event"]["original"].as_str().unwrap().len(), 100);
    assert_eq!(
        docs[0]["threat"]["enrichments"].as_array().unwrap().len(),
        1,
        "the tail is not scanned"
    );
    assert_eq!(
        docs[1]["iocmatch"]["offset"],
        (input.len() - "next 35.188.49.176\n".len()) as u64
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated lines: 1"));
}

#[test]
fn invalid_utf8_lines_are_scanned_and_replaced_in_output() {
    let out = iocmatch_stdin(&["scan", "--iocs", SAMPLE], b"\xff\xfe 35.188.49.176 \xc3\n");
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 1);
    assert!(docs[0]["event"]["original"].as_str().unwrap().contains('\u{FFFD}'));
}

#[test]
fn stats_report_lines_bytes_hits_and_speed() {
    let f = log("crowdsecurity__hub__sshd-logs.log");
    let out = iocmatch(&["scan", "--iocs", SAMPLE, "--stats", "--output", "count", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    let size = std::fs::metadata(&f).unwrap().len();
    assert!(err.contains(&format!("bytes: {size}")), "{err}");
    assert!(err.contains("MB/s") && err.contains("hits ipv4:"), "{err}");
}

#[test]
fn check_reports_loaded_rejected_with_location_and_unsupported() {
    let out = iocmatch(&["check", "--iocs", SAMPLE]);
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("hash_wrong_length: 1"), "{s}");
    assert!(s.contains("network_too_broad: 1"), "{s}");
    assert!(s.contains("domain_without_dot: 1"), "{s}");
    assert!(s.contains("sample-restsearch.json#/response/Attribute/15"), "{s}");
    assert!(s.contains("regkey: 1"), "{s}");
    assert!(s.contains("1 without to_ids, 1 deleted"), "{s}");
    assert!(s.contains("total             12"), "{s}");
}

#[test]
fn check_counts_duplicates_across_sources() {
    let out = iocmatch(&["check", "--iocs", SAMPLE, "--iocs", "fixtures/iocs/plain-list.txt"]);
    let s = String::from_utf8(out.stdout).unwrap();
    // plain-list.txt repeats 7 sample values and adds one range.
    let domain_row = s.lines().find(|l| l.starts_with("domain ")).unwrap();
    assert_eq!(
        domain_row.split_whitespace().collect::<Vec<_>>(),
        ["domain", "3", "1", "1"]
    );
    let ip_row = s.lines().find(|l| l.starts_with("ip-dst ")).unwrap();
    assert_eq!(ip_row.split_whitespace().collect::<Vec<_>>(), ["ip-dst", "1", "1", "3"]);
    assert!(s.contains("total             13"), "{s}");
}

#[test]
fn real_misp_sources_all_load() {
    for (path, min) in [
        ("fixtures/misp/events/eset__glupteba_glupteba.misp-event.json", 300),
        ("fixtures/misp/events/eset__swc-candiru_swc-candiru_misp.json", 10),
        ("fixtures/misp/events/eset__telebots_misp-telebots.json", 60),
        ("fixtures/misp/events/eset__sshdoor_misp-events_mimban.json", 0),
        ("fixtures/misp/restsearch/demisto__search_attribute_by_type.json", 2),
        ("fixtures/misp/restsearch/demisto__reputation_command_response.json", 1),
        ("fixtures/misp/feed/infoblox", 100),
        ("fixtures/misp/csv/sample-export.csv", 3),
    ] {
        assert!(Path::new(path).exists(), "{path}");
        let out = iocmatch(&["check", "--iocs", path]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8(out.stdout).unwrap();
        let total: usize = s
            .lines()
            .find(|l| l.trim_start().starts_with("total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(total >= min, "{path}: {total} < {min}\n{s}");
    }
}

#[test]
fn plain_lists_refang_every_style_and_keep_comments_in_the_hits() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("report.txt");
    let hash = "0c5c6f1c7b2e3d4a5b6c7d8e9f0a1b2c";
    std::fs::write(
        &list,
        format!(
            "# values as an ESET report lists them\n\
             101.36.125[.]203\n18.216.127{{.}}143\n45.9.148(.)21\n91.92.240[dot]7\n\
             2001:db8[:]:9\n10.20.30[.]0/24\n\
             hxxps://dl.evil[.]example/a.exe\nhxxp[:]//c2.evil(.)example/gate\n\
             bad[@]evil[.]example\nops[at]evil(dot)example\n\
             {hash};Emotet loader, first stage\nmail.evil.example,phishing kit\n"
        ),
    )
    .unwrap();
    let list = list.to_str().unwrap();
    let check = iocmatch(&["check", "--iocs", list]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    let lines = "dst=101.36.125.203\ndst=18.216.127.143\ndst=45.9.148.21\ndst=91.92.240.7\ndst=2001:db8::9\n\
                 dst=10.20.30.40\nGET https://dl.evil.example/a.exe\nGET http://c2.evil.example/gate\n\
                 from bad@evil.example\nfrom ops@evil.example\n";
    let out = iocmatch_stdin(
        &["scan", "--iocs", list],
        format!("{lines}sample {hash}\nmx mail.evil.example\n").as_bytes(),
    );
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 12, "{}", String::from_utf8_lossy(&out.stdout));
    let comment = |i: usize| docs[i]["threat"]["enrichments"][0]["misp"]["attribute"]["comment"].clone();
    assert_eq!(comment(10), "Emotet loader, first stage");
    assert_eq!(comment(11), "phishing kit");
    assert!(comment(0).is_null());
}

/// Runs iocmatch under a pseudo-terminal (util-linux `script`), as a person at a terminal would; `None` when
/// `script` is not installed.
fn iocmatch_on_a_terminal(env: &str, args: &str) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_iocmatch");
    let out = Command::new("script")
        .args(["-qec", &format!("env {env} {bin} {args}"), "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn logs_carry_colour_only_on_a_terminal_and_never_with_no_color_or_json() {
    let args = format!(
        "scan --iocs fixtures/iocs/plain-list.txt {}",
        log("crowdsecurity__hub__sshd-logs.log")
    );
    // Into a pipe: plain text, no progress bar.
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(args.split(' '))
        .env("IOCMATCH_LOG", "debug")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("snapshot built"), "{stderr}");
    assert!(!stderr.contains('\x1b') && !stderr.contains('\r'), "{stderr:?}");
    let Some(tty) = iocmatch_on_a_terminal("IOCMATCH_LOG=debug", &args) else {
        eprintln!("skipping the terminal half: util-linux `script` is not installed");
        return;
    };
    assert!(
        tty.contains("\x1b[") && tty.contains("snapshot built"),
        "a terminal gets colour: {tty:?}"
    );
    for (env, extra) in [
        ("IOCMATCH_LOG=debug NO_COLOR=1", ""),
        ("IOCMATCH_LOG=debug", "--log-format json "),
    ] {
        let plain = iocmatch_on_a_terminal(env, &format!("{extra}{args} --output count")).unwrap();
        assert!(plain.contains("snapshot built"), "{plain:?}");
        let log_lines: Vec<&str> = plain.lines().filter(|l| l.contains("snapshot built")).collect();
        assert!(
            log_lines.iter().all(|l| !l.contains('\x1b')),
            "{env} {extra}: {log_lines:?}"
        );
    }
}

#[test]
fn bench_into_a_file_shows_no_progress_bar_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("bench.txt")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["bench", "--indicators", "1k", "--lines", "2000", "--repeat", "1"])
        .env("IOCMATCH_LOG", "info")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.path().join("bench.txt")).unwrap();
    assert!(text.contains("1k") || text.contains("1000"), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
}

#[test]
fn bench_real_scans_the_given_log_files_and_compares_hyperscan_when_installed() {
    let logs = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/logs");
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args([
            "bench",
            "--indicators",
            "2k",
            "--repeat",
            "1",
            "--json",
            "--compare",
            "--real",
            logs,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &rows[0];
    // Every line of every file in the directory (PROVENANCE.md included: it is a regular file there).
    let mut want_bytes = 0;
    let mut want_lines = 0;
    for e in std::fs::read_dir(logs).unwrap() {
        let text = std::fs::read(e.unwrap().path()).unwrap();
        want_bytes += text.len() + usize::from(!text.ends_with(b"\n"));
        want_lines += text.iter().filter(|b| **b == b'\n').count() + usize::from(!text.ends_with(b"\n"));
    }
    assert_eq!(row["log_bytes"], want_bytes);
    assert_eq!(row["lines"], want_lines);
    assert_eq!(row["real_logs"], true);
    assert_eq!(row["hits_planted"], 0);
    // The snapshot's size is the bytes its layout holds, never a difference of RSS that can come out negative.
    let per = row["bytes_per_indicator"].as_f64().unwrap();
    assert!(row["snapshot_bytes"].as_u64().unwrap() > 2000 && per > 1.0, "{row}");
    let tools: Vec<&str> = row["compare"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["grep", "rg", "hyperscan"]);
    let hs = &row["compare"][2];
    if std::env::var_os("IOCMATCH_REQUIRE_HYPERSCAN").is_some() {
        assert!(hs["mb_s"].as_f64().unwrap() > 0.0, "{hs}");
        assert!(hs["compile_seconds"].as_f64().unwrap() > 0.0, "{hs}");
    } else {
        assert!(hs["mb_s"].as_f64().unwrap() > 0.0 || hs["note"].as_str().unwrap().contains("hyperscan"));
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["bench", "--indicators", "1k", "--real", "/nonexistent-dir"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent-dir"));
}

#[test]
fn maltrail_style_lists_load_host_port_lines_and_reject_bare_paths_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("trail.txt");
    // The shapes of a maltrail static trail file: addresses and hosts with ports, plain hosts, URLs and paths.
    std::fs::write(
        &list,
        "# Copyright (c) 2014-2025 Maltrail developers\n# Reference: https://example.org/report\n\n\
         185.220.101.47:8080\n[2001:db8::66]:443\nc2.evil-cdn.example:8443\nupdate.evil-cdn.example\n\
         evil-cdn.example/panel/gate.php\n/wp-content/gate.php\n",
    )
    .unwrap();
    let list = list.to_str().unwrap();
    let check = iocmatch(&["check", "--iocs", list]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("is a path without a host"), "{report}");
    assert!(
        report.contains("trail.txt:9"),
        "the rejection names file and line: {report}"
    );
    let lines = "conn to 185.220.101.47:8080\nconn [2001:db8::66]:443\nGET https://c2.evil-cdn.example:8443/a\n";
    let out = iocmatch_stdin(&["scan", "--iocs", list], lines.as_bytes());
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 3, "{}", String::from_utf8_lossy(&out.stdout));
    let ind = |i: usize| docs[i]["threat"]["enrichments"][0]["indicator"].clone();
    assert_eq!(ind(0)["ip"], "185.220.101.47");
    assert_eq!(ind(0)["port"], 8080);
    assert_eq!(ind(1)["ip"], "2001:db8::66");
    assert_eq!(ind(2)["url"]["domain"], "c2.evil-cdn.example");
    assert_eq!(ind(2)["port"], 8443);
    assert_eq!(
        docs[0]["threat"]["enrichments"][0]["misp"]["attribute"]["type"],
        "ip-dst|port"
    );
    // `hostname|port` is the exact host, as MISP means it: a subdomain is a look-alike.
    let out = iocmatch_stdin(&["scan", "--iocs", list], b"GET https://x.c2.evil-cdn.example:8443/a\n");
    assert_eq!(out.status.code(), Some(1));
}
