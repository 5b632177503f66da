//! The store's state in memory, and the one-pass replay that rebuilds it
//! from the write-ahead log. No writes: `store` owns every change.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use ironwal::{Op, Seq, Wal};
use openraft::{CommittedLeaderId, LogState, RaftTypeConfig};

use crate::error::{Error, Result};
use crate::index::LogIndex;
use crate::record::{self, Key};
use crate::store::{LogIdOf, NodeIdOf, VoteOf};

/// What opening a [`LogStore`](crate::LogStore) found in the write-ahead log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered<C: RaftTypeConfig> {
    /// Records read (entries and metadata, live or superseded).
    pub records: u64,
    /// Entry records read, including superseded ones.
    pub entry_records: u64,
    /// Truncation records applied.
    pub truncations: u64,
    /// Purge records applied.
    pub purges: u64,
    /// Entries present in the log after replay.
    pub entries: u64,
    /// The lowest index present.
    pub first_index: Option<u64>,
    /// The last log id present.
    pub last_log_id: Option<LogIdOf<C>>,
    /// The saved vote.
    pub vote: Option<VoteOf<C>>,
    /// The saved committed log id.
    pub committed: Option<LogIdOf<C>>,
    /// The last purged log id.
    pub last_purged_log_id: Option<LogIdOf<C>>,
    /// Segments of the write-ahead log.
    pub segments: usize,
    /// Whether the write-ahead log's recovery dropped a torn tail (an
    /// append cut short by a crash, never acknowledged).
    pub torn_tail: bool,
}

impl<C: RaftTypeConfig> Recovered<C> {
    /// What a log (a new group of a multi-log) with no records yields.
    pub(crate) fn nothing(segments: usize) -> Self {
        Recovered {
            records: 0,
            entry_records: 0,
            truncations: 0,
            purges: 0,
            entries: 0,
            first_index: None,
            last_log_id: None,
            vote: None,
            committed: None,
            last_purged_log_id: None,
            segments,
            torn_tail: false,
        }
    }
}

impl<C: RaftTypeConfig> fmt::Display for Recovered<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show =
            |id: &Option<LogIdOf<C>>| id.as_ref().map_or("none".to_owned(), |id| id.to_string());
        write!(
            f,
            "{} entries (first index {}, last log id {}), vote {}, committed {}, purged {}; \
             {} records ({} entries, {} truncations, {} purges) in {} segments{}",
            self.entries,
            self.first_index
                .map_or("none".to_owned(), |i| i.to_string()),
            show(&self.last_log_id),
            self.vote
                .as_ref()
                .map_or("none".to_owned(), |v| v.to_string()),
            show(&self.committed),
            show(&self.last_purged_log_id),
            self.records,
            self.entry_records,
            self.truncations,
            self.purges,
            self.segments,
            if self.torn_tail {
                ", torn tail dropped"
            } else {
                ""
            },
        )
    }
}

/// The log's state in memory, equal to what a replay would rebuild.
pub(crate) struct State<C: RaftTypeConfig> {
    pub(crate) index: LogIndex<NodeIdOf<C>>,
    /// The newest entries with their encoded sizes: a suffix of the index.
    pub(crate) cache: VecDeque<(C::Entry, usize)>,
    pub(crate) cached_bytes: usize,
    pub(crate) vote: Option<VoteOf<C>>,
    pub(crate) committed: Option<LogIdOf<C>>,
    pub(crate) purged: Option<LogIdOf<C>>,
    /// Where the latest vote, committed and purge records are: a
    /// multi-log's compaction keeps them.
    pub(crate) vote_seq: Option<Seq>,
    pub(crate) committed_seq: Option<Seq>,
    pub(crate) purge_seq: Option<Seq>,
    /// The group was removed from its multi-log: writes fail.
    pub(crate) removed: Option<u64>,
}

impl<C: RaftTypeConfig> State<C> {
    pub(crate) fn new() -> Self {
        State {
            index: LogIndex::default(),
            cache: VecDeque::new(),
            cached_bytes: 0,
            vote: None,
            committed: None,
            purged: None,
            vote_seq: None,
            committed_seq: None,
            purge_seq: None,
            removed: None,
        }
    }

    /// Fails once the group has been removed from its multi-log.
    pub(crate) fn check_live(&self) -> Result<()> {
        match self.removed {
            Some(group) => Err(Error::GroupRemoved { group }),
            None => Ok(()),
        }
    }

    /// The lowest sequence this log still needs: its entries' and its
    /// latest metadata records'.
    pub(crate) fn low_water(&mut self) -> Option<Seq> {
        [self.vote_seq, self.committed_seq, self.purge_seq]
            .into_iter()
            .flatten()
            .chain(self.index.min_seq())
            .min()
    }

