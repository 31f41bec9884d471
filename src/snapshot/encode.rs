//! Building the snapshot's bytes from a validated indicator set: every table laid out, then the sections written
//! once into a page-aligned buffer, which is what a process scans from and what `compile` writes to disk.

use super::arena::{Arena, MAX_KEY};
use super::ids::{IdLists, NONE};
use super::ips::IpBuilder;
use super::keys::ends_in_digit_label;
use super::layout::*;
use super::table::TableBuilder;
use crate::indicator::{AttrMeta, EventMeta, Indicator, IndicatorSet, Kind, Value};
use bytemuck::Pod;
use hashbrown::HashMap;
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv6Addr;
use std::sync::Arc;

/// The sections of a build, in [`Section`] order, each still in its typed vector: assembly copies each once into
/// the snapshot and frees it, so the build never holds a byte copy of every table beside the tables.
pub struct Sections {
    parts: Vec<(Section, Part)>,
}

/// One section's records.
type Part = Box<dyn AsBytes + Send + Sync>;

trait AsBytes {
    fn as_bytes(&self) -> &[u8];
}

impl<T: Pod> AsBytes for Vec<T> {
    fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }
}

fn part<T: Pod + Send + Sync>(v: Vec<T>) -> Part {
    Box::new(v)
}

/// Interns metas and events, writing their records. It holds its own `Arc`s, so the indicators can be freed one by
/// one while the build goes on.
#[derive(Default)]
struct Provenance {
    /// The loader interns metas, so most indicators share an `Arc`: looked up by pointer first, by content after.
    last: Option<(Arc<AttrMeta>, u32)>,
    metas: HashMap<Arc<AttrMeta>, u32>,
    events: HashMap<Arc<EventMeta>, u32>,
    meta_recs: Vec<MetaRec>,
    event_recs: Vec<EventRec>,
    lists: Vec<StrRef>,
}

impl Provenance {
    fn list<'s>(&mut self, arena: &mut Arena, items: impl Iterator<Item = &'s str>) -> ListRef {
        let first = self.lists.len() as u32;
        for s in items {
            self.lists.push(arena.push(s.as_bytes()));
        }
        ListRef {
            first,
            count: self.lists.len() as u32 - first,
        }
    }

    fn meta(&mut self, arena: &mut Arena, m: &Arc<AttrMeta>) -> u32 {
        if let Some((p, i)) = &self.last {
            if Arc::ptr_eq(p, m) {
                return *i;
            }
        }
        let i = self.intern(arena, m);
        self.last = Some((m.clone(), i));
        i
    }

    fn intern(&mut self, arena: &mut Arena, m: &Arc<AttrMeta>) -> u32 {
        if let Some(&i) = self.metas.get(m) {
            return i;
        }
        let event = match self.events.get(&m.event) {
            Some(&e) => e,
            None => {
                let e = &*m.event;
                let rec = EventRec {
                    id: arena.push_opt(e.id.as_deref()),
                    uuid: arena.push_opt(e.uuid.as_deref()),
                    info: arena.push_opt(e.info.as_deref()),
                    tags: self.list(arena, e.tags.iter().map(String::as_str)),
                };
                self.event_recs.push(rec);
                let i = self.event_recs.len() as u32 - 1;
                self.events.insert(m.event.clone(), i);
                i
            }
        };
        let rec = MetaRec {
            event,
            category: arena.push_opt(m.category.as_deref()),
            misp_type: arena.push(m.misp_type.as_bytes()),
            tags: self.list(arena, m.tags.iter().map(|t| &**t)),
            comment: arena.push_opt(m.comment.as_deref()),
        };
        self.meta_recs.push(rec);
        let i = self.meta_recs.len() as u32 - 1;
        self.metas.insert(m.clone(), i);
        i
    }
}

/// The longest IPv4 network text: `255.255.255.255/32`.
const V4_TEXT: usize = 18;

/// An IPv4 network's text as [`Value`]'s `Display` writes it (`1.2.3.4`, `1.2.3.0/24`), into `out`, with its length:
/// a fifth of the build's value texts at 10M, where the formatting machinery's four calls per address showed in
/// the profile.
fn v4_text(n: Ipv4Net, out: &mut [u8; V4_TEXT]) -> usize {
    let mut len = 0;
    let mut push = |b: u8| {
        out[len] = b;
        len += 1;
    };
    let mut number = |sep: Option<u8>, v: u8| {
        if let Some(s) = sep {
            push(s);
        }
        if v >= 100 {
            push(b'0' + v / 100);
        }
        if v >= 10 {
            push(b'0' + v / 10 % 10);
        }
        push(b'0' + v % 10);
    };
    let [a, b, c, d] = n.addr().octets();
    number(None, a);
    for v in [b, c, d] {
        number(Some(b'.'), v);
    }
    if n.prefix_len() < 32 {
        number(Some(b'/'), n.prefix_len());
    }
    len
}

