//! Scanning: bytes → lines → tokens → hits. The hot loop lives here; it allocates nothing per line or token.

mod line;
mod lines;

pub use line::{scan_line, Hit};
pub use lines::{scan_buffer, Discard, LineScanner, ScanStats, Sink};
