//! Sources of log lines at the edge: files (plain or gzip) and stdin, read in large line-aligned chunks, or a
//! regular file mapped and split into the same chunks in place.

mod chunks;
mod mapped;
mod readahead;

pub use chunks::{open_input, Chunk, ChunkReader};
pub use mapped::{spans, MappedFile, Span};
pub use readahead::{Batch, ReadAhead};
