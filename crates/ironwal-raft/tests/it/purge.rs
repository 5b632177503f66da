//! Purge across many segments: whole segments go, the entries kept and the
//! latest metadata stay, also after a reopen.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};

use crate::{describe, entries, log_id, observe, small, Store};

const SEGMENT: u64 = 2 * 1024;

#[tokio::test]
async fn purge_deletes_whole_segments_and_keeps_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(SEGMENT, 4096)).unwrap();
    // The vote and committed id are written once, into the first segment.
    store.save_vote(&Vote::new(1, 1)).await.unwrap();
    for start in (1..=2000).step_by(10) {
        store
            .blocking_append(entries(1, start..=start + 9))
            .await
            .unwrap();
    }
    store.save_committed(Some(log_id(1, 1900))).await.unwrap();
    let before = store.segments().len();
    assert!(before > 30, "only {before} segments");

    store.purge(log_id(1, 1500)).await.unwrap();
    let after = store.segments().len();
    assert!(
        after < before / 3,
        "{before} segments before the purge, {after} after"
    );
    let first = store.segments()[0].first_seq.unwrap();
    assert!(first.get() > 1, "the first segment was kept");

    let seen = observe(&mut store).await;
    assert_eq!(seen.last_purged, Some(log_id(1, 1500)));
    assert_eq!(seen.entries.len(), 500);
    assert_eq!(seen.entries[0].0, log_id(1, 1501));
    assert_eq!(seen.vote, Some(Vote::new(1, 1)));
    assert_eq!(seen.committed, Some(log_id(1, 1900)));
    drop(store);

    let mut store = Store::open(dir.path(), small(SEGMENT, 4096)).unwrap();
    assert_eq!(observe(&mut store).await, seen);
    let want: Vec<_> = entries(1, 1501..=2000).iter().map(describe).collect();
    let got = store.try_get_log_entries(1501..=2000).await.unwrap();
    assert_eq!(got.iter().map(describe).collect::<Vec<_>>(), want);
}

#[tokio::test]
async fn purging_everything_keeps_the_place_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(SEGMENT, 4096)).unwrap();
    store.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
    for start in (1..=800).step_by(20) {
        store
            .blocking_append(entries(3, start..=start + 19))
            .await
            .unwrap();
    }
    store.save_committed(Some(log_id(3, 800))).await.unwrap();
    // Beyond the last entry, as openraft does after installing a snapshot.
    store.purge(log_id(3, 900)).await.unwrap();
    assert!(store.segments().len() <= 2, "{:?}", store.segments());
    let seen = observe(&mut store).await;
    assert!(seen.entries.is_empty());
    assert_eq!(seen.last_log, Some(log_id(3, 900)));
    drop(store);

    let mut store = Store::open(dir.path(), small(SEGMENT, 4096)).unwrap();
    assert_eq!(observe(&mut store).await, seen);
    assert_eq!(store.recovered().vote, Some(Vote::new_committed(3, 2)));
    store.blocking_append(entries(4, 901..=905)).await.unwrap();
    drop(store);

    let mut store = Store::open(dir.path(), small(SEGMENT, 4096)).unwrap();
    let seen = observe(&mut store).await;
    assert_eq!(seen.last_purged, Some(log_id(3, 900)));
    assert_eq!(seen.last_log, Some(log_id(4, 905)));
    assert_eq!(seen.entries.len(), 5);
    assert_eq!(seen.vote, Some(Vote::new_committed(3, 2)));
    assert_eq!(seen.committed, Some(log_id(3, 800)));
}

#[tokio::test]
async fn repeated_small_purges_keep_the_log_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), small(SEGMENT, 1024)).unwrap();
    store.save_vote(&Vote::new(1, 1)).await.unwrap();
    let mut purged = 0;
    for start in (1..=1500).step_by(5) {
        store
            .blocking_append(entries(1, start..=start + 4))
            .await
            .unwrap();
        // Like openraft: purge one batch at a time, keeping a tail.
        if start > 200 {
            purged = start - 200;
            store.purge(log_id(1, purged)).await.unwrap();
        }
    }
    let seen = observe(&mut store).await;
    assert_eq!(
        seen.entries.first().map(|e| e.0),
        Some(log_id(1, purged + 1))
    );
    assert!(
        store.segments().len() < 10,
        "{} segments",
        store.segments().len()
    );
    drop(store);
    let mut store = Store::open(dir.path(), small(SEGMENT, 1024)).unwrap();
    assert_eq!(observe(&mut store).await, seen);
}
