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
//! assert_eq!(wal.next_seq(), first + 3);
//! let ops: Vec<Op> = wal.replay(Seq::ZERO)?.map(|e| e.map(|e| e.op)).collect::<Result<_, _>>()?;
//! assert_eq!(ops, [Op::Put, Op::Put, Op::Delete]);
//! # Ok(()) }
//! ```
//!
//! # Guide
//!
//! ## Opening a log
//!
//! [`Wal::open`] creates the directory if needed, takes an exclusive lock on
//! it (a second opener, in this process or another, gets
//! [`Error::Locked`]), recovers the segments, truncates a torn tail and
//! continues after the highest recovered sequence. [`Options`] holds every
//! knob with a documented default; [`Wal::recovery_report`] says what
//! recovery found. A `Wal` is `Send + Sync`: share it with `Arc`.
//!
//! ## Appending
//!
//! [`Wal::put`], [`Wal::delete`], [`Wal::merge`] and [`Wal::write_batch`]
//! take `&self` and return the sequence number once the entry is as durable
//! as the [`SyncPolicy`] promises. Sequence numbers follow file order
//! without gaps in what ironwal appends (a log written by kevo may have
//! gaps, and opening under [`RecoveryMode::SkipCorrupted`] continues above
//! every sequence the skipped bytes name). A failed write or fsync *poisons* the log: that append and
//! every later one fail ([`Error::Poisoned`]), because the log can no
//! longer tell what reached the disk. Async code uses
//! [`Wal::put_nowait`] and awaits [`Wal::durable`], which needs no thread
//! per pending write:
//!
//! ```
//! # fn main() -> Result<(), ironwal::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # use ironwal::{Options, Wal};
//! let wal = Wal::open(dir.path(), Options::default())?;
//! let seqs: Vec<_> = (0..10u32).map(|i| wal.put_nowait(&i.to_be_bytes(), b"v")).collect::<Result<_, _>>()?;
//! wal.wait_durable(*seqs.last().unwrap())?; // or `wal.durable(seq).await?`
//! # Ok(()) }
//! ```
//!
//! ## Batches
//!
//! A [`WriteBatch`] is written as one entry covered by one checksum: after a
//! crash it is there whole or not at all, and readers never yield part of
//! one.
//!
//! ## Sync policies and what survives a crash
//!
//! | policy | an append returns when | after power loss you may lose |
//! |---|---|---|
//! | [`SyncPolicy::Always`] (default) | its entry is fdatasynced (shared with concurrent appenders: group commit) | nothing acknowledged |
//! | [`SyncPolicy::Bytes(n)`](SyncPolicy::Bytes) | buffered; a sync runs every `n` bytes | up to `n` bytes (plus an entry) of acknowledged appends |
//! | [`SyncPolicy::Interval(d)`](SyncPolicy::Interval) | buffered; a background sync runs every `d` | up to `d` of acknowledged appends |
//! | [`SyncPolicy::Never`] | buffered | everything since the last [`Wal::sync`] |
//!
//! Under the buffered policies a background thread also syncs each
//! [`Options::background_sync_bytes`] (8 MiB) written, which keeps the disk
//! busy while appends go on; it only ever makes more of the log durable
//! sooner.
//!
//! [`Wal::durable_seq`] tells, under any policy, what is already safe. After
//! a crash of the process alone (the machine stays up), everything written
//! to the operating system survives; [`Wal::flush`] hands buffered appends
//! to it. Under `Always`, segments are preallocated with zeros so each
//! fdatasync overwrites allocated blocks ([`Options::preallocate`]); a
//! clean close cuts them back, so a log at rest holds no zeros and kevo's
//! own reader replays it. [`Options::kevo_interop`] keeps that true after a
//! crash too.
//!
//! ## Lost segments
//!
//! The log records its sealed segments (name, length, sequences) in
//! `ironwal-segments` beside them ([`RECORD_FILE`]). Opening or reading a
//! log whose recorded segment is missing, cut short or out of place is
//! [`Error::Corruption`] under the default mode, with a
//! [`CorruptionKind`] saying which; [`RecoveryReport::record`] tells whether
//! the log had a record to check against.
//!
//! ## Recovery modes
//!
//! A crash can tear only the end of the log. So on open, a bad record (or an
//! incomplete entry) with no valid record anywhere after it is a torn write:
//! under the default [`RecoveryMode::TolerateTornTail`] it is dropped,
//! reported and truncated. Damage with valid records after it is
//! corruption, and opening fails with [`Error::Corruption`] naming the
//! segment and byte offset rather than silently dropping acknowledged data.
//! [`RecoveryMode::Strict`] refuses any invalid byte;
//! [`RecoveryMode::PointInTime`] ends the log at the first damage (moving
//! the rest aside into `*.corrupt` files, never deleting it);
//! [`RecoveryMode::SkipCorrupted`] skips damage and reports it, for salvage
//! ([`salvage`] copies every intact entry into a new log).
//!
//! ## Reading
//!
//! [`Wal::replay`] reads an open log from any sequence; [`LogReader`] reads
//! any log directory or segment file without locking or writing, under a
//! recovery mode, with a [`RecoveryReport`]. Both borrow each entry from a
//! reused buffer ([`LogReader::next_entry`]) or hand out owned [`Entry`]s as
//! an iterator; memory stays bounded by the largest entry.
//!
//! ## Retention
//!
//! Once a checkpoint covers everything below some sequence,
//! [`Wal::remove_segments_before`] deletes the whole segments that hold
//! nothing newer; never the active segment, and never the last segment
//! holding entries while the active one holds none durable (so the log
//! cannot lose its place in the sequence).
//!
//! ## Following a live log
//!
//! A [`Follower`] reads a log another process is appending to, without its
//! lock, across rotations and restarts: a replica or a change-data-capture
//! consumer waits on [`Follower::next_timeout`]. In the writer's process,
//! [`Wal::subscribe`] makes one that yields only entries already durable.
//!
//! ## Observability
//!
//! [`Wal::metrics`] returns counters to export (appends, bytes, fsyncs,
//! group commit sizes, fsync latency histogram, segments). Recovery,
//! rotation, truncation and I/O failures are reported as `tracing` events.
//!
//! ## Storage
//!
//! All file access goes through the [`storage::Storage`] trait: the real
//! file system by default, [`storage::MemStorage`] for tests, or your own
//! (the crash-safety suite plugs in one that loses power).
//!
//! The on-disk format is described byte by byte in `docs/format.md`.

