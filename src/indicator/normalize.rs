//! Normalisation and validation of one MISP attribute value into matchable [`Value`]s.
//!
//! The rules mirror what MISP itself applies on save (lower-case hosts and hashes, compressed IPv6, CIDR host bits
//! cleared) plus the checks a matcher needs (no over-broad networks, hashes of the right length).

use super::{refang, Kind, Policy, Value};
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::borrow::Cow;
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
    let t = lower_name(misp_type);
    let one = |r: Result<Value, Rejected>| AttributeOutcome::Parts(vec![r]);
    match &*t {
        "domain" => one(domain(&value).map(|d| Value::Domain(d.into()))),
        "hostname" => one(domain(&value).map(|d| Value::Hostname(d.into()))),
        "ip-src" | "ip-dst" | "ip" => one(ip(&value, policy)),
        "ip-range" => one(ip(&value, policy)),
        "url" => one(url(&value)),
        "email" | "email-src" | "email-dst" | "email-reply-to" | "whois-registrant-email" | "target-email" => {
            one(email(&value))
        }
        h if digest_spec(h).is_some() => one(hash(h, &value)),
        "domain|ip" => match split(&value) {
            Ok((d, a)) => AttributeOutcome::Parts(vec![domain(d).map(|d| Value::Domain(d.into())), ip(a, policy)]),
            Err(e) => one(Err(e)),
        },
        "hostname|port" => one(split(&value).and_then(|(h, _)| domain(h).map(|d| Value::Hostname(d.into())))),
        "ip-src|port" | "ip-dst|port" => one(split(&value).and_then(|(a, _)| ip(a, policy))),
        "malware-sample" => one(split(&value).and_then(|(_, h)| hash("md5", h))),
        _ => match t.strip_prefix("filename|") {
            Some(h) if digest_spec(h).is_some() => one(split(&value).and_then(|(_, v)| hash(h, v))),
            _ => AttributeOutcome::Unsupported,
        },
    }
}

/// A MISP type trimmed and lower-cased, borrowed when it is both already (as loaders hand types over): no copy per
/// attribute.
pub(crate) fn lower_name(t: &str) -> Cow<'_, str> {
    if t.bytes().any(|c| c.is_ascii_uppercase() || c.is_ascii_whitespace()) {
        Cow::Owned(t.trim().to_ascii_lowercase())
    } else {
        Cow::Borrowed(t)
    }
}

/// The MISP types most attributes have, as static names: a loader hands a type it finds here on without copying
/// it for each of millions of attributes. Anything else is still loaded, as an owned name.
pub fn known_type(t: &str) -> Option<&'static str> {
    const TYPES: [&str; 28] = [
        "domain",
        "hostname",
        "ip-dst",
        "ip-src",
        "url",
        "sha256",
        "md5",
        "sha1",
        "domain|ip",
        "ip-dst|port",
        "ip-src|port",
        "hostname|port",
        "email",
        "email-src",
        "email-dst",
        "filename|md5",
        "filename|sha1",
        "filename|sha256",
        "sha512",
        "ip",
        "ip-range",
        "link",
        "text",
        "comment",
        "filename",
        "regkey",
        "other",
        "AS",
    ];
    TYPES.into_iter().find(|k| *k == t)
}

/// Guesses the MISP type of a bare value from a plain indicator list.
///
/// The value is refanged first, as MISP's freetext import does, so `1.2.3[.]4` is an address and `a[@]evil.com` an
/// e-mail. Order matters: ranges and networks before addresses, hashes by length, then URL, e-mail and domain.
pub fn classify_plain(value: &str) -> &'static str {
    plain_shape(value).unwrap_or_else(|| classify_plain_parsed(value))
}

