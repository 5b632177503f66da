//! [`LogStore`]: openraft's `RaftLogStorage` on an ironwal [`Wal`].
//!
//! Owns the in-memory view of the log (index, entry cache, vote, committed,
//! purged) and keeps it equal to what a replay of the write-ahead log would
//! rebuild: every change is first a record in the log, in the order it was
//! made. It never acknowledges an append before ironwal says it is durable.

use std::fmt;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use ironwal::{SegmentInfo, Seq, Wal, WriteBatch};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AsyncRuntime, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError, Vote,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::multi::Inner as Multi;
use crate::record::{self, Keys};
use crate::state::{recover, Recovered, State};

pub(crate) type NodeIdOf<C> = <C as RaftTypeConfig>::NodeId;
pub(crate) type LogIdOf<C> = LogId<NodeIdOf<C>>;
pub(crate) type VoteOf<C> = Vote<NodeIdOf<C>>;

/// How a [`LogStore`] is opened.
///
/// ```
/// use ironwal_raft::StoreOptions;
///
/// let options = StoreOptions::default()
///     .cache_bytes(8 * 1024 * 1024)
///     .wal(ironwal::Options::default().max_segment_size(16 * 1024 * 1024));
/// assert_eq!(options.cache_bytes, 8 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Options of the underlying write-ahead log. Its default
    /// [`SyncPolicy::Always`](ironwal::SyncPolicy::Always) preallocates
    /// segments, which makes each append's fdatasync cheaper; the store waits
    /// for durability explicitly under any policy.
    pub wal: ironwal::Options,
    /// Encoded bytes of recently appended entries kept in memory to serve
    /// reads (replication to followers, applying to the state machine)
    /// without reading the log back. Older entries are read from the log.
    /// Default 32 MiB.
    pub cache_bytes: usize,
    /// Under [`SyncPolicy::Always`](ironwal::SyncPolicy::Always), whether
    /// `RaftLogStorage::append` makes its entries durable on the calling
    /// thread (leading a group commit that other appenders to the same log
    /// share) before it returns, as raft-engine does, instead of handing
    /// the wait to the log's background syncer and completing the callback
    /// from a task. Saves a thread hop per append; blocks the caller for
    /// the fdatasync. Default `true`.
    pub sync_on_append: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            wal: ironwal::Options::default(),
            cache_bytes: 32 * 1024 * 1024,
            sync_on_append: true,
        }
    }
}

impl StoreOptions {
    /// Sets [`StoreOptions::wal`].
    pub fn wal(mut self, wal: ironwal::Options) -> Self {
        self.wal = wal;
        self
    }

    /// Sets [`StoreOptions::sync_on_append`].
    pub fn sync_on_append(mut self, inline: bool) -> Self {
        self.sync_on_append = inline;
        self
    }

    /// Sets [`StoreOptions::cache_bytes`].
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }
}

/// What the store and its readers share: one Raft log, alone in its
/// write-ahead log or one group of a multi-log.
pub(crate) struct Shared<C: RaftTypeConfig> {
    pub(crate) wal: Arc<Wal>,
    pub(crate) keys: Keys,
    pub(crate) cache_bytes: usize,
    pub(crate) state: Mutex<State<C>>,
    pub(crate) recovered: Recovered<C>,
}

/// openraft's log storage (storage-v2 `RaftLogStorage`) on an ironwal
/// [`Wal`]: each Raft entry is one ironwal Put, each `append` one atomic
/// write batch, and the vote, committed and purged log ids are records of
/// the same log, so one fsync path covers everything.
///
/// `append` acknowledges (calls openraft's callback) only once ironwal's
/// background syncer has made the entries durable, without a thread per
/// append. Recent entries are served from a bounded cache, older ones read
/// back from the log. `purge` deletes the whole segments nothing present
/// needs, first rewriting the vote and committed id so they survive.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use ironwal_raft::kv::KvTypeConfig;
/// use ironwal_raft::{LogStore, StoreOptions};
/// use openraft::storage::RaftLogStorage;
/// use openraft::Vote;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let mut store = LogStore::<KvTypeConfig>::open(dir.path(), StoreOptions::default())?;
///     store.save_vote(&Vote::new(1, 7)).await?;
///     store.close()?;
///     drop(store);
///
///     let mut store = LogStore::<KvTypeConfig>::open(dir.path(), StoreOptions::default())?;
///     assert_eq!(store.read_vote().await?, Some(Vote::new(1, 7)));
///     assert_eq!(store.recovered().vote, Some(Vote::new(1, 7)));
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok(()) }
/// ```
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    /// Fires once the previous append's callback has been called, so that
    /// callbacks are called in the order of the appends.
    previous_flush: Option<oneshot::Receiver<()>>,
    /// [`StoreOptions::sync_on_append`], where the sync policy is `Always`.
    sync_on_append: bool,
    /// The multi-log this store is a group of, which owns retention (and
    /// lives as long as any of its stores).
    multi: Option<Arc<Multi<C>>>,
}

