//! Reading old Raft entries (a cache miss: a lagging or restarted
//! follower): ironwal-raft's `try_get_log_entries` against raft-engine's
//! `scan_raw_messages`, for 1, 100 and 10,000 entries starting at the
//! log's first entry and about 60 MiB into a 64 MiB segment.
//!
//! Both logs hold the same entries (256-byte values, encoded as
//! ironwal-raft encodes them), written in batches of 256 and reopened
//! before reading, so nothing is served from what writing left in memory
//! (the files are in the page cache). ironwal-raft runs with its entry
//! cache off; each read decodes the entries it returns, on both sides.
//!
//! `cargo bench -p ironwal-raft --bench raft_read [-- --reps N] [--dir D]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use ironwal_raft::{LogStore, StoreOptions};
use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};

const VALUE_LEN: usize = 256;
/// Entries that fill about 63 MiB of one 64 MiB segment.
const ENTRIES: u64 = 63 * 1024 * 1024 / (VALUE_LEN as u64 + 64);
const COUNTS: [u64; 3] = [1, 100, 10_000];

fn entry(index: u64) -> Entry<KvTypeConfig> {
    let fill = char::from(b'a' + (index % 26) as u8);
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: std::iter::repeat_n(fill, VALUE_LEN).collect(),
        }),
    }
}

fn store_options() -> StoreOptions {
    StoreOptions::default()
        .cache_bytes(0)
        .wal(ironwal::Options::default().max_segment_size(64 << 20))
}

fn fill_ironwal(dir: &Path, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let mut store = LogStore::<KvTypeConfig>::open(dir, store_options()).unwrap();
        for start in (1..=ENTRIES).step_by(256) {
            let batch: Vec<_> = (start..(start + 256).min(ENTRIES + 1)).map(entry).collect();
            store.blocking_append(batch).await.unwrap();
        }
        store.close().unwrap();
    });
}

fn engine(dir: &Path) -> raft_engine::Engine {
    let config = raft_engine::Config {
        dir: dir.to_str().expect("a UTF-8 path").to_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    };
    raft_engine::Engine::open(config).unwrap()
}

fn fill_raft_engine(dir: &Path) {
    let engine = engine(dir);
    let mut batch = raft_engine::LogBatch::default();
    for index in 1..=ENTRIES {
        let value = postcard::to_allocvec(&entry(index)).unwrap();
        batch.put(1, index.to_be_bytes().to_vec(), value).unwrap();
        if index % 256 == 0 || index == ENTRIES {
            engine.write(&mut batch, true).unwrap();
        }
    }
}

/// The median of `reps` timings of `read`.
fn median_of(reps: usize, mut read: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let started = Instant::now();
            read();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut reps = 21usize;
    let mut base: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => reps = args.next().and_then(|s| s.parse().ok()).expect("--reps N"),
            "--dir" => base = args.next().map(PathBuf::from),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    let scratch = match &base {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = scratch.path().join("ironwal-raft");
    let theirs = scratch.path().join("raft-engine");
    fill_ironwal(&ours, &rt);
    fill_raft_engine(&theirs);
    let deep = ENTRIES * 60 / 63 - 10_000;
    println!(
        "Raft-entry reads after reopening, {VALUE_LEN}-byte values, {ENTRIES} entries \
         (~63 MiB); median of {reps} ({})",
        scratch.path().display()
    );
    println!(
        "{:>7} {:>14} {:>16} {:>16} {:>7}",
        "entries", "from", "ironwal-raft", "raft-engine", "ratio"
    );
    let mut store = LogStore::<KvTypeConfig>::open(&ours, store_options()).unwrap();
    let engine = engine(&theirs);
    for count in COUNTS {
        for (name, start) in [("first entry", 1), ("~60 MiB in", deep)] {
            let a = median_of(reps, || {
                let got = rt
                    .block_on(store.try_get_log_entries(start..start + count))
                    .unwrap();
                assert_eq!(got.len() as u64, count);
            });
            let b = median_of(reps, || {
                let (from, to) = (start.to_be_bytes(), (start + count).to_be_bytes());
                let mut got = 0u64;
                engine
                    .scan_raw_messages(1, Some(&from), Some(&to), false, |_, value| {
                        let entry: Entry<KvTypeConfig> = postcard::from_bytes(value).unwrap();
                        std::hint::black_box(entry);
                        got += 1;
                        true
                    })
                    .unwrap();
                assert_eq!(got, count);
            });
            println!(
                "{count:>7} {name:>14} {:>13.1} us {:>13.1} us {:>6.2}x",
                a.as_secs_f64() * 1e6,
                b.as_secs_f64() * 1e6,
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
    }
    store.close().unwrap();
}
