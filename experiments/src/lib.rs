//! Shared machinery of the experiment binaries (`maze`, `memory_length`):
//!
//! - [`preset`]: experiment presets (`configs/*.toml`): one shared training config and the
//!   policies ("arms") compared under it.
//! - [`runner`]: trains many (arm, seed) runs, several at once, each in its own worker
//!   process, with deterministic run directories so that re-running resumes unfinished runs
//!   and skips finished ones.
//! - [`evaluate`]: plays a run's final checkpoint on held-out seeds (cached per checkpoint).
//! - [`report`]: CSV files, machine description, and the generated block of a results README.
//! - [`shard`]: splitting a grid over the tasks of a Slurm job array or Kubernetes Indexed Job.

pub mod evaluate;
pub mod preset;
pub mod report;
pub mod runner;
pub mod shard;
