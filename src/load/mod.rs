//! Loaders: MISP restSearch JSON, MISP event exports, MISP JSON feed directories, MISP CSV and plain lists.
//!
//! The format is sniffed from the content, not the file name. Parsing is pure over bytes ([`Loader::load_bytes`]);
//! only [`Loader::load_path`] touches the file system. Every attribute passes the same policy filter
//! (`to_ids`, `deleted`), normalisation and validation, and each rejection remembers where it came from.

mod feed;
mod json_attr;
mod json_flat;
mod misp_csv;
mod misp_json;
mod plain;
mod split;

pub(crate) use plain::typed;

use crate::indicator::{
    normalize_attribute, AttrMeta, AttributeOutcome, EventMeta, Indicator, IndicatorSet, Policy, Provenance,
    RejectReason, Rejected, Uuid, Value,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

pub use json_attr::restsearch_page;
pub use misp_json::{attribute_from_json, event_meta};

/// A whole source could not be read or parsed. Single bad attributes are not errors: they are rejections.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at line {line}, column {column}: {msg}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
}

impl LoadError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// One MISP attribute as read from any source, before policy and normalisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawAttribute {
    /// Borrowed for the types a loader names itself (a plain list's guessed `domain`): no allocation a line.
    pub misp_type: Cow<'static, str>,
    pub value: String,
    pub to_ids: bool,
    pub deleted: bool,
    pub event: Arc<EventMeta>,
    pub uuid: Option<String>,
    pub category: Option<String>,
    /// Attribute-level tags.
    pub tags: Vec<String>,
    /// MISP `timestamp`, Unix seconds.
    pub timestamp: Option<i64>,
    /// MISP `comment`, or the comment that follows a value in a plain list.
    pub comment: Option<String>,
    /// The file and position (line, or JSON path) it was read from, for rejections.
    pub location: Location,
}

/// Where an attribute was read. A list line or a restSearch element keeps its file's shared name and its number,
/// and the text is made only when a report names it: most of ten million attributes are never reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Location {
    #[default]
    Unknown,
    /// Any position spelled out already (a JSON path, a URL and line).
    Text(String),
    /// Item `2` of file `0`, `1` between them: `list.txt` `:` `7`, `rs.json` `#/response/Attribute/` `7`.
    At(Arc<str>, &'static str, usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Unknown => Ok(()),
            Location::Text(t) => f.write_str(t),
            Location::At(name, sep, n) => write!(f, "{name}{sep}{n}"),
        }
    }
}

impl From<String> for Location {
    fn from(s: String) -> Self {
        Location::Text(s)
    }
}

/// A rejected value and where it came from.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub misp_type: String,
    pub value: String,
    pub reason: RejectReason,
    pub detail: String,
    pub location: String,
}

/// Counts for one MISP type.
#[derive(Clone, Debug, Default)]
pub struct TypeStats {
    pub loaded: usize,
    pub duplicates: usize,
    pub rejected: BTreeMap<RejectReason, usize>,
}

/// What a load did: counts per MISP type, rejections with examples, unsupported types and skips.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    pub by_type: BTreeMap<String, TypeStats>,
    pub unsupported: BTreeMap<String, usize>,
    pub skipped_not_ids: usize,
    pub skipped_deleted: usize,
    /// The first few rejections for each (type, reason), for reports.
    pub examples: BTreeMap<(String, RejectReason), Vec<Rejection>>,
    /// Non-fatal problems with a part of a source (e.g. a feed event file that is missing).
    pub warnings: Vec<String>,
    /// Valid indicators dropped by a warninglist or the allowlist, per list name.
    pub filtered: BTreeMap<String, usize>,
    /// The first few dropped values per list, with where they came from.
    pub filtered_examples: BTreeMap<String, Vec<String>>,
    /// The names of the warninglists that were applied.
    pub warninglists: Vec<String>,
}

impl LoadStats {
    /// Rejections per reason over all types.
    pub fn rejected_by_reason(&self) -> BTreeMap<RejectReason, usize> {
        let mut m = BTreeMap::new();
        for t in self.by_type.values() {
            for (r, n) in &t.rejected {
                *m.entry(*r).or_default() += n;
            }
        }
        m
    }

