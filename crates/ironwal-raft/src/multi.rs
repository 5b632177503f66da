//! [`MultiLog`]: the Raft logs of many groups in one write-ahead log, so
//! that one fsync covers every group that appended meanwhile.
//!
//! Each group's records are the single-group records of
//! [`LogStore`](crate::LogStore) behind a group prefix. Retention is the
//! multi-log's: it deletes the oldest segments once no group needs any
//! record in them, and when the oldest segments hold mostly dead records
//! it first writes the live ones forward (moved copies of entries, fresh
//! copies of the latest vote, committed and purge records).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ironwal::{Op, SegmentInfo, Seq, Wal, WriteBatch};
use openraft::RaftTypeConfig;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::record::{self, Keys};
use crate::state::{Recovered, Replay, State};
use crate::store::{encode, removable_before, LogStore, Shared};

/// How a [`MultiLog`] is opened.
///
/// ```
/// use ironwal_raft::MultiLogOptions;
///
/// let options = MultiLogOptions::default()
///     .rewrite_live_ratio(0.25)
///     .wal(ironwal::Options::default().max_segment_size(32 * 1024 * 1024));
/// assert_eq!(options.rewrite_live_ratio, 0.25);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MultiLogOptions {
    /// Options of the shared write-ahead log.
    pub wal: ironwal::Options,
    /// Encoded bytes of recent entries each group keeps in memory to serve
    /// reads without going back to the log. Default 128 KiB (128 MiB for a
    /// thousand groups at most).
    pub cache_bytes: usize,
    /// As [`StoreOptions::sync_on_append`](crate::StoreOptions::sync_on_append):
    /// whether a group's `append` leads the fdatasync on the calling
    /// thread. Default `false`: with many groups on a few async threads,
    /// each append's wait goes to the log's background syncer, so every
    /// group appending meanwhile shares one fsync and no thread blocks.
    pub sync_on_append: bool,
    /// The retention policy: the oldest segments are rewritten (their live
    /// records copied forward, then the segments deleted) once live records
    /// are at most this share of their records. Then every run of oldest
    /// sealed segments is more than this share live, so the sealed
    /// segments hold fewer than `live records / ratio` records: about
    /// `live bytes / ratio` on disk plus the active segment. Default 0.5
    /// (at most twice the live data, each rewrite copying at most as much
    /// as it frees); 0 never rewrites.
    pub rewrite_live_ratio: f64,
}

impl Default for MultiLogOptions {
    fn default() -> Self {
        MultiLogOptions {
            wal: ironwal::Options::default(),
            cache_bytes: 128 * 1024,
            sync_on_append: false,
            rewrite_live_ratio: 0.5,
        }
    }
}

impl MultiLogOptions {
    /// Sets [`MultiLogOptions::wal`].
    pub fn wal(mut self, wal: ironwal::Options) -> Self {
        self.wal = wal;
        self
    }

    /// Sets [`MultiLogOptions::cache_bytes`].
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`MultiLogOptions::sync_on_append`].
    pub fn sync_on_append(mut self, inline: bool) -> Self {
        self.sync_on_append = inline;
        self
    }

    /// Sets [`MultiLogOptions::rewrite_live_ratio`] (clamped to 0..=1).
    pub fn rewrite_live_ratio(mut self, ratio: f64) -> Self {
        self.rewrite_live_ratio = ratio;
        self
    }
}

/// What a retention pass ([`MultiLog::compact`]) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// Segments deleted.
    pub segments_removed: usize,
    /// Live entries copied forward out of the segments deleted.
    pub entries_moved: u64,
    /// Their encoded bytes.
    pub bytes_moved: u64,
    /// Latest vote, committed and purge records copied forward.
    pub metadata_rewritten: u64,
}

impl Compaction {
    fn add(&mut self, other: &Compaction) {
        self.segments_removed += other.segments_removed;
        self.entries_moved += other.entries_moved;
        self.bytes_moved += other.bytes_moved;
        self.metadata_rewritten += other.metadata_rewritten;
    }

    pub(crate) fn log(&self) {
        if self.segments_removed > 0 {
            tracing::debug!(
                segments = self.segments_removed,
                moved = self.entries_moved,
                bytes = self.bytes_moved,
                "multi-log retention"
            );
        }
    }
}

/// What opening a [`MultiLog`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultiRecovered {
    /// Groups with records in the log (removed ones not counted).
    pub groups: usize,
    /// Records read.
    pub records: u64,
    /// Entries present, all groups together.
    pub entries: u64,
    /// Segments of the write-ahead log.
    pub segments: usize,
    /// Whether the write-ahead log's recovery dropped a torn tail.
    pub torn_tail: bool,
}

