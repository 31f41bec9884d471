//! Matching one line against a snapshot: the contract of the matching rules lives here.
//!
//! The line is classified into bitmasks ([`super::classify`]), which split it into host tokens (maximal runs of
//! `[A-Za-z0-9._-]`). Each token with a dot is walked once right to left, hashing as it goes, and every label suffix
//! is probed in the host table; dotted quads inside it are parsed as IPv4; alphanumeric runs of a digest's length
//! are probed as hashes. IPv6 needs `:` and is looked for only around the line's colons.

#[cfg(test)]
use super::classify::has_full_lane;
use super::classify::{Bits, Masks, Path};
use crate::indicator::{is_email_local_byte, is_fuzzy_byte, TLSH_HEX};
use crate::snapshot::ids::{self, NONE};
use crate::snapshot::keys::{ends_in_digit_label, hash_key, LabelHasher, LAST_TWO_SALT};
use crate::snapshot::layout::{EXTRA_EMAIL, EXTRA_URL};
use crate::snapshot::{Compiled, Overlay, Snapshot};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One indicator found in a line, with the byte span of the text that matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub indicator: u32,
    pub start: u32,
    pub end: u32,
}

/// One compiled layout being probed: the base (its ids as they are, minus those the overlay masks) or the overlay
/// (its ids after the base's). The matching rules below are written once, against this.
#[derive(Clone, Copy)]
struct Probe<'a> {
    c: &'a Compiled,
    offset: u32,
    mask: Option<&'a Overlay>,
}

impl Probe<'_> {
    #[inline(always)]
    fn push(&self, hits: &mut Vec<Hit>, id: u32, start: usize, end: usize) {
        if self.mask.is_some_and(|o| o.is_masked(id)) {
            return;
        }
        let indicator = id + self.offset;
        if !hits.iter().any(|h| h.indicator == indicator) {
            hits.push(Hit {
                indicator,
                start: start as u32,
                end: end as u32,
            });
        }
    }
}

/// Per-thread scratch for [`scan_line`]: the line's masks and the classification path.
#[derive(Debug)]
pub struct Scratch {
    masks: Masks,
    path: Path,
    /// The line's candidate ends and host-run starts, a word of each per mask word.
    ends: (Vec<u64>, Vec<u64>),
}

impl Scratch {
    /// Scratch using the fastest classification path this CPU has.
    pub fn new() -> Self {
        Self::with_path(Path::detect())
    }

