//! The key hash of every table: right to left (FNV-1a over ASCII-lower-cased bytes, then a finaliser), so a
//! scanner walking a host token from its end gets the hash of every label suffix in one pass, with no allocation
//! and no lower-casing copy. It is part of the snapshot format: changing it needs a format version bump.

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

/// Whether a host's last label is all digits (`10.0.0.1`, `537.36`): no registered domain ends so, but a URL or
/// e-mail on an IPv4 address does. The build records whether any key does, so the scanner can skip such tokens.
#[inline(always)]
pub fn ends_in_digit_label(host: &[u8]) -> bool {
    let last = host.rsplit(|b| *b == b'.').next().unwrap_or(host);
    !last.is_empty() && last.iter().all(u8::is_ascii_digit)
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
}