impl fmt::Display for MultiRecovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} groups, {} entries; {} records in {} segments{}",
            self.groups,
            self.entries,
            self.records,
            self.segments,
            if self.torn_tail {
                ", torn tail dropped"
            } else {
                ""
            }
        )
    }
}

/// Many Raft groups' logs in one ironwal [`Wal`], as raft-engine keeps a
/// TiKV node's regions: [`MultiLog::group`] hands out a
/// [`LogStore`] per group id that implements openraft's
/// `RaftLogStorage` and `RaftLogReader` as a store of its own does, and
/// every group's appends share the log's group commit, one fdatasync for
/// all the groups that appended meanwhile (a group's callback fires once
/// its own entries are durable).
///
/// Opening replays the log once and rebuilds every group, keeping per
/// entry only its sequence number (8 bytes) and per group its leader
/// changes, its metadata and a cache of up to
/// [`MultiLogOptions::cache_bytes`] of recent entries. Retention spans the
/// groups: a segment goes once no group needs a record in it, and a group
/// that lags or never purges does not pin the disk, see
/// [`MultiLogOptions::rewrite_live_ratio`] and [`MultiLog::compact`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use ironwal_raft::kv::{KvRequest, KvTypeConfig};
/// use ironwal_raft::{MultiLog, MultiLogOptions};
/// use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
/// use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
///
/// let entry = |index| Entry::<KvTypeConfig> {
///     log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
///     payload: EntryPayload::Normal(KvRequest::Set { key: "k".into(), value: "v".into() }),
/// };
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let log = MultiLog::<KvTypeConfig>::open(dir.path(), MultiLogOptions::default())?;
///     let (mut a, mut b) = (log.group(1), log.group(2));
///     a.blocking_append((1..=3).map(entry)).await?;
///     b.blocking_append((1..=5).map(entry)).await?;
///     b.save_vote(&Vote::new(4, 2)).await?;
///     log.close()?;
///     drop((a, b, log));
///
///     let log = MultiLog::<KvTypeConfig>::open(dir.path(), MultiLogOptions::default())?;
///     assert_eq!(log.groups(), vec![1, 2]);
///     let mut b = log.group(2);
///     assert_eq!(b.get_log_state().await?.last_log_id.map(|id| id.index), Some(5));
///     assert_eq!(b.read_vote().await?, Some(Vote::new(4, 2)));
///     assert_eq!(log.group(1).recovered().entries, 3);
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok(()) }
/// ```
pub struct MultiLog<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

/// What the multi-log and its groups' stores share.
pub(crate) struct Inner<C: RaftTypeConfig> {
    wal: Arc<Wal>,
    options: MultiLogOptions,
    sync_on_append: bool,
    groups: RwLock<BTreeMap<u64, Arc<Shared<C>>>>,
    /// Held by a retention pass: one at a time, and segments are deleted
    /// only by a pass that knows what it moved is durable.
    retention: Mutex<()>,
    /// What retention passes did since the log was opened.
    totals: Mutex<Compaction>,
    /// A purge asked for a pass.
    pending: AtomicBool,
    recovered: MultiRecovered,
}

impl<C: RaftTypeConfig> fmt::Debug for MultiLog<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLog")
            .field("dir", &self.inner.wal.dir())
            .field("groups", &self.inner.groups.read().len())
            .finish_non_exhaustive()
    }
}

