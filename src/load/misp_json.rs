//! MISP JSON: restSearch attribute responses (wrapped or not), event exports (with objects) and lists of either.

use super::json_attr::{Element, EventDoc};
use super::split;
use super::{lenient_bool, lenient_string, Examined, LoadError, Loader, Location, RawAttribute};
use crate::indicator::EventMeta;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn json_error(name: &str, e: serde_json::Error) -> LoadError {
    LoadError::Json {
        path: name.to_string(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    }
}

pub(super) fn load(loader: &mut Loader, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    load_slice(loader, name, bytes, &|_| {})
}

/// [`load`] from a file mapped into memory: parsed from the slice (a reader is parsed a byte at a time), with
/// `release(n)` called as the first `n` bytes are done with, so the mapping's pages can be dropped and the file
/// never becomes resident whole. restSearch's own wrapping is split by [`split`] first; anything it does not expect
/// goes to serde_json, which names the error.
pub(super) fn load_slice(
    loader: &mut Loader,
    name: &str,
    bytes: &[u8],
    release: &dyn Fn(usize),
) -> Result<(), LoadError> {
    if let Some(list) = split::attribute_list(bytes) {
        if split_list(loader, name, bytes, list, release) {
            return Ok(());
        }
    }
    match stream(loader, name, serde_json::Deserializer::from_slice(bytes), true, release) {
        Ok(()) => Ok(()),
        Err((_, true)) => {
            if let Ok(doc) = serde_json::from_slice::<EventDoc>(bytes) {
                load_event_doc(loader, name, doc, bytes, release);
                return Ok(());
            }
            let root: Value = serde_json::from_slice(bytes).map_err(|e| json_error(name, e))?;
            walk(loader, name, &root, "")
        }
        Err((e, false)) => Err(json_error(name, e)),
    }
}

/// Event exports read straight into fields ([`EventDoc`]): each event's attributes, then each object's, parsed and
/// examined a batch at a time on every core and committed in that order (each batch beside the next one's parse),
/// with the locations and warnings of the tree walk ([`load_event`]). The attributes are borrowed from `bytes`; a
/// batch's text is released once it is parsed.
fn load_event_doc(loader: &mut Loader, name: &str, doc: EventDoc, bytes: &[u8], release: &dyn Fn(usize)) {
    use rayon::prelude::*;
    let name: Arc<str> = name.into();
    let examiner = loader.examiner();
    let mut pending = Vec::new();
    for (k, ev) in doc.events.into_iter().enumerate() {
        let meta = Arc::new(ev.meta);
        let lists = std::iter::once((None, ev.attributes)).chain(ev.objects.into_iter().map(|(i, a)| (Some(i), a)));
        for (object, list) in lists {
            let locate = |j: usize| match (doc.listed, object) {
                (false, None) => Location::At(name.clone(), "#/Event/Attribute/", j),
                (false, Some(i)) => Location::Text(format!("{name}#/Event/Object/{i}/Attribute/{j}")),
                (true, None) => Location::Text(format!("{name}#/response/{k}/Event/Attribute/{j}")),
                (true, Some(i)) => Location::Text(format!("{name}#/response/{k}/Event/Object/{i}/Attribute/{j}")),
            };
            for (c, chunk) in list.chunks(BATCH).enumerate() {
                let parse = |(j, raw): (usize, &&RawValue)| {
                    let location = || locate(c * BATCH + j);
                    let a = read_element(raw.get(), location, Some(&meta))
                        .unwrap_or_else(|e| Err(format!("{}: {e}", location())));
                    examined(&examiner, a)
                };
                pending = commit_beside(loader, std::mem::take(&mut pending), || {
                    chunk.par_iter().enumerate().with_min_len(256).map(parse).collect()
                });
                if let Some(last) = chunk.last() {
                    release(last.get().as_ptr() as usize - bytes.as_ptr() as usize + last.get().len());
                }
            }
        }
    }
    commit_all(loader, pending);
    forget_events();
}

/// Drops the event headers every thread kept while reading a document ([`super::json_flat`]): they are worth
/// keeping only within one.
fn forget_events() {
    rayon::broadcast(|_| super::json_flat::forget_events());
    super::json_flat::forget_events();
}

/// [`load`] from a reader, so a restSearch file of millions of attributes is never held whole; any other shape
/// is read again whole with `reread` and walked as a tree.
pub(super) fn load_reader(
    loader: &mut Loader,
    name: &str,
    reader: impl std::io::Read,
    reread: impl FnOnce() -> Result<Vec<u8>, LoadError>,
) -> Result<(), LoadError> {
    match stream(
        loader,
        name,
        serde_json::Deserializer::from_reader(reader),
        false,
        &|_| {},
    ) {
        Ok(()) => Ok(()),
        Err((_, true)) => load(loader, name, &reread()?),
        Err((e, false)) => Err(json_error(name, e)),
    }
}

/// Attributes examined together on every core while the parser waits.
const BATCH: usize = 4096;

/// The list `bytes[from..to]` of a restSearch answer split by [`split::object_end`] and its elements parsed where
/// they lie, a batch at a time on every core. At the first thing it does not expect (a byte between elements, an
/// element that is not an object, one that is not well-formed JSON or UTF-8) it undoes what it loaded and returns
/// false, so the serde path reads the document again, loads what it can and names the error.
fn split_list(
    loader: &mut Loader,
    name: &str,
    bytes: &[u8],
    (from, to): (usize, usize),
    release: &dyn Fn(usize),
) -> bool {
    let mut batches = Batches::new(loader, name);
    let (mut cur, mut next) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    let mut cut = next_batch(bytes, split::skip_ws(bytes, from), to, &mut cur);
    if let (Some(first), Some(last)) = (cur.first(), cur.last()) {
        // Room in the set for as many attributes as the first batch says the list holds: it is then sized once,
        // not doubled (each doubling hashes every value again, a cache miss apiece, on the thread that commits).
        let span = last.as_ptr() as usize + last.len() - first.as_ptr() as usize;
        batches.loader.reserve((to - from) / span.div_ceil(cur.len()).max(1));
    }
    let whole = loop {
        let at = match cut {
            Cut::More(at) => Some(at),
            Cut::End => None,
            Cut::Bad => break false,
        };
        // The next batch is split while this one is parsed: the split is the one part that runs on one core.
        let (parsed, next_cut) = rayon::join(
            || batches.parse(&cur, true),
            || at.map(|at| next_batch(bytes, at, to, &mut next)),
        );
        if !parsed {
            break false;
        }
        if let Some(last) = cur.last() {
            release(last.as_ptr() as usize - bytes.as_ptr() as usize + last.len());
        }
        match next_cut {
            None => break true,
            Some(c) => {
                cut = c;
                std::mem::swap(&mut cur, &mut next);
                next.clear();
            }
        }
    };
    if whole {
        batches.finish();
        true
    } else {
        batches.undo();
        false
    }
}

/// How a batch of [`next_batch`] ended.
enum Cut {
    /// The list goes on at this byte.
    More(usize),
    /// The list ended after a well-formed element (or was empty).
    End,
    /// Something [`split_list`] does not expect: the serde path takes over.
    Bad,
}

/// Splits up to [`BATCH`] elements of the list `bytes[..to]` from byte `i` into `elems`.
fn next_batch<'b>(bytes: &'b [u8], mut i: usize, to: usize, elems: &mut Vec<&'b [u8]>) -> Cut {
    while elems.len() < BATCH {
        if i >= to {
            return Cut::End;
        }
        if bytes[i] != b'{' {
            return Cut::Bad;
        }
        let Some(e) = split::object_end(bytes, i).filter(|&e| e <= to) else {
            return Cut::Bad;
        };
        elems.push(&bytes[i..e]);
        i = split::skip_ws(bytes, e);
        if i < to {
            if bytes[i] != b',' {
                return Cut::Bad;
            }
            i = split::skip_ws(bytes, i + 1);
            if i >= to {
                return Cut::Bad;
            }
        }
    }
    if i >= to {
        Cut::End
    } else {
        Cut::More(i)
    }
}

