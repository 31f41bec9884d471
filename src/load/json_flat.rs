//! The common shape of a restSearch attribute read without serde: keys and strings without escapes, integers,
//! `true`/`false`/`null`, and the `Event` header and `Tag` list nested in it.
//!
//! serde_json pays for its generality on every one of the thirty-odd keys and values of an attribute (a visitor
//! call, a key match and a string scan each), and that was most of a restSearch load. This reader walks the text
//! once and fills [`Fields`] with exactly what [`super::json_attr`]'s serde path fills for the same element. It
//! validates all it reads; anything it does not take on (an escape, a number that is not a plain integer, a
//! control byte in a string, deep nesting, anything malformed) makes it give up, and serde reads the element and
//! names the error. The proptest below holds the two to the same fields on generated and mangled elements.

use super::json_attr::Fields;
use crate::indicator::EventMeta;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// The attribute in `raw` when it has the common shape; `None` hands it to serde.
pub(super) fn attribute(raw: &str) -> Option<Fields<'_>> {
    let mut p = Reader { src: raw, i: 0 };
    let mut f = Fields::default();
    p.object(|p, key| {
        match key {
            "type" => f.misp_type = p.lenient()?,
            "value" => f.value = p.lenient()?,
            "to_ids" => f.to_ids = p.flag()?,
            "deleted" => f.deleted = p.flag()?,
            "uuid" => f.uuid = p.lenient()?,
            "category" => f.category = p.lenient()?,
            "Tag" => f.tags = p.tags()?,
            "timestamp" => f.timestamp = p.lenient()?,
            "comment" => f.comment = p.lenient()?,
            "event_id" => f.event_id = p.lenient()?,
            "event_uuid" => f.event_uuid = p.lenient()?,
            "Event" => f.event = p.event()?,
            _ => p.skip(0)?,
        }
        Some(())
    })?;
    p.ws();
    (p.i == raw.len()).then_some(f)
}

