//! The refresher: keeps the serving snapshot current and safe.
//!
//! Sources (MISP REST, feeds, local files) feed an attribute set; each rebuild validates it (core rules,
//! warninglists, allowlist), builds a snapshot off the scoring path, swaps it in atomically, and writes the
//! last-good cache. A failing source never replaces the serving snapshot: MISP keeps its last store, a feed keeps
//! its last contribution, and a rebuild that fails leaves the old snapshot serving.

pub mod cache;
pub mod error;
pub mod feed;
pub mod misp;
pub mod push;
pub mod sightings;
pub mod store;
pub mod warninglist;
pub mod zmq;

pub use crate::snapshot::ChangeReport;
use crate::snapshot::SnapshotCell;
pub use error::RefreshError;

use crate::config::Config;
use crate::config::WarninglistSelection;
use crate::load::{LoadStats, Loader};
use crate::{Policy, Snapshot};
use feed::FeedSource;
use misp::{ApiKey, MispClient, Pull, RoleReport};
use push::Notice;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::AttributeStore;
use warninglist::{ListDir, Wanted};

/// How far back event-level pulls reach before the last pull's server time: a change MISP committed while that
/// pull ran (a long transaction) carries an earlier `Event.timestamp` than the answer's `Date`.
const EVENT_OVERLAP_SECS: i64 = 60;

/// Where the attributes a rebuild added are sent, for retro-hunting.
pub type RetroFeed = tokio::sync::mpsc::UnboundedSender<(Vec<crate::load::RawAttribute>, i64)>;

/// Counters the refresher keeps for metrics.
#[derive(Debug, Default)]
pub struct RefreshMetrics {
    /// Failed pulls per source name (`misp`, feed names, `files`).
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub refreshes: AtomicU64,
    /// The last build's load statistics (rejections per reason, warninglist drops).
    pub last_load: Mutex<LoadStats>,
}

impl RefreshMetrics {
    /// Counts a failure of `source`.
    pub fn error(&self, source: &str) {
        *self
            .errors
            .lock()
            .expect("metrics lock")
            .entry(source.to_string())
            .or_default() += 1;
    }
}

/// Where the first snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedFrom {
    Live,
    Cache,
    /// No MISP configured: local files and feeds only.
    LocalOnly,
}

pub struct Refresher {
    cfg: Config,
    policy: Policy,
    misp: Option<MispClient>,
    store: AttributeStore,
    feeds: Vec<FeedSource>,
    warninglists: Option<Arc<warninglist::Warninglists>>,
    /// What was wrong with the warninglists at the last selection (unusable entries, names not found), for `check`.
    warninglist_problems: Vec<String>,
    allowlist: Option<Arc<warninglist::Allowlist>>,
    cell: Arc<SnapshotCell>,
    version: u64,
    last_full: Option<Instant>,
    /// When MISP is next due for an incremental pull.
    misp_next_due: Instant,
    /// Modification times of the local indicator files at the last build, to rebuild only on change.
    files_seen: Vec<Option<std::time::SystemTime>>,
    /// Attributes read from the cache while MISP was unreachable at start; replaced by the first good pull.
    cached: Option<Vec<crate::load::RawAttribute>>,
    /// A full pull refused by the shrink guard, by how many attributes it would have kept; the next full pull that
    /// shrinks as much confirms it.
    shrink_pending: Option<usize>,
    /// The MISP server's clock at the last pull that answered: where the next event-level pulls start.
    event_cursor: Option<i64>,
    /// Where the attributes each rebuild added go (for retro-hunting), with the (type, value) keys of the last
    /// build to tell them; `None` until [`Refresher::retro_feed`] is called.
    retro: Option<(RetroFeed, Option<std::collections::HashSet<u64>>)>,
    /// Something besides the MISP store changed (files, feeds, warninglists): the next build is a full one.
    base_dirty: bool,
    /// Store keys changed since the serving base was compiled, each with the attribute it held then: what the
    /// overlay is built from.
    touched: std::collections::HashMap<String, Option<crate::load::RawAttribute>>,
    pub metrics: Arc<RefreshMetrics>,
}

