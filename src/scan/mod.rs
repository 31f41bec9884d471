//! Scanning: bytes → lines → tokens → hits. The hot loop lives here; it allocates nothing per line or token.

pub mod classify;
pub mod field;
mod line;
mod lines;

pub use field::{FieldFilter, FieldHit};
pub use line::{scan_line, scan_line_with, scan_line_within, Hit, Scratch};
pub use lines::{scan_buffer, Discard, LineScanner, ScanStats, Sink};