    /// The index of the oldest cached entry.
    pub(crate) fn cache_first(&self) -> u64 {
        self.index.end() - self.cache.len() as u64
    }

    pub(crate) fn truncate(&mut self, index: u64) {
        self.index.truncate(index);
        self.trim_cache_back();
    }

    pub(crate) fn purge(&mut self, log_id: LogIdOf<C>) {
        self.index.purge(log_id.index);
        if self.purged.as_ref().is_none_or(|p| p.index < log_id.index) {
            self.purged = Some(log_id);
        }
        while self.cache.len() as u64 > self.index.len() {
            if let Some((_, len)) = self.cache.pop_front() {
                self.cached_bytes -= len;
            }
        }
    }

    /// Drops cached entries the index no longer holds at the end.
    pub(crate) fn trim_cache_back(&mut self) {
        // The cache ended at the old end; drop what lies past the new one.
        let keep = self.cache.len().min(self.index.len() as usize);
        while self.cache.len() > keep {
            if let Some((_, len)) = self.cache.pop_back() {
                self.cached_bytes -= len;
            }
        }
    }

    pub(crate) fn cache_push(&mut self, entry: C::Entry, len: usize, budget: usize) {
        self.cache.push_back((entry, len));
        self.cached_bytes += len;
        while self.cached_bytes > budget {
            match self.cache.pop_front() {
                Some((_, len)) => self.cached_bytes -= len,
                None => break,
            }
        }
    }

    pub(crate) fn log_state(&self) -> LogState<C> {
        LogState {
            last_purged_log_id: self.purged.clone(),
            last_log_id: self.index.last_log_id().or_else(|| self.purged.clone()),
        }
    }
}

/// The encoded values of the newest entries met during replay, within the
/// cache's budget, to warm the cache once replay is done: a restarted node
/// then serves its recent entries (which openraft reads at once) from
/// memory.
struct Tail {
    entries: VecDeque<(u64, Seq, Vec<u8>)>,
    bytes: usize,
    budget: usize,
}

impl Tail {
    fn push(&mut self, index: u64, seq: Seq, value: &[u8]) {
        if value.len() > self.budget {
            // The cache is a contiguous suffix: nothing older can join it.
            self.entries.clear();
            self.bytes = 0;
            return;
        }
        self.entries.push_back((index, seq, value.to_vec()));
        self.bytes += value.len();
        while self.bytes > self.budget {
            match self.entries.pop_front() {
                Some((_, _, v)) => self.bytes -= v.len(),
                None => break,
            }
        }
    }

    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.0 >= index) {
            if let Some((_, _, v)) = self.entries.pop_back() {
                self.bytes -= v.len();
            }
        }
    }

    fn purge(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|e| e.0 <= upto) {
            if let Some((_, _, v)) = self.entries.pop_front() {
                self.bytes -= v.len();
            }
        }
    }
}

/// Rebuilds one Raft log's state from its records, in log order: the
/// whole log of a [`LogStore`](crate::LogStore), or one group's records of
/// a multi-log.
pub(crate) struct Replay<C: RaftTypeConfig> {
    st: State<C>,
    tail: Tail,
    /// Moved entries whose original record lies before the first segment
    /// kept: they precede what the index holds and join it at the end.
    orphans: BTreeMap<u64, (CommittedLeaderId<NodeIdOf<C>>, Seq)>,
    /// Whether the last record removed the group (multi-log).
    pub(crate) removed: bool,
    records: u64,
    entry_records: u64,
    truncations: u64,
    purges: u64,
}

impl<C: RaftTypeConfig> Replay<C> {
    pub(crate) fn new(cache_bytes: usize) -> Self {
        Replay {
            st: State::new(),
            tail: Tail {
                entries: VecDeque::new(),
                bytes: 0,
                budget: cache_bytes,
            },
            orphans: BTreeMap::new(),
            removed: false,
            records: 0,
            entry_records: 0,
            truncations: 0,
            purges: 0,
        }
    }

    fn drop_orphans_from(&mut self, index: u64) {
        let _ = self.orphans.split_off(&index);
    }