/// The compiled snapshot a service keeps in its `state_dir`.
pub const SNAPSHOT_FILE: &str = "snapshot.iocm";

/// The compiled snapshot inside a state directory.
pub fn snapshot_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join(SNAPSHOT_FILE)
}

/// The base is recompiled once the attributes changed since it was compiled pass this share of it (or
/// [`OVERLAY_MIN`], whichever is larger). Each incremental refresh validates all of them again (about 2 µs each)
/// and every probe also checks the overlay, so past a tenth of the base a full build is the cheaper steady state.
pub const OVERLAY_MAX_SHARE: f64 = 0.10;
/// Below this many changed attributes an overlay is always used.
pub const OVERLAY_MIN: usize = 10_000;

impl Refresher {
    /// Sets up sources and validation from the config. No network traffic yet.
    pub fn new(cfg: Config) -> Result<Refresher, RefreshError> {
        let misp = match &cfg.misp {
            Some(m) => Some(MispClient::new(m, ApiKey::load(m)?)?),
            None => None,
        };
        let timeout = Duration::from_secs(cfg.misp.as_ref().map_or(60, |m| m.timeout_secs));
        let feeds = cfg
            .feeds
            .iter()
            .map(|f| FeedSource::new(f.clone(), timeout))
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.validation.warninglists == WarninglistSelection::Misp && cfg.misp.is_none() {
            return Err(RefreshError::Config(
                "validation.warninglists = \"misp\" needs a [misp] section".into(),
            ));
        }
        let allowlist = match &cfg.validation.allowlist {
            Some(p) => Some(Arc::new(warninglist::Allowlist::load(p).map_err(|e| {
                RefreshError::Io {
                    path: p.display().to_string(),
                    message: e.to_string(),
                }
            })?)),
            None => None,
        };
        let policy = Policy {
            include_all: cfg.validation.include_all,
            min_v4_prefix: cfg.validation.min_v4_prefix,
            min_v6_prefix: cfg.validation.min_v6_prefix,
        };
        let mut r = Refresher {
            cfg,
            policy,
            misp,
            store: AttributeStore::new(),
            feeds,
            warninglists: None,
            warninglist_problems: Vec::new(),
            allowlist,
            cell: Arc::new(SnapshotCell::new(Snapshot::empty())),
            version: 0,
            last_full: None,
            misp_next_due: Instant::now(),
            files_seen: Vec::new(),
            cached: None,
            shrink_pending: None,
            event_cursor: None,
            retro: None,
            base_dirty: true,
            touched: std::collections::HashMap::new(),
            metrics: Arc::new(RefreshMetrics::default()),
        };
        let wanted = match &r.cfg.validation.warninglists {
            WarninglistSelection::All => Wanted::All,
            WarninglistSelection::Names(n) => Wanted::Named(n.clone()),
            // "misp": the safe default until the server says which lists it has enabled.
            WarninglistSelection::Default | WarninglistSelection::Misp => Wanted::Default,
        };
        let dir = r.cfg.validation.warninglists_dir.as_deref().map(ListDir::read);
        r.select_warninglists(dir, &wanted, Vec::new());
        Ok(r)
    }

    /// Builds the warninglists to apply from `warninglists_dir`, plus lists fetched from MISP (`extra`, as
    /// (name, list file)) that the directory does not have.
    fn select_warninglists(&mut self, dir: Option<ListDir>, wanted: &Wanted, extra: Vec<(String, Vec<u8>)>) {
        if dir.is_none() && extra.is_empty() {
            return;
        }
        let (mut wl, mut problems) = match dir {
            Some(d) => d.select(wanted),
            None => (warninglist::Warninglists::default(), Vec::new()),
        };
        for (name, bytes) in extra {
            if let Err(e) = wl.add_json(&format!("MISP warninglist {name}"), &bytes) {
                problems.push(e);
            }
        }
        for p in &problems {
            tracing::warn!("warninglist problem: {p}");
        }
        tracing::info!(
            lists = wl.len(),
            names = %wl.names().collect::<Vec<_>>().join(", "),
            "warninglists selected"
        );
        self.warninglist_problems = problems;
        self.warninglists = Some(Arc::new(wl));
    }

