//! Normalisation and validation of one MISP attribute value into matchable [`Value`]s.
//!
//! The rules mirror what MISP itself applies on save (lower-case hosts and hashes, compressed IPv6, CIDR host bits
//! cleared) plus the checks a matcher needs (no over-broad networks, hashes of the right length).

use super::{refang, Kind, Policy, Value};
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Why a value was rejected; the stable key is what `check` and metrics count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    Empty,
    Malformed,
    HashWrongLength,
    HashNonHex,
    DomainNoDot,
    DomainInvalidChars,
    OverBroadNetwork,
    BadComposite,
}

impl RejectReason {
    /// The stable key used in reports and metric labels.
    pub fn key(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty_value",
            RejectReason::Malformed => "malformed",
            RejectReason::HashWrongLength => "hash_wrong_length",
            RejectReason::HashNonHex => "hash_non_hex",
            RejectReason::DomainNoDot => "domain_without_dot",
            RejectReason::DomainInvalidChars => "domain_invalid_chars",
            RejectReason::OverBroadNetwork => "network_too_broad",
            RejectReason::BadComposite => "composite_not_splittable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A rejected value: the reason to count and a sentence to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub reason: RejectReason,
    pub detail: String,
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        detail: detail.into(),
    }
}

/// What became of one attribute.
#[derive(Debug, PartialEq, Eq)]
pub enum AttributeOutcome {
    /// Each part of the attribute (two for `domain|ip`), valid or rejected.
    Parts(Vec<Result<Value, Rejected>>),
    /// A MISP type iocmatch does not match on (counted per type, never dropped silently).
    Unsupported,
}

/// Normalises one attribute of the given MISP type.
///
/// Composite types are split on the first `|`. Types that carry no network or file indicator iocmatch can match
/// (`regkey`, `text`, `filename`, ...) are `Unsupported`.
pub fn normalize_attribute(misp_type: &str, raw: &str, policy: &Policy) -> AttributeOutcome {
    let value = refang(raw);
    let t = misp_type.trim().to_ascii_lowercase();
    let one = |r: Result<Value, Rejected>| AttributeOutcome::Parts(vec![r]);
    match t.as_str() {
        "domain" => one(domain(&value).map(|d| Value::Domain(d.into()))),
        "hostname" => one(domain(&value).map(|d| Value::Hostname(d.into()))),
        "ip-src" | "ip-dst" | "ip" => one(ip(&value, policy)),
        "ip-range" => one(ip(&value, policy)),
        "url" => one(url(&value)),
        "email" | "email-src" | "email-dst" | "email-reply-to" | "whois-registrant-email" | "target-email" => {
            one(email(&value))
        }
        "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512" => one(hash(&t, &value)),
        "domain|ip" => match split(&value) {
            Ok((d, a)) => AttributeOutcome::Parts(vec![domain(d).map(|d| Value::Domain(d.into())), ip(a, policy)]),
            Err(e) => one(Err(e)),
        },
        "hostname|port" => one(split(&value).and_then(|(h, _)| domain(h).map(|d| Value::Hostname(d.into())))),
        "ip-src|port" | "ip-dst|port" => one(split(&value).and_then(|(a, _)| ip(a, policy))),
        "malware-sample" => one(split(&value).and_then(|(_, h)| hash("md5", h))),
        _ => match t.strip_prefix("filename|") {
            Some(h @ ("md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512")) => {
                one(split(&value).and_then(|(_, v)| hash(h, v)))
            }
            _ => AttributeOutcome::Unsupported,
        },
    }
}

/// Guesses the MISP type of a bare value from a plain indicator list.
///
/// The value is refanged first, as MISP's freetext import does, so `1.2.3[.]4` is an address and `a[@]evil.com` an
/// e-mail. Order matters: ranges and networks before addresses, hashes by length, then URL, e-mail and domain.
pub fn classify_plain(value: &str) -> &'static str {
    let refanged = refang(value);
    let v = refanged.trim();
    if v.contains("://") || (v.contains('/') && !looks_like_cidr(v)) {
        return "url";
    }
    if looks_like_cidr(v) || v.parse::<IpAddr>().is_ok() {
        return "ip-dst";
    }
    if let Some((a, b)) = v.split_once('-') {
        if a.trim().parse::<IpAddr>().is_ok() && b.trim().parse::<IpAddr>().is_ok() {
            return "ip-range";
        }
    }
    if v.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Some(k) = Kind::hash_for_len(v.len()) {
            return k.as_str();
        }
    }
    if v.contains('@') {
        return "email";
    }
    "domain"
}