/// Nesting deeper than this is left to serde (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// One JSON scalar as read, or the start of an object or array (not consumed).
enum Scalar<'a> {
    Str(&'a str),
    /// A plain non-negative integer, `0` or `[1-9][0-9]{0,18}`: its text is what serde prints for it.
    Int(&'a str),
    Bool(bool),
    Null,
    Object,
    Array,
}

struct Reader<'a> {
    src: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let b = *self.bytes().get(self.i)?;
        self.i += 1;
        Some(b)
    }

    /// A string's contents after its opening quote, up to the closing one; `None` at an escape or a control byte.
    fn string_body(&mut self) -> Option<&'a str> {
        let b = self.bytes();
        let start = self.i;
        // Eight bytes at a time: the first quote, backslash or control byte of a word is its lowest flagged byte
        // (these masks flag wrongly only above a true hit).
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        while let Some(w) = b.get(self.i..self.i + 8) {
            let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
            let hit = zero(w ^ (ONES * u64::from(b'"')))
                | zero(w ^ (ONES * u64::from(b'\\')))
                | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
            if hit != 0 {
                self.i += (hit.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        while let Some(&c) = b.get(self.i) {
            self.i += 1;
            match c {
                b'"' => return self.src.get(start..self.i - 1),
                b'\\' | 0..=0x1f => return None,
                _ => {}
            }
        }
        None
    }

    /// A number's text after its first byte `first`, when it is a plain integer; `None` for anything else.
    fn integer(&mut self, first: u8) -> Option<&'a str> {
        let b = self.bytes();
        let start = self.i - 1;
        if first == b'0' {
            if b.get(self.i)
                .is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E'))
            {
                return None;
            }
            return Some("0");
        }
        if !first.is_ascii_digit() {
            return None;
        }
        while b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        if self.i - start > 19 || b.get(self.i).is_some_and(|c| matches!(c, b'.' | b'e' | b'E')) {
            return None;
        }
        Some(&self.src[start..self.i])
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        if self.bytes()[self.i..].starts_with(rest) {
            self.i += rest.len();
            Some(())
        } else {
            None
        }
    }

    /// The next scalar, consumed; an object or array is only announced, its opening byte consumed.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        Some(match self.next()? {
            b'"' => Scalar::Str(self.string_body()?),
            b't' => self.literal(b"rue").map(|()| Scalar::Bool(true))?,
            b'f' => self.literal(b"alse").map(|()| Scalar::Bool(false))?,
            b'n' => self.literal(b"ull").map(|()| Scalar::Null)?,
            b'{' => Scalar::Object,
            b'[' => Scalar::Array,
            c => Scalar::Int(self.integer(c)?),
        })
    }

    /// An object's members after its `{`, each key handed to `member` to read its value.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.ws();
        if self.bytes().get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.next()? != b'"' {
                return None;
            }
            let key = self.string_body()?;
            if self.next()? != b':' {
                return None;
            }
            member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A whole object, `{` included.
    fn object(&mut self, member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        (self.next()? == b'{').then_some(())?;
        self.members(member)
    }

    /// An array's elements after its `[`, each read by `element` from its announced scalar.
    fn elements(&mut self, mut element: impl FnMut(&mut Self, Scalar<'a>) -> Option<()>) -> Option<()> {
        self.ws();
        if self.bytes().get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            let s = self.scalar()?;
            element(self, s)?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The rest of a value whose scalar was read: an object or array is skipped, validated.
    fn finish(&mut self, s: &Scalar<'a>, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        match s {
            Scalar::Object => self.members(|p, _| p.skip(depth + 1)),
            Scalar::Array => self.elements(|p, s| p.finish(&s, depth + 1)),
            _ => Some(()),
        }
    }

    /// Any value, validated and passed over.
    fn skip(&mut self, depth: usize) -> Option<()> {
        let s = self.scalar()?;
        self.finish(&s, depth)
    }

    /// `Lenient`: a string (borrowed), an integer's text; anything else is absent.
    fn lenient(&mut self) -> Option<Option<Cow<'a, str>>> {
        let s = self.scalar()?;
        self.finish(&s, 0)?;
        Some(match s {
            Scalar::Str(t) => Some(Cow::Borrowed(t)),
            Scalar::Int(t) => Some(Cow::Owned(t.to_string())),
            _ => None,
        })
    }

    /// `Flag`, as `lenient_bool` reads a value: a bool, an integer (non-zero is true) or one of MISP's spellings.
    fn flag(&mut self) -> Option<Option<bool>> {
        let s = self.scalar()?;
        self.finish(&s, 0)?;
        Some(match s {
            Scalar::Bool(b) => Some(b),
            Scalar::Int(t) => t.parse::<i64>().ok().map(|n| n != 0),
            Scalar::Str(t) => match t.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" | "" => Some(false),
                _ => None,
            },
            _ => None,
        })
    }

    /// `Tags`: a list of tag objects (their last `name`) or strings; anything else is no tags.
    fn tags(&mut self) -> Option<Vec<String>> {
        let s = self.scalar()?;
        let mut tags = Vec::new();
        match s {
            Scalar::Array => self.elements(|p, s| {
                match s {
                    Scalar::Str(t) => tags.push(t.to_string()),
                    Scalar::Object => {
                        let mut name = None;
                        p.members(|p, k| {
                            if k == "name" {
                                name = p.lenient()?.map(Cow::into_owned);
                                Some(())
                            } else {
                                p.skip(2)
                            }
                        })?;
                        tags.extend(name);
                    }
                    s => p.finish(&s, 1)?,
                }
                Some(())
            })?,
            s => self.finish(&s, 0)?,
        }
        Some(tags)
    }

    /// `Event`: the header's `id`, `uuid`, `info` and `Tag` when it is an object; anything else is none. A header
    /// this thread read lately with the same text is shared, not read again (see [`EVENTS`]).
    fn event(&mut self) -> Option<Option<Arc<EventMeta>>> {
        let s = self.scalar()?;
        if !matches!(s, Scalar::Object) {
            self.finish(&s, 0)?;
            return Some(None);
        }
        let start = self.i - 1;
        let rest = &self.src[start..];
        let slot = {
            use std::hash::BuildHasher;
            // Up to the first `}`, so never past the header: the bytes after it are the attribute's own.
            let probe = &rest.as_bytes()[..rest.len().min(EVENT_PROBE)];
            let probe = memchr::memchr(b'}', probe).map_or(probe, |e| &probe[..=e]);
            EVENT_HASH.hash_one(probe) as usize % EVENT_SLOTS
        };
        let hit = EVENTS.with_borrow(|c| {
            c.get(slot)?
                .as_ref()
                .filter(|(text, _)| rest.starts_with(&**text))
                .map(|(text, e)| (text.len(), e.clone()))
        });
        if let Some((len, e)) = hit {
            // The same text as an object read whole before: the object ends where that text does.
            self.i = start + len;
            return Some(Some(e));
        }
        let e = Arc::new(self.event_members()?);
        EVENTS.with_borrow_mut(|c| {
            c.resize(EVENT_SLOTS, None);
            c[slot] = Some((self.src[start..self.i].into(), e.clone()));
        });
        Some(Some(e))
    }

    /// An event header's members after its `{`.
    fn event_members(&mut self) -> Option<EventMeta> {
        let mut e = EventMeta::default();
        self.members(|p, k| {
            match k {
                "id" => e.id = p.lenient()?.map(Cow::into_owned),
                "uuid" => e.uuid = p.lenient()?.map(Cow::into_owned),
                "info" => e.info = p.lenient()?.map(Cow::into_owned),
                "Tag" => e.tags = p.tags()?,
                _ => p.skip(1)?,
            }
            Some(())
        })?;
        Some(e)
    }
}

