//! Plain indicator lists: one value a line, `#` comments, the type guessed from the value's shape.
//!
//! Lists as vendors publish them put a comment after the value: `value # note`, `value note`, or, as in
//! signature-base's `hash;description` files and many CSV-ish lists, `value;note` and `value,note`. The comment is kept
//! in the indicator's provenance (`misp.attribute.comment` in hits).

use super::{Examined, LoadError, Loader, Location, RawAttribute};
use crate::indicator::{
    classify_plain, is_host_byte, normalize_attribute, refang, AttributeOutcome, EventMeta, Policy,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Lines per parallel batch: big enough to keep both cores busy, small enough that a batch's attributes stay a
/// few megabytes.
const BATCH: usize = 1 << 16;

pub(super) fn load(loader: &mut Loader, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    use rayon::prelude::*;
    let event = Arc::new(EventMeta::default());
    let name: Arc<str> = name.into();
    loader.reserve(memchr::memchr_iter(b'\n', bytes).count() + 1);
    let examiner = loader.examiner();
    let mut lines = bytes.split(|b| *b == b'\n').enumerate();
    // Parsed and examined on every core, committed in order on one: batch k is committed while batch k + 1 is
    // examined, so the commit (dedupe, counts) overlaps the parallel part instead of following it. Two batch
    // vectors take turns, so no batch faults in fresh pages (a batch is megabytes; a new one each time was 7% of
    // a 10M load, zeroing pages). `None` marks a blank or comment line.
    let mut numbered: Vec<(usize, &[u8])> = Vec::with_capacity(BATCH);
    let mut examine_next = |out: &mut Vec<Option<(RawAttribute, Examined)>>| -> bool {
        numbered.clear();
        numbered.extend(lines.by_ref().take(BATCH));
        numbered
            .par_iter()
            .with_min_len(1024)
            .map(|&(i, line)| {
                attribute(&name, i + 1, line, &event, &examiner.policy).map(|mut raw| {
                    let ex = examiner.examine(&raw);
                    examiner.release_unread(&mut raw, &ex);
                    (raw, ex)
                })
            })
            .collect_into_vec(out);
        !out.is_empty()
    };
    let (mut batch, mut next) = (Vec::new(), Vec::new());
    let mut more = examine_next(&mut batch);
    while more {
        let ((), m) = rayon::join(
            || loader.add_examined(batch.drain(..).flatten()),
            || examine_next(&mut next),
        );
        std::mem::swap(&mut batch, &mut next);
        more = m;
    }
    Ok(())
}

/// The attribute of list line `n`, or `None` for a blank or comment line.
fn attribute(name: &Arc<str>, n: usize, line: &[u8], event: &Arc<EventMeta>, policy: &Policy) -> Option<RawAttribute> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (value, comment) = value_and_comment(line, policy);
    let (misp_type, value) = typed(value);
    Some(RawAttribute {
        misp_type: misp_type.into(),
        value,
        to_ids: true,
        deleted: false,
        event: event.clone(),
        comment: comment.map(str::to_string),
        location: Location::At(name.clone(), ":", n),
        ..Default::default()
    })
}

/// Splits a list line into its value and its comment, if any.
///
/// The value is the first whitespace-separated word. A `;` or `,` inside that word ends the value only when the word
/// is not a valid indicator as a whole: URLs may hold both (`http://evil.com/a,b` stays one URL), while
/// `d41d8cd98f00b204e9800998ecf8427e;Emotet` and `evil.com,phishing kit` are a value and a comment.
fn value_and_comment<'a>(line: &'a str, policy: &Policy) -> (&'a str, Option<&'a str>) {
    let word_end = first_whitespace(line).unwrap_or(line.len());
    let word = &line[..word_end];
    let (value, rest) = match memchr::memchr2(b';', b',', word.as_bytes()) {
        Some(sep) if !valid_whole(word, policy) => (&word[..sep], &line[sep + 1..]),
        _ => (word, &line[word_end..]),
    };
    let comment = rest.trim().trim_start_matches([';', ',', '#']).trim();
    (
        value.trim_matches('"'),
        Some(comment.trim_matches('"')).filter(|c| !c.is_empty()),
    )
}

/// Where the first whitespace character of `line` is (Unicode's, as `char::is_whitespace` says), looked for a byte
/// at a time while the bytes are ASCII: a `str::find` with a predicate decodes every character, for every line.
fn first_whitespace(line: &str) -> Option<usize> {
    for (i, &b) in line.as_bytes().iter().enumerate() {
        if !b.is_ascii() {
            // `i` follows ASCII bytes only, so it is a character boundary.
            return line[i..].find(char::is_whitespace).map(|j| i + j);
        }
        if (b as char).is_whitespace() {
            return Some(i);
        }
    }
    None
}

/// The MISP type of a bare value and the value in that type's form: how plain lists, CSV feeds without a
/// configured type and freetext feeds all type what they read.
pub(crate) fn typed(value: &str) -> (&'static str, String) {
    match classify_plain(value) {
        "domain" if value.contains(':') => host_port(value).unwrap_or_else(|| ("domain", value.to_string())),
        t => (t, value.to_string()),
    }
}

