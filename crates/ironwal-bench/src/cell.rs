//! One measurement, as the parent describes it to a child process and as the
//! child reports it back: both ends of the `cell` subcommand.
//!
//! The child prints exactly one JSON line on stdout, its [`Outcome`]; the
//! parent takes the last line that parses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{drive, peers, raw};

/// What a child measures, and where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    /// A peer name from [`crate::plan::PEER_NAMES`] (`raw` for the ceilings).
    pub peer: String,
    pub job: Job,
    /// An empty directory the child owns; the parent removes it afterwards.
    pub dir: PathBuf,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// W1: `writers` threads append durably for `millis`.
    Durable {
        writers: usize,
        value_size: usize,
        millis: u64,
    },
    /// W2, W3: one thread appends `count` values unsynced.
    Unsynced { count: u64, value_size: usize },
    /// W4's preparation: write the log that `Replay` reads.
    WriteLog { count: u64, value_size: usize },
    /// W4, W5: reopen the log and read every entry back.
    Replay { count: u64, value_size: usize },
    /// Raw ceiling: `record`-byte appends, each followed by fdatasync, to a
    /// fresh file.
    RawAppendSync { record: usize, millis: u64 },
    /// Raw ceiling: the same, overwriting blocks already written and synced.
    RawOverwriteSync { record: usize, millis: u64 },
    /// Raw ceiling: one sequential write of `bytes`, then one fdatasync.
    RawSequentialSync { bytes: u64 },
}

/// A measurement's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Appends made, or entries replayed.
    pub ops: u64,
    /// Key and value bytes appended or replayed.
    pub payload_bytes: u64,
    pub secs: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// fdatasyncs issued, where the peer lets us count them.
    pub fsyncs: Option<u64>,
    /// VmHWM of the child when it finished.
    pub peak_rss_mib: Option<f64>,
    /// Anything a reader of the figure must know (how the log was written...).
    pub note: Option<String>,
}

impl Measured {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Measured(Measured),
    Failed(String),
}

/// The child's side: runs the spec and prints the outcome.
pub fn run_child(spec_json: &str) -> Result<ExitCode> {
    let spec: Spec = serde_json::from_str(spec_json).context("parsing the cell spec")?;
    let outcome = match measure(&spec) {
        Ok(mut measured) => {
            measured.peak_rss_mib = ironwal_cli::measure::peak_rss_mib();
            Outcome::Measured(measured)
        }
        Err(e) => Outcome::Failed(format!("{e:#}")),
    };
    let failed = matches!(outcome, Outcome::Failed(_));
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &outcome)?;
    writeln!(out)?;
    out.flush()?;
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn measure(spec: &Spec) -> Result<Measured> {
    let dir = &spec.dir;
    if spec.peer == "raw" {
        return measure_raw(spec.job, dir);
    }
    let peer =
        peers::by_name(&spec.peer).with_context(|| format!("no peer named {:?}", spec.peer))?;
    let peer = &*peer;
    match spec.job {
        Job::Durable {
            writers,
            value_size,
            millis,
        } => drive::durable(
            peer,
            dir,
            writers,
            value_size,
            Duration::from_millis(millis),
        ),
        Job::Unsynced { count, value_size } => drive::unsynced(peer, dir, count, value_size),
        Job::WriteLog { count, value_size } => drive::write_log(peer, dir, count, value_size),
        Job::Replay { count, value_size } => drive::replay(peer, dir, count, value_size),
        job @ (Job::RawAppendSync { .. }
        | Job::RawOverwriteSync { .. }
        | Job::RawSequentialSync { .. }) => {
            bail!("{job:?} is a raw ceiling, not a job for {}", spec.peer)
        }
    }
}

fn measure_raw(job: Job, dir: &Path) -> Result<Measured> {
    match job {
        Job::RawAppendSync { record, millis } => {
            raw::append_sync(dir, record, Duration::from_millis(millis))
        }
        Job::RawOverwriteSync { record, millis } => {
            raw::overwrite_sync(dir, record, Duration::from_millis(millis))
        }
        Job::RawSequentialSync { bytes } => raw::sequential_sync(dir, bytes),
        Job::Unsynced { count, value_size } => raw::unsynced_writes(dir, count, value_size),
        Job::WriteLog { count, value_size } => raw::write_log(dir, count, value_size),
        Job::Replay { count, value_size } => raw::read_log(dir, count, value_size),
        Job::Durable { .. } => bail!("the raw ceilings are single-threaded loops, not W1 cells"),
    }
}
