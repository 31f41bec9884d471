//! Finding where each element of a restSearch `Attribute` list ends, 64 bytes at a time, without parsing it.
//!
//! Splitting the list was the one serial step of a restSearch load (serde_json skips a value byte by byte through
//! every key, string and number). Here each 64-byte block becomes bitmasks of quotes, backslashes and braces; the
//! bytes inside strings come from a prefix XOR of the unescaped quotes, and an element ends where its braces
//! outside strings balance. Nothing is validated: every element is parsed in full by serde afterwards, and any
//! surprise sends the caller back to the serde path, which names the error.

/// Where `{"response": {"Attribute": [` ends and the list's closing `]` is, when `bytes` is exactly that wrapping
/// (any JSON whitespace between its tokens) and nothing else: the shape restSearch answers with. Any other shape is
/// left to the serde path.
pub(crate) fn attribute_list(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    for tok in [&b"{"[..], b"\"response\"", b":", b"{", b"\"Attribute\"", b":", b"["] {
        i = skip_ws(bytes, i);
        if !bytes[i..].starts_with(tok) {
            return None;
        }
        i += tok.len();
    }
    let mut j = bytes.len();
    for tok in [b'}', b'}', b']'] {
        while j > i && is_ws(bytes[j - 1]) {
            j -= 1;
        }
        if j <= i || bytes[j - 1] != tok {
            return None;
        }
        j -= 1;
    }
    Some((i, j))
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[inline]
pub(crate) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
    }
    i
}

/// The end (one past its `}`) of the object that opens at `bytes[start] == b'{'`, or `None` when the bytes end
/// first. Strings (escapes included) are skipped whole; brackets are not tracked, as a well-formed object's braces
/// balance without them and a malformed one fails its own parse.
pub(crate) fn object_end(bytes: &[u8], start: usize) -> Option<usize> {
    debug_assert_eq!(bytes.get(start), Some(&b'{'));
    let mut depth = 0u32;
    // Whether the block before ended inside a string, and before a backslash that escapes the next byte.
    let (mut in_string, mut escape_next) = (0u64, false);
    let mut at = start;
    while at < bytes.len() {
        let m = block_masks(&bytes[at..]);
        let mut escaped = 0u64;
        if m.backslash != 0 || escape_next {
            // Backslashes are rare (`\/` in URLs, `\"` in comments): walk them in order.
            let mut bs = m.backslash;
            if escape_next {
                escaped |= 1;
                bs &= !1;
            }
            escape_next = false;
            while bs != 0 {
                let i = bs.trailing_zeros();
                bs &= bs - 1;
                if i == 63 {
                    escape_next = true;
                } else {
                    // The escaped byte, if a backslash, escapes nothing itself.
                    escaped |= 1 << (i + 1);
                    bs &= !(1 << (i + 1));
                }
            }
        }
        let quotes = m.quote & !escaped;
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = 0u64.wrapping_sub(inside >> 63);
        let mut braces = (m.open | m.close) & !inside;
        while braces != 0 {
            let i = braces.trailing_zeros();
            braces &= braces - 1;
            if m.open >> i & 1 != 0 {
                depth += 1;
            } else {
                depth -= 1;
                if depth == 0 {
                    return Some(at + i as usize + 1);
                }
            }
        }
        at += 64;
    }
    None
}