    /// The counts of one MISP type, found without allocating its name once it is known (once per attribute on
    /// the load path).
    fn type_stats(&mut self, mtype: &str) -> &mut TypeStats {
        if !self.by_type.contains_key(mtype) {
            self.by_type.insert(mtype.to_string(), TypeStats::default());
        }
        self.by_type.get_mut(mtype).expect("inserted above")
    }

    pub fn total_rejected(&self) -> usize {
        self.rejected_by_reason().values().sum()
    }
}

const EXAMPLES_PER_REASON: usize = 3;

/// A check applied to every valid indicator before it is kept: MISP warninglists, an allowlist.
/// Returns the name of the list that drops the indicator.
pub trait Vet: Send + Sync {
    fn vet(&self, misp_type: &str, raw_value: &str, value: &crate::Value) -> Option<String>;
}

/// Why an attribute was passed over before normalisation.
#[derive(Debug, Clone, Copy)]
pub enum Skip {
    Deleted,
    NotIds,
}

/// One attribute examined by [`Loader::examine`]: its lower-cased MISP type, the hash its shared meta is interned
/// under, and per part the value or why it was rejected.
#[derive(Debug)]
pub enum Examined {
    Skipped(Skip),
    Unsupported(String),
    Parts {
        mtype: Cow<'static, str>,
        meta_hash: u64,
        parts: Vec<Result<Part, Rejected>>,
    },
}

/// A valid part of an examined attribute.
#[derive(Debug)]
pub struct Part {
    pub value: Value,
    /// The set's hash of `value`, worked out where the attribute was examined, not on the thread that inserts.
    pub hash: u64,
    /// The list that filters the value out, if one does.
    pub filtered: Option<String>,
}

/// A MISP type trimmed and lower-cased, borrowed when it is a loader's own name that is both already.
#[allow(clippy::ptr_arg)] // The `Cow` itself is the input: only a borrowed name can be handed on without a copy.
fn lower_type(t: &Cow<'static, str>) -> Cow<'static, str> {
    match t {
        Cow::Borrowed(b) => crate::indicator::lower_name(b),
        Cow::Owned(o) => Cow::Owned(crate::indicator::lower_name(o).into_owned()),
    }
}

/// The policy and vetters of a [`Loader`], apart from its set and counts, with how it hashes values and metas.
#[derive(Clone)]
pub struct Examiner {
    policy: Policy,
    vetters: Vec<Arc<dyn Vet>>,
    values: hashbrown::DefaultHashBuilder,
    metas: hashbrown::DefaultHashBuilder,
    /// Whether the loader keeps the attributes it accepts ([`Loader::keep_accepted`]), values and all.
    keeps_raw: bool,
}

impl Examiner {
    /// The pure half of [`Loader::add_attribute`]: policy, normalisation and vetting, with no effect on the
    /// loader, so big lists run it on every core and commit the results in input order.
    pub fn examine(&self, raw: &RawAttribute) -> Examined {
        let mtype = lower_type(&raw.misp_type);
        let skip = if raw.deleted && !self.policy.include_all {
            Some(Skip::Deleted)
        } else if !raw.to_ids && !self.policy.include_all {
            Some(Skip::NotIds)
        } else {
            None
        };
        if let Some(skip) = skip {
            return Examined::Skipped(skip);
        }
        match normalize_attribute(&mtype, &raw.value, &self.policy) {
            AttributeOutcome::Unsupported => Examined::Unsupported(mtype.into_owned()),
            AttributeOutcome::Parts(parts) => {
                let parts = parts
                    .into_iter()
                    .map(|p| {
                        p.map(|value| Part {
                            filtered: self.vetters.iter().find_map(|v| v.vet(&mtype, &raw.value, &value)),
                            hash: std::hash::BuildHasher::hash_one(&self.values, &value),
                            value,
                        })
                    })
                    .collect();
                Examined::Parts {
                    meta_hash: meta_hash(
                        &self.metas,
                        &raw.event,
                        raw.category.as_deref(),
                        &raw.misp_type,
                        raw.tags.iter().map(String::as_str),
                        raw.comment.as_deref(),
                    ),
                    mtype,
                    parts,
                }
            }
        }
    }
    /// Frees `raw`'s value on the thread that examined it when [`Loader::commit`] will not read it: every part
    /// valid and kept, no port to take from it, and the attribute itself not kept. Freed on the committing thread
    /// instead, each value was a cross-thread free, a tenth of a 10M list's load.
    pub fn release_unread(&self, raw: &mut RawAttribute, examined: &Examined) {
        let Examined::Parts { mtype, parts, .. } = examined else {
            return;
        };
        if !self.keeps_raw
            && !carries_port(mtype)
            && parts.iter().all(|p| p.as_ref().is_ok_and(|p| p.filtered.is_none()))
        {
            raw.value = String::new();
        }
    }
}

/// Whether a MISP type (`ip-dst|port`, `hostname|port`, any case) has a port after its value's `|`, which the
/// commit keeps in the provenance.
fn carries_port(misp_type: &str) -> bool {
    let t = misp_type.as_bytes();
    t.len() > 5 && t[t.len() - 5..].eq_ignore_ascii_case(b"|port")
}

/// Accumulates indicators from any number of sources into one deduplicated set.
#[derive(Default)]
pub struct Loader {
    policy: Policy,
    set: IndicatorSet,
    stats: LoadStats,
    /// Every meta so far, found by [`meta_hash`] without building one to look it up.
    metas: hashbrown::HashTable<Arc<AttrMeta>>,
    meta_hasher: hashbrown::DefaultHashBuilder,
    last_meta: Option<Arc<AttrMeta>>,
    vetters: Vec<Arc<dyn Vet>>,
    accepted: Option<Vec<RawAttribute>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("policy", &self.policy)
            .field("indicators", &self.set.len())
            .finish()
    }
}

