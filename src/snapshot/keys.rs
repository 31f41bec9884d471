//! The key hash of every table, computed a label at a time from the right, so a scanner walking a host token from
//! its end gets the hash of every label suffix in one pass, with no allocation and no lower-casing copy. A label is
//! folded in as 8-byte words (ASCII case folded by setting each byte's 0x20 bit), one multiply per word instead of
//! one per byte: a per-byte hash is a chain of dependent multiplies, and it was the latency of that chain, not the
//! table probes, that a dotted token cost. It is part of the snapshot format: changing it needs a format version bump.
//!
//! [`stable_hash`] is the other hash: ids that outlive a process (Kafka hit ids, export fingerprints) use it, so they
//! stay the same whatever the table layout becomes.

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;
/// The word multiplier: odd, so each step is a bijection of the state (two keys that differ in one word never
/// meet at that step).
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;
/// Each byte's 0x20 bit: set, an ASCII upper-case letter reads as its lower case.
const CASE: u64 = 0x2020_2020_2020_2020;

/// ASCII lower-casing table for [`stable_hash`].
static LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    t
};

/// The running state of a key hash, fed whole labels from right to left.
#[derive(Clone, Copy, Debug)]
pub struct LabelHasher(u64);

impl LabelHasher {
    #[inline(always)]
    pub fn new() -> Self {
        LabelHasher(SEED)
    }

    /// Feeds the label `buf[from..to]` (no dot in it), the one to the left of those fed so far. `buf` may go on
    /// past the label on either side: up to 8 bytes are read at a time where `buf` has them and the bytes past the
    /// label are masked off, so a label costs one load and one multiply per 8 bytes. An empty label is one step of
    /// a zero word, so `a..b` and `a.b` differ.
    #[inline(always)]
    pub fn label(&mut self, buf: &[u8], from: usize, to: usize) {
        // The length goes in first, so where one label ends and the next starts is part of the hash: without it
        // `abcdefghi` and `i.abcdefgh` are the same two words.
        let mut h = self.0 ^ (to - from) as u64;
        let mut i = from;
        loop {
            let n = (to - i).min(8);
            h = (h ^ word(buf, i, n)).wrapping_mul(MUL).rotate_left(29);
            i += n;
            if i >= to {
                break;
            }
        }
        self.0 = h;
    }

    /// The last-label bitmap's bit for the one label fed so far: one multiply of the running state, not the whole
    /// finish, since the bitmap needs only 12 well-mixed bits.
    #[inline(always)]
    pub fn last_label_bit(self) -> usize {
        (self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize
    }

    /// The finished hash of the labels fed so far (a suffix of the token), well mixed for table and filter bits.
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

impl Default for LabelHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The `n` (at most 8) bytes of `buf` from `at` as a little-endian word, case folded, the bytes past `n` zero.
#[inline(always)]
fn word(buf: &[u8], at: usize, n: usize) -> u64 {
    let raw = match buf.get(at..at + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
        None => {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&buf[at..at + n]);
            u64::from_le_bytes(b)
        }
    };
    let keep = if n == 8 { !0 } else { (1u64 << (8 * n)) - 1 };
    (raw | CASE) & keep
}

/// The salt that sets a key's last-two-labels marker apart from key hashes in the one filter they share.
pub const LAST_TWO_SALT: u64 = 0x94d0_49bb_1331_11eb;

/// Bits in the last-label bitmap ([`crate::snapshot::layout::Info::last_labels`]): 512 bytes, always in L1.
pub const LAST_LABEL_BITS: usize = 4096;

/// A host key's suffix markers: which bit of the last-label bitmap its last label sets, and the salted hash of its
/// last two labels that goes into the host filter beside its own hash, as the scanner's right-to-left walk has them
/// after one and two labels. Every host rule needs a token's suffix (or the whole token) to equal a key, so a token
/// whose last label, or last two, is no key's stops there: in logs that is most of them (`.local`, `.exe`, `.php`, a
/// CDN's name). `None` for a key without a dot, which never matches.
pub fn suffix_markers(key: &[u8]) -> Option<(usize, u64)> {
    let last = memchr::memrchr(b'.', key)?;
    let mut h = LabelHasher::new();
    h.label(key, last + 1, key.len());
    let bit = h.last_label_bit();
    let from = memchr::memrchr(b'.', &key[..last]).map_or(0, |d| d + 1);
    h.label(key, from, last);
    Some((bit, h.finish() ^ LAST_TWO_SALT))
}

/// The hash of a whole key, as the scanner computes it: its labels (split at every dot) fed right to left.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = LabelHasher::new();
    let mut to = key.len();
    loop {
        let from = memchr::memrchr(b'.', &key[..to]).map_or(0, |d| d + 1);
        h.label(key, from, to);
        if from == 0 {
            return h.finish();
        }
        to = from - 1;
    }
}

