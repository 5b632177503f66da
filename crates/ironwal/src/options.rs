//! Options for opening a [`Wal`](crate::Wal).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, InvalidOption, Result};
use crate::report::RecoveryMode;
use crate::seq::Seq;
use crate::storage::{default_storage, Storage};

/// When appended entries are made durable (fdatasync).
///
/// What each policy promises after a power failure: `Always` loses nothing
/// that was acknowledged; `Bytes(n)` loses at most the last `n` bytes (plus
/// one entry) acknowledged before the crash; `Interval(d)` at most the last
/// `d` of writes; `Never` whatever the operating system had not written back.
/// After a process crash (the machine stays up) `Always` and `Bytes` lose
/// nothing that reached the OS; entries still in ironwal's write buffer are
/// lost under every policy but `Always`.
///
/// Under every policy a segment is fdatasynced once more when it is sealed
/// (every `max_segment_size` bytes), before the next segment receives a
/// byte: a crash can then only ever lose a suffix of the log, never a
/// stretch in the middle with later entries surviving after it (which kevo's
/// format, allowing gaps between sequence numbers, could not reveal). The
/// appender that fills a segment does not wait for that fdatasync: the
/// background syncer runs it (under `Always`, the next group commit does),
/// and appends go on into the write buffer meanwhile.
/// Under the lazy policies a background thread also syncs every
/// [`Options::background_sync_bytes`] written, which only makes more of the
/// log durable sooner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append returns only once its entry is durable. Concurrent
    /// appenders share fsyncs (group commit). kevo's `SyncImmediate`.
    Always,
    /// fdatasync whenever this many bytes were written since the last one.
    /// kevo's `SyncBatch`.
    Bytes(u64),
    /// A background thread flushes and syncs at most this long after a write.
    Interval(Duration),
    /// Sync only on [`Wal::sync`](crate::Wal::sync), close, sealing a segment
    /// and every [`Options::background_sync_bytes`]. kevo's `SyncNone`.
    Never,
}

impl SyncPolicy {
    /// The `Bytes` policy with kevo's default threshold of 1 MiB.
    pub const DEFAULT_BYTES: SyncPolicy = SyncPolicy::Bytes(1024 * 1024);
}

impl Default for SyncPolicy {
    /// `Always`: a WAL's first promise is that acknowledged writes survive.
    fn default() -> Self {
        SyncPolicy::Always
    }
}