impl<C> MultiLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    /// Opens (creating if needed) the multi-log in `dir` and replays it in
    /// one pass, rebuilding every group.
    pub fn open(dir: impl AsRef<Path>, options: MultiLogOptions) -> Result<Self> {
        let wal = Arc::new(Wal::open(dir, options.wal.clone())?);
        let mut replays: BTreeMap<u64, Replay<C>> = BTreeMap::new();
        let mut records = 0;
        let mut reader = wal.replay(Seq::ZERO)?;
        while let Some(entry) = reader.next_entry()? {
            records += 1;
            let seq = entry.seq;
            let bad = |reason: String| Error::Decode { seq, reason };
            if entry.op != Op::Put {
                return Err(bad(format!("unexpected {:?} operation", entry.op)));
            }
            let (group, key) = record::split_group(entry.key).map_err(bad)?;
            replays
                .entry(group)
                .or_insert_with(|| Replay::new(options.cache_bytes))
                .apply(seq, key, entry.value.unwrap_or_default())?;
        }
        drop(reader);
        let mut groups = Vec::with_capacity(replays.len());
        for (id, replay) in replays {
            if !replay.removed {
                groups.push((id, replay.finish(&wal)?));
            }
        }
        let recovered = MultiRecovered {
            groups: groups.len(),
            records,
            entries: groups.iter().map(|(_, (_, r))| r.entries).sum(),
            segments: wal.segments().len(),
            torn_tail: wal.recovery_report().torn_tail().is_some(),
        };
        tracing::info!(dir = %wal.dir().display(), "opened multi-raft log: {recovered}");
        let sync_on_append =
            options.sync_on_append && options.wal.sync_policy == ironwal::SyncPolicy::Always;
        let groups = groups
            .into_iter()
            .map(|(id, (state, recovered))| {
                let shared = Shared {
                    wal: Arc::clone(&wal),
                    keys: Keys::group(id),
                    cache_bytes: options.cache_bytes,
                    state: Mutex::new(state),
                    recovered,
                };
                (id, Arc::new(shared))
            })
            .collect();
        let inner = Inner {
            wal,
            options,
            sync_on_append,
            groups: RwLock::new(groups),
            retention: Mutex::new(()),
            totals: Mutex::new(Compaction::default()),
            pending: AtomicBool::new(false),
            recovered,
        };
        Ok(MultiLog {
            inner: Arc::new(inner),
        })
    }

    /// The store of group `id`, created empty if the log holds nothing of
    /// it. Use one store per group at a time (openraft's log storage has
    /// a single writer); its readers ([`LogStore::reader`]) may be many.
    /// The stores keep the log open: it closes when the last is dropped
    /// (or at once with [`MultiLog::close`]).
    pub fn group(&self, id: u64) -> LogStore<C> {
        let inner = &self.inner;
        LogStore::on(
            inner.shared(id),
            inner.sync_on_append,
            Some(Arc::clone(inner)),
        )
    }

    /// The groups the log holds, ascending.
    pub fn groups(&self) -> Vec<u64> {
        self.inner.groups.read().keys().copied().collect()
    }

    /// Removes group `id` (a region moved away, a shard dropped): durably
    /// records its removal, after which its records are dead and its
    /// stores fail every write with [`Error::GroupRemoved`]. Returns
    /// whether the log held the group.
    pub fn remove_group(&self, id: u64) -> Result<bool> {
        let Some(shared) = self.inner.groups.read().get(&id).cloned() else {
            return Ok(false);
        };
        let seq = {
            let mut st = shared.state.lock();
            st.check_live()?;
            let seq = self.inner.wal.put_nowait(&shared.keys.removed(), &[])?;
            st.removed = Some(id);
            seq
        };
        self.inner.groups.write().remove(&id);
        self.inner.wal.wait_durable(seq)?;
        Ok(true)
    }

    /// A retention pass, as each purge runs one: deletes the oldest
    /// segments no group needs; then, if the oldest segments are at most
    /// [`MultiLogOptions::rewrite_live_ratio`] live, copies their live
    /// records forward, waits until the copies are durable, and deletes
    /// them. A crash at any point loses nothing: until the copies are
    /// durable the originals stay, and a replay takes whichever it finds
    /// last.
    pub fn compact(&self) -> Result<Compaction> {
        let _pass = self.inner.retention.lock();
        self.inner.compact()
    }

    /// What every retention pass since the log was opened did together,
    /// those that purges ran and those of [`MultiLog::compact`].
    pub fn retention_totals(&self) -> Compaction {
        self.inner.totals.lock().clone()
    }

    /// What opening the log found.
    pub fn recovered(&self) -> &MultiRecovered {
        &self.inner.recovered
    }

    /// The write-ahead log's counters (appends, fsyncs, group sizes, sync
    /// latencies, segments).
    pub fn wal_metrics(&self) -> ironwal::Metrics {
        self.inner.wal.metrics()
    }

    /// The write-ahead log's segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.wal.segments()
    }

    /// Entries present in all groups together.
    pub fn entries(&self) -> u64 {
        let groups = self.inner.groups.read();
        groups.values().map(|g| g.state.lock().index.len()).sum()
    }

    /// Syncs and closes the write-ahead log, releasing its directory lock.
    /// Later writes of every group fail.
    pub fn close(&self) -> Result<()> {
        Ok(self.inner.wal.close()?)
    }
}

