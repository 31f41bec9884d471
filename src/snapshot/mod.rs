//! The immutable matcher snapshot: built once from a validated [`IndicatorSet`], then shared read-only by every
//! scanning thread (`Send + Sync`, no interior mutability), and replaced whole when the indicator set changes.
//!
//! A snapshot is one flat byte layout ([`layout`]), the same after a build (anonymous memory) and in a file written
//! by `iocmatch compile` (mapped with `mmap`): lookups read it in place, so opening a file decodes nothing and two
//! processes mapping one file share its pages. Structures, chosen by measurement (README, design section):
//! - host-keyed indicators (domains, hostnames, URL hosts, e-mail hosts): one open-addressing table of lower-cased
//!   keys behind a Bloom prefilter, probed once per label suffix of each host token ([`table`]);
//! - IP addresses, CIDRs and ranges: one open-addressing table per prefix length ([`ips`]);
//! - hashes: a table of lower-case hex ([`table`]).
//!
//! A serving [`Snapshot`] is a compiled base plus, after incremental refreshes, a small compiled overlay of added
//! and changed indicators and a mask of the base ids they replace or remove ([`Snapshot::with_overlay`]).

mod arena;
pub mod cell;
mod encode;
pub mod ids;
pub mod ips;
pub mod keys;
pub mod layout;
pub mod table;
mod view;

pub use cell::{ChangeReport, SnapshotCell};
pub use view::LayoutError;

use crate::indicator::{AttrMeta, EventMeta, Indicator, IndicatorSet, Kind, Provenance, Uuid, Value};
use ipnet::IpNet;
use layout::{IND_RANGE, IND_UUID};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use view::Tables;

/// A snapshot file that cannot be used, naming the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Layout { path: PathBuf, source: LayoutError },
}

/// One compiled indicator set in the flat layout: built in memory or mapped from a file.
pub struct Compiled {
    /// The bytes `t` points into; kept alive (and never written) for as long as `t` is used.
    map: memmap2::Mmap,
    /// Views into `map`. The `'static` is this struct's own lifetime: no view ever leaves `&self` longer.
    pub(crate) t: Tables<'static>,
    metas: Vec<Arc<AttrMeta>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("bytes", &self.map.len())
            .field("indicators", &self.t.inds.len())
            .field("path", &self.path)
            .finish()
    }
}

impl Compiled {
    /// Lays out `set` (ids are positions in insertion order). Linear in the set, which it consumes: the peak
    /// holds the sections and what is left of the set, not the whole set beside them.
    pub fn build(set: IndicatorSet, version: u64) -> Compiled {
        let started = Instant::now();
        let n = set.len() as u32;
        let sections = encode::sections(set);
        crate::memory::release_freed();
        let facts = encode::HeaderFacts {
            version,
            built_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            build_us: started.elapsed().as_micros() as u64,
            indicators: n,
        };
        let map = sections
            .assemble(&facts)
            .make_read_only()
            .expect("anonymous memory made read-only");
        Self::from_map(map, None, false).expect("a fresh build has a valid layout")
    }

