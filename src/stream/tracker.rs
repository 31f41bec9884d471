//! Commit-after-ack: which offsets may be committed.
//!
//! Every consumed message is registered; it is done when every hit produced for it was acknowledged by the broker
//! (a message without hits is done once scored). The committable offset of a partition is the lowest offset still
//! pending, or one past the highest seen when nothing is pending, so a commit never covers a hit in flight.
//! Pure and synchronous; the service shares it behind a mutex.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct PartState {
    pending: BTreeSet<i64>,
    max_seen: Option<i64>,
    committed: Option<i64>,
}

/// A topic-partition.
pub type Tp = (String, i32);

/// Keyed by topic, then partition, so the per-message calls look a topic up by `&str` without allocating.
#[derive(Debug, Default)]
pub struct CommitTracker {
    parts: HashMap<String, HashMap<i32, PartState>>,
}

impl CommitTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was consumed and is now in flight.
    pub fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.parts.contains_key(topic) {
            self.parts.insert(topic.to_string(), HashMap::new());
        }
        let p = self
            .parts
            .get_mut(topic)
            .expect("inserted")
            .entry(partition)
            .or_default();
        p.pending.insert(offset);
        p.max_seen = Some(p.max_seen.map_or(offset, |m| m.max(offset)));
    }

    /// Every hit of the message was acknowledged (or it had none).
    pub fn done(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.part_mut(topic, partition) {
            p.pending.remove(&offset);
        }
    }

    /// Offsets to commit now (the next offset to read, per partition), only those that advanced.
    pub fn committable(&mut self) -> Vec<(Tp, i64)> {
        let mut out = Vec::new();
        for (topic, parts) in &mut self.parts {
            for (&partition, p) in parts {
                let next = match (p.pending.iter().next(), p.max_seen) {
                    (Some(&lowest), _) => lowest,
                    (None, Some(m)) => m + 1,
                    (None, None) => continue,
                };
                if p.committed.is_none_or(|c| next > c) {
                    p.committed = Some(next);
                    out.push(((topic.clone(), partition), next));
                }
            }
        }
        out.sort();
        out
    }

    /// A commit of these offsets failed: offer them again at the next `committable`, even if nothing advanced.
    pub fn commit_failed(&mut self, offsets: &[(Tp, i64)]) {
        for ((topic, partition), next) in offsets {
            if let Some(p) = self.part_mut(topic, *partition) {
                if p.committed == Some(*next) {
                    p.committed = None;
                }
            }
        }
    }

    /// Messages in flight in all partitions.
    pub fn in_flight(&self) -> usize {
        self.parts
            .values()
            .flat_map(HashMap::values)
            .map(|p| p.pending.len())
            .sum()
    }

    /// Messages in flight in one partition.
    pub fn in_flight_for(&self, topic: &str, partition: i32) -> usize {
        self.parts
            .get(topic)
            .and_then(|ps| ps.get(&partition))
            .map_or(0, |p| p.pending.len())
    }

    /// Forgets a partition that was revoked (after its last commit).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(ps) = self.parts.get_mut(topic) {
            ps.remove(&partition);
        }
    }

    fn part_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartState> {
        self.parts.get_mut(topic)?.get_mut(&partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_below_the_lowest_pending_offset() {
        let mut t = CommitTracker::new();
        for o in 10..15 {
            t.received("logs", 0, o);
        }
        t.done("logs", 0, 10);
        t.done("logs", 0, 12);
        assert_eq!(t.committable(), [(("logs".to_string(), 0), 11)]);
        t.done("logs", 0, 11);
        assert_eq!(t.committable(), [(("logs".to_string(), 0), 13)]);
        assert!(t.committable().is_empty(), "nothing new");
        t.done("logs", 0, 13);
        t.done("logs", 0, 14);
        assert_eq!(t.committable(), [(("logs".to_string(), 0), 15)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let mut t = CommitTracker::new();
        t.received("logs", 0, 3);
        t.done("logs", 0, 3);
        let offsets = t.committable();
        assert_eq!(offsets, [(("logs".to_string(), 0), 4)]);
        assert!(t.committable().is_empty());
        t.commit_failed(&offsets);
        assert_eq!(t.committable(), offsets, "retried although nothing advanced");
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = CommitTracker::new();
        t.received("logs", 0, 5);
        t.received("logs", 1, 7);
        t.done("logs", 1, 7);
        assert_eq!(
            t.committable(),
            [(("logs".to_string(), 0), 5), (("logs".to_string(), 1), 8)]
        );
        assert_eq!(t.in_flight_for("logs", 0), 1);
    }
}
