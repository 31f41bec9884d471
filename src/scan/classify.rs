//! Block classification: a line's bytes turned into bitmasks, 64 bytes to a word, so the scanner finds token
//! boundaries with bit operations instead of walking bytes (the way simdjson's stage 1 and `memchr` work).
//!
//! Bit `i` of a mask says whether byte `i` of the line is in the class: a host byte (`[A-Za-z0-9._-]`), a dot, an
//! ASCII letter or digit, a hex digit, a colon. AVX2 classifies 32 bytes per step when the CPU has it (runtime
//! detection); the scalar path classifies the same bits byte by byte and is what other CPUs use. The two must agree
//! bit for bit (the unit tests and `tests/properties.rs` check it); nothing else in the scanner is CPU-specific.

/// Which classification path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Path {
    /// The fastest path this CPU supports.
    pub fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Path::Avx2;
        }
        Path::Scalar
    }
}

/// The masks of one line, reused from line to line (no allocation once grown).
#[derive(Clone, Debug, Default)]
pub struct Masks {
    pub host: Vec<u64>,
    pub dot: Vec<u64>,
    pub alnum: Vec<u64>,
    pub hex: Vec<u64>,
    pub colon: Vec<u64>,
    /// Hex digits, colons and dots: the bytes of an IPv6 address in any textual form.
    pub v6: Vec<u64>,
    /// The line's length in bytes; bits at and past it are zero.
    pub len: usize,
}

const HOST: u8 = 1;
const DOT: u8 = 2;
const ALNUM: u8 = 4;
const HEX: u8 = 8;
const COLON: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_alphanumeric() {
            c |= ALNUM | HOST;
        }
        if b.is_ascii_hexdigit() {
            c |= HEX;
        }
        if b == b'.' {
            c |= DOT | HOST;
        }
        if b == b'-' || b == b'_' {
            c |= HOST;
        }
        if b == b':' {
            c |= COLON;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Masks {
    /// Classifies `line` with `path`.
    pub fn classify(&mut self, line: &[u8], path: Path) {
        let words = line.len().div_ceil(64);
        if self.host.len() != words {
            for v in [
                &mut self.host,
                &mut self.dot,
                &mut self.alnum,
                &mut self.hex,
                &mut self.colon,
                &mut self.v6,
            ] {
                v.resize(words, 0);
            }
        }
        self.len = line.len();
        let full = line.len() / 64;
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                // SAFETY: `Path::Avx2` is only returned by `detect` when the CPU has AVX2.
                unsafe { self.avx2_words(line, 0, full) };
                if full < words {
                    // The partial last word, from a zero-padded copy: a zero byte is in no class.
                    let mut pad = [0u8; 64];
                    pad[..line.len() - full * 64].copy_from_slice(&line[full * 64..]);
                    // SAFETY: as above; `pad` is one whole word.
                    unsafe { self.avx2_words(&pad, full, words) };
                }
            }
            Path::Scalar => self.scalar_words(line, 0, words),
        }
    }

    /// Words `from..to` classified byte by byte (the tail word may be partial).
    fn scalar_words(&mut self, line: &[u8], from: usize, to: usize) {
        for w in from..to {
            let block = &line[w * 64..line.len().min(w * 64 + 64)];
            let (mut h, mut d, mut a, mut x, mut c) = (0u64, 0u64, 0u64, 0u64, 0u64);
            for (i, &b) in block.iter().enumerate() {
                let k = CLASS[b as usize] as u64;
                h |= (k & 1) << i;
                d |= ((k >> 1) & 1) << i;
                a |= ((k >> 2) & 1) << i;
                x |= ((k >> 3) & 1) << i;
                c |= ((k >> 4) & 1) << i;
            }
            self.host[w] = h;
            self.dot[w] = d;
            self.alnum[w] = a;
            self.hex[w] = x;
            self.colon[w] = c;
            self.v6[w] = x | c | d;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    /// Words `from..to` of the masks from `block`, whose word 0 is mask word `from`.
    unsafe fn avx2_words(&mut self, block: &[u8], from: usize, to: usize) {
        use std::arch::x86_64::*;
        #[inline(always)]
        unsafe fn in_range(v: __m256i, lo: u8, hi: u8) -> __m256i {
            // lo <= v <= hi, unsigned: max(v, lo) == v and min(v, hi) == v.
            let ge = _mm256_cmpeq_epi8(_mm256_max_epu8(v, _mm256_set1_epi8(lo as i8)), v);
            let le = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(hi as i8)), v);
            _mm256_and_si256(ge, le)
        }
        #[inline(always)]
        unsafe fn half(p: *const u8) -> [u32; 5] {
            let v = _mm256_loadu_si256(p as *const __m256i);
            let lower = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let digit = in_range(v, b'0', b'9');
            let letter = in_range(lower, b'a', b'z');
            let hexl = in_range(lower, b'a', b'f');
            let dot = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'.' as i8));
            let dash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'-' as i8));
            let under = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'_' as i8));
            let colon = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b':' as i8));
            let alnum = _mm256_or_si256(digit, letter);
            let host = _mm256_or_si256(_mm256_or_si256(alnum, dot), _mm256_or_si256(dash, under));
            let hex = _mm256_or_si256(digit, hexl);
            let m = |x: __m256i| _mm256_movemask_epi8(x) as u32;
            [m(host), m(dot), m(alnum), m(hex), m(colon)]
        }
        // Six slices of one length, so the stores below need no bounds checks.
        let n = to - from;
        let host = &mut self.host[from..to];
        let dot = &mut self.dot[from..to];
        let alnum = &mut self.alnum[from..to];
        let hex = &mut self.hex[from..to];
        let colon = &mut self.colon[from..to];
        let v6 = &mut self.v6[from..to];
        assert!(block.len() >= n * 64);
        for w in 0..n {
            let p = block.as_ptr().add(w * 64);
            let lo = half(p);
            let hi = half(p.add(32));
            let j = |k: usize| lo[k] as u64 | (hi[k] as u64) << 32;
            host[w] = j(0);
            dot[w] = j(1);
            alnum[w] = j(2);
            hex[w] = j(3);
            colon[w] = j(4);
            v6[w] = j(1) | j(3) | j(4);
        }
    }
}

