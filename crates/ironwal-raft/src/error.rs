//! The crate's error type, and its translation into openraft's
//! `StorageError` at the trait boundary.

use ironwal::Seq;
use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the log store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The write-ahead log failed (I/O, corruption found on open, closed,
    /// poisoned after a failed fsync).
    #[error("the write-ahead log failed: {0}")]
    Wal(#[from] ironwal::Error),

    /// A record of the log could not be decoded: the log was written by
    /// something other than this crate, or with a different entry type.
    #[error("the record at sequence {seq} cannot be decoded: {reason}")]
    Decode {
        /// The record's sequence in the write-ahead log.
        seq: Seq,
        /// What is wrong with it.
        reason: String,
    },

    /// The records on disk describe a Raft log with a hole: an entry whose
    /// index does not follow the one before it, with no truncation or purge
    /// record in between.
    #[error("the Raft log has a hole at sequence {seq}: expected index {expected}, found {found}")]
    Hole {
        /// The record's sequence in the write-ahead log.
        seq: Seq,
        /// The index that should have come next.
        expected: u64,
        /// The index found.
        found: u64,
    },

    /// An `append` was asked to leave a hole in the log, or was given
    /// entries whose indexes are not consecutive.
    #[error("refusing to append index {found}: the next index is {expected}")]
    NotContiguous {
        /// The index that should have come next.
        expected: u64,
        /// The index offered.
        found: u64,
    },

    /// An entry the index points at is no longer in the write-ahead log.
    #[error("log entry {index} is missing from the write-ahead log (expected at sequence {seq})")]
    Missing {
        /// The Raft index.
        index: u64,
        /// The sequence the index recorded for it.
        seq: Seq,
    },

    /// A value could not be encoded.
    #[error("cannot encode a {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// The group was removed from its multi-log
    /// ([`MultiLog::remove_group`](crate::MultiLog::remove_group)); its
    /// store writes no more.
    #[error("Raft group {group} was removed from the multi-log")]
    GroupRemoved {
        /// The group's id.
        group: u64,
    },

    /// A background task (a read or a segment removal) did not finish.
    #[error("a background task of the log store failed: {0}")]
    Task(String),
}

impl Error {
    /// The openraft error for a failure of `verb` on `subject`.
    pub(crate) fn storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    /// As an `io::Error`, for openraft's append callback.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            Error::Wal(ironwal::Error::Io { source, .. }) => source,
            other => std::io::Error::other(other),
        }
    }
}
