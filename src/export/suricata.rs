//! Suricata datasets: one file per dataset type, plus a rules snippet that loads them, and IP reputation for networks.
//!
//! `string` datasets hold base64, as Suricata requires. Datasets hold addresses, not networks, so IPv4 networks of
//! up to 256 addresses are expanded into them; every other network (broader IPv4, IPv6 networks, ranges as their CIDR
//! cover) goes into Suricata's IP reputation, which holds CIDRs: a categories file (`<id>,<short name>,<description>`)
//! and a reputation file (`<ip or cidr>,<category>,<score>`), as `src/reputation.c` parses them (category below
//! `SREP_MAX_CATS` = 60, score at most `SREP_MAX_VAL` = 127, a `/` makes the line a netblock) and the `iprep`
//! keyword reads them (`iprep:<any|src|dst|both>,<short name>,<op>,<value>`, `src/detect-iprep.c`).

use super::{summary, ExportMeta, Rendered};
use crate::indicator::{Indicator, Kind, Value};
use base64::Engine;
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

const MAX_EXPAND: u32 = 256;

/// The IP reputation category iocmatch's networks are filed under (`iprep-categories.txt`).
const IPREP_CATEGORY: u8 = 1;
const IPREP_SHORT_NAME: &str = "iocmatch";
/// Every exported network gets the highest score, so a rule's `>,0` is "listed at all".
const IPREP_SCORE: u8 = 127;

/// A dataset file: one value a line, no header (the format has none).
fn file<'a>(name: &str, values: impl Iterator<Item = &'a String>) -> Rendered {
    let mut body = String::new();
    for v in values {
        body.push_str(v);
        body.push('\n');
    }
    Rendered {
        name: name.to_string(),
        header: String::new(),
        body: body.into_bytes(),
    }
}

pub(super) fn render(inds: &[&Indicator], meta: &ExportMeta) -> Vec<Rendered> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (mut domains, mut v4, mut v6) = (BTreeSet::new(), Vec::<u32>::new(), BTreeSet::new());
    let (mut md5, mut sha1, mut sha256) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut skipped = 0usize;
    let mut networks = BTreeSet::new();
    for i in inds {
        match &i.value {
            Value::Domain(d) | Value::Hostname(d) => {
                domains.insert(b64.encode(d.as_bytes()));
            }
            Value::Net(IpNet::V4(n)) if n.prefix_len() >= 24 => {
                let first = u32::from(n.network());
                let count = 1u32 << (32 - n.prefix_len());
                v4.extend(first..first + count.min(MAX_EXPAND));
            }
            Value::Net(IpNet::V6(n)) if n.prefix_len() == 128 => {
                v6.insert(n.addr().to_string());
            }
            Value::Net(n) => {
                networks.insert(*n);
            }
            Value::Range(r) => match **r {
                (IpAddr::V4(a), IpAddr::V4(b)) => networks.extend(Ipv4Subnets::new(a, b, 0).map(IpNet::V4)),
                (IpAddr::V6(a), IpAddr::V6(b)) => networks.extend(Ipv6Subnets::new(a, b, 0).map(IpNet::V6)),
                _ => skipped += 1,
            },
            Value::Hash(Kind::Md5, h) => {
                md5.insert(h.to_string());
            }
            Value::Hash(Kind::Sha1, h) => {
                sha1.insert(h.to_string());
            }
            Value::Hash(Kind::Sha256, h) => {
                sha256.insert(h.to_string());
            }
            _ => skipped += 1,
        }
    }
    v4.sort_unstable();
    v4.dedup();
    let v4: Vec<String> = v4
        .into_iter()
        .map(|a| std::net::Ipv4Addr::from(a).to_string())
        .collect();
    let mut rules = String::new();
    let mut sid = 9_400_000;
    let mut rule = |proto: &str, msg: &str, kw: &str| {
        sid += 1;
        let _ = writeln!(rules, "alert {proto} any any -> any any (msg:\"iocmatch MISP {msg}\"; {kw} classtype:trojan-activity; sid:{sid}; rev:1;)");
    };
    let domain_set = "dataset:isset,iocmatch-domains,type string,load domains.lst;";
    rule("dns", "domain in DNS query", &format!("dns.query; {domain_set}"));
    rule("tls", "domain in TLS SNI", &format!("tls.sni; {domain_set}"));
    rule("http", "domain in HTTP Host", &format!("http.host; {domain_set}"));
    rule(
        "ip",
        "IPv4 destination",
        "ip.dst; dataset:isset,iocmatch-ipv4,type ipv4,load ipv4.lst;",
    );
    rule(
        "ip",
        "IPv4 source",
        "ip.src; dataset:isset,iocmatch-ipv4,type ipv4,load ipv4.lst;",
    );
    rule(
        "ip",
        "IPv6 destination",
        "ip.dst; dataset:isset,iocmatch-ipv6,type ip,load ipv6.lst;",
    );
    rule(
        "ip",
        "IPv6 source",
        "ip.src; dataset:isset,iocmatch-ipv6,type ip,load ipv6.lst;",
    );
    rule("http", "file MD5", "filemd5:md5.lst;");
    rule("http", "file SHA1", "filesha1:sha1.lst;");
    rule("http", "file SHA256", "filesha256:sha256.lst;");
    // Added after the file-hash rules so the earlier sids stay what they were.
    rule(
        "ip",
        "network destination (IP reputation)",
        &format!("iprep:dst,{IPREP_SHORT_NAME},>,0;"),
    );
    rule(
        "ip",
        "network source (IP reputation)",
        &format!("iprep:src,{IPREP_SHORT_NAME},>,0;"),
    );
    let header = format!(
        "# {}\n# Datasets match exactly: a MISP domain's subdomains are not covered. Networks are in IP reputation\n\
         # (iprep.list); load it in suricata.yaml:\n\
         #   reputation-categories-file: /etc/suricata/iocmatch/iprep-categories.txt\n\
         #   default-reputation-path: /etc/suricata/iocmatch\n\
         #   reputation-files:\n\
         #     - iprep.list\n\
         # Left out (URLs, e-mails, digests that are not file hashes): {skipped}\n",
        summary(meta, inds)
    );
    let mut iprep = String::new();
    for n in &networks {
        let _ = writeln!(iprep, "{n},{IPREP_CATEGORY},{IPREP_SCORE}");
    }
    vec![
        file("domains.lst", domains.iter()),
        file("ipv4.lst", v4.iter()),
        file("ipv6.lst", v6.iter()),
        file("md5.lst", md5.iter()),
        file("sha1.lst", sha1.iter()),
        file("sha256.lst", sha256.iter()),
        Rendered {
            name: "iprep-categories.txt".into(),
            header: String::new(),
            body: format!("{IPREP_CATEGORY},{IPREP_SHORT_NAME},MISP networks exported by iocmatch\n").into_bytes(),
        },
        Rendered {
            name: "iprep.list".into(),
            header: format!("# {}\n", summary(meta, inds)),
            body: iprep.into_bytes(),
        },
        Rendered {
            name: "iocmatch.rules".into(),
            header,
            body: rules.into_bytes(),
        },
    ]
}