fn looks_like_cidr(v: &str) -> bool {
    v.split_once('/')
        .is_some_and(|(a, l)| a.parse::<IpAddr>().is_ok() && !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
}

fn split(value: &str) -> Result<(&str, &str), Rejected> {
    value.split_once('|').ok_or_else(|| {
        reject(
            RejectReason::BadComposite,
            format!("composite value {value:?} has no '|'"),
        )
    })
}

/// Validates and lower-cases a domain or host name (MISP `domain`, `hostname`).
fn domain(raw: &str) -> Result<String, Rejected> {
    let trimmed = raw.trim().trim_matches('.');
    if trimmed.is_empty() {
        return Err(reject(RejectReason::Empty, "empty domain"));
    }
    let lower = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed)
            .map_err(|_| reject(RejectReason::DomainInvalidChars, format!("{raw:?} is not a valid IDN")))?
    };
    if let Some(b) = lower.bytes().find(|b| !is_host_byte(*b)) {
        return Err(reject(
            RejectReason::DomainInvalidChars,
            format!("{raw:?} contains {:?}", b as char),
        ));
    }
    if !lower.contains('.') {
        return Err(reject(RejectReason::DomainNoDot, format!("{raw:?} has no dot")));
    }
    if lower.parse::<Ipv4Addr>().is_ok() {
        return Err(reject(
            RejectReason::Malformed,
            format!("{raw:?} is an IP address, not a domain"),
        ));
    }
    if lower.len() > 253 || lower.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(reject(
            RejectReason::Malformed,
            format!("{raw:?} has an empty or over-long label"),
        ));
    }
    Ok(lower)
}

/// The bytes of a host token: `[A-Za-z0-9._-]`.
pub(crate) const fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Parses an address, a CIDR network or an `a-b` range into canonical form.
fn ip(raw: &str, policy: &Policy) -> Result<Value, Rejected> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(reject(RejectReason::Empty, "empty address"));
    }
    if let Some((a, b)) = v.split_once('-') {
        return range(a.trim(), b.trim(), policy, raw);
    }
    let net = if v.contains('/') {
        v.parse::<IpNet>()
            .map_err(|_| reject(RejectReason::Malformed, format!("{raw:?} is not an IP network")))?
    } else {
        let a = v
            .parse::<IpAddr>()
            .map_err(|_| reject(RejectReason::Malformed, format!("{raw:?} is not an IP address")))?;
        IpNet::from(a)
    };
    let net = canonical_net(net.trunc());
    check_breadth(net.prefix_len(), net.addr().is_ipv4(), policy, raw)?;
    Ok(Value::Net(net))
}

/// Folds IPv4-mapped IPv6 networks (`::ffff:a.b.c.d/n`) into IPv4, so they match IPv4 traffic.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if let Some(v4) = n.addr().to_ipv4_mapped() {
            if n.prefix_len() >= 96 {
                return IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).expect("prefix in range");
            }
        }
    }
    net
}

fn check_breadth(prefix: u8, v4: bool, policy: &Policy, raw: &str) -> Result<(), Rejected> {
    let min = if v4 { policy.min_v4_prefix } else { policy.min_v6_prefix };
    if prefix < min {
        return Err(reject(
            RejectReason::OverBroadNetwork,
            format!("{raw:?} is broader than /{min}"),
        ));
    }
    Ok(())
}

fn range(a: &str, b: &str, policy: &Policy, raw: &str) -> Result<Value, Rejected> {
    let bad = || reject(RejectReason::Malformed, format!("{raw:?} is not an address range"));
    let (a, b) = (
        a.parse::<IpAddr>().map_err(|_| bad())?,
        b.parse::<IpAddr>().map_err(|_| bad())?,
    );
    let nets: Vec<IpNet> = match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) if x <= y => Ipv4Subnets::new(x, y, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(x), IpAddr::V6(y)) if x <= y => Ipv6Subnets::new(x, y, 0).map(IpNet::V6).collect(),
        _ => return Err(bad()),
    };
    let broadest = nets.iter().map(|n| n.prefix_len()).min().unwrap_or(0);
    check_breadth(broadest, a.is_ipv4(), policy, raw)?;
    if nets.len() == 1 {
        return Ok(Value::Net(canonical_net(nets[0])));
    }
    Ok(Value::Range(Box::new((a, b))))
}

