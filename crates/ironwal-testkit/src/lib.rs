//! Support code shared by ironwal's test suites and harnesses, so each
//! piece lives once: the seeded generator every randomized test and
//! harness replays from, where the kevo vectors are, and replaying a log
//! into owned entries.

use std::path::{Path, PathBuf};

use ironwal::{Entry, Seq, Wal};

/// A linearizability checker for key-value histories, one register per key.
pub mod linearizable;

/// A small seeded generator (SplitMix64): the same sequence for the same
/// seed on every platform, so every randomized run replays from the seed
/// it prints.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        match n {
            0 => 0,
            n => self.next_u64() % n,
        }
    }

    /// A number in `range` (its start when it is empty).
    pub fn range(&mut self, range: std::ops::Range<usize>) -> usize {
        let width = range.end.saturating_sub(range.start) as u64;
        range.start + self.below(width) as usize
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A seed from the clock and the process id, for runs not given one.
    pub fn fresh_seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng::new(nanos ^ u64::from(std::process::id()).rotate_left(32)).next_u64()
    }
}

/// The seed of a randomized test: `IRONWAL_TEST_SEED` if set, else a fresh
/// one. Printed, so a failure can be rerun with the same seed.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("IRONWAL_TEST_SEED") {
        Ok(s) => s.parse().expect("IRONWAL_TEST_SEED must be a u64"),
        Err(_) => Rng::fresh_seed(),
    };
    eprintln!("{test}: seed {seed} (rerun with IRONWAL_TEST_SEED={seed})");
    seed
}

/// The directory of the vectors kevo's own Go code wrote (`testdata/kevo`
/// in the repository, each with its `manifest.json`), or
/// `IRONWAL_COMPAT_DIR` if set.
pub fn compat_dir() -> PathBuf {
    match std::env::var_os("IRONWAL_COMPAT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kevo"),
    }
}

/// Every operation an open log replays from its start; panics on an error.
pub fn replay_all(wal: &Wal) -> Vec<Entry> {
    wal.replay(Seq::ZERO)
        .expect("replay")
        .collect::<Result<_, _>>()
        .expect("replay entry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], Rng::new(43).next_u64());
    }

    #[test]
    fn draws_stay_in_their_bounds() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            assert!((5..9).contains(&rng.range(5..9)));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range(3..3), 3);
        assert_eq!(rng.bytes(13).len(), 13);
        assert!(!rng.chance(0.0));
    }

    #[test]
    fn the_kevo_vectors_are_in_the_repository() {
        let dir = compat_dir();
        assert!(
            dir.join("multi-segment/manifest.json").is_file(),
            "{}",
            dir.display()
        );
    }
}
