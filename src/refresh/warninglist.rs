//! MISP warninglists applied locally at snapshot build, with MISP's matching semantics per list type:
//! `string` (exact), `substring` (Aho-Corasick over all entries), `hostname` (suffix at a label boundary),
//! `cidr` (containment) and `regex` (PHP-delimited patterns). Plus the operator's own allowlist.
//!
//! Pure except [`Warninglists::load_dir`] and [`Allowlist::load`], which read files.

use crate::load::Vet;
use crate::Value;
use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// The lists `validation.warninglists = "default"` applies, by their directory name in misp-warninglists: private,
/// reserved and special-use address space and names, hashes of empty files, top-site lists and cloud ranges. It
/// leaves out the lists of platforms attackers host on (see [`PLATFORM_LISTS`]) and the informative ones
/// (sinkholes, scanners, security blogs), which say something about an indicator but do not make it a false positive.
pub const SAFE_DEFAULT: &[&str] = &[
    "rfc1918",
    "rfc5735",
    "rfc6598",
    "rfc3849",
    "rfc6761",
    "ipv6-linklocal",
    "multicast",
    "empty-hashes",
    "tranco10k",
    "alexa",
    "cisco_top10k",
    "cloudflare-top10k",
    "majestic_million",
    "amazon-aws",
    "microsoft-azure",
    "google-gcp",
    "cloudflare",
    "akamai",
    "fastly",
    "oracle-oci",
];

/// Lists of shared platforms, where anyone gets a subdomain or a link: real C2 and phishing live on them
/// (`x.duckdns.org`, `x.ngrok.io`, `x.workers.dev`), so they are never in the default, and a top-site list's suffix
/// match on one of their domains does not drop that domain's subdomains.
pub const PLATFORM_LISTS: &[&str] = &["dynamic-dns", "lots-project", "url-shortener", "link-in-bio"];

/// Platform domains that also sit in other lists (top sites), from misp-warninglists; see the file's header.
const PLATFORM_HOSTS: &str = include_str!("platform_hosts.txt");

#[derive(Deserialize)]
pub(crate) struct ListFile {
    name: String,
    #[serde(default)]
    r#type: Option<serde_json::Value>,
    list: Vec<String>,
    #[serde(default)]
    matching_attributes: Option<Vec<String>>,
}

enum Matcher {
    Exact(HashSet<String>),
    Substring(AhoCorasick),
    Hostname(HashSet<String>),
    Cidr(Vec<IpNet>),
    Regex(Vec<Regex>),
}

struct List {
    name: String,
    types: Option<HashSet<String>>,
    matcher: Matcher,
    /// Whether a hostname match on a platform domain spares that domain's subdomains (every list but the
    /// platform lists themselves).
    spares_platforms: bool,
}

/// A set of MISP warninglists.
pub struct Warninglists {
    lists: Vec<List>,
    /// Entries that could not be used (a regex that does not compile), naming the list and the entry.
    dropped: Vec<String>,
    /// Shared-platform domains whose subdomains other lists' hostname matches do not drop.
    platforms: HashSet<String>,
}

impl Default for Warninglists {
    fn default() -> Self {
        let platforms = PLATFORM_HOSTS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        Warninglists {
            lists: Vec::new(),
            dropped: Vec::new(),
            platforms,
        }
    }
}

/// Which lists to take from a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    All,
    /// [`SAFE_DEFAULT`]: those of its lists the directory has.
    Default,
    /// By directory name (`rfc1918`) or by the list's `name`, compared without case.
    Named(Vec<String>),
}

/// The warninglist files of a directory, read and parsed but not yet selected.
pub struct ListDir {
    /// (directory name, file path, parsed list), in path order.
    files: Vec<(String, String, ListFile)>,
    /// Files that could not be read or parsed.
    pub errors: Vec<String>,
}

/// A list's short name from its path: `lists/rfc1918/list.json` → `rfc1918`, `rfc1918.list.json` → `rfc1918`.
fn list_id(path: &Path) -> String {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let id = if file == "list.json" {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|f| f.to_str())
            .unwrap_or(file)
    } else {
        file.trim_end_matches(".json").trim_end_matches(".list")
    };
    id.to_ascii_lowercase()
}

