//! ironwal as the durable log of [openraft](https://docs.rs/openraft/0.9)
//! (0.9, `storage-v2`): [`LogStore`] implements `RaftLogStorage` and
//! `RaftLogReader` on an [`ironwal::Wal`], so a service that outgrows one
//! machine replicates with a real Raft engine instead of its own protocol.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use ironwal_raft::kv::{KvRequest, KvTypeConfig};
//! use ironwal_raft::{LogStore, StoreOptions};
//! use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
//! use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};
//!
//! let entry = |index| Entry::<KvTypeConfig> {
//!     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
//!     payload: EntryPayload::Normal(KvRequest::Set { key: format!("k{index}"), value: "v".into() }),
//! };
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let mut store = LogStore::<KvTypeConfig>::open(dir.path(), StoreOptions::default())?;
//!     // One atomic, fsynced write batch; returns once durable.
//!     store.blocking_append((1..=3).map(entry)).await?;
//!     store.truncate(LogId::new(CommittedLeaderId::new(1, 0), 3)).await?;
//!     store.close()?;
//!     drop(store);
//!
//!     // Reopening replays the log: index 3 stays truncated.
//!     let mut store = LogStore::<KvTypeConfig>::open(dir.path(), StoreOptions::default())?;
//!     assert_eq!(store.recovered().entries, 2);
//!     let entries = store.try_get_log_entries(1..).await?;
//!     assert_eq!(entries.len(), 2);
//!     assert_eq!(store.get_log_state().await?.last_log_id.map(|id| id.index), Some(2));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(()) }
//! ```
//!
//! # How the Raft log is stored
//!
//! Each Raft entry is one ironwal Put whose key is a record kind and the
//! entry's log id (index big-endian, then its leader) and whose value is
//! the entry, encoded with postcard. An `append` of N entries is one ironwal
//! write batch: after a crash it is there whole or not at all. The vote, the
//! committed log id, truncations and purges are records of the same log, in
//! the order they happened, so replaying the log in one pass rebuilds the
//! store:
//!
//! | record | key | value | meaning on replay |
//! |---|---|---|---|
//! | entry | `b'e'` + index (u64 BE) + postcard(leader id) | postcard(entry) | the entry at `index` |
//! | truncate | `b't'` + index (u64 BE) | empty | entries at `index` and above are gone |
//! | purge | `b'p'` | postcard(log id) | entries up to the log id are gone; it is the last purged id |
//! | vote | `b'v'` | postcard(vote) | the vote |
//! | committed | `b'c'` | postcard(`Option<log id>`) | the committed log id |
//!
//! Values are encoded with [postcard](https://docs.rs/postcard/1): a
//! compact serde format (varints, no field names) with a documented wire
//! format that is stable across its 1.x releases.
//!
//! # Durability
//!
//! openraft's callback for an `append` fires only once its batch is
//! durable: under [`ironwal::SyncPolicy::Always`] the appending thread
//! leads the fsync itself ([`StoreOptions::sync_on_append`]); otherwise a
//! task awaits [`ironwal::Wal::durable`], served by ironwal's background
//! syncer, and the callbacks fire in the order of the appends. `save_vote`,
//! `truncate` and a `purge` that deletes segments wait for durability
//! before they return; `save_committed` and a purge that deletes nothing
//! ride on the next fsync, as openraft allows.
//!
//! **Reads after a restart.** Because `save_committed` does not wait, the
//! committed id recovered after a crash may lag what the node had applied.
//! A state machine kept in memory restarts from that id, and openraft
//! restores a leader whose committed vote survived as leader at once,
//! answering `ensure_linearizable` from the old commit: a read there could
//! see a state older than a write the node acknowledged before the crash.
//! Before serving reads after a restart, wait until the state machine has
//! applied the last entry the log held at start,
//! [`Recovered::last_log_id`] (the `raft-kv` example does; its chaos test
//! found the stale read without it). A state machine that persists what it
//! applies does not need to.
//!
//! # Memory
//!
//! Opening keeps, per entry present, its ironwal sequence number (8 bytes)
//! and, per change of leader, one log id: not the entries. Recent entries
//! are cached up to [`StoreOptions::cache_bytes`]; older ones are read back
//! from the log with [`ironwal::Wal::replay`], which skips the segments that
//! end before them.
//!
//! # Many groups in one log
//!
//! [`MultiLog`] keeps the logs of many Raft groups (a sharded service's
//! regions) in one [`ironwal::Wal`]: each group's records are the records
//! above behind a group prefix, `b'g'` + group id (u64 BE), plus
//!
//! | record | key (after the prefix) | value | meaning on replay |
//! |---|---|---|---|
//! | moved | `b'm'` + index (u64 BE) + postcard(leader id) | postcard(entry) | the present entry at `index` is now here |
//! | removed | `b'x'` | empty | the group is gone |
//!
//! [`MultiLog::group`] hands out a [`LogStore`] per group; all groups share
//! the log's group commit. Retention spans the groups and rewrites the live
//! entries of mostly dead old segments forward
//! ([`MultiLogOptions::rewrite_live_ratio`]).
//!
//! # Retention
//!
//! `purge` removes the write-ahead log's segments whose records are all
//! older than the first entry kept ([`ironwal::Wal::remove_segments_before`]).
//! Before it does, it rewrites the vote and committed log id together with
//! the purge record in one durable batch, so the latest metadata is always
//! in a segment that stays.
//!
//! The [`kv`] module holds a small in-memory key-value state machine used by
//! the `raft-kv` example (a 3-node cluster over TCP) and the tests.

#![forbid(unsafe_code)]
// Nothing read from disk may panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod kv;

mod error;
mod index;
mod multi;
mod record;
mod state;
mod store;

pub use error::{Error, Result};
pub use multi::{Compaction, MultiLog, MultiLogOptions, MultiRecovered};
pub use state::Recovered;
pub use store::{LogStore, LogStoreReader, StoreOptions};