    /// With `validation.warninglists = "misp"`: applies the lists the MISP server has enabled, taking each from
    /// `warninglists_dir` when it has the list, else from MISP. On failure the current selection stays.
    async fn follow_misp_warninglists(&mut self) {
        let Some(m) = &self.misp else { return };
        let enabled = match m.enabled_warninglists().await {
            Ok(e) => e,
            Err(e) => {
                self.metrics.error("misp_warninglists");
                tracing::error!("cannot read MISP's enabled warninglists, keeping the current selection: {e}");
                return;
            }
        };
        let dir = self.cfg.validation.warninglists_dir.as_deref().map(ListDir::read);
        let local: std::collections::HashSet<String> = dir
            .iter()
            .flat_map(|d| d.names())
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let mut extra = Vec::new();
        let mut names = Vec::new();
        for (id, name) in &enabled {
            if local.contains(&name.to_ascii_lowercase()) {
                names.push(name.clone());
                continue;
            }
            match m.warninglist(id).await {
                Ok(b) => extra.push((name.clone(), b)),
                Err(e) => {
                    self.metrics.error("misp_warninglists");
                    tracing::error!(list = %name, "cannot fetch an enabled MISP warninglist: {e}");
                }
            }
        }
        self.select_warninglists(dir, &Wanted::Named(names), extra);
    }

    /// The serving snapshot, shared with scorers.
    pub fn cell(&self) -> Arc<SnapshotCell> {
        self.cell.clone()
    }