/// `IP:port`, `[IPv6]:port` and `host:port`, as maltrail trails and abuse.ch-style C2 lists write them, in MISP's
/// `ip-dst|port` / `hostname|port` form: the host is the indicator and the port goes into the provenance.
fn host_port(value: &str) -> Option<(&'static str, String)> {
    let value = refang(value);
    let (host, port) = value.rsplit_once(':')?;
    port.parse::<u16>()
        .ok()
        .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>().ok()?;
        return Some(("ip-dst|port", format!("{v6}|{port}")));
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Some(("ip-dst|port", format!("{host}|{port}")));
    }
    (host.contains('.') && host.bytes().all(is_host_byte)).then(|| ("hostname|port", format!("{host}|{port}")))
}

fn valid_whole(word: &str, policy: &Policy) -> bool {
    match normalize_attribute(classify_plain(word), word, policy) {
        AttributeOutcome::Parts(parts) => parts.iter().all(Result::is_ok),
        AttributeOutcome::Unsupported => false,
    }
}

#[cfg(test)]
mod tests {
    use super::value_and_comment;
    use crate::Policy;

    #[test]
    fn a_list_longer_than_a_batch_loads_as_line_by_line_adding_does() {
        use super::{attribute, BATCH};
        use crate::load::Loader;
        let mut text = String::new();
        for i in 0..2 * BATCH + 5000 {
            if (BATCH..2 * BATCH).contains(&i) {
                // A whole batch of comments between values: loading goes on after it.
                text.push_str("# nothing here\n");
                continue;
            }
            match i % 7 {
                0 => text.push_str(&format!("dup{}.example.com # seen {i}\n", i % 3000)),
                1 => text.push_str("# a comment\n\n"),
                2 => text.push_str(&format!("not a value {i}\n")),
                3 => text.push_str(&format!("10.{}.{}.0/24\n", i % 250, i % 200)),
                4 => text.push_str("0.0.0.0/1\n"),
                // The port comes from the value as it was read, so that value must reach the commit.
                5 if i % 2 == 0 => text.push_str(&format!("c2-{i}.evil.org:{}\n", 1 + i % 9000)),
                _ => text.push_str(&format!("host{i}.evil.net\n")),
            }
        }
        let mut batched = Loader::new(Policy::default());
        batched.load_bytes("list.txt", text.as_bytes()).unwrap();
        let mut one_by_one = Loader::new(Policy::default());
        let event = std::sync::Arc::new(crate::indicator::EventMeta::default());
        for (i, line) in text.as_bytes().split(|b| *b == b'\n').enumerate() {
            if let Some(raw) = attribute(&"list.txt".into(), i + 1, line, &event, &Policy::default()) {
                one_by_one.add_attribute(raw);
            }
        }
        let (a, sa) = batched.finish();
        let (b, sb) = one_by_one.finish();
        assert!(a.len() > 10_000);
        assert!(a
            .iter()
            .any(|i| i.value.to_string() == format!("host{}.evil.net", 2 * BATCH + 4999)));
        assert!(
            a.iter().eq(b.iter()),
            "the same indicators, merges and provenance, in the same order"
        );
        assert_eq!(format!("{sa:?}"), format!("{sb:?}"));
    }

    #[test]
    fn whitespace_is_found_as_char_is_whitespace_finds_it() {
        for line in [
            "",
            "evil.com",
            "evil.com note",
            "evil.com\tnote",
            "evil.com\u{0b}note",
            "évil.com note",
            "évil.com\u{a0}note",
            "evil.com\u{3000}x y",
            "\u{2028}",
            "a\u{85}b",
        ] {
            assert_eq!(
                super::first_whitespace(line),
                line.find(char::is_whitespace),
                "{line:?}"
            );
        }
    }

    #[test]
    fn values_are_split_from_their_comments() {
        let p = Policy::default();
        let hash = "d41d8cd98f00b204e9800998ecf8427e";
        for (line, want) in [
            ("evil.com", ("evil.com", None)),
            ("evil.com # phishing", ("evil.com", Some("phishing"))),
            ("evil.com phishing kit", ("evil.com", Some("phishing kit"))),
            ("evil.com,phishing kit", ("evil.com", Some("phishing kit"))),
            ("evil.com , phishing", ("evil.com", Some("phishing"))),
            ("1.2.3.4;Cobalt Strike C2", ("1.2.3.4", Some("Cobalt Strike C2"))),
            ("http://evil.com/a,b", ("http://evil.com/a,b", None)),
            ("http://evil.com/a;b x", ("http://evil.com/a;b", Some("x"))),
            ("\"evil.com\",\"note\"", ("evil.com", Some("note"))),
        ] {
            assert_eq!(value_and_comment(line, &p), want, "{line}");
        }
        let line = format!("{hash};Emotet loader, 2024");
        assert_eq!(value_and_comment(&line, &p), (hash, Some("Emotet loader, 2024")));
    }

    #[test]
    fn host_port_lines_become_misp_port_composites() {
        use super::host_port;
        assert_eq!(host_port("1.2.3.4:8080"), Some(("ip-dst|port", "1.2.3.4|8080".into())));
        assert_eq!(
            host_port("[2001:db8::1]:443"),
            Some(("ip-dst|port", "2001:db8::1|443".into()))
        );
        assert_eq!(
            host_port("c2.evil.com:8443"),
            Some(("hostname|port", "c2.evil.com|8443".into()))
        );
        assert_eq!(
            host_port("c2.evil[.]com:8443"),
            Some(("hostname|port", "c2.evil.com|8443".into()))
        );
        for not in [
            "evil.com",
            "1.2.3.4:99999",
            "1.2.3.4:",
            "evil.com:http",
            "localhost:80",
            "a b.com:1",
        ] {
            assert_eq!(host_port(not), None, "{not}");
        }
    }
}