/// A live record below a retention cut: an entry of a group, or metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Entry { group: u64, index: u64 },
    Metadata,
}

/// Moved entries read back are written forward in chunks of this size.
const MOVE_CHUNK: usize = 4 * 1024 * 1024;

impl<C> Inner<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone,
{
    fn shared(&self, id: u64) -> Arc<Shared<C>> {
        if let Some(shared) = self.groups.read().get(&id) {
            return Arc::clone(shared);
        }
        let mut groups = self.groups.write();
        let shared = groups.entry(id).or_insert_with(|| {
            Arc::new(Shared {
                wal: Arc::clone(&self.wal),
                keys: Keys::group(id),
                cache_bytes: self.options.cache_bytes,
                state: Mutex::new(State::new()),
                recovered: Recovered::nothing(self.wal.segments().len()),
            })
        });
        Arc::clone(shared)
    }

    fn all(&self) -> Vec<Arc<Shared<C>>> {
        self.groups.read().values().cloned().collect()
    }

    /// A retention pass after a purge. When one is already running, it is
    /// asked to run again once done (it may have read the groups' needs
    /// before this purge), instead of waiting for it here.
    pub(crate) fn maintain(&self) -> Result<Compaction> {
        self.pending.store(true, Ordering::SeqCst);
        let mut done = Compaction::default();
        while self.pending.load(Ordering::SeqCst) {
            // Whoever holds the lock checks `pending` again after releasing it.
            let Some(_pass) = self.retention.try_lock() else {
                break;
            };
            if !self.pending.swap(false, Ordering::SeqCst) {
                break;
            }
            done.add(&self.compact()?);
        }
        Ok(done)
    }

    /// The lowest sequence any group needs; the next sequence if none
    /// needs anything. Records written meanwhile only come after it.
    fn low_water(&self) -> Seq {
        let mut low = self.wal.next_seq();
        for group in self.all() {
            if let Some(seq) = group.state.lock().low_water() {
                low = low.min(seq);
            }
        }
        low
    }

    /// Deletes the segments before `cut` once everything written so far,
    /// which holds whatever replaced them, is durable.
    fn remove_before(&self, cut: Seq) -> Result<usize> {
        if !removable_before(&self.wal.segments(), cut) {
            return Ok(0);
        }
        let last = self.wal.last_seq();
        if last > Seq::ZERO {
            self.wal.wait_durable(last)?;
        }
        Ok(self.wal.remove_segments_before(cut)?.len())
    }

    fn compact(&self) -> Result<Compaction> {
        let mut done = Compaction::default();
        let result = self.compact_into(&mut done);
        self.totals.lock().add(&done);
        result.map(|()| done)
    }

    fn compact_into(&self, done: &mut Compaction) -> Result<()> {
        done.segments_removed = self.remove_before(self.low_water())?;
        let ratio = self.options.rewrite_live_ratio.clamp(0.0, 1.0);
        let segments = self.wal.segments();
        // Only sealed segments are candidates.
        let Some(limit) = segments
            .iter()
            .rev()
            .filter(|s| !s.active)
            .find_map(|s| s.last_seq)
            .map(|last| Seq::new(last.get() + 1))
        else {
            return Ok(());
        };
        let needs = self.needs_below(limit);
        let Some(cut) = rewrite_cut(&segments, &needs, ratio) else {
            return Ok(());
        };
        let needs: Vec<(Seq, Need)> = needs.into_iter().take_while(|(s, _)| *s < cut).collect();
        self.move_entries(&needs, done)?;
        self.rewrite_metadata(cut, done)?;
        // Defensive: delete nothing a group still needs.
        let low = self.low_water();
        if low < cut {
            tracing::warn!(%low, %cut, "multi-log compaction left records behind; keeping them");
            return Ok(());
        }
        done.segments_removed += self.remove_before(cut)?;
        Ok(())
    }

    /// Every record some group needs below `limit`, in log order.
    fn needs_below(&self, limit: Seq) -> Vec<(Seq, Need)> {
        let mut needs = Vec::new();
        for group in self.all() {
            let st = group.state.lock();
            if st.removed.is_some() {
                continue;
            }
            let id = record_group(&group);
            needs.extend(
                st.index
                    .below(limit)
                    .into_iter()
                    .map(|(index, seq)| (seq, Need::Entry { group: id, index })),
            );
            needs.extend(
                [st.vote_seq, st.committed_seq, st.purge_seq]
                    .into_iter()
                    .flatten()
                    .filter(|&s| s < limit)
                    .map(|s| (s, Need::Metadata)),
            );
        }
        needs.sort_unstable();
        needs
    }