/// Streams a restSearch response from `de` into `loader`; the error says whether the document is another shape.
fn stream<'de, R: serde_json::de::Read<'de>>(
    loader: &mut Loader,
    name: &str,
    mut de: serde_json::Deserializer<R>,
    borrow: bool,
    release: &dyn Fn(usize),
) -> Result<(), (serde_json::Error, bool)> {
    let other_shape = Cell::new(false);
    let sink = RefCell::new(Sink {
        batches: Batches::new(loader, name),
        text: String::new(),
        ends: Vec::new(),
        done_bytes: 0,
        release,
    });
    let seed = RestSearch {
        borrow,
        other_shape: &other_shape,
        sink: &sink,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    let mut sink = sink.into_inner();
    match parsed {
        Ok(()) => {
            sink.flush();
            sink.batches.finish();
            Ok(())
        }
        Err(e) => {
            sink.batches.undo();
            Err((e, other_shape.get()))
        }
    }
}

/// A list's elements on their way into a loader, parsed into fields and examined a batch at a time on every core.
///
/// Into a loader that holds nothing yet, attributes go in batch by batch as they are parsed, and a document that
/// turns out malformed is undone by resetting the loader, so it loads nothing, as before. A loader that holds
/// earlier sources cannot be undone from (merges change kept indicators), so it gets the attributes once the
/// document parsed whole.
struct Batches<'l> {
    loader: &'l mut Loader,
    /// What the loader held before, to go back to; `None` when it held sources already.
    undo: Option<(super::LoadStats, Option<usize>)>,
    /// Collected until the document parsed whole, for a loader that cannot be undone.
    held: Option<Vec<Streamed>>,
    /// The last batch parsed and examined, committed while the next one is parsed.
    pending: Vec<Examinee>,
    examiner: super::Examiner,
    /// The list index of the next element.
    first: usize,
    name: Arc<str>,
}

impl<'l> Batches<'l> {
    fn new(loader: &'l mut Loader, name: &str) -> Self {
        let undo = loader
            .set
            .is_empty()
            .then(|| (loader.stats.clone(), loader.accepted.as_ref().map(Vec::len)));
        Batches {
            held: undo.is_none().then(Vec::new),
            pending: Vec::new(),
            examiner: loader.examiner(),
            undo,
            loader,
            first: 0,
            name: name.into(),
        }
    }

