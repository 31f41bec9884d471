//! Compact lists of indicator ids: one `u32` per slot, spilling to a side pool only when a key has several.
//!
//! Almost every key maps to one indicator, so a slot holds the id itself; this keeps per-indicator memory small.

const SPILL: u32 = 1 << 31;

/// Side storage for slots holding more than one id.
#[derive(Debug, Default, Clone)]
pub struct IdPool {
    lists: Vec<Vec<u32>>,
}

/// A slot with no id.
pub const NONE: u32 = u32::MAX;

impl IdPool {
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

    /// Calls `f` for each id in the slot.
    #[inline]
    pub fn for_each(&self, slot: u32, mut f: impl FnMut(u32)) {
        if slot == NONE {
        } else if slot & SPILL == 0 {
            f(slot)
        } else {
            for &id in &self.lists[(slot & !SPILL) as usize] {
                f(id)
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.iter().map(|l| l.capacity() * 4 + 24).sum()
    }
}