    /// Maps a snapshot file and checks it (header, version, every section's bounds and checksum).
    pub fn open(path: &Path) -> Result<Compiled, SnapshotFileError> {
        let _span = tracing::info_span!("snapshot_open", path = %path.display()).entered();
        let io = |source| SnapshotFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is opened read-only and only ever replaced by rename (see `write`), never written in
        // place, so the mapped pages do not change under the views.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_map(map, Some(path.to_path_buf()), true).map_err(|source| SnapshotFileError::Layout {
            path: path.to_path_buf(),
            source,
        })
    }

    fn from_map(map: memmap2::Mmap, path: Option<PathBuf>, verify: bool) -> Result<Compiled, LayoutError> {
        let t = view::tables(&map, verify)?;
        // SAFETY: `t` borrows the mapping's memory, which lives at a fixed address until `map` is dropped with
        // this struct; `t` is only handed out re-borrowed from `&self`.
        let t: Tables<'static> = unsafe { std::mem::transmute::<Tables<'_>, Tables<'static>>(t) };
        let events: Vec<Arc<EventMeta>> = t
            .events
            .iter()
            .map(|e| {
                Arc::new(EventMeta {
                    id: t.str(e.id).map(str::to_string),
                    uuid: t.str(e.uuid).map(str::to_string),
                    info: t.str(e.info).map(str::to_string),
                    tags: t.list(e.tags).into_iter().map(str::to_string).collect(),
                })
            })
            .collect();
        let mut metas = Vec::with_capacity(t.metas.len());
        for (i, m) in t.metas.iter().enumerate() {
            let Some(event) = events.get(m.event as usize) else {
                return Err(LayoutError {
                    offset: 0,
                    what: format!("meta record {i} names event {} of {}", m.event, events.len()),
                });
            };
            metas.push(Arc::new(AttrMeta {
                event: event.clone(),
                category: t.str(m.category).map(Into::into),
                misp_type: t.str(m.misp_type).unwrap_or_default().into(),
                tags: t.list(m.tags).into_iter().map(Into::into).collect(),
                comment: t.str(m.comment).map(Into::into),
            }));
        }
        Ok(Compiled { map, t, metas, path })
    }

    /// Writes the layout to `path` atomically (temp file, fsync, rename): a reader maps the old file or the new.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::atomic_write::write_atomic(path, &self.map)
    }

    /// The file this was mapped from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Identifies the content (xxh3 over the section checksums).
    pub fn build_id(&self) -> u64 {
        self.t.header.build_id
    }

    pub fn version(&self) -> u64 {
        self.t.header.version
    }

    pub fn len(&self) -> usize {
        self.t.inds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.inds.is_empty()
    }

    /// Whether some hex digest indicator has `len` digits.
    #[inline(always)]
    pub(crate) fn has_hash_len(&self, len: usize) -> bool {
        len < 192 && self.t.info.hash_lens[len / 64] & (1 << (len % 64)) != 0
    }

    pub(crate) fn has_fuzzy(&self) -> bool {
        self.t.info.has_fuzzy != 0
    }

    /// Whether no host key ends in an all-digit label, so tokens that do cannot match a host.
    pub(crate) fn no_digit_tld(&self) -> bool {
        self.t.info.no_digit_tld != 0
    }

    /// The host keys' last-label bitmap (see [`layout::Info::last_labels`]).
    #[inline]
    pub(crate) fn last_labels(&self) -> &[u64; 64] {
        &self.t.info.last_labels
    }

    pub(crate) fn has_emails(&self) -> bool {
        self.t.info.has_emails != 0
    }

    /// An indicator's value text exactly as stored (a fuzzy hash keeps its case).
    pub(crate) fn value_bytes(&self, id: u32) -> &[u8] {
        let v = self.t.inds[id as usize].value;
        self.t.bytes(v.off, v.len).unwrap_or_default()
    }

    pub fn kind(&self, id: u32) -> Kind {
        Kind::ALL
            .get(self.t.inds[id as usize].kind as usize)
            .copied()
            .unwrap_or(Kind::Domain)
    }

    /// Decodes one indicator (value and provenance): done per hit, never per line.
    pub fn indicator(&self, id: u32) -> Indicator {
        let r = &self.t.inds[id as usize];
        let kind = self.kind(id);
        let text = String::from_utf8_lossy(self.value_bytes(id));
        let value = match kind {
            Kind::Domain => Value::Domain(text.into()),
            Kind::Hostname => Value::Hostname(text.into()),
            Kind::Email => Value::Email(text.into()),
            Kind::Url => {
                let h = (r.host_len as usize).min(text.len());
                Value::url(&text[..h], &text[h..])
            }
            Kind::Ipv4 | Kind::Ipv6 if r.flags & IND_RANGE != 0 => {
                let (a, b) = text.split_once('-').unwrap_or((&text, &text));
                let unspec = IpAddr::from([0u8; 4]);
                Value::Range(Box::new((a.parse().unwrap_or(unspec), b.parse().unwrap_or(unspec))))
            }
            Kind::Ipv4 | Kind::Ipv6 => Value::Net(
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .unwrap_or_else(|_| IpNet::from(IpAddr::from([0u8; 4]))),
            ),
            k => Value::Hash(k, text.into()),
        };
        Indicator {
            value,
            provenance: Provenance {
                meta: self.metas.get(r.meta as usize).cloned().unwrap_or_default(),
                attribute_uuid: self
                    .t
                    .bytes(r.uuid, 16)
                    .filter(|_| r.flags & IND_UUID != 0)
                    .and_then(|b| b.try_into().ok())
                    .map(Uuid),
                timestamp: std::num::NonZeroU32::new(r.timestamp),
                port: std::num::NonZeroU16::new(r.port),
            },
            merged: r.merged,
        }
    }

    /// The id of the indicator with exactly this value, if the layout holds it: how an incremental refresh finds
    /// the base entry an attribute's old version produced.
    pub fn find(&self, v: &Value) -> Option<u32> {
        let t = &self.t;
        let mut cands: Vec<u32> = Vec::new();
        let host_extras = |host: &str, kind: u32, out: &mut Vec<u32>| {
            // An IPv6 host's key is its octets, compared exactly; a host name's is text, compared ignoring case.
            let (table, key, exact): (&table::TableView, Vec<u8>, bool) =
                match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => match v6.parse::<std::net::Ipv6Addr>() {
                        Ok(a) => (&t.v6urls, a.octets().to_vec(), true),
                        Err(_) => return,
                    },
                    None => (&t.hosts, host.as_bytes().to_vec(), false),
                };
            let h = keys::hash_key(&key);
            let found = if exact {
                table.get_exact(h, &key)
            } else {
                table.get(h, &key)
            };
            if let Some((i, s)) = found {
                out.extend(table.extras(i, s).iter().filter(|x| x.kind == kind).map(|x| x.id));
            }
        };
        match v {
            Value::Domain(d) | Value::Hostname(d) => {
                if let Some((_, s)) = t.hosts.get(keys::hash_key(d.as_bytes()), d.as_bytes()) {
                    cands.extend([s.a, s.b]);
                }
            }
            Value::Url(u) => host_extras(&u.host, layout::EXTRA_URL, &mut cands),
            Value::Email(e) => {
                if let Some((_, host)) = e.rsplit_once('@') {
                    host_extras(host, layout::EXTRA_EMAIL, &mut cands);
                }
            }
            Value::Hash(_, h) => {
                let key = h.to_ascii_lowercase();
                if let Some((_, s)) = t.hashes.get(keys::hash_key(key.as_bytes()), key.as_bytes()) {
                    ids::for_each(t.ips.pool, s.a, |id| cands.push(id));
                }
            }
            Value::Net(n) => t.ips.exact(*n, |id| cands.push(id)),
            Value::Range(r) => {
                let first = match (r.0, r.1) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => ipnet::Ipv4Subnets::new(a, b, 0).next().map(IpNet::V4),
                    (IpAddr::V6(a), IpAddr::V6(b)) => ipnet::Ipv6Subnets::new(a, b, 0).next().map(IpNet::V6),
                    _ => None,
                };
                if let Some(n) = first {
                    t.ips.exact(n, |id| cands.push(id));
                }
            }
        }
        cands
            .into_iter()
            .filter(|&id| (id as usize) < self.len())
            .find(|&id| self.indicator(id).value == *v)
    }

    /// How many sources were merged into an indicator (more than one source: an overlay cannot replace it alone).
    pub fn merged(&self, id: u32) -> u32 {
        self.t.inds[id as usize].merged
    }

    /// Indicators per kind, as stored.
    fn counts(&self) -> BTreeMap<Kind, usize> {
        Kind::ALL
            .iter()
            .zip(self.t.info.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (*k, n as usize))
            .collect()
    }

    /// The host table as the scanner reads it: for benches comparing ways to view the layout.
    pub fn host_table(&self) -> table::TableView<'_> {
        self.t.hosts
    }

    /// Bytes of the layout.
    pub fn byte_len(&self) -> usize {
        self.map.len()
    }
}