fn kind_index(k: Kind) -> u8 {
    Kind::ALL.iter().position(|x| *x == k).expect("every kind is listed") as u8
}

/// Arena bytes an indicator's value, key and UUID take at most: the arena is sized once from the sum, so a 10M
/// build never doubles a 200 MB vector (a copy of it, and old and new resident together). Unused capacity is
/// never touched, so an over-estimate costs address space only.
fn arena_bound(ind: &Indicator) -> usize {
    let text = match &ind.value {
        Value::Domain(d) | Value::Hostname(d) | Value::Email(d) | Value::Hash(_, d) => 2 * d.len() + 2,
        Value::Url(u) => 2 * (u.host.len() + 2) + u.rest.len(),
        // Two IPv6 addresses and a dash at most.
        Value::Net(_) | Value::Range(_) => 80,
    };
    text + if ind.provenance.attribute_uuid.is_some() { 16 } else { 0 }
}

/// Indicators laid out between two hand-backs of freed memory to the OS: the set's chunks are freed as the build
/// passes them, and given back every million so the tables grow into the room they left.
const RELEASE_EVERY: usize = 1 << 20;

/// Lays out every section for `set` (ids are positions in insertion order). The set is freed a chunk at a time as
/// it is laid out, so its strings and records are given back while the tables grow.
pub fn sections(set: IndicatorSet) -> Sections {
    let mut arena = Arena::default();
    let (mut host_n, mut looked_up_n, mut hash_n, mut arena_n) = (0, 0, 0, 0);
    for i in set.iter() {
        match i.value {
            Value::Domain(_) | Value::Hostname(_) => host_n += 1,
            Value::Url(_) | Value::Email(_) => {
                host_n += 1;
                looked_up_n += 1;
            }
            Value::Hash(..) => hash_n += 1,
            _ => {}
        }
        arena_n += arena_bound(i);
    }
    arena.bytes.reserve(arena_n + arena_n / 16 + (1 << 16));
    let n = set.len();
    let mut hosts = TableBuilder::new(host_n, looked_up_n, (NONE, NONE));
    let mut hashes = TableBuilder::new(hash_n, hash_n, (NONE, NONE));
    let mut v6urls = TableBuilder::new(0, 0, (NONE, NONE));
    let mut hash_ids = IdLists::default();
    let mut ips = IpBuilder::default();
    let mut prov = Provenance::default();
    let mut info = Info {
        hash_lens: [0; 3],
        counts: [0; 14],
        has_emails: 0,
        has_fuzzy: 0,
        keys: [0; 3],
        no_digit_tld: 0,
        last_labels: [0; 64],
    };
    let mut recs = Vec::with_capacity(n);
    // Whether some host key ends in an all-digit label (see `Info::no_digit_tld`).
    let mut digit_tld = false;
    for (id, ind) in set.into_ordered().enumerate() {
        if id % RELEASE_EVERY == RELEASE_EVERY - 1 {
            crate::memory::release_freed();
        }
        let id = id as u32;
        let kind = ind.value.kind();
        info.counts[kind_index(kind) as usize] += 1;
        let mut host_len = 0u16;
        let mut flags = 0u8;
        let value = match &ind.value {
            Value::Domain(d) | Value::Hostname(d) if d.len() <= MAX_KEY => {
                let off = arena.push_key(d.as_bytes());
                digit_tld |= ends_in_digit_label(d.as_bytes());
                // The set holds each value once, so a domain's or host name's key is new among these.
                let (dom, host) = match ind.value {
                    Value::Domain(_) => (id, NONE),
                    _ => (NONE, id),
                };
                hosts.push_distinct(d.as_bytes(), off, dom, host);
                StrRef {
                    off: off + 2,
                    len: d.len() as u32,
                }
            }
            Value::Url(u) => {
                let text = arena.push(format!("{}{}", u.host, u.rest).as_bytes());
                host_len = u.host.len() as u16;
                let rest = StrRef {
                    off: text.off + u.host.len() as u32,
                    len: u.rest.len() as u32,
                };
                let x = Extra {
                    text: rest,
                    id,
                    kind: EXTRA_URL,
                };
                match u.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => {
                        let a: Ipv6Addr = v6.parse().expect("validated IPv6 URL host");
                        let e = v6urls.entry(&mut arena, &a.octets(), None);
                        v6urls.add_extra(e, x);
                    }
                    None => {
                        digit_tld |= ends_in_digit_label(u.host.as_bytes());
                        let e = hosts.entry(&mut arena, u.host.as_bytes(), None);
                        hosts.add_extra(e, x);
                    }
                }
                text
            }
            Value::Email(e) => {
                let text = arena.push(e.as_bytes());
                let (local, host) = e.rsplit_once('@').expect("validated e-mail");
                digit_tld |= ends_in_digit_label(host.as_bytes());
                let i = hosts.entry(&mut arena, host.as_bytes(), None);
                hosts.add_extra(
                    i,
                    Extra {
                        text: StrRef {
                            off: text.off,
                            len: local.len() as u32,
                        },
                        id,
                        kind: EXTRA_EMAIL,
                    },
                );
                info.has_emails = 1;
                text
            }
            Value::Hash(k, h) if h.len() <= MAX_KEY => {
                if *k == Kind::Fuzzy {
                    info.has_fuzzy = 1;
                } else if h.len() < 192 {
                    info.hash_lens[h.len() / 64] |= 1 << (h.len() % 64);
                }
                // Hex digests are stored lower-case already and are their own key; a fuzzy hash keeps its case.
                let (text, e) = if *k == Kind::Fuzzy {
                    let text = arena.push(h.as_bytes());
                    (text, hashes.entry(&mut arena, h.to_ascii_lowercase().as_bytes(), None))
                } else {
                    let off = arena.push_key(h.as_bytes());
                    let text = StrRef {
                        off: off + 2,
                        len: h.len() as u32,
                    };
                    (text, hashes.entry(&mut arena, h.as_bytes(), Some(off)))
                };
                hash_ids.push(hashes.values(e).0, id);
                text
            }
            Value::Net(n) => {
                ips.add_net(*n, id);
                match n {
                    IpNet::V4(v4) => {
                        let mut buf = [0u8; V4_TEXT];
                        let len = v4_text(*v4, &mut buf);
                        arena.push(&buf[..len])
                    }
                    IpNet::V6(_) => arena.push(ind.value.name().as_bytes()),
                }
            }
            Value::Range(r) => {
                ips.add_range(r.0, r.1, id);
                flags |= IND_RANGE;
                arena.push(ind.value.name().as_bytes())
            }
            // A key longer than a table holds cannot be in a line the scanner accepts; kept for reports only.
            Value::Domain(_) | Value::Hostname(_) | Value::Hash(..) => arena.push(ind.value.name().as_bytes()),
        };
        let p = &ind.provenance;
        let uuid = match p.attribute_uuid {
            Some(u) => {
                flags |= IND_UUID;
                arena.push(&u.0).off
            }
            None => NONE,
        };
        recs.push(IndRec {
            value,
            meta: prov.meta(&mut arena, &p.meta),
            timestamp: p.timestamp.map_or(0, |t| t.get()),
            merged: ind.merged,
            host_len,
            port: p.port.map_or(0, |p| p.get()),
            kind: kind_index(kind),
            flags,
            _pad: [0; 2],
            uuid,
        });
    }
    let mut pool = Vec::new();
    for (a, _) in hashes.values_mut() {
        *a = hash_ids.flatten(*a, &mut pool);
    }
    info.no_digit_tld = u32::from(!digit_tld);
    // The tables are laid out on every core: each lays its extras out alone, rebased after the others' in the
    // order hosts, hashes, IPv6 URLs, so the bytes are those of a sequential build.
    let finish = |t: TableBuilder, markers: bool| {
        let mut x = Vec::new();
        let built = t.finish(&mut x, &arena, markers);
        (built, x)
    };
    let ((hosts, mut extras), ((mut hashes, hash_x), ((mut v6urls, v6_x), ips))) = rayon::join(
        || finish(hosts, true),
        || {
            rayon::join(
                || finish(hashes, false),
                || rayon::join(|| finish(v6urls, false), || ips.finish(&mut pool)),
            )
        },
    );
    info.keys = [hosts.keys as u32, hashes.keys as u32, v6urls.keys as u32];
    info.last_labels = hosts.last_labels;
    hashes.rebase(extras.len() as u32);
    extras.extend(hash_x);
    v6urls.rebase(extras.len() as u32);
    extras.extend(v6_x);
    let parts = vec![
        (Section::Info, part(vec![info])),
        (Section::Strings, part(std::mem::take(&mut arena.bytes))),
        (Section::Indicators, part(recs)),
        (Section::Metas, part(prov.meta_recs)),
        (Section::Events, part(prov.event_recs)),
        (Section::StrLists, part(prov.lists)),
        (Section::HostSlots, part(hosts.slots)),
        (Section::HostBloom, part(hosts.bloom)),
        (Section::HostExtraDir, part(hosts.extra_dir)),
        (Section::HashSlots, part(hashes.slots)),
        (Section::HashBloom, part(hashes.bloom)),
        (Section::V6UrlSlots, part(v6urls.slots)),
        (Section::V6UrlBloom, part(v6urls.bloom)),
        (Section::V6UrlExtraDir, part(v6urls.extra_dir)),
        (Section::Extras, part(extras)),
        (Section::Pool, part(pool)),
        (Section::V4Summary, part(ips.v4_16)),
        (Section::V4Levels, part(ips.v4_levels)),
        (Section::V4Slots, part(ips.v4_slots)),
        (Section::V6Levels, part(ips.v6_levels)),
        (Section::V6Slots, part(ips.v6_slots)),
        (Section::V4Ranks, part(ips.v4_ranks)),
        (Section::V4Blocks, part(ips.v4_blocks)),
    ];
    debug_assert!(parts.iter().map(|(s, _)| *s).eq(Section::ALL));
    Sections { parts }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// What the header says besides the sections.
