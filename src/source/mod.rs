//! Sources of log lines at the edge: files (plain or gzip) and stdin, read in large line-aligned chunks.

mod chunks;

pub use chunks::{open_input, Chunk, ChunkReader};