/// The event headers a thread read lately, by their text: a restSearch answer repeats each attribute's event
/// header in full, and one parsed once is shared by the attributes after it (one allocation, not five, and no
/// second parse). Direct-mapped on the hash of the header's first bytes; a slot holds the last header that fell
/// in it. Emptied at the end of every load ([`forget_events`]).
type EventCache = Vec<Option<(Box<str>, Arc<EventMeta>)>>;

thread_local! {
    static EVENTS: RefCell<EventCache> = const { RefCell::new(Vec::new()) };
}

const EVENT_SLOTS: usize = 4096;
/// Bytes of a header hashed to find its slot at most: enough to take in its `id` or `uuid` in the order MISP
/// writes them.
const EVENT_PROBE: usize = 160;
static EVENT_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x10c_3a7c);

/// Drops this thread's cached event headers.
pub(super) fn forget_events() {
    EVENTS.with_borrow_mut(|c| *c = Vec::new());
}

#[cfg(test)]
mod tests {
    use super::super::json_attr::Element;
    use super::attribute;
    use proptest::prelude::*;

    /// What serde reads from `doc`: the fields, "not an object", or an error.
    fn by_serde(doc: &str) -> Option<String> {
        match serde_json::from_str::<Element>(doc) {
            Ok(Element::Attribute(f)) => Some(format!("{f:?}")),
            Ok(Element::NotAnObject) => Some("not an object".into()),
            Err(_) => None,
        }
    }

    fn agrees(doc: &str) {
        if let Some(f) = attribute(doc) {
            assert_eq!(Some(format!("{f:?}")), by_serde(doc), "{doc}");
        }
    }

    const MISP: &str = r##"{"id":"1","event_id":"7","object_id":"0","object_relation":null,"category":"Network activity","type":"domain","to_ids":true,"uuid":"fcf3eedb-19f5-55d6-a507-42652e30ce54","timestamp":"1700000000","distribution":"5","sharing_group_id":"0","comment":"","deleted":false,"disable_correlation":false,"first_seen":null,"last_seen":null,"value":"login0.data.com","Event":{"org_id":"1","distribution":"1","id":"7","info":"Synthetic event 7","orgc_id":"1","uuid":"78afd2c1-0d0b-5b8e-b19d-14ab3635a446"},"Tag":[{"id":"1","name":"tlp:green","colour":"#33FF00","numerical_value":null}]}"##;

    #[test]
    fn misp_attributes_are_read_here_as_serde_reads_them() {
        let docs = [
            MISP,
            r#"{"type":"ip-dst","value":"10.0.0.1","to_ids":"0","deleted":1,"timestamp":1700000000}"#,
            r#" { "type" : "domain" , "value" : "a.com" , "Tag" : [ "x" , {"name":"y","name":"z"}, 3, null, [] ] } "#,
            r#"{"type":"domain","value":"a.com","Event":[],"Tag":{"name":"x"},"to_ids":"yes","deleted":"No "}"#,
            r#"{"type":"domain","value":"a.com","Event":"e","event_id":12,"event_uuid":"u","comment":"  "}"#,
            r#"{"type":"domain","value":"a.com","value":null,"to_ids":0,"deleted":9223372036854775808}"#,
            r#"{"type":"d","value":"é.com","Event":{"Tag":[{"name":"tlp:red"}],"id":3,"Org":{"a":[1,{"b":[]}]}}}"#,
            r#"{}"#,
        ];
        for doc in docs {
            assert!(attribute(doc).is_some(), "{doc}");
            agrees(doc);
        }
    }