    /// Parses the elements (and, unless held, examines and commits them) on every core. When `strict`, false,
    /// with nothing of them committed, if one is not well-formed JSON in UTF-8; otherwise such an element is a
    /// warning like any other it cannot read (serde's split has checked the JSON; a value may still fail, such as
    /// a lone surrogate escape in a string).
    fn parse(&mut self, elems: &[&[u8]], strict: bool) -> bool {
        use rayon::prelude::*;
        if elems.is_empty() {
            return true;
        }
        let broken = AtomicBool::new(false);
        let (first, name) = (self.first, &self.name);
        let parse = |k: usize| match std::str::from_utf8(elems[k]) {
            Ok(raw) => parse_element(name, first + k, raw, &broken),
            Err(_) => {
                broken.store(true, Ordering::Relaxed);
                Err(String::new())
            }
        };
        let n = elems.len();
        match &mut self.held {
            Some(held) => {
                let at = held.len();
                held.par_extend((0..n).into_par_iter().with_min_len(256).map(parse));
                if strict && broken.load(Ordering::Relaxed) {
                    held.truncate(at);
                    return false;
                }
            }
            None => {
                let (loader, examiner) = (&mut *self.loader, &self.examiner);
                let pending = std::mem::take(&mut self.pending);
                let examined = commit_beside(loader, pending, || {
                    (0..n)
                        .into_par_iter()
                        .with_min_len(256)
                        .map(|k| examined(examiner, parse(k)))
                        .collect()
                });
                if strict && broken.load(Ordering::Relaxed) {
                    return false;
                }
                self.pending = examined;
            }
        }
        self.first += n;
        true
    }

    /// The document parsed whole: a held list is examined and committed now.
    fn finish(mut self) {
        forget_events();
        commit_all(self.loader, std::mem::take(&mut self.pending));
        if let Some(held) = self.held.take() {
            use rayon::prelude::*;
            let all: Vec<_> = held
                .into_par_iter()
                .with_min_len(256)
                .map(|a| examined(&self.examiner, a))
                .collect();
            commit_all(self.loader, all);
        }
    }

    /// The document is malformed: the loader goes back to what it held before (held attributes are dropped).
    fn undo(self) {
        forget_events();
        if let Some((stats, accepted)) = self.undo {
            let l = self.loader;
            l.set = l.set.emptied();
            l.stats = stats;
            if let (Some(a), Some(n)) = (&mut l.accepted, accepted) {
                a.truncate(n);
            }
        }
    }
}

/// Where streamed attributes go (see [`stream`]): each list element arrives as its raw JSON text, and a batch of
/// them is parsed into fields and examined on every core, so the one parsing thread only finds where elements end.
struct Sink<'l, 'r> {
    batches: Batches<'l>,
    /// Elements not parsed yet, back to back (element `k` of the batch ends at `ends[k]`): one buffer reused for
    /// every batch, so an element costs a copy, not an allocation.
    text: String,
    ends: Vec<usize>,
    /// Bytes of elements parsed so far: the input before them is done with (whitespace and commas aside).
    done_bytes: usize,
    release: &'r dyn Fn(usize),
}

impl Sink<'_, '_> {
    fn push(&mut self, raw: &RawValue) {
        self.text.push_str(raw.get());
        self.ends.push(self.text.len());
        if self.ends.len() >= BATCH {
            self.flush();
        }
    }

    /// Parses (and, unless held, examines and commits) the pending elements on every core.
    fn flush(&mut self) {
        let (text, ends) = (self.text.as_bytes(), &self.ends);
        let elems: Vec<&[u8]> = (0..ends.len())
            .map(|k| &text[if k == 0 { 0 } else { ends[k - 1] }..ends[k]])
            .collect();
        self.batches.parse(&elems, false);
        self.done_bytes += self.text.len();
        self.text.clear();
        self.ends.clear();
        (self.release)(self.done_bytes);
    }
}

/// One element of the list, parsed from its raw text into the fields a load reads. Text that is not well-formed
/// JSON sets `broken` (serde's own split never hands such text over; [`split`] does, and then gives way to it).
fn parse_element(name: &Arc<str>, i: usize, raw: &str, broken: &AtomicBool) -> Streamed {
    let location = || Location::At(name.clone(), "#/response/Attribute/", i);
    read_element(raw, location, None).unwrap_or_else(|e| {
        if matches!(
            e.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            broken.store(true, Ordering::Relaxed);
        }
        Err(format!("{}: {e}", location()))
    })
}

/// One list element's text read into an attribute (inside the `enclosing` event, if any), or the warning that says
/// why it is none; text that is not JSON is returned as serde's error, for the caller to judge. `location` is made
/// once for the attribute, and again only for a message (a file's name is shared by every thread's attributes).
fn read_element(
    raw: &str,
    location: impl Fn() -> Location,
    enclosing: Option<&Arc<EventMeta>>,
) -> Result<Streamed, serde_json::Error> {
    let fields = match super::json_flat::attribute(raw) {
        Some(fields) => fields,
        None => match serde_json::from_str::<Element>(raw)? {
            Element::Attribute(f) => *f,
            Element::NotAnObject => return Ok(Err(format!("{}: attribute is not a JSON object", location()))),
        },
    };
    Ok(fields
        .into_raw(location(), enclosing)
        .map_err(|msg| format!("{}: {msg}", location())))
}

/// A read element with its examination (policy, normalisation, vetting), which runs on the parsing core.
type Examinee = (Streamed, Option<Examined>);

fn examined(examiner: &super::Examiner, a: Streamed) -> Examinee {
    let ex = a.as_ref().ok().map(|raw| examiner.examine(raw));
    (a, ex)
}

