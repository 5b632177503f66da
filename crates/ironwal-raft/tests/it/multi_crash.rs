//! Simulated power loss on a multi-raft log: several groups interleave
//! appends, suffix replacements, votes, committed ids, truncations and
//! purges on one write-ahead log, with retention passes that move live
//! entries forward and delete segments, on `SimStorage`, crashed at a
//! random storage operation, then reopened.
//!
//! Every change of every group is one record or batch of the same log, and
//! a retention pass changes no group's state, so after a crash the groups
//! together must show the state after some prefix of the changes, one that
//! includes every acknowledged change. Every acknowledged entry and vote
//! of every group survives, and entries carry their group, so no group
//! shows another's.
//!
//! Rerun one case with `IRONWAL_RAFT_CRASH_SEED=<seed>`; run more with
//! `IRONWAL_RAFT_CRASH_RUNS=<n>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironwal::RecoveryMode;
use ironwal_crash::rng::Rng;
use ironwal_crash::sim::{CrashMode, SimStorage};
use ironwal_raft::kv::KvRequest;
use ironwal_raft::{MultiLog, MultiLogOptions};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::EntryPayload;

use crate::crash::{crash_seeds, draw, summary, Change, Model};
use crate::{entry, log_id, observe, C};

const DIR: &str = "/multi";
const GROUPS: [u64; 3] = [3, 17, 400];
const OPS: usize = 120;

type World = BTreeMap<u64, Model>;

fn options(
    sim: &SimStorage,
    segment: u64,
    preallocate: bool,
    mode: RecoveryMode,
) -> MultiLogOptions {
    MultiLogOptions::default()
        .cache_bytes(1024)
        // Rewrite eagerly, so that short runs move entries.
        .rewrite_live_ratio(0.9)
        .wal(
            ironwal::Options::default()
                .storage(Arc::new(sim.clone()))
                .max_segment_size(segment)
                .preallocate(preallocate)
                .recovery_mode(mode),
        )
}

/// Tags an append's entries with their group.
fn tag(group: u64, change: Change) -> Change {
    match change {
        Change::Append(mut entries) => {
            for e in &mut entries {
                if let EntryPayload::Normal(KvRequest::Set { key, .. }) = &mut e.payload {
                    *key = format!("g{group}/{key}");
                }
            }
            Change::Append(entries)
        }
        other => other,
    }
}

/// Counts of what the workload did.
#[derive(Default)]
struct Done {
    moved: u64,
    removed: usize,
}

/// Runs the workload until it ends or the storage dies. Returns the worlds
/// after each change (the first is empty) and the position of the last
/// acknowledged one.
async fn run(
    seed: u64,
    sim: &SimStorage,
    segment: u64,
    preallocate: bool,
) -> (Vec<World>, usize, Done) {
    let mut rng = Rng::new(seed);
    let empty: World = GROUPS.iter().map(|&g| (g, Model::default())).collect();
    let mut worlds = vec![empty];
    let mut acked = 0;
    let mut done = Done::default();
    let Ok(log) = MultiLog::<C>::open(
        DIR,
        options(sim, segment, preallocate, RecoveryMode::TolerateTornTail),
    ) else {
        return (worlds, acked, done);
    };
    let mut stores: BTreeMap<u64, _> = GROUPS.iter().map(|&g| (g, log.group(g))).collect();
    let mut terms: BTreeMap<u64, (u64, u64)> = GROUPS.iter().map(|&g| (g, (1, 0))).collect();
    for _ in 0..OPS {
        if rng.below(10) == 0 {
            match log.compact() {
                Ok(pass) => {
                    done.moved += pass.entries_moved;
                    done.removed += pass.segments_removed;
                    continue;
                }
                Err(_) => break,
            }
        }
        let group = GROUPS[rng.below(GROUPS.len() as u64) as usize];
        let world = worlds.last().cloned().unwrap_or_default();
        let model = &world[&group];
        let (term, vote_term) = terms.get_mut(&group).unwrap();
        let change = tag(group, draw(&mut rng, model, term, vote_term));
        let mut next = world.clone();
        next.insert(group, change.apply(model));
        let store = stores.get_mut(&group).unwrap();
        let result = match &change {
            Change::Append(entries) => store.blocking_append(entries.clone()).await,
            Change::Vote(vote) => store.save_vote(vote).await,
            Change::Committed(committed) => store.save_committed(*committed).await,
            Change::Truncate(index) => store.truncate(log_id(*term, *index)).await,
            Change::Purge(id) => store.purge(*id).await,
        };
        if next != world {
            worlds.push(next);
        }
        match result {
            Ok(()) if change.acknowledges() => acked = worlds.len() - 1,
            Ok(()) => {}
            Err(_) => break,
        }
    }
    (worlds, acked, done)
}

