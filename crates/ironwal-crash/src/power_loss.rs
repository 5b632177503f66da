//! Simulated power loss: random workloads on a [`SimStorage`], crashed at
//! random moments (a chosen storage operation, or a random time), reopened
//! and checked, several times in a row.
//!
//! After each crash the reopened log must hold every entry acknowledged as
//! durable (by its `SyncPolicy`, a `sync()`, or `durable_seq()`), hold only
//! entries the workload wrote (checked through their self-describing keys),
//! with gap-free sequences, each batch whole or absent, and accept appends.
//!
//! A crash can leave the sectors of the last unsynced write in any subset, so
//! a dropped sector may be followed by kept ones: damage with valid records
//! after it, which the default recovery mode refuses to guess past (that is
//! DESIGN.md's rule). Such a refusal is counted, and accepted only if the
//! damage lies beyond every durable entry: a point-in-time open must then
//! recover all of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironwal::{Entry, Error, Options, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};
use parking_lot::Mutex;

use crate::check::{examine, Findings};
use crate::rng::Rng;
use crate::sim::{CrashMode, Image, SimStorage};
use crate::workload::{append, plan, Key};

const DIR: &str = "/wal";

/// What a batch of runs found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Runs (seeds) completed.
    pub runs: u64,
    /// Crashes simulated and recovered from.
    pub crashes: u64,
    /// Acknowledged-durable entries checked after a crash.
    pub acked: u64,
    /// Of those, entries missing or altered after recovery.
    pub lost_acked: u64,
    /// Entries found that the workload never wrote, partial batches, gaps
    /// or duplicates.
    pub wrong: u64,
    /// Opens refused with a corruption error (see the module docs).
    pub refused: u64,
    /// The first failures, with their seeds.
    pub failures: Vec<String>,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, other: Tally) {
        self.runs += other.runs;
        self.crashes += other.crashes;
        self.acked += other.acked;
        self.lost_acked += other.lost_acked;
        self.wrong += other.wrong;
        self.refused += other.refused;
        self.failures.extend(
            other
                .failures
                .into_iter()
                .take(10usize.saturating_sub(self.failures.len())),
        );
    }

    fn fail(&mut self, seed: u64, message: String) {
        if self.failures.len() < 10 {
            self.failures.push(format!("seed {seed}: {message}"));
        }
    }
}

/// Knobs of a run, all drawn from its seed.
#[derive(Clone, Debug)]
struct Setup {
    policy: SyncPolicy,
    threads: u32,
    segment: u64,
    preallocate: bool,
    small_buffer: bool,
    background_sync: Option<u64>,
    mode: CrashMode,
    epochs: u32,
}

impl Setup {
    fn draw(rng: &mut Rng) -> Setup {
        let policy = match rng.below(4) {
            0 => SyncPolicy::Bytes(512 + rng.below(4096)),
            1 => SyncPolicy::Interval(Duration::from_micros(200 + rng.below(2000))),
            2 => SyncPolicy::Never,
            _ => SyncPolicy::Always,
        };
        Setup {
            policy,
            threads: [1, 1, 2, 4, 8][rng.below(5) as usize],
            segment: [2048, 8192, 65536][rng.below(3) as usize],
            preallocate: rng.below(2) == 0,
            small_buffer: rng.below(3) == 0,
            background_sync: [None, Some(1024), Some(16384), Some(8 << 20)][rng.below(4) as usize],
            mode: CrashMode::ALL[rng.below(3) as usize],
            epochs: 1 + rng.below(3) as u32,
        }
    }

    fn options(&self, storage: &SimStorage, mode: RecoveryMode) -> Options {
        let options = Options::default()
            .storage(Arc::new(storage.clone()))
            .sync_policy(self.policy)
            .max_segment_size(self.segment)
            .preallocate(self.preallocate)
            .background_sync_bytes(self.background_sync)
            .recovery_mode(mode);
        if self.small_buffer {
            options.write_buffer_size(1024)
        } else {
            options
        }
    }
}

/// What the log must and may hold.
#[derive(Debug, Default)]
struct Model {
    /// Every entry known to have a sequence, and its key.
    known: BTreeMap<u64, Key>,
    /// Entries up to this sequence were durable before the crash.
    durable: u64,
    /// Retention may have removed entries below this sequence.
    removed_below: u64,
}

