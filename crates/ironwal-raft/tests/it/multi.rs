//! The multi-raft log: openraft's suite on its groups (one alone, and
//! groups of one log used at once), reopening, isolation between groups,
//! removal, and retention that a lagging group does not pin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironwal_raft::kv::KvStateMachine;
use ironwal_raft::{MultiLog, MultiLogOptions};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, Entry, EntryPayload, RaftLogReader, StorageError, StorageIOError, Vote};
use tempfile::TempDir;

use crate::{describe, entry, log_id, observe, Observed, Store, C};

type Multi = MultiLog<C>;

fn options(segment: u64) -> MultiLogOptions {
    MultiLogOptions::default()
        .cache_bytes(4096)
        .wal(ironwal::Options::default().max_segment_size(segment))
}

fn failed(e: impl ToString) -> StorageError<u64> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

/// Each build: a new multi-log in a new directory, and one of its groups.
struct FreshMultiLog;

impl StoreBuilder<C, Store, KvStateMachine, (TempDir, Multi)> for FreshMultiLog {
    async fn build(&self) -> Result<((TempDir, Multi), Store, KvStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(failed)?;
        let log = Multi::open(dir.path(), options(256 * 1024)).map_err(failed)?;
        let store = log.group(7);
        Ok(((dir, log), store, KvStateMachine::new()))
    }
}

#[test]
fn openraft_conformance_suite_passes_for_a_group() {
    Suite::test_all(FreshMultiLog).unwrap();
}

/// Each build: a new group of one multi-log that other suites use at once.
struct SharedMultiLog {
    log: Arc<Multi>,
    next: Arc<AtomicU64>,
}

impl StoreBuilder<C, Store, KvStateMachine, ()> for SharedMultiLog {
    async fn build(&self) -> Result<((), Store, KvStateMachine), StorageError<u64>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(((), self.log.group(id), KvStateMachine::new()))
    }
}

#[test]
fn openraft_conformance_suite_passes_for_groups_used_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the suites' purges run retention across groups.
    let log = Arc::new(Multi::open(dir.path(), options(16 * 1024)).unwrap());
    let next = Arc::new(AtomicU64::new(1));
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let builder = SharedMultiLog {
                    log: Arc::clone(&log),
                    next: Arc::clone(&next),
                };
                scope.spawn(move || Suite::test_all(builder).map_err(|e| e.to_string()))
            })
            .collect();
        for run in runs {
            run.join().unwrap().unwrap();
        }
    });
    assert!(log.groups().len() > 2, "each case took a group of its own");
    // Everything the suites left reopens as it was.
    let before = log.groups();
    let entries = log.entries();
    log.close().unwrap();
    drop(log);
    let log = Multi::open(dir.path(), options(16 * 1024)).unwrap();
    assert!(log.groups().iter().all(|g| before.contains(g)));
    assert_eq!(log.entries(), entries);
}

/// An entry of `group`: its payload names the group, so that an entry
/// showing up in another group would be seen.
fn tagged(group: u64, term: u64, index: u64) -> Entry<C> {
    let mut e = entry(term, index);
    if let EntryPayload::Normal(ironwal_raft::kv::KvRequest::Set { key, .. }) = &mut e.payload {
        *key = format!("group {group} {key}");
    }
    e
}

fn tagged_run(group: u64, term: u64, range: std::ops::RangeInclusive<u64>) -> Vec<Entry<C>> {
    range.map(|i| tagged(group, term, i)).collect()
}

async fn observe_all(log: &Multi, groups: &[u64]) -> Vec<Observed> {
    let mut seen = Vec::new();
    for &g in groups {
        seen.push(observe(&mut log.group(g)).await);
    }
    seen
}