    /// Checks the key's role and warns, naming each flag, when it can do more than iocmatch needs or lacks what it
    /// will need. This is advice and never stops a pull: a proxy in front of MISP, an older MISP, a feed server or a
    /// role that may not read its own user all answer `/users/view/me` without a role, and the pull may still work.
    /// Only restSearch's own answer (401/403) is an error. `None` when there is no MISP or the role could not be read.
    pub async fn check_key(&self) -> Option<RoleReport> {
        let m = self.misp.as_ref()?;
        let r = match m.whoami().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("could not check the MISP key's role ({e}); pulling anyway");
                return None;
            }
        };
        for flag in &r.excess {
            tracing::warn!(role = %r.role, flag = %flag, "the MISP key can do more than iocmatch needs ({flag}); use a read-only role");
        }
        for flag in &r.lacking {
            let what = if flag == "perm_sighting" {
                "sightings will fail"
            } else {
                "the pull will likely be refused"
            };
            tracing::warn!(role = %r.role, flag = %flag, "the MISP key's role lacks {flag}: {what}");
        }
        Some(r)
    }

    /// The first load: a full MISP pull, or the last-good cache when MISP is unreachable.
    pub async fn start(&mut self) -> Result<(StartedFrom, ChangeReport), RefreshError> {
        if self.misp.is_none() {
            let r = self.refresh(true).await?;
            return Ok((StartedFrom::LocalOnly, r));
        }
        match self.refresh(true).await {
            Ok(r) => Ok((StartedFrom::Live, r)),
            Err(live) => {
                let mut l = Loader::new(Policy {
                    include_all: true,
                    ..Policy::default()
                })
                .keep_accepted();
                match cache::read_into(&self.cfg.state_dir, &mut l) {
                    Ok(true) => {
                        tracing::warn!(
                            cache = %cache::path(&self.cfg.state_dir).display(),
                            "MISP is unreachable ({live}); serving the last-good cache until a pull succeeds"
                        );
                        self.cached = Some(l.take_accepted());
                        let r = self.rebuild()?;
                        Ok((StartedFrom::Cache, r))
                    }
                    Ok(false) => Err(live),
                    Err(e) => {
                        tracing::error!("ignoring the corrupt last-good cache: {e}");
                        Err(live)
                    }
                }
            }
        }
    }

    /// Pulls what is due and swaps in a new snapshot if anything changed. `full` forces a full MISP pull.
    pub async fn refresh(&mut self, full: bool) -> Result<ChangeReport, RefreshError> {
        self.metrics.refreshes.fetch_add(1, Ordering::Relaxed);
        let mut first_error = None;
        let mut dirty = full || self.version == 0;
        let misp_due = full || Instant::now() >= self.misp_next_due;
        let full_due = self.last_full.is_none_or(|t| {
            t.elapsed() >= Duration::from_secs(self.cfg.misp.as_ref().map_or(86_400, |m| m.full_sync_secs))
        });
        if misp_due && (full || full_due) && self.cfg.validation.warninglists == WarninglistSelection::Misp {
            self.follow_misp_warninglists().await;
            dirty = true;
            self.base_dirty = true;
        }
        if self.misp.is_some() && misp_due {
            self.misp_next_due =
                Instant::now() + Duration::from_secs(self.cfg.misp.as_ref().map_or(300, |m| m.interval_secs));
            let is_full = full || full_due || self.store.is_empty() && self.cached.is_some();
            match self.pull_misp(is_full).await {
                Ok(changed) => dirty |= changed,
                Err(e) => {
                    self.metrics.error(if matches!(e, RefreshError::Shrink { .. }) {
                        "misp_shrink"
                    } else {
                        "misp"
                    });
                    tracing::error!("MISP pull failed, the serving snapshot stays: {e}");
                    first_error = Some(e);
                }
            }
        }
        let now = Instant::now();
        for f in &mut self.feeds {
            if !f.due(now) && !full {
                continue;
            }
            match f.pull().await {
                Ok(changed) => {
                    dirty |= changed;
                    self.base_dirty |= changed;
                }
                Err(e) => {
                    self.metrics.error(&f.cfg.name);
                    tracing::error!(feed = %f.cfg.name, "feed pull failed, keeping its last good contribution: {e}");
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let files = self.file_times();
        if files != self.files_seen {
            dirty = true;
            self.base_dirty = true;
        }
        if !dirty {
            return Ok(self.unchanged());
        }
        self.files_seen = files;
        self.rebuild()
    }

    /// One MISP pull into the store; returns whether the store changed. A full pull replaces the store (behind the
    /// shrink guard). An incremental one reads the attributes changed since the cursor, then the events changed
    /// (`event_timestamp`) and, with `published = true`, the events published since the last pull
    /// (`publish_timestamp`), scoped locally; nothing is applied unless every pass answered.
    async fn pull_misp(&mut self, is_full: bool) -> Result<bool, RefreshError> {
        let Some(m) = &self.misp else { return Ok(false) };
        let keep_all = self.policy.include_all;
        let local_now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        };
        let had_cache = self.cached.is_some();
        if is_full {
            let pulled = m.pull(&Pull::Full).await?;
            let max_shrink = self.cfg.misp.as_ref().map_or(1.0, |m| m.max_shrink).clamp(0.0, 1.0);
            let kept = AttributeStore::kept_by(&pulled.attributes, keep_all);
            if shrink_refused(&mut self.shrink_pending, self.store.len(), kept, max_shrink) {
                return Err(RefreshError::Shrink {
                    url: m.url("/attributes/restSearch"),
                    before: self.store.len(),
                    after: kept,
                    max_pct: (max_shrink * 100.0).round() as u32,
                });
            }
            self.last_full = Some(Instant::now());
            self.event_cursor = Some(pulled.server_time.unwrap_or_else(local_now));
            let delta = self.store.replace(pulled.attributes, keep_all);
            self.cached = None;
            tracing::info!(
                full = true,
                upserted = delta.upserted,
                removed = delta.removed,
                stored = self.store.len(),
                "MISP pull applied"
            );
            return Ok(had_cache || delta.changed());
        }
        let changed = m
            .pull(&Pull::Changed {
                since: self.store.cursor(),
            })
            .await?;
        let server_time = changed.server_time.unwrap_or_else(local_now);
        let mut event_level = Vec::new();
        if let Some(since) = self.event_cursor.map(|t| t - EVENT_OVERLAP_SECS) {
            event_level.push(m.pull(&Pull::EventsChanged { since }).await?);
            if m.published_filter() == Some(true) {
                event_level.push(m.pull(&Pull::Published { since }).await?);
            }
        }
        let mut delta = self.store.apply(changed.attributes, keep_all);
        for p in event_level {
            let d = self.store.apply_scoped(p.attributes, keep_all, |a| m.in_scope(a));
            delta += d;
        }
        self.event_cursor = Some(server_time);
        self.cached = None;
        tracing::info!(
            full = false,
            upserted = delta.upserted,
            removed = delta.removed,
            stored = self.store.len(),
            "MISP pull applied"
        );
        Ok(had_cache || delta.changed())
    }

    /// The report of a refresh that changed nothing: the serving snapshot stays.
    fn unchanged(&self) -> ChangeReport {
        let snap = self.cell.load();
        tracing::debug!(version = snap.version(), "nothing changed; the snapshot stays");
        ChangeReport {
            version: snap.version(),
            total: snap.len(),
            ..Default::default()
        }
    }

    fn file_times(&self) -> Vec<Option<std::time::SystemTime>> {
        self.cfg
            .iocs
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// A loader with this refresher's policy and vetters (warninglists, allowlist), keeping what it accepts.
    fn loader(&self) -> Loader {
        let mut l = Loader::new(self.policy.clone()).keep_accepted();
        if let Some(w) = &self.warninglists {
            l = l.with_vetter(w.clone());
        }
        if let Some(a) = &self.allowlist {
            l = l.with_vetter(a.clone());
        }
        l
    }

    /// Swaps in what the sources now say. When only MISP attributes changed since the base was compiled (and
    /// not too many: [`OVERLAY_MAX_SHARE`]), only those are validated and laid over the base; otherwise every
    /// source is validated and a new base compiled (and kept in `state_dir`).
    pub fn rebuild(&mut self) -> Result<ChangeReport, RefreshError> {
        let journal = self.store.take_journal();
        let base_dirty = std::mem::take(&mut self.base_dirty);
        if let (false, Some(j), true) = (base_dirty, journal, self.version > 0) {
            for (k, old) in j {
                self.touched.entry(k).or_insert(old);
            }
            if let Some(r) = self.incremental() {
                return Ok(r);
            }
        }
        self.full_rebuild()
    }

    /// The overlay build: `None` when it cannot stand in for a full build (too many changes, or a value that
    /// several sources share, whose merged provenance only a full build gets right).
    fn incremental(&mut self) -> Option<ChangeReport> {
        let started = Instant::now();
        let base = self.cell.load().base().clone();
        let limit = (base.len() as f64 * OVERLAY_MAX_SHARE) as usize;
        if self.touched.len() > limit.max(OVERLAY_MIN) {
            tracing::info!(
                touched = self.touched.len(),
                "overlay threshold passed: recompiling the base"
            );
            return None;
        }
        let mut old = self.loader();
        for a in self.touched.values().flatten() {
            old.add_attribute(a.clone());
        }
        let (old_set, _) = old.finish();
        let mut masked = std::collections::HashSet::new();
        for ind in old_set.iter() {
            if let Some(id) = base.find(&ind.value) {
                if base.merged(id) > 0 {
                    return None;
                }
                masked.insert(id);
            }
        }
        let mut l = self.loader();
        for k in self.touched.keys() {
            if let Some(a) = self.store.get(k) {
                l.add_attribute(a.clone());
            }
        }
        let accepted = l.take_accepted();
        let (added, _) = l.finish();
        for ind in added.iter() {
            if base.find(&ind.value).is_some_and(|id| !masked.contains(&id)) {
                return None;
            }
        }
        self.queue_retro(&accepted, false);
        self.version += 1;
        let masked: Vec<u32> = masked.into_iter().collect();
        let snap = Snapshot::with_overlay(base, added, &masked, self.version);
        let report = self.cell.swap(snap);
        tracing::info!(
            touched = self.touched.len(),
            masked = masked.len(),
            ms = started.elapsed().as_millis() as u64,
            "overlay swapped in over the compiled base"
        );
        self.write_exports();
        self.write_cache(
            self.store
                .attributes()
                .chain(self.feeds.iter().flat_map(|f| f.attributes())),
        );
        Some(report)
    }

    /// Sends the attributes a build added to the retro-hunt (keys of type and value; `replace` makes `accepted`
    /// the whole known set, else it is added to it).
    fn queue_retro(&mut self, accepted: &[crate::load::RawAttribute], replace: bool) {
        let Some((tx, seen)) = &mut self.retro else { return };
        // 8 bytes per attribute, not its strings: a 64-bit key collision could only skip one hunt.
        let key = |a: &crate::load::RawAttribute| {
            crate::snapshot::keys::stable_hash(format!("{}\u{0}{}", a.misp_type, a.value).as_bytes())
        };
        let hashes: Vec<u64> = accepted.iter().map(key).collect();
        if let Some(before) = seen.as_ref() {
            let added: Vec<_> = accepted
                .iter()
                .zip(&hashes)
                .filter(|(_, h)| !before.contains(h))
                .map(|(a, _)| a.clone())
                .collect();
            if !added.is_empty() {
                tracing::info!(added = added.len(), "attributes added: queued for a retro-hunt");
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let _ = tx.send((added, now_ms));
            }
        }
        match seen {
            Some(s) if !replace => s.extend(hashes),
            _ => *seen = Some(hashes.into_iter().collect()),
        }
    }

    fn write_cache<'a>(&self, attrs: impl IntoIterator<Item = &'a crate::load::RawAttribute>) {
        match cache::write(&self.cfg.state_dir, self.version, attrs) {
            Ok(p) => tracing::debug!(cache = %p.display(), "last-good cache written"),
            Err(e) => {
                self.metrics.error("cache");
                tracing::error!(state_dir = %self.cfg.state_dir.display(), "cannot write the last-good cache: {e}");
            }
        }
    }

    /// Maps the compiled snapshot a previous run left in `state_dir`, so the service serves at once; a corrupt
    /// one is reported, set aside (`.corrupt`) and rebuilt from the sources. Returns the version served.
    pub fn open_state(&mut self) -> Option<u64> {
        let p = snapshot_path(&self.cfg.state_dir);
        if !p.exists() {
            return None;
        }
        let started = Instant::now();
        match Snapshot::open(&p) {
            Ok(snap) => {
                let v = snap.version();
                let n = snap.len();
                self.version = self.version.max(v);
                self.cell.swap(snap);
                tracing::info!(
                    version = v,
                    indicators = n,
                    ms = started.elapsed().as_millis() as u64,
                    path = %p.display(),
                    "compiled snapshot mapped from state_dir: serving it while the sources are read"
                );
                Some(v)
            }
            Err(e) => {
                self.metrics.error("snapshot");
                let aside = p.with_extension("iocm.corrupt");
                let _ = std::fs::rename(&p, &aside);
                tracing::error!(aside = %aside.display(), "unusable snapshot in state_dir, set aside and rebuilt: {e}");
                None
            }
        }
    }

    /// Validates every source's attributes, compiles a new base, swaps it in and writes the cache and the
    /// compiled snapshot.
    fn full_rebuild(&mut self) -> Result<ChangeReport, RefreshError> {
        self.touched.clear();
        let mut l = self.loader();
        for p in &self.cfg.iocs {
            if let Err(e) = l.load_path(p) {
                self.metrics.error("files");
                tracing::error!("local indicators skipped: {e}");
            }
        }
        for a in self.store.attributes() {
            l.add_attribute(a.clone());
        }
        if let Some(c) = &self.cached {
            for a in c {
                l.add_attribute(a.clone());
            }
        }
        for f in &self.feeds {
            for a in f.attributes() {
                l.add_attribute(a.clone());
            }
        }
        let accepted = l.take_accepted();
        self.queue_retro(&accepted, true);
        let (set, mut stats) = l.finish();
        if let Some(w) = &self.warninglists {
            stats.warninglists = w.names().map(str::to_string).collect();
        }
        stats.warnings.extend(self.warninglist_problems.iter().cloned());
        for (list, n) in &stats.filtered {
            tracing::info!(list = %list, dropped = n, "indicators dropped by a warninglist or the allowlist");
        }
        let rejected = stats.total_rejected();
        if rejected > 0 {
            tracing::warn!(rejected, "indicators rejected at validation (see `iocmatch check`)");
        }
        *self.metrics.last_load.lock().expect("metrics lock") = stats;
        self.version += 1;
        let snap = Snapshot::build(set, self.version);
        let report = self.cell.swap(snap);
        self.write_exports();
        self.write_cache(&accepted);
        let p = snapshot_path(&self.cfg.state_dir);
        if let Err(e) = self.cell.load().base().write(&p) {
            self.metrics.error("snapshot");
            tracing::error!(path = %p.display(), "cannot write the compiled snapshot: {e}");
        }
        Ok(report)
    }

    /// Rewrites the configured `[[export]]` files from the serving snapshot (unchanged files are left alone).
    fn write_exports(&self) {
        if self.cfg.export.is_empty() {
            return;
        }
        let snap = self.cell.load();
        let meta = crate::export::ExportMeta {
            version: snap.version(),
            generated_at: std::time::SystemTime::now(),
            misp_url: self.cfg.misp.as_ref().map(|m| m.url.clone()),
        };
        for e in &self.cfg.export {
            let _span = tracing::info_span!("export", format = %e.format, path = %e.path.display()).entered();
            let result = e.format.parse::<crate::export::Format>().and_then(|f| {
                let filter = crate::export::TypeFilter::parse(&e.types)?;
                crate::export::write(&e.path, &crate::export::render(&snap, f, &filter, &meta))
            });
            match result {
                Ok(w) => tracing::info!(changed = w.iter().filter(|w| w.changed).count(), "export written"),
                Err(err) => {
                    self.metrics.error("export");
                    tracing::error!("export failed: {err}");
                }
            }
        }
    }

    /// Applies MISP push notifications, then rebuilds if the set changed. MISP sends them as site admin, without
    /// event tags and without a sharing or `published` check, so they pass the scope first: a delete always
    /// applies (it can only narrow the set); an add or edit outside `types`, with an attribute tag in `not_tags`,
    /// or of an unpublished event when `published = true`, is not added (and removed if held); and when the scope
    /// depends on what the notification does not carry (event tags, the event's organisation) the attribute is
    /// not taken as the truth: its event is pulled from REST (`eventid`) and scoped like an event-level pull. An
    /// event `delete` removes the event's attributes; other event notifications pull the event again.
    pub async fn apply_push(&mut self, notices: Vec<Notice>) -> Result<ChangeReport, RefreshError> {
        let keep_all = self.policy.include_all;
        let mut direct = Vec::new();
        let mut pull_events = std::collections::BTreeSet::new();
        let mut delta = store::StoreDelta::default();
        for n in notices {
            match n {
                Notice::Attribute { mut attr, published } => {
                    let Some(m) = &self.misp else {
                        direct.push(attr);
                        continue;
                    };
                    if attr.deleted {
                        direct.push(attr);
                    } else if !m.in_scope(&attr) {
                        attr.deleted = true;
                        direct.push(attr);
                    } else if m.published_filter() == Some(true) && published == Some(false) {
                        tracing::debug!(uuid = ?attr.uuid, "pushed attribute of an unpublished event: waits for the publish");
                    } else if m.scope_needs_event() {
                        match attr.event.id.clone() {
                            Some(id) => {
                                pull_events.insert(id);
                            }
                            None => {
                                tracing::warn!(uuid = ?attr.uuid, at = %attr.location, "pushed attribute without an event id: left to the next pull")
                            }
                        }
                    } else {
                        direct.push(attr);
                    }
                }
                Notice::Event {
                    id,
                    uuid,
                    deleted: true,
                } => {
                    let d = self.store.remove_event(id.as_deref(), uuid.as_deref());
                    tracing::info!(event = ?id, uuid = ?uuid, removed = d.removed, "MISP event deleted");
                    delta += d;
                }
                Notice::Event { id: Some(id), .. } if self.misp.is_some() => {
                    pull_events.insert(id);
                }
                Notice::Event { .. } => {}
            }
        }
        let d = self.store.apply_push(direct, keep_all);
        delta += d;
        if let (Some(m), false) = (&self.misp, pull_events.is_empty()) {
            let ids: Vec<String> = pull_events.into_iter().collect();
            match m.pull(&Pull::Events(ids.clone())).await {
                Ok(p) => {
                    let d = self.store.apply_scoped(p.attributes, keep_all, |a| m.in_scope(a));
                    delta += d;
                }
                Err(e) => {
                    self.metrics.error("misp");
                    tracing::error!(events = ?ids, "pulling the pushed events failed; the next pull catches them: {e}");
                }
            }
        }
        tracing::info!(upserted = delta.upserted, removed = delta.removed, "MISP push applied");
        if !delta.changed() {
            return Ok(self.unchanged());
        }
        self.rebuild()
    }

    /// Refreshes on the configured interval until `shutdown` fires, applying push notifications from `push`
    /// as they come (batched for half a second).
    pub async fn run(
        mut self,
        shutdown: crate::shutdown::Shutdown,
        mut push: Option<tokio::sync::mpsc::Receiver<Notice>>,
    ) {
        let every = Duration::from_secs(
            self.cfg
                .misp
                .as_ref()
                .map(|m| m.interval_secs)
                .into_iter()
                .chain(self.cfg.feeds.iter().map(|f| f.interval_secs))
                .chain(std::iter::once(self.cfg.refresh.files_interval_secs))
                .min()
                .unwrap_or(300)
                .max(1),
        );
        let mut next = tokio::time::Instant::now() + every;
        loop {
            let pushed = tokio::select! {
                _ = tokio::time::sleep_until(next) => None,
                _ = shutdown.wait() => return,
                Some(a) = async { match push.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => Some(a),
            };
            if shutdown.is_triggered() {
                return;
            }
            match pushed {
                Some(first) => {
                    let mut batch = vec![first];
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Some(rx) = push.as_mut() {
                        while let Ok(a) = rx.try_recv() {
                            batch.push(a);
                        }
                    }
                    if let Err(e) = self.apply_push(batch).await {
                        tracing::error!("applying MISP push failed: {e}");
                    }
                }
                None => {
                    next = tokio::time::Instant::now() + every;
                    if let Err(e) = self.refresh(false).await {
                        tracing::error!("refresh failed: {e}");
                    }
                }
            }
        }
    }

    /// Sends, after every rebuild but the first, the attributes it added (new values, or `to_ids` turned on): the
    /// retro-hunt scans recent logs for them. Call it before [`Refresher::start`], whose build is the baseline.
    pub fn retro_feed(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<(Vec<crate::load::RawAttribute>, i64)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.retro = Some((tx, None));
        rx
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn store_len(&self) -> usize {
        self.store.len()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

/// The shrink guard: whether a full pull that keeps `after` of `before` stored attributes, fewer than `max_shrink`
/// allows, must wait for the next full pull to confirm it. The first such pull is refused and remembered in
/// `pending`; the next one that shrinks as much applies; a pull within bounds clears it.
fn shrink_refused(pending: &mut Option<usize>, before: usize, after: usize, max_shrink: f64) -> bool {
    let floor = (before as f64 * (1.0 - max_shrink)).ceil() as usize;
    if before == 0 || after >= floor {
        *pending = None;
        return false;
    }
    if pending.take().is_some() {
        tracing::warn!(before, after, "a second full pull confirms the shrink; applying it");
        return false;
    }
    *pending = Some(after);
    true
}
