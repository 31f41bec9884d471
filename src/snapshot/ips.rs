//! IP addresses, networks and ranges, reporting **every** indicator that contains an address.
//!
//! One open-addressing table per prefix length that occurs in the set: a lookup masks the address once per length
//! (most specific first) and probes. Real sets use few distinct lengths (mostly /32 and /24), so this is a handful
//! of O(1) probes, and unlike a merged range set it keeps each containing indicator distinct. Ranges are split into
//! their minimal CIDR cover, each piece pointing at the range's one indicator. A bitmap of the IPv4 /16s any
//! indicator touches (8 KiB, always cached) turns most addresses of a line away before any probe.

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
        if self.v4_16[p >> 6] & (1 << (p & 63)) == 0 {
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
    v4_16: Vec<u64>,
    v4: HashMap<u32, HashMap<u32, u32>>,
    v6: HashMap<u32, HashMap<u128, u32>>,
    lists: IdLists,
}

impl Default for IpBuilder {
    fn default() -> Self {
        IpBuilder {
            v4_16: vec![0; 1024],
            v4: HashMap::new(),
            v6: HashMap::new(),
            lists: IdLists::default(),
        }
    }
}

/// The IP sections of a finished build.
pub struct BuiltIps {
    pub v4_16: Vec<u64>,
    pub v4_levels: Vec<Level>,
    pub v4_slots: Vec<V4Slot>,
    pub v6_levels: Vec<Level>,
    pub v6_slots: Vec<V6Slot>,
}

impl IpBuilder {
    fn mark_v4(&mut self, net: u32, len: u8) {
        let first = net >> 16;
        let count = if len >= 16 { 1 } else { 1u32 << (16 - len) };
        for p in first..first + count {
            self.v4_16[(p >> 6) as usize] |= 1 << (p & 63);
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
        BuiltIps {
            v4_16: self.v4_16,
            v4_levels,
            v4_slots,
            v6_levels,
            v6_slots,
        }
    }
}