/// What incremental refreshes changed since the base was compiled.
#[derive(Debug)]
pub struct Overlay {
    /// The added and changed indicators; their ids follow the base's.
    pub(crate) compiled: Compiled,
    /// One bit per base id: set when the base entry is removed or replaced by the overlay.
    pub(crate) masked: Vec<u64>,
    masked_n: usize,
}

impl Overlay {
    #[inline(always)]
    pub(crate) fn is_masked(&self, id: u32) -> bool {
        self.masked
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// The base ids this overlay hides.
    pub fn masked_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.masked.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }

    /// Overlay entries plus masked base entries: what decides when the base is recompiled.
    pub fn weight(&self) -> usize {
        self.compiled.len() + self.masked_n
    }
}

/// A compiled, immutable indicator set: a base and an optional overlay, taken by scorers as one value.
#[derive(Debug)]
pub struct Snapshot {
    version: u64,
    built_at: SystemTime,
    build_duration: Duration,
    counts: BTreeMap<Kind, usize>,
    pub(crate) base: Arc<Compiled>,
    pub(crate) overlay: Option<Overlay>,
}

impl Snapshot {
    /// Compiles a snapshot. Cost: linear in the number of indicators; the set is freed once laid out.
    pub fn build(set: IndicatorSet, version: u64) -> Snapshot {
        let started = Instant::now();
        let base = Compiled::build(set, version);
        Self::from_base(Arc::new(base), version, started.elapsed())
    }

