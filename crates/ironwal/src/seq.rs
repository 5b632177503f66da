//! Sequence numbers.

use std::fmt;
use std::ops::{Add, AddAssign};

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

    /// The sequence `n` after this one, or `None` past `u64::MAX`.
    pub const fn checked_add(self, n: u64) -> Option<Seq> {
        match self.0.checked_add(n) {
            Some(raw) => Some(Seq(raw)),
            None => None,
        }
    }

    /// The sequence right after this one (panics past `u64::MAX`, which a
    /// log cannot reach: appends fail with
    /// [`Error::SequenceExhausted`](crate::Error::SequenceExhausted) first).
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// How many sequences lie from `earlier` up to this one (zero if
    /// `earlier` is not earlier).
    pub const fn since(self, earlier: Seq) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `seq + n`: the sequence `n` after `seq`, as a batch's operations follow
/// its first. Panics past `u64::MAX`, like integer overflow in debug builds.
///
/// ```
/// use ironwal::Seq;
///
/// let first = Seq::new(10);
/// assert_eq!(first + 2, Seq::new(12));
/// assert_eq!((first + 2).since(first), 2);
/// ```
impl Add<u64> for Seq {
    type Output = Seq;

    fn add(self, n: u64) -> Seq {
        self.checked_add(n).expect("sequence number past u64::MAX")
    }
}

impl AddAssign<u64> for Seq {
    fn add_assign(&mut self, n: u64) {
        *self = *self + n;
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
