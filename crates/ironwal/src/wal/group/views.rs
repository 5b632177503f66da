//! What the rest of the log reads of group commit's state, and retention's
//! edits to it: each takes the lock itself, so callers never do.

use super::Group;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::seq::Seq;
use crate::wal::segments::SegmentMeta;

impl Group {
    pub(in crate::wal) fn next_seq(&self) -> Seq {
        self.state.lock().next_seq
    }

    pub(in crate::wal) fn last_seq(&self) -> Seq {
        self.state.lock().buffered_seq
    }

    pub(in crate::wal) fn durable_seq(&self) -> Seq {
        self.state.lock().durable_seq
    }

    /// The counters, with the log's current position filled in.
    pub(in crate::wal) fn metrics(&self) -> Metrics {
        let st = self.state.lock();
        let mut metrics = st.metrics.clone();
        metrics.segments = st.sealed.len() as u64 + 1;
        metrics.last_seq = st.buffered_seq;
        metrics.durable_seq = st.durable_seq;
        metrics.poisoned = st.poisoned.is_some();
        metrics
    }

    /// The segments in log order, each with the bytes of it that hold the
    /// log (written so far, for the active one, which comes last).
    pub(in crate::wal) fn segments(&self) -> Vec<(SegmentMeta, u64)> {
        let st = self.state.lock();
        let sealed = st.sealed.iter().map(|m| (m.clone(), m.len));
        sealed
            .chain([(st.active.meta.clone(), st.active.written)])
            .collect()
    }

    /// Retention: takes out of the log the sealed segments, oldest first,
    /// whose entries are all below `seq`, except that the last segment
    /// holding entries stays while the active one holds none durable (a
    /// reopen must find the log's highest sequence).
    pub(in crate::wal) fn take_sealed_before(&self, seq: Seq) -> Result<Vec<SegmentMeta>> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        let mut keep_from = st
            .sealed
            .iter()
            .position(|m| m.last_seq.is_some_and(|last| last >= seq))
            .unwrap_or(st.sealed.len());
        let active_durable = st
            .active
            .meta
            .first_seq
            .is_some_and(|first| first <= st.durable_seq);
        if !active_durable {
            if let Some(holder) = st.sealed.iter().rposition(|m| m.last_seq.is_some()) {
                keep_from = keep_from.min(holder);
            }
        }
        Ok(st.sealed.drain(..keep_from).collect())
    }

    /// Puts back, at the front, sealed segments retention took but could
    /// not remove.
    pub(in crate::wal) fn restore_sealed(&self, segments: Vec<SegmentMeta>) {
        self.state.lock().sealed.splice(..0, segments);
    }
}