    /// Reads the live entries `needs` names (all below the cut) and writes
    /// them forward, a chunk at a time, each group's share of a chunk as
    /// one batch.
    fn move_entries(&self, needs: &[(Seq, Need)], done: &mut Compaction) -> Result<()> {
        let mut wanted = needs.iter().filter_map(|(seq, need)| match need {
            Need::Entry { group, index } => Some((*seq, *group, *index)),
            Need::Metadata => None,
        });
        let Some(mut next) = wanted.next() else {
            return Ok(());
        };
        let mut chunk: Vec<(u64, u64, Seq, Vec<u8>)> = Vec::new();
        let mut chunk_bytes = 0;
        let mut reader = self.wal.replay(next.0)?;
        loop {
            let missing = || Error::Missing {
                index: next.2,
                seq: next.0,
            };
            let Some(entry) = reader.next_entry()? else {
                return Err(missing());
            };
            if entry.seq < next.0 {
                continue;
            }
            if entry.seq > next.0 {
                return Err(missing());
            }
            let value = entry.value.unwrap_or_default();
            chunk_bytes += value.len();
            chunk.push((next.1, next.2, next.0, value.to_vec()));
            if chunk_bytes >= MOVE_CHUNK {
                self.write_moved(std::mem::take(&mut chunk), done)?;
                chunk_bytes = 0;
            }
            match wanted.next() {
                Some(want) => next = want,
                None => break,
            }
        }
        self.write_moved(chunk, done)
    }

    /// Writes moved copies of `chunk`'s entries that are still where they
    /// were read, and points each group's index at them.
    fn write_moved(
        &self,
        mut chunk: Vec<(u64, u64, Seq, Vec<u8>)>,
        done: &mut Compaction,
    ) -> Result<()> {
        chunk.sort_unstable_by_key(|(group, index, _, _)| (*group, *index));
        for run in chunk.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(id, ..)) = run.first() else {
                continue;
            };
            let Some(group) = self.groups.read().get(&id).cloned() else {
                continue; // removed meanwhile
            };
            let mut st = group.state.lock();
            if st.removed.is_some() {
                continue;
            }
            let mut batch = WriteBatch::new();
            let mut moved = Vec::new();
            for (_, index, seq, value) in run {
                // Truncated, purged or rewritten since it was read: dead.
                if st.index.seq(*index) != Some(*seq) {
                    continue;
                }
                let Some(log_id) = st.index.log_id(*index) else {
                    continue;
                };
                let key = (group.keys)
                    .moved(*index, &log_id.leader_id)
                    .map_err(encode("key"))?;
                batch.put(&key, value);
                done.bytes_moved += value.len() as u64;
                moved.push((*index, log_id.leader_id));
            }
            if batch.is_empty() {
                continue;
            }
            let first = self.wal.write_batch_nowait(&batch)?;
            for ((index, leader), seq) in moved.iter().zip(first.get()..) {
                st.index.relocate(*index, leader, Seq::new(seq));
            }
            done.entries_moved += moved.len() as u64;
        }
        Ok(())
    }

    /// Copies forward each group's latest vote, committed and purge
    /// records that lie below `cut`.
    fn rewrite_metadata(&self, cut: Seq, done: &mut Compaction) -> Result<()> {
        for group in self.all() {
            let mut st = group.state.lock();
            if st.removed.is_some() {
                continue;
            }
            let keys = &group.keys;
            let mut batch = WriteBatch::new();
            let mut which = Vec::new();
            if let (Some(vote), Some(seq)) = (&st.vote, st.vote_seq) {
                if seq < cut {
                    batch.put(&keys.vote(), &record::encode(vote).map_err(encode("vote"))?);
                    which.push(Meta::Vote);
                }
            }
            if st.committed_seq.is_some_and(|seq| seq < cut) {
                let value = record::encode(&st.committed).map_err(encode("log id"))?;
                batch.put(&keys.committed(), &value);
                which.push(Meta::Committed);
            }
            if let (Some(purged), Some(seq)) = (&st.purged, st.purge_seq) {
                if seq < cut {
                    let value = record::encode(purged).map_err(encode("log id"))?;
                    batch.put(&keys.purge(), &value);
                    which.push(Meta::Purge);
                }
            }
            if batch.is_empty() {
                continue;
            }
            let first = self.wal.write_batch_nowait(&batch)?;
            for (meta, seq) in which.iter().zip(first.get()..) {
                let seq = Some(Seq::new(seq));
                match meta {
                    Meta::Vote => st.vote_seq = seq,
                    Meta::Committed => st.committed_seq = seq,
                    Meta::Purge => st.purge_seq = seq,
                }
            }
            done.metadata_rewritten += which.len() as u64;
        }
        Ok(())
    }
}

