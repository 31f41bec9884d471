//! The matching rules are the contract: each rule, and each look-alike that must not match.

use iocmatch::load::Loader;
use iocmatch::scan::{scan_line, Hit};
use iocmatch::{Policy, Snapshot};

/// Builds a snapshot from `(misp type, value)` pairs.
fn snap(iocs: &[(&str, &str)]) -> Snapshot {
    let attrs: Vec<String> = iocs
        .iter()
        .map(|(t, v)| serde_json::json!({"type": t, "value": v, "to_ids": true}).to_string())
        .collect();
    let mut l = Loader::new(Policy::default());
    l.load_bytes("rules.json", format!("[{}]", attrs.join(",")).as_bytes())
        .unwrap();
    let (set, stats) = l.finish();
    assert_eq!(stats.total_rejected(), 0, "{stats:?}");
    Snapshot::build(set, 1)
}

/// The normalised names of the indicators that hit `line`, with the matched text.
fn hits(s: &Snapshot, line: &str) -> Vec<(String, String)> {
    let mut h: Vec<Hit> = Vec::new();
    scan_line(s, line.as_bytes(), &mut h);
    h.iter()
        .map(|h| {
            (
                s.indicator(h.indicator).value.name(),
                line[h.start as usize..h.end as usize].to_string(),
            )
        })
        .collect()
}

fn names(s: &Snapshot, line: &str) -> Vec<String> {
    hits(s, line).into_iter().map(|(n, _)| n).collect()
}

fn matches(s: &Snapshot, line: &str) -> bool {
    !names(s, line).is_empty()
}

/// Look-alikes: none of these lines may hit.
fn none_match(s: &Snapshot, lines: &[&str]) {
    for line in lines {
        assert!(!matches(s, line), "{line}");
    }
}

#[test]
fn domain_matches_itself_and_subdomains_in_any_case_and_context() {
    let s = snap(&[("domain", "evil.com")]);
    for line in [
        "GET a.b.evil.com",
        "query EVIL.COM. A",
        "http://evil.com/x",
        r#"{"u":"http:\/\/evil.com\/x"}"#,
        "from user@evil.com",
        "evil.com",
    ] {
        assert_eq!(names(&s, line), ["evil.com"], "{line}");
    }
}

#[test]
fn domain_does_not_match_lookalike_prefixes_or_longer_suffixes() {
    let s = snap(&[("domain", "evil.com")]);
    none_match(
        &s,
        &[
            "notevil.com",
            "evil.com.au",
            "evil.community",
            "x-evil.com",
            "evil.co m",
            "evil_com",
        ],
    );
}

#[test]
fn domain_part_of_domain_ip_uses_the_suffix_rule() {
    let s = snap(&[("domain|ip", "evil.com|9.9.9.9")]);
    assert_eq!(names(&s, "c2.evil.com"), ["evil.com"]);
    assert_eq!(names(&s, "dst=9.9.9.9"), ["9.9.9.9"]);
}

#[test]
fn hostname_matches_only_the_exact_host_token() {
    let s = snap(&[("hostname", "c2.evil.com"), ("hostname|port", "www.bad.org|8080")]);
    assert_eq!(names(&s, "connect C2.Evil.Com:443"), ["c2.evil.com"]);
    assert_eq!(names(&s, "www.bad.org"), ["www.bad.org"]);
    assert!(!matches(&s, "x.c2.evil.com"));
    assert!(!matches(&s, "evil.com"));
    assert!(!matches(&s, "c2.evil.com.au"));
}

#[test]
fn ipv4_matches_with_port_brackets_and_punctuation() {
    let s = snap(&[("ip-dst", "1.2.3.4")]);
    for line in [
        "1.2.3.4:443",
        "[1.2.3.4]",
        "1.2.3.4,",
        "src=1.2.3.4 ok",
        "1.2.3.4",
        "1.2.3.4.",
    ] {
        assert_eq!(names(&s, line), ["1.2.3.4"], "{line}");
    }
}

