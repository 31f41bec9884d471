//! The indicator model: what an IOC is once it has been refanged, normalised and validated.
//!
//! Everything here is pure. Loaders turn bytes into [`RawAttribute`]s; [`normalize`] turns one attribute into
//! zero or more [`Value`]s (or rejects it with a reason); [`IndicatorSet`] merges duplicates so the snapshot
//! sees each value once.

mod normalize;
mod refang;

pub use normalize::{classify_plain, known_type, normalize_attribute, AttributeOutcome, RejectReason, Rejected};
pub(crate) use normalize::{is_email_local_byte, is_fuzzy_byte, is_host_byte, lower_name, TLSH_HEX};
pub use refang::refang;

use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

/// The kind of an indicator, as counted in reports and metrics.
///
/// IP networks and ranges count under their address family, since they are matched by the same structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Domain,
    Hostname,
    Ipv4,
    Ipv6,
    Url,
    Email,
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    /// Any other hex digest a log can carry: imphash, JA3, HASSH, JARM, x509 fingerprints, SHA-3, SHA-512/t,
    /// authentihash, TLSH. Not a file hash, so the file-hash exports leave it out.
    Digest,
    /// A context-triggered piecewise hash (`ssdeep`, `impfuzzy`): `blocksize:hash:hash`, compared exactly.
    Fuzzy,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 14] = [
        Kind::Domain,
        Kind::Hostname,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Url,
        Kind::Email,
        Kind::Md5,
        Kind::Sha1,
        Kind::Sha224,
        Kind::Sha256,
        Kind::Sha384,
        Kind::Sha512,
        Kind::Digest,
        Kind::Fuzzy,
    ];

    /// The short name used in reports, metrics labels and `--types` filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Hostname => "hostname",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Url => "url",
            Kind::Email => "email",
            Kind::Md5 => "md5",
            Kind::Sha1 => "sha1",
            Kind::Sha224 => "sha224",
            Kind::Sha256 => "sha256",
            Kind::Sha384 => "sha384",
            Kind::Sha512 => "sha512",
            Kind::Digest => "digest",
            Kind::Fuzzy => "fuzzy",
        }
    }

    /// The ECS `threat.indicator.type` value (a STIX 2 cyber-observable name).
    pub fn ecs_type(self) -> &'static str {
        match self {
            Kind::Domain | Kind::Hostname => "domain-name",
            Kind::Ipv4 => "ipv4-addr",
            Kind::Ipv6 => "ipv6-addr",
            Kind::Url => "url",
            Kind::Email => "email-addr",
            _ => "file",
        }
    }

    /// The file-hash kind whose hex digest has `len` characters, if any: how a bare value in a plain list is typed.
    pub fn hash_for_len(len: usize) -> Option<Kind> {
        Some(match len {
            32 => Kind::Md5,
            40 => Kind::Sha1,
            56 => Kind::Sha224,
            64 => Kind::Sha256,
            96 => Kind::Sha384,
            128 => Kind::Sha512,
            _ => return None,
        })
    }

    /// The hex length of a hash kind; `None` for other kinds.
    pub fn hash_len(self) -> Option<usize> {
        Some(match self {
            Kind::Md5 => 32,
            Kind::Sha1 => 40,
            Kind::Sha224 => 56,
            Kind::Sha256 => 64,
            Kind::Sha384 => 96,
            Kind::Sha512 => 128,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised indicator value: the form that is matched and deduplicated.
///
/// Strings are already lower-cased where the matching rule is case-insensitive, so equality here is
/// equality under the matching rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// Matches a host token equal to it or ending with `.` plus it.
    Domain(Box<str>),
    /// Matches only a host token equal to it.
    Hostname(Box<str>),
    /// A single address or a network (host bits cleared; `/32` and `/128` are single addresses).
    Net(IpNet),
    /// An inclusive address range that is not one CIDR network.
    Range(Box<(IpAddr, IpAddr)>),
    /// A URL without its scheme: the lower-cased host and the rest (port, path, query) exactly as given.
    Url(Box<UrlParts>),
    /// A whole e-mail address, lower-cased.
    Email(Box<str>),
    /// A digest: lower-case hex for the file hashes and [`Kind::Digest`], as given for [`Kind::Fuzzy`].
    Hash(Kind, Box<str>),
}

/// A URL indicator's parts: boxed so the common [`Value`] stays small.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UrlParts {
    /// Lower-cased host.
    pub host: String,
    /// Port, path and query exactly as given (may be empty).
    pub rest: String,
}

impl Value {
    /// A URL value.
    pub fn url(host: impl Into<String>, rest: impl Into<String>) -> Value {
        Value::Url(Box::new(UrlParts {
            host: host.into(),
            rest: rest.into(),
        }))
    }

    /// The kind this value is counted and reported as.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Domain(_) => Kind::Domain,
            Value::Hostname(_) => Kind::Hostname,
            Value::Net(IpNet::V4(_)) => Kind::Ipv4,
            Value::Net(IpNet::V6(_)) => Kind::Ipv6,
            Value::Range(r) if r.0.is_ipv4() => Kind::Ipv4,
            Value::Range(_) => Kind::Ipv6,
            Value::Url(_) => Kind::Url,
            Value::Email(_) => Kind::Email,
            Value::Hash(k, _) => *k,
        }
    }

    /// The indicator as normalised at load: what ECS `threat.indicator.name` and exports show.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Domain(s) | Value::Hostname(s) | Value::Email(s) | Value::Hash(_, s) => f.write_str(s),
            Value::Net(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
            Value::Net(net) => write!(f, "{net}"),
            Value::Range(r) => write!(f, "{}-{}", r.0, r.1),
            Value::Url(u) => write!(f, "{}{}", u.host, u.rest),
        }
    }
}

