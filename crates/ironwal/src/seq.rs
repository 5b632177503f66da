//! Sequence numbers.

use std::fmt;

/// A log sequence number.
///
/// Every operation in the log has one; they increase along the log. ironwal
/// assigns them without gaps; files written by kevo may have gaps, and the
/// operations of a batch always have consecutive numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(u64);

impl Seq {
    /// The sequence number before any entry; a new log starts at `Seq::new(1)`.
    pub const ZERO: Seq = Seq(0);

    /// Wraps a raw sequence number.
    pub const fn new(raw: u64) -> Self {
        Seq(raw)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Seq {
    fn from(raw: u64) -> Self {
        Seq(raw)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> Self {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
