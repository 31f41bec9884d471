//! Sinks: how hits leave iocmatch. The formatting here is pure (values and bytes); writing them is the caller's job.

pub mod ecs;

/// What `scan` prints for each line with a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One ECS JSON document per line with a hit.
    Json,
    /// The matching raw lines, as grep prints them.
    Lines,
    /// Only the number of matching lines, at the end.
    Count,
}