/// Splits a URL into a lower-cased host and the exact rest; the scheme is dropped because lines often omit it.
fn url(raw: &str) -> Result<Value, Rejected> {
    let v = raw.trim();
    let no_scheme = match v.find("://") {
        Some(i) if v[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)) => &v[i + 3..],
        _ => v.strip_prefix("//").unwrap_or(v),
    };
    let host_end = no_scheme.find([':', '/', '?', '#']).unwrap_or(no_scheme.len());
    let (host, rest) = no_scheme.split_at(host_end);
    if host.contains('@') {
        return Err(reject(
            RejectReason::Malformed,
            format!("URL {raw:?} carries credentials"),
        ));
    }
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return Err(reject(RejectReason::Malformed, format!("URL {raw:?} has no host")));
    }
    let host = if host.parse::<Ipv4Addr>().is_ok() {
        host.to_string()
    } else {
        domain(host).map_err(|e| reject(e.reason, format!("URL {raw:?}: {}", e.detail)))?
    };
    if rest.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(reject(
            RejectReason::Malformed,
            format!("URL {raw:?} contains whitespace"),
        ));
    }
    Ok(Value::url(host, rest))
}

fn email(raw: &str) -> Result<Value, Rejected> {
    let v = raw.trim().trim_start_matches("mailto:");
    let Some((local, host)) = v.rsplit_once('@') else {
        return Err(reject(
            RejectReason::Malformed,
            format!("{raw:?} is not an e-mail address"),
        ));
    };
    if local.is_empty() || !local.bytes().all(is_email_local_byte) {
        return Err(reject(
            RejectReason::Malformed,
            format!("{raw:?} has an invalid local part"),
        ));
    }
    let host = domain(host).map_err(|e| reject(e.reason, format!("e-mail {raw:?}: {}", e.detail)))?;
    Ok(Value::Email(format!("{}@{host}", local.to_ascii_lowercase()).into()))
}

