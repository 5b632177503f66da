//! The logs under test, each behind the same three small traits, so one
//! driver ([`crate::drive`]) times them all the same way.
//!
//! A peer module only translates: open with the durability asked for, append
//! one key and value, hand everything to the OS, read everything back. It
//! never times anything itself.

mod fjall;
mod ironwal;
mod okaywal;
mod raft_engine;
#[cfg(feature = "rocksdb")]
mod rocksdb;
mod walrus;

use std::path::Path;

use anyhow::Result;

use crate::plan::Workload;

/// How a log is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every append returns only once it is durable (the peer's strongest
    /// setting).
    Durable,
    /// Appends need only reach the OS (or the peer's buffer, flushed by
    /// [`Log::flush`]).
    Unsynced,
    /// Writing W4's log: as cheaply as the peer can while keeping every entry
    /// for the replay (no checkpointing or recycling that would drop any).
    ReplayLog,
}

/// A log library, as the benchmark drives it.
pub trait Peer: Sync {
    fn name(&self) -> &'static str;

    /// Why this peer cannot run `workload`, if it cannot.
    fn unsupported(&self, workload: Workload) -> Option<String> {
        let _ = workload;
        None
    }

    /// What a reader of this peer's `workload` figure must know about how
    /// it was run.
    fn note(&self, workload: Workload) -> Option<&'static str> {
        let _ = workload;
        None
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>>;

    /// Writer threads used to write W4's log (more than one only for a peer
    /// that cannot append without an fsync).
    fn replay_log_writers(&self) -> usize {
        1
    }

    /// Reopens the log in `dir` (its recovery included) and reads every entry
    /// back through `tally`.
    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()>;
}

/// An open log.
pub trait Log: Sync {
    /// A handle for writer thread `id` (ids are 0, 1, 2, ...).
    fn writer(&self, id: usize) -> Result<Box<dyn Writer + '_>>;

    /// Hands everything appended so far to the OS, without syncing.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// fdatasyncs issued so far, if the peer lets us count them.
    fn fsyncs(&self) -> Option<u64> {
        None
    }

    /// Closes the log cleanly (untimed).
    fn close(self: Box<Self>) -> Result<()>;
}

/// One thread's way into a [`Log`].
pub trait Writer: Send {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
}

/// Counts what a replay yields, and touches each value so no reader can skip
/// the bytes.
#[derive(Debug, Default)]
pub struct Tally {
    pub entries: u64,
    pub bytes: u64,
    fold: u8,
}

impl Tally {
    #[inline]
    pub fn see(&mut self, key: &[u8], value: &[u8]) {
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.fold ^= value.last().copied().unwrap_or(0);
    }

    /// For peers that store the key and value as one payload.
    #[inline]
    pub fn see_joined(&mut self, payload: &[u8]) {
        let (key, value) = payload.split_at(crate::plan::KEY_LEN.min(payload.len()));
        self.see(key, value);
    }

    pub fn fold(&self) -> u8 {
        self.fold
    }
}

/// The peer called `name`; `raw` and `kevo` are not peers.
pub fn by_name(name: &str) -> Option<Box<dyn Peer>> {
    Some(match name {
        "ironwal" => Box::new(ironwal::Ironwal),
        "okaywal" => Box::new(okaywal::Okaywal),
        "raft-engine" => Box::new(raft_engine::RaftEngine),
        "walrus-rust" => Box::new(walrus::Walrus),
        "fjall" => Box::new(fjall::Fjall),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Box::new(rocksdb::RocksDb),
        #[cfg(not(feature = "rocksdb"))]
        "rocksdb" => Box::new(NotBuilt("rocksdb", "built without --features rocksdb")),
        _ => return None,
    })
}

/// A peer this binary was built without.
#[cfg(not(feature = "rocksdb"))]
struct NotBuilt(&'static str, &'static str);

#[cfg(not(feature = "rocksdb"))]
impl Peer for NotBuilt {
    fn name(&self) -> &'static str {
        self.0
    }

    fn unsupported(&self, _workload: Workload) -> Option<String> {
        Some(self.1.to_owned())
    }

    fn open(&self, _dir: &Path, _mode: Mode) -> Result<Box<dyn Log>> {
        anyhow::bail!("{}: {}", self.0, self.1)
    }

    fn replay(&self, _dir: &Path, _tally: &mut Tally) -> Result<()> {
        anyhow::bail!("{}: {}", self.0, self.1)
    }
}

/// Appends `key` then `value` into `buf`, for peers that take one slice.
#[inline]
pub fn join_into<'b>(buf: &'b mut Vec<u8>, key: &[u8], value: &[u8]) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
    buf
}
