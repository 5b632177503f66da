//! The fast tier of the crash-safety suite (run by `cargo test`): one test
//! binary with a module per harness. The long tier is `scripts/soak.sh`.

mod corpus;
mod damage;
mod fast;
mod faults;
mod kevo;
mod kill9;
mod repair;
