//! ironwal is a write-ahead log for programs that must not lose acknowledged
//! writes: storage engines, queues, state machines, Raft logs. It reads and
//! writes the kevo storage engine's WAL format byte for byte.
//!
//! ```
//! # fn main() -> Result<(), ironwal::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! use ironwal::{Op, Options, Seq, SyncPolicy, Wal, WriteBatch};
//!
//! // Open (or create) a log. Every append returns once it is durable.
//! let wal = Wal::open(dir.path(), Options::default().sync_policy(SyncPolicy::Always))?;
//! let first = wal.put(b"user:1", b"alice")?;
//!
//! // A batch is atomic: after a crash it is there whole or not at all.
//! let mut batch = WriteBatch::new();
//! batch.put(b"user:2", b"bob").delete(b"user:1");
//! wal.write_batch(&batch)?;
//! wal.close()?;
//!
//! // Reopening recovers the log and continues the sequence.
//! let wal = Wal::open(dir.path(), Options::default())?;
//! assert_eq!(wal.next_seq(), Seq::new(first.get() + 3));
//! let ops: Vec<Op> = wal.replay(Seq::ZERO)?.map(|e| e.map(|e| e.op)).collect::<Result<_, _>>()?;
//! assert_eq!(ops, [Op::Put, Op::Put, Op::Delete]);
//! # Ok(()) }
//! ```
//!
//! # The pieces
//!
//! * [`Wal`] appends (`put`, `delete`, `merge`, `write_batch`) from any number
//!   of threads, under a [`SyncPolicy`]; concurrent appenders under
//!   [`SyncPolicy::Always`] share fsyncs.
//! * [`LogReader`] reads a log directory or one segment file without locking
//!   or modifying it, under a [`RecoveryMode`], and produces a
//!   [`RecoveryReport`].
//! * [`format`] encodes and decodes the bytes, with no I/O at all.
//! * [`storage`] is the file-system seam: the real file system by default,
//!   an in-memory one for tests, or your own.
//!
//! # Recovery
//!
//! A crash can tear only the end of the log. So on open, a bad record (or an
//! incomplete entry) with no valid record anywhere after it is a torn write:
//! under the default [`RecoveryMode::TolerateTornTail`] it is dropped,
//! reported and truncated. Damage with valid records after it is corruption,
//! and opening fails with [`Error::Corruption`] naming the segment and byte
//! offset rather than silently dropping acknowledged data.
//! [`RecoveryMode::PointInTime`] and [`RecoveryMode::SkipCorrupted`] choose
//! otherwise, and report everything they drop.

#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod format;
pub mod storage;

mod error;
mod follow;
mod metrics;
mod options;
mod reader;
mod recovery;
mod salvage;
mod segment;
mod seq;
mod wal;
mod write_batch;

pub use error::{CorruptionKind, Error, Result};
pub use follow::Follower;
pub use format::Op;
pub use metrics::{Histogram, Metrics};
pub use options::{Options, SyncPolicy};
pub use recovery::{
    DropCause, DroppedRange, Entry, EntryRef, Item, LogReader, RecoveryMode, RecoveryReport,
    SegmentReport, UnknownMode,
};
pub use salvage::{salvage, salvage_with, SalvageReport};
pub use segment::SegmentId;
pub use seq::Seq;
pub use wal::{Durable, SegmentInfo, Wal};
pub use write_batch::WriteBatch;
