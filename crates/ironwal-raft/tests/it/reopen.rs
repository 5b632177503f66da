//! Close and reopen: the store shows openraft exactly what it showed before.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};

use crate::{describe, entries, entry, log_id, observe, small, Store};

#[tokio::test]
async fn reopen_restores_entries_vote_committed_truncation_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    store.blocking_append(entries(1, 1..=20)).await.unwrap();
    store.save_vote(&Vote::new(2, 1)).await.unwrap();
    store.save_committed(Some(log_id(1, 15))).await.unwrap();
    store.truncate(log_id(1, 18)).await.unwrap();
    store.blocking_append(entries(2, 18..=19)).await.unwrap();
    store.purge(log_id(1, 5)).await.unwrap();
    let before = observe(&mut store).await;
    assert_eq!(before.entries.len(), 14);
    assert_eq!(before.last_log, Some(log_id(2, 19)));
    store.close().unwrap();
    drop(store);

    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    assert_eq!(observe(&mut store).await, before);
    let recovered = store.recovered();
    assert_eq!(recovered.entries, 14);
    assert_eq!(recovered.first_index, Some(6));
    assert_eq!(recovered.last_log_id, Some(log_id(2, 19)));
    assert_eq!(recovered.vote, Some(Vote::new(2, 1)));
    assert_eq!(recovered.committed, Some(log_id(1, 15)));
    assert_eq!(recovered.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(recovered.truncations, 1);
    assert_eq!(recovered.purges, 1);
    assert!(!recovered.torn_tail);
}

#[tokio::test]
async fn append_below_the_end_replaces_the_suffix_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    store.blocking_append(entries(1, 1..=10)).await.unwrap();
    // No explicit truncate: the append writes one in its own batch.
    store.blocking_append(entries(3, 6..=8)).await.unwrap();
    let before = observe(&mut store).await;
    assert_eq!(before.last_log, Some(log_id(3, 8)));
    assert_eq!(before.entries.len(), 8);
    drop(store);

    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    assert_eq!(observe(&mut store).await, before);
}

#[tokio::test]
async fn append_leaving_a_hole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    store.blocking_append(entries(1, 1..=3)).await.unwrap();
    assert!(store.blocking_append(entries(1, 5..=6)).await.is_err());
    assert!(store
        .append_entries(vec![entry(1, 4), entry(1, 6)])
        .is_err());
    assert_eq!(observe(&mut store).await.entries.len(), 3);
}

#[tokio::test]
async fn appended_entries_are_readable_before_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    let durable = store.append_entries(entries(1, 1..=5)).unwrap();
    let read = store.try_get_log_entries(1..=5).await.unwrap();
    assert_eq!(
        read.iter().map(describe).collect::<Vec<_>>(),
        entries(1, 1..=5).iter().map(describe).collect::<Vec<_>>()
    );
    durable.await.unwrap();
}

#[tokio::test]
async fn old_entries_are_read_back_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // A 2 KiB cache holds a few dozen entries; segments of 4 KiB.
    let mut store = Store::open(dir.path(), small(4 * 1024, 2048)).unwrap();
    for start in (1..=600).step_by(12) {
        store
            .blocking_append(entries(1, start..=start + 11))
            .await
            .unwrap();
    }
    let (present, cached) = store.memory();
    assert_eq!(present, 600);
    assert!(cached <= 2048);
    assert!(store.segments().len() > 3, "{:?}", store.segments());
    let all: Vec<_> = entries(1, 1..=600).iter().map(describe).collect();
    for (start, end) in [(1, 601), (1, 2), (100, 130), (590, 601), (0, 10_000)] {
        let got = store.try_get_log_entries(start..end).await.unwrap();
        let want = &all[(start.max(1) - 1) as usize..(end.min(601) - 1) as usize];
        assert_eq!(
            got.iter().map(describe).collect::<Vec<_>>(),
            want,
            "{start}..{end}"
        );
    }
    drop(store);

    // A reopen warms the cache with the newest entries; the rest comes
    // from the log.
    let mut store = Store::open(dir.path(), small(4 * 1024, 2048)).unwrap();
    let (present, cached) = store.memory();
    assert_eq!(present, 600);
    assert!(cached > 0 && cached <= 2048, "{cached} bytes cached");
    let got = store.try_get_log_entries(..).await.unwrap();
    assert_eq!(got.iter().map(describe).collect::<Vec<_>>(), all);
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap();
    let err = Store::open(dir.path(), small(64 * 1024, 1 << 20)).unwrap_err();
    assert!(
        matches!(err, ironwal_raft::Error::Wal(ironwal::Error::Locked { .. })),
        "{err}"
    );
}
