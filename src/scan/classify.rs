//! Block classification: a line's bytes turned into bitmasks, 64 bytes to a word, so the scanner finds token
//! boundaries with bit operations instead of walking bytes (the way simdjson's stage 1 and `memchr` work).
//!
//! Bit `i` of a mask says whether byte `i` of the line is in the class: a host byte (`[A-Za-z0-9._-]`), a dot, an
//! ASCII letter or digit, a hex digit, a colon, a name byte (letter, `-`, `_`). AVX-512 (F and BW) classifies 64
//! bytes per step straight into mask registers and AVX2 32 bytes per step, whichever the CPU has (runtime
//! detection); the scalar path classifies the same bits byte by byte and is what other CPUs use. Every path must agree bit for bit (the unit tests and
//! `tests/properties.rs` run each one this CPU has); nothing else in the scanner is CPU-specific.

/// Which classification path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 64 bytes a step into mask registers, with a masked load for a line's last partial word.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Path {
    /// The fastest path this CPU supports.
    pub fn detect() -> Path {
        *Self::available().last().expect("the scalar path is always there")
    }

    /// Every path this CPU can run, slowest first: what the tests hold to one another.
    pub fn available() -> Vec<Path> {
        #[allow(unused_mut)]
        let mut paths = vec![Path::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                paths.push(Path::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
                paths.push(Path::Avx512);
            }
        }
        paths
    }
}

/// The masks of one line, reused from line to line: the vectors only grow, and the line's words are the first
/// [`Masks::words`] of each (resizing six vectors to every line's length zeroed memory per line for nothing).
#[derive(Clone, Debug, Default)]
pub struct Masks {
    host: Vec<u64>,
    dot: Vec<u64>,
    alnum: Vec<u64>,
    hex: Vec<u64>,
    colon: Vec<u64>,
    /// Hex digits, colons and dots: the bytes of an IPv6 address in any textual form.
    v6: Vec<u64>,
    /// Letters, `-` and `_`: the host bytes that are neither digits nor dots, so a token without one is a number.
    name: Vec<u64>,
    /// The line's length in bytes; bits at and past it are zero.
    len: usize,
    words: usize,
    summary: Summary,
}

/// What the digest and IPv6 rules ask of the whole line before anything else, found as its words are stored instead
/// of in a loop over them each (whose exits the CPU mispredicts, the line's length being anyone's guess).
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    /// Whether some aligned 16-bit lane of the hex mask is full.
    hex_lane: bool,
    colons: u32,
    /// Whether two colons are adjacent (`::`), which an IPv6 address with fewer than six colons has: a walk over the
    /// colon words for it cost a tenth of the IPv6 rule's instructions.
    double_colon: bool,
    /// The top bit of the colon word added last, for a `::` that crosses into the next.
    colon_top: u64,
}

impl Summary {
    /// Adds a stored word (its bits past the line cleared).
    #[inline(always)]
    fn add(&mut self, hex: u64, colon: u64) {
        self.hex_lane |= has_full_lane(hex);
        self.colons += colon.count_ones();
        self.double_colon |= colon & (colon << 1 | self.colon_top) != 0;
        self.colon_top = colon >> 63;
    }
}

/// One class's bits over the current line.
macro_rules! class_bits {
    ($($name:ident: $doc:literal),*) => {
        impl Masks {
            $(
                #[doc = $doc]
                #[inline(always)]
                pub fn $name(&self) -> Bits<'_> {
                    Bits::new(&self.$name[..self.words], self.len)
                }
            )*
        }
    };
}

class_bits!(
    host: "Host bytes: `[A-Za-z0-9._-]`.",
    dot: "Dots.",
    alnum: "ASCII letters and digits.",
    hex: "Hex digits.",
    colon: "Colons.",
    v6: "Hex digits, colons and dots.",
    name: "Letters, `-` and `_`."
);

