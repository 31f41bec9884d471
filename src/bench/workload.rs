//! Deterministic benchmark workloads: indicator sets of any size with a realistic mix, and log lines in real
//! formats with hits planted at a known rate and look-alikes beside them. Pure: the same seed gives the same bytes.
//!
//! Background traffic never collides with indicators by construction: background addresses are private
//! (RFC 1918) while indicator addresses are public, and background hosts use a vocabulary and TLDs that indicator
//! domains never use. So "hits found" must equal "hits planted".

use fastrand::Rng;
use std::collections::HashSet;
use std::fmt::Write;

/// What to generate.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub seed: u64,
    pub indicators: usize,
    pub lines: usize,
    /// Fraction of lines that carry one planted indicator.
    pub hit_rate: f64,
}

/// A generated indicator: MISP type and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenIndicator {
    pub misp_type: &'static str,
    pub value: String,
}

/// Generated indicators and log lines.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub indicators: Vec<GenIndicator>,
    pub lines: Vec<u8>,
    pub line_count: usize,
    /// Lines that carry a planted indicator (each exactly one).
    pub planted: usize,
}

const BAD_TLDS: &[&str] = &["xyz", "top", "ru", "info", "biz", "club", "online", "site", "cn", "su"];
/// URL hosts and e-mail domains use their own TLDs, so a look-alike URL or address never hits a domain indicator.
const URL_TLDS: &[&str] = &["ws", "pw", "cc", "tk"];
const MAIL_TLDS: &[&str] = &["ml", "ga"];
const SYL: &[&str] = &[
    "ka", "zo", "mi", "tr", "ex", "qu", "vo", "ly", "ne", "ra", "sh", "ad", "up", "pay", "sec", "log", "upd", "cdn",
];
const BENIGN: &[&str] = &[
    "www.google.com",
    "update.microsoft.com",
    "cdn.jsdelivr.net",
    "api.github.com",
    "s3.amazonaws.com",
    "www.wikipedia.org",
    "static.xx.fbcdn.net",
    "ocsp.digicert.com",
    "mail.example.org",
    "login.live.com",
];
const PATHS: &[&str] = &[
    "/index.html",
    "/api/v1/items",
    "/static/app.js",
    "/login",
    "/images/logo.png",
    "/",
];
const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
];

fn label(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.usize(2..5) {
        s.push_str(SYL[rng.usize(..SYL.len())]);
    }
    if rng.bool() {
        let _ = write!(s, "{}", rng.u32(..1000));
    }
    s
}

fn public_v4(rng: &mut Rng) -> [u8; 4] {
    loop {
        let a = [rng.u8(1..224), rng.u8(..), rng.u8(..), rng.u8(1..255)];
        let private =
            a[0] == 10 || a[0] == 127 || (a[0] == 172 && (16..32).contains(&a[1])) || (a[0] == 192 && a[1] == 168);
        if !private {
            return a;
        }
    }
}

fn private_v4(rng: &mut Rng) -> String {
    format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255))
}

fn hex(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| b"0123456789abcdef"[rng.usize(..16)] as char).collect()
}

/// Generates `n` distinct indicators: about 55% domains, 25% IPv4, 3% CIDRs, 2% IPv6, 5% URLs, 8% hashes, 2% e-mails.
pub fn indicators(rng: &mut Rng, n: usize) -> Vec<GenIndicator> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.u32(..100);
        let (t, v) = match r {
            0..55 => (
                "domain",
                format!("{}.{}", label(rng), BAD_TLDS[rng.usize(..BAD_TLDS.len())]),
            ),
            55..80 => {
                let a = public_v4(rng);
                ("ip-dst", format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]))
            }
            80..83 => {
                let a = public_v4(rng);
                ("ip-dst", format!("{}.{}.{}.0/24", a[0], a[1], a[2]))
            }
            83..85 => (
                "ip-dst",
                format!(
                    "2a0{}:{:x}:{:x}::{:x}",
                    rng.u8(1..10),
                    rng.u16(..),
                    rng.u16(..),
                    rng.u16(1..)
                ),
            ),
            85..90 => (
                "url",
                format!(
                    "http://{}.{}/{}/{}.php",
                    label(rng),
                    URL_TLDS[rng.usize(..URL_TLDS.len())],
                    label(rng),
                    label(rng)
                ),
            ),
            90..93 => ("md5", hex(rng, 32)),
            93..95 => ("sha1", hex(rng, 40)),
            95..98 => ("sha256", hex(rng, 64)),
            _ => (
                "email-src",
                format!(
                    "{}@{}.{}",
                    label(rng),
                    label(rng),
                    MAIL_TLDS[rng.usize(..MAIL_TLDS.len())]
                ),
            ),
        };
        if seen.insert(v.clone()) {
            out.push(GenIndicator { misp_type: t, value: v });
        }
    }
    out
}