/// The hash an attribute's shared meta is interned under, from its fields as the attribute or the meta holds them.
fn meta_hash<'a>(
    hasher: &hashbrown::DefaultHashBuilder,
    event: &EventMeta,
    category: Option<&str>,
    misp_type: &str,
    tags: impl ExactSizeIterator<Item = &'a str>,
    comment: Option<&str>,
) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = hasher.build_hasher();
    event.hash(&mut h);
    category.hash(&mut h);
    misp_type.hash(&mut h);
    h.write_usize(tags.len());
    for t in tags {
        t.hash(&mut h);
    }
    comment.hash(&mut h);
    h.finish()
}

/// Mapped JSON is released in whole 2 MiB steps (a huge page, and a multiple of every page size).
const RELEASE_ALIGN: usize = 2 << 20;

impl Loader {
    pub fn new(policy: Policy) -> Self {
        Loader {
            policy,
            ..Default::default()
        }
    }

    /// Adds a check every valid indicator must pass.
    pub fn with_vetter(mut self, v: Arc<dyn Vet>) -> Self {
        self.vetters.push(v);
        self
    }

    /// Keeps every attribute that yielded at least one indicator, so the caller can cache the validated set.
    pub fn keep_accepted(mut self) -> Self {
        self.accepted = Some(Vec::new());
        self
    }

    /// The attributes that yielded indicators (when [`Loader::keep_accepted`] was set).
    pub fn take_accepted(&mut self) -> Vec<RawAttribute> {
        self.accepted.take().unwrap_or_default()
    }

    /// Applies policy, normalisation and validation to one attribute and records the outcome.
    pub fn add_attribute(&mut self, raw: RawAttribute) {
        let examined = self.examine(&raw);
        self.commit(&mut { raw }, examined);
    }

    /// The pure half of [`Self::add_attribute`] (see [`Examiner`]).
    pub fn examine(&self, raw: &RawAttribute) -> Examined {
        self.examiner().examine(raw)
    }

    /// What examining needs, owned: a list loader examines its next batch on the other cores with it while this
    /// loader commits the previous one.
    pub fn examiner(&self) -> Examiner {
        Examiner {
            policy: self.policy.clone(),
            vetters: self.vetters.clone(),
            values: *self.set.hasher(),
            metas: self.meta_hasher,
            keeps_raw: self.accepted.is_some(),
        }
    }

    /// Commits attributes examined elsewhere ([`Examiner::examine`]), in order: the set, its merge order and the
    /// report are exactly those of adding them one by one.
    pub fn add_examined(&mut self, items: impl IntoIterator<Item = (RawAttribute, Examined)>) {
        for (raw, ex) in items {
            self.commit(&mut { raw }, ex);
        }
    }