/// A reader of a [`LogStore`]'s entries, for openraft's replication tasks.
pub struct LogStoreReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStoreReader<C> {
    fn clone(&self) -> Self {
        LogStoreReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: RaftTypeConfig> fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.wal.dir())
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> fmt::Debug for LogStoreReader<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStoreReader")
            .field("dir", &self.shared.wal.dir())
            .finish_non_exhaustive()
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    /// Opens (creating if needed) the log in `dir` and replays it in one
    /// pass, rebuilding the index (one sequence number per entry, not the
    /// entries), the vote, the committed and the last purged log id. What
    /// it found is logged and returned by [`LogStore::recovered`].
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let sync_on_append =
            options.sync_on_append && options.wal.sync_policy == ironwal::SyncPolicy::Always;
        let wal = Wal::open(dir, options.wal)?;
        let (state, recovered) = recover::<C>(&wal, options.cache_bytes)?;
        tracing::info!(dir = %wal.dir().display(), "opened Raft log: {recovered}");
        let shared = Shared {
            wal: Arc::new(wal),
            keys: Keys::default(),
            cache_bytes: options.cache_bytes,
            state: Mutex::new(state),
            recovered,
        };
        Ok(LogStore::on(Arc::new(shared), sync_on_append, None))
    }

    /// A store writing through `shared`, a group of `multi` if given.
    pub(crate) fn on(
        shared: Arc<Shared<C>>,
        sync_on_append: bool,
        multi: Option<Arc<Multi<C>>>,
    ) -> Self {
        LogStore {
            shared,
            previous_flush: None,
            sync_on_append,
            multi,
        }
    }

    /// What opening the log found.
    pub fn recovered(&self) -> &Recovered<C> {
        &self.shared.recovered
    }

    /// A reader sharing this store's index and cache.
    pub fn reader(&self) -> LogStoreReader<C> {
        LogStoreReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The write-ahead log's counters (appends, fsyncs, group sizes, sync
    /// latencies, segments).
    pub fn wal_metrics(&self) -> ironwal::Metrics {
        self.shared.wal.metrics()
    }

    /// The write-ahead log's segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.wal.segments()
    }

    /// Number of entries present and encoded bytes of the cached ones.
    pub fn memory(&self) -> (u64, usize) {
        let st = self.shared.state.lock();
        (st.index.len(), st.cached_bytes)
    }

    /// Syncs and closes the write-ahead log, releasing its directory lock
    /// (readers still holding the store keep no lock). Later writes fail.
    /// For a group of a [`MultiLog`](crate::MultiLog) that is the shared
    /// log: every group's writes fail after it.
    pub fn close(&self) -> Result<()> {
        Ok(self.shared.wal.close()?)
    }

    /// Appends `entries` (consecutive indexes, the first at most one past
    /// the last present; a lower first index replaces the entries from
    /// there on) as one atomic write batch, and returns a future that
    /// resolves once they are durable. They are readable at once.
    pub fn append_entries(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let last = self.write_entries(entries)?;
        Ok(self.when_durable(last.unwrap_or_else(|| self.shared.wal.last_seq())))
    }

    /// Writes `entries` as [`LogStore::append_entries`] does; returns the
    /// last sequence written, if anything was.
    fn write_entries(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
    ) -> Result<Option<Seq>> {
        let shared = &self.shared;
        let mut st = shared.state.lock();
        st.check_live()?;
        let mut batch = WriteBatch::new();
        let mut staged: Vec<(LogIdOf<C>, C::Entry, usize)> = Vec::new();
        let mut previous: Option<u64> = None;
        // Entries at or below the purge point are already compacted away:
        // they are accepted and dropped, as openraft's suite expects.
        let floor = st.purged.as_ref().map_or(0, |p| p.index + 1);
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            if let Some(prev) = previous {
                if log_id.index != prev + 1 {
                    return Err(Error::NotContiguous {
                        expected: prev + 1,
                        found: log_id.index,
                    });
                }
            }
            previous = Some(log_id.index);
            if log_id.index < floor {
                continue;
            }
            if staged.is_empty() {
                let end = st.index.end();
                let hole = if st.index.is_empty() {
                    st.purged.is_some() && log_id.index != floor
                } else {
                    log_id.index > end
                };
                if hole {
                    let expected = if st.index.is_empty() { floor } else { end };
                    return Err(Error::NotContiguous {
                        expected,
                        found: log_id.index,
                    });
                }
                if !st.index.is_empty() && log_id.index < end {
                    // Replacing a suffix: the truncation is part of the
                    // same atomic batch.
                    batch.put(&shared.keys.truncate(log_id.index), &[]);
                }
            }
            let key = (shared.keys)
                .entry(log_id.index, &log_id.leader_id)
                .map_err(encode("key"))?;
            let value = record::encode(&entry).map_err(encode("log entry"))?;
            batch.put(&key, &value);
            staged.push((log_id, entry, value.len()));
        }
        let Some((first_id, _, _)) = staged.first() else {
            // Nothing to write: done once everything before is durable.
            return Ok(None);
        };
        let truncates = batch.len() > staged.len();
        let first_index = first_id.index;
        let first_seq = shared.wal.write_batch_nowait(&batch)?;
        let mut seq = first_seq.get();
        if truncates {
            st.truncate(first_index);
            seq += 1;
        }
        for (log_id, entry, len) in staged {
            // Cannot fail: contiguity was checked above.
            let _ = st.index.push(log_id.index, log_id.leader_id, Seq::new(seq));
            st.cache_push(entry, len, shared.cache_bytes);
            seq += 1;
        }
        Ok(Some(Seq::new(seq - 1)))
    }

    /// A future resolving once `seq` (and all before it) is durable.
    fn when_durable(&self, seq: Seq) -> impl Future<Output = Result<()>> + Send + 'static {
        let durable = (seq > Seq::ZERO).then(|| self.shared.wal.durable(seq));
        async move {
            match durable {
                Some(durable) => Ok(durable.await?),
                None => Ok(()),
            }
        }
    }

    /// Durably saves the vote.
    pub async fn write_vote(&mut self, vote: &VoteOf<C>) -> Result<()> {
        let value = record::encode(vote).map_err(encode("vote"))?;
        let seq = {
            let mut st = self.shared.state.lock();
            st.check_live()?;
            let seq = self
                .shared
                .wal
                .put_nowait(&self.shared.keys.vote(), &value)?;
            st.vote = Some(vote.clone());
            st.vote_seq = Some(seq);
            seq
        };
        self.when_durable(seq).await
    }

    /// Saves the committed log id. Not waited for: it becomes durable with
    /// the next append (losing it to a crash only means re-applying more).
    pub fn write_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<()> {
        let value = record::encode(&committed).map_err(encode("committed log id"))?;
        let mut st = self.shared.state.lock();
        st.check_live()?;
        let seq = self
            .shared
            .wal
            .put_nowait(&self.shared.keys.committed(), &value)?;
        st.committed = committed;
        st.committed_seq = Some(seq);
        Ok(())
    }

    /// Durably removes the entries at `index` and above.
    pub async fn truncate_from(&mut self, index: u64) -> Result<()> {
        let seq = {
            let mut st = self.shared.state.lock();
            st.check_live()?;
            if st.index.is_empty() || index >= st.index.end() {
                return Ok(());
            }
            let seq = self
                .shared
                .wal
                .put_nowait(&self.shared.keys.truncate(index), &[])?;
            st.truncate(index);
            seq
        };
        self.when_durable(seq).await
    }

    /// Removes the entries up to `log_id`, inclusive, and deletes the
    /// write-ahead log's segments that hold nothing still needed. When
    /// segments go, the vote and committed log id are first rewritten (with
    /// the purge record, in one durable batch) so they survive.
    pub async fn purge_upto(&mut self, log_id: LogIdOf<C>) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        if let Some(multi) = &self.multi {
            // A group of a multi-log: the purge record is all this group
            // writes; the multi-log deletes what no group needs any more.
            {
                let mut st = shared.state.lock();
                st.check_live()?;
                if st.purged.as_ref().is_some_and(|p| p.index >= log_id.index) {
                    return Ok(());
                }
                let value = record::encode(&log_id).map_err(encode("log id"))?;
                let seq = shared.wal.put_nowait(&shared.keys.purge(), &value)?;
                st.purge(log_id.clone());
                st.purge_seq = Some(seq);
            }
            let multi = Arc::clone(multi);
            match blocking(move || multi.maintain()).await {
                Ok(done) => done.log(),
                Err(error) => tracing::warn!(%error, "multi-log retention failed"),
            }
            return Ok(());
        }
        let (durable, cut) = {
            let mut st = shared.state.lock();
            if st.purged.as_ref().is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            // The oldest record still needed after the purge: the first
            // entry kept, or (log now empty) the purge record itself.
            let cut = st
                .index
                .seq(log_id.index.saturating_add(1))
                .unwrap_or_else(|| shared.wal.next_seq());
            let retain = removable_before(&shared.wal.segments(), cut);
            let mut batch = WriteBatch::new();
            let keys = &shared.keys;
            batch.put(
                &keys.purge(),
                &record::encode(&log_id).map_err(encode("log id"))?,
            );
            if retain {
                if let Some(vote) = &st.vote {
                    batch.put(&keys.vote(), &record::encode(vote).map_err(encode("vote"))?);
                }
                if st.committed.is_some() {
                    let committed = record::encode(&st.committed).map_err(encode("log id"))?;
                    batch.put(&keys.committed(), &committed);
                }
            }
            let first = shared.wal.write_batch_nowait(&batch)?;
            st.purge(log_id.clone());
            let last = Seq::new(first.get() + batch.len() as u64 - 1);
            (retain.then(|| self.when_durable(last)), cut)
        };
        let Some(durable) = durable else {
            // Nothing to delete: the purge record rides on the next fsync.
            return Ok(());
        };
        durable.await?;
        // A failed deletion leaves old segments behind (ironwal keeps them
        // listed, so the next purge retries) but the log stays correct:
        // Raft need not stop for it.
        match blocking(move || Ok(shared.wal.remove_segments_before(cut)?)).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::debug!(segments = removed.len(), upto = %log_id, "purged segments");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, upto = %log_id, "could not delete purged segments")
            }
        }
        Ok(())
    }
}