    /// Serves a compiled base as it is.
    pub fn from_base(base: Arc<Compiled>, version: u64, build_duration: Duration) -> Snapshot {
        Snapshot {
            version,
            built_at: SystemTime::now(),
            build_duration,
            counts: base.counts(),
            base,
            overlay: None,
        }
    }

    /// Maps a snapshot file written by `compile` (or kept in a service's `state_dir`).
    pub fn open(path: &Path) -> Result<Snapshot, SnapshotFileError> {
        let started = Instant::now();
        let base = Compiled::open(path)?;
        let version = base.version();
        Ok(Self::from_base(Arc::new(base), version, started.elapsed()))
    }

    /// The base with `added` laid over it (ids after the base's) and the base ids in `masked` hidden: an
    /// incremental refresh without recompiling the base.
    pub fn with_overlay(base: Arc<Compiled>, added: IndicatorSet, masked: &[u32], version: u64) -> Snapshot {
        let started = Instant::now();
        let mut bits = vec![0u64; base.len().div_ceil(64)];
        let mut masked_n = 0;
        let mut counts = base.counts();
        for &id in masked {
            if (id as usize) < base.len() && bits[id as usize / 64] & (1 << (id % 64)) == 0 {
                bits[id as usize / 64] |= 1 << (id % 64);
                masked_n += 1;
                if let Some(n) = counts.get_mut(&base.kind(id)) {
                    *n -= 1;
                }
            }
        }
        for (k, n) in added.counts() {
            *counts.entry(k).or_default() += n;
        }
        counts.retain(|_, n| *n > 0);
        let compiled = Compiled::build(added, version);
        Snapshot {
            version,
            built_at: SystemTime::now(),
            build_duration: started.elapsed(),
            counts,
            base,
            overlay: Some(Overlay {
                compiled,
                masked: bits,
                masked_n,
            }),
        }
    }

    /// A snapshot that matches nothing: what a service serves before its first successful load.
    pub fn empty() -> Snapshot {
        Snapshot::build(IndicatorSet::new(), 0)
    }

