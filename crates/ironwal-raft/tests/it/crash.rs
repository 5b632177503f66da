//! Simulated power loss: a random Raft-log workload (appends, appends that
//! replace a suffix, votes, committed ids, truncations, purges) on
//! ironwal-crash's `SimStorage`, crashed at a random storage operation,
//! then reopened.
//!
//! Every change is one record (or batch) of one write-ahead log, so after a
//! crash the store must show exactly the state after some prefix of the
//! changes, and that prefix must include every change that was
//! acknowledged: appends whose callback reported durability, votes and
//! truncations that returned. Hence every acknowledged entry and vote
//! survives, and nothing removed by an acknowledged truncation comes back.
//!
//! Rerun one case with `IRONWAL_RAFT_CRASH_SEED=<seed>`; run more with
//! `IRONWAL_RAFT_CRASH_RUNS=<n>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironwal::RecoveryMode;
use ironwal_crash::rng::Rng;
use ironwal_crash::sim::{CrashMode, SimStorage};
use ironwal_raft::StoreOptions;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{Entry, LogId, Vote};

use crate::{describe, entry, log_id, observe, Observed, Store, C};

const DIR: &str = "/raft";
const OPS: usize = 60;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Model {
    entries: BTreeMap<u64, (LogId<u64>, String)>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

impl Model {
    fn floor(&self) -> u64 {
        self.purged.map_or(1, |p| p.index + 1)
    }

    fn end(&self) -> u64 {
        self.entries
            .keys()
            .next_back()
            .map_or(self.floor(), |last| last + 1)
    }

    pub(crate) fn matches(&self, seen: &Observed) -> bool {
        let last = self
            .entries
            .values()
            .next_back()
            .map(|e| e.0)
            .or(self.purged);
        seen.entries == self.entries.values().cloned().collect::<Vec<_>>()
            && seen.vote == self.vote
            && seen.committed == self.committed
            && seen.last_purged == self.purged
            && seen.last_log == last
    }

    pub(crate) fn summary(&self) -> String {
        let first = self.entries.values().next().map(|e| e.0);
        let last = self.entries.values().next_back().map(|e| e.0);
        format!(
            "{} entries ({first:?} ..= {last:?}), vote {:?}, committed {:?}, purged {:?}",
            self.entries.len(),
            self.vote,
            self.committed,
            self.purged
        )
    }
}

pub(crate) fn summary(seen: &Observed) -> String {
    format!(
        "{} entries ({:?} ..= {:?}), vote {:?}, committed {:?}, purged {:?}",
        seen.entries.len(),
        seen.entries.first().map(|e| e.0),
        seen.entries.last().map(|e| e.0),
        seen.vote,
        seen.committed,
        seen.last_purged
    )
}

#[derive(Debug)]
pub(crate) enum Change {
    Append(Vec<Entry<C>>),
    Vote(Vote<u64>),
    Committed(Option<LogId<u64>>),
    Truncate(u64),
    Purge(LogId<u64>),
}

impl Change {
    /// Whether returning successfully means the change is durable.
    pub(crate) fn acknowledges(&self) -> bool {
        matches!(
            self,
            Change::Append(_) | Change::Vote(_) | Change::Truncate(_)
        )
    }

    /// The model after the change, following the store's rules.
    pub(crate) fn apply(&self, model: &Model) -> Model {
        let mut next = model.clone();
        match self {
            Change::Append(entries) => {
                if let Some(first) = entries.first() {
                    next.entries.split_off(&first.log_id.index);
                }
                for e in entries {
                    next.entries.insert(e.log_id.index, describe(e));
                }
            }
            Change::Vote(vote) => next.vote = Some(*vote),
            Change::Committed(committed) => next.committed = *committed,
            Change::Truncate(index) => {
                next.entries.split_off(index);
            }
            Change::Purge(id) => {
                if model.purged.is_none_or(|p| p.index < id.index) {
                    next.entries = next.entries.split_off(&(id.index + 1));
                    next.purged = Some(*id);
                }
            }
        }
        next
    }
}

/// Draws the next change from the workload's generator.
pub(crate) fn draw(rng: &mut Rng, model: &Model, term: &mut u64, vote_term: &mut u64) -> Change {
    let (floor, end) = (model.floor(), model.end());
    let first = model.entries.keys().next().copied().unwrap_or(floor);
    match rng.below(20) {
        0..=11 => {
            let start = if end > first && rng.chance(0.2) {
                *term += 1; // a new leader overwrites a suffix
                first + rng.below(end - first)
            } else {
                end
            };
            let n = 1 + rng.below(8);
            let entries = (start..start + n)
                .map(|i| {
                    let mut e = entry(*term, i);
                    if let openraft::EntryPayload::Normal(ironwal_raft::kv::KvRequest::Set {
                        value,
                        ..
                    }) = &mut e.payload
                    {
                        value.push_str(&"x".repeat(rng.below(300) as usize));
                    }
                    e
                })
                .collect();
            Change::Append(entries)
        }
        12..=13 => {
            *vote_term += 1;
            let node = rng.below(3);
            if rng.chance(0.5) {
                Change::Vote(Vote::new_committed(*vote_term, node))
            } else {
                Change::Vote(Vote::new(*vote_term, node))
            }
        }
        14..=15 => {
            let pick = (end > first).then(|| first + rng.below(end - first));
            Change::Committed(pick.and_then(|i| model.entries.get(&i)).map(|e| e.0))
        }
        16..=17 if end > first => Change::Truncate(first + rng.below(end - first)),
        _ => {
            let upto = floor + rng.below(end - floor + 3);
            let id = model
                .entries
                .get(&upto)
                .map_or(log_id(*term, upto), |e| e.0);
            Change::Purge(id)
        }
    }
}

fn options(sim: &SimStorage, segment: u64, preallocate: bool, mode: RecoveryMode) -> StoreOptions {
    StoreOptions::default().cache_bytes(2048).wal(
        ironwal::Options::default()
            .storage(Arc::new(sim.clone()))
            .max_segment_size(segment)
            .preallocate(preallocate)
            .recovery_mode(mode),
    )
}

/// Runs the workload until it ends or the storage dies. Returns the states
/// after each change (the first is the empty log) and the position of the
/// last acknowledged one.
async fn run(seed: u64, sim: &SimStorage, segment: u64, preallocate: bool) -> (Vec<Model>, usize) {
    let mut rng = Rng::new(seed);
    let mut states = vec![Model::default()];
    let mut acked = 0;
    let Ok(mut store) = Store::open(
        DIR,
        options(sim, segment, preallocate, RecoveryMode::TolerateTornTail),
    ) else {
        return (states, acked);
    };
    let (mut term, mut vote_term) = (1, 0);
    for _ in 0..OPS {
        let model = states.last().cloned().unwrap_or_default();
        let change = draw(&mut rng, &model, &mut term, &mut vote_term);
        let next = change.apply(&model);
        let result = match &change {
            Change::Append(entries) => store.blocking_append(entries.clone()).await,
            Change::Vote(vote) => store.save_vote(vote).await,
            Change::Committed(committed) => store.save_committed(*committed).await,
            Change::Truncate(index) => store.truncate(log_id(term, *index)).await,
            Change::Purge(id) => store.purge(*id).await,
        };
        // Even a failed change may have reached the disk.
        if next != model {
            states.push(next);
        }
        match result {
            Ok(()) if change.acknowledges() => acked = states.len() - 1,
            Ok(()) => {}
            Err(_) => break,
        }
    }
    (states, acked)
}

/// Returns whether the reopen needed point-in-time recovery, and whether
/// the crash came before the workload ended.
async fn crash_and_check(seed: u64) -> Result<(bool, bool), String> {
    let mut knobs = Rng::new(seed ^ 0x5eed_cafe);
    let segment = [2048, 4096, 16384][knobs.below(3) as usize];
    let preallocate = knobs.chance(0.5);
    let mode = CrashMode::ALL[knobs.below(3) as usize];

    // A dry run counts the storage operations, to crash somewhere inside.
    let dry = SimStorage::new();
    run(seed, &dry, segment, preallocate).await;
    let crash_at = 1 + knobs.below(dry.ops().max(1));

    let sim = SimStorage::new();
    sim.crash_at_op(crash_at, mode, seed);
    let (states, acked) = run(seed, &sim, segment, preallocate).await;
    let mid = sim.crash_image().is_some();
    let image = sim
        .crash_image()
        .unwrap_or_else(|| sim.crash_now(mode, seed));

    let after = SimStorage::from_image(&image);
    let mut refused = false;
    let mut store = match Store::open(
        DIR,
        options(&after, segment, preallocate, RecoveryMode::TolerateTornTail),
    ) {
        Ok(store) => store,
        // Sectors kept after a dropped one look like damage with valid
        // records after it, which the default mode refuses to guess past;
        // a point-in-time recovery must then still keep everything durable.
        Err(ironwal_raft::Error::Wal(e)) if e.is_corruption() => {
            refused = true;
            Store::open(
                DIR,
                options(&after, segment, preallocate, RecoveryMode::PointInTime),
            )
            .map_err(|e| format!("point-in-time reopen failed: {e}"))?
        }
        Err(e) => return Err(format!("reopen failed: {e}")),
    };
    let seen = observe(&mut store).await;
    if !states[acked..].iter().any(|m| m.matches(&seen)) {
        return Err(format!(
            "crash at op {crash_at} of {} ({mode:?}, segments of {segment}, preallocate {preallocate}): \
             recovered state is none of the {} states from the last acknowledged one on\n\
             recovered: {}\nlast acknowledged: {}",
            dry.ops(),
            states.len() - acked,
            summary(&seen),
            states[acked].summary()
        ));
    }
    // The recovered log takes new appends.
    let next = seen.last_log.map_or(1, |id| id.index + 1);
    store
        .blocking_append(vec![entry(1000, next)])
        .await
        .map_err(|e| format!("append after recovery failed: {e}"))?;
    Ok((refused, mid))
}

/// The seeds to run: `IRONWAL_RAFT_CRASH_SEED` alone, or
/// `IRONWAL_RAFT_CRASH_RUNS` (default `runs`) fresh ones, printed.
pub(crate) fn crash_seeds(runs: u64, what: &str) -> Vec<u64> {
    match std::env::var("IRONWAL_RAFT_CRASH_SEED") {
        Ok(seed) => vec![seed.parse().expect("IRONWAL_RAFT_CRASH_SEED is a number")],
        Err(_) => {
            let runs = std::env::var("IRONWAL_RAFT_CRASH_RUNS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(runs);
            let base = Rng::fresh_seed();
            println!("{what} seeds {base}..{}", base.wrapping_add(runs));
            (0..runs).map(|i| base.wrapping_add(i)).collect()
        }
    }
}

#[test]
fn acknowledged_entries_and_votes_survive_power_loss() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seeds = crash_seeds(200, "crash");
    let (mut refused, mut mid, runs) = (0, 0, seeds.len());
    for seed in seeds {
        match rt.block_on(crash_and_check(seed)) {
            Ok((r, m)) => {
                refused += u32::from(r);
                mid += u32::from(m);
            }
            Err(message) => {
                panic!("seed {seed}: {message}\nrerun with IRONWAL_RAFT_CRASH_SEED={seed}")
            }
        }
    }
    println!("{runs} runs, {mid} crashed mid-workload, {refused} needed a point-in-time reopen");
}
