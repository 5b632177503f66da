//! `ironwal bench`: write a workload into a fresh log, reopen it, replay it,
//! and print what it cost.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ironwal::storage::default_storage;
use ironwal::{Options, Seq, SyncPolicy, Wal, WriteBatch};
use ironwal_cli::measure::{peak_rss_mib, percentile_us, CountingStorage};
use serde::Serialize;

use crate::output::Progress;

/// Write a workload into a fresh log with the default options (unless told
/// otherwise), reopen and replay it, and print append and replay throughput.
///
/// The workload: each writer appends Puts of `--value-size` bytes under
/// distinct keys, with a Delete every 20th operation and a 4-operation batch
/// every 50th.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the log; it must be empty or absent, and is kept.
    /// Default: a temporary directory, removed afterwards.
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Threads appending concurrently.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub writers: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_name = "B")]
    pub value_size: usize,
    /// Operations to append in all (batch operations count one each).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub entries: u64,
    /// Sync policy: always, never, bytes:N or interval:MS.
    #[arg(long, default_value = "always", value_name = "POLICY")]
    pub sync: SyncArg,
    /// Print one JSON object with the results, and nothing else on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A sync policy as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncArg(SyncPolicy);

impl FromStr for SyncArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let number = |n: &str| n.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
        let policy = match s.split_once(':') {
            None if s == "always" => SyncPolicy::Always,
            None if s == "never" => SyncPolicy::Never,
            Some(("bytes", n)) => SyncPolicy::Bytes(number(n)?),
            Some(("interval", ms)) => SyncPolicy::Interval(Duration::from_millis(number(ms)?)),
            _ => {
                return Err(format!(
                    "{s:?}: expected always, never, bytes:N or interval:MS"
                ))
            }
        };
        Ok(SyncArg(policy))
    }
}