#[tokio::test]
async fn groups_reopen_each_as_it_was_and_see_only_their_own_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = Multi::open(dir.path(), options(8 * 1024)).unwrap();
    let groups = [1, 2, 3, u64::MAX];
    let mut stores: Vec<Store> = groups.iter().map(|&g| log.group(g)).collect();
    // Interleaved: each round, every group appends, some truncate, purge,
    // vote and commit.
    for round in 0..20u64 {
        for (store, &g) in stores.iter_mut().zip(&groups) {
            let first = round * 5 + 1;
            store
                .blocking_append(tagged_run(g, 1, first..=first + 4))
                .await
                .unwrap();
            if g == 2 && round % 4 == 3 {
                store.truncate(log_id(1, first + 3)).await.unwrap();
                store
                    .blocking_append(tagged_run(g, 1, first + 3..=first + 4))
                    .await
                    .unwrap();
            }
            if g == 3 && round % 5 == 4 {
                store.purge(log_id(1, first)).await.unwrap();
            }
            store.save_vote(&Vote::new(round + g % 7, 1)).await.unwrap();
            store
                .save_committed(Some(log_id(1, first + 2)))
                .await
                .unwrap();
        }
    }
    let before = observe_all(&log, &groups).await;
    for (seen, &g) in before.iter().zip(&groups) {
        let tag = format!("group {g} ");
        assert!(seen
            .entries
            .iter()
            .all(|(_, payload)| payload.contains(&tag)));
    }
    assert_eq!(before[2].last_purged, Some(log_id(1, 96)));
    log.close().unwrap();
    drop((stores, log));

    let log = Multi::open(dir.path(), options(8 * 1024)).unwrap();
    assert_eq!(log.groups(), groups.to_vec());
    assert_eq!(observe_all(&log, &groups).await, before);
    assert_eq!(log.recovered().groups, 4);
    let group = log.group(1);
    assert_eq!(group.recovered().entries, 100);
    assert_eq!(group.recovered().vote, Some(Vote::new(20, 1)));
    // A group never written is empty, and appends start at any index.
    let mut fresh = log.group(42);
    assert_eq!(observe(&mut fresh).await.last_log, None);
    fresh
        .blocking_append(tagged_run(42, 3, 10..=11))
        .await
        .unwrap();
    assert_eq!(
        fresh.get_log_state().await.unwrap().last_log_id,
        Some(log_id(3, 11))
    );
}