    /// The sequential half of [`Self::add_attribute`]: counts, provenance and the set.
    /// `raw` is taken only when it is kept (see [`Self::keep_accepted`]); the caller frees the rest.
    fn commit(&mut self, raw: &mut RawAttribute, examined: Examined) {
        let (mtype, parts, meta_hash) = match examined {
            Examined::Skipped(Skip::Deleted) => {
                self.stats.skipped_deleted += 1;
                return;
            }
            Examined::Skipped(Skip::NotIds) => {
                self.stats.skipped_not_ids += 1;
                return;
            }
            Examined::Unsupported(mtype) => {
                *self.stats.unsupported.entry(mtype).or_default() += 1;
                return;
            }
            Examined::Parts {
                mtype,
                meta_hash,
                parts,
            } => (mtype, parts, meta_hash),
        };
        let provenance = self.provenance(raw, meta_hash);
        let mut any = false;
        for part in parts {
            match part {
                Ok(Part { value, hash, filtered }) => {
                    if let Some(list) = filtered {
                        *self.stats.filtered.entry(list.clone()).or_default() += 1;
                        let ex = self.stats.filtered_examples.entry(list).or_default();
                        if ex.len() < EXAMPLES_PER_REASON {
                            ex.push(format!("{value} ({mtype}) at {}", raw.location));
                        }
                        continue;
                    }
                    any = true;
                    let added = self.set.insert_hashed(
                        Indicator {
                            value,
                            provenance: provenance.clone(),
                            merged: 0,
                        },
                        hash,
                    );
                    let ts = self.stats.type_stats(&mtype);
                    if added {
                        ts.loaded += 1;
                    } else {
                        ts.duplicates += 1;
                    }
                }
                Err(e) => {
                    let ts = self.stats.type_stats(&mtype);
                    *ts.rejected.entry(e.reason).or_default() += 1;
                    let ex = self.stats.examples.entry((mtype.to_string(), e.reason)).or_default();
                    if ex.len() < EXAMPLES_PER_REASON {
                        ex.push(Rejection {
                            misp_type: mtype.to_string(),
                            value: raw.value.clone(),
                            reason: e.reason,
                            detail: e.detail,
                            location: raw.location.to_string(),
                        });
                    }
                }
            }
        }
        if any {
            if let Some(acc) = &mut self.accepted {
                acc.push(std::mem::take(raw));
            }
        }
    }

    /// The compact provenance of an attribute, sharing its event, category, type and tags with earlier ones.
    fn provenance(&mut self, raw: &RawAttribute, meta_hash: u64) -> Provenance {
        let meta = match &self.last_meta {
            // A list's lines and an event's attributes mostly repeat the previous meta: no lookup.
            Some(m) if m.same_as(raw) => m.clone(),
            _ => self.intern_meta(raw, meta_hash),
        };
        self.last_meta = Some(meta.clone());
        let port = carries_port(&raw.misp_type)
            .then(|| raw.value.rsplit_once('|'))
            .flatten()
            .and_then(|(_, p)| p.trim().parse().ok())
            .and_then(std::num::NonZeroU16::new);
        Provenance {
            meta,
            port,
            attribute_uuid: raw.uuid.as_deref().and_then(Uuid::parse),
            timestamp: raw
                .timestamp
                .and_then(|t| u32::try_from(t).ok())
                .and_then(std::num::NonZeroU32::new),
        }
    }

    /// The shared meta of an attribute's event, category, type, tags and comment (`hash` is their [`meta_hash`]),
    /// looked up field by field: a meta is built only the first time it is seen.
    fn intern_meta(&mut self, raw: &RawAttribute, hash: u64) -> Arc<AttrMeta> {
        if let Some(m) = self.metas.find(hash, |m| m.same_as(raw)) {
            return m.clone();
        }
        let m = Arc::new(AttrMeta {
            event: raw.event.clone(),
            category: raw.category.as_deref().map(Box::from),
            misp_type: (*raw.misp_type).into(),
            tags: raw.tags.iter().map(|t| Box::from(t.as_str())).collect(),
            comment: raw.comment.as_deref().map(Box::from),
        });
        let hasher = &self.meta_hasher;
        self.metas.insert_unique(hash, m.clone(), |m| {
            meta_hash(
                hasher,
                &m.event,
                m.category.as_deref(),
                &m.misp_type,
                m.tags.iter().map(|t| &**t),
                m.comment.as_deref(),
            )
        });
        m
    }

