//! The `ironwal` binary, run as a user would run it: one test binary with a
//! module per group of subcommands.

mod basics;
mod common;
mod hostile;
mod live;
mod load;
mod lost;
mod repair;
mod toolkit;
