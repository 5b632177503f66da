//! Crash-safety harnesses for ironwal.
//!
//! * [`sim`]: a file system that can lose power, with fault injection.
//! * [`power_loss`]: random workloads on the simulated file system, crashed
//!   at random moments, reopened and checked.
//!
//! Every run is seeded and prints its seed when it fails.

pub mod power_loss;
pub mod rng;
pub mod sim;
pub mod summary;
pub mod workload;