/// The type of a value of host bytes only (`[A-Za-z0-9._-]`), the shape of most list values, from one pass over
/// its bytes; `None` for any other value, and for the rare host-byte shapes left to [`classify_plain_parsed`]. With
/// no `/`, `:`, `@` or bracket there is no URL, e-mail, IPv6 address or defanging, so the parsers' answer follows
/// from which bytes there are: all hex digits, a digest of that length; a letter or `_` otherwise, a domain (no
/// IPv4 address, and no range, whose two sides would both be addresses); digits and dots, an IPv4 address when it
/// parses as one and a domain when not. The general path refangs, searches and tries the address parsers in turn,
/// which was a sixth of a 10M list's load.
#[inline]
fn plain_shape(value: &str) -> Option<&'static str> {
    let (mut letter, mut all_hex, mut quad) = (false, true, true);
    for &b in value.as_bytes() {
        if !is_host_byte(b) {
            return None;
        }
        letter |= b.is_ascii_alphabetic() || b == b'_';
        all_hex &= b.is_ascii_hexdigit();
        quad &= b.is_ascii_digit() || b == b'.';
    }
    if all_hex {
        return Kind::hash_for_len(value.len()).map(Kind::as_str);
    }
    if letter {
        return Some("domain");
    }
    quad.then(|| {
        if value.parse::<Ipv4Addr>().is_ok() {
            "ip-dst"
        } else {
            "domain"
        }
    })
}

/// [`classify_plain`] by refanging the value and trying each type's parser.
fn classify_plain_parsed(value: &str) -> &'static str {
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
    if let Some(bracketed) = no_scheme.strip_prefix('[') {
        return url_v6_host(raw, bracketed);
    }
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
        let what = if v.starts_with('/') {
            "is a path without a host"
        } else {
            "has no host"
        };
        return Err(reject(RejectReason::Malformed, format!("URL {raw:?} {what}")));
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

/// A URL whose host is an IPv6 literal (`http://[2001:db8::5]/gate.php`, RFC 3986): the host is kept in canonical
/// form, brackets included as ECS `url.domain` wants it, and compared as an address when matching.
fn url_v6_host(raw: &str, bracketed: &str) -> Result<Value, Rejected> {
    let bad = |why: &str| reject(RejectReason::Malformed, format!("URL {raw:?}: {why}"));
    let (inner, rest) = bracketed
        .split_once(']')
        .ok_or_else(|| bad("no ']' after the IPv6 host"))?;
    let addr: std::net::Ipv6Addr = inner.parse().map_err(|_| bad("the host is not an IPv6 address"))?;
    if !(rest.is_empty() || rest.starts_with([':', '/', '?', '#'])) || rest.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(bad("unexpected text after the host"));
    }
    let host = match addr.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => format!("[{addr}]"),
    };
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

/// How a digest type is stored and matched: its kind and hex length, or `None` for the fuzzy hashes, whose shape is
/// `blocksize:hash:hash`. Covers every MISP type a raw log line can carry as a literal digest.
fn digest_spec(misp_type: &str) -> Option<(Kind, Option<usize>)> {
    let hex = |k, n| Some((k, Some(n)));
    match misp_type {
        "md5" => hex(Kind::Md5, 32),
        "sha1" => hex(Kind::Sha1, 40),
        "sha224" => hex(Kind::Sha224, 56),
        "sha256" => hex(Kind::Sha256, 64),
        "sha384" => hex(Kind::Sha384, 96),
        "sha512" => hex(Kind::Sha512, 128),
        "imphash" | "ja3-fingerprint-md5" | "hassh-md5" | "hasshserver-md5" | "x509-fingerprint-md5" => {
            hex(Kind::Digest, 32)
        }
        "x509-fingerprint-sha1" => hex(Kind::Digest, 40),
        "sha512/224" | "sha3-224" => hex(Kind::Digest, 56),
        "jarm-fingerprint" => hex(Kind::Digest, 62),
        "x509-fingerprint-sha256" | "authentihash" | "sha512/256" | "sha3-256" => hex(Kind::Digest, 64),
        "tlsh" => hex(Kind::Digest, TLSH_HEX),
        "sha3-384" => hex(Kind::Digest, 96),
        "sha3-512" => hex(Kind::Digest, 128),
        "ssdeep" | "impfuzzy" => Some((Kind::Fuzzy, None)),
        _ => None,
    }
}

/// Hex digits of a TLSH digest after its optional `T1` version prefix (TLSH 4), which is dropped at load and is
/// optional in lines, so both printed forms match.
pub(crate) const TLSH_HEX: usize = 70;

