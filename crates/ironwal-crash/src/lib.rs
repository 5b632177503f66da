//! Crash-safety harnesses for ironwal.
//!
//! * [`sim`]: a file system that can lose power, with fault injection.
//! * [`damage`]: every truncation, bit flip and zeroed sector of a log,
//!   read back under every recovery mode.
//! * [`power_loss`]: random workloads on the simulated file system, crashed
//!   at random moments, reopened and checked.
//! * [`kill9`]: a child process appending to a real log, killed with
//!   SIGKILL at random moments; the parent reopens and checks.
//! * [`fuzz_targets`]: the bodies of the cargo-fuzz targets in `fuzz/`.
//! * [`check`]: the checks every harness applies to a recovered log.
//! * [`kevo`]: a model of kevo's own WAL replay and append rules, to judge
//!   what kevo makes of a log directory.
//!
//! Every run is seeded and prints its seed when it fails.

pub mod check;
pub mod damage;
pub mod fuzz_targets;
pub mod kevo;
pub mod kill9;
pub mod power_loss;
pub mod rng;
pub mod sim;
pub mod summary;
pub mod workload;