impl ListDir {
    /// Reads every `*.json` under `dir`; a bad file is reported and skipped, never fatal.
    pub fn read(dir: &Path) -> ListDir {
        let mut out = ListDir {
            files: Vec::new(),
            errors: Vec::new(),
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) => {
                    out.errors.push(format!("{}: {e}", d.display()));
                    continue;
                }
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "json") {
                    let shown = p.display().to_string();
                    match std::fs::read(&p) {
                        Ok(b) => match serde_json::from_slice::<ListFile>(&b) {
                            Ok(f) => out.files.push((list_id(&p), shown, f)),
                            Err(e) => out.errors.push(format!("{shown}: {e}")),
                        },
                        Err(e) => out.errors.push(format!("{shown}: {e}")),
                    }
                }
            }
        }
        out
    }

    /// The `name` of every list read.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(_, _, f)| f.name.as_str())
    }

    /// Builds the wanted lists. Platform lists in the directory that are not wanted still widen the set of platform
    /// domains other lists spare. Returns the lists and the problems (unusable entries, names not found).
    pub fn select(self, wanted: &Wanted) -> (Warninglists, Vec<String>) {
        let mut wl = Warninglists::default();
        let mut errors = self.errors;
        let want = |id: &str, name: &str| match wanted {
            Wanted::All => true,
            Wanted::Default => SAFE_DEFAULT.contains(&id),
            Wanted::Named(n) => n
                .iter()
                .any(|w| w.eq_ignore_ascii_case(id) || w.eq_ignore_ascii_case(name)),
        };
        let mut found = HashSet::new();
        for (id, path, f) in self.files {
            if want(&id, &f.name) {
                found.insert(id.clone());
                found.insert(f.name.to_ascii_lowercase());
                if let Err(e) = wl.add_list(&id, &path, f) {
                    errors.push(e);
                }
            } else if PLATFORM_LISTS.contains(&id.as_str()) {
                wl.platforms
                    .extend(f.list.iter().map(|h| h.trim_matches('.').to_ascii_lowercase()));
            }
        }
        if let Wanted::Named(names) = wanted {
            for n in names {
                if !found.contains(&n.to_ascii_lowercase()) {
                    errors.push(format!(
                        "validation.warninglists: no list {n:?} in the warninglists directory"
                    ));
                }
            }
        }
        errors.extend(wl.dropped.iter().cloned());
        (wl, errors)
    }
}

/// Converts a PHP `/pattern/flags` regex (as MISP stores warninglist entries and feed exclusion regexes) to Rust.
pub(crate) fn php_regex(entry: &str) -> Option<Regex> {
    let body = entry.strip_prefix('/')?;
    let end = body.rfind('/')?;
    let (pat, flags) = (&body[..end], &body[end + 1..]);
    let inline: String = flags.chars().filter(|c| matches!(c, 'i' | 'm' | 's' | 'x')).collect();
    let pat = if inline.is_empty() {
        pat.to_string()
    } else {
        format!("(?{inline}){pat}")
    };
    Regex::new(&pat).ok()
}

/// The host of a value the way MISP's hostname lists see it: from a URL after `//`, else before the first `/`.
fn host_of(v: &str) -> &str {
    let v = v.split_once("//").map_or(v, |(_, r)| r);
    let v = v.split(['/', '?', '#']).next().unwrap_or(v);
    let v = v.rsplit_once('@').map_or(v, |(_, h)| h);
    v.split(':').next().unwrap_or(v).trim_matches('.')
}

impl Warninglists {
    /// Parses one list file (misp-warninglists' `list.json` format) and adds it. Returns an error naming what is
    /// wrong.
    pub fn add_json(&mut self, name_hint: &str, bytes: &[u8]) -> Result<(), String> {
        let f: ListFile = serde_json::from_slice(bytes).map_err(|e| format!("{name_hint}: {e}"))?;
        self.add_list(&list_id(Path::new(name_hint)), name_hint, f)
    }