/// How a [`Wal`](crate::Wal) is opened and run.
///
/// ```
/// use std::time::Duration;
/// use ironwal::{Options, RecoveryMode, SyncPolicy};
///
/// let options = Options::default()
///     .max_segment_size(16 * 1024 * 1024)
///     .sync_policy(SyncPolicy::Interval(Duration::from_millis(10)))
///     .recovery_mode(RecoveryMode::TolerateTornTail);
/// assert_eq!(options.max_segment_size, 16 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// A segment that has reached this many bytes is closed and the next
    /// append starts a new one. An entry never spans two segments, so a
    /// segment may pass the limit by one entry. Default 64 MiB.
    pub max_segment_size: u64,
    /// When appends are made durable. Default [`SyncPolicy::Always`].
    pub sync_policy: SyncPolicy,
    /// How damage found on open is handled. Default
    /// [`RecoveryMode::TolerateTornTail`].
    pub recovery_mode: RecoveryMode,
    /// Encoded entries are collected in memory and written to the file once
    /// this many bytes are pending (or a sync is due). Default 1 MiB.
    pub write_buffer_size: usize,
    /// Create each segment ahead of need and fill it with zeros (on a
    /// background thread), so that an fdatasync after an append overwrites
    /// blocks that are already allocated and written and needs no file-system
    /// metadata update: about twice as many durable appends per second on
    /// ext4. The next segment is prepared as `<id>.wal.prepared` (at most one
    /// at a time) and renamed into the log when rotation takes it. The
    /// cost: the active segment and the prepared one occupy their full size
    /// while the log is open, and opening a log whose last segment is not
    /// full fills it (up to `max_segment_size` of zeros). Sealing and a clean
    /// close cut segments back to their last entry and remove the prepared
    /// one, so a log at rest holds no zeros; after a crash the active
    /// segment may end in zeros, which ironwal reads as a clean end and
    /// kevo's reader does not (see [`Options::kevo_interop`]). When the zeros
    /// cannot be written (a full disk), the log goes on without them and
    /// counts it in [`Metrics::preallocation_failures`](crate::Metrics).
    /// Applies under [`SyncPolicy::Always`] only: under the lazier policies
    /// fsyncs are rare and filling segments would cost more than it saves.
    /// Default `true`.
    pub preallocate: bool,
    /// Under [`SyncPolicy::Always`], how long the leader of a group commit
    /// waits before cutting the group, to let more appenders join it (like
    /// PostgreSQL's `commit_delay`). Trades latency for fewer fsyncs when
    /// many threads append. Default `None`: no delay.
    pub commit_delay: Option<Duration>,
    /// Under the lazy sync policies, a background thread syncs the log each
    /// time this many bytes have been written to the active segment since
    /// its last sync, so the data goes to the disk while appends go on
    /// rather than all at once when the segment is sealed (which syncs it
    /// and makes appends wait): like RocksDB's `wal_bytes_per_sync`. These
    /// are ordinary syncs, so [`Wal::durable_seq`](crate::Wal::durable_seq)
    /// advances with them and a failure poisons the log. Irrelevant under
    /// [`SyncPolicy::Always`], and under `Bytes(n)` with `n` below it.
    /// Between these syncs the same thread starts the write-back of each
    /// MiB written ([`StorageFile::start_writeback`](crate::storage::StorageFile::start_writeback),
    /// a hint that promises nothing), so a seal finds little left to write.
    /// `None` syncs only as the policy says (and on sealing), with no
    /// write-back hints. Default 8 MiB.
    pub background_sync_bytes: Option<u64>,
    /// The sequence number of the first entry of a log that has none yet
    /// (a new directory, or one whose segments hold no entry); a log with
    /// entries continues after its last one. For rebuilding a log whose
    /// numbering starts later, such as one that retention shortened
    /// (`ironwal load` uses it). Default 1; must be above zero.
    pub first_seq: Seq,
    /// The file system. Default: the real one.
    pub storage: Arc<dyn Storage>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_segment_size: 64 * 1024 * 1024,
            sync_policy: SyncPolicy::default(),
            recovery_mode: RecoveryMode::default(),
            write_buffer_size: 1024 * 1024,
            preallocate: true,
            commit_delay: None,
            background_sync_bytes: Some(8 * 1024 * 1024),
            first_seq: Seq::new(1),
            storage: default_storage(),
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults, without preallocation: every file named `*.wal` holds
    /// only what was written to it, so kevo's own reader (`ReplayWALDir`)
    /// replays the log without an error or a skipped byte even after a
    /// crash or `kill -9` of the writer, and kevo's `ReuseWAL` may append to
    /// it. (With the defaults, that holds after a clean close only; a crash
    /// leaves the active segment's zero tail, which kevo reads as damage.)
    /// One limit no setting removes: a power loss in the middle of a write
    /// can leave a torn last record, which kevo's reader fails on and
    /// ironwal truncates the next time it opens the log. Costs about half
    /// the durable appends per second of the defaults on ext4.
    ///
    /// ```
    /// let options = ironwal::Options::kevo_interop();
    /// assert!(!options.preallocate);
    /// ```
    pub fn kevo_interop() -> Self {
        Self::default().preallocate(false)
    }

    /// Sets [`Options::max_segment_size`].
    pub fn max_segment_size(mut self, bytes: u64) -> Self {
        self.max_segment_size = bytes;
        self
    }

    /// Sets [`Options::sync_policy`].
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync_policy = policy;
        self
    }

    /// Sets [`Options::recovery_mode`].
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Sets [`Options::write_buffer_size`].
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`Options::preallocate`].
    pub fn preallocate(mut self, preallocate: bool) -> Self {
        self.preallocate = preallocate;
        self
    }

    /// Sets [`Options::commit_delay`].
    pub fn commit_delay(mut self, delay: Option<Duration>) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Sets [`Options::background_sync_bytes`].
    pub fn background_sync_bytes(mut self, bytes: Option<u64>) -> Self {
        self.background_sync_bytes = bytes;
        self
    }

    /// Sets [`Options::first_seq`].
    pub fn first_seq(mut self, seq: Seq) -> Self {
        self.first_seq = seq;
        self
    }

    /// Sets [`Options::storage`].
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_segment_size == 0 {
            return Err(Error::InvalidOption(InvalidOption::MaxSegmentSize));
        }
        if self.write_buffer_size == 0 {
            return Err(Error::InvalidOption(InvalidOption::WriteBufferSize));
        }
        if self.first_seq == Seq::ZERO {
            return Err(Error::InvalidOption(InvalidOption::FirstSeq));
        }
        if self.background_sync_bytes == Some(0) {
            return Err(Error::InvalidOption(InvalidOption::BackgroundSyncBytes));
        }
        match self.sync_policy {
            SyncPolicy::Bytes(0) => Err(Error::InvalidOption(InvalidOption::SyncBytes)),
            SyncPolicy::Interval(d) if d.is_zero() => {
                Err(Error::InvalidOption(InvalidOption::SyncInterval))
            }
            _ => Ok(()),
        }
    }
}
