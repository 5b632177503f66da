//! Exhaustive damage: every truncation, every single-bit flip and every
//! zeroed 512-byte sector of every segment of a multi-segment log, and (when
//! the log has its segment record) every segment deleted and every two
//! neighbours' names swapped, each read back under every recovery mode and
//! opened as a [`Wal`](ironwal::Wal).
//!
//! The fixture is written by ironwal itself (on a
//! [`MemStorage`](ironwal::storage::MemStorage), without
//! preallocation) and holds single puts, deletes and merges, single-record
//! batches, header-form batches (kevo's `AppendBatch`, spliced in between
//! `Wal` sessions with consecutive sequences) and an entry over 32 KiB cut
//! into First/Middle/Last records. Its last segment ends in a stretch of
//! zeros, as a preallocated segment does. The standard fixture, and three
//! random ones in four, carry the segment record (`ironwal-segments`) ironwal
//! keeps beside its segments; the others read as a kevo log, which has none.
//! The fixture knows the byte range of
//! every *item* (an entry, or a batch of either form: what a reader yields
//! whole or not at all). [`Fixture::standard`] fixes the kinds and order of
//! the items and lets the seed choose their bytes; [`Fixture::random`] lets
//! the seed choose everything.
//!
//! The 32 KiB record is where the time goes: a flip anywhere in it sends
//! every reader searching for the next valid record, and there are 262,144
//! such flips. The standard fixture's huge value therefore carries a decoy
//! Middle record every half KiB or so (a value that looks like a log), which
//! keeps each search short and tests that salvage never turns such bytes
//! into entries. Random fixtures mostly do the same; some keep a plain value
//! and pay for the long searches.
//!
//! An item is *touched* when the damage changed one of its bytes (a
//! truncation touches every item that ends past the cut). For each damaged
//! copy, every read must satisfy:
//!
//! * every entry it yields is an entry of the fixture, byte for byte, in the
//!   fixture's order, and every item is yielded whole or not at all
//!   (otherwise `wrong`);
//! * every entry of every item before the first touched one is yielded
//!   (otherwise `lost_acked`);
//! * an error is an [`Error::Corruption`](ironwal::Error::Corruption) naming
//!   the damaged segment, at an offset no earlier than the first touched
//!   item (or the zero tail) and no later than the end of the item holding
//!   the first changed byte;
//! * `Strict`, `TolerateTornTail`, `PointInTime` and the `Wal` either fail so,
//!   or yield exactly the items before the first touched one; then
//!   `TolerateTornTail` and `Strict` must have found no intact item after the
//!   damage (dropping one without an error would lose acknowledged data),
//!   `Strict` must report nothing dropped, and `PointInTime` must report what
//!   it dropped;
//! * `SkipCorrupted` never fails, and yields every item the damage did not
//!   touch (touched items may come back only if they read back identical, as
//!   the members of a header-form batch whose header record is damaged do);
//! * a damaged `Wal` that opens takes an append, numbered one past the
//!   highest entry it recovered, and a reread shows the recovered entries and
//!   the new one, and nothing else.
//!
//! One outcome no reader of a log without a segment record can avoid is
//! accepted and counted apart (`undetectable`): when the damage leaves a
//! sealed segment ending cleanly where a touched item began (truncated there,
//! or zeros from there on), the segment reads as a shorter, valid one. The
//! format has no segment trailer and allows gaps between sequence numbers,
//! so the missing items cannot be noticed; every other item must still come
//! back. With the record, a sealed segment's length is known and this is
//! corruption like any other (only the active segment's end, which a crash
//! may leave anywhere, is not recorded). The other: when the
//! damage destroys the header record of a kevo header-form batch,
//! `SkipCorrupted` resynchronises onto its later entries and yields them as
//! single entries, since nothing in those records marks them as members of
//! a batch. (ironwal writes batches in the single-record form, which a
//! single checksum covers, so this concerns kevo-written logs only.)
//!
//! Every case runs under `catch_unwind`: a panic is a failure naming the case.
//! A failure reads like `fixture standard(42): segment 1 byte 517 bit 3
//! flipped (/wal/00000000000000000002.wal): LogReader(strict): …`; rerun it
//! with `check_case(&Fixture::standard(42)?, Damage::FlipBit { file: 1,
//! byte: 517, bit: 3 })`.

mod fixture;
mod judge;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

pub use fixture::{Damage, Fixture, Item, ItemKind, Segment, Shape};

use crate::rng::Rng;
use crate::summary::Summary;
use judge::{Case, Findings};

/// The log directory of every fixture.
pub const DIR: &str = "/wal";

/// Size of the sectors the zeroing pass wipes.
pub const SECTOR: u64 = 512;

/// Failure messages kept per run.
const MAX_MESSAGES: usize = 20;

