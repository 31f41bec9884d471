//! iocmatch: match log lines against MISP indicators of compromise.
//!
//! The data flows left to right, one folder per stage:
//!
//! ```text
//! load/ (MISP JSON, CSV, feed dir, plain list) ──► indicator/ (normalise, validate, dedupe)
//!        ──► snapshot/ (immutable matcher) ──► scan/ (bytes → lines → tokens → hits)
//!        ──► sink/ (ECS JSON, raw lines, counts)
//! source/  reads files and stdin into line-aligned chunks for scan/ (I/O edge)
//! refresh/ pulls MISP and feeds, validates, swaps snapshots, keeps the last-good cache (I/O edge)
//! stream/  the Kafka service: consume, score, produce hits, commit after acknowledgement (I/O edge)
//! export/  renders a snapshot for Zeek, Suricata, nftables, ipset, RPZ, CSV, JSON lines
//! bench/   beside the flow: deterministic workloads and scan measurements for sizing
//! ```
//!
//! ```
//! use iocmatch::load::Loader;
//! use iocmatch::scan::scan_line;
//! use iocmatch::{Policy, Snapshot};
//!
//! let mut loader = Loader::new(Policy::default());
//! loader
//!     .load_bytes("iocs.json", br#"[{"type": "domain", "value": "evil.com", "to_ids": true}]"#)
//!     .unwrap();
//! let (set, _stats) = loader.finish();
//! let snapshot = Snapshot::build(set, 1);
//!
//! let mut hits = Vec::new();
//! scan_line(&snapshot, b"GET http://cdn.EVIL.com/x 200", &mut hits);
//! assert_eq!(snapshot.indicator(hits[0].indicator).value.name(), "evil.com");
//! scan_line(&snapshot, b"GET http://notevil.com/x 200", &mut hits);
//! assert!(hits.is_empty());
//! ```
//!
//! Everything except the I/O edges (and `Loader::load_path`) is pure: it takes bytes and returns values, so it is
//! unit-tested and benchmarked without touching the file system or the network.

pub mod atomic_write;
pub mod bench;
pub mod config;
pub mod export;
pub mod indicator;
pub mod load;
pub mod memory;
pub mod refresh;
pub mod scan;
pub mod shutdown;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod stream;

pub use indicator::{Indicator, IndicatorSet, Kind, Policy, Provenance, Value};
pub use snapshot::Snapshot;
