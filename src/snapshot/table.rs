//! A flat, case-folding byte-key hash table with a blocked Bloom prefilter: how hosts, digests and IPv6 URL hosts
//! are looked up, in place, from the snapshot's bytes.
//!
//! Slots are 16 bytes (four to a cache line), linearly probed, two-thirds full; a slot keeps a 32-bit tag
//! of the key's hash so a probe compares key bytes only when the tag agrees. Keys live length-prefixed in the
//! snapshot's string arena (a domain's key is its value's text, stored once). The scanner hashes a host token right
//! to left ([`super::keys::RevHasher`]), so every label suffix has its hash from one pass; the one-word Bloom filter
//! (three bits of one 64-bit word per key, 8 or more bits per key) rejects almost every suffix with one memory access.

use super::arena::Arena;
use super::keys::{hash_key, suffix_markers, LAST_LABEL_BITS};
use super::layout::{Extra, ExtraDir, Slot, KEY_EXTRAS, NONE};
use hashbrown::HashTable;

/// The Bloom filter word for a hash (`mask` is the word count less one); public so a batch of probes can prefetch
/// its words before testing them, as the prefilter bench measures.
#[inline(always)]
pub fn bloom_word(h: u64, mask: u64) -> usize {
    ((h >> 12) & mask) as usize
}

#[inline(always)]
fn bloom_bits(h: u64) -> u64 {
    (1u64 << (h >> 58)) | (1u64 << ((h >> 52) & 63)) | (1u64 << ((h >> 46) & 63))
}

#[inline(always)]
fn tag(h: u64) -> u32 {
    (h >> 32) as u32 ^ (h as u32).rotate_left(16)
}

/// Adds `h` to a one-word Bloom filter of [`bloom_words`] words; public so the prefilter comparison bench
/// measures the very filter the snapshot stores.
#[inline(always)]
pub fn bloom_insert(bloom: &mut [u64], h: u64) {
    let w = bloom_word(h, bloom.len() as u64 - 1);
    bloom[w] |= bloom_bits(h);
}

/// Whether a one-word Bloom filter (a power-of-two number of words) admits `h`: one memory access.
#[inline(always)]
pub fn bloom_admits(bloom: &[u64], h: u64) -> bool {
    let bits = bloom_bits(h);
    bloom[bloom_word(h, bloom.len() as u64 - 1)] & bits == bits
}

/// Filter words for `n` keys: a power of two, at least 8, and at least 8 bits per key. `cargo bench --bench
/// prefilter` chose it: at 4 bits per key a scan's absent suffixes passed 14% of the time at 1M keys and each cost a
/// table miss; at 8 bits 3.4% pass and a million probes take 6.0 ms instead of 16.0 ms, for 1 MB of filter per
/// million keys (the README's design section has the whole comparison).
pub fn bloom_words(n: usize) -> usize {
    (n / 8 + 1).next_power_of_two().max(8)
}

/// Slots for `n` keys in a table indexed by mask (the IP levels): a power of two at least 1.5 `n`, at least 8.
pub fn slot_count(n: usize) -> usize {
    (n + n / 2 + 1).next_power_of_two().max(8)
}

/// Slots for `n` keys in a host, digest or IPv6-URL table: 1.5 `n` exactly, so the table is two-thirds full
/// whatever `n` is (rounding up to a power of two left a 10M table 43% full and 88 MB larger).
pub fn table_slots(n: usize) -> usize {
    (n + n / 2 + 1).max(8)
}

/// The first slot for `h` in `cap` slots: the low 32 bits of the hash scaled to the table, which works for any
/// size and leaves the high bits to the tag and the filter.
#[inline(always)]
fn slot_start(h: u64, cap: usize) -> usize {
    ((h as u32 as u64 * cap as u64) >> 32) as usize
}

/// The slot after `i`, wrapping at the end.
#[inline(always)]
fn next_slot(i: usize, cap: usize) -> usize {
    if i + 1 == cap {
        0
    } else {
        i + 1
    }
}

/// A table read in place.
#[derive(Clone, Copy, Debug)]
pub struct TableView<'a> {
    pub slots: &'a [Slot],
    pub bloom: &'a [u64],
    pub extra_dir: &'a [ExtraDir],
    pub extras: &'a [Extra],
    pub arena: &'a [u8],
    /// Keys held (from the info section).
    pub len: usize,
}