    /// Applies the record at `seq`, whose key (without any group prefix)
    /// is `key`.
    pub(crate) fn apply(&mut self, seq: Seq, key: &[u8], value: &[u8]) -> Result<()> {
        let bad = |reason: String| Error::Decode { seq, reason };
        self.records += 1;
        self.removed = false;
        let st = &mut self.st;
        match record::decode_key::<NodeIdOf<C>>(key).map_err(bad)? {
            Key::Entry { index, leader } => {
                self.entry_records += 1;
                if !st.index.is_empty() && index < st.index.end() {
                    // An append that replaced a suffix writes a truncation
                    // first; honour the same rule even without one.
                    st.index.truncate(index);
                    self.tail.truncate(index);
                }
                let _ = self.orphans.split_off(&index);
                self.tail.push(index, seq, value);
                st.index
                    .push(index, leader, seq)
                    .map_err(|expected| Error::Hole {
                        seq,
                        expected,
                        found: index,
                    })?;
            }
            Key::Truncate { index } => {
                self.truncations += 1;
                st.index.truncate(index);
                self.tail.truncate(index);
                self.drop_orphans_from(index);
            }
            Key::Purge => {
                self.purges += 1;
                let log_id: LogIdOf<C> = record::decode(value).map_err(bad)?;
                self.tail.purge(log_id.index);
                self.orphans = self.orphans.split_off(&log_id.index.saturating_add(1));
                st.purge(log_id);
                st.purge_seq = Some(seq);
            }
            Key::Vote => {
                st.vote = Some(record::decode(value).map_err(bad)?);
                st.vote_seq = Some(seq);
            }
            Key::Committed => {
                st.committed = record::decode(value).map_err(bad)?;
                st.committed_seq = Some(seq);
            }
            Key::Moved { index, leader } => {
                if st.index.relocate(index, &leader, seq) {
                    return Ok(());
                }
                if let Some(orphan) = self.orphans.get_mut(&index) {
                    if orphan.0 != leader {
                        return Err(bad(format!("moved copies of entry {index} disagree")));
                    }
                    orphan.1 = seq;
                    return Ok(());
                }
                let floor = st.purged.as_ref().map_or(0, |p| p.index.saturating_add(1));
                let before = st.index.is_empty() || index < st.index.first_index();
                if !before || index < floor || st.index.seq(index).is_some() {
                    return Err(bad(format!(
                        "a moved copy of entry {index}, which is not present"
                    )));
                }
                self.orphans.insert(index, (leader, seq));
            }
            Key::Removed => {
                *self = Replay {
                    records: self.records,
                    entry_records: self.entry_records,
                    truncations: self.truncations,
                    purges: self.purges,
                    ..Replay::new(self.tail.budget)
                };
                self.removed = true;
            }
        }
        Ok(())
    }

    /// The state rebuilt, with the cache warmed from the newest entries.
    pub(crate) fn finish(self, wal: &Wal) -> Result<(State<C>, Recovered<C>)> {
        let Replay {
            mut st,
            tail,
            orphans,
            records,
            entry_records,
            truncations,
            purges,
            ..
        } = self;
        // Orphans end right before the first entry present.
        for (index, (leader, seq)) in orphans.into_iter().rev() {
            st.index
                .push_front(index, leader, seq)
                .map_err(|expected| Error::Hole {
                    seq,
                    expected,
                    found: index,
                })?;
        }
        // Keep the longest run of the tail that is a suffix of the index.
        let mut expect = st.index.end();
        let keep = tail
            .entries
            .iter()
            .rev()
            .take_while(|(index, seq, _)| {
                let ok = *index + 1 == expect && st.index.seq(*index) == Some(*seq);
                expect = *index;
                ok
            })
            .count();
        for (_, seq, value) in tail.entries.iter().skip(tail.entries.len() - keep) {
            let entry: C::Entry =
                record::decode(value).map_err(|reason| Error::Decode { seq: *seq, reason })?;
            st.cache.push_back((entry, value.len()));
            st.cached_bytes += value.len();
        }
        let recovered = Recovered {
            records,
            entry_records,
            truncations,
            purges,
            entries: st.index.len(),
            first_index: (!st.index.is_empty()).then(|| st.index.first_index()),
            last_log_id: st.index.last_log_id(),
            vote: st.vote.clone(),
            committed: st.committed.clone(),
            last_purged_log_id: st.purged.clone(),
            segments: wal.segments().len(),
            torn_tail: wal.recovery_report().torn_tail().is_some(),
        };
        Ok((st, recovered))
    }
}

/// Replays the whole log once, rebuilding the state, and warms the cache
/// with up to `cache_bytes` of the newest entries.
pub(crate) fn recover<C: RaftTypeConfig>(
    wal: &Wal,
    cache_bytes: usize,
) -> Result<(State<C>, Recovered<C>)> {
    let mut replay = Replay::<C>::new(cache_bytes);
    let mut reader = wal.replay(Seq::ZERO)?;
    while let Some(entry) = reader.next_entry()? {
        if entry.op != Op::Put {
            return Err(Error::Decode {
                seq: entry.seq,
                reason: format!("unexpected {:?} operation", entry.op),
            });
        }
        replay.apply(entry.seq, entry.key, entry.value.unwrap_or_default())?;
    }
    replay.finish(wal)
}
