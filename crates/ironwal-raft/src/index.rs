//! The in-memory index of the Raft log: for each present index, the
//! sequence of its record in the write-ahead log, and the leader that
//! proposed it. No I/O, no entries.
//!
//! Raft indexes are contiguous, so positions live in a `VecDeque` offset by
//! the first index (8 bytes per entry). Leaders change rarely, so they are
//! kept as runs: the first index each leader proposed.

use std::collections::VecDeque;

use ironwal::Seq;
use openraft::{CommittedLeaderId, LogId, NodeId};

/// Where each Raft index is in the write-ahead log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogIndex<NID: NodeId> {
    /// The index of `seqs[0]`; when empty, the index the next entry may take
    /// (zero on a new log).
    first: u64,
    seqs: VecDeque<Seq>,
    /// `(first index, leader)` runs, ascending; the first run starts at or
    /// before `first` whenever the index is not empty.
    leaders: VecDeque<(u64, CommittedLeaderId<NID>)>,
    /// Whether `seqs` is known to ascend, so its front is its minimum. A
    /// moved entry (multi-log compaction) takes a newer sequence than the
    /// entries after it.
    ascending: bool,
}

impl<NID: NodeId> Default for LogIndex<NID> {
    fn default() -> Self {
        LogIndex {
            first: 0,
            seqs: VecDeque::new(),
            leaders: VecDeque::new(),
            ascending: true,
        }
    }
}