/// Returns what the crashed run did, and whether it crashed mid-workload.
async fn crash_and_check(seed: u64) -> Result<(Done, bool), String> {
    let mut knobs = Rng::new(seed ^ 0x6d75_6c74);
    let segment = [2048, 4096][knobs.below(2) as usize];
    let preallocate = knobs.chance(0.5);
    let mode = CrashMode::ALL[knobs.below(3) as usize];

    let dry = SimStorage::new();
    run(seed, &dry, segment, preallocate).await;
    let crash_at = 1 + knobs.below(dry.ops().max(1));

    let sim = SimStorage::new();
    sim.crash_at_op(crash_at, mode, seed);
    let (worlds, acked, done) = run(seed, &sim, segment, preallocate).await;
    let mid = sim.crash_image().is_some();
    let image = sim
        .crash_image()
        .unwrap_or_else(|| sim.crash_now(mode, seed));

    let after = SimStorage::from_image(&image);
    let log = match MultiLog::<C>::open(
        DIR,
        options(&after, segment, preallocate, RecoveryMode::TolerateTornTail),
    ) {
        Ok(log) => log,
        // As for a single log: sectors kept past a dropped one read as
        // damage; a point-in-time recovery must still keep what was durable.
        Err(ironwal_raft::Error::Wal(e)) if e.is_corruption() => MultiLog::<C>::open(
            DIR,
            options(&after, segment, preallocate, RecoveryMode::PointInTime),
        )
        .map_err(|e| format!("point-in-time reopen failed: {e}"))?,
        Err(e) => return Err(format!("reopen failed: {e}")),
    };
    let mut seen = BTreeMap::new();
    for g in GROUPS {
        seen.insert(g, observe(&mut log.group(g)).await);
    }
    let matches = |world: &World| GROUPS.iter().all(|g| world[g].matches(&seen[g]));
    if !worlds[acked..].iter().any(matches) {
        let mut report = String::new();
        for g in GROUPS {
            report += &format!(
                "\ngroup {g}: recovered {}\n  last acknowledged {}",
                summary(&seen[&g]),
                worlds[acked][&g].summary()
            );
        }
        return Err(format!(
            "crash at op {crash_at} of {} ({mode:?}, segments of {segment}, preallocate \
             {preallocate}): the groups' state is none of the {} states from the last \
             acknowledged one on{report}",
            dry.ops(),
            worlds.len() - acked,
        ));
    }
    // Every group takes new appends.
    for g in GROUPS {
        let next = seen[&g].last_log.map_or(1, |id| id.index + 1);
        log.group(g)
            .blocking_append(vec![entry(1000, next)])
            .await
            .map_err(|e| format!("group {g}: append after recovery failed: {e}"))?;
    }
    Ok((done, mid))
}

#[test]
fn every_groups_acknowledged_entries_and_votes_survive_power_loss() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seeds = crash_seeds(150, "multi-log crash");
    let (mut moved, mut removed, mut mid, runs) = (0, 0, 0, seeds.len());
    for seed in seeds {
        match rt.block_on(crash_and_check(seed)) {
            Ok((done, m)) => {
                moved += done.moved;
                removed += done.removed;
                mid += u32::from(m);
            }
            Err(message) => {
                panic!("seed {seed}: {message}\nrerun with IRONWAL_RAFT_CRASH_SEED={seed}")
            }
        }
    }
    println!("{runs} runs, {mid} crashed mid-workload, {moved} entries moved, {removed} segments removed");
    if runs >= 50 {
        // The workload must exercise what it claims to.
        assert!(moved > 0 && removed > 0, "moved {moved}, removed {removed}");
    }
}
