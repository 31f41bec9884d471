//! Zeek Intel framework files: tab-separated with a `#fields` header.
//!
//! Zeek's `Intel::DOMAIN` matches a name exactly, while a MISP `domain` means the domain and its subdomains: the
//! file holds each domain and hostname as MISP has it, and says in its header that subdomains need
//! `deploy/zeek/iocmatch-domain-suffix.zeek`. x509 SHA-1 fingerprints are `Intel::CERT_HASH`; digests Zeek does not
//! compute or see (imphash, JA3, other fingerprints, fuzzy hashes, ...) have no Zeek intel type and are left out.

use super::{event_ref, summary, ExportMeta, Rendered};
use crate::indicator::{Indicator, Kind, Value};
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::fmt::Write;
use std::net::IpAddr;

fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c == '\t' || c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

pub(super) fn render(inds: &[&Indicator], meta: &ExportMeta) -> Rendered {
    let mut body = String::from("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n");
    for i in inds {
        let p = &i.provenance;
        let desc = format!(
            "{}; MISP {} attribute {}",
            p.event().info.as_deref().unwrap_or(""),
            p.misp_type(),
            p.attribute_uuid.map(|u| u.to_string()).unwrap_or_else(|| "-".into())
        );
        let url = match (&meta.misp_url, &p.event().id) {
            (Some(base), Some(id)) => format!("{}/events/view/{id}", base.trim_end_matches('/')),
            _ => "-".into(),
        };
        let mut row = |indicator: String, t: &str| {
            let _ = writeln!(
                body,
                "{}\t{t}\t{}\t{}\t{}",
                clean(&indicator),
                clean(&event_ref(i)),
                clean(&desc),
                clean(&url)
            );
        };
        match &i.value {
            Value::Domain(d) | Value::Hostname(d) => row(d.to_string(), "Intel::DOMAIN"),
            Value::Net(n) if n.prefix_len() == n.max_prefix_len() => row(n.addr().to_string(), "Intel::ADDR"),
            Value::Net(n) => row(n.to_string(), "Intel::SUBNET"),
            Value::Range(r) => {
                let nets: Vec<IpNet> = match **r {
                    (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
                    (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
                    _ => Vec::new(),
                };
                for n in nets {
                    row(n.to_string(), "Intel::SUBNET");
                }
            }
            Value::Url(_) => row(i.value.name(), "Intel::URL"),
            Value::Email(e) => row(e.to_string(), "Intel::EMAIL"),
            Value::Hash(kind, h) => {
                // Zeek raises CERT_HASH for a certificate's SHA-1 only (`policy/frameworks/intel/seen/x509.zeek`).
                if p.misp_type().ends_with("x509-fingerprint-sha1") {
                    row(h.to_string(), "Intel::CERT_HASH");
                } else if !matches!(kind, Kind::Digest | Kind::Fuzzy) {
                    row(h.to_string(), "Intel::FILE_HASH");
                }
            }
        }
    }
    Rendered {
        name: String::new(),
        header: format!(
            "# {}\n# Intel::DOMAIN matches a name exactly: a MISP domain's subdomains are seen only with\n\
             # deploy/zeek/iocmatch-domain-suffix.zeek loaded (it looks up each parent domain of DNS, HTTP and TLS names).\n",
            summary(meta, inds)
        ),
        body: body.into_bytes(),
    }
}