#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

/// The raw on-disk format: record and entry encoders and decoders. Public
/// only with the `raw-format` feature, for ironwal's own harnesses and
/// fuzzers; not a stable API. Tools read logs through [`LogReader`] and
/// [`Item`].
#[cfg(feature = "raw-format")]
#[doc(hidden)]
pub mod format;
#[cfg(not(feature = "raw-format"))]
#[allow(dead_code, unused_imports, unreachable_pub)]
mod format;
pub mod inspect;
pub mod storage;

mod entry;
mod error;
mod follow;
mod metrics;
mod options;
mod reader;
mod recovery;
mod repair;
mod report;
mod salvage;
mod segment;
mod segment_record;
mod seq;
mod sparse_index;
mod wal;
mod write_batch;

pub use entry::{Entry, EntryRef, Item};
pub use error::{CorruptionKind, Error, InvalidOption, Oversized, Result};
pub use follow::Follower;
pub use format::Op;
pub use metrics::{Histogram, Metrics};
pub use options::{Options, SyncPolicy};
pub use recovery::LogReader;
pub use repair::{repair_in_place, repair_in_place_with, InPlaceReport, REPAIR_MARKER};
pub use report::{
    DropCause, DroppedRange, RecoveryMode, RecoveryReport, SegmentReport, SequenceGap, UnknownMode,
};
pub use salvage::{salvage, salvage_with, SalvageReport};
pub use segment::SegmentId;
pub use segment_record::{RecordState, RECORD_FILE};
pub use seq::Seq;
pub use wal::{Durable, SegmentInfo, Wal};
pub use write_batch::WriteBatch;

/// The types documented as `Send + Sync` are, checked at compile time.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Wal>();
    send_sync::<LogReader>();
    send_sync::<Follower>();
    send_sync::<Durable>();
    send_sync::<Error>();
};
