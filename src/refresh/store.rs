//! The attribute store behind incremental sync: attributes keyed by MISP uuid, upserted by each pull.
//!
//! Pure. A full pull replaces the store (that is how hard deletes are caught); an incremental pull upserts by uuid
//! and removes attributes that were soft-deleted or lost `to_ids`.

use crate::load::RawAttribute;
use std::collections::HashMap;

/// What one pull changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreDelta {
    pub upserted: usize,
    pub removed: usize,
}

impl std::ops::AddAssign for StoreDelta {
    fn add_assign(&mut self, o: StoreDelta) {
        self.upserted += o.upserted;
        self.removed += o.removed;
    }
}

impl StoreDelta {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.upserted + self.removed > 0
    }
}

#[derive(Debug, Default, Clone)]
pub struct AttributeStore {
    by_key: HashMap<String, RawAttribute>,
    max_timestamp: i64,
    /// Timestamps of removals seen through push, so a late, older edit cannot bring an attribute back.
    removed_at: HashMap<String, i64>,
    /// Each key changed since the journal was last taken, with what it held before (`None`: absent). `None` after
    /// a full replace: the next build must be a full one.
    journal: Option<HashMap<String, Option<RawAttribute>>>,
}

/// The store key: the attribute uuid, or type and value for sources without uuids.
fn key(a: &RawAttribute) -> String {
    match &a.uuid {
        Some(u) => u.to_ascii_lowercase(),
        None => format!("{}\u{0}{}", a.misp_type, a.value),
    }
}