#[test]
fn ipv4_does_not_match_inside_longer_numbers_or_invalid_quads() {
    let s = snap(&[("ip-dst", "1.2.3.4")]);
    none_match(
        &s,
        &[
            "1.2.3.4.5",
            "11.2.3.4",
            "1.2.3.45",
            "0.1.2.3.4",
            "1.2.3.04",
            "v1.2.3.4.5",
        ],
    );
    let s = snap(&[("ip-dst", "1.2.3.0/24")]);
    assert!(!matches(&s, "1.2.3.256"));
    assert!(!matches(&s, "1.2.3.04"));
}

#[test]
fn ipv4_reports_every_containing_address_network_and_range() {
    let s = snap(&[
        ("ip-dst", "10.1.2.3"),
        ("ip-dst", "10.1.2.0/24"),
        ("ip-src", "10.0.0.0/8"),
        ("ip-range", "10.1.2.1-10.1.2.5"),
        ("ip-dst", "10.9.9.9"),
    ]);
    let mut n = names(&s, "conn 10.1.2.3:80");
    n.sort();
    assert_eq!(n, ["10.0.0.0/8", "10.1.2.0/24", "10.1.2.1-10.1.2.5", "10.1.2.3"]);
    assert_eq!(names(&s, "10.200.0.1"), ["10.0.0.0/8"]);
    assert!(!matches(&s, "11.1.2.3"));
}

#[test]
fn ipv6_matches_in_any_textual_form() {
    let s = snap(&[("ip-dst", "2001:db8::1")]);
    for line in [
        "2001:db8::1",
        "src 2001:DB8:0:0:0:0:0:1 ok",
        "[2001:db8::1]:443",
        "fe 2001:db8::1%eth0 x",
        "addr=2001:0db8:0000::0001,",
    ] {
        assert_eq!(names(&s, line), ["2001:db8::1"], "{line}");
    }
    assert!(!matches(&s, "2001:db8::10"));
    assert!(!matches(&s, "2001:db8::1:5"));
}

#[test]
fn ipv6_networks_contain_addresses() {
    let s = snap(&[("ip-dst", "2001:db8:abcd::/48")]);
    assert_eq!(names(&s, "to 2001:db8:abcd:12::7"), ["2001:db8:abcd::/48"]);
    assert!(!matches(&s, "to 2001:db8:abce::7"));
}

#[test]
fn ipv4_mapped_ipv6_matches_ipv4_indicators() {
    let s = snap(&[("ip-dst", "1.2.3.4")]);
    assert_eq!(names(&s, "peer ::ffff:1.2.3.4 closed"), ["1.2.3.4"]);
}

#[test]
fn mac_addresses_and_clock_times_are_not_addresses() {
    let s = snap(&[("ip-dst", "::12:34:56"), ("ip-dst", "aa:bb:cc::dd:ee")]);
    assert!(!matches(&s, "mac 00:12:34:56:78:9a at 12:34:56"));
    assert!(!matches(&s, "ether aa:bb:cc:dd:ee:ff"));
}

#[test]
fn hashes_match_whole_hex_runs_of_their_length_case_insensitively() {
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let s = snap(&[("md5", md5), ("sha256", sha256)]);
    assert_eq!(names(&s, &format!("md5={}", md5.to_uppercase())), [md5]);
    assert_eq!(names(&s, &format!("\"{sha256}\"")), [sha256]);
    assert_eq!(names(&s, &format!("{md5}.exe")), [md5]);
}

#[test]
fn hashes_inside_longer_hex_or_alphanumeric_runs_do_not_match() {
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let s = snap(&[("md5", md5)]);
    for line in [
        format!("a{md5}"),
        format!("{md5}0"),
        format!("{md5}g"),
        format!("x{md5}ff"),
    ] {
        assert!(!matches(&s, &line), "{line}");
    }
    let sha1 = format!("{md5}00000000");
    assert!(!matches(&s, &sha1));
}

#[test]
fn every_hash_length_is_supported() {
    for (t, n) in [
        ("md5", 32),
        ("sha1", 40),
        ("sha224", 56),
        ("sha256", 64),
        ("sha384", 96),
        ("sha512", 128),
    ] {
        let h = "a".repeat(n);
        let s = snap(&[(t, &h)]);
        assert_eq!(names(&s, &format!("h {h} x")), vec![h], "{t}");
    }
}