/// What one run (or part of one) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Fixtures whose cases were checked (in full or until the deadline).
    pub fixtures: u64,
    /// Damage cases checked.
    pub cases: u64,
    /// Reads checked (four recovery modes and a `Wal` per case).
    pub reads: u64,
    /// Entries verified present and exact.
    pub acked: u64,
    /// Entries before the damage missing.
    pub lost_acked: u64,
    /// Entries yielded that are not the fixture's (or break a batch).
    pub wrong: u64,
    /// Intact entries after the damage dropped where the mode must keep
    /// them or fail.
    pub dropped_intact: u64,
    /// Reads that failed with a corruption error naming the damaged place.
    pub refused: u64,
    /// Reads that came back complete: the damage hit nothing read.
    pub unchanged: u64,
    /// Reads that lost items in a way the format cannot reveal (see the
    /// module docs).
    pub undetectable: u64,
    /// Cases that panicked.
    pub panics: u64,
    /// Cases with at least one failed check.
    pub failed_cases: u64,
    /// The first failures, each naming its fixture and case.
    pub failures: Vec<String>,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, other: Tally) {
        self.fixtures += other.fixtures;
        self.cases += other.cases;
        self.reads += other.reads;
        self.acked += other.acked;
        self.lost_acked += other.lost_acked;
        self.wrong += other.wrong;
        self.dropped_intact += other.dropped_intact;
        self.refused += other.refused;
        self.unchanged += other.unchanged;
        self.undetectable += other.undetectable;
        self.panics += other.panics;
        self.failed_cases += other.failed_cases;
        let room = MAX_MESSAGES.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
    }

    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        self.failed_cases == 0 && self.lost_acked == 0 && self.wrong == 0
    }

    /// The harness summary line: runs counts damage cases.
    pub fn summary(&self, seed: u64) -> Summary {
        let mut failures = self.failures.clone();
        if failures.is_empty() && !self.passed() {
            failures.push(format!("{} cases failed", self.failed_cases));
        }
        Summary {
            harness: "damage",
            runs: self.cases,
            acked: self.acked,
            lost_acked: self.lost_acked,
            wrong: self.wrong,
            seed,
            failures,
        }
    }
}

thread_local! {
    /// Set while a case runs: its panics are caught and reported, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps panics inside damage cases off
/// stderr and remembers them, and passes every other panic on.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Checks one damage case of `fixture`, catching any panic.
pub fn check_case(fixture: &Fixture, damage: Damage) -> Tally {
    quiet_panics();
    QUIET.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| Case::new(fixture, damage).check()));
    QUIET.with(|q| q.set(false));
    let name = &fixture.segments[damage.file()].path;
    let mut findings = match result {
        Ok(findings) => findings,
        Err(_) => {
            let message = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| "a panic".into());
            let mut f = Findings::default();
            f.tally.panics += 1;
            f.problems.push(format!("panicked: {message}"));
            f
        }
    };
    let mut tally = std::mem::take(&mut findings.tally);
    tally.cases = 1;
    if !findings.problems.is_empty() {
        tally.failed_cases = 1;
        tally.failures.push(format!(
            "{fixture}: {damage} ({}): {}",
            name.display(),
            findings.problems.join("; ")
        ));
    }
    tally
}

/// Checks every damage case of `fixture` (on a few threads), stopping at
/// `deadline` if one is given.
pub fn check_fixture(fixture: &Fixture, deadline: Option<Instant>) -> Tally {
    let cases = fixture.cases();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let mut total = Tally {
        fixtures: 1,
        ..Tally::default()
    };
    let parts: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let cases = &cases;
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for damage in cases.iter().skip(t).step_by(threads) {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        tally.merge(check_case(fixture, *damage));
                    }
                    tally
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| Tally {
                    failed_cases: 1,
                    failures: vec![format!("{fixture}: a worker thread died")],
                    ..Tally::default()
                })
            })
            .collect()
    });
    for part in parts {
        total.merge(part);
    }
    total
}

/// Runs the damage suite: every case of the standard fixture for `seed`;
/// then, given a `deadline`, random fixtures drawn from `seed` until it
/// passes.
pub fn run_tally(seed: u64, deadline: Option<Instant>) -> Tally {
    let mut tally = Tally::default();
    let mut fixture_seeds = Rng::new(seed);
    let mut shape = Shape::Standard;
    let mut fixture_seed = seed;
    loop {
        let built = match shape {
            Shape::Standard => Fixture::standard(fixture_seed),
            Shape::Random => Fixture::random(fixture_seed),
        };
        match built {
            Ok(fixture) => tally.merge(check_fixture(&fixture, deadline)),
            Err(e) => tally.merge(Tally {
                failed_cases: 1,
                failures: vec![format!("building {shape:?} fixture {fixture_seed}: {e}")],
                ..Tally::default()
            }),
        }
        match deadline {
            Some(d) if Instant::now() < d => {}
            _ => return tally,
        }
        shape = Shape::Random;
        fixture_seed = fixture_seeds.next_u64();
    }
}

/// The harness entry point (`damage` in the soak summary).
pub fn run(seed: u64, deadline: Option<Instant>) -> Summary {
    run_tally(seed, deadline).summary(seed)
}