    fn add_list(&mut self, id: &str, name_hint: &str, f: ListFile) -> Result<(), String> {
        let kind = match &f.r#type {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_str()).unwrap_or("string").to_string(),
            _ => "string".to_string(),
        };
        let matcher = match kind.as_str() {
            "string" => Matcher::Exact(f.list.iter().cloned().collect()),
            "substring" => Matcher::Substring(
                AhoCorasick::new(f.list.iter().filter(|s| !s.is_empty())).map_err(|e| format!("{name_hint}: {e}"))?,
            ),
            "hostname" => Matcher::Hostname(
                f.list
                    .iter()
                    .map(|h| h.trim_matches('.').to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
            "cidr" => Matcher::Cidr(
                f.list
                    .iter()
                    .filter_map(|c| {
                        c.parse::<IpNet>()
                            .ok()
                            .or_else(|| c.parse::<IpAddr>().ok().map(IpNet::from))
                    })
                    .collect(),
            ),
            "regex" => {
                let mut res = Vec::new();
                for r in &f.list {
                    match php_regex(r) {
                        Some(re) => res.push(re),
                        None => self.dropped.push(format!(
                            "{name_hint}: list {:?}: regex {r:?} does not compile; dropped",
                            f.name
                        )),
                    }
                }
                Matcher::Regex(res)
            }
            other => return Err(format!("{name_hint}: unknown warninglist type {other:?}")),
        };
        self.lists.push(List {
            name: f.name,
            // An empty `matching_attributes` means every type, as in MISP (which stores that as the type `ALL`).
            types: f
                .matching_attributes
                .filter(|v| !v.is_empty() && !v.iter().any(|t| t == "ALL"))
                .map(|v| v.into_iter().collect()),
            matcher,
            spares_platforms: !PLATFORM_LISTS.contains(&id),
        });
        Ok(())
    }

    /// Loads every list under `dir`.
    pub fn load_dir(dir: &Path) -> (Warninglists, Vec<String>) {
        ListDir::read(dir).select(&Wanted::All)
    }

    /// Entries dropped because they could not be used, each naming its list and the entry.
    pub fn dropped(&self) -> &[String] {
        &self.dropped
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// The names of the lists applied, for reports.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(|l| l.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The name of the first list that matches the attribute, if any. Composite values are split once on `|` and
    /// either half counts, as in MISP.
    pub fn check(&self, misp_type: &str, raw_value: &str, value: &Value) -> Option<&str> {
        let mut candidates: Vec<String> = vec![raw_value.trim().to_string()];
        if let Some((a, b)) = raw_value.split_once('|') {
            candidates.push(a.trim().to_string());
            candidates.push(b.trim().to_string());
        }
        candidates.push(value.name());
        for l in &self.lists {
            if let Some(t) = &l.types {
                if !t.contains(misp_type) {
                    continue;
                }
            }
            let hit = match &l.matcher {
                Matcher::Exact(set) => candidates.iter().any(|c| set.contains(c)),
                Matcher::Substring(ac) => candidates.iter().any(|c| ac.is_match(c)),
                Matcher::Hostname(set) => {
                    let host = match value {
                        Value::Domain(d) | Value::Hostname(d) => d.to_string(),
                        Value::Url(u) => u.host.clone(),
                        Value::Email(e) => e.rsplit_once('@').map_or(String::new(), |(_, h)| h.to_string()),
                        _ => host_of(raw_value).to_ascii_lowercase(),
                    };
                    // On a shared platform, a subdomain or a link with a path is someone's content.
                    let content = matches!(value, Value::Url(u) if !u.rest.trim_matches('/').is_empty());
                    let spared = |s: &str| l.spares_platforms && (s != host || content) && self.platforms.contains(s);
                    let hit = suffixes(&host).any(|s| set.contains(s) && !spared(s));
                    hit
                }
                Matcher::Cidr(nets) => match value {
                    Value::Net(n) => nets.iter().any(|w| w.contains(n)),
                    Value::Range(r) => nets.iter().any(|w| w.contains(&r.0) && w.contains(&r.1)),
                    _ => false,
                },
                Matcher::Regex(res) => candidates.iter().any(|c| res.iter().any(|r| r.is_match(c))),
            };
            if hit {
                return Some(&l.name);
            }
        }
        None
    }
}

/// `a.b.c` → `a.b.c`, `b.c`, `c`.
fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(host.match_indices('.').map(move |(i, _)| &host[i + 1..]))
}

impl Vet for Warninglists {
    fn vet(&self, misp_type: &str, raw_value: &str, value: &Value) -> Option<String> {
        self.check(misp_type, raw_value, value)
            .map(|n| format!("warninglist: {n}"))
    }
}

/// The operator's allowlist: domains (and their subdomains), CIDRs and hashes that must never alert.
#[derive(Default, Debug)]
pub struct Allowlist {
    domains: HashSet<String>,
    nets: Vec<IpNet>,
    hashes: HashSet<String>,
}

impl Allowlist {
    /// Parses one entry a line; `#` starts a comment.
    pub fn parse(text: &str) -> Allowlist {
        let mut a = Allowlist::default();
        for line in text.lines() {
            let v = line.split('#').next().unwrap_or("").trim();
            if v.is_empty() {
                continue;
            }
            if let Ok(n) = v.parse::<IpNet>() {
                a.nets.push(n);
            } else if let Ok(ip) = v.parse::<IpAddr>() {
                a.nets.push(IpNet::from(ip));
            } else if v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                a.hashes.insert(v.to_ascii_lowercase());
            } else {
                a.domains.insert(v.trim_matches('.').to_ascii_lowercase());
            }
        }
        a
    }