/// The MISP event an attribute belongs to; shared by all of its indicators to keep memory per indicator low.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventMeta {
    pub id: Option<String>,
    pub uuid: Option<String>,
    pub info: Option<String>,
    pub tags: Vec<String>,
}

/// What many attributes share: their event, category, MISP type and tags. Interned by the loader, so a million
/// indicators from a few events cost one pointer each here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttrMeta {
    pub event: Arc<EventMeta>,
    pub category: Option<Box<str>>,
    pub misp_type: Box<str>,
    /// Attribute-level tags (event tags live in `event.tags`).
    pub tags: Box<[Box<str>]>,
    /// The attribute's MISP `comment`, or the comment after a value in a plain list: what the publisher said about
    /// the indicator, shown to the analyst with each hit.
    pub comment: Option<Box<str>>,
}

impl AttrMeta {
    /// Whether `raw` has exactly this meta, compared field by field without building a key (the event by pointer
    /// first, as `Arc` compares).
    pub(crate) fn same_as(&self, raw: &crate::load::RawAttribute) -> bool {
        self.event == raw.event
            && self.category.as_deref() == raw.category.as_deref()
            && *self.misp_type == *raw.misp_type
            && self.tags.len() == raw.tags.len()
            && self.tags.iter().zip(&raw.tags).all(|(a, b)| **a == **b)
            && self.comment.as_deref() == raw.comment.as_deref()
    }
}

impl std::hash::Hash for EventMeta {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
        self.id.hash(state);
    }
}

/// A MISP attribute uuid in 16 bytes instead of a 36-byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the canonical `8-4-4-4-12` hex form (any case).
    pub fn parse(s: &str) -> Option<Uuid> {
        let s = s.trim();
        if s.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nibbles = s.bytes().filter(|b| *b != b'-');
        for byte in &mut out {
            let hi = (nibbles.next()? as char).to_digit(16)?;
            let lo = (nibbles.next()? as char).to_digit(16)?;
            *byte = (hi * 16 + lo) as u8;
        }
        Some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Where an indicator came from, carried into every hit so an analyst can go back to MISP.
///
/// Compact on purpose (about 40 bytes): the shared part is interned in [`AttrMeta`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    pub meta: Arc<AttrMeta>,
    pub attribute_uuid: Option<Uuid>,
    /// MISP `timestamp` of the attribute, in Unix seconds, when known.
    pub timestamp: Option<std::num::NonZeroU32>,
    /// The port of an `ip-dst|port` or `hostname|port` attribute (or a `host:port` list line): context for the
    /// analyst, not part of the match.
    pub port: Option<std::num::NonZeroU16>,
}

impl Provenance {
    pub fn event(&self) -> &EventMeta {
        &self.meta.event
    }

    pub fn category(&self) -> Option<&str> {
        self.meta.category.as_deref()
    }

    pub fn misp_type(&self) -> &str {
        &self.meta.misp_type
    }

    pub fn comment(&self) -> Option<&str> {
        self.meta.comment.as_deref()
    }

    /// Event tags then attribute tags, without repeats: the tags a hit carries.
    pub fn all_tags(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(self.meta.event.tags.len() + self.meta.tags.len());
        for t in self
            .meta
            .event
            .tags
            .iter()
            .map(String::as_str)
            .chain(self.meta.tags.iter().map(|t| &**t))
        {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

/// One validated indicator with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator {
    pub value: Value,
    pub provenance: Provenance,
    /// How many other sources gave the same value and were merged into this one.
    pub merged: u32,
}

/// Load-time policy: which attributes to keep and how broad a network may be.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Load attributes without `to_ids` and soft-deleted ones too.
    pub include_all: bool,
    /// Shortest IPv4 prefix accepted; anything broader is rejected as over-broad.
    pub min_v4_prefix: u8,
    /// Shortest IPv6 prefix accepted.
    pub min_v6_prefix: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            include_all: false,
            min_v4_prefix: 8,
            min_v6_prefix: 24,
        }
    }
}

/// Indicators a chunk of an [`IndicatorSet`] holds: 4 MiB of records, so a build frees the set a chunk at a time
/// while its tables grow, instead of holding one vector of every indicator until the last is laid out.
const CHUNK: usize = 1 << 16;

