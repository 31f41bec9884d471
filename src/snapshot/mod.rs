//! The immutable matcher snapshot: built once from a validated [`IndicatorSet`], then shared read-only by every
//! scanning thread (`Send + Sync`, no interior mutability), and replaced whole when the indicator set changes.
//!
//! Structures, chosen by measurement (see the README's design section and `benches/structures.rs`):
//! - host-keyed indicators (domains, hostnames, URL hosts, e-mail hosts): one hash table of lower-cased keys with a
//!   Bloom prefilter, probed once per label suffix of each host token ([`hosts`]);
//! - IP addresses, CIDRs and ranges: one hash map per prefix length ([`ips`]);
//! - hashes: a hash table of lower-case hex ([`keys`]).

pub mod cell;
pub mod hosts;
pub mod ids;
pub mod ips;
pub mod keys;

pub use cell::{ChangeReport, SnapshotCell};

use crate::indicator::{Indicator, IndicatorSet, Kind, Value};
use hashbrown::HashMap;
use hosts::HostTable;
use ips::IpTable;
use keys::KeyTable;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime};

/// A compiled, immutable indicator set.
#[derive(Debug)]
pub struct Snapshot {
    version: u64,
    built_at: SystemTime,
    build_duration: Duration,
    indicators: Vec<Indicator>,
    counts: BTreeMap<Kind, usize>,
    pub(crate) hosts: HostTable,
    pub(crate) hashes: KeyTable<u32>,
    /// The other indicators whose digest has the same lower-case text as the one in `hashes` (an md5 also entered
    /// as an imphash, or fuzzy hashes that differ only in case): rare, so a side map.
    pub(crate) hash_extra: HashMap<u32, Vec<u32>>,
    /// Bit `n` is set when some hex digest has `n` digits: the scanner probes only runs of those lengths.
    hash_lens: [u64; 3],
    pub(crate) has_fuzzy: bool,
    /// URLs whose host is an IPv6 literal, by address, so any textual form of the address matches.
    pub(crate) v6_urls: HashMap<Ipv6Addr, hosts::UrlRests>,
    pub(crate) ips: IpTable,
    pub(crate) has_emails: bool,
}

impl Snapshot {
    /// Compiles a snapshot. Cost: linear in the number of indicators (about 0.3 s per million on 2 cores here);
    /// memory: the indicators plus roughly 40 bytes of index per host key.
    pub fn build(set: IndicatorSet, version: u64) -> Snapshot {
        let started = Instant::now();
        let counts = set.counts();
        let mut indicators = set.into_vec();
        indicators.shrink_to_fit();
        let host_keys = indicators
            .iter()
            .filter(|i| !matches!(i.value, Value::Net(_) | Value::Range(..) | Value::Hash(..)))
            .count();
        let mut hosts = HostTable::with_capacity(host_keys);
        let mut hashes = KeyTable::with_capacity(indicators.len() - host_keys);
        let mut ips = IpTable::default();
        let mut has_emails = false;
        let mut hash_extra: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut hash_lens = [0u64; 3];
        let mut has_fuzzy = false;
        let mut v6_urls: HashMap<Ipv6Addr, hosts::UrlRests> = HashMap::new();
        for (id, ind) in indicators.iter().enumerate() {
            let id = id as u32;
            match &ind.value {
                Value::Domain(d) => hosts.add_domain(d, id),
                Value::Hostname(h) => hosts.add_hostname(h, id),
                Value::Url(u) => match u.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => v6_urls
                        .entry(v6.parse().expect("validated IPv6 URL host"))
                        .or_default()
                        .push((u.rest.as_bytes().into(), id)),
                    None => hosts.add_url(&u.host, &u.rest, id),
                },
                Value::Email(e) => {
                    let (local, host) = e.rsplit_once('@').expect("validated e-mail");
                    hosts.add_email(local, host, id);
                    has_emails = true;
                }
                Value::Hash(kind, h) => {
                    if *kind == Kind::Fuzzy {
                        has_fuzzy = true;
                    } else if h.len() < 192 {
                        hash_lens[h.len() / 64] |= 1 << (h.len() % 64);
                    }
                    // Hex digests are stored lower-case already; only a fuzzy hash keeps its case in the value.
                    let key: std::borrow::Cow<'_, str> = if *kind == Kind::Fuzzy {
                        h.to_ascii_lowercase().into()
                    } else {
                        (&**h).into()
                    };
                    let first = *hashes.entry_or_insert_with(key.as_bytes(), || id);
                    if first != id {
                        hash_extra.entry(first).or_default().push(id);
                    }
                }
                Value::Net(n) => ips.add_net(*n, id),
                Value::Range(r) => ips.add_range(r.0, r.1, id),
            }
        }
        hosts.seal();
        hashes.seal();
        ips.seal();
        Snapshot {
            version,
            built_at: SystemTime::now(),
            build_duration: started.elapsed(),
            indicators,
            counts,
            hosts,
            hashes,
            hash_extra,
            hash_lens,
            has_fuzzy,
            v6_urls,
            ips,
            has_emails,
        }
    }

    /// Whether some hex digest indicator has `len` digits.
    #[inline(always)]
    pub(crate) fn has_hash_len(&self, len: usize) -> bool {
        len < 192 && self.hash_lens[len / 64] & (1 << (len % 64)) != 0
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

    /// Indicators per kind.
    pub fn counts(&self) -> &BTreeMap<Kind, usize> {
        &self.counts
    }

    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The indicator a hit refers to.
    pub fn indicator(&self, id: u32) -> &Indicator {
        &self.indicators[id as usize]
    }

    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    /// Bytes held by the matching structures (not the indicators' provenance), for sizing reports.
    pub fn index_bytes(&self) -> usize {
        self.hosts.heap_bytes() + self.hashes.heap_bytes() + self.ips.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn snapshot_is_send_and_sync() {
        assert_send_sync::<Snapshot>();
    }
}