    pub fn load(path: &Path) -> std::io::Result<Allowlist> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    pub fn allows(&self, value: &Value) -> bool {
        let host_ok = |h: &str| suffixes(h).any(|s| self.domains.contains(s));
        match value {
            Value::Domain(d) | Value::Hostname(d) => host_ok(d),
            Value::Url(u) => host_ok(&u.host),
            Value::Email(e) => e.rsplit_once('@').is_some_and(|(_, h)| host_ok(h)),
            Value::Net(n) => self.nets.iter().any(|w| w.contains(n) || n.contains(w)),
            Value::Range(r) => self.nets.iter().any(|w| w.contains(&r.0) || w.contains(&r.1)),
            Value::Hash(_, h) => self.hashes.contains(&**h),
        }
    }
}

impl Vet for Allowlist {
    fn vet(&self, _misp_type: &str, _raw: &str, value: &Value) -> Option<String> {
        self.allows(value).then(|| "allowlist".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::{normalize_attribute, AttributeOutcome};
    use crate::Policy;

    fn value(t: &str, v: &str) -> Value {
        match normalize_attribute(t, v, &Policy::default()) {
            AttributeOutcome::Parts(mut p) => p.remove(0).unwrap(),
            AttributeOutcome::Unsupported => panic!(),
        }
    }

    fn fixtures() -> Warninglists {
        let (wl, errors) = Warninglists::load_dir(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/misp/warninglists"
        )));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(wl.len(), 8);
        wl
    }

    fn drops(wl: &Warninglists, t: &str, v: &str) -> Option<String> {
        wl.check(t, v, &value(t, v)).map(str::to_string)
    }