/// The text a planted indicator appears as in a line (a host inside a CIDR, a URL with its scheme, ...).
fn planted_text(rng: &mut Rng, ind: &GenIndicator) -> String {
    match ind.misp_type {
        "domain" if rng.bool() => format!("{}.{}", label(rng), ind.value),
        "ip-dst" if ind.value.ends_with(".0/24") => ind.value.replace(".0/24", &format!(".{}", rng.u8(1..255))),
        "url" => ind.value.clone(),
        "md5" | "sha1" | "sha256" if rng.bool() => ind.value.to_uppercase(),
        _ => ind.value.clone(),
    }
}

/// A look-alike of an indicator that the rules must not match.
fn lookalike(rng: &mut Rng, ind: &GenIndicator) -> String {
    match ind.misp_type {
        "domain" => {
            if rng.bool() {
                format!("x{}", ind.value)
            } else {
                format!("{}.au", ind.value)
            }
        }
        "ip-dst" if !ind.value.contains(':') && !ind.value.contains('/') => format!("{}.7", ind.value),
        "url" => format!("{}2", ind.value),
        "md5" | "sha1" | "sha256" => format!("{}0", ind.value),
        "email-src" => format!("x{}", ind.value),
        _ => private_v4(rng),
    }
}

fn host_or_ip(rng: &mut Rng) -> String {
    if rng.bool() {
        BENIGN[rng.usize(..BENIGN.len())].to_string()
    } else {
        private_v4(rng)
    }
}

/// One log line in a format suited to the planted text (or a random format with benign content).
fn line(rng: &mut Rng, out: &mut String, planted: Option<(&str, String)>) {
    let fmt = match planted.as_ref().map(|p| p.0) {
        Some("md5" | "sha1" | "sha256") => 3,
        Some("email-src") => 4,
        Some(_) => [0, 1, 2, 4, 5][rng.usize(..5)],
        None => rng.u32(..6),
    };
    let p = planted.map(|p| p.1);
    let src = private_v4(rng);
    let sec = rng.u32(..60);
    match fmt {
        0 => {
            let referer = p.as_ref().map_or_else(
                || {
                    format!(
                        "https://{}{}",
                        BENIGN[rng.usize(..BENIGN.len())],
                        PATHS[rng.usize(..PATHS.len())]
                    )
                },
                |p| format!("http://{p}"),
            );
            let _ = write!(
                out,
                "{src} - - [22/Jan/2024:03:56:{sec:02} +0000] \"GET {} HTTP/1.1\" 200 {} \"{referer}\" \"{}\"",
                PATHS[rng.usize(..PATHS.len())],
                rng.u32(100..90000),
                UAS[rng.usize(..UAS.len())]
            );
        }
        1 => {
            let q = p
                .clone()
                .unwrap_or_else(|| BENIGN[rng.usize(..BENIGN.len())].to_string());
            let _ = write!(
                out,
                "1706000000.{:06}\tC{}\t{src}\t{}\t10.0.0.53\t53\tudp\t{}\t0.0123\t{q}\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t{}\t60.000000\tF",
                rng.u32(..1_000_000),
                hex(rng, 16),
                rng.u16(1024..),
                rng.u16(..),
                private_v4(rng)
            );
        }
        2 => {
            let dest = p.clone().unwrap_or_else(|| host_or_ip(rng));
            let _ = write!(
                out,
                "{{\"timestamp\":\"2024-01-22T10:00:{sec:02}.000000+0000\",\"flow_id\":{},\"event_type\":\"http\",\"src_ip\":\"{src}\",\"src_port\":{},\"dest_ip\":\"10.1.1.1\",\"dest_port\":80,\"proto\":\"TCP\",\"http\":{{\"hostname\":\"{dest}\",\"url\":\"{}\",\"http_user_agent\":\"{}\",\"status\":200}}}}",
                rng.u64(..1 << 50),
                rng.u16(1024..),
                PATHS[rng.usize(..PATHS.len())],
                UAS[rng.usize(..UAS.len())]
            );
        }
        3 => {
            let h = p.clone().unwrap_or_else(|| hex(rng, 64).to_uppercase());
            let _ = write!(
                out,
                "{{\"EventID\":1,\"UtcTime\":\"2024-01-22 10:00:{sec:02}.123\",\"ProcessGuid\":\"{{{}-{}-{}}}\",\"Image\":\"C:\\\\Windows\\\\System32\\\\svc{}.exe\",\"Hashes\":\"MD5={},SHA256={h}\",\"User\":\"CORP\\\\user{}\"}}",
                hex(rng, 8),
                hex(rng, 4),
                hex(rng, 12),
                rng.u16(..),
                hex(rng, 32).to_uppercase(),
                rng.u16(..)
            );
        }
        4 => {
            let who = p
                .clone()
                .unwrap_or_else(|| format!("user{}@mail.example.org", rng.u16(..)));
            let _ = write!(
                out,
                "Jan 22 10:00:{sec:02} mx1 postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[{src}]: 554 5.7.1 from=<{who}> to=<ops@example.org> proto=ESMTP",
                rng.u16(..)
            );
        }
        _ => {
            let dst = p.clone().unwrap_or_else(|| private_v4(rng));
            let _ = write!(
                out,
                "2024-01-22T10:00:{sec:02}Z,fw01,allow,tcp,{src},{},{dst},{},{}",
                rng.u16(1024..),
                [80, 443, 22, 3389][rng.usize(..4)],
                rng.u32(..100000)
            );
        }
    }
    out.push('\n');
}