/// Runs one seed: a few epochs of open, workload, crash; returns what it saw.
/// `ignore_syncs` makes fdatasync a no-op, which the checks must notice.
pub fn run(seed: u64, ignore_syncs: bool) -> Tally {
    let mut tally = Tally {
        runs: 1,
        ..Tally::default()
    };
    let mut rng = Rng::new(seed);
    let setup = Setup::draw(&mut rng);
    let mut model = Model::default();
    let mut image: Option<Image> = None;
    for epoch in 0..=setup.epochs {
        let last = epoch == setup.epochs;
        let sim = image
            .as_ref()
            .map_or_else(SimStorage::new, SimStorage::from_image);
        sim.ignore_syncs(ignore_syncs);
        let armed = !last && rng.below(5) != 0;
        if armed {
            sim.crash_at_op(sim.ops() + 1 + rng.below(300), setup.mode, rng.next_u64());
        }
        let (wal, sim, armed) = match open(&sim, &setup, &mut tally, seed) {
            // A point-in-time fallback runs on a fresh, unarmed copy.
            Ok((wal, Some(fallback))) => (wal, fallback, false),
            Ok((wal, None)) => (wal, sim, armed),
            Err(error) => match sim.crash_image() {
                // Lost power while recovering: the next epoch recovers again.
                Some(next) => {
                    tally.crashes += 1;
                    image = Some(next);
                    continue;
                }
                None => {
                    tally.fail(seed, format!("epoch {epoch}: open failed: {error}"));
                    return tally;
                }
            },
        };
        if image.is_some() {
            match wal
                .replay(Seq::ZERO)
                .and_then(|r| r.collect::<Result<Vec<Entry>, Error>>())
            {
                Ok(entries) => check(&entries, &mut model, &mut tally, seed, epoch),
                Err(_) if sim.crash_image().is_some() => {}
                Err(error) => {
                    tally.fail(seed, format!("epoch {epoch}: replay failed: {error}"));
                    return tally;
                }
            }
        }
        if last {
            // The recovered log takes new appends and keeps them.
            let key = Key {
                writer: 999,
                serial: 0,
                index: 0,
                batch: 1,
                op: ironwal::Op::Put,
                len: 5,
            };
            let ok = wal
                .put(&key.encode(), &key.value().unwrap_or_default())
                .and_then(|_| wal.close());
            if let Err(error) = ok {
                tally.fail(seed, format!("appending after recovery failed: {error}"));
            }
            return tally;
        }
        let next = workload(&wal, &sim, &setup, &mut model, &mut rng, armed, epoch);
        tally.crashes += 1;
        image = Some(next);
    }
    tally
}

/// Opens the log; if the default mode refuses it as corrupt, opens a copy
/// under `PointInTime` (returned with the log), whose recovery the caller
/// then checks.
fn open(
    sim: &SimStorage,
    setup: &Setup,
    tally: &mut Tally,
    seed: u64,
) -> Result<(Wal, Option<SimStorage>), Error> {
    match Wal::open(DIR, setup.options(sim, RecoveryMode::TolerateTornTail)) {
        Err(Error::Corruption {
            segment,
            offset,
            kind,
        }) if sim.crash_image().is_none() => {
            tally.refused += 1;
            let fallback = SimStorage::from_image(&sim.snapshot());
            fallback.ignore_syncs(sim.ignores_syncs());
            match Wal::open(DIR, setup.options(&fallback, RecoveryMode::PointInTime)) {
                Ok(wal) => Ok((wal, Some(fallback))),
                Err(e) => {
                    tally.fail(
                        seed,
                        format!(
                            "{}@{offset} ({kind}), then point-in-time: {e}",
                            segment.display()
                        ),
                    );
                    Err(e)
                }
            }
        }
        other => other.map(|wal| (wal, None)),
    }
}

/// Compares a recovered log with the model, then makes it the model.
fn check(entries: &[Entry], model: &mut Model, tally: &mut Tally, seed: u64, epoch: u32) {
    let Findings { present, wrong } = examine(entries, &model.known);
    let required = model
        .known
        .iter()
        .filter(|(seq, _)| (model.removed_below..=model.durable).contains(*seq));
    for (seq, key) in required {
        tally.acked += 1;
        if present.get(seq) != Some(key) {
            tally.lost_acked += 1;
            tally.fail(
                seed,
                format!("epoch {epoch}: acknowledged seq {seq} ({key:?}) lost"),
            );
        }
    }
    tally.wrong += wrong.len() as u64;
    for message in wrong.into_iter().take(3) {
        tally.fail(seed, format!("epoch {epoch}: {message}"));
    }
    // What survived is on disk now: it is the new baseline.
    model.known = present.into_iter().collect();
    model.durable = entries.last().map_or(0, |e| e.seq.get());
}