    /// Scratch using a given path: for tests that check the paths agree.
    pub fn with_path(path: Path) -> Self {
        Scratch {
            masks: Masks::default(),
            path,
            ends: (Vec::new(), Vec::new()),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
}

/// Finds every distinct indicator in `line` (without its `\n`/`\r`). `hits` is cleared first and reused, so a
/// caller scanning many lines allocates nothing. Uses a per-thread [`Scratch`]; [`scan_line_with`] takes one.
pub fn scan_line(snap: &Snapshot, line: &[u8], hits: &mut Vec<Hit>) {
    SCRATCH.with(|s| scan_line_with(snap, line, &mut s.borrow_mut(), hits));
}

/// [`scan_line`] with the caller's scratch.
///
/// The line is classified into bitmasks first (host bytes, dots, alphanumerics, hex digits, colons), and the scan
/// jumps from one candidate to the next with bit operations: every host indicator and every IPv4 address contains a
/// dot, so each dotted host token is taken whole around one; a hash is an alphanumeric run of at least 32 bytes, so
/// it must cover one of every 32 positions, and only those positions are looked at; IPv6 and colon-pair digests
/// need a colon.
pub fn scan_line_with(snap: &Snapshot, line: &[u8], scratch: &mut Scratch, hits: &mut Vec<Hit>) {
    scan_line_within(snap, line, line.len(), scratch, hits);
}

/// [`scan_line_with`] on the line `buf[..len]`, where `buf` is the rest of the chunk the line is in: the
/// classification may read past the line (never past `buf`), so a chunk's lines need no copy of their tails.
pub fn scan_line_within(snap: &Snapshot, buf: &[u8], len: usize, scratch: &mut Scratch, hits: &mut Vec<Hit>) {
    scratch.masks.classify_within(buf, len, scratch.path);
    scan_classified(snap, &buf[..len], scratch, hits);
}

impl Scratch {
    /// Classifies the line that opens `buf` (up to its `\n` or the end of `buf`) and returns its length: the line
    /// feed is found in the same pass, for [`scan_classified`].
    pub(crate) fn classify_line(&mut self, buf: &[u8]) -> usize {
        self.masks.classify_line(buf, self.path)
    }

    /// Cuts the line just classified to `len` bytes (its `\r`, the line cap).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.masks.truncate(len);
    }
}

/// [`scan_line_with`] on a line whose masks `scratch` holds already ([`Scratch::classify_line`]).
pub(crate) fn scan_classified(snap: &Snapshot, line: &[u8], scratch: &mut Scratch, hits: &mut Vec<Hit>) {
    hits.clear();
    let (masks, path, ends) = (&scratch.masks, scratch.path, &mut scratch.ends);
    let json = is_json_line(line);
    let base = Probe {
        c: &snap.base,
        offset: 0,
        mask: snap.overlay.as_ref(),
    };
    probe_line(base, line, masks, path, ends, json, hits);
    if let Some(o) = &snap.overlay {
        let over = Probe {
            c: &o.compiled,
            offset: snap.base.len() as u32,
            mask: None,
        };
        probe_line(over, line, masks, path, ends, json, hits);
    }
}

/// Every rule, against one layout, over a classified line.
#[inline]
#[allow(clippy::too_many_arguments)]
fn probe_line(
    snap: Probe,
    line: &[u8],
    m: &Masks,
    path: Path,
    ends: &mut (Vec<u64>, Vec<u64>),
    json: bool,
    hits: &mut Vec<Hit>,
) {
    let n = line.len();
    let host = m.host();
    let ips = &snap.c.t.ips;
    let want_v4 = ips.has_v4();
    let want_hosts = !snap.c.t.hosts.is_empty();
    let skip_digit_tld = snap.c.no_digit_tld();
    let rules = TokenRules {
        want_v4,
        want_hosts,
        skip_digit_tld,
        json,
        // Every vector path's CPU has SSSE3 and SSE4.1.
        shuffle_quads: path != Path::Scalar,
    };
    if want_v4 || want_hosts {
        // Only the tokens a rule can match, each taken from its last byte. Every path writes each word's candidate
        // ends and host-run starts into `ends`, and one loop visits them: a loop that asked an iterator or the arrays,
        // whichever the path had, paid for that choice on every word (2-5% of the scan, on every path).
        #[cfg(target_arch = "x86_64")]
        let vector = path == Path::Avx512;
        #[cfg(not(target_arch = "x86_64"))]
        let vector = false;
        if vector {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Path::Avx512` is only chosen when the CPU has AVX-512 F and BW.
            unsafe {
                candidate_words_avx512(m, !skip_digit_tld, ends)
            };
        } else {
            Candidates::new(m, !skip_digit_tld).write_words(ends);
        }
        let words = m.host().words.len();
        for (w, (mut x, &starts)) in ends.0[..words].iter().copied().zip(&ends.1[..words]).enumerate() {
            while x != 0 {
                let last = x.trailing_zeros();
                let end = w * 64 + last as usize + 1;
                x &= x - 1;
                // The token starts at the last run start at or before its last byte: in this word unless the token
                // began in an earlier one.
                let before = starts & (!0u64 >> (63 - last));
                let start = if before != 0 {
                    w * 64 + 63 - before.leading_zeros() as usize
                } else {
                    host.run_start(end)
                };
                host_token(snap, line, m, start, end, rules, hits);
            }
        }
    }
    // A run of 32 holds a whole aligned 16-bit lane of the hex mask; nine lines in ten have none.
    if !snap.c.t.hashes.is_empty() && n >= 32 && m.has_hex_lane() {
        let (alnum, hex) = (m.alnum(), m.hex());
        hash_runs(snap, line, alnum, hex, json, hits);
    }
    let c = snap.c;
    let want_ip = want_v4 || ips.has_v6() || !c.t.v6urls.is_empty();
    let want_pairs = n >= 47 && (c.has_hash_len(32) || c.has_hash_len(40) || c.has_hash_len(64));
    let colons = m.colon();
    let k = m.colon_count();
    if (want_ip || want_pairs || c.has_fuzzy()) && k > 0 {
        if (want_ip || want_pairs) && colon_kinds(k, || m.has_double_colon(), want_ip, want_pairs) != (false, false) {
            let v6 = m.v6();
            colon_runs(snap, line, colons, v6, json, want_ip, want_pairs, hits);
        }
        if c.has_fuzzy() {
            fuzzy_hashes(snap, line, hits);
        }
    }
}

/// What the host-token rules need to know of the layout and the line.
#[derive(Clone, Copy)]
struct TokenRules {
    want_v4: bool,
    want_hosts: bool,
    skip_digit_tld: bool,
    json: bool,
    /// Whether [`bare_quad`] reads the octets with a byte shuffle ([`quad_shuffled`]).
    shuffle_quads: bool,
}

/// The host and IPv4 rules on the host token `line[start..end]` (a whole run of host bytes).
#[inline(always)]
fn host_token(snap: Probe, line: &[u8], m: &Masks, start: usize, end: usize, r: TokenRules, hits: &mut Vec<Hit>) {
    let dots = m.dot();
    let start = if r.json { past_escape(line, start) } else { start };
    if end - start <= 64 {
        // Most tokens: their dots and name bytes as one word each.
        let Some(t) = Token::of(start, end, dots, m.name()) else {
            return;
        };
        if r.want_v4 && t.dots.count_ones() >= 3 {
            if t.is_number() && t.dots.count_ones() == 3 {
                bare_quad(snap, line, &t, r.shuffle_quads, hits);
            } else if t.may_hold_quad() {
                ipv4_in_token(snap, line, start, t.end, hits);
            }
        }
        if r.want_hosts && !(r.skip_digit_tld && t.ends_in_digit_label()) {
            let mut left = t.dots;
            let prev_dot = || {
                let i = 63u32.checked_sub(left.leading_zeros())?;
                left &= !(1 << i);
                Some(start + i as usize)
            };
            host_suffixes(snap, line, prev_dot, start, t.end, r.json, hits);
        }
        return;
    }
    let mut end = end;
    while end > start && line[end - 1] == b'.' {
        end -= 1;
    }
    if end == start {
        return;
    }
    if r.want_v4 && dots.count(start, end) >= 3 {
        ipv4_in_token(snap, line, start, end, hits);
    }
    if r.want_hosts && !(r.skip_digit_tld && ends_in_digit_label(&line[start..end])) {
        let mut to = end;
        let prev_dot = || {
            let d = dots.prev_one(start, to)?;
            to = d;
            Some(d)
        };
        host_suffixes(snap, line, prev_dot, start, end, r.json, hits);
    }
}

/// The last bytes of the host tokens a host or IPv4 rule can match, a mask word at a time, found with word
/// operations before any token is looked at: tokens with a dot and a name byte (letter, `-`, `_`), and tokens with
/// three dots spaced as a dotted quad's are (2-4 bytes apart). About half of a log's dotted tokens are neither
/// (`0.000383`, `1588317835.607001`, `5.0`, `537.36`): they can hold no address and end in a digit label, which no
/// host key does unless `numbers_too`, so they cost no branch of their own. With `numbers_too`, every token with a
/// dot.
///
/// A run's seeds are marked from the first one to the run's end by one addition: `(run & !seeds) + run_starts`
/// carries from each run's start through its bytes up to its first seed, and past the run's end when it has none.
/// The carries go on from word to word, so a token may cross words.
struct Candidates<'a> {
    host: &'a [u64],
    dots: &'a [u64],
    name: &'a [u64],
    numbers_too: bool,
    w: usize,
    carry_dot: bool,
    carry_name: bool,
    carry_quad: bool,
    /// Dots followed by another 2-4 bytes on, in word `w`.
    spaced: u64,
}

impl<'a> Candidates<'a> {
    fn new(m: &'a Masks, numbers_too: bool) -> Self {
        let mut c = Candidates {
            host: m.host().words,
            dots: m.dot().words,
            name: m.name().words,
            numbers_too,
            w: 0,
            carry_dot: false,
            carry_name: false,
            carry_quad: false,
            spaced: 0,
        };
        c.spaced = c.spaced_at(0);
        c
    }

    /// Bit i: one of bits i + 2..=i + 4 is set (`next` is the word after `x`).
    #[inline(always)]
    fn ahead(x: u64, next: u64) -> u64 {
        (x >> 2 | next << 62) | (x >> 3 | next << 61) | (x >> 4 | next << 60)
    }

    #[inline(always)]
    fn at(v: &[u64], w: usize) -> u64 {
        v.get(w).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn spaced_at(&self, w: usize) -> u64 {
        let d = Self::at(self.dots, w);
        d & Self::ahead(d, Self::at(self.dots, w + 1))
    }

    /// Every word's candidate ends and host-run starts, into `out`, as [`candidate_words_avx512`] writes them.
    fn write_words(mut self, out: &mut (Vec<u64>, Vec<u64>)) {
        room_for(out, self.host.len());
        while let Some((w, x, starts)) = self.next_word() {
            out.0[w] = x;
            out.1[w] = starts;
        }
    }

    /// The next word's index, candidate ends and host-run starts, until the line's words run out.
    #[inline(always)]
    fn next_word(&mut self) -> Option<(usize, u64, u64)> {
        let w = self.w;
        let (&h, &d) = (self.host.get(w)?, self.dots.get(w)?);
        self.w += 1;
        let before = if w > 0 { self.host[w - 1] >> 63 } else { 0 };
        let starts = h & !(h << 1 | before);
        let last = h & !(h >> 1 | Self::at(self.host, w + 1) << 63);
        // Each seeded run, from its first seed to its end; `carry` goes on into the next word.
        let fill = |seeds: u64, carry: &mut bool| {
            let (z, c1) = (h & !seeds).overflowing_add(starts);
            let (z, c2) = z.overflowing_add(*carry as u64);
            *carry = c1 | c2;
            (z | seeds) & h
        };
        let with_dot = fill(d, &mut self.carry_dot);
        if self.numbers_too {
            return Some((w, last & with_dot, starts));
        }
        let spaced_next = self.spaced_at(w + 1);
        // A dot followed by dots 2-4 and then 2-4 bytes on: the first dot of every dotted quad is one.
        let quad = d & Self::ahead(self.spaced, spaced_next);
        self.spaced = spaced_next;
        let named = fill(self.name[w], &mut self.carry_name);
        Some((
            w,
            last & ((named & with_dot) | fill(quad, &mut self.carry_quad)),
            starts,
        ))
    }
}

/// Grows both of a line's candidate arrays ([`Scratch`]'s `ends`) to at least `words` words; they only grow.
#[inline]
fn room_for(out: &mut (Vec<u64>, Vec<u64>), words: usize) {
    for v in [&mut out.0, &mut out.1] {
        if v.len() < words {
            v.resize(words, 0);
        }
    }
}

/// [`Candidates`] for a whole line, eight mask words a step in the lanes of AVX-512 registers, into `out` (each
/// word's candidate ends and host-run starts). The carries of the three seeded fills cross lanes as in wide-integer
/// addition: a lane's carry-out goes into the next, and on through lanes whose sum is all ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn candidate_words_avx512(m: &Masks, numbers_too: bool, out: &mut (Vec<u64>, Vec<u64>)) {
    use std::arch::x86_64::*;
    let (host, dots, name) = (m.host().words, m.dot().words, m.name().words);
    let n = host.len();
    let blocks = n.div_ceil(8);
    room_for(out, blocks * 8);
    let one = _mm512_set1_epi64(1);
    let all = _mm512_set1_epi64(-1);
    // Lanes of word `i + off` on that are still in the line.
    let lanes = |i: usize, off: usize| -> __mmask8 { ((1u16 << n.saturating_sub(i + off).min(8)) - 1) as u8 };
    // SAFETY (every load): the mask keeps only lanes inside the slice, and masked-off lanes are not read.
    let load = |v: &[u64], i: usize, off: usize| {
        _mm512_maskz_loadu_epi64(lanes(i, off), v.as_ptr().wrapping_add(i + off) as *const i64)
    };
    let ahead = |x: __m512i, nx: __m512i| {
        let a = _mm512_or_si512(_mm512_srli_epi64::<2>(x), _mm512_slli_epi64::<62>(nx));
        let b = _mm512_or_si512(_mm512_srli_epi64::<3>(x), _mm512_slli_epi64::<61>(nx));
        let c = _mm512_or_si512(_mm512_srli_epi64::<4>(x), _mm512_slli_epi64::<60>(nx));
        _mm512_or_si512(_mm512_or_si512(a, b), c)
    };
    // The carries out of the last lane, one fill to each 16 bits (dots, name bytes, quads), as `lane_carries` keeps
    // them.
    let (mut prev, mut carries) = (_mm512_setzero_si512(), 0u64);
    for b in 0..blocks {
        let i = b * 8;
        let h = load(host, i, 0);
        let h_next = load(host, i + 1, 0);
        let before = _mm512_srli_epi64::<63>(_mm512_alignr_epi64::<7>(h, prev));
        prev = h;
        let starts = _mm512_andnot_si512(_mm512_or_si512(_mm512_slli_epi64::<1>(h), before), h);
        let last = _mm512_andnot_si512(
            _mm512_or_si512(_mm512_srli_epi64::<1>(h), _mm512_slli_epi64::<63>(h_next)),
            h,
        );
        // Each seeded run from its first seed to its end, as `Candidates::next_word`'s `fill`, in two halves: each
        // lane's sum, and which lanes generate and propagate a carry; then, once `lane_carries` has the carries
        // into each lane, the run bits.
        let sum = |seeds: __m512i| {
            let a = _mm512_andnot_si512(seeds, h);
            let sum = _mm512_add_epi64(a, starts);
            let generate = _mm512_cmplt_epu64_mask(sum, a) as u64;
            let propagate = _mm512_cmpeq_epi64_mask(sum, all) as u64;
            (sum, generate, propagate)
        };
        let fill = |seeds: __m512i, sum: __m512i, into: u64| {
            let z = _mm512_mask_add_epi64(sum, into as u8, sum, one);
            _mm512_and_si512(_mm512_or_si512(z, seeds), h)
        };
        let d = load(dots, i, 0);
        let (dot_sum, g, p) = sum(d);
        let cand = if numbers_too {
            let into = lane_carries(g, p, &mut carries);
            _mm512_and_si512(last, fill(d, dot_sum, into))
        } else {
            let (d1, d2) = (load(dots, i, 1), load(dots, i, 2));
            let spaced = _mm512_and_si512(d, ahead(d, d1));
            let spaced_next = _mm512_and_si512(d1, ahead(d1, d2));
            let quad = _mm512_and_si512(d, ahead(spaced, spaced_next));
            let nm = load(name, i, 0);
            let (name_sum, name_g, name_p) = sum(nm);
            let (quad_sum, quad_g, quad_p) = sum(quad);
            let into = lane_carries(
                g | name_g << 16 | quad_g << 32,
                p | name_p << 16 | quad_p << 32,
                &mut carries,
            );
            let with_dot = fill(d, dot_sum, into);
            let named = fill(nm, name_sum, into >> 16);
            let quads = fill(quad, quad_sum, into >> 32);
            _mm512_and_si512(last, _mm512_or_si512(_mm512_and_si512(named, with_dot), quads))
        };
        // SAFETY: both vectors have at least `blocks * 8` words.
        _mm512_storeu_epi64(out.0.as_mut_ptr().add(i) as *mut i64, cand);
        _mm512_storeu_epi64(out.1.as_mut_ptr().add(i) as *mut i64, starts);
    }
}

/// The carries into each of eight 64-bit lanes of up to three wide additions at once, one to each 16 bits of the
/// words: `generate` (the lanes whose own sum carried out), `propagate` (the lanes whose sum is all ones, which pass
/// a carry on) and `carries` (each addition's carry out of the last block, updated). A carry reaches a lane from the
/// one below it, or through a run of propagating lanes, as an addition of the masks carries it. One 64-bit addition
/// for the three: each field's sum fits its 9 bits, as no lane both generates and propagates. Computed three times
/// over, the compiler packed the three into a vector register and back, a round trip it waited on every block.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_carries(generate: u64, propagate: u64, carries: &mut u64) -> u64 {
    let into = ((generate << 1 | *carries) + propagate) ^ propagate;
    *carries = into >> 8 & 0x0001_0001_0001;
    into
}

/// A host token of at most 64 bytes, `line[start..end]` once its trailing dots are cut, with its dots and name
/// bytes (letters, `-`, `_`) as words whose bit 0 is `start`: what the rules ask of a token (how many dots, whether
/// it is a number, whether its last label is) is then a few bit operations instead of walks over its bytes, whose
/// exits the CPU mispredicts from token to token.
struct Token {
    start: usize,
    end: usize,
    dots: u64,
    name: u64,
}

impl Token {
    /// The token `line[start..end]` (a run of host bytes, at most 64), or `None` when no dot is left in it once
    /// its trailing dots are cut: such a token is no host with a dot and holds no address.
    #[inline(always)]
    fn of(start: usize, end: usize, dots: Bits, name: Bits) -> Option<Token> {
        let len = end - start;
        let all = !0u64 >> (64 - len);
        let d = dots.window(start) & all;
        // Every byte of the token is a host byte, so the bytes that are not dots are its labels' bytes.
        let labels = all & !d;
        if labels == 0 {
            return None;
        }
        let len = 64 - labels.leading_zeros() as usize;
        let kept = !0u64 >> (64 - len);
        let d = d & kept;
        (d != 0).then(|| Token {
            start,
            end: start + len,
            dots: d,
            name: name.window(start) & kept,
        })
    }

    /// Whether three of its dots are spaced as a dotted quad's (each 2-4 bytes after the one before), which every
    /// address in it has: most tokens with three dots and a letter (`_ldap._tcp.dc._msdcs.example.com`) have none,
    /// and are not walked for one.
    #[inline(always)]
    fn may_hold_quad(&self) -> bool {
        // The token is one word: nothing follows it.
        let spaced = self.dots & Candidates::ahead(self.dots, 0);
        self.dots & Candidates::ahead(spaced, 0) != 0
    }

    /// Digits and dots only.
    #[inline(always)]
    fn is_number(&self) -> bool {
        self.name == 0
    }

    /// The label after the last dot is all digits (it is never empty: trailing dots are cut), as
    /// [`ends_in_digit_label`] says of the token's bytes.
    #[inline(always)]
    fn ends_in_digit_label(&self) -> bool {
        let last_dot = 63 - self.dots.leading_zeros();
        self.name >> last_dot == 0
    }
}

/// A token of digits and exactly three dots, which is an address or nothing: one dotted quad touching no other
/// digit or dot, so the octets are where the dots say and [`ipv4_in_token`]'s walk (one branch per digit) is not
/// needed: with `shuffle`, in one byte shuffle ([`quad_shuffled`]). Agrees with that walk on every such token (the
/// property tests hold it to the reference matcher).
#[inline]
fn bare_quad(snap: Probe, line: &[u8], t: &Token, shuffle: bool, hits: &mut Vec<Hit>) {
    let d = t.dots;
    let (p1, p2, p3) = (
        d.trailing_zeros() as usize,
        (d & (d - 1)).trailing_zeros() as usize,
        63 - d.leading_zeros() as usize,
    );
    let len = t.end - t.start;
    // Four octets of at most three digits and three dots: at most 15 bytes.
    if len > 15 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if shuffle {
        let lens = [p1, p2 - p1 - 1, p3 - p2 - 1, len - p3 - 1];
        if lens.iter().any(|&l| l.wrapping_sub(1) >= 3) {
            return;
        }
        let shape = lens.iter().fold(0, |k, &l| k * 3 + l - 1);
        let rest = &line[t.start..];
        // SAFETY: every vector path's CPU has SSSE3 and SSE4.1 (`shuffle` is only set on one); 16 bytes are read
        // from `rest` only when it has them.
        let a = unsafe {
            if rest.len() >= 16 {
                quad_shuffled(rest.as_ptr(), shape)
            } else {
                let mut block = [0u8; 16];
                block[..rest.len()].copy_from_slice(rest);
                quad_shuffled(block.as_ptr(), shape)
            }
        };
        if let Some(a) = a {
            snap.c
                .t
                .ips
                .lookup_v4(Ipv4Addr::from(a), |id| snap.push(hits, id, t.start, t.end));
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = shuffle;
    // The token's bytes in a fixed block, so the digits below are read with no bounds check; what follows the
    // token in the block is only ever weighted zero.
    let mut block = [0u8; 16];
    let rest = &line[t.start..];
    if rest.len() >= 16 {
        block.copy_from_slice(&rest[..16]);
    } else {
        block[..rest.len()].copy_from_slice(rest);
    }
    let digit = |i: usize| block[i % 16].wrapping_sub(b'0') as u32;
    let mut ok = true;
    let mut octets = [0u8; 4];
    for (k, (from, to)) in [(0, p1), (p1 + 1, p2), (p2 + 1, p3), (p3 + 1, len)]
        .into_iter()
        .enumerate()
    {
        let n = to.wrapping_sub(from);
        // 1-3 digits, no leading zero, at most 255. Every byte here is a digit; the octet's value is read from its
        // last three places with the ones it lacks weighted zero, not by a branch on its length.
        let at = |back: usize| digit(to.wrapping_sub(back)) * (n >= back) as u32;
        let v = at(1) + 10 * at(2) + 100 * at(3);
        ok &= (n.wrapping_sub(1) < 3) & (v <= 255) & !((n > 1) & (digit(from) == 0));
        octets[k] = v as u8;
    }
    if ok {
        let a = Ipv4Addr::from(octets);
        snap.c.t.ips.lookup_v4(a, |id| snap.push(hits, id, t.start, t.end));
    }
}

/// Where a dotted quad's digits are, for each of the 81 shapes of four octets of 1-3 digits (the shape is the
/// octets' lengths in base 3, `27 * (l1 - 1) + 9 * (l2 - 1) + 3 * (l3 - 1) + (l4 - 1)`): for each octet a group of
/// four byte lanes, its hundreds, tens and ones digits and a zero (a shuffle index of 0x80 reads zero), and the least
/// value of an octet of that length without a leading zero (0, 10, 100).
#[cfg(target_arch = "x86_64")]
#[repr(C, align(16))]
struct QuadShape {
    lanes: [u8; 16],
    least: [i32; 4],
}

#[cfg(target_arch = "x86_64")]
static QUAD_SHAPES: [QuadShape; 81] = {
    let mut t = [const {
        QuadShape {
            lanes: [0x80; 16],
            least: [0; 4],
        }
    }; 81];
    let mut shape = 0;
    while shape < 81 {
        let mut at = 0;
        let mut k = 0;
        while k < 4 {
            let len = (shape / [27, 9, 3, 1][k]) % 3 + 1;
            let ones = at + len - 1;
            t[shape].lanes[4 * k + 2] = ones as u8;
            if len >= 2 {
                t[shape].lanes[4 * k + 1] = (ones - 1) as u8;
            }
            if len == 3 {
                t[shape].lanes[4 * k] = (ones - 2) as u8;
            }
            t[shape].least[k] = [0, 10, 100][len - 1];
            at += len + 1;
            k += 1;
        }
        shape += 1;
    }
    t
};

/// [`bare_quad`]'s octets, from the 16 bytes at `bytes` (the token first) and the token's shape (which the caller
/// checked: four octets of 1-3 digits), with one byte shuffle and two multiply-adds instead of a loop over the
/// octets' digits, which cost about 40 cycles a quad (a log's addresses are a third of its candidate tokens). The
/// address, or `None` when an octet is over 255 or has a leading zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3,sse4.1")]
unsafe fn quad_shuffled(bytes: *const u8, shape: usize) -> Option<u32> {
    use std::arch::x86_64::*;
    let s = &QUAD_SHAPES[shape];
    // SAFETY: the caller gives 16 readable bytes; the table rows are 16-byte aligned.
    let v = _mm_sub_epi8(_mm_loadu_si128(bytes as *const __m128i), _mm_set1_epi8(b'0' as i8));
    let digits = _mm_shuffle_epi8(v, _mm_load_si128(s.lanes.as_ptr() as *const __m128i));
    let weights = _mm_setr_epi8(100, 10, 1, 0, 100, 10, 1, 0, 100, 10, 1, 0, 100, 10, 1, 0);
    let octets = _mm_madd_epi16(_mm_maddubs_epi16(digits, weights), _mm_set1_epi16(1));
    let least = _mm_load_si128(s.least.as_ptr() as *const __m128i);
    let bad = _mm_or_si128(
        _mm_cmpgt_epi32(octets, _mm_set1_epi32(255)),
        _mm_cmplt_epi32(octets, least),
    );
    if _mm_movemask_epi8(bad) != 0 {
        return None;
    }
    let bytes = _mm_packus_epi16(_mm_packus_epi32(octets, octets), _mm_setzero_si128());
    Some((_mm_cvtsi128_si32(bytes) as u32).swap_bytes())
}

/// Pushes every indicator whose digest text a hash slot holds (an md5 also entered as an imphash shares one).
#[inline]
fn push_digest(snap: Probe, hits: &mut Vec<Hit>, val: u32, start: usize, end: usize) {
    ids::for_each(snap.c.t.ips.pool, val, |id| snap.push(hits, id, start, end));
}

/// A line is a JSON document when its first non-blank byte opens an object or an array. Only there is a backslash
/// an escape: in plain text it is a Windows path separator, and `C:\Users\nevil.com` names the folder `nevil.com`.
#[inline]
pub(crate) fn is_json_line(line: &[u8]) -> bool {
    matches!(line.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Where a token that starts at `start` really starts once a JSON escape glued to its front is decoded: the letter
/// of `\t`, `\n`, `\r`, `\b`, `\f` and the `uXXXX` of a `\u` escape stand for a character that is not part of any
/// indicator. An escape is a backslash preceded by an even number of backslashes (`\\t` is a backslash and a `t`).
#[inline]
fn past_escape(line: &[u8], start: usize) -> usize {
    if start == 0 || start >= line.len() || line[start - 1] != b'\\' {
        return start;
    }
    let run = line[..start].iter().rev().take_while(|b| **b == b'\\').count();
    if run % 2 == 0 {
        return start;
    }
    match line[start] {
        b't' | b'n' | b'r' | b'b' | b'f' => start + 1,
        b'u' if line.len() >= start + 5 && line[start + 1..start + 5].iter().all(u8::is_ascii_hexdigit) => start + 5,
        _ => start,
    }
}

/// Probes every label suffix that contains a dot, plus the whole token (hostnames, URLs and e-mails need it whole).
/// The token's labels are found from its dots' bits (`prev_dot` gives them right to left) and hashed right to left
/// a word at a time, so each suffix's hash is one step on from the last.
#[inline]
fn host_suffixes(
    snap: Probe,
    line: &[u8],
    mut prev_dot: impl FnMut() -> Option<usize>,
    start: usize,
    end: usize,
    json: bool,
    hits: &mut Vec<Hit>,
) {
    let hosts = &snap.c.t.hosts;
    let last_labels = snap.c.last_labels();
    let mut h = LabelHasher::new();
    let mut to = end;
    let mut labels = 0;
    loop {
        let from = prev_dot().map_or(start, |d| d + 1);
        h.label(line, from, to);
        labels += 1;
        if from == start {
            break;
        }
        // No key ends in this last label, or these last two: no suffix of the token, nor the token, is a key.
        if labels == 1 {
            let bit = h.last_label_bit();
            if last_labels[bit / 64] >> (bit % 64) & 1 == 0 {
                return;
            }
        } else {
            // `line[from..end]` follows a dot; it is a candidate when it holds a dot itself.
            let suffix = h.finish();
            if labels == 2 && !hosts.may_contain(suffix ^ LAST_TWO_SALT) {
                return;
            }
            if let Some((_, e)) = hosts.get(suffix, &line[from..end]) {
                if e.a != NONE {
                    snap.push(hits, e.a, start, end);
                }
            }
        }
        to = from - 1;
    }
    if labels < 2 {
        return;
    }
    let Some((slot, e)) = hosts.get(h.finish(), &line[start..end]) else {
        return;
    };
    if e.a != NONE {
        snap.push(hits, e.a, start, end);
    }
    if e.b != NONE {
        snap.push(hits, e.b, start, end);
    }
    let extras = hosts.extras(slot, e);
    if extras.is_empty() {
        return;
    }
    let arena = snap.c.t.arena;
    let text = |r: crate::snapshot::layout::StrRef| &arena[r.off as usize..(r.off + r.len) as usize];
    for x in extras.iter().filter(|x| x.kind == EXTRA_URL) {
        if let Some(m_end) = url_rest_at(line, end, text(x.text)) {
            snap.push(hits, x.id, start, m_end);
        }
    }
    if snap.c.has_emails() && start > 0 && line[start - 1] == b'@' {
        let at = start - 1;
        let mut ls = at;
        while ls > 0 && is_email_local_byte(line[ls - 1]) {
            ls -= 1;
        }
        if json {
            ls = past_escape(line, ls).min(at);
        }
        let local = &line[ls..at];
        for x in extras.iter().filter(|x| x.kind == EXTRA_EMAIL) {
            if !local.is_empty() && local.eq_ignore_ascii_case(text(x.text)) {
                snap.push(hits, x.id, ls, end);
            }
        }
    }
}

/// Bytes that continue a URL: after a match, one of these means the line's URL is longer than the indicator.
#[inline]
fn continues_url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
}

/// Where the URL indicator's rest ends if it follows the host at `pos`, comparing exactly (a JSON-escaped `\/` in the
/// line stands for `/`), and only if the next byte does not continue the URL.
#[inline]
fn url_rest_at(line: &[u8], pos: usize, rest: &[u8]) -> Option<usize> {
    let mut j = pos;
    for &rb in rest {
        match line.get(j) {
            Some(&lb) if lb == rb => j += 1,
            Some(b'\\') if rb == b'/' && line.get(j + 1) == Some(&b'/') => j += 2,
            _ => return None,
        }
    }
    match line.get(j) {
        Some(&b) if continues_url(b) => None,
        _ => Some(j),
    }
}

/// Hex runs of exactly a digest's length that touch no other alphanumeric byte. A run of 32 bytes or more covers
/// a position that is a multiple of 32, so only those positions are examined.
#[inline]
fn hash_runs(snap: Probe, line: &[u8], alnum: Bits, hex: Bits, json: bool, hits: &mut Vec<Hit>) {
    let words = hex.words;
    // Runs end before `k`; `prev` is the word before the one looked at.
    let (mut k, mut prev) = (0, 0u64);
    // The positions of 32 words at a time, two bits a word, found with no branch: a walk from one position to the
    // next branched on every word, and a line with digests (a Sysmon event) is 2-3 KiB long.
    for base in (0..words.len()).step_by(32) {
        let mut at = 0u64;
        for (i, &x) in words[base..words.len().min(base + 32)].iter().enumerate() {
            // A hex run of 32 or more covering `64 * w` or `64 * w + 32` has 16 hex digits from there or the 16
            // just before: a whole 16-bit lane of the hex mask.
            let full = full_lanes(x);
            let prev_top = prev >> 48 == 0xffff;
            prev = x;
            let low = (x & 1 != 0) & ((full & 1 != 0) | prev_top);
            let high = (x >> 32 & 1 != 0) & (full & (1 << 32 | 1 << 16) != 0);
            at |= (low as u64 | (high as u64) << 1) << (2 * i);
        }
        while at != 0 {
            let b = at.trailing_zeros() as usize;
            at &= at - 1;
            let pos = (base + b / 2) * 64 + b % 2 * 32;
            if pos < k {
                continue;
            }
            k = hash_run(snap, line, alnum, hex, json, pos, hits);
        }
    }
}

/// The digest rule on the alphanumeric run around `k`, which a hex run of 32 or more covers. Returns the first
/// multiple of 32 past the run.
#[inline(always)]
fn hash_run(snap: Probe, line: &[u8], alnum: Bits, hex: Bits, json: bool, k: usize, hits: &mut Vec<Hit>) -> usize {
    let mut s = alnum.run_start(k);
    let e = alnum.next_zero(k);
    if json {
        // An escape's letters are alphanumeric, so they are inside the run; the run starts after them.
        s = past_escape(line, s).min(e);
    }
    let len = e.saturating_sub(s);
    // TLSH 4 prints a `T1` version before its hex; the digest is stored without it.
    let tlsh_v1 = len == TLSH_HEX + 2 && line[s] | 0x20 == b't' && line[s + 1] == b'1';
    let digits = if tlsh_v1 { s + 2 } else { s };
    if snap.c.has_hash_len(e - digits) && hex.count(digits, e) as usize == e - digits {
        let run = &line[digits..e];
        if let Some((_, slot)) = snap.c.t.hashes.get(hash_key(run), run) {
            push_digest(snap, hits, slot.a, s, e);
        }
    }
    e.div_ceil(32) * 32
}

/// Bit `i` of the result is set when bits `i..i + 16` of `x` all are (within the word): where `x`'s 16-bit lanes
/// are full, at bits 0, 16, 32 and 48.
#[inline(always)]
fn full_lanes(x: u64) -> u64 {
    let mut y = x & (x >> 1);
    y &= y >> 2;
    y &= y >> 4;
    y & (y >> 8)
}

/// A digest printed as colon-separated byte pairs (`AB:CD:...`, as x509 tools print fingerprints) in `line[s..e]`,
/// a whole run of hex and colons: 16, 20 or 32 pairs.
#[inline]
fn pair_digest(snap: Probe, line: &[u8], s: usize, e: usize, hits: &mut Vec<Hit>) {
    let run = &line[s..e];
    if !matches!(run.len(), 47 | 59 | 95) {
        return;
    }
    let mut digest = [0u8; 64];
    let mut n = 0;
    for (i, &b) in run.iter().enumerate() {
        if i % 3 == 2 {
            if b != b':' {
                return;
            }
        } else if b.is_ascii_hexdigit() {
            digest[n] = b.to_ascii_lowercase();
            n += 1;
        } else {
            return;
        }
    }
    let digest = &digest[..n];
    if snap.c.has_hash_len(n) {
        if let Some((_, slot)) = snap.c.t.hashes.get(hash_key(digest), digest) {
            push_digest(snap, hits, slot.a, s, e);
        }
    }
}

/// Fuzzy hashes (`ssdeep`, `impfuzzy`) as printed: `blocksize:base64:base64`, touching no base64 byte or colon on
/// either side, compared exactly (base64 is case-sensitive).
fn fuzzy_hashes(snap: Probe, line: &[u8], hits: &mut Vec<Hit>) {
    let n = line.len();
    let mut pos = 0;
    while let Some(off) = memchr::memchr(b':', &line[pos..]) {
        let c = pos + off;
        pos = c + 1;
        let mut s = c;
        while s > 0 && line[s - 1].is_ascii_digit() {
            s -= 1;
        }
        if s == c || (s > 0 && (is_fuzzy_byte(line[s - 1]) || line[s - 1] == b':')) {
            continue;
        }
        let run = |from: usize| from + line[from..].iter().take_while(|b| is_fuzzy_byte(**b)).count();
        let mid = run(c + 1);
        if mid == c + 1 || mid >= n || line[mid] != b':' {
            continue;
        }
        let e = run(mid + 1);
        if e == mid + 1 || line.get(e) == Some(&b':') {
            continue;
        }
        pos = e;
        let text = &line[s..e];
        if let Some((_, slot)) = snap.c.t.hashes.get(hash_key(text), text) {
            ids::for_each(snap.c.t.ips.pool, slot.a, |id| {
                if snap.c.value_bytes(id) == text {
                    snap.push(hits, id, s, e);
                }
            });
        }
    }
}

/// One octet of a dotted quad at `j` in `tok` (which ends where the token does): 1-3 digits, not followed by a
/// fourth, no leading zero, at most 255; with where it ends.
#[inline(always)]
fn octet(tok: &[u8], j: usize) -> Option<(u32, usize)> {
    let digit = |i: usize| tok.get(i).map_or(10, |b| b.wrapping_sub(b'0') as u32);
    let d0 = digit(j);
    if d0 > 9 {
        return None;
    }
    let d1 = digit(j + 1);
    if d1 > 9 {
        return Some((d0, j + 1));
    }
    if d0 == 0 {
        return None;
    }
    let d2 = digit(j + 2);
    if d2 > 9 {
        return Some((d0 * 10 + d1, j + 2));
    }
    let v = d0 * 100 + d1 * 10 + d2;
    if digit(j + 3) <= 9 || v > 255 {
        return None;
    }
    Some((v, j + 3))
}

/// Parses a dotted quad at `j`: four maximal digit runs of 1-3 digits, no leading zero, each at most 255.
#[inline]
fn parse_quad(line: &[u8], j: usize, end: usize) -> Option<(Ipv4Addr, usize)> {
    let tok = &line[..end];
    let (a, j) = octet(tok, j)?;
    let mut o = [a as u8, 0, 0, 0];
    let mut j = j;
    for x in &mut o[1..] {
        if tok.get(j) != Some(&b'.') {
            return None;
        }
        let (v, k) = octet(tok, j + 1)?;
        *x = v as u8;
        j = k;
    }
    Some((Ipv4Addr::from(o), j))
}

/// Dotted quads inside a host token that touch neither a digit nor a dot followed by a digit on either side.
#[inline]
fn ipv4_in_token(snap: Probe, line: &[u8], start: usize, end: usize, hits: &mut Vec<Hit>) {
    let digit = |k: usize| line.get(k).is_some_and(u8::is_ascii_digit);
    let mut j = start;
    while j < end {
        if !line[j].is_ascii_digit() {
            j += 1;
            continue;
        }
        // `j` starts a digit run: runs are skipped whole below.
        let left_ok = !(j >= start + 2 && line[j - 1] == b'.' && digit(j - 2));
        if left_ok {
            if let Some((a, k)) = parse_quad(line, j, end) {
                let right_ok = !(line.get(k) == Some(&b'.') && digit(k + 1));
                if right_ok {
                    snap.c.t.ips.lookup_v4(a, |id| snap.push(hits, id, j, k));
                }
                j = k;
                continue;
            }
        }
        j += 1;
        while j < end && line[j].is_ascii_digit() {
            j += 1;
        }
    }
}

/// Whether the colons of `from..to` are enough for an IPv6 address (six, or two with a `::`) and for a colon-pair
/// digest (15): most lines' colons (a clock time, `key: value`) are neither, and cost one count for the whole line.
#[inline(always)]
fn colon_run_kinds(colons: Bits, from: usize, to: usize, want_ip: bool, want_pairs: bool) -> (bool, bool) {
    colon_kinds(
        colons.count(from, to),
        || colons.any_adjacent(from, to),
        want_ip,
        want_pairs,
    )
}

/// [`colon_run_kinds`] from the count `k` of the colons, and whether two of them are adjacent, asked only when
/// it matters.
#[inline(always)]
fn colon_kinds(k: u32, adjacent: impl FnOnce() -> bool, want_ip: bool, want_pairs: bool) -> (bool, bool) {
    (want_ip && (k >= 6 || (k >= 2 && adjacent())), want_pairs && k >= 15)
}

/// Runs of hex digits, `:` and `.` around each colon: IPv6 addresses (when `want_ip`) and colon-pair digests (when
/// `want_pairs`), found in one walk over the line's colons.
///
/// IPv6 in any textual form: runs of hex, `:` and `.` with at least two colons, not glued to other alphanumerics on
/// the right. A zone id (`%eth0`) or brackets around the address do not prevent a match; MAC addresses and clock
/// times do not parse as IPv6 and so never match.
///
/// On the left, a word glued to the run is a label that ends at the run's first colon (`Address:2001:db8::1`,
/// `Source:fe80::1`), and so is a single colon that opens the run (`v6(en0-:2607:f140::1)`): the address starts after
/// that colon. A hex run that merely continues into the address (`afe80::1`) is no label and stays a non-match. In a
/// JSON line an escape before the run (`\t2001:db8::1`) is a boundary, as it is for hosts.
#[allow(clippy::too_many_arguments)]
fn colon_runs(
    snap: Probe,
    line: &[u8],
    colons: Bits,
    v6: Bits,
    json: bool,
    want_ip: bool,
    want_pairs: bool,
    hits: &mut Vec<Hit>,
) {
    let n = line.len();
    let mut pos = 0;
    while let Some(c) = next_paired_colon(colons, pos) {
        let e = v6.next_zero(c);
        pos = e;
        // `c` is the first colon of its run (the previous run ended before it), so the run's colons are those
        // of `c..e`, counted before its start is looked for. What follows only shortens the run from the left,
        // so a run that cannot hold an address (at least six colons, or a `::`) nor a colon-pair digest (15
        // colons in 47 bytes or more) never will: clock times end here.
        let (ip_possible, pairs_possible) = colon_run_kinds(colons, c, e, want_ip, want_pairs);
        if !(ip_possible || pairs_possible) {
            continue;
        }
        let mut s = v6.run_start(c);
        if !(ip_possible || e - s >= 47) {
            continue;
        }
        if e < n && line[e].is_ascii_alphanumeric() {
            continue;
        }
        let mut glued = s > 0 && line[s - 1].is_ascii_alphanumeric();
        if json {
            // The escape's letter is either just before the run (`\t`) or, being a hex digit, its first byte (`\b`).
            let before = if s > 0 { past_escape(line, s - 1) } else { 0 };
            let after = past_escape(line, s).max(before);
            if after > s || before == s {
                glued = false;
            }
            s = after;
        }
        if pairs_possible && !glued {
            let mut pe = e;
            while pe > s && line[pe - 1] == b'.' {
                pe -= 1;
            }
            pair_digest(snap, line, s, pe, hits);
        }
        if !want_ip {
            continue;
        }
        if glued || (line[s] == b':' && line.get(s + 1) != Some(&b':')) {
            let Some(i) = memchr::memchr(b':', &line[s..e]) else {
                continue;
            };
            s += i + 1;
        }
        let mut run = &line[s..e];
        while let [rest @ .., b'.'] = run {
            run = rest;
        }
        if run.len() > 45 || run.iter().filter(|b| **b == b':').count() < 2 {
            continue;
        }
        let parsed = parse_v6(run).or_else(|| match run {
            [rest @ .., b':'] if !rest.ends_with(b":") => {
                run = rest;
                parse_v6(run)
            }
            _ => None,
        });
        let Some(a) = parsed else { continue };
        let end = s + run.len();
        let t = &snap.c.t;
        t.ips.lookup_v6(a, |id| snap.push(hits, id, s, end));
        if s > 0 && line[s - 1] == b'[' && line.get(end) == Some(&b']') {
            let octets = a.octets();
            if let Some((slot, e)) = t.v6urls.get_exact(hash_key(&octets), &octets) {
                for x in t.v6urls.extras(slot, e) {
                    let rest = &t.arena[x.text.off as usize..(x.text.off + x.text.len) as usize];
                    if let Some(m_end) = url_rest_at(line, end + 1, rest) {
                        snap.push(hits, x.id, s - 1, m_end);
                    }
                }
            }
        }
        if let Some(v4) = a.to_ipv4_mapped() {
            t.ips.lookup_v4(v4, |id| snap.push(hits, id, s, end));
        }
    }
}

/// The first colon at or after `from` with another colon at most five bytes after it. The first colon of every
/// IPv6 address and colon-pair digest is one (no group is longer than four hex digits), and a run's colons before
/// such a colon only ever stand before where the address is taken to start, so the walk skips the lone colons of
/// `key: value`, JSON's `"key":"value"` and `"port":443`, which were most of a line's colons.
#[inline]
fn next_paired_colon(colons: Bits, from: usize) -> Option<usize> {
    let words = colons.words;
    let paired = |w: usize| {
        let x = words[w];
        let next = words.get(w + 1).copied().unwrap_or(0);
        x & set_ahead(x, next)
    };
    let mut w = from / 64;
    if w >= words.len() {
        return None;
    }
    let mut m = paired(w) & (!0u64 << (from % 64));
    loop {
        if m != 0 {
            return Some(w * 64 + m.trailing_zeros() as usize);
        }
        w += 1;
        if w >= words.len() {
            return None;
        }
        m = paired(w);
    }
}

/// Bit `i` is set when one of bits `i + 1..=i + 5` of `x` is, `next` being the word after `x`: five shifts and a
/// trailing-zero count, where five 128-bit shifts were a score of instructions on every word of a line with colons.
#[inline(always)]
fn set_ahead(x: u64, next: u64) -> u64 {
    let mut a = x >> 1;
    a |= a >> 1;
    a |= a >> 2;
    a |= x >> 5;
    // From `next`, bit 59 + j and up when `next`'s lowest set bit, `j`, is one of 0..=4.
    a | (!0u64 << 59) << next.trailing_zeros().min(5)
}

#[inline]
fn parse_v6(run: &[u8]) -> Option<Ipv6Addr> {
    std::str::from_utf8(run).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random words (xorshift64) from the seed `x`: the bit tests below hold the fast formulas to the plain ones.
    fn words(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn candidates_are_the_tokens_a_byte_walk_picks() {
        let mut next = words(0x51_7cc1_b727_220a);
        let alphabet = b"a.1.2-_ :9.x";
        let mut masks = Masks::default();
        let mut vector_rounds = 0;
        for round in 0..3000 {
            let len = (next() % 700) as usize + if round % 10 == 0 { 2100 } else { 0 };
            // Short tokens, and host runs that fill whole words (and the lanes of several vectors) with a seed
            // rarely or never, so carries cross words, lanes and blocks of eight.
            let alphabet: &[u8] = match round % 3 {
                0 => alphabet,
                1 => b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1.",
                _ => b"11111111111111111111111111111111111111111111111111111111111111111.a ",
            };
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            masks.classify(&line, Path::detect());
            let dot = |i: usize| line.get(i) == Some(&b'.');
            let spaced = |i: usize| dot(i) && (i + 2..=i + 4).any(dot);
            let quad_seed = |i: usize| dot(i) && (i + 2..=i + 4).any(spaced);
            for numbers_too in [false, true] {
                let (mut got, mut starts) = (Vec::new(), Vec::new());
                let mut ends = Candidates::new(&masks, numbers_too);
                while let Some((w, x, st)) = ends.next_word() {
                    assert_eq!(w, got.len());
                    got.push(x);
                    starts.push(st);
                }
                // The vector search finds the same words, carries across lanes and blocks of eight included.
                #[cfg(target_arch = "x86_64")]
                if Path::available().contains(&Path::Avx512) {
                    let mut buf = (Vec::new(), Vec::new());
                    // SAFETY: the CPU has AVX-512 F (checked above).
                    unsafe { candidate_words_avx512(&masks, numbers_too, &mut buf) };
                    assert_eq!(
                        buf.0[..got.len()],
                        got[..],
                        "{numbers_too} {:?}",
                        String::from_utf8_lossy(&line)
                    );
                    assert_eq!(buf.1[..got.len()], starts[..]);
                    vector_rounds += 1;
                }
                let mut want = vec![0u64; len.div_ceil(64)];
                let mut i = 0;
                while i < len {
                    let host = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
                    if !host(line[i]) {
                        i += 1;
                        continue;
                    }
                    let s = i;
                    while i < len && host(line[i]) {
                        i += 1;
                    }
                    let tok = s..i;
                    let has_dot = tok.clone().any(dot);
                    let has_name = line[tok.clone()]
                        .iter()
                        .any(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_'));
                    let quad = tok.clone().any(quad_seed);
                    if (numbers_too && has_dot) || (!numbers_too && ((has_dot && has_name) || quad)) {
                        want[(i - 1) / 64] |= 1 << ((i - 1) % 64);
                    }
                }
                assert_eq!(got, want, "{numbers_too} {:?}", String::from_utf8_lossy(&line));
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert!(vector_rounds == 6000 || !Path::available().contains(&Path::Avx512));
    }

    /// The hits of `tok` in a line (`tail` after it), as the scan finds them and as the IPv4 walk over the whole
    /// token does.
    fn fast_and_walk(
        snap: &Snapshot,
        probe: Probe,
        scratch: &mut Scratch,
        tok: &str,
        tail: &str,
    ) -> (Vec<Hit>, Vec<Hit>) {
        let line = format!("x {tok} y{tail}");
        let (mut fast, mut walk) = (Vec::new(), Vec::new());
        scan_line_with(snap, line.as_bytes(), scratch, &mut fast);
        ipv4_in_token(probe, line.as_bytes(), 2, 2 + tok.len(), &mut walk);
        (fast, walk)
    }

    #[test]
    fn a_bare_quad_is_read_as_the_walk_reads_it() {
        let ips = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "100.20.3.199",
            "1.2.3.0/24",
        ];
        let snap = crate::snapshot::tests::compiled(&ips.map(|v| ("ip-dst", v)));
        let probe = Probe {
            c: &snap.base,
            offset: 0,
            mask: None,
        };
        let octets = [
            "", "0", "00", "01", "1", "2", "3", "4", "9", "10", "20", "99", "100", "199", "255", "256", "999",
        ];
        // Every path: the vector ones read a quad's octets with a byte shuffle, the scalar one digit by digit.
        for path in Path::available() {
            let mut scratch = Scratch::with_path(path);
            let (mut quads, mut found) = (0, 0);
            for a in octets {
                for b in ["0", "2", "20", "255", "256", "01"] {
                    for c in ["0", "3", "00", "255"] {
                        for d in octets {
                            let tok = format!("{a}.{b}.{c}.{d}");
                            // The line ends within 16 bytes of the quad, or goes on past them.
                            for tail in ["", " and the rest of the line"] {
                                let (fast, walk) = fast_and_walk(&snap, probe, &mut scratch, &tok, tail);
                                assert_eq!(fast, walk, "{path:?} {tok}{tail}");
                                quads += 1;
                                found += !fast.is_empty() as usize;
                            }
                        }
                    }
                }
            }
            assert!(
                quads > 6000 && found > 10,
                "{path:?}: {quads} tokens, {found} with hits"
            );
        }
    }

    #[test]
    fn a_token_is_walked_for_quads_whenever_one_could_be_in_it() {
        // Tokens with a letter and three dots or more: the walk is skipped when no three dots are spaced as a
        // quad's, so the scan must find what the walk finds on every one, with quads glued to labels, to more
        // dots, to numbers, and with octets too long to be one.
        let snap = crate::snapshot::tests::compiled(&[("ip-dst", "1.2.3.4"), ("ip-dst", "10.20.30.0/24")]);
        let probe = Probe {
            c: &snap.base,
            offset: 0,
            mask: None,
        };
        let mut scratch = Scratch::new();
        let (mut tokens, mut found, mut skipped) = (0, 0, 0);
        for pre in ["", "a", "host-", "x.y.", "a.bb.", "1.", "a.1.", "ab12.", "_ldap._tcp."] {
            for quad in [
                "1.2.3.4",
                "10.20.30.40",
                "1.2.3.44",
                "1.2.3",
                "1.2.3.4444",
                "01.2.3.4",
                "1.2.3.4.5",
            ] {
                for post in ["", ".com", "-a", ".x.y", ".5", "a", ".b.example.org"] {
                    let tok = format!("{pre}{quad}{post}");
                    let (fast, walk) = fast_and_walk(&snap, probe, &mut scratch, &tok, "");
                    assert_eq!(fast, walk, "{tok}");
                    tokens += 1;
                    found += !fast.is_empty() as usize;
                }
            }
        }
        for tok in [
            "_ldap._tcp.dc._msdcs.example.com",
            "a.bcde.fghij.k",
            "ab.cdefg.h.ijklm.no",
        ] {
            let (fast, walk) = fast_and_walk(&snap, probe, &mut scratch, tok, "");
            assert!(fast.is_empty() && walk.is_empty(), "{tok}");
            let mut m = Masks::default();
            m.classify(tok.as_bytes(), Path::Scalar);
            let t = Token::of(0, tok.len(), m.dot(), m.name()).unwrap();
            skipped += !t.may_hold_quad() as usize;
        }
        assert!(tokens > 400 && found > 50 && skipped == 3, "{tokens} {found} {skipped}");
    }

    #[test]
    fn set_ahead_is_the_or_of_the_five_shifts_across_the_word_boundary() {
        let mut next = words(0x2545_f491_4f6c_dd1d);
        let mut pairs = vec![
            (0, 0),
            (!0, !0),
            (1 << 63, 0),
            (0, 1),
            (0, 1 << 4),
            (0, 1 << 5),
            (0, 16 | 32),
        ];
        for _ in 0..100_000 {
            let (a, b, c) = (next(), next(), next());
            // Sparse words, as colons are.
            pairs.push((a & b & c, (a | b) & !c & next()));
        }
        for (lo, hi) in pairs {
            let want = (1..=5).fold(0u64, |a, d| a | lo >> d | hi << (64 - d));
            assert_eq!(set_ahead(lo, hi), want, "{lo:#x} {hi:#x}");
        }
    }

    #[test]
    fn the_lane_test_finds_exactly_the_full_lanes() {
        let mut next = words(0x2f8a_1c3b_9d4e_7605);
        let mut xs = vec![
            0,
            !0,
            0xffff,
            0xffff << 16,
            0xffff << 48,
            0xfffe << 16,
            0x7fff_8000_0000,
        ];
        for _ in 0..100_000 {
            let (a, b) = (next(), next());
            xs.push(a | b | a << 1 | b >> 3);
            xs.push(a | b);
        }
        for x in xs {
            let want = (0..4).any(|l| x >> (16 * l) & 0xffff == 0xffff);
            assert_eq!(has_full_lane(x), want, "{x:#x}");
        }
    }

    #[test]
    fn a_digest_is_found_wherever_it_falls_in_a_long_line_and_only_when_whole() {
        // Lines of up to 5 KiB, so the digest positions are looked for in more than one group of 32 words, with the
        // digest at every offset across the groups' seams: found when whole, not when a hex byte is glued to it.
        let (md5, sha256) = (
            "d41d8cd98f00b204e9800998ecf8427e",
            "9365a4c56d4cc2ad99528e235f52436edd434da7f1628779b3d89e9ac55cabb4",
        );
        let snap = crate::snapshot::tests::compiled(&[("md5", md5), ("sha256", sha256)]);
        for path in Path::available() {
            let mut scratch = Scratch::with_path(path);
            let mut hits = Vec::new();
            for digest in [md5, sha256] {
                for at in (0..4200).step_by(7).chain(1980..2120) {
                    // Filler with hex runs shorter than a digest, so the line's hex lanes are not all the digest's.
                    let pre = "ab12cd34 ".repeat(at / 9 + 1)[..at].to_string();
                    for (glue, found) in [(" ", true), ("0", false)] {
                        let line = format!("{pre} {digest}{glue}x {}", "cafe ".repeat(100));
                        scan_line_with(&snap, line.as_bytes(), &mut scratch, &mut hits);
                        let start = pre.len() + 1;
                        let want: Vec<(u32, u32)> = if found {
                            vec![(start as u32, (start + digest.len()) as u32)]
                        } else {
                            vec![]
                        };
                        let got: Vec<(u32, u32)> = hits.iter().map(|h| (h.start, h.end)).collect();
                        assert_eq!(got, want, "{path:?} {digest} at {at}, glued {glue:?}");
                    }
                }
            }
        }
    }
}
