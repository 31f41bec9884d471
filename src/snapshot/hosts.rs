//! Everything keyed by a host token: domains (suffix rule), hostnames (exact), URLs and e-mails (by their host).
//!
//! One table, so a host token costs one probe per label suffix whatever mix of kinds is loaded.

use super::ids::NONE;
use super::keys::KeyTable;

/// What a host key is an indicator for.
#[derive(Debug, Clone)]
pub struct HostEntry {
    /// A MISP `domain`: matches this host and every subdomain.
    pub domain: u32,
    /// A MISP `hostname`: matches only this exact host.
    pub hostname: u32,
    /// Index into the URL/e-mail side table, or `NONE`.
    pub extra: u32,
}

/// The URLs of one host: the rest after the host (port, path, query), compared exactly, and the indicator id.
pub type UrlRests = Vec<(Box<[u8]>, u32)>;

/// URLs and e-mail addresses whose host is this key.
#[derive(Debug, Default, Clone)]
pub struct HostExtra {
    /// The rest of the URL after the host (port, path, query), compared exactly.
    pub urls: UrlRests,
    /// The lower-cased local part of the address.
    pub emails: Vec<(Box<[u8]>, u32)>,
}

#[derive(Debug, Default, Clone)]
pub struct HostTable {
    pub(super) keys: KeyTable<HostEntry>,
    pub(super) extras: Vec<HostExtra>,
}

fn empty() -> HostEntry {
    HostEntry {
        domain: NONE,
        hostname: NONE,
        extra: NONE,
    }
}

impl HostTable {
    pub fn with_capacity(n: usize) -> Self {
        HostTable {
            keys: KeyTable::with_capacity(n),
            extras: Vec::new(),
        }
    }

    pub fn add_domain(&mut self, host: &str, id: u32) {
        self.keys.entry_or_insert_with(host.as_bytes(), empty).domain = id;
    }

    pub fn add_hostname(&mut self, host: &str, id: u32) {
        self.keys.entry_or_insert_with(host.as_bytes(), empty).hostname = id;
    }

    fn extra(&mut self, host: &str) -> &mut HostExtra {
        let e = self.keys.entry_or_insert_with(host.as_bytes(), empty);
        if e.extra == NONE {
            e.extra = self.extras.len() as u32;
            self.extras.push(HostExtra::default());
        }
        let i = e.extra as usize;
        &mut self.extras[i]
    }

    pub fn add_url(&mut self, host: &str, rest: &str, id: u32) {
        self.extra(host).urls.push((rest.as_bytes().into(), id));
    }

    pub fn add_email(&mut self, local: &str, host: &str, id: u32) {
        self.extra(host).emails.push((local.as_bytes().into(), id));
    }

    #[inline(always)]
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&HostEntry> {
        self.keys.get(hash, key)
    }

    #[inline]
    pub fn extra_of(&self, e: &HostEntry) -> Option<&HostExtra> {
        (e.extra != NONE).then(|| &self.extras[e.extra as usize])
    }

    pub fn seal(&mut self) {
        self.keys.seal();
        self.extras.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes()
            + self
                .extras
                .iter()
                .map(|x| 48 + x.urls.iter().chain(&x.emails).map(|(k, _)| k.len() + 24).sum::<usize>())
                .sum::<usize>()
    }
}