/// Bit `i` set when an odd number of bits `0..=i` of `x` are: inside a string, from its opening quote up to (not
/// including) its closing one.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// One block's bytes of each kind, bit `i` for byte `i`; past the end of `b` no byte is any kind.
struct Block {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

#[inline]
fn block_masks(b: &[u8]) -> Block {
    if b.len() >= 64 {
        return full_block(b[..64].try_into().expect("64 bytes"));
    }
    let mut pad = [0u8; 64];
    pad[..b.len()].copy_from_slice(b);
    full_block(&pad)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn full_block(b: &[u8; 64]) -> Block {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the four loads read the 64 bytes of `b`, unaligned.
    unsafe {
        let v: [__m128i; 4] = std::array::from_fn(|k| _mm_loadu_si128(b.as_ptr().add(16 * k).cast()));
        let mask = |c: u8| {
            let c = _mm_set1_epi8(c as i8);
            (0..4).fold(0u64, |m, k| {
                m | ((_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], c)) as u16 as u64) << (16 * k))
            })
        };
        Block {
            quote: mask(b'"'),
            backslash: mask(b'\\'),
            open: mask(b'{'),
            close: mask(b'}'),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn full_block(b: &[u8; 64]) -> Block {
    scalar_block(b)
}

/// The portable path, a byte at a time: what other architectures run, and what the SSE2 path is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn scalar_block(b: &[u8; 64]) -> Block {
    let mask = |c: u8| b.iter().enumerate().fold(0u64, |m, (i, &x)| m | ((x == c) as u64) << i);
    Block {
        quote: mask(b'"'),
        backslash: mask(b'\\'),
        open: mask(b'{'),
        close: mask(b'}'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    /// The elements serde_json finds in the list, as byte ranges.
    fn serde_split(doc: &str) -> Vec<(usize, usize)> {
        #[derive(serde::Deserialize)]
        struct R<'a> {
            #[serde(borrow)]
            response: A<'a>,
        }
        #[derive(serde::Deserialize)]
        struct A<'a> {
            #[serde(borrow, rename = "Attribute")]
            attribute: Vec<&'a RawValue>,
        }
        let r: R = serde_json::from_str(doc).expect("valid");
        let base = doc.as_ptr() as usize;
        r.response
            .attribute
            .iter()
            .map(|v| {
                let s = v.get().as_ptr() as usize - base;
                (s, s + v.get().len())
            })
            .collect()
    }

    fn split(doc: &[u8]) -> Option<Vec<(usize, usize)>> {
        let (mut i, end) = attribute_list(doc)?;
        let mut out = Vec::new();
        i = skip_ws(doc, i);
        while i < end {
            if doc[i] != b'{' {
                return None;
            }
            let e = object_end(doc, i)?;
            out.push((i, e));
            i = skip_ws(doc, e);
            if i < end {
                if doc[i] != b',' {
                    return None;
                }
                i = skip_ws(doc, i + 1);
            }
        }
        Some(out)
    }

    #[test]
    fn braces_quotes_and_backslashes_inside_strings_do_not_end_an_element() {
        let doc = r#"{"response": {"Attribute": [
            {"value": "a}b{", "comment": "say \"}\" and \\", "Tag": [{"name": "x\\\"}"}]},
            {"value": "\\\\\\\\", "Event": {"info": "{{{"}, "u": "\u007d"} ,{"v":"\/\/"}
        ]}}"#;
        assert_eq!(split(doc.as_bytes()), Some(serde_split(doc)));
        assert_eq!(split(doc.as_bytes()).map(|v| v.len()), Some(3));
    }

    #[test]
    fn an_escape_split_across_two_blocks_is_honoured() {
        for pad in 0..70 {
            let doc = format!(
                "{{\"response\":{{\"Attribute\":[{{\"a\":\"{}\\\"}}\\\\\"}},{{\"b\":1}}]}}}}",
                "x".repeat(pad)
            );
            assert_eq!(split(doc.as_bytes()), Some(serde_split(&doc)), "{doc}");
        }
    }

    #[test]
    fn other_wrappings_and_a_cut_list_are_left_to_serde() {
        assert_eq!(attribute_list(br#"{"Attribute": []}"#), None);
        assert_eq!(attribute_list(br#"{"response": {"Attribute": [], "x": 1}}"#), None);
        assert_eq!(attribute_list(br#"{"response": {"Attribute": [{"a": 1}]}"#), None);
        assert_eq!(
            attribute_list(b" {\"response\" :{\"Attribute\":[ ]}}\n"),
            Some((28, 29))
        );
        assert_eq!(object_end(br#"{"a": "}"#, 0), None);
        assert_eq!(object_end(br#"{"a": {"b": 1}"#, 0), None);
    }

    proptest! {
        #[test]
        fn the_vector_and_portable_block_masks_agree(bytes in prop::collection::vec(
            prop::sample::select(vec![b'"', b'\\', b'{', b'}', b'a', 0xff, 0x80]), 64,
        )) {
            let b: [u8; 64] = bytes.try_into().unwrap();
            let (v, p) = (full_block(&b), scalar_block(&b));
            prop_assert_eq!((v.quote, v.backslash, v.open, v.close), (p.quote, p.backslash, p.open, p.close));
        }

        #[test]
        fn the_split_agrees_with_serde(
            values in prop::collection::vec(prop::collection::vec(
                prop::sample::select(vec!["a", "\\\"", "\\\\", "{", "}", "[", "]", "\\/", ",", ":", " ", "\\u0022", "é"]),
                0..40,
            ), 0..6),
            nest in prop::collection::vec(0usize..3, 6),
        ) {
            let elems: Vec<String> = values
                .iter()
                .zip(&nest)
                .map(|(v, &n)| {
                    let s = v.concat();
                    match n {
                        0 => format!("{{\"value\":\"{s}\"}}"),
                        1 => format!("{{\"Event\":{{\"info\":\"{s}\",\"n\":[1,{{}}]}},\"value\":\"{s}\"}}"),
                        _ => format!("{{ \"Tag\" : [ {{\"name\":\"{s}\"}} ] , \"x\" : null }}"),
                    }
                })
                .collect();
            let doc = format!("{{\"response\":{{\"Attribute\":[{}]}}}}", elems.join(" ,\n"));
            prop_assert_eq!(split(doc.as_bytes()), Some(serde_split(&doc)));
        }
    }
}