/// A case-insensitive 64-bit hash (FNV-1a and a finaliser) that never changes with the snapshot format: for ids that
/// outlive a process, such as Kafka hit ids and export fingerprints.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = SEED;
    for &b in bytes.iter().rev() {
        h = (h ^ LOWER[b as usize] as u64).wrapping_mul(PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether a host's last label is all digits (`10.0.0.1`, `537.36`): no registered domain ends so, but a URL or
/// e-mail on an IPv4 address does. The build records whether any key does, so the scanner can skip such tokens.
#[inline(always)]
pub fn ends_in_digit_label(host: &[u8]) -> bool {
    let mut i = host.len();
    while i > 0 && host[i - 1].is_ascii_digit() {
        i -= 1;
    }
    i < host.len() && (i == 0 || host[i - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label suffix of `token`, hashed a label at a time from the right inside the whole token.
    fn suffix_hashes(token: &[u8]) -> Vec<(usize, u64)> {
        let mut h = LabelHasher::new();
        let mut out = Vec::new();
        let mut to = token.len();
        loop {
            let from = token[..to].iter().rposition(|b| *b == b'.').map_or(0, |d| d + 1);
            h.label(token, from, to);
            out.push((from, h.finish()));
            if from == 0 {
                return out;
            }
            to = from - 1;
        }
    }

    #[test]
    fn suffix_hashes_from_one_right_to_left_pass_equal_whole_key_hashes() {
        let token = b"A.B.Evil.COM";
        for (i, hv) in suffix_hashes(token) {
            assert_eq!(hv, hash_key(&token[i..].to_ascii_lowercase()));
            assert_eq!(hv, hash_key(&token[i..]));
        }
        let long = b"x.averyveryLONGlabel-with_more.than-eight.bytes-each.example.Com";
        for (i, hv) in suffix_hashes(long) {
            assert_eq!(hv, hash_key(&long[i..].to_ascii_lowercase()), "{i}");
        }
    }

    #[test]
    fn suffix_markers_are_the_scanners_first_two_steps() {
        // The scanner's walk over a longer token, in any case, has the key's markers after one and two labels.
        let key = b"evil-host.example.com";
        let (one, two) = suffix_markers(key).unwrap();
        let token = b"A.B.Evil-Host.EXAMPLE.Com";
        let steps = suffix_hashes(token);
        assert_eq!(steps[1].1 ^ LAST_TWO_SALT, two);
        let mut h = LabelHasher::new();
        h.label(token, 22, token.len());
        assert_eq!(h.last_label_bit(), one);
        assert!(one < LAST_LABEL_BITS);
        // A two-label key's second marker is its own hash, salted.
        assert_eq!(
            suffix_markers(b"example.com").unwrap().1,
            hash_key(b"example.com") ^ LAST_TWO_SALT
        );
        // Look-alikes: another last label, another second label, the labels moved across a dot.
        for other in [
            &b"evil-host.example.co"[..],
            b"evil-host.exampl.com",
            b"evil-host.examplecom.x",
        ] {
            let m = suffix_markers(other).unwrap();
            assert_ne!(m.1, two, "{other:?}");
        }
        assert_ne!(suffix_markers(b"a.example.co").unwrap().0, one);
        assert_eq!(suffix_markers(b"x.y.COM").unwrap().0, one);
        assert_eq!(suffix_markers(b"localhost"), None);
    }

    #[test]
    fn a_label_read_inside_a_longer_buffer_hashes_as_the_label_alone() {
        let buf = b"zzzzzzzzEvil-Host_1.comzzzzzzzzzzzzzz";
        for (from, to) in [(8, 19), (20, 23), (8, 8), (0, 1), (30, 37), (36, 37)] {
            let (mut inside, mut alone) = (LabelHasher::new(), LabelHasher::new());
            inside.label(buf, from, to);
            let copy = buf[from..to].to_vec();
            alone.label(&copy, 0, copy.len());
            assert_eq!(inside.finish(), alone.finish(), "{from}..{to}");
        }
    }

    #[test]
    fn dots_lengths_and_case_each_change_or_keep_the_hash_as_they_should() {
        let distinct: [&[u8]; 9] = [
            b"a.b",
            b"ab",
            b"a..b",
            b".ab",
            b"ab.",
            b"abcdefgh.i",
            b"abcdefghi",
            b"i.abcdefgh",
            b"",
        ];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert_ne!(hash_key(x), hash_key(y), "{x:?} {y:?}");
            }
        }
        assert_eq!(hash_key(b"EVIL.com"), hash_key(b"evil.COM"));
        assert_ne!(hash_key(b"evil.com"), hash_key(b"evil.con"));
        assert_eq!(stable_hash(b"Topic"), stable_hash(b"topic"));
    }

    #[test]
    fn a_digit_label_is_a_whole_last_label_of_digits() {
        for (host, want) in [
            ("10.0.0.1", true),
            ("537.36", true),
            ("36", true),
            ("evil.com", false),
            ("a.b1", false),
            ("a.1b", false),
            ("a.", false),
            ("", false),
            (".7", true),
            ("x-1.2x3", false),
        ] {
            assert_eq!(ends_in_digit_label(host.as_bytes()), want, "{host}");
        }
    }
}