    #[test]
    fn what_it_does_not_take_on_goes_to_serde() {
        for doc in [
            r#"{"type":"domain","value":"a\u002ecom"}"#,
            r#"{"type":"domain","value":"a.com","timestamp":-1}"#,
            r#"{"type":"domain","value":"a.com","timestamp":1.5}"#,
            r#"{"type":"domain","value":"a.com","timestamp":012}"#,
            r#"{"type":"domain","value":"a.com","timestamp":12345678901234567890}"#,
            "{\"type\":\"domain\",\"value\":\"a\tb\"}",
            r#"{"type":"domain","value":"a.com",}"#,
            r#"{"type":"domain" "value":"a.com"}"#,
            r#"{"type":"domain","value":"a.com"} x"#,
            r#"{"type":"domain","value":tru}"#,
            r#"["type"]"#,
            r#"{"type":"domain","value":"a.com""#,
        ] {
            assert!(attribute(doc).is_none(), "{doc}");
        }
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(70), "]".repeat(70));
        assert!(attribute(&deep).is_none());
    }

    #[test]
    fn a_repeated_event_header_is_read_once_and_shared_but_never_changed_for_one_attribute() {
        use crate::load::Location;
        use std::sync::Arc;
        let a = attribute(r#"{"type":"domain","value":"a.com","Event":{"id":"1","info":"x"}}"#).unwrap();
        let b = r#"{"type":"domain","value":"b.com","Event":{"id":"1","info":"x"},"event_uuid":"u"}"#;
        let b = attribute(b).unwrap();
        assert!(Arc::ptr_eq(a.event.as_ref().unwrap(), b.event.as_ref().unwrap()));
        let (a, b) = (
            a.into_raw(Location::Unknown, None).unwrap(),
            b.into_raw(Location::Unknown, None).unwrap(),
        );
        assert_eq!((a.event.uuid.as_deref(), b.event.uuid.as_deref()), (None, Some("u")));
        assert_eq!(b.event.info.as_deref(), Some("x"));
        // A longer header that begins the same way is its own.
        let c = attribute(r#"{"type":"domain","value":"c.com","Event":{"id":"1","info":"x","uuid":"v"}}"#).unwrap();
        assert_eq!(c.event.unwrap().uuid.as_deref(), Some("v"));
        super::forget_events();
        let d = attribute(r#"{"type":"domain","value":"d.com","Event":{"id":"1","info":"x"}}"#).unwrap();
        assert!(!Arc::ptr_eq(d.event.as_ref().unwrap(), &a.event));
    }

    /// Pieces an attribute is made of, quirks and all.
    fn member() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "type",
            "value",
            "to_ids",
            "deleted",
            "uuid",
            "category",
            "Tag",
            "timestamp",
            "comment",
            "event_id",
            "event_uuid",
            "Event",
            "id",
            "info",
            "name",
            "other",
        ]);
        let scalar = prop::sample::select(vec![
            r#""domain""#,
            r#""a.com""#,
            r#""1""#,
            r#""0""#,
            r#"" TRUE ""#,
            r#""no""#,
            r#""""#,
            r#""a\"b""#,
            r#""é""#,
            r#""fcf3eedb-19f5-55d6-a507-42652e30ce54""#,
            r#""a long value, twenty-odd bytes\\ on""#,
            r#""ümlauts ünd ëight-byte wörds""#,
            "0",
            "1",
            "7",
            "-3",
            "2.5",
            "1e3",
            "9223372036854775808",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            r#"["x",{"name":"t"},{"name":5,"id":1},null,[1]]"#,
            r#"{"id":"9","info":"i","Tag":["a"]}"#,
            r#"{"uuid":"u","name":"n","Tag":[{"name":"x"}],"z":{"y":[true]}}"#,
        ]);
        (key, scalar).prop_map(|(k, v)| format!(r#""{k}":{v}"#))
    }

    proptest! {
        #[test]
        fn reads_what_serde_reads_or_gives_way(
            members in prop::collection::vec(member(), 0..12),
            ws in prop::sample::select(vec!["", " ", "\n\t"]),
            cut in any::<prop::sample::Index>(),
            insert in prop::sample::select(vec!["", ",", "}", "\"", "\\", "x", "\u{1}", "[", ":"]),
        ) {
            let doc = format!("{{{ws}{}{ws}}}", members.join(&format!("{ws},{ws}")));
            agrees(&doc);
            let at = cut.index(doc.len() + 1);
            if doc.is_char_boundary(at) {
                agrees(&doc[..at]);
                agrees(&format!("{}{insert}{}", &doc[..at], &doc[at..]));
            }
        }
    }
}
