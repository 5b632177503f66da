//! The one-line result every harness reports.

use std::fmt;

/// What a harness run found, in the form `scripts/soak.sh` prints:
/// `<harness>: runs=<n> acked=<n> lost_acked=<n> wrong=<n> seed=<seed>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The harness name (`power-loss`, `kill9`, `damage`, `fuzz-decode`, `fuzz-open`).
    pub harness: &'static str,
    /// Runs (crashes, kill cycles, damage cases, fuzz inputs).
    pub runs: u64,
    /// Acknowledged entries checked.
    pub acked: u64,
    /// Acknowledged entries lost or altered.
    pub lost_acked: u64,
    /// Wrong entries accepted (never written, partial batches, gaps, duplicates).
    pub wrong: u64,
    /// The seed that reproduces the run.
    pub seed: u64,
    /// The first failures, each with what reproduces it.
    pub failures: Vec<String>,
}

impl Summary {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.lost_acked == 0 && self.wrong == 0 && self.failures.is_empty()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: runs={} acked={} lost_acked={} wrong={} seed={}",
            self.harness, self.runs, self.acked, self.lost_acked, self.wrong, self.seed
        )
    }
}
