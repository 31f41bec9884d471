//! Sources of log lines at the edge: files (plain or gzip) and stdin, read in large line-aligned chunks.

mod chunks;
mod readahead;

pub use chunks::{open_input, Chunk, ChunkReader};
pub use readahead::{Batch, ReadAhead};