/// Whether some sealed segment holds only records below `cut`.
pub(crate) fn removable_before(segments: &[SegmentInfo], cut: Seq) -> bool {
    segments
        .first()
        .is_some_and(|s| !s.active && s.last_seq.is_none_or(|last| last < cut))
}

pub(crate) fn encode(what: &'static str) -> impl Fn(postcard::Error) -> Error {
    move |e| Error::Encode {
        what,
        reason: e.to_string(),
    }
}

/// Runs blocking work off the async threads when a tokio runtime is there.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(work)
            .await
            .map_err(|e| Error::Task(e.to_string()))?,
        Err(_) => work(),
    }
}

/// `range` as `start..end`.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C> Shared<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    /// The entries present in `start..end`: the cached ones from memory,
    /// the others read back from the log (off the async threads).
    async fn entries(self: &Arc<Self>, start: u64, end: u64) -> Result<Vec<C::Entry>> {
        self.entries_racing(start, end, || ()).await
    }

    /// [`Shared::entries`], running `meanwhile` between locating the
    /// entries and reading them (tests race a retention pass there).
    pub(crate) async fn entries_racing(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        mut meanwhile: impl FnMut(),
    ) -> Result<Vec<C::Entry>> {
        // A multi-log's retention may move entries forward and delete the
        // segments they were in while they are read: then read them again
        // from where they are now. Each pass needs a rewrite to finish in
        // between, so a few attempts suffice.
        const ATTEMPTS: usize = 4;
        let mut attempt = 1;
        loop {
            let (start, seqs, cached) = self.locate(start, end);
            if seqs.is_empty() {
                return Ok(cached);
            }
            meanwhile();
            let shared = Arc::clone(self);
            let wanted = seqs.clone();
            let read = blocking(move || shared.read_back(start, &wanted)).await;
            let mut entries = match read {
                Ok(entries) => entries,
                // A purge may have deleted the segments meanwhile: then the
                // entries are gone, as the caller will see from the log state.
                Err(_) if self.state.lock().index.first_index() > start => return Ok(Vec::new()),
                Err(_) if attempt < ATTEMPTS && self.locate(start, end).1 != seqs => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if entries.len() == seqs.len() {
                entries.extend(cached);
            }
            return Ok(entries);
        }
    }

    /// Where the entries present in `start..end` are: the first index
    /// present from `start`, the sequences of those not cached, and the
    /// cached ones.
    fn locate(&self, start: u64, end: u64) -> (u64, Vec<Seq>, Vec<C::Entry>) {
        let st = self.state.lock();
        let start = start.max(st.index.first_index());
        let end = end.min(st.index.end());
        if st.index.is_empty() || start >= end {
            return (start, Vec::new(), Vec::new());
        }
        let cache_first = st.cache_first();
        let skip = start.saturating_sub(cache_first) as usize;
        let take = end.saturating_sub(start.max(cache_first)) as usize;
        let cached: Vec<C::Entry> = st
            .cache
            .iter()
            .skip(skip)
            .take(take)
            .map(|(e, _)| e.clone())
            .collect();
        (start, st.index.seqs(start, end.min(cache_first)), cached)
    }

    /// Reads the entries at `seqs` (those of `start..`) from the log. The
    /// sequences are read in log order (a multi-log's compaction moves
    /// entries forward, so they need not ascend with the index), and a
    /// wide gap between two of them (other groups' records in a multi-log)
    /// is skipped by starting a new reader at the next one.
    fn read_back(&self, start: u64, seqs: &[Seq]) -> Result<Vec<C::Entry>> {
        /// Records worth reading through rather than seeking over.
        const SEEK_GAP: u64 = 256;
        let mut order: Vec<(Seq, usize)> = seqs.iter().copied().zip(0..).collect();
        order.sort_unstable();
        let mut out: Vec<Option<C::Entry>> = seqs.iter().map(|_| None).collect();
        let mut reader: Option<ironwal::LogReader> = None;
        // The sequence the reader will yield next, at the earliest.
        let mut at = Seq::ZERO;
        for (want, slot) in order {
            let missing = || Error::Missing {
                index: start + slot as u64,
                seq: want,
            };
            let reader = match reader.as_mut() {
                Some(r) if want.get() <= at.get().saturating_add(SEEK_GAP) => r,
                _ => reader.insert(self.wal.replay(want)?),
            };
            loop {
                let Some(entry) = reader.next_entry()? else {
                    return Err(missing());
                };
                at = Seq::new(entry.seq.get().saturating_add(1));
                if entry.seq < want {
                    continue;
                }
                if entry.seq > want {
                    return Err(missing());
                }
                let value = entry.value.unwrap_or_default();
                let decoded = record::decode(value).map_err(|reason| Error::Decode {
                    seq: entry.seq,
                    reason,
                })?;
                if let Some(out) = out.get_mut(slot) {
                    *out = Some(decoded);
                }
                break;
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

fn read_error<NID: openraft::NodeId>(e: Error) -> StorageError<NID> {
    e.storage(ErrorSubject::Logs, ErrorVerb::Read)
}

fn write_error<NID: openraft::NodeId>(e: Error) -> StorageError<NID> {
    e.storage(ErrorSubject::Logs, ErrorVerb::Write)
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = bounds(&range);
        self.shared.entries(start, end).await.map_err(read_error)
    }
}

impl<C> RaftLogReader<C> for LogStoreReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = bounds(&range);
        self.shared.entries(start, end).await.map_err(read_error)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    type LogReader = LogStoreReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        Ok(self.shared.state.lock().log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), StorageError<C::NodeId>> {
        self.write_vote(vote)
            .await
            .map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, StorageError<C::NodeId>> {
        Ok(self.shared.state.lock().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<C>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.write_committed(committed).map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, StorageError<C::NodeId>> {
        Ok(self.shared.state.lock().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let last = self.write_entries(entries).map_err(write_error)?;
        let last = last.unwrap_or_else(|| self.shared.wal.last_seq());
        let previous = self.previous_flush.take();
        if self.sync_on_append {
            // The calling thread leads the fdatasync (or joins the group
            // commit in flight); the entries are durable before it returns.
            let result = self.shared.wal.wait_durable(last);
            if let Some(previous) = previous {
                // Callbacks complete in order: an earlier append's task is
                // woken by this very sync.
                let _ = previous.await;
            }
            callback.log_io_completed(result.map_err(|e| Error::from(e).into_io()));
            return Ok(());
        }
        let durable = self.when_durable(last);
        let (done, next) = oneshot::channel();
        self.previous_flush = Some(next);
        // Detached: the task lives on until the callback is called.
        drop(C::AsyncRuntime::spawn(async move {
            let result = durable.await;
            if let Some(previous) = previous {
                // An error only means that task is gone; order is kept anyway.
                let _ = previous.await;
            }
            callback.log_io_completed(result.map_err(Error::into_io));
            let _ = done.send(());
        }));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogIdOf<C>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "truncating the Raft log");
        self.truncate_from(log_id.index)
            .await
            .map_err(|e| e.storage(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "purging the Raft log");
        self.purge_upto(log_id.clone())
            .await
            .map_err(|e| e.storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}
