//! Counters a running log keeps, for applications to export (to
//! Prometheus, logs, whatever they use): see [`Wal::metrics`](crate::Wal::metrics).

use std::fmt;

use crate::seq::Seq;

/// Buckets in a [`Histogram`]: values up to 2^39 (about 6 days in
/// microseconds, or 550 billion entries) are told apart.
const BUCKETS: usize = 40;

/// A histogram with power-of-two buckets: bucket 0 counts the value 0,
/// bucket `i > 0` counts values in `[2^(i-1), 2^i)`; the last bucket also
/// takes everything larger.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    sum: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        let bucket = (u64::BITS - value.leading_zeros()) as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the values recorded.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the values recorded (0 if none).
    pub fn mean(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum as f64 / n as f64,
        }
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`): the top of the
    /// bucket it falls in, capped by the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::top(bucket).min(self.max);
            }
        }
        self.max
    }

    /// `(bucket upper bound, count)` for every non-empty bucket, ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(bucket, &count)| (Self::top(bucket), count))
    }

    /// The largest value bucket `bucket` holds (the last holds everything
    /// above too).
    fn top(bucket: usize) -> u64 {
        match bucket {
            0 => 0,
            b if b == BUCKETS - 1 => u64::MAX,
            b => (1u64 << b) - 1,
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

/// A snapshot of what an open [`Wal`](crate::Wal) has done since it was
/// opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Operations appended (each operation of a batch counts).
    pub appends: u64,
    /// `write_batch` calls.
    pub batches: u64,
    /// Bytes appended, record headers included.
    pub bytes: u64,
    /// fdatasync calls made on segments.
    pub fsyncs: u64,
    /// Operations each fdatasync made durable (group commit sizes).
    pub group_sizes: Histogram,
    /// fdatasync latency, in microseconds.
    pub sync_latency_us: Histogram,
    /// Segments started by rotation.
    pub rotations: u64,
    /// Segments in the log (sealed and active).
    pub segments: u64,
    /// Highest sequence appended.
    pub last_seq: Seq,
    /// Highest sequence known durable.
    pub durable_seq: Seq,
    /// Whether a write or sync failed, so the log accepts no more appends.
    pub poisoned: bool,
    /// Segment preallocations that failed (for lack of space, say); the log
    /// went on without them.
    pub preallocation_failures: u64,
    /// Sleeping appenders woken as rounds of I/O ended: those a round
    /// satisfied, and one per round handed the lead of the next.
    pub wakeups: u64,
    /// Of those, the ones woken to lead that found nothing left to do and
    /// slept again: wake-ups that bought nothing.
    pub idle_wakeups: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let mut h = Histogram::default();
        for v in [0, 1, 2, 3, 4, 100, 1000, 1000, 1000, 1 << 50] {
            h.record(v);
        }
        assert_eq!(h.count(), 10);
        assert_eq!(h.max(), 1 << 50);
        assert_eq!(h.quantile(0.1), 0);
        assert_eq!(
            h.quantile(0.5),
            7,
            "the 5th value (4) is in the bucket 4..=7"
        );
        assert_eq!(h.quantile(0.9), 1023);
        assert_eq!(h.quantile(1.0), 1 << 50);
        let buckets: Vec<_> = h.buckets().collect();
        assert_eq!(buckets[0], (0, 1));
        assert_eq!(buckets[1], (1, 1));
        assert_eq!(buckets[2], (3, 2));
    }
}