#[test]
fn url_matches_when_the_next_byte_does_not_continue_it() {
    let s = snap(&[("url", "http://evil.com/x.exe")]);
    for line in [
        "evil.com/x.exe?a=1",
        "evil.com/x.exe/",
        "(evil.com/x.exe)",
        "evil.com/x.exe;",
        "GET https://EVIL.COM/x.exe HTTP/1.1",
        "evil.com/x.exe",
        r#""http:\/\/evil.com\/x.exe""#,
    ] {
        assert_eq!(names(&s, line), ["evil.com/x.exe"], "{line}");
    }
}

#[test]
fn url_does_not_match_longer_paths_other_hosts_or_other_case_paths() {
    let s = snap(&[("url", "http://evil.com/x.exe")]);
    none_match(
        &s,
        &[
            "evil.com/x.exe2",
            "evil.com/x.exe.bak",
            "xevil.com/x.exe",
            "a.evil.com/x.exe",
            "evil.com/X.EXE",
            "evil.com/x.ex",
            "evil.com/x.exe%20",
        ],
    );
}

#[test]
fn urls_on_an_ipv4_host_match_beside_number_tokens() {
    // A domain list lets the scanner pass over dotted numbers (`537.36`), but a URL whose host is an IPv4 address
    // must still be found, and only with its own path.
    let s = snap(&[("domain", "evil.com"), ("url", "http://10.1.2.3/gate.php")]);
    let ua = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36";
    assert_eq!(
        names(&s, &format!("{ua} GET http://10.1.2.3/gate.php 200")),
        ["10.1.2.3/gate.php"]
    );
    assert_eq!(names(&s, &format!("{ua} host=www.evil.com")), ["evil.com"]);
    none_match(
        &s,
        &[
            ua,
            "GET http://10.1.2.3/gate.php2",
            "GET http://10.1.2.30/gate.php",
            "GET http://110.1.2.3/gate.php",
            "evil.com.1",
        ],
    );
    // Without them, the same look-alikes stay quiet and the domain still matches after a number token.
    let d = snap(&[("domain", "evil.com")]);
    assert_eq!(names(&d, "Safari/537.36 evil.com"), ["evil.com"]);
    none_match(&d, &[ua, "10.1.2.3/gate.php", "evil.com.1", "evil.com.537.36"]);
}

#[test]
fn url_with_port_and_query_is_compared_exactly() {
    let s = snap(&[("url", "hxxp://evil[.]com:8080/gate.php?id=1")]);
    assert_eq!(
        names(&s, "GET http://evil.com:8080/gate.php?id=1 200"),
        ["evil.com:8080/gate.php?id=1"]
    );
    assert!(!matches(&s, "GET http://evil.com:8080/gate.php?id=12"));
    assert!(!matches(&s, "GET http://evil.com/gate.php?id=1"));
}

#[test]
fn email_matches_the_whole_address_case_insensitively() {
    let s = snap(&[("email-src", "Bad.Guy@Evil.com")]);
    assert_eq!(
        hits(&s, "from=<BAD.GUY@evil.COM> to"),
        [("bad.guy@evil.com".to_string(), "BAD.GUY@evil.COM".to_string())]
    );
    assert!(!matches(&s, "xbad.guy@evil.com"));
    assert!(!matches(&s, "bad.guy@evil.com.au"));
    assert!(!matches(&s, "guy@evil.com"));
    assert!(!matches(&s, "bad.guy@sub.evil.com"));
}

#[test]
fn matched_atomic_is_the_exact_text() {
    let s = snap(&[("domain", "evil.com"), ("url", "evil.com/a")]);
    let mut h = hits(&s, "see http://Evil.COM/a now");
    h.sort();
    assert_eq!(
        h,
        [
            ("evil.com".to_string(), "Evil.COM".to_string()),
            ("evil.com/a".to_string(), "Evil.COM/a".to_string())
        ]
    );
    assert_eq!(
        hits(&s, "WWW.Evil.com/a"),
        [("evil.com".to_string(), "WWW.Evil.com".to_string())]
    );
}