impl AttributeStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces everything with a full pull. `keep_all` keeps attributes without `to_ids` too.
    pub fn replace(&mut self, attrs: Vec<RawAttribute>, keep_all: bool) -> StoreDelta {
        let before = self.by_key.len();
        self.by_key.clear();
        self.removed_at.clear();
        self.max_timestamp = 0;
        self.journal = None;
        let mut d = self.apply(attrs, keep_all);
        d.removed = before.saturating_sub(self.by_key.len().min(before));
        d
    }

    /// How many attributes [`AttributeStore::replace`] with `attrs` would keep: for the shrink guard.
    pub fn kept_by(attrs: &[RawAttribute], keep_all: bool) -> usize {
        attrs
            .iter()
            .filter(|a| !a.deleted && (a.to_ids || keep_all))
            .map(key)
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Applies an incremental pull: upsert by uuid; a deleted attribute, or one whose `to_ids` became false, goes.
    pub fn apply(&mut self, attrs: Vec<RawAttribute>, keep_all: bool) -> StoreDelta {
        let mut d = StoreDelta::default();
        for a in attrs {
            self.max_timestamp = self.max_timestamp.max(a.timestamp.unwrap_or(0));
            d += self.apply_one(a, keep_all);
        }
        d
    }

    /// One row, without touching the cursor: upserted, or removed when deleted or without `to_ids`.
    fn apply_one(&mut self, a: RawAttribute, keep_all: bool) -> StoreDelta {
        let k = key(&a);
        let mut d = StoreDelta::default();
        if a.deleted || (!a.to_ids && !keep_all) {
            if let Some(old) = self.by_key.remove(&k) {
                self.record(&k, Some(old));
                d.removed = 1;
            }
        } else if self.by_key.get(&k) != Some(&a) {
            let old = self.by_key.insert(k.clone(), a);
            self.record(&k, old);
            d.upserted = 1;
        }
        d
    }

    fn record(&mut self, k: &str, old: Option<RawAttribute>) {
        if let Some(j) = &mut self.journal {
            j.entry(k.to_string()).or_insert(old);
        }
    }

    /// The keys changed since the last call, each with the attribute it held then (`None`: it was absent), or
    /// `None` when a full replace happened in between (or this is the first call). Starts a new journal.
    pub fn take_journal(&mut self) -> Option<HashMap<String, Option<RawAttribute>>> {
        self.journal.replace(HashMap::new())
    }

    /// The attribute held under a journal key.
    pub fn get(&self, k: &str) -> Option<&RawAttribute> {
        self.by_key.get(k)
    }

    /// Applies an event-level pull (whole events, the scope applied locally): a row out of scope (`in_scope`
    /// false), deleted, or without `to_ids` goes; the rest are upserted. The REST cursor stays: these rows come
    /// from other filters than the attribute timestamp, and a row newer than the cursor must not move it past
    /// rows the timestamp pull has not answered yet.
    pub fn apply_scoped(
        &mut self,
        attrs: Vec<RawAttribute>,
        keep_all: bool,
        in_scope: impl Fn(&RawAttribute) -> bool,
    ) -> StoreDelta {
        let mut d = StoreDelta::default();
        for mut a in attrs {
            if !in_scope(&a) {
                a.deleted = true;
            }
            d += self.apply_one(a, keep_all);
        }
        d
    }

    /// Removes every attribute of an event, by its id or uuid: MISP deletes an event's attributes without an
    /// attribute notification.
    pub fn remove_event(&mut self, id: Option<&str>, uuid: Option<&str>) -> StoreDelta {
        let before = self.by_key.len();
        let uuid = uuid.map(str::to_ascii_lowercase);
        let gone: Vec<String> = self
            .by_key
            .iter()
            .filter(|(_, a)| {
                let by_id = id.is_some() && a.event.id.as_deref() == id;
                let by_uuid = uuid.is_some() && a.event.uuid.as_deref().map(str::to_ascii_lowercase) == uuid;
                by_id || by_uuid
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            let old = self.by_key.remove(&k);
            self.record(&k, old);
        }
        StoreDelta {
            upserted: 0,
            removed: before - self.by_key.len(),
        }
    }

    /// Applies MISP push notifications. They arrive unordered across partitions, so an update older than what the
    /// store holds for that uuid is ignored (order by attribute timestamp, not arrival).
    /// The REST cursor is left where REST answers put it: a pushed attribute newer than rows MISP has not yet
    /// answered must not move the next incremental pull past them.
    pub fn apply_push(&mut self, mut attrs: Vec<RawAttribute>, keep_all: bool) -> StoreDelta {
        attrs.sort_by_key(|a| a.timestamp.unwrap_or(0));
        let mut d = StoreDelta::default();
        for a in attrs {
            let k = key(&a);
            let ts = a.timestamp.unwrap_or(0);
            let held = self.by_key.get(&k).and_then(|h| h.timestamp).unwrap_or(i64::MIN);
            let removed = self.removed_at.get(&k).copied().unwrap_or(i64::MIN);
            if ts < held || ts <= removed {
                continue;
            }
            if a.deleted || (!a.to_ids && !keep_all) {
                self.removed_at.insert(k, ts);
            }
            d += self.apply_one(a, keep_all);
        }
        d
    }

    /// The newest attribute timestamp seen: the cursor for the next incremental pull.
    pub fn cursor(&self) -> i64 {
        self.max_timestamp
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn attributes(&self) -> impl Iterator<Item = &RawAttribute> {
        self.by_key.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn attr(uuid: &str, value: &str, ts: i64, to_ids: bool, deleted: bool) -> RawAttribute {
        RawAttribute {
            misp_type: "domain".into(),
            value: value.into(),
            to_ids,
            deleted,
            uuid: Some(uuid.into()),
            timestamp: Some(ts),
            ..Default::default()
        }
    }

    #[test]
    fn incremental_upserts_by_uuid_and_removes_deletes_and_to_ids_flips() {
        let mut s = AttributeStore::new();
        s.replace(
            vec![attr("a", "a.com", 10, true, false), attr("b", "b.com", 11, true, false)],
            false,
        );
        assert_eq!(s.cursor(), 11);
        let d = s.apply(
            vec![
                attr("a", "a2.com", 12, true, false),
                attr("b", "b.com", 13, false, false),
                attr("c", "c.com", 14, true, true),
            ],
            false,
        );
        assert_eq!(
            d,
            StoreDelta {
                upserted: 1,
                removed: 1
            }
        );
        let values: Vec<&str> = s.attributes().map(|a| a.value.as_str()).collect();
        assert_eq!(values, ["a2.com"]);
        assert_eq!(s.cursor(), 14);
    }

    #[test]
    fn push_orders_by_timestamp_not_arrival() {
        let mut s = AttributeStore::new();
        s.replace(vec![attr("a", "a.com", 10, true, false)], false);
        s.apply_push(
            vec![attr("a", "a.com", 30, true, true), attr("a", "a.com", 20, true, false)],
            false,
        );
        assert!(s.is_empty(), "the older edit does not undo the newer delete");
        s.apply_push(vec![attr("a", "a.com", 25, true, false)], false);
        assert!(s.is_empty(), "nor does a late one");
        s.apply_push(vec![attr("a", "a2.com", 40, true, false)], false);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_full_pull_catches_hard_deletes() {
        let mut s = AttributeStore::new();
        s.replace(
            vec![attr("a", "a.com", 1, true, false), attr("b", "b.com", 1, true, false)],
            false,
        );
        s.replace(vec![attr("a", "a.com", 1, true, false)], false);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn event_level_pulls_remove_rows_out_of_scope_and_keep_the_cursor() {
        let mut s = AttributeStore::new();
        s.apply(
            vec![
                attr("u1", "a.example", 100, true, false),
                attr("u2", "b.example", 100, true, false),
            ],
            false,
        );
        let mut red = attr("u1", "a.example", 100, true, false);
        red.tags = vec!["tlp:red".into()];
        let d = s.apply_scoped(vec![red, attr("u3", "c.example", 900, true, false)], false, |a| {
            !a.tags.iter().any(|t| t == "tlp:red")
        });
        assert_eq!(
            d,
            StoreDelta {
                upserted: 1,
                removed: 1
            }
        );
        assert_eq!(s.cursor(), 100);
        let mut e = attr("u4", "d.example", 100, true, false);
        Arc::make_mut(&mut e.event).id = Some("9".into());
        s.apply(vec![e], false);
        assert_eq!(s.remove_event(Some("9"), None).removed, 1);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_push_never_moves_the_rest_cursor() {
        let mut s = AttributeStore::new();
        s.apply(vec![attr("u1", "a.example", 100, true, false)], false);
        s.apply_push(vec![attr("u2", "b.example", 300, true, false)], false);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.cursor(),
            100,
            "rows between 100 and 300 are still fetched by the next pull"
        );
    }
}
