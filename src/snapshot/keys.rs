//! A case-folding byte-key table with a cache-friendly Bloom prefilter in front.
//!
//! Keys are hashed right to left (FNV-1a over ASCII-lower-cased bytes), so a scanner walking a host token from its
//! end gets the hash of every label suffix in one pass, with no allocation and no lower-casing copy. Most suffixes
//! of most tokens are not indicators; the one-word Bloom filter rejects them with a single memory access before the
//! hash table is probed.

use hashbrown::HashTable;

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// ASCII lower-casing table, so the hash is case-insensitive for free.
static LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    t
};

/// The running state of a right-to-left key hash.
#[derive(Clone, Copy, Debug)]
pub struct RevHasher(u64);

impl RevHasher {
    #[inline(always)]
    pub fn new() -> Self {
        RevHasher(SEED)
    }

    /// Feeds the byte to the left of those fed so far.
    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        self.0 = (self.0 ^ LOWER[b as usize] as u64).wrapping_mul(PRIME);
    }

    /// The finished hash of the bytes fed so far (a suffix of the token), well mixed for table and filter bits.
    #[inline(always)]
    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl Default for RevHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The hash of a whole key, as the scanner computes it.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = RevHasher::new();
    for &b in key.iter().rev() {
        h.push(b);
    }
    h.finish()
}

/// A blocked Bloom filter: one 64-bit word per probe, three bits per key.
#[derive(Debug, Clone)]
struct Bloom {
    words: Vec<u64>,
    mask: u64,
}

impl Bloom {
    fn with_keys(n: usize) -> Self {
        let words = (n / 16 + 1).next_power_of_two().max(8);
        Bloom {
            words: vec![0; words],
            mask: words as u64 - 1,
        }
    }

    #[inline(always)]
    fn bits(h: u64) -> u64 {
        (1u64 << (h >> 58)) | (1u64 << ((h >> 52) & 63)) | (1u64 << ((h >> 46) & 63))
    }

    fn insert(&mut self, h: u64) {
        self.words[((h >> 12) & self.mask) as usize] |= Self::bits(h);
    }

    #[inline(always)]
    fn may_contain(&self, h: u64) -> bool {
        let bits = Self::bits(h);
        // SAFETY-free: the mask keeps the index in bounds, and the compiler elides the check.
        self.words[((h >> 12) & self.mask) as usize] & bits == bits
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[derive(Debug, Clone)]
struct Slot<V> {
    off: u32,
    len: u32,
    val: V,
}

/// Lower-cased byte keys mapped to values, looked up by a precomputed [`hash_key`].
#[derive(Debug, Clone)]
pub struct KeyTable<V> {
    arena: Vec<u8>,
    table: HashTable<Slot<V>>,
    bloom: Bloom,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V> KeyTable<V> {
    pub fn with_capacity(n: usize) -> Self {
        KeyTable {
            arena: Vec::new(),
            table: HashTable::with_capacity(n),
            bloom: Bloom::with_keys(n),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The value for `key` (already lower-case), inserted with `make` when absent.
    pub fn entry_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        let h = hash_key(key);
        let arena = &self.arena;
        let found = self
            .table
            .find(h, |s| &arena[s.off as usize..(s.off + s.len) as usize] == key)
            .is_some();
        if !found {
            let off = self.arena.len() as u32;
            self.arena.extend_from_slice(key);
            let arena = &self.arena;
            self.table.insert_unique(
                h,
                Slot {
                    off,
                    len: key.len() as u32,
                    val: make(),
                },
                |s| hash_key(&arena[s.off as usize..(s.off + s.len) as usize]),
            );
            self.bloom.insert(h);
        }
        let arena = &self.arena;
        &mut self
            .table
            .find_mut(h, |s| &arena[s.off as usize..(s.off + s.len) as usize] == key)
            .expect("just inserted")
            .val
    }

    /// Looks up `key` (any case) whose [`hash_key`] is `h`.
    #[inline(always)]
    pub fn get(&self, h: u64, key: &[u8]) -> Option<&V> {
        if !self.bloom.may_contain(h) {
            return None;
        }
        self.table
            .find(h, |s| {
                s.len as usize == key.len()
                    && self.arena[s.off as usize..(s.off + s.len) as usize].eq_ignore_ascii_case(key)
            })
            .map(|s| &s.val)
    }

    /// Heap bytes held, for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.table.capacity() * (std::mem::size_of::<Slot<V>>() + 1) + self.bloom.bytes()
    }

    /// Rebuilds the Bloom filter for the final key count (it was sized for the capacity hint).
    pub fn seal(&mut self) {
        let mut bloom = Bloom::with_keys(self.table.len());
        for s in self.table.iter() {
            bloom.insert(hash_key(&self.arena[s.off as usize..(s.off + s.len) as usize]));
        }
        self.bloom = bloom;
        self.arena.shrink_to_fit();
        let arena = &self.arena;
        self.table
            .shrink_to_fit(|s| hash_key(&arena[s.off as usize..(s.off + s.len) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_hashes_from_one_right_to_left_pass_equal_whole_key_hashes() {
        let token = b"A.B.Evil.COM";
        let mut h = RevHasher::new();
        let mut seen = Vec::new();
        for i in (0..token.len()).rev() {
            h.push(token[i]);
            seen.push((i, h.finish()));
        }
        for (i, hv) in seen {
            assert_eq!(hv, hash_key(&token[i..].to_ascii_lowercase()));
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_exact_in_length() {
        let mut t: KeyTable<u32> = KeyTable::with_capacity(4);
        *t.entry_or_insert_with(b"evil.com", || 0) = 7;
        t.seal();
        assert_eq!(t.get(hash_key(b"EVIL.com"), b"EVIL.com"), Some(&7));
        assert_eq!(t.get(hash_key(b"evil.co"), b"evil.co"), None);
    }
}