/// A deduplicated set of indicators: the input to a snapshot build.
///
/// The first source of a value wins its provenance; later ones only add their tags and bump `merged`.
#[derive(Debug, Default, Clone)]
pub struct IndicatorSet {
    /// In insertion order, [`CHUNK`] to a vector (the first grows by doubling, so a small set stays small).
    chunks: Vec<Vec<Indicator>>,
    len: usize,
    /// Positions in insertion order, found by the value's hash: the values are not stored twice.
    index: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    duplicates: BTreeMap<Kind, usize>,
}

/// The indicator at position `i` of `chunks`.
fn at(chunks: &[Vec<Indicator>], i: u32) -> &Indicator {
    &chunks[i as usize / CHUNK][i as usize % CHUNK]
}

impl IndicatorSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an indicator, merging it into an earlier one with the same value. Returns false for a duplicate.
    pub fn insert(&mut self, ind: Indicator) -> bool {
        let h = self.value_hash(&ind.value);
        self.insert_hashed(ind, h)
    }

    /// The hash [`Self::insert_hashed`] takes for `value`.
    pub fn value_hash(&self, value: &Value) -> u64 {
        self.hasher.hash_one(value)
    }

    /// How this set hashes values: a loader works hashes out on every core while one thread inserts.
    pub fn hasher(&self) -> &hashbrown::DefaultHashBuilder {
        &self.hasher
    }

    /// A set with no indicators that hashes values as this one does, so hashes worked out for this one still hold.
    pub fn emptied(&self) -> Self {
        IndicatorSet {
            hasher: self.hasher,
            ..Default::default()
        }
    }

    /// [`Self::insert`] with the value's hash from [`Self::value_hash`] (of this set, or of one it was emptied
    /// from).
    pub fn insert_hashed(&mut self, ind: Indicator, h: u64) -> bool {
        debug_assert_eq!(h, self.value_hash(&ind.value), "a hash from another set");
        let chunks = &self.chunks;
        if let Some(&i) = self.index.find(h, |&i| at(chunks, i).value == ind.value) {
            let kept = &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK];
            kept.merged += 1;
            let have = kept.provenance.all_tags();
            let new: Vec<Box<str>> = ind
                .provenance
                .all_tags()
                .into_iter()
                .filter(|t| !have.contains(t))
                .map(Box::from)
                .collect();
            if !new.is_empty() {
                let meta = Arc::make_mut(&mut kept.provenance.meta);
                meta.tags = meta.tags.iter().cloned().chain(new).collect();
            }
            *self.duplicates.entry(ind.value.kind()).or_default() += 1;
            return false;
        }
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index
            .insert_unique(h, self.len as u32, |&i| hasher.hash_one(&at(chunks, i).value));
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(ind),
            _ => {
                let mut c = Vec::with_capacity(if self.len == 0 { 0 } else { CHUNK });
                c.push(ind);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        true
    }

    /// Room for `n` more indicators in the index: a loader that knows its line count sizes it once, instead of
    /// growing it by doubling (each growth re-hashes every value, a cache miss apiece at millions).
    pub fn reserve(&mut self, n: usize) {
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.reserve(n, |&i| hasher.hash_one(&at(chunks, i).value));
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Indicator> {
        self.chunks.iter().flatten()
    }

    /// Duplicates merged per kind.
    pub fn duplicates(&self) -> &BTreeMap<Kind, usize> {
        &self.duplicates
    }

    /// Loaded indicators per kind.
    pub fn counts(&self) -> BTreeMap<Kind, usize> {
        let mut m = BTreeMap::new();
        for i in self.iter() {
            *m.entry(i.value.kind()).or_default() += 1;
        }
        m
    }

    /// The indicators in insertion order, each chunk freed once passed: what a build consumes.
    pub fn into_ordered(self) -> impl Iterator<Item = Indicator> {
        self.chunks.into_iter().flatten()
    }
}

impl FromIterator<Indicator> for IndicatorSet {
    fn from_iter<T: IntoIterator<Item = Indicator>>(iter: T) -> Self {
        let mut s = IndicatorSet::new();
        for i in iter {
            s.insert(i);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_stay_small() {
        // Memory per indicator is a sizing goal; this keeps the struct from growing by accident.
        assert!(std::mem::size_of::<Value>() <= 24, "{}", std::mem::size_of::<Value>());
        assert!(
            std::mem::size_of::<Indicator>() <= 64,
            "{}",
            std::mem::size_of::<Indicator>()
        );
    }

    #[test]
    fn uuids_round_trip() {
        let s = "5f1c2a9e-7b1d-4c33-9a51-3c2b6f0e4242";
        assert_eq!(Uuid::parse(s).unwrap().to_string(), s);
        assert_eq!(Uuid::parse(&s.to_uppercase()).unwrap().to_string(), s);
        assert!(Uuid::parse("not-a-uuid").is_none());
    }
}