    #[test]
    fn the_default_selection_keeps_c2_on_shared_platforms() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/misp/warninglists"));
        let (wl, problems) = ListDir::read(dir).select(&Wanted::Default);
        assert!(
            problems.is_empty(),
            "the default names no list the directory must have: {problems:?}"
        );
        let mut names: Vec<&str> = wl.names().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "List of RFC 1918 CIDR blocks",
                "List of known Amazon AWS IP address ranges",
                "List of known hashes for empty files",
                "Top 10K most-used sites from Tranco"
            ],
            "platform lists and automated-malware-analysis are not in the default"
        );
        for c2 in ["x.duckdns.org", "x.ngrok.io", "x.workers.dev", "a.b.github.io"] {
            assert_eq!(drops(&wl, "domain", c2), None, "{c2}");
        }
        assert_eq!(
            drops(&wl, "url", "https://bit.ly/3xYzAbc"),
            None,
            "a link on a shortener"
        );
        // The look-alikes: the platforms themselves and ordinary top sites are still top sites.
        for site in ["duckdns.org", "ngrok.io", "www.google.com", "mail.google.com"] {
            assert_eq!(
                drops(&wl, "domain", site).as_deref(),
                Some("Top 10K most-used sites from Tranco"),
                "{site}"
            );
        }
        assert!(
            drops(&wl, "url", "https://bit.ly/").is_some(),
            "the shortener's front page"
        );
        assert!(drops(&wl, "ip-dst", "10.9.8.7").is_some());
        // Every list, as the example config once had it: the platform lists drop the same C2.
        let (all, _) = ListDir::read(dir).select(&Wanted::All);
        assert_eq!(
            drops(&all, "domain", "x.ngrok.io").as_deref(),
            Some("List of LOTS (Living Off Trusted Sites) Project Domains")
        );
        assert!(drops(&all, "url", "https://bit.ly/3xYzAbc").is_some());
    }

    #[test]
    fn lists_are_chosen_by_directory_name_or_list_name_and_unknown_names_are_reported() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/misp/warninglists"));
        let wanted = Wanted::Named(vec![
            "RFC1918".into(),
            "List of known hashes for empty files".into(),
            "no-such-list".into(),
        ]);
        let (wl, problems) = ListDir::read(dir).select(&wanted);
        assert_eq!(wl.len(), 2);
        assert!(drops(&wl, "ip-dst", "192.168.1.1").is_some());
        assert_eq!(drops(&wl, "domain", "www.google.com"), None, "tranco10k not chosen");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("no-such-list"));
    }

    #[test]
    fn each_list_type_drops_its_matches_and_names_the_list() {
        let wl = fixtures();
        let cases = [
            ("ip-dst", "10.1.2.3", Some("List of RFC 1918 CIDR blocks")),
            ("ip-dst", "8.8.8.8", None),
            ("domain", "www.google.com", Some("Top 10K most-used sites from Tranco")),
            ("domain", "google.com.evil.ru", None),
            (
                "md5",
                "d41d8cd98f00b204e9800998ecf8427e",
                Some("List of known hashes for empty files"),
            ),
            ("md5", "d41d8cd98f00b204e9800998ecf84270", None),
        ];
        for (t, v, want) in cases {
            let got = wl.check(t, v, &value(t, v)).map(|n| n.to_string());
            match want {
                Some(w) => assert!(got.as_deref().is_some_and(|g| g.starts_with(w)), "{v}: {got:?}"),
                None => assert_eq!(got, None, "{v}"),
            }
        }
    }

    #[test]
    fn substring_and_regex_lists_follow_misp_semantics() {
        let mut wl = Warninglists::default();
        wl.add_json(
            "s",
            br#"{"name":"sandboxes","type":"substring","list":["sandbox.example"],"version":1,"description":""}"#,
        )
        .unwrap();
        wl.add_json(
            "r",
            br#"{"name":"contacts","type":"regex","list":["/^(security|abuse)\\@.*\\..*$/i"],"version":1,"description":"","matching_attributes":["email-src"]}"#,
        )
        .unwrap();
        assert_eq!(
            wl.check(
                "url",
                "http://x.sandbox.example/a",
                &value("url", "http://x.sandbox.example/a")
            ),
            Some("sandboxes")
        );
        assert_eq!(
            wl.check("email-src", "ABUSE@corp.com", &value("email-src", "ABUSE@corp.com")),
            Some("contacts")
        );
        assert_eq!(
            wl.check("email-dst", "abuse@corp.com", &value("email-dst", "abuse@corp.com")),
            None,
            "type not listed"
        );
    }

    #[test]
    fn empty_matching_attributes_means_every_type_and_bad_regexes_are_named() {
        let mut wl = Warninglists::default();
        wl.add_json(
            "any.json",
            br#"{"name":"any type","type":"string","list":["evil.example"],"matching_attributes":[]}"#,
        )
        .unwrap();
        assert_eq!(
            wl.check("domain", "evil.example", &value("domain", "evil.example")),
            Some("any type")
        );
        wl.add_json(
            "re.json",
            br#"{"name":"broken","type":"regex","list":["/(unclosed/","/^ok$/"],"matching_attributes":["domain"]}"#,
        )
        .unwrap();
        assert_eq!(wl.dropped().len(), 1);
        assert!(wl.dropped()[0].contains("broken") && wl.dropped()[0].contains("(unclosed"));
    }

    #[test]
    fn allowlist_covers_subdomains_networks_and_hashes() {
        let a = Allowlist::parse("# ours\ncorp.example\n192.0.2.0/24\nd41d8cd98f00b204e9800998ecf8427e\n");
        assert!(a.allows(&value("domain", "mail.corp.example")));
        assert!(!a.allows(&value("domain", "notcorp.example")));
        assert!(a.allows(&value("ip-dst", "192.0.2.9")));
        assert!(a.allows(&value("url", "http://corp.example/x")));
        assert!(a.allows(&value("md5", "D41D8CD98F00B204E9800998ECF8427E")));
        assert!(!a.allows(&value("ip-dst", "198.51.100.1")));
    }
}
