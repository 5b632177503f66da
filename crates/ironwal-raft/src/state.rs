//! The store's state in memory, and the one-pass replay that rebuilds it
//! from the write-ahead log. No writes: `store` owns every change.

use std::collections::VecDeque;
use std::fmt;

use ironwal::{Op, Seq, Wal};
use openraft::{LogState, RaftTypeConfig};

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
        }
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

/// Replays the whole log once, rebuilding the state, and warms the cache
/// with up to `cache_bytes` of the newest entries.
pub(crate) fn recover<C: RaftTypeConfig>(
    wal: &Wal,
    cache_bytes: usize,
) -> Result<(State<C>, Recovered<C>)> {
    let mut st = State::<C>::new();
    let mut tail = Tail {
        entries: VecDeque::new(),
        bytes: 0,
        budget: cache_bytes,
    };
    let (mut records, mut entry_records, mut truncations, mut purges) = (0, 0, 0, 0);
    let mut reader = wal.replay(Seq::ZERO)?;
    while let Some(entry) = reader.next_entry()? {
        records += 1;
        let seq = entry.seq;
        let bad = |reason: String| Error::Decode { seq, reason };
        if entry.op != Op::Put {
            return Err(bad(format!("unexpected {:?} operation", entry.op)));
        }
        let value = entry.value.unwrap_or_default();
        match record::decode_key::<NodeIdOf<C>>(entry.key).map_err(bad)? {
            Key::Entry { index, leader } => {
                entry_records += 1;
                if !st.index.is_empty() && index < st.index.end() {
                    // An append that replaced a suffix writes a truncation
                    // first; honour the same rule even without one.
                    st.index.truncate(index);
                    tail.truncate(index);
                }
                tail.push(index, seq, value);
                st.index
                    .push(index, leader, seq)
                    .map_err(|expected| Error::Hole {
                        seq,
                        expected,
                        found: index,
                    })?;
            }
            Key::Truncate { index } => {
                truncations += 1;
                st.index.truncate(index);
                tail.truncate(index);
            }
            Key::Purge => {
                purges += 1;
                let log_id: LogIdOf<C> = record::decode(value).map_err(bad)?;
                tail.purge(log_id.index);
                st.purge(log_id);
            }
            Key::Vote => st.vote = Some(record::decode(value).map_err(bad)?),
            Key::Committed => st.committed = record::decode(value).map_err(bad)?,
        }
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
