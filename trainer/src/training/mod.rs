//! NOT training: config, batches, losses, checkpoints and the loop.

pub mod average;
pub mod checkpoint;
pub mod config;
pub mod log;
pub mod losses;
pub mod replicas;
pub mod restarts;
pub mod run;
pub mod sampler;
pub mod selection;
pub mod steps;
pub mod style_groups;
pub mod warm_start;
