//! IP addresses, networks and ranges, reporting **every** indicator that contains an address.
//!
//! One open-addressing table per prefix length that occurs in the set: a lookup masks the address once per length
//! (most specific first) and probes. Real sets use few distinct lengths (mostly /32 and /24), so this is a handful
//! of O(1) probes, and unlike a merged range set it keeps each containing indicator distinct. Ranges are split into
//! their minimal CIDR cover, each piece pointing at the range's one indicator. A bitmap of the IPv4 /16s any
//! indicator touches (8 KiB, always cached) turns most addresses of a line away before any probe; with a million
//! indicators nearly every /16 is touched, so each touched /16 also has a 256-bit map of its /24s (found by the rank
//! of its bit), which turns away most of the rest.

use super::ids::{self, IdLists, NONE};
use super::layout::{Level, V4Slot, V6Slot};
use hashbrown::HashMap;
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn mask4(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn mask6(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

#[inline(always)]
fn hash4(k: u32) -> usize {
    ((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as usize
}

#[inline(always)]
fn hash6(k: u128) -> usize {
    let x = (k as u64) ^ ((k >> 64) as u64).rotate_left(29);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as usize
}

fn words6(k: u128) -> [u32; 4] {
    [(k >> 96) as u32, (k >> 64) as u32, (k >> 32) as u32, k as u32]
}

/// An IPv4 or IPv6 level slot: one probe loop and one layout routine serve both families.
trait NetSlot: Copy {
    type Key: Copy + Ord;
    const EMPTY: Self;
    fn new(key: Self::Key, val: u32) -> Self;
    fn key(&self) -> Self::Key;
    fn val(&self) -> u32;
    fn hash(key: Self::Key) -> usize;
}

impl NetSlot for V4Slot {
    type Key = u32;
    const EMPTY: Self = V4Slot { key: 0, val: NONE };
    fn new(key: u32, val: u32) -> Self {
        V4Slot { key, val }
    }
    fn key(&self) -> u32 {
        self.key
    }
    fn val(&self) -> u32 {
        self.val
    }
    fn hash(key: u32) -> usize {
        hash4(key)
    }
}

impl NetSlot for V6Slot {
    type Key = u128;
    const EMPTY: Self = V6Slot { key: [0; 4], val: NONE };
    fn new(key: u128, val: u32) -> Self {
        V6Slot { key: words6(key), val }
    }
    fn key(&self) -> u128 {
        let [a, b, c, d] = self.key;
        (a as u128) << 96 | (b as u128) << 64 | (c as u128) << 32 | d as u128
    }
    fn val(&self) -> u32 {
        self.val
    }
    fn hash(key: u128) -> usize {
        hash6(key)
    }
}

/// The ids value of network `k` in one level, if present.
#[inline(always)]
fn probe<S: NetSlot>(all: &[S], l: &Level, k: S::Key) -> Option<u32> {
    let slots = &all[l.first as usize..(l.first + l.cap) as usize];
    let mask = slots.len() - 1;
    let mut i = S::hash(k) & mask;
    loop {
        let s = &slots[i];
        if s.val() == NONE {
            return None;
        }
        if s.key() == k {
            return Some(s.val());
        }
        i = (i + 1) & mask;
    }
}

/// Lays out the levels of one family, most specific first; id lists go to `pool`.
fn lay_out<S: NetSlot>(
    levels: HashMap<u32, HashMap<S::Key, u32>>,
    lists: &IdLists,
    pool: &mut Vec<u32>,
) -> (Vec<Level>, Vec<S>) {
    let mut levels: Vec<_> = levels.into_iter().collect();
    levels.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
    let (mut out, mut all) = (Vec::new(), Vec::new());
    for (prefix, map) in levels {
        let cap = super::table::slot_count(map.len());
        let first = all.len();
        all.resize(first + cap, S::EMPTY);
        let slots = &mut all[first..];
        // In key order, not the map's (randomly seeded) order: the same set lays out the same sections, so two
        // compiles of one list get the same build id.
        let mut map: Vec<_> = map.into_iter().collect();
        map.sort_unstable_by_key(|(k, _)| *k);
        for (k, v) in map {
            let mut i = S::hash(k) & (cap - 1);
            while slots[i].val() != NONE {
                i = (i + 1) & (cap - 1);
            }
            slots[i] = S::new(k, lists.flatten(v, pool));
        }
        out.push(Level {
            prefix,
            first: first as u32,
            cap: cap as u32,
            _pad: 0,
        });
    }
    (out, all)
}

/// The IP tables read in place.
#[derive(Clone, Copy, Debug)]
pub struct IpView<'a> {
    pub v4_16: &'a [u64],
    /// Per word of `v4_16`, the bits set in the words before it: where a touched /16's block starts.
    pub v4_ranks: &'a [u32],
    /// Four words per touched /16, in order: the /24s any indicator touches.
    pub v4_blocks: &'a [u64],
    pub v4_levels: &'a [Level],
    pub v4_slots: &'a [V4Slot],
    pub v6_levels: &'a [Level],
    pub v6_slots: &'a [V6Slot],
    pub pool: &'a [u32],
}

impl IpView<'_> {
    pub fn has_v4(&self) -> bool {
        !self.v4_levels.is_empty()
    }

    pub fn has_v6(&self) -> bool {
        !self.v6_levels.is_empty()
    }

    /// Calls `f` with every indicator containing `a`, most specific first (a range may repeat; callers dedupe).
    #[inline]
    pub fn lookup_v4(&self, a: Ipv4Addr, mut f: impl FnMut(u32)) {
        let a = u32::from(a);
        let p = (a >> 16) as usize;
        let (word, bit) = (self.v4_16[p >> 6], 1u64 << (p & 63));
        if word & bit == 0 {
            return;
        }
        let block = self.v4_ranks[p >> 6] as usize + (word & (bit - 1)).count_ones() as usize;
        let q = (a >> 8) as usize & 255;
        if self.v4_blocks[block * 4 + q / 64] >> (q % 64) & 1 == 0 {
            return;
        }
        for l in self.v4_levels {
            if let Some(v) = probe(self.v4_slots, l, a & mask4(l.prefix)) {
                ids::for_each(self.pool, v, &mut f);
            }
        }
    }

    /// Calls `f` with the ids stored for exactly this network (a range's pieces included).
    pub fn exact(&self, net: IpNet, mut f: impl FnMut(u32)) {
        let p = net.prefix_len() as u32;
        let v = match net {
            IpNet::V4(n) => self
                .v4_levels
                .iter()
                .find(|l| l.prefix == p)
                .and_then(|l| probe(self.v4_slots, l, u32::from(n.network()))),
            IpNet::V6(n) => self
                .v6_levels
                .iter()
                .find(|l| l.prefix == p)
                .and_then(|l| probe(self.v6_slots, l, u128::from(n.network()))),
        };
        if let Some(v) = v {
            ids::for_each(self.pool, v, &mut f);
        }
    }

    #[inline]
    pub fn lookup_v6(&self, a: Ipv6Addr, mut f: impl FnMut(u32)) {
        let a = u128::from(a);
        for l in self.v6_levels {
            if let Some(v) = probe(self.v6_slots, l, a & mask6(l.prefix)) {
                ids::for_each(self.pool, v, &mut f);
            }
        }
    }
}

/// Networks per prefix length while a snapshot is built.
#[derive(Debug, Clone)]
pub struct IpBuilder {
    /// The /24s touched, four words per /16 (all 65,536 while building); the /16 summary is the blocks not empty.
    v4_24: Vec<[u64; 4]>,
    v4: HashMap<u32, HashMap<u32, u32>>,
    v6: HashMap<u32, HashMap<u128, u32>>,
    lists: IdLists,
}

impl Default for IpBuilder {
    fn default() -> Self {
        IpBuilder {
            v4_24: vec![[0; 4]; 1 << 16],
            v4: HashMap::new(),
            v6: HashMap::new(),
            lists: IdLists::default(),
        }
    }
}

/// The IP sections of a finished build.
pub struct BuiltIps {
    pub v4_16: Vec<u64>,
    pub v4_ranks: Vec<u32>,
    pub v4_blocks: Vec<u64>,
    pub v4_levels: Vec<Level>,
    pub v4_slots: Vec<V4Slot>,
    pub v6_levels: Vec<Level>,
    pub v6_slots: Vec<V6Slot>,
}

impl IpBuilder {
    fn mark_v4(&mut self, net: u32, len: u8) {
        let first = net >> 8;
        let count = if len >= 24 { 1 } else { 1u32 << (24 - len) };
        for q in first..first + count {
            let b = (q & 255) as usize;
            self.v4_24[(q >> 8) as usize][b / 64] |= 1 << (b % 64);
        }
    }

    pub fn add_net(&mut self, net: IpNet, id: u32) {
        let slot = match net {
            IpNet::V4(n) => {
                self.mark_v4(u32::from(n.network()), n.prefix_len());
                let len = n.prefix_len() as u32;
                self.v4
                    .entry(len)
                    .or_default()
                    .entry(u32::from(n.network()) & mask4(len))
                    .or_insert(NONE)
            }
            IpNet::V6(n) => {
                let len = n.prefix_len() as u32;
                self.v6
                    .entry(len)
                    .or_default()
                    .entry(u128::from(n.network()) & mask6(len))
                    .or_insert(NONE)
            }
        };
        self.lists.push(slot, id);
    }

    /// Adds an inclusive range as its minimal CIDR cover.
    pub fn add_range(&mut self, a: IpAddr, b: IpAddr, id: u32) {
        match (a, b) {
            (IpAddr::V4(x), IpAddr::V4(y)) => {
                for n in Ipv4Subnets::new(x, y, 0) {
                    self.add_net(IpNet::V4(n), id)
                }
            }
            (IpAddr::V6(x), IpAddr::V6(y)) => {
                for n in Ipv6Subnets::new(x, y, 0) {
                    self.add_net(IpNet::V6(n), id)
                }
            }
            _ => {}
        }
    }

    /// Lays out the levels, most specific first; id lists go to `pool`.
    pub fn finish(self, pool: &mut Vec<u32>) -> BuiltIps {
        let (v4_levels, v4_slots) = lay_out(self.v4, &self.lists, pool);
        let (v6_levels, v6_slots) = lay_out(self.v6, &self.lists, pool);
        let (v4_16, v4_ranks, v4_blocks) = v4_summary(&self.v4_24);
        BuiltIps {
            v4_16,
            v4_ranks,
            v4_blocks,
            v4_levels,
            v4_slots,
            v6_levels,
            v6_slots,
        }
    }
}

/// From the /24 blocks of every /16: the bitmap of the /16s whose block is not empty, the ranks of its words, and
/// the blocks of its set bits in order, which is what [`IpView::lookup_v4`] reads.
fn v4_summary(v4_24: &[[u64; 4]]) -> (Vec<u64>, Vec<u32>, Vec<u64>) {
    let (mut v4_16, mut ranks, mut blocks) = (vec![0u64; v4_24.len() / 64], Vec::new(), Vec::new());
    let mut seen = 0;
    for (w, sixteens) in v4_24.chunks(64).enumerate() {
        ranks.push(seen);
        for (i, block) in sixteens.iter().enumerate() {
            if block.iter().any(|&x| x != 0) {
                v4_16[w] |= 1 << i;
                blocks.extend_from_slice(block);
                seen += 1;
            }
        }
    }
    (v4_16, ranks, blocks)
}

/// Whether `ranks` are the running bit counts of `v4_16` and `blocks` has four words for each of its bits: all a
/// lookup needs to stay in bounds, checked when a file is opened.
pub fn v4_blocks_fit(v4_16: &[u64], ranks: &[u32], blocks: &[u64]) -> bool {
    let mut seen = 0u64;
    ranks.len() == v4_16.len()
        && v4_16.iter().zip(ranks).all(|(w, &r)| {
            let ok = r as u64 == seen;
            seen += w.count_ones() as u64;
            ok
        })
        && blocks.len() as u64 == seen * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(nets: &[&str]) -> (BuiltIps, Vec<u32>) {
        let mut b = IpBuilder::default();
        for (id, n) in nets.iter().enumerate() {
            b.add_net(n.parse().unwrap(), id as u32);
        }
        let mut pool = Vec::new();
        (b.finish(&mut pool), pool)
    }

    fn found(ips: &BuiltIps, pool: &[u32], a: &str) -> Vec<u32> {
        let view = IpView {
            v4_16: &ips.v4_16,
            v4_ranks: &ips.v4_ranks,
            v4_blocks: &ips.v4_blocks,
            v4_levels: &ips.v4_levels,
            v4_slots: &ips.v4_slots,
            v6_levels: &ips.v6_levels,
            v6_slots: &ips.v6_slots,
            pool,
        };
        let mut out = Vec::new();
        view.lookup_v4(a.parse().unwrap(), |id| out.push(id));
        out.sort_unstable();
        out
    }

    #[test]
    fn the_24_blocks_pass_every_address_a_network_holds_and_turn_its_neighbours_away() {
        // Prefixes on both sides of the /16 and /24 steps, in /16s with other /16s set around them so ranks count.
        let nets = [
            "1.1.1.1/32",
            "1.1.3.0/24",
            "2.0.0.0/8",
            "3.2.0.0/15",
            "4.4.0.0/16",
            "5.5.128.0/17",
            "6.6.6.0/23",
            "7.7.7.128/25",
            "200.1.1.1/32",
            "255.255.255.255/32",
        ];
        let (ips, pool) = built(&nets);
        assert!(v4_blocks_fit(&ips.v4_16, &ips.v4_ranks, &ips.v4_blocks));
        // One block per touched /16: 1.1, the /8's 256, the /15's two, and one each for the other six.
        assert_eq!(ips.v4_blocks.len() / 4, 1 + 256 + 2 + 6);
        let hits = [
            ("1.1.1.1", 0),
            ("1.1.3.77", 1),
            ("2.200.3.4", 2),
            ("3.3.255.1", 3),
            ("4.4.250.9", 4),
            ("5.5.255.0", 5),
            ("6.6.7.1", 6),
            ("7.7.7.200", 7),
            ("200.1.1.1", 8),
            ("255.255.255.255", 9),
        ];
        for (a, id) in hits {
            assert_eq!(found(&ips, &pool, a), vec![id], "{a}");
        }
        // The look-alikes: the next /24, the other half of a /16 or /23, the /16 beside a /15.
        for a in [
            "1.1.2.1",
            "1.1.4.1",
            "1.2.1.1",
            "3.4.0.1",
            "3.1.255.255",
            "5.5.127.255",
            "6.6.8.0",
            "6.6.5.255",
            "7.7.7.127",
            "7.7.8.200",
            "200.1.2.1",
            "255.255.254.255",
        ] {
            assert_eq!(found(&ips, &pool, a), Vec::<u32>::new(), "{a}");
        }
    }

    #[test]
    fn ranks_or_blocks_that_do_not_fit_the_summary_are_refused() {
        let (ips, _) = built(&["1.1.1.1/32", "9.9.9.0/24"]);
        let mut ranks = ips.v4_ranks.clone();
        ranks[1023] += 1;
        assert!(!v4_blocks_fit(&ips.v4_16, &ranks, &ips.v4_blocks));
        assert!(!v4_blocks_fit(&ips.v4_16, &ips.v4_ranks, &ips.v4_blocks[4..]));
        assert!(!v4_blocks_fit(&ips.v4_16, &ips.v4_ranks[1..], &ips.v4_blocks));
    }
}
