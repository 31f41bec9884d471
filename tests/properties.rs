//! Property tests: the snapshot agrees with a naive reference matcher written straight from the rules, and no input
//! bytes can panic the scanner or a loader.

use iocmatch::load::Loader;
use iocmatch::scan::classify::Path;
use iocmatch::scan::{scan_line, scan_line_with, scan_line_within, FieldHit, LineScanner, Scratch};
use iocmatch::{Policy, Snapshot};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Indicators the generated lines can hit, with look-alikes among them.
const POOL: &[(&str, &str)] = &[
    ("domain", "ab.cd"),
    ("domain", "b.cd"),
    ("domain", "x.ab.cd"),
    ("hostname", "cd.ab"),
    ("hostname", "w.b.cd"),
    ("ip-dst", "1.2.3.4"),
    ("ip-dst", "1.2.3.0/24"),
    ("ip-dst", "12.3.4.5"),
    ("ip-range", "1.2.3.1-1.2.3.9"),
    ("md5", "0123456789abcdef0123456789abcdef"),
    ("sha1", "0123456789abcdef0123456789abcdef01234567"),
    ("url", "ab.cd/x.e"),
    ("url", "http://b.cd/"),
    ("email", "q.r@ab.cd"),
];

/// Line fragments: pieces of the indicators, separators, digits and case variants.
const FRAGMENTS: &[&str] = &[
    "ab",
    "cd",
    "AB",
    "Cd",
    ".",
    ".",
    "-",
    "_",
    " ",
    " ",
    "/",
    "@",
    "x",
    "w",
    "q",
    "r",
    "e",
    "1",
    "2",
    "3",
    "4",
    "5",
    "9",
    "0",
    "12",
    "ab.cd",
    "b.cd",
    "1.2.3.4",
    "1.2.3.",
    "0123456789abcdef",
    "0123456789ABCDEF",
    "01234567",
    "?",
    "%",
    "~",
    "(",
    ")",
    ",",
    "\"",
    "[",
    "]",
    "=",
    "\t",
    "q.r@",
    "/x.e",
    "é",
    "{",
    "\\",
    "\\t",
    "\\n",
    "\\u0009",
    "\\/",
];

fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Host tokens as (start, end) with trailing dots dropped.
fn host_tokens(line: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if !host_byte(line[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < line.len() && host_byte(line[i]) {
            i += 1;
        }
        let mut e = i;
        while e > s && line[e - 1] == b'.' {
            e -= 1;
        }
        if e > s {
            out.push((s, e));
        }
    }
    out
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

/// Every dotted quad in the line that passes the boundary rule.
fn reference_quads(line: &[u8]) -> Vec<Ipv4Addr> {
    let digit = |k: Option<&u8>| k.is_some_and(u8::is_ascii_digit);
    let mut out = Vec::new();
    for i in 0..line.len() {
        for j in i + 7..=(i + 15).min(line.len()) {
            let Ok(s) = std::str::from_utf8(&line[i..j]) else {
                continue;
            };
            let Ok(a) = s.parse::<Ipv4Addr>() else { continue };
            let left_bad =
                (i > 0 && digit(line.get(i - 1))) || (i > 1 && line[i - 1] == b'.' && digit(line.get(i - 2)));
            let right_bad = digit(line.get(j)) || (line.get(j) == Some(&b'.') && digit(line.get(j + 1)));
            if !left_bad && !right_bad {
                out.push(a);
            }
        }
    }
    out
}

/// A JSON line decoded the obvious way, left to right, keeping every offset: an escape's letter (`\t`, `\n`, `\r`,
/// `\b`, `\f`, `\uXXXX`) becomes a space, since the character it stands for is never part of an indicator.
fn decode_json_escapes(line: &[u8]) -> Vec<u8> {
    let mut out = line.to_vec();
    if !matches!(line.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[')) {
        return out;
    }
    let mut i = 0;
    while i + 1 < line.len() {
        if line[i] != b'\\' {
            i += 1;
            continue;
        }
        match line[i + 1] {
            b't' | b'n' | b'r' | b'b' | b'f' => out[i + 1] = b' ',
            b'u' if line.len() >= i + 6 && line[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) => {
                out[i + 1..i + 6].fill(b' ');
                i += 4;
            }
            _ => {}
        }
        i += 2;
    }
    out
}

/// Whether `rest` follows at `at`, where the line may write a `/` as the JSON escape `\/`; returns the end.
fn rest_at(line: &[u8], mut at: usize, rest: &[u8]) -> Option<usize> {
    for &r in rest {
        if line.get(at) == Some(&r) {
            at += 1;
        } else if r == b'/' && line.get(at) == Some(&b'\\') && line.get(at + 1) == Some(&b'/') {
            at += 2;
        } else {
            return None;
        }
    }
    Some(at)
}

/// The rules, applied the slow and obvious way.
fn reference(iocs: &[(&str, &str)], line: &[u8]) -> BTreeSet<String> {
    let decoded = decode_json_escapes(line);
    let line = &decoded[..];
    let tokens = host_tokens(line);
    let quads = reference_quads(line);
    let mut hits = BTreeSet::new();
    for (t, v) in iocs {
        let hit = match *t {
            "domain" => tokens.iter().any(|&(s, e)| {
                let tok = lower(&line[s..e]);
                tok == *v || tok.ends_with(&format!(".{v}"))
            }),
            "hostname" => tokens.iter().any(|&(s, e)| lower(&line[s..e]) == *v),
            "ip-dst" | "ip-range" => {
                let net: Box<dyn Fn(Ipv4Addr) -> bool> = if let Some((a, b)) = v.split_once('-') {
                    let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse().unwrap(), b.parse().unwrap());
                    Box::new(move |x| a <= x && x <= b)
                } else {
                    let n: ipnet::Ipv4Net = if v.contains('/') {
                        v.parse().unwrap()
                    } else {
                        format!("{v}/32").parse().unwrap()
                    };
                    Box::new(move |x| n.contains(&x))
                };
                quads.iter().any(|q| net(*q))
            }
            "md5" | "sha1" => {
                let mut found = false;
                let mut i = 0;
                while i < line.len() {
                    if !line[i].is_ascii_alphanumeric() {
                        i += 1;
                        continue;
                    }
                    let s = i;
                    while i < line.len() && line[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    found |= lower(&line[s..i]) == *v;
                }
                found
            }
            "url" => {
                let u = v.trim_start_matches("http://");
                let (host, rest) = u.split_at(u.find('/').unwrap_or(u.len()));
                tokens.iter().any(|&(s, e)| {
                    lower(&line[s..e]) == host
                        && rest_at(line, e, rest.as_bytes()).is_some_and(|end| {
                            !line.get(end).is_some_and(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
                            })
                        })
                })
            }
            "email" => tokens.iter().any(|&(s, e)| {
                if s == 0 || line[s - 1] != b'@' {
                    return false;
                }
                let mut ls = s - 1;
                while ls > 0 && (line[ls - 1].is_ascii_alphanumeric() || b"._%+-".contains(&line[ls - 1])) {
                    ls -= 1;
                }
                ls < s - 1 && format!("{}@{}", lower(&line[ls..s - 1]), lower(&line[s..e])) == *v
            }),
            other => unreachable!("{other}"),
        };
        if hit {
            hits.insert(name_of(t, v));
        }
    }
    hits
}

fn name_of(t: &str, v: &str) -> String {
    match t {
        "url" => v.trim_start_matches("http://").to_string(),
        "ip-range" if v == "1.2.3.1-1.2.3.9" => v.to_string(),
        _ => v.to_string(),
    }
}

fn set_of(iocs: &[(&str, &str)]) -> iocmatch::IndicatorSet {
    let json: Vec<String> = iocs
        .iter()
        .map(|(t, v)| serde_json::json!({"type": t, "value": v, "to_ids": 1}).to_string())
        .collect();
    let mut l = Loader::new(Policy::default());
    l.load_bytes("pool.json", format!("[{}]", json.join(",")).as_bytes())
        .unwrap();
    l.finish().0
}

/// Every hit of a line as (indicator name, span).
fn hits_of(snap: &Snapshot, line: &[u8]) -> BTreeSet<(String, u32, u32)> {
    let mut hits = Vec::new();
    scan_line(snap, line, &mut hits);
    hits.iter()
        .map(|h| (snap.indicator(h.indicator).value.name(), h.start, h.end))
        .collect()
}

fn build(iocs: &[(&str, &str)]) -> Snapshot {
    Snapshot::build(set_of(iocs), 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_agrees_with_the_reference_matcher(
        pick in proptest::sample::subsequence(POOL.to_vec(), 1..POOL.len()),
        parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS.to_vec()), 0..24),
        json in any::<bool>(),
    ) {
        // Half the lines open like a JSON document, where backslash escapes are decoded.
        let line = format!("{}{}", if json { "{\"" } else { "" }, parts.concat());
        let snap = build(&pick);
        let want = reference(&pick, line.as_bytes());
        // Every classification path this CPU has (scalar, AVX2, AVX-512) agrees with the reference, hit for hit.
        let mut by_path = Vec::new();
        for path in Path::available() {
            let mut hits = Vec::new();
            scan_line_with(&snap, line.as_bytes(), &mut Scratch::with_path(path), &mut hits);
            let got: BTreeSet<String> = hits.iter().map(|h| snap.indicator(h.indicator).value.name()).collect();
            prop_assert_eq!(&got, &want, "line {:?} ({:?})", line, path);
            by_path.push(hits);
        }
        for other in &by_path[1..] {
            prop_assert_eq!(&by_path[0], other, "spans differ between paths on {:?}", line);
        }
        // Inside a chunk the classifier reads past the line's end; what follows (here host bytes and indicators
        // glued on, as after a line cut at the length cap) must change nothing.
        let mut buf = line.clone().into_bytes();
        buf.extend_from_slice(b"0evil.com.1.2.3.4fe80::1:d41d8cd98f00b204e9800998ecf8427e".repeat(3).as_slice());
        for path in Path::available() {
            let mut hits = Vec::new();
            scan_line_within(&snap, &buf, line.len(), &mut Scratch::with_path(path), &mut hits);
            prop_assert_eq!(&hits, &by_path[0], "line {:?} inside a longer buffer ({:?})", line, path);
        }
        // A chunk's lines are classified as their ends are found: the line amid others (a CRLF one after it, and
        // the last without its line feed) has the same hits.
        let mut chunk = b"GET 10.9.8.7 x.y\n".to_vec();
        chunk.extend_from_slice(line.as_bytes());
        chunk.extend_from_slice(b"\r\nevil.com 1.2.3.4\r\n");
        chunk.extend_from_slice(line.as_bytes());
        for path in Path::available() {
            let mut seen = Vec::new();
            let mut sink = |_: &Snapshot, offset: usize, l: &[u8], hits: &[FieldHit]| {
                seen.push((offset, l.to_vec(), hits.iter().map(|h| h.hit).collect::<Vec<_>>()));
            };
            LineScanner::new(1 << 20).with_path(path).without_fields().buffer(&snap, &chunk, &mut sink);
            let at = 17;
            let want: Vec<_> = [(at, &by_path[0]), (chunk.len() - line.len(), &by_path[0])]
                .into_iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(o, h)| (o, line.as_bytes().to_vec(), h.clone()))
                .collect();
            let got: Vec<_> = seen.into_iter().filter(|(o, _, _)| *o == at || *o == chunk.len() - line.len()).collect();
            prop_assert_eq!(got, want, "line {:?} in a chunk ({:?})", line, path);
        }
    }

    #[test]
    fn a_mapped_file_and_an_overlay_agree_with_the_reference_matcher(
        base_pick in proptest::sample::subsequence(POOL.to_vec(), 0..POOL.len()),
        add_pick in proptest::sample::subsequence(POOL.to_vec(), 0..POOL.len()),
        remove in proptest::collection::vec(any::<bool>(), POOL.len()),
        parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS.to_vec()), 0..24),
        json in any::<bool>(),
    ) {
        let line = format!("{}{}", if json { "{\"" } else { "" }, parts.concat());
        let mem = Snapshot::build(set_of(&base_pick), 1);
        // Written, then mapped: the same hits, spans included, as the in-memory build.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.iocm");
        mem.base().write(&file).unwrap();
        let mapped = Snapshot::open(&file).unwrap();
        prop_assert_eq!(hits_of(&mapped, line.as_bytes()), hits_of(&mem, line.as_bytes()), "line {:?}", line);
        prop_assert_eq!(
            hits_of(&mapped, line.as_bytes()).into_iter().map(|h| h.0).collect::<BTreeSet<_>>(),
            reference(&base_pick, line.as_bytes())
        );
        // An overlay over the mapped base: some base entries removed, some indicators added (an add of a value the
        // base holds replaces it). The result is the reference matcher's on the final set.
        let removed: Vec<(&str, &str)> =
            base_pick.iter().zip(&remove).filter(|(_, r)| **r).map(|(p, _)| *p).collect();
        let mut fin: Vec<(&str, &str)> = base_pick.iter().filter(|p| !removed.contains(p)).copied().collect();
        for a in &add_pick {
            if !fin.contains(a) {
                fin.push(*a);
            }
        }
        let by_name: std::collections::HashMap<String, u32> =
            mapped.indicators().map(|(id, i)| (i.value.name(), id)).collect();
        let masked: Vec<u32> = removed
            .iter()
            .chain(add_pick.iter())
            .filter_map(|(t, v)| by_name.get(&name_of(t, v)).copied())
            .collect();
        let over = Snapshot::with_overlay(mapped.base().clone(), set_of(&add_pick), &masked, 2);
        let got: BTreeSet<String> = hits_of(&over, line.as_bytes()).into_iter().map(|h| h.0).collect();
        prop_assert_eq!(&got, &reference(&fin, line.as_bytes()), "overlay, line {:?}", line);
        prop_assert_eq!(over.len(), fin.len());
    }

    #[test]
    fn no_bytes_panic_the_scanner(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        let snap = build(POOL);
        let mut hits = Vec::new();
        scan_line(&snap, &line, &mut hits);
        for h in &hits {
            prop_assert!(h.start <= h.end && (h.end as usize) <= line.len());
        }
        for path in Path::available() {
            let mut other = Vec::new();
            scan_line_with(&snap, &line, &mut Scratch::with_path(path), &mut other);
            prop_assert_eq!(&other, &hits, "the {:?} path agrees byte for byte", path);
        }
    }

    #[test]
    fn no_bytes_panic_a_loader(doc in proptest::collection::vec(any::<u8>(), 0..512), lead in 0usize..4) {
        let mut bytes = [&b"{"[..], b"[", b"uuid,type,value\n", b""][lead].to_vec();
        bytes.extend(doc);
        let mut l = Loader::new(Policy::default());
        let _ = l.load_bytes("fuzz", &bytes);
    }

    #[test]
    fn no_attribute_value_panics_normalisation(
        t in proptest::sample::select(vec!["domain", "hostname", "ip-dst", "ip-src|port", "url", "email", "md5",
            "sha256", "domain|ip", "filename|sha1", "malware-sample", "ip-range"]),
        v in "\\PC{0,80}",
    ) {
        let mut l = Loader::new(Policy::default());
        let doc = serde_json::json!([{"type": t, "value": v, "to_ids": true}]).to_string();
        l.load_bytes("fuzz.json", doc.as_bytes()).unwrap();
    }
}