#[test]
fn invalid_utf8_is_scanned_as_bytes() {
    let s = snap(&[("domain", "evil.com")]);
    let mut line = b"\xff\xfe evil.com \xc3\x28".to_vec();
    let mut h = Vec::new();
    scan_line(&s, &line, &mut h);
    assert_eq!(h.len(), 1);
    line.truncate(3);
    scan_line(&s, &line, &mut h);
    assert!(h.is_empty());
}

#[test]
fn each_distinct_indicator_is_reported_once_per_line() {
    let s = snap(&[("domain", "evil.com")]);
    assert_eq!(names(&s, "evil.com a.evil.com b.evil.com"), ["evil.com"]);
}

/// A real Windows Security event (EventID 5156, Winlogbeat-style JSON) from `fixtures/logs`, with its destination
/// address replaced: the Message field writes `Destination Address:\t<addr>` with a JSON `\t` before the address.
fn windows_5156_line(dest: &str) -> String {
    let log = include_str!(
        "../fixtures/logs/OTRF__Security-Datasets__aadinternals_export_adfsdatabaseconfig_remotely.json.log"
    );
    let line = log.lines().nth(37).unwrap();
    assert!(
        line.contains(r"Destination Address:\t::1\r\n"),
        "fixture line 38 changed"
    );
    line.replace(
        r"Destination Address:\t::1\r\n",
        &format!(r"Destination Address:\t{dest}\r\n"),
    )
}

#[test]
fn ipv6_after_a_json_escape_matches_in_a_windows_security_event() {
    let s = snap(&[("ip-dst", "2001:470:765b::a25:53"), ("ip-dst", "10.9.8.7")]);
    assert_eq!(
        hits(&s, &windows_5156_line("2001:470:765b::a25:53")),
        [("2001:470:765b::a25:53".to_string(), "2001:470:765b::a25:53".to_string())]
    );
    // The IPv4 in the same place matched before; it still does.
    assert_eq!(names(&s, &windows_5156_line("10.9.8.7")), ["10.9.8.7"]);
    // Look-alike: a longer address in the same place.
    assert!(!matches(&s, &windows_5156_line("2001:470:765b::a25:531")));
}

#[test]
fn ipv6_after_a_label_colon_matches_in_macos_configd_lines() {
    let s = snap(&[("ip-dst", "2607:f140:6000:8:c6b3:1ff:fecd:467f")]);
    let line = "Jul  1 09:01:05 calvisitor-10-105-160-95 configd[53]: network changed: v4(en0!:10.105.160.95) \
                v6(en0-:2607:f140:6000:8:c6b3:1ff:fecd:467f) DNS* Proxy SMB";
    assert_eq!(
        hits(&s, line),
        [(
            "2607:f140:6000:8:c6b3:1ff:fecd:467f".to_string(),
            "2607:f140:6000:8:c6b3:1ff:fecd:467f".to_string()
        )]
    );
    assert!(!matches(&s, &line.replace("v6(en0-:2607", "v6(en0-:12607")));
}

#[test]
fn ipv6_after_a_word_and_a_colon_matches_but_not_inside_a_hex_run() {
    let s = snap(&[("ip-dst", "fe80::1"), ("ip-dst", "2001:db8::1")]);
    for line in [
        "Address:fe80::1 up",
        "Source:2001:db8::1",
        "host=x Address:::1 fe80::1",
        "peer :fe80::1",
    ] {
        assert!(matches(&s, line), "{line}");
    }
    assert_eq!(hits(&s, "Source:2001:db8::1")[0].1, "2001:db8::1");
    none_match(
        &s,
        &[
            "afe80::1",
            "xafe80::1",
            "0fe80::1",
            "fe80::1a",
            "gfe80::1x",
            "Address:afe80::1",
        ],
    );
}