impl fmt::Display for SyncArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SyncPolicy::Always => f.write_str("always"),
            SyncPolicy::Never => f.write_str("never"),
            SyncPolicy::Bytes(n) => write!(f, "bytes:{n}"),
            SyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Results {
    writers: usize,
    value_size: usize,
    entries: u64,
    sync: String,
    entries_per_sec: f64,
    mb_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    fsyncs: u64,
    /// Appending threads woken as group-commit rounds ended, and those of
    /// them woken for nothing.
    wakeups: u64,
    idle_wakeups: u64,
    log_bytes: u64,
    recover_ms: f64,
    replay_mb_per_sec: f64,
    peak_rss_mb: f64,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    ensure!(args.writers > 0, "--writers must be at least 1");
    ensure!(args.entries > 0, "--entries must be at least 1");
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            let fresh = !dir.exists() || std::fs::read_dir(dir)?.next().is_none();
            ensure!(
                fresh,
                "{} is not empty; bench needs a fresh directory",
                dir.display()
            );
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("ironwal-bench-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };

    let storage = Arc::new(CountingStorage::new(default_storage()));
    let options = || {
        Options::default()
            .sync_policy(args.sync.0)
            .storage(storage.clone())
    };
    let wal = Arc::new(Wal::open(&dir, options())?);
    let start_syncs = storage.syncs();
    let (elapsed, mut latencies) = append_workload(&wal, args)?;
    let fsyncs = storage.syncs() - start_syncs;
    let metrics = wal.metrics();
    Arc::into_inner(wal)
        .context("writers still hold the log")?
        .close()?;

    let opened = Instant::now();
    let wal = Wal::open(&dir, options())?;
    let recover = opened.elapsed();
    // Bytes of records, not file sizes: segments are preallocated.
    let log_bytes = wal.recovery_report().bytes;
    let replayed = Instant::now();
    let mut reader = wal.replay(Seq::ZERO)?;
    let mut count = 0u64;
    let mut payload = 0u64;
    while let Some(entry) = reader.next_entry()? {
        count += 1;
        payload += (entry.key.len() + entry.value.map_or(0, <[u8]>::len)) as u64;
    }
    let replay = replayed.elapsed();
    std::hint::black_box(payload);
    ensure!(
        count == args.entries,
        "replay found {count} entries, {} were written",
        args.entries
    );
    wal.close()?;

    latencies.sort_unstable();
    let mb = |bytes: u64, time: Duration| bytes as f64 / 1e6 / time.as_secs_f64().max(1e-9);
    let results = Results {
        writers: args.writers,
        value_size: args.value_size,
        entries: args.entries,
        sync: args.sync.to_string(),
        entries_per_sec: args.entries as f64 / elapsed.as_secs_f64().max(1e-9),
        mb_per_sec: mb(log_bytes, elapsed),
        p50_us: percentile_us(&latencies, 0.50),
        p99_us: percentile_us(&latencies, 0.99),
        p999_us: percentile_us(&latencies, 0.999),
        fsyncs,
        wakeups: metrics.wakeups,
        idle_wakeups: metrics.idle_wakeups,
        log_bytes,
        recover_ms: recover.as_secs_f64() * 1e3,
        replay_mb_per_sec: mb(log_bytes, replay),
        peak_rss_mb: peak_rss_mib().unwrap_or(f64::NAN),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &results)?;
        writeln!(out)?;
    } else {
        print_human(
            &mut out,
            &results,
            args.dir.as_deref().unwrap_or(&dir),
            args.dir.is_none(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the writers; returns the wall time and every append's latency in ns.
fn append_workload(wal: &Arc<Wal>, args: &Args) -> Result<(Duration, Vec<u64>)> {
    let writers = args.writers as u64;
    let barrier = Arc::new(Barrier::new(args.writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let share = args.entries / writers + u64::from(w < args.entries % writers);
            let wal = Arc::clone(wal);
            let barrier = Arc::clone(&barrier);
            let value_size = args.value_size;
            std::thread::spawn(move || -> ironwal::Result<(Vec<u64>, Instant)> {
                barrier.wait();
                let latencies = write_share(&wal, w, share, value_size)?;
                Ok((latencies, Instant::now()))
            })
        })
        .collect();
    let first = wal.last_seq().get();
    barrier.wait();
    let started = Instant::now();
    let progress = Progress::items(args.entries, args.json, "appending");
    while !handles.iter().all(|h| h.is_finished()) {
        progress.set(wal.last_seq().get() - first);
        std::thread::sleep(Duration::from_millis(10));
    }
    progress.finish();
    let mut latencies = Vec::with_capacity(usize::try_from(args.entries).unwrap_or(0));
    // The run ends when the last writer finishes, not when this thread,
    // which polls for the progress bar, notices.
    let mut finished = started;
    for handle in handles {
        match handle.join() {
            Ok(result) => {
                let (writer, done) = result?;
                latencies.extend(writer);
                finished = finished.max(done);
            }
            Err(_) => bail!("a writer thread panicked"),
        }
    }
    Ok((finished - started, latencies))
}

fn write_share(wal: &Wal, writer: u64, share: u64, value_size: usize) -> ironwal::Result<Vec<u64>> {
    // Values differ between appends without costing a random generator call each.
    let pattern: Vec<u8> = (0..value_size + 256)
        .map(|i| ((i as u64 * 2654435761) ^ writer) as u8)
        .collect();
    let mut latencies = Vec::with_capacity(usize::try_from(share).unwrap_or(0));
    let mut key = Vec::with_capacity(32);
    let mut batch = WriteBatch::new();
    let mut done = 0u64;
    while done < share {
        let value = &pattern[(done % 256) as usize..][..value_size];
        key.clear();
        write!(key, "user:{writer:03}:{done:012}").ok();
        let started = Instant::now();
        let ops = if done % 50 == 49 && share - done >= 4 {
            batch.clear();
            for i in 0..4u8 {
                key.push(i);
                batch.put(&key, value);
                key.pop();
            }
            wal.write_batch(&batch)?;
            4
        } else if done % 20 == 19 {
            wal.delete(&key)?;
            1
        } else {
            wal.put(&key, value)?;
            1
        };
        latencies.push(started.elapsed().as_nanos() as u64);
        done += ops;
    }
    Ok(latencies)
}

fn print_human(out: &mut impl Write, r: &Results, dir: &Path, removed: bool) -> io::Result<()> {
    writeln!(
        out,
        "ironwal bench: {} entries, {} writer(s), {}-byte values, sync {}",
        r.entries, r.writers, r.value_size, r.sync
    )?;
    writeln!(
        out,
        "  append:  {:.0} entries/s, {:.1} MB/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        r.entries_per_sec, r.mb_per_sec, r.p50_us, r.p99_us, r.p999_us
    )?;
    let per_sync = if r.fsyncs > 0 {
        r.entries as f64 / r.fsyncs as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "  fsyncs:  {} ({per_sync:.1} entries per fsync)",
        r.fsyncs
    )?;
    writeln!(
        out,
        "  wakeups: {} ({} woken for nothing)",
        r.wakeups, r.idle_wakeups
    )?;
    writeln!(
        out,
        "  reopen:  recovered {} bytes in {:.1} ms",
        r.log_bytes, r.recover_ms
    )?;
    writeln!(out, "  replay:  {:.0} MB/s", r.replay_mb_per_sec)?;
    writeln!(out, "  peak RSS: {:.1} MB", r.peak_rss_mb)?;
    let fate = if removed { " (removed)" } else { "" };
    writeln!(out, "  log:     {}{fate}", dir.display())
}