impl<NID: NodeId> LogIndex<NID> {
    /// Number of entries present.
    pub(crate) fn len(&self) -> u64 {
        self.seqs.len() as u64
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// The lowest index present (meaningful when not empty).
    pub(crate) fn first_index(&self) -> u64 {
        self.first
    }

    /// One past the highest index present.
    pub(crate) fn end(&self) -> u64 {
        self.first + self.len()
    }

    /// The sequence of the record holding `index`.
    pub(crate) fn seq(&self, index: u64) -> Option<Seq> {
        let offset = index.checked_sub(self.first)?;
        self.seqs.get(usize::try_from(offset).ok()?).copied()
    }

    /// The sequences of `start..end` (clipped to what is present).
    pub(crate) fn seqs(&self, start: u64, end: u64) -> Vec<Seq> {
        let from = start.max(self.first).saturating_sub(self.first);
        let to = end.min(self.end()).saturating_sub(self.first);
        if from >= to {
            return Vec::new();
        }
        self.seqs
            .range(from as usize..to as usize)
            .copied()
            .collect()
    }

    /// The log id of `index`, if present.
    pub(crate) fn log_id(&self, index: u64) -> Option<LogId<NID>> {
        self.seq(index)?;
        let run = self.leaders.partition_point(|(start, _)| *start <= index);
        let (_, leader) = self.leaders.get(run.checked_sub(1)?)?;
        Some(LogId::new(leader.clone(), index))
    }

    /// The log id of the last entry present.
    pub(crate) fn last_log_id(&self) -> Option<LogId<NID>> {
        self.end().checked_sub(1).and_then(|last| self.log_id(last))
    }

    /// The lowest sequence any present entry is at: what the log must keep.
    pub(crate) fn min_seq(&mut self) -> Option<Seq> {
        if self.ascending {
            return self.seqs.front().copied();
        }
        let min = self.seqs.iter().min().copied();
        if self
            .seqs
            .iter()
            .zip(self.seqs.iter().skip(1))
            .all(|(a, b)| a < b)
        {
            self.ascending = true;
        }
        min
    }

    /// The present entries at sequences below `cut`, as `(index, seq)`.
    pub(crate) fn below(&self, cut: Seq) -> Vec<(u64, Seq)> {
        if self.ascending && self.seqs.front().is_none_or(|&s| s >= cut) {
            return Vec::new();
        }
        (self.first..)
            .zip(self.seqs.iter().copied())
            .filter(|&(_, seq)| seq < cut)
            .collect()
    }

    /// Records that the entry at `index`, proposed by `leader`, is now at
    /// `seq`. Returns whether it was present.
    pub(crate) fn relocate(
        &mut self,
        index: u64,
        leader: &CommittedLeaderId<NID>,
        seq: Seq,
    ) -> bool {
        if self.log_id(index).is_none_or(|id| &id.leader_id != leader) {
            return false;
        }
        let Some(slot) = usize::try_from(index - self.first)
            .ok()
            .and_then(|offset| self.seqs.get_mut(offset))
        else {
            return false;
        };
        *slot = seq;
        self.ascending = false;
        true
    }

    /// Puts the entry `index` in front of the first one, which it must
    /// precede directly (into an empty index any index goes). Returns the
    /// index expected otherwise.
    pub(crate) fn push_front(
        &mut self,
        index: u64,
        leader: CommittedLeaderId<NID>,
        seq: Seq,
    ) -> Result<(), u64> {
        if self.is_empty() {
            return self.push(index, leader, seq);
        }
        if index.checked_add(1) != Some(self.first) {
            return Err(self.first.saturating_sub(1));
        }
        // The first run may start before the first index (after a purge).
        if let Some(front) = self.leaders.front_mut() {
            front.0 = self.first;
        }
        self.first = index;
        self.seqs.push_front(seq);
        self.ascending = false;
        match self.leaders.front_mut() {
            Some(front) if front.1 == leader => front.0 = index,
            _ => self.leaders.push_front((index, leader)),
        }
        Ok(())
    }

    /// Records the entry `index` at `seq`. It must follow the last entry;
    /// into an empty index any index goes. Returns the expected index when
    /// `index` does not follow.
    pub(crate) fn push(
        &mut self,
        index: u64,
        leader: CommittedLeaderId<NID>,
        seq: Seq,
    ) -> Result<(), u64> {
        if self.is_empty() {
            self.first = index;
            self.leaders.clear();
            self.ascending = true;
        } else if index != self.end() {
            return Err(self.end());
        }
        self.seqs.push_back(seq);
        if self.leaders.back().map(|(_, l)| l) != Some(&leader) {
            self.leaders.push_back((index, leader));
        }
        Ok(())
    }

    /// Removes the entries at `index` and above.
    pub(crate) fn truncate(&mut self, index: u64) {
        if index <= self.first {
            self.seqs.clear();
            self.leaders.clear();
            return;
        }
        let keep = (index - self.first).min(self.len());
        self.seqs.truncate(keep as usize);
        while self
            .leaders
            .back()
            .is_some_and(|(start, _)| *start >= index)
        {
            self.leaders.pop_back();
        }
    }

    /// Removes the entries up to `index`, inclusive; the next entry of an
    /// index left empty may not take a lower index than `index + 1`.
    pub(crate) fn purge(&mut self, index: u64) {
        let after = index.saturating_add(1);
        if after <= self.first {
            return;
        }
        if after >= self.end() {
            self.seqs.clear();
            self.leaders.clear();
            self.first = after;
            return;
        }
        self.seqs.drain(..(after - self.first) as usize);
        self.first = after;
        // Keep the run covering the new first index.
        while self
            .leaders
            .get(1)
            .is_some_and(|(start, _)| *start <= after)
        {
            self.leaders.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(term: u64) -> CommittedLeaderId<u64> {
        CommittedLeaderId::new(term, 1)
    }

    /// Entries `range`, the first half by term 1 and the rest by term 2, at
    /// sequence `100 + index`.
    fn index_of(range: std::ops::Range<u64>) -> LogIndex<u64> {
        let mut ix = LogIndex::default();
        let mid = (range.start + range.end) / 2;
        for i in range {
            let term = if i < mid { 1 } else { 2 };
            ix.push(i, leader(term), Seq::new(100 + i)).unwrap();
        }
        ix
    }

    #[test]
    fn log_ids_come_from_leader_runs() {
        let ix = index_of(0..10);
        assert_eq!(ix.log_id(4), Some(LogId::new(leader(1), 4)));
        assert_eq!(ix.log_id(5), Some(LogId::new(leader(2), 5)));
        assert_eq!(ix.last_log_id(), Some(LogId::new(leader(2), 9)));
        assert_eq!(ix.log_id(10), None);
        assert_eq!(ix.leaders.len(), 2);
    }

    #[test]
    fn push_refuses_a_hole() {
        let mut ix = index_of(0..3);
        assert_eq!(ix.push(5, leader(2), Seq::new(1)), Err(3));
        assert_eq!(ix.end(), 3);
    }

    #[test]
    fn truncate_drops_the_suffix_and_its_leaders() {
        let mut ix = index_of(0..10);
        ix.truncate(5);
        assert_eq!(ix.end(), 5);
        assert_eq!(ix.last_log_id(), Some(LogId::new(leader(1), 4)));
        ix.push(5, leader(3), Seq::new(500)).unwrap();
        assert_eq!(ix.log_id(5), Some(LogId::new(leader(3), 5)));
        assert_eq!(ix.seq(5), Some(Seq::new(500)));
    }

    #[test]
    fn truncate_below_the_first_index_empties() {
        let mut ix = index_of(5..10);
        ix.truncate(2);
        assert!(ix.is_empty());
        assert_eq!(ix.last_log_id(), None);
    }

    #[test]
    fn purge_keeps_the_run_covering_the_new_first_index() {
        let mut ix = index_of(0..10);
        ix.purge(6);
        assert_eq!(ix.first_index(), 7);
        assert_eq!(ix.log_id(7), Some(LogId::new(leader(2), 7)));
        assert_eq!(ix.log_id(6), None);
        assert_eq!(ix.leaders.len(), 1);
    }

    #[test]
    fn purge_past_the_end_leaves_the_next_index() {
        let mut ix = index_of(0..10);
        ix.purge(20);
        assert!(ix.is_empty());
        assert_eq!(ix.end(), 21);
    }

    #[test]
    fn moved_entries_keep_their_log_ids_and_the_minimum_is_found() {
        let mut ix = index_of(0..10);
        assert_eq!(ix.min_seq(), Some(Seq::new(100)));
        assert!(ix.relocate(0, &leader(1), Seq::new(500)));
        assert!(!ix.relocate(1, &leader(2), Seq::new(501)), "wrong leader");
        assert!(!ix.relocate(10, &leader(2), Seq::new(501)), "absent");
        assert_eq!(ix.min_seq(), Some(Seq::new(101)));
        assert_eq!(ix.seq(0), Some(Seq::new(500)));
        assert_eq!(
            ix.below(Seq::new(103)),
            vec![(1, Seq::new(101)), (2, Seq::new(102))]
        );
        ix.purge(0);
        assert_eq!(ix.min_seq(), Some(Seq::new(101)));
        assert!(ix.below(Seq::new(101)).is_empty());
    }

    #[test]
    fn push_front_prepends_with_leader_runs() {
        let mut ix = index_of(4..8);
        ix.purge(4);
        assert_eq!(ix.push_front(3, leader(1), Seq::new(900)), Err(4));
        ix.push_front(4, leader(1), Seq::new(901)).unwrap();
        ix.push_front(3, leader(0), Seq::new(902)).unwrap();
        assert_eq!(ix.first_index(), 3);
        assert_eq!(ix.log_id(3), Some(LogId::new(leader(0), 3)));
        assert_eq!(ix.log_id(4), Some(LogId::new(leader(1), 4)));
        assert_eq!(ix.log_id(6), Some(LogId::new(leader(2), 6)));
        assert_eq!(ix.min_seq(), Some(Seq::new(105)));
    }

    #[test]
    fn seqs_are_clipped_to_what_is_present() {
        let ix = index_of(3..8);
        assert_eq!(ix.seqs(0, 5), vec![Seq::new(103), Seq::new(104)]);
        assert_eq!(ix.seqs(7, 100), vec![Seq::new(107)]);
        assert!(ix.seqs(8, 100).is_empty());
        assert!(ix.seqs(5, 5).is_empty());
    }
}