/// Generates the workload for a spec.
pub fn generate(spec: &WorkloadSpec) -> Workload {
    let mut rng = Rng::with_seed(spec.seed);
    let indicators = indicators(&mut rng, spec.indicators);
    let mut text = String::with_capacity(spec.lines * 200);
    let mut planted = 0;
    for _ in 0..spec.lines {
        let roll = rng.f64();
        let p = if !indicators.is_empty() && roll < spec.hit_rate {
            let ind = &indicators[rng.usize(..indicators.len())];
            planted += 1;
            Some((ind.misp_type, planted_text(&mut rng, ind)))
        } else if !indicators.is_empty() && roll < spec.hit_rate * 2.0 {
            let ind = &indicators[rng.usize(..indicators.len())];
            Some((ind.misp_type, lookalike(&mut rng, ind)))
        } else {
            None
        };
        line(&mut rng, &mut text, p);
    }
    Workload {
        indicators,
        lines: text.into_bytes(),
        line_count: spec.lines,
        planted,
    }
}

impl Workload {
    /// The workload's indicators compiled into a snapshot (version 1), through the normal validation path.
    pub fn snapshot(&self) -> crate::Snapshot {
        crate::Snapshot::build(indicator_set(&self.indicators), 1)
    }
}

/// The indicators as the attributes of a MISP restSearch answer or event (the fields MISP writes that a load reads):
/// what `bench --write` saves, and what the load benchmarks parse.
pub fn misp_attributes(inds: &[GenIndicator]) -> Vec<serde_json::Value> {
    inds.iter()
        .enumerate()
        .map(|(i, g)| {
            serde_json::json!({
                "id": (i + 1).to_string(), "event_id": "1", "category": "Network activity", "type": g.misp_type,
                "value": g.value, "to_ids": true, "deleted": false, "timestamp": "1700000000",
                "uuid": format!("00000000-0000-4000-8000-{:012x}", i),
            })
        })
        .collect()
}

/// The indicators as an [`IndicatorSet`](crate::IndicatorSet), through the normal validation path. Each gets a
/// uuid and a timestamp, as a real MISP attribute has.
pub fn indicator_set(inds: &[GenIndicator]) -> crate::IndicatorSet {
    let mut loader = crate::load::Loader::new(crate::Policy::default());
    let event = std::sync::Arc::new(crate::indicator::EventMeta {
        id: Some("1".into()),
        uuid: Some("5f1c2a9e-7b1d-4c33-9a51-3c2b6f0e0001".into()),
        info: Some("iocmatch bench".into()),
        tags: vec!["tlp:green".into()],
    });
    for (i, g) in inds.iter().enumerate() {
        loader.add_attribute(crate::load::RawAttribute {
            misp_type: g.misp_type.into(),
            value: g.value.clone(),
            to_ids: true,
            event: event.clone(),
            uuid: Some(format!("00000000-0000-4000-8000-{i:012x}")),
            category: Some("Network activity".into()),
            timestamp: Some(1_700_000_000 + i as i64),
            location: crate::load::Location::Unknown,
            ..Default::default()
        });
    }
    loader.finish().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan_buffer;

    #[test]
    fn same_seed_same_bytes() {
        let spec = WorkloadSpec {
            seed: 7,
            indicators: 500,
            lines: 300,
            hit_rate: 0.05,
        };
        let (a, b) = (generate(&spec), generate(&spec));
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.indicators, b.indicators);
    }

    #[test]
    fn hits_found_equal_hits_planted() {
        let w = generate(&WorkloadSpec {
            seed: 42,
            indicators: 5_000,
            lines: 20_000,
            hit_rate: 0.02,
        });
        let snap = w.snapshot();
        assert_eq!(snap.len(), 5_000);
        let stats = scan_buffer(&snap, &w.lines, 1 << 20);
        assert!(w.planted > 300);
        assert_eq!(stats.lines_with_hits as usize, w.planted);
        assert_eq!(stats.lines as usize, w.line_count);
    }
}