/// The bytes an e-mail local part may hold, as matched in lines.
pub(crate) fn is_email_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn hash(misp_type: &str, raw: &str) -> Result<Value, Rejected> {
    let v = raw.trim().to_ascii_lowercase();
    let kind = match misp_type {
        "md5" => Kind::Md5,
        "sha1" => Kind::Sha1,
        "sha224" => Kind::Sha224,
        "sha256" => Kind::Sha256,
        "sha384" => Kind::Sha384,
        _ => Kind::Sha512,
    };
    if v.is_empty() {
        return Err(reject(RejectReason::Empty, "empty hash"));
    }
    if let Some(c) = v.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(reject(RejectReason::HashNonHex, format!("{raw:?} contains {c:?}")));
    }
    let want = kind.hash_len().expect("hash kind");
    if v.len() != want {
        return Err(reject(
            RejectReason::HashWrongLength,
            format!("{raw:?} has {} hex digits, {misp_type} needs {want}", v.len()),
        ));
    }
    Ok(Value::Hash(kind, v.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: &str, v: &str) -> Vec<Result<Value, RejectReason>> {
        match normalize_attribute(t, v, &Policy::default()) {
            AttributeOutcome::Parts(p) => p.into_iter().map(|r| r.map_err(|e| e.reason)).collect(),
            AttributeOutcome::Unsupported => panic!("unsupported"),
        }
    }

    fn ok(t: &str, v: &str) -> Value {
        norm(t, v).remove(0).unwrap()
    }

    fn err(t: &str, v: &str) -> RejectReason {
        norm(t, v).remove(0).unwrap_err()
    }

    #[test]
    fn domains_are_lowercased_and_trailing_dots_dropped() {
        assert_eq!(ok("domain", "EVIL.Com."), Value::Domain("evil.com".into()));
        assert_eq!(ok("domain", "evil[.]com"), Value::Domain("evil.com".into()));
        assert_eq!(ok("hostname", "WWW.evil.com"), Value::Hostname("www.evil.com".into()));
    }

    #[test]
    fn domains_without_dot_or_with_bad_chars_are_rejected() {
        assert_eq!(err("domain", "localhost"), RejectReason::DomainNoDot);
        assert_eq!(err("domain", "ev il.com"), RejectReason::DomainInvalidChars);
        assert_eq!(err("domain", "evil..com"), RejectReason::Malformed);
        assert_eq!(err("domain", "1.2.3.4"), RejectReason::Malformed);
    }

    #[test]
    fn ips_are_canonical_and_cidr_host_bits_cleared() {
        assert_eq!(ok("ip-dst", "10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(ok("ip-dst", "2001:DB8:0:0::1").to_string(), "2001:db8::1");
        assert_eq!(ok("ip-src", "1.2.3.4/32").to_string(), "1.2.3.4");
        assert_eq!(ok("ip-src", "::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(ok("ip-dst|port", "1.2.3.4|443").to_string(), "1.2.3.4");
    }

    #[test]
    fn over_broad_networks_are_rejected_and_the_limit_is_configurable() {
        assert_eq!(err("ip-dst", "10.0.0.0/7"), RejectReason::OverBroadNetwork);
        assert_eq!(err("ip-dst", "2001::/16"), RejectReason::OverBroadNetwork);
        assert!(matches!(ok("ip-dst", "2001:db8::/24"), Value::Net(_)));
        let strict = Policy {
            min_v4_prefix: 16,
            ..Policy::default()
        };
        let r = normalize_attribute("ip-dst", "10.0.0.0/12", &strict);
        assert!(matches!(r, AttributeOutcome::Parts(p) if p[0].is_err()));
    }

    #[test]
    fn ranges_become_one_net_or_a_range() {
        assert_eq!(ok("ip-range", "10.0.0.0-10.0.0.255").to_string(), "10.0.0.0/24");
        assert_eq!(ok("ip-range", "10.0.0.1-10.0.0.5").to_string(), "10.0.0.1-10.0.0.5");
        assert_eq!(err("ip-range", "10.0.0.9-10.0.0.5"), RejectReason::Malformed);
        assert_eq!(
            err("ip-range", "0.0.0.0-255.255.255.255"),
            RejectReason::OverBroadNetwork
        );
    }

    #[test]
    fn hashes_must_have_the_right_length_and_hex_only() {
        assert_eq!(
            ok("md5", "D41D8CD98F00B204E9800998ECF8427E"),
            Value::Hash(Kind::Md5, "d41d8cd98f00b204e9800998ecf8427e".into())
        );
        assert_eq!(
            err("md5", "d41d8cd98f00b204e9800998ecf8427"),
            RejectReason::HashWrongLength
        );
        assert_eq!(
            err("sha1", "zz1d8cd98f00b204e9800998ecf8427e00000000"),
            RejectReason::HashNonHex
        );
        assert!(matches!(
            ok("filename|sha256", &format!("a.exe|{}", "ab".repeat(32))),
            Value::Hash(Kind::Sha256, _)
        ));
    }

    #[test]
    fn composites_split_on_the_first_bar() {
        let parts = norm("domain|ip", "evil.com|1.2.3.4");
        assert_eq!(parts[0], Ok(Value::Domain("evil.com".into())));
        assert_eq!(parts[1].as_ref().unwrap().to_string(), "1.2.3.4");
        assert_eq!(
            ok("hostname|port", "a.evil.com|8080"),
            Value::Hostname("a.evil.com".into())
        );
        assert_eq!(err("filename|sha1", "no-bar-here"), RejectReason::BadComposite);
    }

    #[test]
    fn urls_drop_the_scheme_and_lowercase_only_the_host() {
        assert_eq!(ok("url", "hxxp://EVIL[.]com/X.exe"), Value::url("evil.com", "/X.exe"));
        assert_eq!(ok("url", "evil.com:8080/a?b=C").to_string(), "evil.com:8080/a?b=C");
        assert_eq!(err("url", "http:///x"), RejectReason::Malformed);
    }

    #[test]
    fn emails_are_lowercased_whole() {
        assert_eq!(
            ok("email-src", "Bad.Guy@Evil.COM"),
            Value::Email("bad.guy@evil.com".into())
        );
        assert_eq!(err("email", "not-an-email"), RejectReason::Malformed);
    }

    #[test]
    fn unsupported_types_are_reported_not_dropped() {
        assert_eq!(
            normalize_attribute("regkey", "HKLM\\x", &Policy::default()),
            AttributeOutcome::Unsupported
        );
    }

    #[test]
    fn plain_values_are_classified_by_shape() {
        assert_eq!(classify_plain("1.2.3.4"), "ip-dst");
        assert_eq!(classify_plain("10.0.0.0/8"), "ip-dst");
        assert_eq!(classify_plain("::1"), "ip-dst");
        assert_eq!(classify_plain("1.2.3.4-1.2.3.9"), "ip-range");
        assert_eq!(classify_plain(&"a".repeat(64)), "sha256");
        assert_eq!(classify_plain("evil.com/x"), "url");
        assert_eq!(classify_plain("a@evil.com"), "email");
        assert_eq!(classify_plain("evil.com"), "domain");
    }
}
