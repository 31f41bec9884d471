//! Firewall sets for nftables and ipset. Adjacent and contained networks are merged (`iprange`), so each set is the
//! minimal list of networks covering every IP indicator.

use super::{summary, ExportMeta, Rendered};
use crate::indicator::{Indicator, Value};
use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use iprange::IpRange;
use std::fmt::Write;
use std::net::IpAddr;

/// The minimal IPv4 and IPv6 network lists covering the IP indicators.
pub(crate) fn aggregate(inds: &[&Indicator]) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let mut v4: IpRange<Ipv4Net> = IpRange::new();
    let mut v6: IpRange<Ipv6Net> = IpRange::new();
    for i in inds {
        match &i.value {
            Value::Net(IpNet::V4(n)) => {
                v4.add(*n);
            }
            Value::Net(IpNet::V6(n)) => {
                v6.add(*n);
            }
            Value::Range(r) => match **r {
                (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).for_each(|n| {
                    v4.add(n);
                }),
                (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).for_each(|n| {
                    v6.add(n);
                }),
                _ => {}
            },
            _ => {}
        }
    }
    v4.simplify();
    v6.simplify();
    let mut a: Vec<Ipv4Net> = v4.iter().collect();
    let mut b: Vec<Ipv6Net> = v6.iter().collect();
    a.sort();
    b.sort();
    (a, b)
}

/// The aggregated networks as set elements, IPv4 then IPv6; a single address is written without its prefix.
fn elements(inds: &[&Indicator]) -> [Vec<String>; 2] {
    let (v4, v6) = aggregate(inds);
    [
        v4.iter()
            .map(|n| {
                if n.prefix_len() == 32 {
                    n.addr().to_string()
                } else {
                    n.to_string()
                }
            })
            .collect(),
        v6.iter()
            .map(|n| {
                if n.prefix_len() == 128 {
                    n.addr().to_string()
                } else {
                    n.to_string()
                }
            })
            .collect(),
    ]
}

pub(super) fn nftables(inds: &[&Indicator], meta: &ExportMeta) -> Rendered {
    let [v4, v6] = elements(inds);
    let mut b = String::from("add table inet iocmatch\n");
    for (name, ty, elems) in [("misp_v4", "ipv4_addr", v4), ("misp_v6", "ipv6_addr", v6)] {
        let _ = writeln!(b, "add set inet iocmatch {name} {{ type {ty}; flags interval; }}");
        let _ = writeln!(b, "flush set inet iocmatch {name}");
        for chunk in elems.chunks(1000) {
            let _ = writeln!(b, "add element inet iocmatch {name} {{ {} }}", chunk.join(", "));
        }
    }
    Rendered {
        name: String::new(),
        header: format!(
            "# {}\n# nft -f this file; match with: ip daddr @misp_v4 drop / ip6 daddr @misp_v6 drop\n",
            summary(meta, inds)
        ),
        body: b.into_bytes(),
    }
}

pub(super) fn ipset(inds: &[&Indicator], meta: &ExportMeta) -> Rendered {
    let [v4, v6] = elements(inds);
    let mut b = String::new();
    for (name, family, elems) in [("iocmatch-v4", "inet", v4), ("iocmatch-v6", "inet6", v6)] {
        let max = (elems.len() * 2).max(65_536);
        let _ = writeln!(b, "create {name} hash:net family {family} maxelem {max} -exist");
        let _ = writeln!(b, "flush {name}");
        for e in &elems {
            let _ = writeln!(b, "add {name} {e} -exist");
        }
    }
    Rendered {
        name: String::new(),
        header: format!("# {}\n# ipset restore < this file\n", summary(meta, inds)),
        body: b.into_bytes(),
    }
}
