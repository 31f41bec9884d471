//! IP addresses, networks and ranges, reporting **every** indicator that contains an address.
//!
//! A hash map per prefix length that occurs in the set: a lookup masks the address once per length (most specific
//! first) and probes. Real sets use few distinct lengths (mostly /32 and /24), so this is a handful of O(1) probes,
//! and unlike a merged range set it keeps each containing indicator distinct. Ranges are split into their minimal
//! CIDR cover, each piece pointing at the range's one indicator.

use super::ids::{IdPool, NONE};
use hashbrown::HashMap;
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone)]
pub struct IpTable {
    /// One bit per IPv4 /16 that any indicator touches: 8 KiB, always in L1/L2, so most addresses in a line
    /// (private ranges, unrelated networks) cost one bit test and no hash probe.
    v4_16: Box<[u64; 1024]>,
    v4: Vec<(u8, HashMap<u32, u32>)>,
    v6: Vec<(u8, HashMap<u128, u32>)>,
    pool: IdPool,
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// The map for one prefix length, created on first use; levels stay sorted most specific first.
fn level<K>(levels: &mut Vec<(u8, HashMap<K, u32>)>, len: u8) -> &mut HashMap<K, u32> {
    let i = match levels.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            levels.push((len, HashMap::new()));
            levels.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
            levels.iter().position(|(l, _)| *l == len).expect("level just added")
        }
    };
    &mut levels[i].1
}

impl Default for IpTable {
    fn default() -> Self {
        IpTable {
            v4_16: Box::new([0; 1024]),
            v4: Vec::new(),
            v6: Vec::new(),
            pool: IdPool::default(),
        }
    }
}

impl IpTable {
    fn mark_v4(&mut self, net: u32, len: u8) {
        let first = net >> 16;
        let count = if len >= 16 { 1 } else { 1u32 << (16 - len) };
        for p in first..first + count {
            self.v4_16[(p >> 6) as usize] |= 1 << (p & 63);
        }
    }

    pub fn add_net(&mut self, net: IpNet, id: u32) {
        if let IpNet::V4(n) = net {
            self.mark_v4(u32::from(n.network()), n.prefix_len());
        }
        let slot = match net {
            IpNet::V4(n) => level(&mut self.v4, n.prefix_len())
                .entry(u32::from(n.network()) & mask4(n.prefix_len()))
                .or_insert(NONE),
            IpNet::V6(n) => level(&mut self.v6, n.prefix_len())
                .entry(u128::from(n.network()) & mask6(n.prefix_len()))
                .or_insert(NONE),
        };
        self.pool.push(slot, id);
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

    pub fn has_v4(&self) -> bool {
        !self.v4.is_empty()
    }

    pub fn has_v6(&self) -> bool {
        !self.v6.is_empty()
    }

    /// Calls `f` with every indicator containing `a`, most specific first (a range may repeat; callers dedupe).
    #[inline]
    pub fn lookup_v4(&self, a: Ipv4Addr, mut f: impl FnMut(u32)) {
        let a = u32::from(a);
        let p = a >> 16;
        if self.v4_16[(p >> 6) as usize] & (1 << (p & 63)) == 0 {
            return;
        }
        for (len, map) in &self.v4 {
            if let Some(&slot) = map.get(&(a & mask4(*len))) {
                self.pool.for_each(slot, &mut f);
            }
        }
    }

    #[inline]
    pub fn lookup_v6(&self, a: Ipv6Addr, mut f: impl FnMut(u32)) {
        let a = u128::from(a);
        for (len, map) in &self.v6 {
            if let Some(&slot) = map.get(&(a & mask6(*len))) {
                self.pool.for_each(slot, &mut f);
            }
        }
    }

    pub fn seal(&mut self) {
        for (_, m) in &mut self.v4 {
            m.shrink_to_fit();
        }
        for (_, m) in &mut self.v6 {
            m.shrink_to_fit();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        8192 + self.v4.iter().map(|(_, m)| m.capacity() * 9).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.capacity() * 21).sum::<usize>()
            + self.pool.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_v4(t: &IpTable, a: &str) -> Vec<u32> {
        let mut v = Vec::new();
        t.lookup_v4(a.parse().unwrap(), |i| v.push(i));
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn lookup_reports_address_every_cidr_and_range() {
        let mut t = IpTable::default();
        t.add_net("1.2.3.4/32".parse().unwrap(), 0);
        t.add_net("1.2.3.0/24".parse().unwrap(), 1);
        t.add_net("1.2.0.0/16".parse().unwrap(), 2);
        t.add_range("1.2.3.1".parse().unwrap(), "1.2.3.9".parse().unwrap(), 3);
        t.add_net("9.9.9.9/32".parse().unwrap(), 4);
        assert_eq!(all_v4(&t, "1.2.3.4"), [0, 1, 2, 3]);
        assert_eq!(all_v4(&t, "1.2.3.10"), [1, 2]);
        assert_eq!(all_v4(&t, "1.2.4.4"), [2]);
        assert!(all_v4(&t, "1.3.3.4").is_empty());
    }
}