#[tokio::test]
async fn one_fsync_covers_every_group_that_appended_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Multi::open(dir.path(), MultiLogOptions::default()).unwrap());
    let before = log.wal_metrics().fsyncs;
    let tasks: Vec<_> = (0..64u64)
        .map(|g| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut store = log.group(g);
                for i in 1..=20 {
                    store.blocking_append([tagged(g, 1, i)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let fsyncs = log.wal_metrics().fsyncs - before;
    assert_eq!(log.entries(), 64 * 20);
    // 1,280 durable appends; a sync per append would be 1,280 fsyncs.
    assert!(
        fsyncs < 640,
        "{fsyncs} fsyncs for 1,280 appends from 64 groups"
    );
}

#[tokio::test]
async fn a_removed_group_is_gone_after_reopen_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Multi::open(dir.path(), options(8 * 1024)).unwrap();
    let (mut a, mut b) = (log.group(1), log.group(2));
    a.blocking_append(tagged_run(1, 1, 1..=5)).await.unwrap();
    b.blocking_append(tagged_run(2, 1, 1..=5)).await.unwrap();
    assert!(log.remove_group(1).unwrap());
    assert!(!log.remove_group(1).unwrap());
    assert!(a.save_vote(&Vote::new(1, 1)).await.is_err());
    assert_eq!(log.groups(), vec![2]);
    log.close().unwrap();
    drop((a, b, log));

    let log = Multi::open(dir.path(), options(8 * 1024)).unwrap();
    assert_eq!(log.groups(), vec![2]);
    assert_eq!(log.entries(), 5);
    // The id may be used again, from scratch.
    let mut a = log.group(1);
    assert_eq!(observe(&mut a).await.last_log, None);
    a.blocking_append(tagged_run(1, 2, 1..=2)).await.unwrap();
}

/// Bytes of the write-ahead log's segment files.
fn disk_bytes(log: &Multi) -> u64 {
    log.segments()
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test]
async fn a_lagging_group_does_not_pin_the_disk() {
    const SEGMENT: u64 = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let options = options(SEGMENT).wal(
        ironwal::Options::default()
            .max_segment_size(SEGMENT)
            .preallocate(false),
    );
    let log = Multi::open(dir.path(), options.clone()).unwrap();
    // The laggard: a few entries and a vote, never purged.
    let mut laggard = log.group(9);
    laggard
        .blocking_append(tagged_run(9, 1, 1..=3))
        .await
        .unwrap();
    laggard.save_vote(&Vote::new(5, 2)).await.unwrap();
    let lagging = observe(&mut laggard).await;
    // A busy group appends about 200 segments' worth, keeping the last
    // 100 entries.
    let mut busy = log.group(1);
    let mut max_disk = 0;
    for i in (10..=8000u64).step_by(10) {
        busy.blocking_append(tagged_run(1, 1, i - 9..=i))
            .await
            .unwrap();
        if i % 50 == 0 && i > 100 {
            busy.purge(log_id(1, i - 100)).await.unwrap();
            log.compact().unwrap();
            max_disk = max_disk.max(disk_bytes(&log));
        }
    }
    // Live: ~100 busy entries and the laggard's 3, about 40 KiB; the
    // bound is live / ratio plus the active segment and a sealed one.
    let moved = log.retention_totals().entries_moved;
    assert!(moved >= 3, "the laggard's entries were moved ({moved})");
    assert!(
        max_disk <= 6 * SEGMENT,
        "the log grew to {max_disk} bytes with ~40 KiB live"
    );
    assert!(log.segments().len() <= 6, "{:?}", log.segments().len());
    assert_eq!(observe(&mut laggard).await, lagging);
    let busy_before = observe(&mut busy).await;
    log.close().unwrap();
    drop((busy, laggard, log));

    let log = Multi::open(dir.path(), options).unwrap();
    assert_eq!(observe(&mut log.group(9)).await, lagging);
    assert_eq!(observe(&mut log.group(1)).await, busy_before);
    let mut reader = log.group(9).reader();
    let read = reader.try_get_log_entries(1..4).await.unwrap();
    assert_eq!(
        read.iter().map(describe).collect::<Vec<_>>(),
        lagging.entries
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_lagging_group_succeed_while_retention_moves_its_entries() {
    const SEGMENT: u64 = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let options = options(SEGMENT).cache_bytes(0).wal(
        ironwal::Options::default()
            .max_segment_size(SEGMENT)
            .preallocate(false),
    );
    let log = Arc::new(Multi::open(dir.path(), options).unwrap());
    let mut laggard = log.group(9);
    laggard
        .blocking_append(tagged_run(9, 1, 1..=200))
        .await
        .unwrap();
    let expected: Vec<_> = tagged_run(9, 1, 1..=200).iter().map(describe).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let (mut reader, stop) = (laggard.reader(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let read = reader.try_get_log_entries(1..=200).await;
                let read = read.unwrap_or_else(|e| panic!("read {reads} failed: {e}"));
                assert_eq!(read.iter().map(describe).collect::<Vec<_>>(), expected);
                reads += 1;
            }
            reads
        })
    };
    let mut busy = log.group(1);
    for i in (10..=6000u64).step_by(10) {
        busy.blocking_append(tagged_run(1, 1, i - 9..=i))
            .await
            .unwrap();
        if i % 50 == 0 && i > 100 {
            busy.purge(log_id(1, i - 100)).await.unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reading.await.unwrap();
    let moved = log.retention_totals().entries_moved;
    assert!(
        moved >= 400,
        "the laggard's entries moved only {moved} times"
    );
    println!("{reads} reads of 200 entries while {moved} entries moved");
    assert!(reads > 0);
}
