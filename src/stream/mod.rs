//! `iocmatch run`: the Kafka pipeline component.
//!
//! ```text
//! consumer (group) ──► per-partition worker (score on the current snapshot) ──► producer (hits topic)
//!        ▲                                                                        │ delivery reports
//!        └──────────── commit tracker: commit only what every hit was acked for ◄─┘
//! ```
//! Partitions are spread by Kafka across the instances of a group; within an instance a partition always goes to
//! the same worker, so its order is kept. Queues are bounded, so a slow producer pauses consumption.

mod error;
pub mod hit;
pub mod http;
pub mod metrics;
pub mod push;
mod rebalance;
pub mod retro;
pub mod service;
pub mod settings;
pub mod tracker;
mod worker;

pub use error::ServiceError;
pub use service::{run, Inputs, RetroInput};
pub use settings::{KafkaSettings, MetricsSettings, RetroSettings, Settings};
