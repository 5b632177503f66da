//! ironwal's integration tests, one binary with a module per concern.

mod common;
mod compat;
mod corruption;
mod durability;
mod engine;
mod follow;
mod fragments;
mod garbage;
mod live;
mod lost_segments;
mod prealloc;
mod proptests;
mod reading;
mod salvage;
mod torn_tail;
mod wal_behaviour;