fn hash(misp_type: &str, raw: &str) -> Result<Value, Rejected> {
    let (kind, len) = digest_spec(misp_type).expect("a digest type");
    let v = raw.trim();
    if v.is_empty() {
        return Err(reject(RejectReason::Empty, "empty hash"));
    }
    let Some(want) = len else {
        return fuzzy(raw, v);
    };
    let mut v = v.to_ascii_lowercase();
    // x509 fingerprints are printed as colon-separated byte pairs; MISP stores them without the colons.
    if v.len() % 3 == 2 && v.bytes().enumerate().all(|(i, b)| (b == b':') == (i % 3 == 2)) {
        v.retain(|c| c != ':');
    }
    if misp_type == "tlsh" && v.len() == TLSH_HEX + 2 && v.starts_with("t1") {
        v.drain(..2);
    }
    if let Some(c) = v.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(reject(RejectReason::HashNonHex, format!("{raw:?} contains {c:?}")));
    }
    if v.len() != want {
        return Err(reject(
            RejectReason::HashWrongLength,
            format!("{raw:?} has {} hex digits, {misp_type} needs {want}", v.len()),
        ));
    }
    Ok(Value::Hash(kind, v.into()))
}

/// The bytes of a fuzzy hash's two base64 parts.
pub(crate) fn is_fuzzy_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}

/// `blocksize:hash:hash` as ssdeep and impfuzzy print it (MISP's own check), kept in its case: base64 is
/// case-sensitive.
fn fuzzy(raw: &str, v: &str) -> Result<Value, Rejected> {
    let mut parts = v.split(':');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(n), Some(a), Some(b), None)
            if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())
                && !a.is_empty() && a.bytes().all(is_fuzzy_byte)
                && !b.is_empty() && b.bytes().all(is_fuzzy_byte)
    );
    if !ok {
        return Err(reject(
            RejectReason::Malformed,
            format!("{raw:?} is not blocksize:hash:hash"),
        ));
    }
    Ok(Value::Hash(Kind::Fuzzy, v.into()))
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
        for (t, v) in [
            ("AS", "AS13335"),
            ("user-agent", "curl/8.0"),
            ("filename", "a.exe"),
            ("text", "x"),
        ] {
            assert_eq!(
                normalize_attribute(t, v, &Policy::default()),
                AttributeOutcome::Unsupported,
                "{t}"
            );
        }
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
    }

    #[test]
    fn the_host_byte_shortcut_types_values_as_the_parsers_do() {
        let alphabet = b"af0129.-_gzAFGZ/:@[]x ";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values: Vec<String> = [
            "evil.com",
            "hxxpsevil.com",
            "1.2.3.4",
            "1.2.3.4-1.2.3.9",
            "a-1.2.3.4",
            "deadbeef.cafe",
            "_dmarc.x",
            "d41d8cd98f00b204e9800998ecf8427e",
            "d41d8cd98f00b204e9800998ecf8427g",
            "",
            ".",
            "-",
            "a",
            "1",
            "1-2",
            "10.0.0.1",
            "10.0.0.01",
            "10.0.0.256",
            "1.2.3",
            "1.2.3.4.5",
            "12345678901234567890123456789012",
        ]
        .map(String::from)
        .to_vec();
        values.push("a".repeat(64));
        values.push("ab".repeat(20));
        // Any bytes, and then the digits, dots and dashes of addresses and ranges.
        for (bytes, count, longest) in [(&alphabet[..], 200_000, 12), (b"0123456789.-", 100_000, 16)] {
            for _ in 0..count {
                let len = (next() % longest) as usize;
                values.push(
                    (0..len)
                        .map(|_| bytes[(next() % bytes.len() as u64) as usize] as char)
                        .collect(),
                );
            }
        }
        let (mut shortcut, mut kinds) = (0, std::collections::BTreeSet::new());
        for v in &values {
            if let Some(t) = plain_shape(v) {
                shortcut += 1;
                kinds.insert(t);
                assert_eq!(classify_plain_parsed(v), t, "{v:?}");
            }
            assert_eq!(classify_plain(v), classify_plain_parsed(v), "{v:?}");
        }
        assert!(shortcut > 10_000, "{shortcut} values took the shortcut");
        assert!(kinds.len() >= 4, "every shape is tried: {kinds:?}");
        assert_eq!(classify_plain("evil.com"), "domain");
    }
}
