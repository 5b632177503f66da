//! The one error type of the library.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{EntryError, HEADER_SIZE, MAX_PAYLOAD};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ironwal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Another `Wal`, in this process or another, holds the directory's lock.
    #[error("the log directory {} is locked by another open Wal", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },

    /// A segment holds bytes that are not a valid log, at a place the
    /// recovery mode does not allow.
    #[error("corruption in {} at byte {offset}: {kind}", segment.display())]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the damaged record (or of the incomplete entry).
        offset: u64,
        /// What is wrong there.
        kind: CorruptionKind,
    },

    /// The `Wal` was closed.
    #[error("the log is closed")]
    Closed,

    /// An earlier write or fsync failed, so the `Wal` refuses further writes:
    /// it cannot tell what reached the disk, and acknowledging more would
    /// claim durability it cannot promise.
    #[error("the log stopped accepting writes after an I/O failure: {cause}")]
    Poisoned {
        /// The failure that stopped the log.
        cause: Arc<Error>,
    },

    /// A key, value or batch is longer than the format's length fields allow.
    #[error("{what} of {len} bytes is longer than the format allows ({max} bytes)")]
    TooLarge {
        /// What was too long.
        what: Oversized,
        /// Its length.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },

    /// `write_batch` was given a batch with no operations.
    #[error("the batch holds no operations")]
    EmptyBatch,

    /// The sequence numbers would pass `u64::MAX`.
    #[error("sequence numbers are exhausted")]
    SequenceExhausted,

    /// A wait for durability named a sequence no append has been given yet.
    #[error("sequence {seq} has not been appended (the last is {last})")]
    NotAppended {
        /// The sequence waited for.
        seq: crate::Seq,
        /// The highest sequence appended.
        last: crate::Seq,
    },

    /// An option has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(InvalidOption),

    /// A bug in ironwal: one of its own invariants broke. The call that
    /// found it stops rather than return wrong data or end early; please
    /// report it.
    #[error("internal error, a bug in ironwal: {0}")]
    Internal(&'static str),

    /// An in-place repair ([`crate::repair_in_place`]) holds the directory
    /// while it swaps the repaired segments in; open it once it is done.
    #[error("a repair of {} is swapping its segments; open it once the repair is done", dir.display())]
    RepairInProgress {
        /// The log directory.
        dir: PathBuf,
    },

    /// A [`crate::Follower`] reached entries that are no longer in the log:
    /// the segments that held them were removed (by the writer's
    /// retention) before it read them, or the sequence jumps there. Not
    /// fatal: the follower's next call yields the first entry still there.
    #[error("entries {first}..={last} were gone before they could be read (removed by retention, or never written)")]
    EntriesGone {
        /// The first sequence missed.
        first: crate::Seq,
        /// The last sequence missed.
        last: crate::Seq,
    },

    /// A path given to a reader does not exist.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
}

impl Error {
    /// Wraps an `io::Error` with its path; the path is copied only if an
    /// error actually happens.
    pub(crate) fn io<P: AsRef<Path>>(path: P) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Whether this is a [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// What [`Error::TooLarge`] found longer than the format allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Oversized {
    /// A key (the format stores its length in 32 bits).
    #[error("key")]
    Key,
    /// A value.
    #[error("value")]
    Value,
    /// An encoded entry.
    #[error("entry")]
    Entry,
    /// A key or value inside a batch.
    #[error("batch key or value")]
    BatchField,
    /// A batch's operation count (32 bits).
    #[error("batch operation count")]
    BatchCount,
    /// An encoded batch.
    #[error("batch")]
    Batch,
}

/// Which option [`Error::InvalidOption`] refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOption {
    /// [`Options::max_segment_size`](crate::Options::max_segment_size) is zero.
    #[error("max_segment_size must be above zero")]
    MaxSegmentSize,
    /// [`Options::write_buffer_size`](crate::Options::write_buffer_size) is zero.
    #[error("write_buffer_size must be above zero")]
    WriteBufferSize,
    /// [`Options::background_sync_bytes`](crate::Options::background_sync_bytes) is `Some(0)`.
    #[error("background_sync_bytes must be above zero (None turns it off)")]
    BackgroundSyncBytes,
    /// [`SyncPolicy::Bytes(0)`](crate::SyncPolicy::Bytes).
    #[error("SyncPolicy::Bytes needs a threshold above zero")]
    SyncBytes,
    /// A zero [`SyncPolicy::Interval`](crate::SyncPolicy::Interval).
    #[error("SyncPolicy::Interval needs a period above zero")]
    SyncInterval,
    /// [`Options::first_seq`](crate::Options::first_seq) is zero.
    #[error("first_seq must be above zero")]
    FirstSeq,
}

/// What is wrong with the bytes at a corrupt place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// A record header's type byte is not 1–4.
    #[error("invalid record type {found}")]
    InvalidRecordType {
        /// The type byte found.
        found: u8,
    },
    /// A record header's length exceeds the 32768-byte payload limit.
    #[error("record length {len} exceeds the {MAX_PAYLOAD}-byte limit")]
    RecordTooLong {
        /// The stored length.
        len: u16,
    },
    /// A record header claims an empty payload, which no writer produces.
    #[error("record with an empty payload")]
    EmptyRecord,
    /// Fewer than seven bytes remain for a record header.
    #[error("record header cut short: {available} of {HEADER_SIZE} bytes")]
    TruncatedHeader {
        /// Bytes left in the file.
        available: u64,
    },
    /// A record's payload runs past the end of the file.
    #[error(
        "record payload of {len} bytes runs past the end of the file ({available} bytes left)"
    )]
    TruncatedRecord {
        /// The stored payload length.
        len: u16,
        /// Payload bytes left in the file.
        available: u64,
    },
    /// The payload's CRC-32 differs from the stored one.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the payload as read.
        computed: u32,
    },
    /// A Middle or Last record with no First before it.
    #[error("{} fragment without a First record before it", if *is_last { "Last" } else { "Middle" })]
    OrphanFragment {
        /// Whether the record is a Last (else a Middle).
        is_last: bool,
    },
    /// A First record followed by something other than Middle or Last.
    #[error("a fragmented entry is interrupted by a new entry")]
    InterruptedFragment,
    /// A fragmented entry or a header-form batch is cut short by the end of
    /// its segment.
    #[error("incomplete entry at the end of the segment")]
    IncompleteEntry,
    /// A header-form batch is followed by an entry that cannot belong to it.
    #[error("batch expected an entry with sequence {expected} but found {found}")]
    BatchSequenceMismatch {
        /// Sequence the batch's next entry must have.
        expected: u64,
        /// What was found.
        found: u64,
    },
    /// An entry of a header-form batch whose earlier part was damaged (so
    /// the batch cannot be recovered whole).
    #[error("entry of a batch that was damaged before it")]
    DamagedBatchMember,
    /// A header-form batch holds a batch.
    #[error("a batch is nested inside a header-form batch")]
    NestedBatch,
    /// The checksum is valid but the entry bytes are not.
    #[error("malformed entry: {0}")]
    MalformedEntry(#[from] EntryError),
    /// A segment the log's segment record lists is not in the directory.
    #[error("segment missing: the segment record lists it")]
    SegmentMissing,
    /// A sealed segment holds a different number of bytes of log than the
    /// segment record says (fewer: it was cut short).
    #[error("segment holds {found} bytes of log where the segment record says {recorded}")]
    SegmentLength {
        /// Bytes the segment record says the segment holds.
        recorded: u64,
        /// Bytes of log found in it.
        found: u64,
    },
    /// A segment's first entry is not the one the log continues with: a
    /// segment before it is missing, or the segment is not the one its name
    /// says (0 stands for "no entry").
    #[error("segment starts at sequence {found} where the log continues at {expected}")]
    SequenceGap {
        /// The sequence the segment should start with.
        expected: u64,
        /// The sequence it starts with.
        found: u64,
    },
    /// A sealed segment's last entry differs from the segment record's (0
    /// stands for "no entry").
    #[error("segment ends at sequence {found} where the segment record says {recorded}")]
    LastSequence {
        /// The last sequence the segment record lists.
        recorded: u64,
        /// The last sequence found.
        found: u64,
    },
    /// A segment between segments the segment record lists, that it does
    /// not list.
    #[error("segment not in the segment record, between segments it lists")]
    UnrecordedSegment,
}

impl CorruptionKind {
    /// Whether this is about a whole segment (found by checking the log
    /// against its segment record) rather than about bytes in one.
    pub fn is_segment_level(&self) -> bool {
        matches!(
            self,
            CorruptionKind::SegmentMissing
                | CorruptionKind::SegmentLength { .. }
                | CorruptionKind::SequenceGap { .. }
                | CorruptionKind::LastSequence { .. }
                | CorruptionKind::UnrecordedSegment
        )
    }
}
