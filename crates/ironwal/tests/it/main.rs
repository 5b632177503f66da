//! ironwal's integration tests, one binary with a module per concern.

mod common;
mod compat;