#[test]
fn json_escapes_before_a_token_are_boundaries_in_json_lines_only() {
    let hash = "d41d8cd98f00b204e9800998ecf8427e";
    let s = snap(&[
        ("hostname", "evil.com"),
        ("md5", hash),
        ("email", "bad@evil.org"),
        ("ip-dst", "2001:db8::1"),
    ]);
    for esc in [r"\t", r"\n", r"\r", r"\b", r"\f", r"\u0009"] {
        let line = format!(r#"{{"msg":"host{esc}evil.com file{esc}{hash} from{esc}bad@evil.org at{esc}2001:db8::1"}}"#);
        let mut got = names(&s, &line);
        got.sort();
        assert_eq!(got, ["2001:db8::1", "bad@evil.org", hash, "evil.com"], "{line}");
    }
    // `\/` is a slash: the host after it is a token of its own.
    assert_eq!(names(&s, r#"{"u":"http:\/\/evil.com\/"}"#), ["evil.com"]);
    // An escaped backslash followed by a letter is a backslash and the letter: `\\tevil.com` is `\` + `tevil.com`.
    assert!(!matches(&s, r#"{"p":"C:\\tevil.com"}"#));
    // Outside JSON a backslash is a path separator: the folder `nevil.com` is not `evil.com`.
    assert!(!matches(&s, r"copied to C:\Users\nevil.com\x"));
    assert!(!matches(&s, r#"{"msg":"tevil.com"}"#));
}

/// A deterministic hex digest of `n` digits, different per `seed`.
fn hex_digest(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap()
        })
        .collect()
}

const DIGEST_TYPES: [(&str, usize); 20] = [
    ("md5", 32),
    ("sha1", 40),
    ("sha224", 56),
    ("sha256", 64),
    ("sha384", 96),
    ("sha512", 128),
    ("imphash", 32),
    ("ja3-fingerprint-md5", 32),
    ("hassh-md5", 32),
    ("hasshserver-md5", 32),
    ("x509-fingerprint-md5", 32),
    ("x509-fingerprint-sha1", 40),
    ("x509-fingerprint-sha256", 64),
    ("jarm-fingerprint", 62),
    ("sha512/224", 56),
    ("sha512/256", 64),
    ("sha3-224", 56),
    ("sha3-256", 64),
    ("sha3-384", 96),
    ("sha3-512", 128),
];

#[test]
fn every_misp_digest_type_and_its_filename_composite_matches_whole_hex_tokens() {
    for (i, (t, n)) in DIGEST_TYPES
        .iter()
        .chain(&[("authentihash", 64), ("tlsh", 70)])
        .enumerate()
    {
        let h = hex_digest(i as u64 + 1, *n);
        for s in [
            snap(&[(t, &h)]),
            snap(&[(&format!("filename|{t}"), &format!("a.exe|{h}"))]),
        ] {
            assert_eq!(
                names(&s, &format!("{t}={} x", h.to_uppercase())),
                std::slice::from_ref(&h),
                "{t}"
            );
            assert_eq!(names(&s, &format!("\"{h}\"")), std::slice::from_ref(&h), "{t}");
            // Look-alikes: the digest inside a longer hex or alphanumeric run, and one digit short.
            for lookalike in [format!("a{h}"), format!("{h}0"), format!("x{h}g"), h[1..].to_string()] {
                assert!(!matches(&s, &lookalike), "{t}: {lookalike}");
            }
        }
    }
}

#[test]
fn a_digest_of_one_length_never_matches_a_type_of_another() {
    let jarm = hex_digest(7, 62);
    let s = snap(&[("jarm-fingerprint", &jarm)]);
    assert!(matches(&s, &format!("jarm {jarm}")));
    assert!(!matches(&s, &format!("jarm {jarm}00")), "64 digits is no JARM");
}

#[test]
fn x509_fingerprints_match_with_and_without_colons() {
    let sha1 = "3a0c5f1e2d4b6a8c9e0f1a2b3c4d5e6f7a8b9c0d";
    let colons: String = sha1
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    // MISP stores the fingerprint without colons; a value pasted with them loads the same.
    for value in [sha1.to_string(), colons.clone()] {
        let s = snap(&[("x509-fingerprint-sha1", &value)]);
        // Suricata EVE writes `tls.fingerprint` colon-separated.
        let eve = format!(
            r#"{{"timestamp":"2017-05-03T14:34:58.116245+0200","event_type":"tls","src_ip":"192.168.1.5","dest_ip":"93.184.216.34","dest_port":443,"proto":"TCP","tls":{{"subject":"CN=evil.example","issuerdn":"CN=evil.example","fingerprint":"{}","sni":"evil.example","version":"TLS 1.2"}}}}"#,
            colons.to_lowercase()
        );
        assert_eq!(hits(&s, &eve), [(sha1.to_string(), colons.to_lowercase())]);
        assert_eq!(names(&s, &format!("cert sha1={sha1}")), [sha1]);
        // Look-alikes: one pair short, one pair more, glued to another pair or to a word.
        let short = &colons[..colons.len() - 3];
        for lookalike in [
            format!("fp {short}"),
            format!("fp {colons}:AA"),
            format!("fp AA:{colons}"),
            format!("fp x{colons}"),
        ] {
            assert!(!matches(&s, &lookalike), "{lookalike}");
        }
    }
}

#[test]
fn x509_sha256_fingerprint_matches_a_real_zeek_ssl_line() {
    let log = include_str!("../fixtures/logs/zeek__zeek__scripts.base.protocols.ssl.keyexchange__ssl-all.log");
    let line = log.lines().nth(9).unwrap();
    let fp = "b706ad178447821cc60aca1e0cd59697333a6178fd1c73f839fbdfb5b76bc507";
    assert!(line.contains(fp));
    let s = snap(&[("x509-fingerprint-sha256", fp)]);
    assert_eq!(names(&s, line), [fp]);
    let other = format!("{}8", &fp[..63]);
    assert!(!matches(&snap(&[("x509-fingerprint-sha256", &other)]), line));
}

#[test]
fn tlsh_matches_with_and_without_its_t1_prefix() {
    let h = hex_digest(42, 70);
    for value in [h.clone(), format!("T1{}", h.to_uppercase())] {
        let s = snap(&[("tlsh", &value)]);
        assert_eq!(
            names(&s, &format!("tlsh=T1{} ok", h.to_uppercase())),
            std::slice::from_ref(&h)
        );
        assert_eq!(names(&s, &format!("tlsh={h} ok")), std::slice::from_ref(&h));
        for lookalike in [
            format!("T2{h}"),
            format!("xT1{h}"),
            format!("T1{h}a"),
            format!("T1{}", &h[1..]),
        ] {
            assert!(!matches(&s, &lookalike), "{lookalike}");
        }
    }
}

#[test]
fn ssdeep_and_impfuzzy_match_exactly_as_printed() {
    let ssdeep = "96:s4Ud1Lj96tHHlZDrwciQmA+4uy1I0G4HYuL8N3TzS8QsO/wqWXLcMSx:sF1LjEtHHlZDrw1mA+4uy1I0G4HYuL8N3T";
    let impfuzzy = "24:8Ar0GIcIVotm7fbrJn0nNXK4JOovD9R38fKYlO6Z3XL:8AgGIVX7fbOnNXK4JFNR3ZlKp";
    let s = snap(&[("ssdeep", ssdeep), ("impfuzzy", impfuzzy)]);
    assert_eq!(names(&s, &format!("sample ssdeep={ssdeep},\"a.exe\"")), [ssdeep]);
    assert_eq!(names(&s, &format!(r#"{{"impfuzzy":"{impfuzzy}"}}"#)), [impfuzzy]);
    let case = ssdeep.replace("s4Ud", "S4Ud");
    for lookalike in [
        case.as_str(),
        &format!("1{ssdeep}"),
        &format!("{ssdeep}x"),
        &format!("{ssdeep}:abc"),
        &format!("x{ssdeep}"),
        &ssdeep[..ssdeep.len() - 1],
    ] {
        assert!(!matches(&s, lookalike), "{lookalike}");
    }
}

#[test]
fn urls_with_an_ipv6_literal_host_match_any_form_of_the_address() {
    let s = snap(&[("url", "http://[2001:db8::5]/gate.php")]);
    for line in [
        "GET http://[2001:db8::5]/gate.php HTTP/1.1",
        "GET http://[2001:DB8:0:0:0:0:0:5]/gate.php?id=1",
        r#"{"url":"http:\/\/[2001:db8::5]\/gate.php"}"#,
        "[2001:db8::5]/gate.php",
    ] {
        assert_eq!(names(&s, line), ["[2001:db8::5]/gate.php"], "{line}");
    }
    none_match(
        &s,
        &[
            "http://[2001:db8::5]/gate.php2",
            "http://[2001:db8::50]/gate.php",
            "http://[2001:db8::5]/gate.phpx",
            "http://[2001:db8::5]/Gate.php",
            "http://2001:db8::5/gate.php",
        ],
    );
    let port = snap(&[("url", "https://[2001:db8::5]:8443/x")]);
    assert!(matches(&port, "https://[2001:db8::5]:8443/x"));
    assert!(!matches(&port, "https://[2001:db8::5]/x"));
}

#[test]
fn ipv6_url_hosts_are_compared_as_addresses_not_as_case_folded_bytes() {
    // ::41 and ::61 end in the bytes 0x41 and 0x61, 'A' and 'a': a case-folding compare would take one for the other.
    let one = snap(&[("url", "http://[2001:db8::41]/gate.php")]);
    assert!(matches(&one, "http://[2001:db8::41]/gate.php"));
    none_match(
        &one,
        &["http://[2001:db8::61]/gate.php", "http://[2001:db8::4161]/gate.php"],
    );
    let both = snap(&[("url", "http://[2001:db8::41]/a"), ("url", "http://[2001:db8::61]/b")]);
    for (line, want) in [
        ("http://[2001:db8::41]/a", "[2001:db8::41]/a"),
        ("http://[2001:db8::61]/b", "[2001:db8::61]/b"),
    ] {
        assert_eq!(names(&both, line), [want], "{line}");
    }
    none_match(&both, &["http://[2001:db8::41]/b", "http://[2001:db8::61]/a"]);
}

#[test]
fn one_host_as_domain_hostname_url_host_and_mail_host_keeps_every_rule_in_either_order() {
    // The build adds a set's domains and host names to the host table without a lookup and merges them with the
    // URL and e-mail hosts of the same key when it lays the table out: every order must give the same rules.
    let iocs = [
        ("url", "http://evil.com/a"),
        ("domain", "evil.com"),
        ("email", "x@evil.com"),
        ("hostname", "evil.com"),
        ("url", "http://evil.com/b"),
    ];
    for rotation in 0..iocs.len() {
        let mut order = iocs.to_vec();
        order.rotate_left(rotation);
        let s = snap(&order);
        let mut h = names(&s, "GET http://evil.com/a then evil.com/b from x@evil.com");
        h.sort();
        // Each indicator once a line: the domain, the host name, both URLs and the address.
        assert_eq!(
            h,
            ["evil.com", "evil.com", "evil.com/a", "evil.com/b", "x@evil.com"],
            "order {order:?}"
        );
        // A subdomain is the domain's alone: not the host name's, the URLs' or the address's.
        assert_eq!(names(&s, "www.evil.com/a"), ["evil.com"], "order {order:?}");
        assert!(!matches(&s, "evil.company/a y@evil.com.au"), "order {order:?}");
    }
}

#[test]
fn a_digest_matches_at_every_offset_and_its_longer_look_alike_at_none() {
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let s = snap(&[("md5", md5), ("sha256", sha256)]);
    // Every start from 0 to 200 puts the digest across each 16-, 32- and 64-byte boundary of the line's masks.
    for pad in 0..200 {
        let lead = "x ".repeat(pad / 2) + if pad % 2 == 1 { "-" } else { "" };
        assert_eq!(names(&s, &format!("{lead}{md5} tail")), [md5], "md5 at {pad}");
        assert_eq!(names(&s, &format!("{lead}{sha256}")), [sha256], "sha256 at {pad}");
        assert!(!matches(&s, &format!("{lead}{md5}a tail")), "33 hex digits at {pad}");
        assert!(!matches(&s, &format!("{lead}0{sha256}")), "65 hex digits at {pad}");
    }
}
