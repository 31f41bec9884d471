//! The allocator's side of the memory goals: the binary runs on mimalloc (see `main.rs`), and the phases that free
//! most of what they allocated (loading, building) hand it back to the OS before the next phase grows, so the peak
//! is the larger phase, not the sum.

/// Returns every page mimalloc holds unused to the OS. Cheap next to a load or a build; a no-op in programs whose
/// global allocator is not mimalloc (its own heap is then empty).
pub fn release_freed() {
    // SAFETY: mi_collect only frees memory mimalloc holds unused; it is safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