const HOST: u8 = 1;
const DOT: u8 = 2;
const ALNUM: u8 = 4;
const HEX: u8 = 8;
const COLON: u8 = 16;
const NAME: u8 = 32;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_alphanumeric() {
            c |= ALNUM | HOST;
        }
        if b.is_ascii_alphabetic() {
            c |= NAME;
        }
        if b.is_ascii_hexdigit() {
            c |= HEX;
        }
        if b == b'.' {
            c |= DOT | HOST;
        }
        if b == b'-' || b == b'_' {
            c |= HOST | NAME;
        }
        if b == b':' {
            c |= COLON;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// [`CLASS`] with class bit `k` moved to bit `8 * k`: one byte lane a class, for [`Masks::scalar_words`].
static SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut k = 0;
        while k < 6 {
            t[i] |= ((CLASS[i] >> k) as u64 & 1) << (8 * k);
            k += 1;
        }
        i += 1;
    }
    t
};

impl Masks {
    /// Whether some aligned 16-bit lane of the hex mask is full: a hex run of 32 or more (any digest) makes one.
    #[inline(always)]
    pub fn has_hex_lane(&self) -> bool {
        self.summary.hex_lane
    }

    /// The colons of the line.
    #[inline(always)]
    pub fn colon_count(&self) -> u32 {
        self.summary.colons
    }

    /// Whether two of the line's colons are adjacent (`::`).
    #[inline(always)]
    pub fn has_double_colon(&self) -> bool {
        self.summary.double_colon
    }

    /// Clears the line summary before a line's words are stored.
    #[inline(always)]
    fn reset_summary(&mut self) {
        self.summary = Summary::default();
    }

    /// The line summary worked out again from the stored words, for a cut line.
    fn summarize(&mut self) {
        self.reset_summary();
        for w in 0..self.words {
            self.summary.add(self.hex[w], self.colon[w]);
        }
    }

    /// Every mask, for what is done to all of them alike.
    fn all_mut(&mut self) -> [&mut Vec<u64>; 7] {
        [
            &mut self.host,
            &mut self.dot,
            &mut self.alnum,
            &mut self.hex,
            &mut self.colon,
            &mut self.v6,
            &mut self.name,
        ]
    }

    /// Classifies `line` with `path`.
    pub fn classify(&mut self, line: &[u8], path: Path) {
        self.classify_within(line, line.len(), path);
    }

