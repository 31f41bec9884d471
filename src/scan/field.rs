//! Which field of a line a hit is in: the dotted key path of the JSON string that holds it, the Zeek column from the
//! file's `#fields` header, or the key of a `key=value` pair. Analysts ask "was the address the source or the
//! destination?" first, and no raw-line matcher answers it.
//!
//! Pure, and run only on lines that have a hit, so lines without hits cost nothing more.

use super::line::{is_json_line, scan_line_with, Hit, Scratch};
use crate::snapshot::Snapshot;

/// The field names of a Zeek TSV log, from its `#fields` header line.
pub type TsvFields = std::sync::Arc<Vec<String>>;

/// The names a `#fields` header line declares, or `None` when the line is not one.
pub fn tsv_header(line: &[u8]) -> Option<TsvFields> {
    let rest = line.strip_prefix(b"#fields\t")?;
    let text = String::from_utf8_lossy(rest);
    Some(std::sync::Arc::new(
        text.trim_end_matches(['\r', '\n'])
            .split('\t')
            .map(str::to_string)
            .collect(),
    ))
}

/// The field that holds `line[start..end]`, or `None` when the line has no structure iocmatch knows (the hit is then
/// reported on `event.original`).
pub fn field_of(line: &[u8], start: usize, end: usize, tsv: Option<&TsvFields>) -> Option<String> {
    if is_json_line(line) {
        return json_path(line, start, end);
    }
    if let Some(names) = tsv {
        if !line.starts_with(b"#") && memchr::memchr(b'\t', line).is_some() {
            if line[start..end].contains(&b'\t') {
                return None;
            }
            let col = memchr::memchr_iter(b'\t', &line[..start]).count();
            return names.get(col).cloned();
        }
    }
    kv_key(line, start)
}

/// A hit with the field it is in (`None`: the line has no field iocmatch knows, reported as `event.original`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldHit {
    pub hit: Hit,
    pub field: Option<String>,
}

/// The hits of a line as field hits with no field, for callers that do not attribute them.
pub fn unattributed(hits: &[Hit]) -> Vec<FieldHit> {
    hits.iter().map(|&hit| FieldHit { hit, field: None }).collect()
}

/// Every field each hit's indicator occurs in: the scan reports an indicator once per line, so the line is scanned
/// again with the spans found so far blanked out, until nothing new turns up (a value under two keys is reported
/// under both). A span found later must not touch a blanked byte, so blanking never makes a match the line does not
/// have. One entry per indicator and field, in line order of first occurrence.
pub fn attribute(
    snap: &Snapshot,
    line: &[u8],
    hits: &[Hit],
    tsv: Option<&TsvFields>,
    scratch: &mut Scratch,
) -> Vec<FieldHit> {
    let mut all: Vec<Hit> = hits.to_vec();
    let mut blanked = vec![false; line.len()];
    let mut buf = line.to_vec();
    let mut last = hits.to_vec();
    let mut more = Vec::new();
    for _ in 0..8 {
        for h in &last {
            buf[h.start as usize..h.end as usize].fill(b' ');
            blanked[h.start as usize..h.end as usize].fill(true);
        }
        scan_line_with(snap, &buf, scratch, &mut more);
        more.retain(|h| {
            let (s, e) = (h.start as usize, h.end as usize);
            !blanked[s.saturating_sub(1)..(e + 1).min(line.len())].contains(&true)
        });
        if more.is_empty() {
            break;
        }
        all.extend_from_slice(&more);
        last = std::mem::take(&mut more);
    }
    all.sort_by_key(|h| h.start);
    let mut out: Vec<FieldHit> = Vec::with_capacity(all.len());
    for hit in all {
        let field = field_of(line, hit.start as usize, hit.end as usize, tsv);
        if !out.iter().any(|o| o.hit.indicator == hit.indicator && o.field == field) {
            out.push(FieldHit { hit, field });
        }
    }
    out
}

/// The last `#fields` header in a buffer of lines: the Zeek columns in effect after it, for the next chunk.
pub fn last_header(buf: &[u8]) -> Option<TsvFields> {
    // A backward search for the rare byte `#` (vectorised in both directions) with the rest checked in place: a
    // substring search over every chunk cost 4% of a scan's instructions for a header most inputs never have.
    let at = memchr::memrchr_iter(b'#', buf)
        .find(|&i| (i == 0 || buf[i - 1] == b'\n') && buf[i..].starts_with(b"#fields\t"))?;
    let end = memchr::memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
    tsv_header(&buf[at..end])
}