impl<'a> TableView<'a> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the filter admits `h`: one memory access, taken before any slot is touched.
    #[inline(always)]
    pub fn may_contain(&self, h: u64) -> bool {
        // The filter length is a power of two checked at open, so the index is in bounds.
        bloom_admits(self.bloom, h)
    }

    /// The slot of `key` (compared ignoring ASCII case) whose [`hash_key`] is `h`, and its index.
    #[inline(always)]
    pub fn get(&self, h: u64, key: &[u8]) -> Option<(usize, &'a Slot)> {
        if !self.may_contain(h) {
            return None;
        }
        self.probe(h, key)
    }

    /// [`Self::get`] comparing bytes exactly: for keys that are not text (an IPv6 URL host's 16 octets, where
    /// 0x41 and 0x61 are two addresses, not two cases of one letter).
    #[inline]
    pub fn get_exact(&self, h: u64, key: &[u8]) -> Option<(usize, &'a Slot)> {
        if !self.may_contain(h) {
            return None;
        }
        self.probe_by(h, |k| k == key)
    }

    /// [`Self::get`] without the filter (the caller checked it).
    #[inline]
    pub fn probe(&self, h: u64, key: &[u8]) -> Option<(usize, &'a Slot)> {
        self.probe_by(h, |k| k.eq_ignore_ascii_case(key))
    }

    /// The first slot on `h`'s probe sequence whose tag agrees and whose key `same` accepts.
    #[inline(always)]
    fn probe_by(&self, h: u64, same: impl Fn(&[u8]) -> bool) -> Option<(usize, &'a Slot)> {
        let cap = self.slots.len();
        let t = tag(h);
        let mut i = slot_start(h, cap);
        loop {
            let s = &self.slots[i];
            if s.key == NONE {
                return None;
            }
            if s.tag == t && same(self.key(s)) {
                return Some((i, s));
            }
            i = next_slot(i, cap);
        }
    }

    /// A slot's key bytes. Offsets were checked at open.
    #[inline(always)]
    pub fn key(&self, s: &Slot) -> &'a [u8] {
        let off = (s.key & !KEY_EXTRAS) as usize;
        let len = u16::from_le_bytes([self.arena[off], self.arena[off + 1]]) as usize;
        &self.arena[off + 2..off + 2 + len]
    }

    /// The URL and e-mail extras of slot `i`.
    #[inline]
    pub fn extras(&self, i: usize, s: &Slot) -> &'a [Extra] {
        if s.key & KEY_EXTRAS == 0 {
            return &[];
        }
        match self.extra_dir.binary_search_by_key(&(i as u32), |d| d.slot) {
            Ok(d) => {
                let d = &self.extra_dir[d];
                &self.extras[d.first as usize..(d.first + d.count) as usize]
            }
            Err(_) => &[],
        }
    }
}

/// One key while the table is built: 24 bytes, as a 10M build holds seven million of them.
struct Entry {
    hash: u64,
    key: u32,
    a: u32,
    b: u32,
}

/// Collects keys and their values, then lays out slots, filter and extras.
pub struct TableBuilder {
    index: HashTable<u32>,
    entries: Vec<Entry>,
    /// URL and e-mail extras with their entry index, in insertion order: few keys have any, so they are kept
    /// beside the entries rather than in a vector per entry.
    extras: Vec<(u32, Extra)>,
    init: (u32, u32),
    /// Some entries came from [`TableBuilder::push_distinct`], unlooked-up: layout merges equal keys.
    deferred: bool,
}

/// A finished table's sections.
pub struct BuiltTable {
    /// Distinct keys placed.
    pub keys: usize,
    pub slots: Vec<Slot>,
    pub bloom: Vec<u64>,
    pub extra_dir: Vec<ExtraDir>,
    /// The keys' last-label bitmap, when the table was finished with markers.
    pub last_labels: [u64; LAST_LABEL_BITS / 64],
}

impl BuiltTable {
    /// Moves the table's extras to start at `base` in the shared extras section.
    pub fn rebase(&mut self, base: u32) {
        for d in &mut self.extra_dir {
            d.first += base;
        }
    }
}

impl TableBuilder {
    /// A builder for `capacity` entries, `looked_up` of them through [`Self::entry`], whose new entries start
    /// with values `init`.
    pub fn new(capacity: usize, looked_up: usize, init: (u32, u32)) -> Self {
        TableBuilder {
            index: HashTable::with_capacity(looked_up),
            entries: Vec::with_capacity(capacity),
            extras: Vec::new(),
            init,
            deferred: false,
        }
    }

    /// Adds a key stored length-prefixed at `off` that is distinct from every other key added this way, with
    /// values `a` and `b` (`NONE` for none): a deduplicated set's domains and host names, seven million at 10M,
    /// skip the lookup (a cache miss each). A key equal to one added otherwise is merged into it when the table is
    /// laid out, so this is for tables whose values are an id or `NONE` (the host table), not id lists.
    pub fn push_distinct(&mut self, key: &[u8], off: u32, a: u32, b: u32) {
        self.deferred = true;
        self.entries.push(Entry {
            hash: hash_key(key),
            key: off,
            a,
            b,
        });
    }

    /// The entry index of `key` (lower-case already), added when absent. `stored` gives the key's arena offset
    /// when the caller already wrote the bytes length-prefixed (a value reused as its key).
    pub fn entry(&mut self, arena: &mut Arena, key: &[u8], stored: Option<u32>) -> usize {
        let h = hash_key(key);
        let entries = &self.entries;
        if let Some(&i) = self.index.find(h, |&i| arena.key(entries[i as usize].key) == key) {
            return i as usize;
        }
        let off = stored.unwrap_or_else(|| arena.push_key(key));
        let i = self.entries.len() as u32;
        self.entries.push(Entry {
            hash: h,
            key: off,
            a: self.init.0,
            b: self.init.1,
        });
        let entries = &self.entries;
        self.index.insert_unique(h, i, |&j| entries[j as usize].hash);
        i as usize
    }

