//! Integration tests of ironwal-raft: openraft's conformance suite, reopen,
//! simulated power loss, retention, the 3-node example cluster and the
//! chaos harness.

mod chaos;
mod cluster;
mod crash;
mod held;
mod multi;
mod multi_crash;
mod purge;
mod reopen;
mod suite;

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use ironwal_raft::{LogStore, StoreOptions};
use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

pub(crate) type C = KvTypeConfig;
pub(crate) type Store = LogStore<C>;

/// The path of the example `name`, which `cargo test` builds; with a
/// filtered build (`cargo test --test it`) build it first: `cargo build -p
/// ironwal-raft --examples`.
pub(crate) fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p ironwal-raft --examples` (plain `cargo test` builds it)",
        bin.display()
    );
    bin
}

/// The log id of `index` proposed by node 1 in `term`.
pub(crate) fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// An entry whose payload names its term and index.
pub(crate) fn entry(term: u64, index: u64) -> Entry<C> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: format!("term {term} index {index}"),
        }),
    }
}

/// Entries `range`, all from `term`.
pub(crate) fn entries(term: u64, range: std::ops::RangeInclusive<u64>) -> Vec<Entry<C>> {
    range.map(|i| entry(term, i)).collect()
}

/// An entry as a comparable value: its log id and its payload spelled out.
pub(crate) fn describe(entry: &Entry<C>) -> (LogId<u64>, String) {
    let payload = match &entry.payload {
        EntryPayload::Blank => "blank".to_owned(),
        EntryPayload::Normal(request) => format!("{request:?}"),
        EntryPayload::Membership(m) => format!("{m:?}"),
    };
    (entry.log_id, payload)
}

/// Options for tests: small segments, so that rotation and retention
/// happen, and a small cache, so that reads go back to the log.
pub(crate) fn small(segment: u64, cache: usize) -> StoreOptions {
    StoreOptions::default()
        .cache_bytes(cache)
        .wal(ironwal::Options::default().max_segment_size(segment))
}

/// Everything a store shows openraft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub last_purged: Option<LogId<u64>>,
    pub last_log: Option<LogId<u64>>,
    pub vote: Option<Vote<u64>>,
    pub committed: Option<LogId<u64>>,
    pub entries: Vec<(LogId<u64>, String)>,
}

pub(crate) async fn observe(store: &mut Store) -> Observed {
    let state = store.get_log_state().await.unwrap();
    Observed {
        last_purged: state.last_purged_log_id,
        last_log: state.last_log_id,
        vote: store.read_vote().await.unwrap(),
        committed: store.read_committed().await.unwrap(),
        entries: store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(describe)
            .collect(),
    }
}
