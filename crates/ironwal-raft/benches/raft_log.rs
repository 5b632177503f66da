//! Raft-log appends with fsync: ironwal-raft against raft-engine (tikv).
//!
//! One writer appends batches of 1 to 64 entries, each carrying a 256-byte
//! value, and waits for each batch to be durable before the next, as a Raft
//! node's log does. Both stores get the same bytes per entry: the openraft
//! entry encoded as ironwal-raft encodes it.
//!
//! * ironwal-raft: `LogStore::append` through openraft's `blocking_append`
//!   (the calling thread leads the fdatasync, `sync_on_append`).
//! * raft-engine 0.4: its key-value API, one `LogBatch::put(region, index,
//!   entry)` per entry and `Engine::write(&mut batch, true)` per batch (its
//!   `add_entries` needs protobuf message types); batch compression off, as
//!   the values are random.
//!
//! `cargo bench -p ironwal-raft --bench raft_log [-- --seconds S] [--rounds
//! N] [--groups G] [--dir D] [--no-sync-on-append]` (`--groups`: that many
//! Raft groups append at once, each with a store of its own, sharing
//! nothing but the disk; the figures are their sum) (the last: ironwal-raft hands each
//! wait to its log's background syncer, as it did before
//! `StoreOptions::sync_on_append`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironwal_raft::kv::KvTypeConfig;
use ironwal_raft::{LogStore, StoreOptions};
use openraft::storage::RaftLogStorageExt;

mod common;

use common::{entry, Noise, VALUE_LEN};

const BATCHES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Appends batches of `batch` for `warmup`, then for `measure`; returns
/// entries per second of the measured part.
fn run_ironwal(dir: &Path, batch: usize, inline: bool, warmup: Duration, measure: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = StoreOptions::default().sync_on_append(inline);
        let mut store = LogStore::<KvTypeConfig>::open(dir, options).unwrap();
        let mut noise = Noise(batch as u64);
        let mut index = 1;
        // Warm-up, then the measured run.
        let mut entries_per_sec = 0.0;
        for (phase, limit) in [(0, warmup), (1, measure)] {
            let start = Instant::now();
            let mut appended = 0u64;
            while start.elapsed() < limit {
                let entries: Vec<_> = (0..batch as u64)
                    .map(|i| entry(&mut noise, index + i))
                    .collect();
                index += batch as u64;
                store.blocking_append(entries).await.unwrap();
                appended += batch as u64;
            }
            if phase == 1 {
                entries_per_sec = appended as f64 / start.elapsed().as_secs_f64();
            }
        }
        store.close().unwrap();
        entries_per_sec
    })
}

fn run_raft_engine(dir: &Path, batch: usize, warmup: Duration, measure: Duration) -> f64 {
    let config = raft_engine::Config {
        dir: dir.to_str().expect("a UTF-8 path").to_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    };
    let engine = raft_engine::Engine::open(config).unwrap();
    let mut noise = Noise(batch as u64);
    let mut index = 1u64;
    let mut log_batch = raft_engine::LogBatch::default();
    let mut entries_per_sec = 0.0;
    for (phase, limit) in [(0, warmup), (1, measure)] {
        let start = Instant::now();
        let mut appended = 0u64;
        while start.elapsed() < limit {
            for _ in 0..batch {
                let value = postcard::to_allocvec(&entry(&mut noise, index)).unwrap();
                log_batch
                    .put(1, index.to_be_bytes().to_vec(), value)
                    .unwrap();
                index += 1;
            }
            engine.write(&mut log_batch, true).unwrap();
            appended += batch as u64;
        }
        if phase == 1 {
            entries_per_sec = appended as f64 / start.elapsed().as_secs_f64();
        }
    }
    entries_per_sec
}

/// Runs `run` in `groups` threads at once, each on a directory of its own
/// under `dir`; the entries per second of all of them together.
fn run_groups(dir: &Path, groups: usize, run: impl Fn(&Path) -> f64 + Sync) -> f64 {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..groups)
            .map(|g| {
                let run = &run;
                let dir = dir.join(format!("group-{g}"));
                std::fs::create_dir_all(&dir).unwrap();
                scope.spawn(move || run(&dir))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 2.0f64;
    let mut rounds = 3usize;
    let mut base: Option<PathBuf> = None;
    let mut inline = true;
    let mut groups = 1usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Raft groups appending at once, each to a store of its own.
            "--groups" => {
                groups = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--groups N")
            }
            // The previous path: the wait handed to the background syncer.
            "--no-sync-on-append" => inline = false,
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds S")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds N")
            }
            "--dir" => base = args.next().map(PathBuf::from),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    let measure = Duration::from_secs_f64(seconds);
    let warmup = Duration::from_secs_f64(seconds / 4.0);
    let scratch = match &base {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!(
        "Raft-log appends, {VALUE_LEN}-byte values, fsync per batch, {groups} group(s) \
         appending at once, each to its own store; {rounds} rounds of {seconds} s per case, \
         median ({})",
        scratch.path().display()
    );
    // Rounds interleave the two stores, so that a noisy neighbour on the
    // machine hurts both alike.
    let mut results = vec![(Vec::new(), Vec::new()); BATCHES.len()];
    for round in 0..rounds {
        for (i, batch) in BATCHES.into_iter().enumerate() {
            let ours = scratch.path().join(format!("ironwal-{batch}-{round}"));
            let a = run_groups(&ours, groups, |dir| {
                run_ironwal(dir, batch, inline, warmup, measure)
            });
            let theirs = scratch.path().join(format!("raft-engine-{batch}-{round}"));
            let b = run_groups(&theirs, groups, |dir| {
                run_raft_engine(dir, batch, warmup, measure)
            });
            eprintln!("round {round} batch {batch}: ironwal-raft {a:.0}/s, raft-engine {b:.0}/s");
            results[i].0.push(a);
            results[i].1.push(b);
            std::fs::remove_dir_all(&ours).unwrap();
            std::fs::remove_dir_all(&theirs).unwrap();
        }
    }
    println!(
        "{:>6} {:>16} {:>16} {:>8}",
        "batch", "ironwal-raft/s", "raft-engine/s", "ratio"
    );
    for (batch, (ours, theirs)) in BATCHES.into_iter().zip(&mut results) {
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{batch:>6} {ours:>16.0} {theirs:>16.0} {:>7.2}x",
            ours / theirs
        );
    }
}
