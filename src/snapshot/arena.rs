//! The snapshot's string arena while it is built: values, keys and provenance text, addressed by 32-bit offsets.

use super::layout::{StrRef, NONE};

/// Appends strings; a key is stored with a 16-bit length prefix so a table slot needs only its offset.
#[derive(Debug, Default)]
pub struct Arena {
    pub bytes: Vec<u8>,
}

/// Longest key a table holds (its length prefix is 16 bits); longer values are kept as indicators but not keyed.
pub const MAX_KEY: usize = u16::MAX as usize;

impl Arena {
    /// Stores `s` and returns where.
    pub fn push(&mut self, s: &[u8]) -> StrRef {
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s);
        StrRef {
            off,
            len: s.len() as u32,
        }
    }

    /// Stores an optional string (`None` is `off == NONE`).
    pub fn push_opt(&mut self, s: Option<&str>) -> StrRef {
        match s {
            Some(s) => self.push(s.as_bytes()),
            None => StrRef { off: NONE, len: 0 },
        }
    }

    /// Stores a key length-prefixed and returns the prefix's offset. `key.len()` must be at most [`MAX_KEY`].
    pub fn push_key(&mut self, key: &[u8]) -> u32 {
        debug_assert!(key.len() <= MAX_KEY);
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(key);
        off
    }

    /// The key stored at `off` by [`Self::push_key`].
    pub fn key(&self, off: u32) -> &[u8] {
        let off = off as usize;
        let len = u16::from_le_bytes([self.bytes[off], self.bytes[off + 1]]) as usize;
        &self.bytes[off + 2..off + 2 + len]
    }
}
