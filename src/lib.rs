//! iocmatch: match log lines against MISP indicators of compromise.
//!
//! The data flows left to right, one folder per stage:
//!
//! ```text
//! load/ (MISP JSON, CSV, feed dir, plain list) ──► indicator/ (normalise, validate, dedupe)
//!        ──► snapshot/ (immutable matcher) ──► scan/ (bytes → lines → tokens → hits)
//!        ──► sink/ (ECS JSON, raw lines, counts)
//! source/ reads files and stdin into line-aligned chunks for scan/.
//! ```
//!
//! Everything except `source/` and the `load::read_*` helpers is pure: it takes bytes and returns values,
//! so it is unit-tested and benchmarked without touching the file system.

pub mod config;
pub mod export;
pub mod indicator;
pub mod load;
pub mod refresh;
pub mod scan;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod stream;
pub mod workload;

pub use indicator::{Indicator, IndicatorSet, Kind, Policy, Provenance, Value};
pub use snapshot::Snapshot;