    /// Loads one source from its bytes; `name` is used in every location and error.
    pub fn load_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            None => Ok(()),
            Some(b'{') | Some(b'[') => misp_json::load(self, name, bytes),
            _ if misp_csv::looks_like_csv(bytes) => misp_csv::load(self, name, bytes),
            _ => plain::load(self, name, bytes),
        }
    }

    /// Loads a file (format sniffed) or a MISP feed directory (`manifest.json` plus `<uuid>.json`).
    pub fn load_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let _span = tracing::info_span!("load", path = %path.display()).entered();
        if path.is_dir() {
            return feed::load_dir(self, path);
        }
        use std::io::{BufRead, Read};
        let io = |e| LoadError::io(path, e);
        let name = path.display().to_string();
        let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(io)?);
        let head = r.fill_buf().map_err(io)?;
        let bom = if head.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let json = matches!(head[bom..].iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['));
        if json {
            if let Some(map) = crate::source::MappedFile::open(path).map_err(io)? {
                // Parsed from memory a batch of elements at a time; the pages already parsed are dropped from the
                // mapping as it goes, so a restSearch file of millions of attributes never becomes resident whole.
                let release = |done: usize| {
                    let upto = (bom + done) & !(RELEASE_ALIGN - 1);
                    if upto > 0 {
                        map.release(0..upto);
                    }
                };
                let loaded = misp_json::load_slice(self, &name, &map.bytes()[bom..], &release);
                // A file cut short under the map reads as zeros past its new end: say that, not what the parser
                // made of the zeros.
                if map.shrank() {
                    return Err(LoadError::Format {
                        path: name,
                        msg: "the file was cut short while it was loaded; load it again once it is whole".into(),
                    });
                }
                return loaded;
            }
            // Streamed: a restSearch file of millions of attributes is never held whole.
            r.consume(bom);
            let reread = || std::fs::read(path).map_err(io);
            return misp_json::load_reader(self, &name, r, reread);
        }
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).map_err(io)?;
        let bytes = maybe_gunzip(path, bytes)?;
        self.load_bytes(&name, &bytes)
    }

    /// Room for `n` more indicators (see [`IndicatorSet::reserve`]).
    pub fn reserve(&mut self, n: usize) {
        self.set.reserve(n);
    }

    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The deduplicated indicators and the load report.
    pub fn finish(self) -> (IndicatorSet, LoadStats) {
        (self.set, self.stats)
    }
}

fn maybe_gunzip(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, LoadError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut out)
        .map_err(|e| LoadError::io(path, e))?;
    Ok(out)
}

/// Loads every path into one set: the common entry point of `scan`, `check` and `export`.
pub fn load_paths(paths: &[PathBuf], policy: Policy) -> Result<(IndicatorSet, LoadStats), LoadError> {
    let mut loader = Loader::new(policy);
    for p in paths {
        loader.load_path(p)?;
    }
    crate::memory::release_freed();
    Ok(loader.finish())
}

/// Lenient boolean: `true`/`false`, `0`/`1`, `"0"`/`"1"`, `"true"`/`"false"` (MISP emits all of them).
pub(crate) fn lenient_bool(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => n.as_i64().map(|i| i != 0),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Lenient string: ids and timestamps arrive as strings or numbers.
pub(crate) fn lenient_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_bool_accepts_every_misp_spelling() {
        use serde_json::json;
        for t in [json!(true), json!(1), json!("1"), json!("true")] {
            assert_eq!(lenient_bool(&t), Some(true), "{t}");
        }
        for f in [json!(false), json!(0), json!("0"), json!("false")] {
            assert_eq!(lenient_bool(&f), Some(false), "{f}");
        }
        assert_eq!(lenient_bool(&json!(null)), None);
    }

    #[test]
    fn format_is_sniffed_from_content() {
        let mut l = Loader::new(Policy::default());
        l.load_bytes("a.json", br#"[{"type":"domain","value":"evil.com","to_ids":"1"}]"#)
            .unwrap();
        l.load_bytes("b.csv", b"uuid,event_id,category,type,value,comment,to_ids,date\nu1,1,Network activity,ip-dst,1.2.3.4,,1,1418217066\n")
            .unwrap();
        l.load_bytes("c.txt", b"# comment\nbad.example.org\n\n5.6.7.8\n")
            .unwrap();
        let (set, _) = l.finish();
        let names: Vec<String> = set.iter().map(|i| i.value.name()).collect();
        assert_eq!(names, ["evil.com", "1.2.3.4", "bad.example.org", "5.6.7.8"]);
    }
}