/// `--fields` / `kafka.fields`: only hits in matching fields count (globs on the dotted path, `dns.*`). A hit in a
/// line without a known field keeps counting unless `strict`.
#[derive(Clone, Debug)]
pub struct FieldFilter {
    globs: globset::GlobSet,
    strict: bool,
}

impl FieldFilter {
    /// Compiles the patterns; an invalid one is an error naming it.
    pub fn new(patterns: &[String], strict: bool) -> Result<FieldFilter, String> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(globset::Glob::new(p).map_err(|e| format!("field pattern {p:?}: {e}"))?);
        }
        Ok(FieldFilter {
            globs: b.build().map_err(|e| e.to_string())?,
            strict,
        })
    }

    pub fn keeps(&self, field: Option<&str>) -> bool {
        match field {
            Some(f) => self.globs.is_match(f),
            None => !self.strict,
        }
    }
}

/// One level of the JSON walk.
enum Frame {
    /// An object, with the span of the key whose value comes (or is being read).
    Object {
        key: Option<(usize, usize)>,
    },
    Array,
}

/// The dotted key path of the JSON value that contains `start..end`, array positions dropped.
pub fn json_path(line: &[u8], start: usize, end: usize) -> Option<String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    let n = line.len();
    let path = |stack: &[Frame]| {
        let keys: Vec<String> = stack
            .iter()
            .filter_map(|f| match f {
                Frame::Object { key: Some((s, e)) } => Some(String::from_utf8_lossy(&line[*s..*e]).into_owned()),
                _ => None,
            })
            .collect();
        (!keys.is_empty()).then(|| keys.join("."))
    };
    while i < n {
        match line[i] {
            b'{' => {
                stack.push(Frame::Object { key: None });
                expect_key = true;
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array);
                expect_key = false;
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = matches!(stack.last(), Some(Frame::Object { .. }));
                i += 1;
            }
            b':' => {
                expect_key = false;
                i += 1;
            }
            b'"' => {
                let s = i + 1;
                let mut j = s;
                while j < n && line[j] != b'"' {
                    j += if line[j] == b'\\' { 2 } else { 1 };
                }
                let e = j.min(n);
                if expect_key {
                    if let Some(Frame::Object { key }) = stack.last_mut() {
                        *key = Some((s, e));
                    }
                    if start >= s && end <= e {
                        return None; // the hit is a key, not a value
                    }
                } else if start >= s && end <= e {
                    return path(&stack);
                }
                i = e + 1;
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                // A bare value (number, true, false, null): up to the next delimiter.
                let s = i;
                while i < n && !matches!(line[i], b',' | b'}' | b']') && !line[i].is_ascii_whitespace() {
                    i += 1;
                }
                if start >= s && end <= i {
                    return path(&stack);
                }
            }
        }
        if i > end && start < i && stack.is_empty() {
            break;
        }
    }
    None
}