    /// The two values of an entry.
    pub fn values(&mut self, i: usize) -> (&mut u32, &mut u32) {
        let e = &mut self.entries[i];
        (&mut e.a, &mut e.b)
    }

    pub fn add_extra(&mut self, i: usize, x: Extra) {
        self.extras.push((i as u32, x));
    }

    /// The values of every entry, in insertion order, so a caller can rewrite them (ids into pool references).
    pub fn values_mut(&mut self) -> impl Iterator<Item = (&mut u32, &mut u32)> {
        self.entries.iter_mut().map(|e| (&mut e.a, &mut e.b))
    }

    /// Lays the table out, merging equal keys when some were added unlooked-up; extras go to the end of
    /// `extras`. `arena` holds the keys. With `markers` (the host table) the filter also holds each key's
    /// last-two-labels [`suffix_markers`], and is sized for twice the keys so its false positives stay where they
    /// were; their last labels go to the bitmap returned with the table.
    pub fn finish(self, extras: &mut Vec<Extra>, arena: &Arena, markers: bool) -> BuiltTable {
        let TableBuilder {
            index,
            entries,
            extras: mut own,
            deferred,
            ..
        } = self;
        let key_at = |off: u32| arena.key(off & !KEY_EXTRAS);
        // The lookup index is done with: freed before the slots are allocated, so the two are never held at once.
        drop(index);
        let n = entries.len();
        let cap = table_slots(n);
        let empty = Slot {
            tag: 0,
            key: NONE,
            a: NONE,
            b: NONE,
        };
        let mut slots = vec![empty; cap];
        let words = bloom_words(if markers { 2 * n } else { n });
        let mut bloom = vec![0u64; words];
        // The keys' suffix markers go into a filter of their own on the other core, ORed in after: at 10M they
        // cost 0.5-0.7 s more in the placing loop, which is the build's longest step.
        let mark = || {
            let mut bloom = vec![0u64; words];
            let mut last_labels = [0u64; LAST_LABEL_BITS / 64];
            for e in &entries {
                if let Some((bit, two)) = suffix_markers(key_at(e.key)) {
                    last_labels[bit / 64] |= 1 << (bit % 64);
                    bloom_insert(&mut bloom, two);
                }
            }
            (bloom, last_labels)
        };
        // Extras grouped by entry, each entry's in the order they were added.
        own.sort_by_key(|(e, _)| *e);
        let mut groups = own.chunk_by(|x, y| x.0 == y.0).peekable();
        let mut first = 0usize;
        // (slot, first extra, count) for each entry with extras.
        let mut placed: Vec<(u32, u32, u32)> = Vec::new();
        let mut keys = 0;
        let mut place = || {
            for (ei, e) in entries.iter().enumerate() {
                bloom_insert(&mut bloom, e.hash);
                let t = tag(e.hash);
                let mut i = slot_start(e.hash, cap);
                let mut same = false;
                while slots[i].key != NONE {
                    if deferred && slots[i].tag == t && key_at(slots[i].key) == key_at(e.key) {
                        same = true;
                        break;
                    }
                    i = next_slot(i, cap);
                }
                let mut flag = 0;
                if let Some(g) = groups.next_if(|g| g[0].0 as usize == ei) {
                    flag = KEY_EXTRAS;
                    placed.push((i as u32, first as u32, g.len() as u32));
                    first += g.len();
                }
                if same {
                    let s = &mut slots[i];
                    s.key |= flag;
                    for (have, new) in [(&mut s.a, e.a), (&mut s.b, e.b)] {
                        if new != NONE {
                            *have = new;
                        }
                    }
                    continue;
                }
                keys += 1;
                slots[i] = Slot {
                    tag: t,
                    key: e.key | flag,
                    a: e.a,
                    b: e.b,
                };
            }
        };
        let ((marks, last_labels), ()) = if markers {
            rayon::join(mark, place)
        } else {
            place();
            ((Vec::new(), [0; LAST_LABEL_BITS / 64]), ())
        };
        for (w, m) in bloom.iter_mut().zip(marks) {
            *w |= m;
        }
        // By slot, and a merged key's runs in the order their entries were added: one run per slot.
        placed.sort_by_key(|p| (p.0, p.1));
        let mut extra_dir: Vec<ExtraDir> = Vec::with_capacity(placed.len());
        for (slot, from, count) in placed {
            match extra_dir.last_mut() {
                Some(d) if d.slot == slot => d.count += count,
                _ => extra_dir.push(ExtraDir {
                    slot,
                    first: extras.len() as u32,
                    count,
                }),
            }
            extras.extend(own[from as usize..(from + count) as usize].iter().map(|(_, x)| *x));
        }
        BuiltTable {
            keys,
            slots,
            bloom,
            extra_dir,
            last_labels,
        }
    }
}
