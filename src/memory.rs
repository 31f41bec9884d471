//! The allocator's side of the memory goals: the binary runs on mimalloc (see `main.rs`), and the phases that free
//! most of what they allocated (loading, building) hand it back to the OS before the next phase grows, so the peak
//! is the larger phase, not the sum.

/// Returns every page mimalloc holds unused to the OS. Cheap next to a load or a build; a no-op in programs whose
/// global allocator is not mimalloc (its own heap is then empty).
///
/// mimalloc gives a page back only from the thread that allocated it: a block freed by another thread waits in
/// its owner's queue until the owner next collects. The loader allocates indicators on the rayon workers and the
/// build frees them on the calling thread, so every worker collects too, or those pages would stay resident
/// while the workers sit idle.
pub fn release_freed() {
    // SAFETY: mi_collect only frees memory mimalloc holds unused; it is safe to call from any thread at any time.
    let collect = || unsafe { libmimalloc_sys::mi_collect(true) };
    rayon::broadcast(|_| collect());
    collect();
}
