//! Compact lists of indicator ids: a 32-bit value is the id itself, or (with [`SPILL`] set) the offset of a
//! `count, id, id, ...` run in the pool section. Almost every key maps to one indicator, so the pool stays tiny.

pub use super::layout::{NONE, SPILL};

/// Id lists while a snapshot is built: a slot holds one id, spilling to a side list when it gets a second.
#[derive(Debug, Default, Clone)]
pub struct IdLists {
    lists: Vec<Vec<u32>>,
}

impl IdLists {
    /// Adds `id` to the slot.
    pub fn push(&mut self, slot: &mut u32, id: u32) {
        debug_assert!(id < SPILL);
        if *slot == NONE {
            *slot = id;
        } else if *slot & SPILL == 0 {
            self.lists.push(vec![*slot, id]);
            *slot = SPILL | (self.lists.len() as u32 - 1);
        } else {
            self.lists[(*slot & !SPILL) as usize].push(id);
        }
    }

    /// The slot's value in the file: unchanged for one id, else a pool offset with the list written to `pool`.
    pub fn flatten(&self, slot: u32, pool: &mut Vec<u32>) -> u32 {
        if slot == NONE || slot & SPILL == 0 {
            return slot;
        }
        let list = &self.lists[(slot & !SPILL) as usize];
        let off = pool.len() as u32;
        pool.push(list.len() as u32);
        pool.extend_from_slice(list);
        SPILL | off
    }
}

/// Calls `f` for each id of a value read from the file. Pool offsets were checked at open.
#[inline]
pub fn for_each(pool: &[u32], val: u32, mut f: impl FnMut(u32)) {
    if val == NONE {
    } else if val & SPILL == 0 {
        f(val)
    } else {
        let off = (val & !SPILL) as usize;
        let n = pool[off] as usize;
        for &id in &pool[off + 1..off + 1 + n] {
            f(id)
        }
    }
}