pub struct HeaderFacts {
    pub version: u64,
    pub built_at_ms: u64,
    pub build_us: u64,
    pub indicators: u32,
}

impl Sections {
    /// Writes header, table and sections into one page-aligned buffer.
    pub fn assemble(self, facts: &HeaderFacts) -> memmap2::MmapMut {
        let table_len = self.parts.len() * std::mem::size_of::<SectionEntry>();
        let mut at = align(HEADER_LEN + table_len);
        let mut entries = Vec::with_capacity(self.parts.len());
        let sums: Vec<u64> = {
            use rayon::prelude::*;
            self.parts
                .par_iter()
                .map(|(_, b)| xxhash_rust::xxh3::xxh3_64(b.as_bytes()))
                .collect()
        };
        for ((s, b), xxh3) in self.parts.iter().zip(sums) {
            let len = b.as_bytes().len();
            entries.push(SectionEntry {
                id: *s as u32,
                _pad: 0,
                offset: at as u64,
                len: len as u64,
                xxh3,
            });
            at = align(at + len);
        }
        let mut out = memmap2::MmapMut::map_anon(at.max(1)).expect("anonymous memory for the snapshot");
        // Each part is freed as soon as it is copied, so the peak is the parts plus the pages written so far.
        for ((_, b), e) in self.parts.into_iter().zip(&entries) {
            let bytes = b.as_bytes();
            out[e.offset as usize..e.offset as usize + bytes.len()].copy_from_slice(bytes);
            if bytes.len() >= 1 << 20 {
                drop(b);
                crate::memory::release_freed();
            }
        }
        let table: &[u8] = bytemuck::cast_slice(&entries);
        out[HEADER_LEN..HEADER_LEN + table_len].copy_from_slice(table);
        let mut ids = Vec::with_capacity(entries.len() * 8);
        for e in &entries {
            ids.extend_from_slice(&e.xxh3.to_le_bytes());
        }
        let mut h = Header {
            magic: MAGIC,
            format_version: FORMAT_VERSION,
            sections: entries.len() as u32,
            build_id: xxhash_rust::xxh3::xxh3_64(&ids),
            version: facts.version,
            built_at_ms: facts.built_at_ms,
            build_us: facts.build_us,
            indicators: facts.indicators,
            _pad: 0,
            checksum: 0,
        };
        h.checksum = header_checksum(&h, table);
        out[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
        out
    }
}

/// The header checksum: xxh3 of the header without its checksum field, then the section table.
pub fn header_checksum(h: &Header, table: &[u8]) -> u64 {
    let mut x = xxhash_rust::xxh3::Xxh3::new();
    x.update(&bytemuck::bytes_of(h)[..HEADER_LEN - 8]);
    x.update(table);
    x.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_network_is_written_as_its_value_displays() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut nets: Vec<Ipv4Net> = [
            "0.0.0.0/32",
            "255.255.255.255/32",
            "10.0.0.0/8",
            "100.64.9.0/24",
            "1.2.3.4/31",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let prefix = [32, 32, 24, 16, 9, 0][(x >> 40) as usize % 6];
            nets.push(Ipv4Net::new((x as u32).into(), prefix).unwrap().trunc());
        }
        let mut buf = [0u8; V4_TEXT];
        for n in nets {
            let len = v4_text(n, &mut buf);
            assert_eq!(&buf[..len], Value::Net(IpNet::V4(n)).to_string().as_bytes(), "{n}");
        }
    }
}