    /// Classifies the line `buf[..len]`, where `buf` goes on past the line (the rest of its chunk): the vector path
    /// reads the last partial word straight from `buf` when 64 bytes are there and clears the bits past the line,
    /// instead of copying the tail into a zeroed block, which cost more than classifying a short line's bytes.
    pub fn classify_within(&mut self, buf: &[u8], len: usize, path: Path) {
        let line = &buf[..len];
        let words = line.len().div_ceil(64);
        if self.host.len() < words {
            for v in self.all_mut() {
                v.resize(words, 0);
            }
        }
        self.len = line.len();
        self.words = words;
        self.reset_summary();
        let full = line.len() / 64;
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                // SAFETY: `Path::Avx2` is only returned by `detect` when the CPU has AVX2.
                if buf.len() >= words * 64 {
                    // The last word keeps only the line's bits.
                    let tail = line.len() % 64;
                    let keep = if tail != 0 { !0u64 >> (64 - tail) } else { !0 };
                    // SAFETY: as above; `buf` holds every word read.
                    unsafe { self.avx2_words(buf, 0, words, keep) };
                    return;
                }
                // SAFETY: as above.
                unsafe { self.avx2_words(line, 0, full, !0) };
                if full < words {
                    // The partial last word, from a zero-padded copy: a zero byte is in no class.
                    let mut pad = [0u8; 64];
                    pad[..line.len() - full * 64].copy_from_slice(&line[full * 64..]);
                    // SAFETY: as above; `pad` is one whole word.
                    unsafe { self.avx2_words(&pad, full, words, !0) };
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::Avx512` is only returned by `available` when the CPU has AVX-512 F and BW; the masked
            // load reads no byte past the line.
            Path::Avx512 => unsafe { self.avx512_words(line) },
            Path::Scalar => self.scalar_words(line, 0, words),
        }
    }

    /// Classifies the line that opens `buf`, up to its first `\n` or the end of `buf`, and returns its length
    /// (without the `\n`). The vector paths find the line feed in the same pass as the classes, so a line's bytes
    /// are read once, where a `memchr` for the line's end and then its classification read them twice.
    pub fn classify_line(&mut self, buf: &[u8], path: Path) -> usize {
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::Avx512` is only returned by `available` when the CPU has AVX-512 F and BW.
            Path::Avx512 => unsafe { self.avx512_line(buf) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::Avx2` is only returned by `available` when the CPU has AVX2.
            Path::Avx2 => unsafe { self.avx2_line(buf) },
            Path::Scalar => {
                let len = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
                self.classify_within(buf, len, path);
                len
            }
        }
    }

    /// Cuts the classified line to its first `len` bytes (a `\r` before the `\n`, a line over the cap): the bits
    /// at and past `len` are cleared, as if only those bytes had been classified.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.len = len;
        self.words = len.div_ceil(64);
        if !len.is_multiple_of(64) {
            let (w, keep) = (len / 64, !0u64 >> (64 - len % 64));
            for v in self.all_mut() {
                v[w] &= keep;
            }
        }
        self.summarize();
    }

    /// Room for mask word `w`: the vectors grow by doubling, as a line's length is only known at its end.
    #[inline(always)]
    fn reserve_word(&mut self, w: usize) {
        if w >= self.host.len() {
            let n = (w + 1).max(self.host.len() * 2).max(16);
            for v in self.all_mut() {
                v.resize(n, 0);
            }
        }
    }

    /// Stores word `w` of every mask, only the bits of `keep` (the line's, in the word it ends in), and adds the
    /// word to the line summary.
    #[inline(always)]
    fn put_word(&mut self, w: usize, m: [u64; 7], keep: u64) {
        self.store_word(w, m, keep);
        self.summary.add(m[3] & keep, m[4] & keep);
    }

    /// [`Self::put_word`] without the summary.
    #[inline(always)]
    fn store_word(&mut self, w: usize, m: [u64; 7], keep: u64) {
        // One bounds check for the seven: the vectors are only ever resized together (`all_mut`), so they have
        // one length. Seven checked stores were a fifth of the classifier's instructions.
        assert!(w < self.host.len());
        for (v, x) in self.all_mut().into_iter().zip(m) {
            // SAFETY: every vector has the length of `host`, which the assert above checked.
            unsafe { *v.get_unchecked_mut(w) = x & keep };
        }
    }

    /// Sets the line's length once its words are stored.
    #[inline(always)]
    fn set_len(&mut self, len: usize) -> usize {
        self.len = len;
        self.words = len.div_ceil(64);
        len
    }

    /// Words `from..to` classified a byte at a time with no vector instructions (the tail word may be partial): the
    /// path of CPUs without AVX2. Each byte's classes come from [`SPREAD`] with one class to a byte lane, so eight
    /// bytes' lookups ORed together, each shifted by its place, hold eight bits of every class, one class a lane;
    /// a lane is then one shift and mask. About six operations a byte, where setting each class's bit on its own
    /// took four operations a class and byte.
    fn scalar_words(&mut self, line: &[u8], from: usize, to: usize) {
        for w in from..to {
            let block = &line[w * 64..line.len().min(w * 64 + 64)];
            let mut pad = [0u8; 64];
            let bytes: &[u8; 64] = match block.try_into() {
                Ok(whole) => whole,
                Err(_) => {
                    // A zero byte is in no class.
                    pad[..block.len()].copy_from_slice(block);
                    &pad
                }
            };
            let mut m = [0u64; 6];
            for (g, eight) in bytes.chunks_exact(8).enumerate() {
                let mut lanes = 0u64;
                for (i, &b) in eight.iter().enumerate() {
                    lanes |= SPREAD[b as usize] << i;
                }
                for (k, mask) in m.iter_mut().enumerate() {
                    *mask |= (lanes >> (8 * k) & 0xff) << (8 * g);
                }
            }
            let [h, d, a, x, c, nm] = m;
            self.put_word(w, [h, d, a, x, c, x | c | d, nm], !0);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    /// Words `from..to` of the masks from `block`, whose word 0 is mask word `from`; the last keeps only the bits
    /// of `last_keep`.
    ///
    /// Each byte's classes come from two 16-entry table lookups (`vpshufb`) on its low and high nibble, ANDed:
    /// [`NIBBLE_LO`] and [`NIBBLE_HI`] give every class a bit (or two, for the letters' two ranges), so a class
    /// mask is one AND, compare and `movemask`, instead of range compares per class.
    unsafe fn avx2_words(&mut self, block: &[u8], from: usize, to: usize, last_keep: u64) {
        assert!(block.len() >= (to - from) * 64);
        for w in from..to {
            let (m, _) = avx2_word(block.as_ptr().add((w - from) * 64));
            self.put_word(w, m, if w + 1 == to { last_keep } else { !0 });
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    /// [`Self::classify_line`] 64 bytes a step, the line feeds among them; the last partial word of `buf` from a
    /// zero-padded copy (a zero byte is in no class).
    unsafe fn avx2_line(&mut self, buf: &[u8]) -> usize {
        self.line_words(buf, |rest| {
            if rest.len() >= 64 {
                avx2_word(rest.as_ptr())
            } else {
                let mut pad = [0u8; 64];
                pad[..rest.len()].copy_from_slice(rest);
                avx2_word(pad.as_ptr())
            }
        })
    }

    /// The word loop of [`Self::classify_line`], with `word` classifying the first 64 bytes of what it is given
    /// (or all of it, when fewer); inlined into each path, so `word` is too.
    #[inline(always)]
    fn line_words(&mut self, buf: &[u8], word: impl Fn(&[u8]) -> ([u64; 7], u64)) -> usize {
        let mut w = 0;
        // The summary is kept here while the words are stored: in `self`, each word's stores made the compiler store
        // and load it again.
        let mut sum = Summary::default();
        let len = loop {
            self.reserve_word(w);
            let rest = &buf[w * 64..];
            prefetch_ahead(rest);
            let (m, nl) = word(rest);
            // The line ends at its first line feed: bits from there on are the next line's.
            let keep = if nl != 0 { (1u64 << nl.trailing_zeros()) - 1 } else { !0 };
            self.store_word(w, m, keep);
            sum.add(m[3] & keep, m[4] & keep);
            if nl != 0 {
                break w * 64 + nl.trailing_zeros() as usize;
            }
            if rest.len() <= 64 {
                break buf.len();
            }
            w += 1;
        };
        self.summary = sum;
        self.set_len(len)
    }
}

/// How far ahead of the classifier [`prefetch_ahead`] asks for the input: 1-3 KiB measured alike (`scan --threads
/// 1` at 1M, six interleaved rounds of 1,024, 1,536, 2,048 and 3,072), 8 KiB less so.
const PREFETCH_BYTES: usize = 2048;

/// Asks for the cache line [`PREFETCH_BYTES`] past the start of `rest`. Nearly half the classifier's samples sat on
/// the load of each word's bytes: the hardware's own prefetch does not keep up with a scan that restarts at every
/// line (and stops at every 4 KiB page), so the vector paths ask for the input one line or so ahead themselves.
#[inline(always)]
fn prefetch_ahead(rest: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch is a hint: it never faults, whatever the address (`wrapping_add` makes no claim that
        // the address is in bounds).
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                rest.as_ptr().wrapping_add(PREFETCH_BYTES) as *const i8,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = rest;
}

/// One 64-byte word's masks (host, dot, alnum, hex, colon, v6, name) and its line feeds, from two 32-byte halves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_word(p: *const u8) -> ([u64; 7], u64) {
    use std::arch::x86_64::*;
    /// Bits of 32 lanes where some bit of `set` is on in the lane's class byte.
    #[inline(always)]
    unsafe fn any(cls: __m256i, set: u8) -> u32 {
        let t = _mm256_and_si256(cls, _mm256_set1_epi8(set as i8));
        !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(t, _mm256_setzero_si256())) as u32)
    }
    #[inline(always)]
    unsafe fn half(p: *const u8) -> [u32; 7] {
        let lo_tbl = _mm256_loadu_si256(NIBBLE_LO_X2.as_ptr() as *const __m256i);
        let hi_tbl = _mm256_loadu_si256(NIBBLE_HI_X2.as_ptr() as *const __m256i);
        let nib = _mm256_set1_epi8(0x0f);
        let v = _mm256_loadu_si256(p as *const __m256i);
        let lo = _mm256_and_si256(v, nib);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
        let cls = _mm256_and_si256(_mm256_shuffle_epi8(lo_tbl, lo), _mm256_shuffle_epi8(hi_tbl, hi));
        [
            any(cls, C_HOST),
            // The dot is the class byte's top bit: its mask is the sign bits themselves.
            _mm256_movemask_epi8(cls) as u32,
            any(cls, C_ALNUM),
            any(cls, C_HEX),
            // The colon is bit 6: shifted into the sign bit (a 16-bit shift moves no byte's bit 6 across).
            _mm256_movemask_epi8(_mm256_slli_epi16::<1>(cls)) as u32,
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\n' as i8))) as u32,
            any(cls, C_NAME),
        ]
    }
    let (lo, hi) = (half(p), half(p.add(32)));
    let j = |k: usize| lo[k] as u64 | (hi[k] as u64) << 32;
    ([j(0), j(1), j(2), j(3), j(4), j(1) | j(3) | j(4), j(6)], j(5))
}

impl Masks {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    /// Every word of the masks of `line`, as [`Self::avx2_words`] computes them, but 64 bytes per step and each
    /// class straight into a mask register (`vptestmb`), with no byte-mask-to-bits step; the last partial word is a
    /// masked load, which reads nothing past the line, so no bit past it is ever set.
    unsafe fn avx512_words(&mut self, line: &[u8]) {
        for w in 0..self.words {
            let (m, _) = avx512_word(&line[w * 64..]);
            self.put_word(w, m, !0);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    /// [`Self::classify_line`] 64 bytes a step, the line feeds among them.
    unsafe fn avx512_line(&mut self, buf: &[u8]) -> usize {
        self.line_words(buf, |rest| avx512_word(rest))
    }
}

/// The masks (host, dot, alnum, hex, colon, v6, name) and line feeds of the first 64 bytes of `bytes`, or of all of them
/// when fewer: a masked load, which reads no byte past `bytes`, so no bit past them is set.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn avx512_word(bytes: &[u8]) -> ([u64; 7], u64) {
    use std::arch::x86_64::*;
    let lo_tbl = _mm512_broadcast_i32x4(_mm_loadu_si128(NIBBLE_LO.as_ptr() as *const __m128i));
    let hi_tbl = _mm512_broadcast_i32x4(_mm_loadu_si128(NIBBLE_HI.as_ptr() as *const __m128i));
    let nib = _mm512_set1_epi8(0x0f);
    let set = |c: u8| _mm512_set1_epi8(c as i8);
    let keep: __mmask64 = if bytes.len() >= 64 {
        !0
    } else {
        (1u64 << bytes.len()) - 1
    };
    // SAFETY: the mask covers only bytes of `bytes`; masked-off bytes are not read.
    let v = _mm512_maskz_loadu_epi8(keep, bytes.as_ptr() as *const i8);
    let lo = _mm512_and_si512(v, nib);
    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nib);
    let cls = _mm512_and_si512(_mm512_shuffle_epi8(lo_tbl, lo), _mm512_shuffle_epi8(hi_tbl, hi));
    (
        [
            _mm512_test_epi8_mask(cls, set(C_HOST)),
            // The dot is the class byte's top bit.
            _mm512_movepi8_mask(cls),
            _mm512_test_epi8_mask(cls, set(C_ALNUM)),
            _mm512_test_epi8_mask(cls, set(C_HEX)),
            _mm512_test_epi8_mask(cls, set(C_COLON)),
            _mm512_test_epi8_mask(cls, set(C_HEX | C_COLON | C_DOT)),
            _mm512_test_epi8_mask(cls, set(C_NAME)),
        ],
        _mm512_mask_cmpeq_epi8_mask(keep, v, set(b'\n')),
    )
}

/// Whether one of `x`'s four aligned 16-bit lanes is all ones: whether `!x` has a zero lane, by the borrow test
/// for a zero lane (exact for whether there is one). It runs on every word of every line, so it is not the lane
/// walk's formula (which must know which lanes are full), at about twice the operations.
#[inline(always)]
pub(crate) fn has_full_lane(x: u64) -> bool {
    let y = !x;
    y.wrapping_sub(0x0001_0001_0001_0001) & !y & 0x8000_8000_8000_8000 != 0
}

/// Class bits of the nibble tables: a byte is in a bit's class when both of its nibbles' entries have the bit.
const C_DIGIT: u8 = 0x01; // high 3, low 0-9
const C_HEX_LETTER: u8 = 0x02; // high 4 or 6, low 1-6: A-F, a-f
const C_LETTER_1: u8 = 0x04; // high 4 or 6, low 1-F: A-O, a-o
const C_LETTER_2: u8 = 0x08; // high 5 or 7, low 0-A: P-Z, p-z
const C_DASH: u8 = 0x10; // 0x2D
const C_UNDER: u8 = 0x20; // 0x5F
const C_COLON: u8 = 0x40; // 0x3A
const C_DOT: u8 = 0x80; // 0x2E
const C_ALNUM: u8 = C_DIGIT | C_LETTER_1 | C_LETTER_2;
const C_HOST: u8 = C_ALNUM | C_DASH | C_UNDER | C_DOT;
const C_HEX: u8 = C_DIGIT | C_HEX_LETTER;
const C_NAME: u8 = C_LETTER_1 | C_LETTER_2 | C_DASH | C_UNDER;

/// Class bits allowed by a byte's low nibble.
const NIBBLE_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = C_LETTER_1 * (i >= 1) as u8;
        if i <= 9 {
            c |= C_DIGIT;
        }
        if i >= 1 && i <= 6 {
            c |= C_HEX_LETTER;
        }
        if i <= 0xA {
            c |= C_LETTER_2;
        }
        if i == 0xA {
            c |= C_COLON;
        }
        if i == 0xD {
            c |= C_DASH;
        }
        if i == 0xE {
            c |= C_DOT;
        }
        if i == 0xF {
            c |= C_UNDER;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Class bits allowed by a byte's high nibble (none for bytes of 0x80 and up).
const NIBBLE_HI: [u8; 16] = {
    let mut t = [0u8; 16];
    t[2] = C_DASH | C_DOT;
    t[3] = C_DIGIT | C_COLON;
    t[4] = C_HEX_LETTER | C_LETTER_1;
    t[5] = C_LETTER_2 | C_UNDER;
    t[6] = C_HEX_LETTER | C_LETTER_1;
    t[7] = C_LETTER_2;
    t
};

/// The tables twice over: `vpshufb` looks up within each 16-byte lane.
static NIBBLE_LO_X2: [u8; 32] = twice(NIBBLE_LO);
static NIBBLE_HI_X2: [u8; 32] = twice(NIBBLE_HI);

const fn twice(t: [u8; 16]) -> [u8; 32] {
    let mut o = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        o[i] = t[i % 16];
        i += 1;
    }
    o
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

    /// The last set bit in `from..to`.
    #[inline(always)]
    pub fn prev_one(&self, from: usize, to: usize) -> Option<usize> {
        if to <= from {
            return None;
        }
        let mut w = (to - 1) / 64;
        let mut m = self.words[w] & (!0u64 >> (63 - (to - 1) % 64));
        loop {
            if m != 0 {
                let i = w * 64 + 63 - m.leading_zeros() as usize;
                return (i >= from).then_some(i);
            }
            if w * 64 <= from {
                return None;
            }
            w -= 1;
            m = self.words[w];
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

    /// Bits `start..start + 64` as one word, bit 0 being bit `start` (bits past the line are clear): a token of up
    /// to 64 bytes is then tested with a handful of word operations, where the range queries above loop over words.
    #[inline(always)]
    pub fn window(&self, start: usize) -> u64 {
        let (w, b) = (start / 64, start % 64);
        let lo = self.words.get(w).copied().unwrap_or(0) >> b;
        let hi = self.words.get(w + 1).copied().unwrap_or(0);
        // `hi << (64 - b)` in two shifts, so `b == 0` shifts `hi` out instead of overflowing.
        lo | (hi << 1) << (63 - b)
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

    fn reference(line: &[u8]) -> [Vec<bool>; 7] {
        let f = |p: fn(u8) -> bool| line.iter().map(|b| p(*b)).collect::<Vec<_>>();
        [
            f(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
            f(|b| b == b'.'),
            f(|b| b.is_ascii_alphanumeric()),
            f(|b| b.is_ascii_hexdigit()),
            f(|b| b == b':'),
            f(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
            f(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_')),
        ]
    }

    /// The line summary from the bytes: a full aligned 16-byte block of hex digits, the colons, and whether two
    /// colons are adjacent.
    fn summary(line: &[u8]) -> (bool, u32, bool) {
        let lane = line.chunks_exact(16).any(|c| c.iter().all(u8::is_ascii_hexdigit));
        let twin = line.windows(2).any(|p| p == b"::");
        (lane, line.iter().filter(|b| **b == b':').count() as u32, twin)
    }

    /// The line summary the classifier kept.
    fn kept(m: &Masks) -> (bool, u32, bool) {
        (m.has_hex_lane(), m.colon_count(), m.has_double_colon())
    }

    /// `line` classified on `path` whole and as its end is found, each with the summary of its bytes.
    fn both_ways(line: &[u8], path: Path, what: &str) -> [Masks; 2] {
        let (mut a, mut b) = (Masks::default(), Masks::default());
        a.classify(line, path);
        b.classify_line(line, path);
        for m in [&a, &b] {
            assert_eq!(kept(m), summary(line), "{path:?} {what}");
        }
        [a, b]
    }

    /// Every class's words over the line classified.
    fn words(m: &Masks) -> [&[u64]; 7] {
        [m.host(), m.dot(), m.alnum(), m.hex(), m.colon(), m.v6(), m.name()].map(|b| b.words)
    }

    fn check(line: &[u8]) {
        let want = reference(line);
        for p in Path::available() {
            let mut m = Masks::default();
            m.classify(line, p);
            assert_eq!(kept(&m), summary(line), "{p:?} {line:?}");
            for (k, v) in [&m.host, &m.dot, &m.alnum, &m.hex, &m.colon, &m.v6, &m.name]
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
    fn a_line_classified_inside_its_buffer_has_the_masks_of_the_line_alone() {
        let buf: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        for len in [0, 1, 5, 63, 64, 65, 100, 128, 300, 636, 637, 699, 700] {
            for path in Path::available() {
                let (mut alone, mut within) = (Masks::default(), Masks::default());
                alone.classify(&buf[..len], path);
                within.classify_within(&buf, len, path);
                assert_eq!(words(&alone), words(&within), "{path:?} {len}");
            }
        }
    }

    #[test]
    fn a_line_classified_as_its_end_is_found_has_the_masks_of_the_line_alone() {
        let mut bytes: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n').cycle().take(800).collect();
        let mut reused = Masks::default();
        for end in [0usize, 1, 5, 63, 64, 65, 100, 127, 128, 129, 300, 636, 637, 698] {
            for tail in [0usize, 1, 2, 63, 64, 65] {
                // A line feed at `end` with `tail` bytes after it, or no line feed when the bytes stop first.
                let mut buf = bytes[..end].to_vec();
                if tail > 0 {
                    buf.push(b'\n');
                    buf.extend_from_slice(&bytes[end..end + tail - 1]);
                }
                for path in Path::available() {
                    let mut alone = Masks::default();
                    alone.classify(&buf[..end], path);
                    for m in [&mut Masks::default(), &mut reused] {
                        assert_eq!(m.classify_line(&buf, path), end, "{path:?} {end} {tail}");
                        assert_eq!((m.len, m.words), (alone.len, alone.words), "{path:?} {end} {tail}");
                        assert_eq!(words(m), words(&alone), "{path:?} {end} {tail}");
                        let got = kept(m);
                        assert_eq!(got, summary(&buf[..end]), "{path:?} {end} {tail}");
                    }
                }
            }
            bytes.rotate_left(7);
        }
    }

    #[test]
    fn the_line_summary_is_that_of_the_bytes_on_every_path() {
        let mut seen = [0usize; 2];
        for at in 0..80 {
            for run in [15, 16, 31, 32, 40] {
                let mut line = b"x:y ".repeat(at / 4 + 1);
                line.truncate(at);
                line.extend(std::iter::repeat_n(b'a', run));
                line.extend_from_slice(b" 12:34 fe80::1 ");
                for path in Path::available() {
                    let [a, _] = both_ways(&line, path, &format!("{at} {run}"));
                    seen[a.has_hex_lane() as usize] += 1;
                }
            }
        }
        assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
    }

    #[test]
    fn a_double_colon_is_seen_wherever_it_falls_and_only_when_adjacent() {
        let mut seen = [0usize; 2];
        for at in 0..140 {
            for pair in [&b"::"[..], b":a:", b": :", b":.:"] {
                let mut line = b"x".repeat(at);
                line.extend_from_slice(pair);
                line.extend_from_slice(&b"x".repeat(70));
                for path in Path::available() {
                    let [a, mut b] = both_ways(&line, path, &format!("{at} {pair:?}"));
                    // Cut between the two colons: the pair is gone.
                    b.truncate(at + 1);
                    assert_eq!(kept(&b), summary(&line[..at + 1]), "{path:?} {at} {pair:?} cut");
                    seen[a.has_double_colon() as usize] += 1;
                }
            }
        }
        assert!(seen[0] > 100 && seen[1] > 100, "{seen:?}");
    }

    #[test]
    fn a_truncated_line_has_the_masks_of_its_first_bytes() {
        let line: Vec<u8> = b"a.b:c 10.0.0.1 fe80::1 d41d8cd98f00b204e9800998ecf8427e\r".repeat(6);
        for path in Path::available() {
            for len in [0, 1, 30, 63, 64, 65, 200, line.len() - 1] {
                let (mut cut, mut alone) = (Masks::default(), Masks::default());
                cut.classify_line(&line, path);
                cut.truncate(len);
                alone.classify(&line[..len], path);
                assert_eq!((cut.len, cut.words), (alone.len, alone.words));
                assert_eq!(words(&cut), words(&alone), "{path:?} {len}");
                assert_eq!(kept(&cut), summary(&line[..len]), "{path:?} {len}");
            }
        }
    }

    #[test]
    fn a_short_line_after_a_long_one_sees_none_of_the_long_ones_words() {
        let long = b"a.b.c:d ".repeat(40);
        let short = b"x.y";
        let mut reused = Masks::default();
        reused.classify(&long, Path::detect());
        reused.classify(short, Path::detect());
        let mut fresh = Masks::default();
        fresh.classify(short, Path::detect());
        for (a, b) in [
            (reused.host(), fresh.host()),
            (reused.dot(), fresh.dot()),
            (reused.colon(), fresh.colon()),
            (reused.name(), fresh.name()),
        ] {
            assert_eq!(a.words, b.words);
            assert_eq!(a.next_one(1), b.next_one(1));
            assert_eq!(a.window(0), b.window(0));
        }
        assert_eq!(reused.dot().next_one(2), None);
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
            for to in from..=line.len() {
                let want = (from..to).rev().find(|&i| line[i] == b':');
                assert_eq!(colons.prev_one(from, to), want, "prev_one {from}..{to}");
            }
            let want = (0..64)
                .filter(|i| line.get(from + i) == Some(&b':'))
                .fold(0u64, |w, i| w | 1 << i);
            assert_eq!(colons.window(from), want, "window {from}");
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