/// Commits `pending`, the batch before, in list order (the merge order), while `next` reads and examines the next
/// batch on the other cores; returns that batch, to be committed beside the one after it.
fn commit_beside(
    loader: &mut Loader,
    pending: Vec<Examinee>,
    next: impl FnOnce() -> Vec<Examinee> + Send,
) -> Vec<Examinee> {
    rayon::join(|| commit_all(loader, pending), next).1
}

/// Commits examined attributes in list order, a malformed attribute's message as a warning.
fn commit_all(loader: &mut Loader, mut examined: Vec<Examinee>) {
    for (a, ex) in &mut examined {
        match (a, ex.take()) {
            (Ok(raw), Some(ex)) => loader.commit(raw, ex),
            (Err(msg), _) => loader.stats.warnings.push(std::mem::take(msg)),
            (Ok(_), None) => unreachable!("every attribute is examined"),
        }
    }
    // What is left of the batch (each attribute's strings, allocated where it was parsed) is freed on another core:
    // the thread that commits is the one every batch waits for.
    rayon::spawn(move || drop(examined));
}

/// restSearch's own answer, `{"response": {"Attribute": [...]}}`, read one attribute at a time, each straight
/// into its fields ([`super::json_attr`]): the response is never held as a `Value` tree (about 8x the text for a
/// 1M-attribute answer). Any other
/// shape (events, lists, a bare attribute) sets `other_shape` and fails, and the caller walks a tree as before.
struct RestSearch<'a, 'l, 'r> {
    /// Whether elements can be borrowed from the input (a slice) instead of copied out of it (a reader).
    borrow: bool,
    other_shape: &'a Cell<bool>,
    sink: &'a RefCell<Sink<'l, 'r>>,
}

/// One streamed attribute, or why it is not one (with its location).
type Streamed = Result<RawAttribute, String>;

impl<'de> DeserializeSeed<'de> for RestSearch<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Level { seed: self, depth: 0 })
    }
}

/// The root object (`depth` 0, key `response`), the response object (1, key `Attribute`), or the list (2).
struct Level<'a, 'l, 'r> {
    seed: RestSearch<'a, 'l, 'r>,
    depth: u8,
}

impl Level<'_, '_, '_> {
    fn other<E: de::Error>(&self) -> E {
        self.seed.other_shape.set(true);
        E::custom("not a restSearch attribute response")
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a MISP restSearch response")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let want = match self.depth {
            0 => "response",
            1 => "Attribute",
            _ => return Err(self.other()),
        };
        let mut out = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != want || out.is_some() {
                return Err(self.other());
            }
            let next = Level {
                seed: RestSearch { ..self.seed },
                depth: self.depth + 1,
            };
            map.next_value_seed(next)?;
            out = Some(());
        }
        out.ok_or_else(|| self.other())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth != 2 {
            return Err(self.other());
        }
        // From a slice an element's text is borrowed; a reader can only hand it over in a box of its own.
        if self.seed.borrow {
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                self.seed.sink.borrow_mut().push(raw);
            }
        } else {
            while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                self.seed.sink.borrow_mut().push(&raw);
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.other())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.other())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.other())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.other())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.other())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.other())
    }
}

fn walk(loader: &mut Loader, name: &str, v: &Value, path: &str) -> Result<(), LoadError> {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("response") {
                return walk(loader, name, r, &format!("{path}/response"));
            }
            if let Some(Value::Object(ev)) = o.get("Event") {
                load_event(loader, name, ev, &format!("{path}/Event"));
                return Ok(());
            }
            if o.contains_key("info") && (o.contains_key("Attribute") || o.contains_key("Object")) {
                load_event(loader, name, o, path);
                return Ok(());
            }
            if let Some(Value::Array(attrs)) = o.get("Attribute") {
                load_attributes(loader, name, attrs, None, &format!("{path}/Attribute"));
                return Ok(());
            }
            if o.contains_key("type") && o.contains_key("value") {
                load_attributes(loader, name, std::slice::from_ref(v), None, path);
                return Ok(());
            }
            Err(LoadError::Format {
                path: name.to_string(),
                msg: format!(
                    "JSON at {} is neither a MISP attribute list nor an event",
                    if path.is_empty() { "/" } else { path }
                ),
            })
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}/{i}");
                match item {
                    Value::Object(o) if o.contains_key("Event") || o.contains_key("info") => {
                        walk(loader, name, item, &p)?
                    }
                    _ => load_attributes(loader, name, std::slice::from_ref(item), None, &p),
                }
            }
            Ok(())
        }
        _ => Err(LoadError::Format {
            path: name.to_string(),
            msg: "JSON document is not an object or a list".into(),
        }),
    }
}

fn load_event(loader: &mut Loader, name: &str, ev: &Map<String, Value>, path: &str) {
    let meta = Arc::new(event_meta(ev));
    if let Some(Value::Array(attrs)) = ev.get("Attribute") {
        load_attributes(loader, name, attrs, Some(&meta), &format!("{path}/Attribute"));
    }
    if let Some(Value::Array(objs)) = ev.get("Object") {
        for (i, obj) in objs.iter().enumerate() {
            if let Some(Value::Array(attrs)) = obj.get("Attribute") {
                load_attributes(
                    loader,
                    name,
                    attrs,
                    Some(&meta),
                    &format!("{path}/Object/{i}/Attribute"),
                );
            }
        }
    }
}