/// The key of the `key=value` pair whose value holds the byte at `start` (`src=1.2.3.4`, CEF extensions, logfmt,
/// `msg="to evil.example"`). The key must start the line or follow a blank, a `|` or a `,`, so a URL's query
/// (`?u=evil.example`) is not taken for a field.
pub fn kv_key(line: &[u8], start: usize) -> Option<String> {
    let value_start = |from: usize| {
        let mut v = from;
        while v > 0 && !matches!(line[v - 1], b' ' | b'\t' | b'=' | b'"' | b',' | b';' | b'|') {
            v -= 1;
        }
        v
    };
    let mut v = value_start(start);
    if v > 0 && line[v - 1] == b'"' {
        v -= 1;
    } else if v > 0 && line[v - 1] != b'=' {
        // Inside a quoted value with blanks: the opening quote must come right after `key=`.
        let q = memchr::memrchr(b'"', &line[..v])?;
        if q == 0 || line[q - 1] != b'=' || memchr::memchr_iter(b'"', &line[..q]).count() % 2 == 1 {
            return None;
        }
        v = q;
    }
    if v == 0 || line[v - 1] != b'=' {
        return None;
    }
    let eq = v - 1;
    let mut k = eq;
    while k > 0 && (line[k - 1].is_ascii_alphanumeric() || matches!(line[k - 1], b'_' | b'.' | b'-')) {
        k -= 1;
    }
    if k == eq || (k > 0 && !matches!(line[k - 1], b' ' | b'\t' | b'|' | b',')) {
        return None;
    }
    Some(String::from_utf8_lossy(&line[k..eq]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str, needle: &str) -> (usize, usize) {
        let s = line.find(needle).unwrap_or_else(|| panic!("{needle} in {line}"));
        (s, s + needle.len())
    }

    #[test]
    fn last_header_is_the_last_fields_line_of_the_buffer() {
        let first = last_header(b"#fields\ta\tb\nx\ty\n").unwrap();
        assert_eq!(first.as_slice(), ["a", "b"]);
        let buf = b"#fields\ta\nx\n#fields\tc\td\nmsg #fields\te\n";
        assert_eq!(last_header(buf).unwrap().as_slice(), ["c", "d"]);
        assert!(last_header(b"msg #fields\te\n").is_none());
    }

    fn json(line: &str, needle: &str) -> Option<String> {
        let (s, e) = at(line, needle);
        json_path(line.as_bytes(), s, e)
    }

    #[test]
    fn json_paths_drop_array_positions_and_keys_are_not_values() {
        let eve = r#"{"timestamp":"2017-01-30T16:12:26.985026+0100","src_ip":"172.17.0.2","dest_ip":"172.21.3.254","dns":{"type":"query","rrname":"_http._tcp.security.debian.org","answers":[{"rdata":"1.2.3.4"}]}}"#;
        assert_eq!(json(eve, "172.21.3.254").as_deref(), Some("dest_ip"));
        assert_eq!(json(eve, "172.17.0.2").as_deref(), Some("src_ip"));
        assert_eq!(json(eve, "security.debian.org").as_deref(), Some("dns.rrname"));
        assert_eq!(json(eve, "1.2.3.4").as_deref(), Some("dns.answers.rdata"));
        assert_eq!(json(r#"{"evil.example":1}"#, "evil.example"), None, "a key");
        let esc = r#"{"a":"x \"q\" y","msg":"to evil.example"}"#;
        assert_eq!(json(esc, "evil.example").as_deref(), Some("msg"));
        assert_eq!(json(r#"{"n":[1,2,{"port":443}]}"#, "443").as_deref(), Some("n.port"));
    }

    #[test]
    fn kv_keys_need_a_key_at_a_field_boundary() {
        let ipt = "Sep 30 10:09:23 scw kernel: IN=ens2 OUT= SRC=62.34.17.168 DST=10.73.140.49 LEN=44";
        let k = |line: &str, needle: &str| kv_key(line.as_bytes(), at(line, needle).0);
        assert_eq!(k(ipt, "62.34.17.168").as_deref(), Some("SRC"));
        assert_eq!(k(ipt, "10.73.140.49").as_deref(), Some("DST"));
        assert_eq!(
            k("a=1 msg=\"connect to evil.example now\"", "evil.example").as_deref(),
            Some("msg")
        );
        assert_eq!(
            k("CEF:0|V|P|1|100|n|5|src=10.0.0.1 dst=10.0.0.2", "10.0.0.1").as_deref(),
            Some("src")
        );
        // The look-alikes: a URL query, a value with no key, a `key: value` pair.
        assert_eq!(k("GET /x?u=evil.example HTTP/1.1", "evil.example"), None);
        assert_eq!(k("from 35.188.49.176 port 53502", "35.188.49.176"), None);
        assert_eq!(k("a=\"x\" b evil.example", "evil.example"), None);
    }

    #[test]
    fn zeek_columns_come_from_the_fields_header() {
        let names = tsv_header(b"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h").unwrap();
        let line = "1320279554.496300\tCg9xqq3JAcZusspA86\t192.168.2.76\t52025\t208.85.42.28";
        let (s, e) = at(line, "208.85.42.28");
        assert_eq!(
            field_of(line.as_bytes(), s, e, Some(&names)).as_deref(),
            Some("id.resp_h")
        );
        let (s, e) = at(line, "192.168.2.76");
        assert_eq!(
            field_of(line.as_bytes(), s, e, Some(&names)).as_deref(),
            Some("id.orig_h")
        );
        assert_eq!(field_of(line.as_bytes(), s, e, None), None, "no header seen");
        assert!(tsv_header(b"#types\ttime").is_none());
    }
}