    /// Monotonic version, carried into hits so a consumer knows which indicator set produced them.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn built_at(&self) -> SystemTime {
        self.built_at
    }

    pub fn build_duration(&self) -> Duration {
        self.build_duration
    }

    /// The compiled base (what a service keeps in its `state_dir`).
    pub fn base(&self) -> &Arc<Compiled> {
        &self.base
    }

    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    /// Indicators per kind.
    pub fn counts(&self) -> &BTreeMap<Kind, usize> {
        &self.counts
    }

    /// Indicators served.
    pub fn len(&self) -> usize {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live_base(&self, id: u32) -> bool {
        self.overlay.as_ref().is_none_or(|o| !o.is_masked(id))
    }

    /// The indicator a hit refers to, decoded from the layout.
    pub fn indicator(&self, id: u32) -> Indicator {
        let nb = self.base.len() as u32;
        match &self.overlay {
            Some(o) if id >= nb => o.compiled.indicator(id - nb),
            _ => self.base.indicator(id),
        }
    }

    /// The kind of a hit's indicator, without decoding it.
    pub fn kind(&self, id: u32) -> Kind {
        let nb = self.base.len() as u32;
        match &self.overlay {
            Some(o) if id >= nb => o.compiled.kind(id - nb),
            _ => self.base.kind(id),
        }
    }

    /// Every served indicator with its id, decoded one at a time (exports, `check`, change reports).
    pub fn indicators(&self) -> impl Iterator<Item = (u32, Indicator)> + '_ {
        let nb = self.base.len() as u32;
        let base = (0..nb)
            .filter(|&id| self.live_base(id))
            .map(|id| (id, self.base.indicator(id)));
        let over = self
            .overlay
            .iter()
            .flat_map(move |o| (0..o.compiled.len() as u32).map(move |i| (nb + i, o.compiled.indicator(i))));
        base.chain(over)
    }

    /// The live indicators among base ids `ids`, then the overlay's: what a change report compares when two
    /// snapshots share a base.
    pub(crate) fn partial(&self, ids: &[u32]) -> Vec<Indicator> {
        let mut v: Vec<Indicator> = ids
            .iter()
            .filter(|&&id| self.live_base(id))
            .map(|&id| self.base.indicator(id))
            .collect();
        if let Some(o) = &self.overlay {
            v.extend((0..o.compiled.len() as u32).map(|i| o.compiled.indicator(i)));
        }
        v
    }

    /// Bytes held by the layouts (base and overlay), for sizing reports.
    pub fn index_bytes(&self) -> usize {
        self.base.byte_len()
            + self
                .overlay
                .as_ref()
                .map_or(0, |o| o.compiled.byte_len() + o.masked.len() * 8)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn snapshot_is_send_and_sync() {
        assert_send_sync::<Snapshot>();
    }

    /// A snapshot of `(type, value)` attributes, as MISP JSON would give them: for tests across the crate.
    pub(crate) fn compiled(values: &[(&str, &str)]) -> Snapshot {
        let attrs: Vec<String> = values
            .iter()
            .map(|(t, v)| serde_json::json!({"type": t, "value": v, "to_ids": true}).to_string())
            .collect();
        let mut l = crate::load::Loader::new(crate::Policy::default());
        l.load_bytes("t.json", format!("[{}]", attrs.join(",")).as_bytes())
            .unwrap();
        Snapshot::build(l.finish().0, 1)
    }

    #[test]
    fn digit_label_skip_is_on_only_when_no_host_key_ends_in_digits() {
        let d = ("domain", "evil.com");
        assert!(compiled(&[d, ("hostname", "a.example.org"), ("ip-dst", "10.0.0.0/8")])
            .base
            .no_digit_tld());
        assert!(!compiled(&[d, ("url", "http://10.1.2.3/x")]).base.no_digit_tld());
    }
}