enum Meta {
    Vote,
    Committed,
    Purge,
}

/// The group id behind a group's keys.
fn record_group<C: RaftTypeConfig>(shared: &Shared<C>) -> u64 {
    shared.keys.group_id().unwrap_or_default()
}

/// Where a rewrite should cut: the end of the longest run of oldest sealed
/// segments whose live records (`needs`, sorted) are at most `ratio` of
/// their records. `None` when no run qualifies or nothing would be freed.
fn rewrite_cut(segments: &[SegmentInfo], needs: &[(Seq, Need)], ratio: f64) -> Option<Seq> {
    if ratio <= 0.0 {
        return None;
    }
    let base = segments.iter().find_map(|s| s.first_seq)?;
    let mut best = None;
    for segment in segments.iter().filter(|s| !s.active) {
        let Some(last) = segment.last_seq else {
            continue;
        };
        let end = Seq::new(last.get() + 1);
        let records = end.get() - base.get();
        let live = needs.partition_point(|(s, _)| *s < end) as u64;
        if (live as f64) <= ratio * records as f64 && live < records {
            best = Some(end);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::kv::{KvRequest, KvTypeConfig};

    fn entry(group: u64, index: u64) -> Entry<KvTypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(KvRequest::Set {
                key: format!("g{group}/{index}"),
                value: "v".repeat(100),
            }),
        }
    }

    /// A read that locates a lagging group's entries, then meets a
    /// retention pass that moves them and deletes their segments before it
    /// reads them, finds them where they went.
    #[test]
    fn a_read_racing_a_retention_pass_finds_the_moved_entries() {
        let dir = tempfile::tempdir().unwrap();
        let options = MultiLogOptions::default().cache_bytes(0).wal(
            ironwal::Options::default()
                .max_segment_size(8 * 1024)
                .preallocate(false),
        );
        let log = MultiLog::<KvTypeConfig>::open(dir.path(), options).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut laggard = log.group(2);
            let durable = laggard
                .append_entries((1..=20).map(|i| entry(2, i)))
                .unwrap();
            durable.await.unwrap();
            let mut busy = log.group(1);
            for i in 1..=400 {
                busy.append_entries([entry(1, i)]).unwrap().await.unwrap();
            }
            busy.purge_upto(LogId::new(CommittedLeaderId::new(1, 1), 400))
                .await
                .unwrap();
            // The purge's own pass may have moved them already: write more
            // so that the next pass moves them again.
            for i in 401..=800 {
                busy.append_entries([entry(1, i)]).unwrap().await.unwrap();
            }
            let shared = log.inner.shared(2);
            let first_seq = shared.state.lock().index.seq(1).unwrap();
            let mut raced = None;
            let read = shared
                .entries_racing(1, 21, || {
                    if raced.is_none() {
                        busy_purge(&log, 800);
                        raced = Some(log.inner.shared(2).state.lock().index.seq(1));
                    }
                })
                .await
                .unwrap();
            assert_ne!(raced, Some(Some(first_seq)), "the pass moved the entries");
            assert!(
                log.segments()[0].first_seq.unwrap() > first_seq,
                "and deleted their segment"
            );
            let keys: Vec<String> = read
                .iter()
                .map(|e| match &e.payload {
                    EntryPayload::Normal(KvRequest::Set { key, .. }) => key.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(
                keys,
                (1..=20).map(|i| format!("g2/{i}")).collect::<Vec<_>>()
            );
        });
    }

    /// Purges group 1 up to `upto` and runs a pass, blocking.
    fn busy_purge(log: &MultiLog<KvTypeConfig>, upto: u64) {
        let shared = log.inner.shared(1);
        let mut st = shared.state.lock();
        let value = record::encode(&LogId::new(CommittedLeaderId::new(1, 1u64), upto)).unwrap();
        let seq = log
            .inner
            .wal
            .put_nowait(&shared.keys.purge(), &value)
            .unwrap();
        st.purge(LogId::new(CommittedLeaderId::new(1, 1), upto));
        st.purge_seq = Some(seq);
        drop(st);
        log.compact().unwrap();
    }
}
