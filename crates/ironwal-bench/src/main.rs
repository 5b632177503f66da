//! `ironwal-bench`: the same workloads, in one run, against ironwal and the
//! write-ahead logs a Rust developer would pick instead (okaywal,
//! raft-engine, walrus-rust, fjall and, when built with the `rocksdb` feature,
//! RocksDB), beside raw-disk ceilings and kevo's quoted figures. It prints one
//! table with each peer's figure and ironwal's ratio to it.
//!
//! ```text
//! cargo run --release -p ironwal-bench                       # the full run (~3 min on 2 cores)
//! cargo run --release -p ironwal-bench -- --quick            # a smoke run, under a minute
//! cargo run --release -p ironwal-bench --features rocksdb    # with RocksDB (C++ build: slow, needs libclang-dev)
//! cargo run --release -p ironwal-bench -- --only ironwal,fjall --workloads W1,W4,W5 --json
//! ```
//!
//! The workloads (all with an 8-byte key per entry; MB = 10^6 bytes of key
//! and value):
//!
//! * W1: durable appends of 100-byte values from 1, 4, 16 and 64 threads,
//!   each cell time-bounded: appends/s, p50 and p99 latency.
//! * W2: unsynced appends from one thread, 100 B and 1 KiB values:
//!   appends/s and MB/s, until everything is handed to the OS.
//! * W3: unsynced 1 MiB values from one thread: MB/s.
//! * W4: replay (reopen and read back everything) of a 1 GiB log of 1 KiB
//!   values, written unsynced beforehand: MB/s, from a warm page cache.
//! * W5: the peak RSS of that replay.
//!
//! The raw ceilings use `std::fs` alone: 116-byte appends each followed by
//! fdatasync, on a fresh file and over pre-zeroed synced blocks (shown in
//! every W1 case), one 256 MiB write + fdatasync (W3), one write(2) per
//! record (W2, W3) and 1 MiB read(2)s of the log (W4, W5). kevo's rows are
//! the issue's figures, quoted, not measured.
//!
//! Every measurement runs in a child process (this binary again, with a
//! hidden `cell` subcommand), so no peer's threads, caches or memory linger
//! into the next measurement, and W5 is each replay's own high-water mark.
//!
//! Exit status: 0 when every cell was measured or is N/A for a stated reason,
//! 1 on a setup error, 2 on a usage error, 3 when at least one cell failed
//! (its row says why; the table is still printed).

mod cell;
mod drive;
mod machine;
mod peers;
mod plan;
mod raw;
mod runner;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::plan::Workload;

/// Benchmarks ironwal against okaywal, raft-engine, walrus-rust, fjall,
/// RocksDB (with `--features rocksdb`) and raw-disk ceilings, and prints one
/// table with ironwal's ratio to each.
///
/// Exit status: 0 when every cell was measured or is N/A for a stated
/// reason, 1 on a setup error, 2 on a usage error, 3 when at least one cell
/// failed (its row says why).
#[derive(Debug, Parser)]
#[command(
    name = "ironwal-bench",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Scaled-down sizes and durations (the whole run takes well under a
    /// minute), for smoke tests; the figures are not meant to be quoted.
    #[arg(long)]
    quick: bool,
    /// Run only these peers: ironwal, okaywal, raft-engine, walrus-rust,
    /// fjall, rocksdb, raw (disk ceilings), kevo (quoted figures).
    #[arg(long, value_delimiter = ',', value_name = "PEER,...")]
    only: Vec<String>,
    /// Run only these workloads (W1 to W5).
    #[arg(long, value_delimiter = ',', value_name = "W1,W2,...")]
    workloads: Vec<Workload>,
    /// Where the logs are written: a fresh directory is made inside it and
    /// removed afterwards. Default: the system's temporary directory.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// Print one JSON object per table row, one per line, and nothing else
    /// on stdout (the header and progress go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Runs one measurement described by a JSON spec and prints its outcome
    /// as JSON (the harness runs each measurement this way).
    #[command(hide = true)]
    Cell { spec: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.internal {
        Some(Internal::Cell { spec }) => cell::run_child(&spec),
        None => runner::run(&runner::Settings {
            quick: cli.quick,
            only: cli.only,
            workloads: cli.workloads,
            dir: cli.dir,
            json: cli.json,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ironwal-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