/// Bit queries on one mask over a line of `len` bytes.
#[derive(Clone, Copy)]
pub struct Bits<'a> {
    pub words: &'a [u64],
    pub len: usize,
}

impl<'a> Bits<'a> {
    #[inline(always)]
    pub fn new(words: &'a [u64], len: usize) -> Self {
        Bits { words, len }
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// The first set bit at or after `from`.
    #[inline(always)]
    pub fn next_one(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        if w >= self.words.len() {
            return None;
        }
        let mut m = self.words[w] & (!0u64 << (from % 64));
        loop {
            if m != 0 {
                return Some(w * 64 + m.trailing_zeros() as usize);
            }
            w += 1;
            if w >= self.words.len() {
                return None;
            }
            m = self.words[w];
        }
    }

    /// The first clear bit at or after `from`, or `len`.
    #[inline(always)]
    pub fn next_zero(&self, from: usize) -> usize {
        let mut w = from / 64;
        if w >= self.words.len() {
            return self.len.max(from);
        }
        let mut m = !self.words[w] & (!0u64 << (from % 64));
        loop {
            if m != 0 {
                return (w * 64 + m.trailing_zeros() as usize).min(self.len);
            }
            w += 1;
            if w >= self.words.len() {
                return self.len;
            }
            m = !self.words[w];
        }
    }

    /// Where the run of set bits that ends just before `to` starts: the position after the last clear bit below
    /// `to`, or 0.
    #[inline(always)]
    pub fn run_start(&self, to: usize) -> usize {
        if to == 0 {
            return 0;
        }
        let mut w = (to - 1) / 64;
        let bit = (to - 1) % 64;
        let mut m = !self.words[w] & (!0u64 >> (63 - bit));
        loop {
            if m != 0 {
                return w * 64 + 64 - m.leading_zeros() as usize;
            }
            if w == 0 {
                return 0;
            }
            w -= 1;
            m = !self.words[w];
        }
    }

    /// Set bits in `from..to`.
    #[inline(always)]
    pub fn count(&self, from: usize, to: usize) -> u32 {
        if from >= to {
            return 0;
        }
        let (fw, tw) = (from / 64, (to - 1) / 64);
        let lo_mask = !0u64 << (from % 64);
        let hi_mask = !0u64 >> (63 - (to - 1) % 64);
        if fw == tw {
            return (self.words[fw] & lo_mask & hi_mask).count_ones();
        }
        let mut n = (self.words[fw] & lo_mask).count_ones() + (self.words[tw] & hi_mask).count_ones();
        for w in &self.words[fw + 1..tw] {
            n += w.count_ones();
        }
        n
    }

    /// Whether two adjacent bits are both set in `from..to` (a `::` among colons), without a substring search.
    #[inline(always)]
    pub fn any_adjacent(&self, from: usize, to: usize) -> bool {
        if to < from + 2 {
            return false;
        }
        // Bit i of `pairs` is bit i and bit i + 1 both set; pairs starting in from..to-1.
        let (fw, tw) = (from / 64, (to - 2) / 64);
        for w in fw..=tw {
            let next = self.words.get(w + 1).map_or(0, |n| n << 63);
            let mut pairs = self.words[w] & (self.words[w] >> 1 | next);
            if w == fw {
                pairs &= !0u64 << (from % 64);
            }
            if w == tw {
                pairs &= !0u64 >> (63 - (to - 2) % 64);
            }
            if pairs != 0 {
                return true;
            }
        }
        false
    }

    /// Whether the `n` bits from `from` (which must not cross a word boundary) are all set.
    #[inline(always)]
    pub fn all_set_in_word(&self, from: usize, n: u32) -> bool {
        debug_assert!(from % 64 + n as usize <= 64 && n < 64);
        let Some(w) = self.words.get(from / 64) else {
            return false;
        };
        let m = (1u64 << n) - 1;
        (w >> (from % 64)) & m == m
    }

    /// Whether any bit is set.
    #[inline(always)]
    pub fn any(&self) -> bool {
        self.words.iter().any(|w| *w != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(line: &[u8]) -> [Vec<bool>; 6] {
        let f = |p: fn(u8) -> bool| line.iter().map(|b| p(*b)).collect::<Vec<_>>();
        [
            f(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
            f(|b| b == b'.'),
            f(|b| b.is_ascii_alphanumeric()),
            f(|b| b.is_ascii_hexdigit()),
            f(|b| b == b':'),
            f(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        ]
    }

    fn check(line: &[u8]) {
        let want = reference(line);
        let paths = [Path::Scalar, Path::detect()];
        for p in paths {
            let mut m = Masks::default();
            m.classify(line, p);
            for (k, v) in [&m.host, &m.dot, &m.alnum, &m.hex, &m.colon, &m.v6]
                .into_iter()
                .enumerate()
            {
                let bits = Bits::new(v, line.len());
                for (i, w) in want[k].iter().enumerate() {
                    assert_eq!(bits.get(i), *w, "{p:?} class {k} byte {i} of {line:?}");
                }
                for w in v.iter().enumerate() {
                    let valid = line.len().saturating_sub(w.0 * 64).min(64);
                    assert_eq!(w.1 >> valid.min(63) >> (valid == 64) as u32, 0, "bits past the end");
                }
            }
        }
    }

    #[test]
    fn both_paths_classify_every_byte_value_as_the_reference_does() {
        let all: Vec<u8> = (0..=255u8).collect();
        check(&all);
        let mut twice = all.clone();
        twice.extend(all.iter().rev());
        for n in [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 200, 511] {
            check(&twice[..n]);
        }
    }

    #[test]
    fn adjacency_and_word_run_queries_agree_with_a_byte_walk() {
        let line: Vec<u8> = b"a::b:c:::d 12:34:56 fe80::1 :x: ::".repeat(5);
        let mut m = Masks::default();
        m.classify(&line, Path::detect());
        let colons = Bits::new(&m.colon, line.len());
        let hex = Bits::new(&m.hex, line.len());
        for from in 0..line.len() {
            for to in from..=line.len() {
                let want = line[from..to].windows(2).any(|w| w == b"::");
                assert_eq!(colons.any_adjacent(from, to), want, "{from}..{to}");
            }
            for n in [1u32, 4, 16] {
                if from % 64 + n as usize <= 64 {
                    let want = from + n as usize <= line.len()
                        && line[from..from + n as usize].iter().all(u8::is_ascii_hexdigit);
                    assert_eq!(hex.all_set_in_word(from, n), want, "{from} {n}");
                }
            }
        }
    }

    #[test]
    fn bit_queries_find_runs() {
        let line = b"GET http://a.evil-host.com:8080/x 10.0.0.1";
        let mut m = Masks::default();
        m.classify(line, Path::detect());
        let host = Bits::new(&m.host, line.len());
        let dot = Bits::new(&m.dot, line.len());
        let d = dot.next_one(0).unwrap();
        assert_eq!(&line[host.run_start(d)..host.next_zero(d)], b"a.evil-host.com");
        assert_eq!(dot.count(0, line.len()), 5);
        assert_eq!(host.next_zero(line.len()), line.len());
        assert_eq!(dot.next_one(line.len() - 1), None);
        let long: Vec<u8> = std::iter::repeat_n(b'a', 200).chain(*b" x").collect();
        let mut m = Masks::default();
        m.classify(&long, Path::Scalar);
        let host = Bits::new(&m.host, long.len());
        assert_eq!(host.run_start(150), 0);
        assert_eq!(host.next_zero(3), 200);
        assert_eq!(host.run_start(202), 201);
        assert_eq!(host.count(10, 190), 180);
    }
}