/// The event header of a MISP event object (id, uuid, info, tags).
pub fn event_meta(ev: &Map<String, Value>) -> EventMeta {
    EventMeta {
        id: ev.get("id").and_then(lenient_string),
        uuid: ev.get("uuid").and_then(lenient_string),
        info: ev.get("info").and_then(lenient_string),
        tags: tag_names(ev.get("Tag")),
    }
}

fn tag_names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(|t| match t {
                Value::Object(o) => o.get("name").and_then(lenient_string),
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn load_attributes(loader: &mut Loader, name: &str, attrs: &[Value], event: Option<&Arc<EventMeta>>, path: &str) {
    for (i, a) in attrs.iter().enumerate() {
        let p = if attrs.len() == 1 && !path.ends_with("Attribute") {
            path.to_string()
        } else {
            format!("{path}/{i}")
        };
        let location = format!("{name}#{p}");
        match a {
            Value::Object(o) => match attribute_from_json(o, event.cloned(), &location) {
                Ok(raw) => loader.add_attribute(raw),
                Err(msg) => loader.stats.warnings.push(format!("{location}: {msg}")),
            },
            _ => loader
                .stats
                .warnings
                .push(format!("{location}: attribute is not a JSON object")),
        }
    }
}

/// Reads one MISP attribute object, tolerating every typing quirk MISP emits (string or numeric ids, `0`/`1` or
/// boolean flags, absent `Tag`). `event` is the enclosing event, if the attribute came inside one; otherwise the
/// attribute's own `Event` sub-object (restSearch) is used.
pub fn attribute_from_json(
    o: &Map<String, Value>,
    event: Option<Arc<EventMeta>>,
    location: &str,
) -> Result<RawAttribute, String> {
    let misp_type = o.get("type").and_then(lenient_string).ok_or("attribute has no type")?;
    let value = o
        .get("value")
        .and_then(lenient_string)
        .ok_or_else(|| format!("{misp_type} attribute has no value"))?;
    let event = event.unwrap_or_else(|| {
        let mut meta = match o.get("Event") {
            Some(Value::Object(ev)) => event_meta(ev),
            _ => EventMeta::default(),
        };
        if meta.id.is_none() {
            meta.id = o.get("event_id").and_then(lenient_string);
        }
        if meta.uuid.is_none() {
            meta.uuid = o.get("event_uuid").and_then(lenient_string);
        }
        Arc::new(meta)
    });
    Ok(RawAttribute {
        to_ids: o.get("to_ids").and_then(lenient_bool).unwrap_or(true),
        deleted: o.get("deleted").and_then(lenient_bool).unwrap_or(false),
        event,
        uuid: o.get("uuid").and_then(lenient_string),
        category: o.get("category").and_then(lenient_string),
        tags: tag_names(o.get("Tag")),
        timestamp: o.get("timestamp").and_then(lenient_string).and_then(|t| t.parse().ok()),
        comment: o
            .get("comment")
            .and_then(lenient_string)
            .filter(|c| !c.trim().is_empty()),
        location: location.to_string().into(),
        misp_type: misp_type.into(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use crate::indicator::Policy;
    use crate::load::Loader;

    fn names(json: &str, policy: Policy) -> Vec<String> {
        let mut l = Loader::new(policy);
        l.load_bytes("t.json", json.as_bytes()).unwrap();
        l.finish().0.iter().map(|i| i.value.name()).collect()
    }

    /// Loads `json` and returns the loaded names and the warnings (with their locations).
    fn loaded(json: &str) -> (Vec<String>, Vec<String>) {
        let mut l = Loader::new(Policy::default());
        l.load_bytes("t.json", json.as_bytes()).unwrap();
        let warnings = l.stats.warnings.clone();
        (l.finish().0.iter().map(|i| i.value.name()).collect(), warnings)
    }

    #[test]
    fn a_mapped_restsearch_file_loads_as_its_bytes_do_across_batches_and_releases_what_it_parsed() {
        // More elements than one batch, with a bad one on each side of the first batch boundary.
        let elems: Vec<String> = (0..super::BATCH + 1000)
            .map(|i| match i {
                7 => "\"seven\"".to_string(),
                i if i == super::BATCH + 1 => "[1,2]".to_string(),
                i => format!(r#"{{"type":"domain","value":"d{i}.example","to_ids":true}}"#),
            })
            .collect();
        let doc = format!(r#"{{"response":{{"Attribute":[{}]}}}}"#, elems.join(",\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rs.json");
        std::fs::write(&path, &doc).unwrap();
        let mut mapped = Loader::new(Policy::default());
        mapped.load_path(&path).unwrap();
        let released = std::cell::RefCell::new(Vec::new());
        let mut sliced = Loader::new(Policy::default());
        super::load_slice(&mut sliced, &path.display().to_string(), doc.as_bytes(), &|n| {
            released.borrow_mut().push(n)
        })
        .unwrap();
        assert_eq!(mapped.stats.warnings, sliced.stats.warnings);
        let w = &mapped.stats.warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].ends_with("rs.json#/response/Attribute/7: attribute is not a JSON object"),
            "{w:?}"
        );
        let at = format!(
            "#/response/Attribute/{}: attribute is not a JSON object",
            super::BATCH + 1
        );
        assert!(w[1].ends_with(&at), "{w:?}");
        let (a, b) = (mapped.finish().0, sliced.finish().0);
        assert_eq!(a.len(), super::BATCH + 998);
        assert_eq!(
            a.iter().map(|i| i.value.name()).collect::<Vec<_>>(),
            b.iter().map(|i| i.value.name()).collect::<Vec<_>>()
        );
        let released = released.into_inner();
        assert_eq!(released.len(), 2, "one release per batch parsed");
        assert!(released[0] < released[1] && released[1] < doc.len());
    }

    /// Loads `doc` through [`super::load_slice`] (the split path first) and through serde's split alone: the
    /// names, the warnings and the error of each.
    fn both_paths(doc: &str) -> [(Vec<String>, Vec<String>, Option<String>); 2] {
        let split = {
            let mut l = Loader::new(Policy::default());
            let e = super::load_slice(&mut l, "t.json", doc.as_bytes(), &|_| {}).err();
            let w = l.stats.warnings.clone();
            (
                l.finish().0.iter().map(|i| i.value.name()).collect(),
                w,
                e.map(|e| e.to_string()),
            )
        };
        let serde = {
            let mut l = Loader::new(Policy::default());
            let de = serde_json::Deserializer::from_slice(doc.as_bytes());
            let e = super::stream(&mut l, "t.json", de, true, &|_| {}).err();
            let w = l.stats.warnings.clone();
            let e = e.map(|(e, _)| super::json_error("t.json", e).to_string());
            (l.finish().0.iter().map(|i| i.value.name()).collect(), w, e)
        };
        [split, serde]
    }

    #[test]
    fn the_split_path_loads_what_serde_does_and_gives_way_on_what_it_does_not_expect() {
        let many: Vec<String> = (0..super::BATCH + 3)
            .map(|i| format!(r#"{{"type":"domain","value":"d{i}.example","comment":"a \"}}\" {{","to_ids":true}}"#))
            .collect();
        let docs = [
            // Braces, quotes, escaped slashes and backslashes inside strings; an event and tags nested.
            format!(
                "{{\"response\": {{\"Attribute\": [ {} ]}}}}\n",
                [
                    r#"{"type":"url","value":"http:\/\/evil.com\/a{b}","to_ids":true,"Tag":[{"name":"x\\"}]}"#,
                    r#"{"type":"domain","value":"evil.org","Event":{"info":"}}\"{{","id":"1"},"to_ids":true}"#,
                    r#"{"type":"domain","value":"a\u002eexample.net","to_ids":true}"#,
                ]
                .join(" ,\r\n\t")
            ),
            format!(r#"{{"response":{{"Attribute":[{}]}}}}"#, many.join(",")),
            // A lone surrogate: the element is a warning on either path.
            r#"{"response":{"Attribute":[{"type":"domain","value":"\ud800x.com"},{"type":"domain","value":"ok.com"}]}}"#.into(),
            // Not well-formed inside an element, after a full batch: nothing loads, and serde names where.
            format!(r#"{{"response":{{"Attribute":[{},{{"type":"domain" "value":"x.com"}}]}}}}"#, many.join(",")),
            // A trailing comma, a missing comma, a cut document.
            r#"{"response":{"Attribute":[{"type":"domain","value":"a.com"},]}}"#.into(),
            r#"{"response":{"Attribute":[{"type":"domain","value":"a.com"} {"type":"domain","value":"b.com"}]}}"#.into(),
            r#"{"response":{"Attribute":[{"type":"domain","value":"a.com"}"#.into(),
        ];
        for doc in &docs {
            let [split, serde] = both_paths(doc);
            assert_eq!(split, serde, "{}", &doc[..doc.len().min(200)]);
        }
        assert_eq!(
            both_paths(&docs[0])[0].0,
            ["evil.com/a{b}", "evil.org", "a.example.net"]
        );
        assert_eq!(both_paths(&docs[1])[0].0.len(), super::BATCH + 3);
        assert_eq!(both_paths(&docs[2])[0].1.len(), 1);
        assert!(both_paths(&docs[3])[0]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("line 1")));
        // The split path ran: it releases exactly up to the end of each batch's last element.
        let released = std::cell::RefCell::new(Vec::new());
        let mut l = Loader::new(Policy::default());
        super::load_slice(&mut l, "t.json", docs[1].as_bytes(), &|n| released.borrow_mut().push(n)).unwrap();
        let head = r#"{"response":{"Attribute":["#.len();
        let batch_end = head + many[..super::BATCH].iter().map(|e| e.len() + 1).sum::<usize>() - 1;
        let list_end = docs[1].len() - "]}}".len();
        assert_eq!(released.into_inner(), [batch_end, list_end]);
    }

    /// Everything a load of `doc` leaves behind, with every indicator's provenance: through [`super::load_slice`]
    /// (restSearch, then event exports read into fields) and through the tree walk alone.
    fn read_and_walked(doc: &[u8]) -> [String; 2] {
        let outcome = |l: Loader| {
            let (set, stats) = l.finish();
            format!("{:?}\n{stats:?}", set.iter().collect::<Vec<_>>())
        };
        let mut read = Loader::new(Policy::default());
        let e = super::load_slice(&mut read, "t.json", doc, &|_| {}).err();
        let mut walked = Loader::new(Policy::default());
        let w = match serde_json::from_slice::<serde_json::Value>(doc) {
            Ok(v) => super::walk(&mut walked, "t.json", &v, "").err(),
            Err(e) => Some(super::json_error("t.json", e)),
        };
        [
            format!("{:?} {}", e.map(|e| e.to_string()), outcome(read)),
            format!("{:?} {}", w.map(|e| e.to_string()), outcome(walked)),
        ]
    }

    #[test]
    fn event_exports_read_into_fields_load_what_the_tree_walk_loads() {
        let mut docs: Vec<Vec<u8>> = Vec::new();
        for dir in ["fixtures/misp/events", "fixtures/misp/feed/infoblox"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for f in std::fs::read_dir(dir).unwrap() {
                let f = f.unwrap().path();
                if f.file_name().unwrap() != "manifest.json" {
                    docs.push(std::fs::read(f).unwrap());
                }
            }
        }
        assert_eq!(docs.len(), 9);
        let a = |v: &str| format!(r#"{{"type":"domain","value":"{v}","to_ids":true}}"#);
        let synthetic = [
            // Objects before attributes, a repeated Attribute key (the last counts), tags as objects and strings,
            // an attribute's own Event ignored inside an event, bad elements, objects without a list.
            format!(
                r#"{{"Event":{{"Object":[{{"Attribute":[{o1}]}},7,{{"name":"x"}},{{"Attribute":{{}}}},{{"Attribute":[{o2},"s"]}}],
                "id":12,"info":"i","Tag":[{{"name":"tlp:white"}},"plain",3],"Attribute":[{x}],
                "Attribute":[{a1},{{"type":"domain"}},[1],{own}],"uuid":"5f1e4c1a-0000-4000-8000-000000000001"}}}}"#,
                o1 = a("obj1.example"),
                o2 = a("obj2.example"),
                x = a("dropped.example"),
                a1 = a("a1.example"),
                own = r#"{"type":"domain","value":"own.example","Event":{"info":"other"},"event_id":"99"}"#,
            ),
            format!(
                r#"{{"response":[{{"Event":{{"info":"one","Attribute":[{}]}}}},{{"Event":{{"info":"two","Object":[{{"Attribute":[{},5]}}]}}}}]}}"#,
                a("r1.example"),
                a("r2.example")
            ),
            // Shapes left to the walk: both keys, an item that is no event, an Event that is no object, a bare event.
            format!(r#"{{"Event":{{"Attribute":[{}]}},"response":[]}}"#, a("both.example")),
            format!(
                r#"{{"response":[{{"Event":{{"Attribute":[{}]}}}},{}]}}"#,
                a("e.example"),
                a("loose.example")
            ),
            format!(r#"{{"Event":[1],"info":"bare","Attribute":[{}]}}"#, a("bare.example")),
            format!(r#"{{"Event":{{"Attribute":[{}]}},"Event":{{}}}}"#, a("twice.example")),
            r#"{"Event":{"Attribute":[{"type":"domain","value":"cut.example"}]"#.to_string(),
            r#"{"Event":{"Attribute":[]}} x"#.to_string(),
        ];
        // The real exports and the first two documents are read into fields; the rest are left to the walk.
        let read_into_fields = |d: &[u8]| serde_json::from_slice::<super::EventDoc>(d).is_ok();
        assert!(docs.iter().all(|d| read_into_fields(d)));
        let shapes: Vec<bool> = synthetic.iter().map(|d| read_into_fields(d.as_bytes())).collect();
        assert_eq!(shapes, [true, true, false, false, false, false, false, false]);
        docs.extend(synthetic.iter().map(|d| d.clone().into_bytes()));
        for doc in &docs {
            let [read, walked] = read_and_walked(doc);
            assert_eq!(read, walked, "{}", String::from_utf8_lossy(&doc[..doc.len().min(300)]));
        }
        // The first synthetic event: its attributes, then its objects', with the walk's locations.
        let [read, _] = read_and_walked(synthetic[0].as_bytes());
        for want in [
            "a1.example",
            "own.example",
            "obj1.example",
            "obj2.example",
            "t.json#/Event/Attribute/1: domain attribute has no value",
            "t.json#/Event/Attribute/2: attribute is not a JSON object",
            "t.json#/Event/Object/4/Attribute/1: attribute is not a JSON object",
        ] {
            assert!(read.contains(want), "{want} in {read}");
        }
        assert!(!read.contains("dropped.example") && !read.contains("other"), "{read}");
        let [read, _] = read_and_walked(synthetic[1].as_bytes());
        assert!(
            read.contains("t.json#/response/1/Event/Object/0/Attribute/1: attribute is not a JSON object"),
            "{read}"
        );
    }

    #[test]
    fn restsearch_is_streamed_with_the_same_locations_and_warnings_as_the_tree_walk() {
        let body = r#"[{"type":"domain","value":"evil.com"},7,{"type":"domain"},{"type":"ip-dst","value":"10.0.0.1"}]"#;
        let streamed = loaded(&format!(r#"{{"response":{{"Attribute":{body}}}}}"#));
        // An extra key is not the streamed shape: the same document is walked as a tree instead.
        let walked = loaded(&format!(r#"{{"response":{{"Attribute":{body},"x":1}}}}"#));
        assert_eq!(streamed, walked);
        assert_eq!(streamed.0, ["evil.com", "10.0.0.1"]);
        assert_eq!(
            streamed.1,
            [
                "t.json#/response/Attribute/1: attribute is not a JSON object",
                "t.json#/response/Attribute/2: domain attribute has no value"
            ]
        );
    }

    #[test]
    fn a_truncated_restsearch_loads_nothing_and_names_where_it_broke() {
        let mut l = Loader::new(Policy::default());
        let doc = "{\"response\":{\"Attribute\":[\n{\"type\":\"domain\",\"value\":\"evil.com\"},\n{\"type\":";
        let e = l.load_bytes("t.json", doc.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("t.json") && e.contains("line 3"), "{e}");
        assert!(l.finish().0.iter().next().is_none());
        let mut l = Loader::new(Policy::default());
        let e = l
            .load_bytes("t.json", b"{\"response\":{\"Attribute\":[]}} x")
            .unwrap_err();
        assert!(e.to_string().contains("t.json"), "{e}");
    }

    /// Loads `docs` as files, in order, into one loader: what is loaded, the warnings, and each load's error.
    fn from_files(docs: &[&str]) -> (Vec<String>, Vec<String>, Vec<Option<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Loader::new(Policy::default());
        let mut errors = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let p = dir.path().join(format!("{i}.json"));
            std::fs::write(&p, d).unwrap();
            errors.push(l.load_path(&p).err().map(|e| e.to_string()));
        }
        let warnings = l.stats.warnings.clone();
        (l.finish().0.iter().map(|i| i.value.name()).collect(), warnings, errors)
    }

    #[test]
    fn a_restsearch_file_is_streamed_from_disk_and_a_broken_one_loads_nothing_into_any_loader() {
        let good =
            r#"{"response":{"Attribute":[{"type":"domain","value":"evil.com"},{"type":"ip-dst","value":"10.0.0.1"}]}}"#;
        let truncated =
            "\u{feff}{\"response\":{\"Attribute\":[\n{\"type\":\"domain\",\"value\":\"b.com\"},\n{\"type\":";
        // Into an empty loader (undone by reset) and into one that holds a file already (held until parsed).
        let (names, _, errors) = from_files(&[truncated, good, truncated]);
        assert_eq!(names, ["evil.com", "10.0.0.1"]);
        for e in [&errors[0], &errors[2]] {
            let e = e.as_deref().unwrap();
            assert!(e.contains(".json") && e.contains("line 3"), "{e}");
        }
        assert!(errors[1].is_none());
        // Another shape is read again whole and walked: an event export, and a response with an extra key.
        let event = r#"{"Event":{"info":"x","Attribute":[{"type":"domain","value":"c.com"}]}}"#;
        let extra = r#"{"response":{"Attribute":[{"type":"domain","value":"d.com"},7],"x":1}}"#;
        let (names, warnings, errors) = from_files(&[extra, event]);
        assert_eq!(names, ["d.com", "c.com"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].ends_with("0.json#/response/Attribute/1: attribute is not a JSON object"),
            "{warnings:?}"
        );
        assert_eq!(errors, [None, None]);
    }

    #[test]
    fn every_restsearch_wrapping_loads() {
        let a = r#"{"type":"domain","value":"evil.com","to_ids":true}"#;
        for doc in [
            format!(r#"{{"response":{{"Attribute":[{a}]}}}}"#),
            format!(r#"{{"Attribute":[{a}]}}"#),
            format!("[{a}]"),
        ] {
            assert_eq!(names(&doc, Policy::default()), ["evil.com"], "{doc}");
        }
    }

    #[test]
    fn events_with_objects_and_lists_of_events_load() {
        let doc = r#"{"response":[{"Event":{"id":"1","uuid":"e1","info":"x","Tag":[{"name":"tlp:amber"}],
            "Attribute":[{"type":"ip-dst","value":"1.2.3.4","to_ids":"1","uuid":"a1"}],
            "Object":[{"Attribute":[{"type":"md5","value":"D41D8CD98F00B204E9800998ECF8427E","to_ids":1}]}]}},
            {"Event":{"info":"y","Attribute":[{"type":"url","value":"http://evil.com/x","to_ids":true}]}}]}"#;
        assert_eq!(
            names(doc, Policy::default()),
            ["1.2.3.4", "d41d8cd98f00b204e9800998ecf8427e", "evil.com/x"]
        );
    }

    #[test]
    fn to_ids_and_deleted_filter_unless_all() {
        let doc = r#"[{"type":"domain","value":"a.com","to_ids":"0"},
                      {"type":"domain","value":"b.com","to_ids":1,"deleted":"1"},
                      {"type":"domain","value":"c.com","to_ids":0,"deleted":false}]"#;
        assert!(names(doc, Policy::default()).is_empty());
        let all = Policy {
            include_all: true,
            ..Policy::default()
        };
        assert_eq!(names(doc, all), ["a.com", "b.com", "c.com"]);
    }

    #[test]
    fn numeric_ids_and_microsecond_first_seen_load() {
        let doc = r#"{"Attribute":[{"id":12,"event_id":3,"type":"domain","value":"q.com","to_ids":true,
            "timestamp":1456957949,"first_seen":"2019-06-13T15:56:56.000000+00:00","Event":{"id":3,"uuid":"u"}}]}"#;
        let mut l = Loader::new(Policy::default());
        l.load_bytes("t.json", doc.as_bytes()).unwrap();
        let (set, _) = l.finish();
        let ind = set.iter().next().unwrap();
        assert_eq!(ind.provenance.event().id.as_deref(), Some("3"));
        assert_eq!(ind.provenance.timestamp.map(|t| t.get()), Some(1456957949));
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let mut l = Loader::new(Policy::default());
        let e = l.load_bytes("bad.json", b"{\n\"Attribute\": [,]}").unwrap_err();
        assert!(e.to_string().starts_with("bad.json: invalid JSON at line 2"), "{e}");
    }
}