/// Runs writer threads until the storage crashes (armed) or until the main
/// thread pulls the plug; returns the crash image.
/// Keys of different epochs must differ: serials start at `epoch << 32`.
fn workload(
    wal: &Wal,
    sim: &SimStorage,
    setup: &Setup,
    model: &mut Model,
    rng: &mut Rng,
    armed: bool,
    epoch: u32,
) -> Image {
    let acks: Mutex<Vec<(u64, Key)>> = Mutex::new(Vec::new());
    let removed_below = Mutex::new(model.removed_below);
    let stop = AtomicBool::new(false);
    let budget = 20 + rng.below(150);
    let plug_after = rng.below(budget * u64::from(setup.threads) + 1) as usize;
    let seeds: Vec<u64> = (0..setup.threads).map(|_| rng.next_u64()).collect();
    let image = std::thread::scope(|scope| {
        for (writer, seed) in seeds.into_iter().enumerate() {
            let (acks, removed_below, stop) = (&acks, &removed_below, &stop);
            let serials = u64::from(epoch) << 32..(u64::from(epoch) << 32) + budget;
            scope.spawn(move || {
                writer_loop(wal, writer as u32, seed, serials, acks, removed_below, stop)
            });
        }
        if armed {
            return None;
        }
        // Pull the plug once enough appends were acknowledged.
        while acks.lock().len() < plug_after
            && !stop.load(Ordering::Relaxed)
            && sim.crash_image().is_none()
        {
            std::thread::yield_now();
        }
        let image = sim.crash_now(setup.mode, rng.next_u64());
        stop.store(true, Ordering::Relaxed);
        Some(image)
    });
    // Durability can only have advanced through syncs that completed before
    // the power went out: every later storage call fails.
    model.durable = wal.durable_seq().get();
    model.removed_below = *removed_below.lock();
    model.known.extend(acks.into_inner());
    image
        .or_else(|| sim.crash_image())
        .unwrap_or_else(|| sim.crash_now(setup.mode, rng.next_u64()))
}

fn writer_loop(
    wal: &Wal,
    writer: u32,
    seed: u64,
    serials: std::ops::Range<u64>,
    acks: &Mutex<Vec<(u64, Key)>>,
    removed_below: &Mutex<u64>,
    stop: &AtomicBool,
) {
    let mut rng = Rng::new(seed);
    let mut batch = WriteBatch::new();
    for serial in serials {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let keys = plan(&mut rng, writer, serial);
        let Ok(first) = append(wal, &keys, &mut batch) else {
            return;
        };
        acks.lock().extend(
            keys.iter()
                .enumerate()
                .map(|(i, key)| (first.get() + i as u64, *key)),
        );
        // Now and then: an explicit sync, or retention up to an acked entry.
        match rng.below(40) {
            0 => {
                let _ = wal.sync();
            }
            1 if writer == 0 => {
                let below = first.get().saturating_sub(rng.below(50));
                {
                    let mut removed = removed_below.lock();
                    *removed = (*removed).max(below);
                }
                let _ = wal.remove_segments_before(Seq::new(below));
            }
            _ => {}
        }
    }
}

impl Tally {
    /// The harness summary: runs counts crashes.
    pub fn summary(&self, seed: u64) -> crate::summary::Summary {
        crate::summary::Summary {
            harness: "power-loss",
            runs: self.crashes,
            acked: self.acked,
            lost_acked: self.lost_acked,
            wrong: self.wrong,
            seed,
            failures: self.failures.clone(),
        }
    }
}

/// Runs seeds from `first` until `deadline` or `max_runs`, whichever first.
pub fn run_many(first: u64, max_runs: u64, deadline: Option<std::time::Instant>) -> Tally {
    let mut tally = Tally::default();
    let mut seeder = Rng::new(first);
    for _ in 0..max_runs {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        tally.merge(run(seeder.next_u64(), false));
    }
    tally
}
