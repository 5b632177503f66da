//! `ironwal repair`: salvage every intact entry of a damaged log.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use ironwal::storage::{FsStorage, Storage};
use ironwal::{DropCause, SalvageReport};
use serde::Serialize;

/// Copy every intact entry of a log, in order, with its sequence number and
/// batches kept whole, into a new directory, skipping damaged ranges; and
/// write a report of every skipped range. The repaired log verifies clean.
///
/// The original is never modified, except with `--in-place`: then the
/// originals are kept beside the repaired segments as `<name>.bak`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The damaged log directory (or one segment file, with `--out`).
    pub path: PathBuf,
    /// Where to write the repaired log (must be absent or empty).
    #[arg(long, value_name = "NEW_DIR", required_unless_present = "in_place")]
    pub out: Option<PathBuf>,
    /// Repair the directory itself, keeping each original segment beside
    /// the repaired one as `<name>.bak`. Refused while a writer holds the log.
    #[arg(long, conflicts_with = "out")]
    pub in_place: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The report file written into the repaired directory.
const REPORT_FILE: &str = "ironwal-repair-report.json";

#[derive(Debug, Serialize)]
struct JsonReport {
    source: String,
    repaired: String,
    entries: u64,
    segments: Vec<String>,
    skipped: Vec<JsonSkipped>,
    backups: Vec<String>,
}

#[derive(Debug, Serialize)]
struct JsonSkipped {
    segment: String,
    offset: u64,
    len: u64,
    cause: &'static str,
    reason: String,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    ensure!(args.path.exists(), "{} does not exist", args.path.display());
    let (repaired, backups, report) = match &args.out {
        Some(out) => (out.clone(), Vec::new(), ironwal::salvage(&args.path, out)?),
        None => in_place(&args.path)?,
    };
    let json = JsonReport {
        source: args.path.display().to_string(),
        repaired: repaired.display().to_string(),
        entries: report.entries,
        segments: report
            .written
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        skipped: report
            .skipped()
            .iter()
            .map(|d| JsonSkipped {
                segment: d.segment.display().to_string(),
                offset: d.offset,
                len: d.len,
                cause: match d.cause {
                    DropCause::TornTail => "torn_tail",
                    DropCause::Corruption => "corruption",
                },
                reason: d.kind.to_string(),
            })
            .collect(),
        backups: backups.iter().map(|p| p.display().to_string()).collect(),
    };
    let report_path = repaired.join(REPORT_FILE);
    fs::write(&report_path, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", report_path.display()))?;

    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &json)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "repaired {} entries into {}",
        json.entries, json.repaired
    )?;
    for s in &json.skipped {
        writeln!(
            out,
            "skipped  {} bytes at {} offset {} ({}): {}",
            s.len, s.segment, s.offset, s.cause, s.reason
        )?;
    }
    if json.skipped.is_empty() {
        writeln!(out, "skipped  nothing: the log was intact")?;
    }
    for backup in &json.backups {
        writeln!(out, "kept     {backup}")?;
    }
    writeln!(out, "report   {}", report_path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Salvages `dir` into a fresh directory beside it, then swaps the
/// segments: each original becomes `<name>.bak`, the repaired one takes its
/// name. Holds the log's lock throughout, so no writer can be running.
fn in_place(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>, SalvageReport)> {
    ensure!(dir.is_dir(), "--in-place needs a log directory");
    let storage = FsStorage;
    let Some(_lock) = storage.try_lock_dir(dir)? else {
        bail!(
            "{} is locked by a running writer; stop it or repair with --out",
            dir.display()
        );
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".ironwal-repair-")
        .tempdir_in(parent)?;
    let target = staging.path().join("log");
    let report = ironwal::salvage(dir, &target)?;

    let mut backups = Vec::new();
    // The segment record describes the damaged segments: it goes first (to
    // `.bak` like them), and the next open records the repaired log.
    let record = dir.join(ironwal::RECORD_FILE);
    if record.exists() {
        let backup = dir.join(format!("{}.bak", ironwal::RECORD_FILE));
        ensure!(
            !backup.exists(),
            "{} already exists; move it away first",
            backup.display()
        );
        fs::rename(&record, &backup).with_context(|| format!("renaming {}", record.display()))?;
        storage.sync_dir(dir)?;
        backups.push(backup);
    }
    for segment in &report.source.segments {
        let mut backup = segment.path.clone().into_os_string();
        backup.push(".bak");
        let backup = PathBuf::from(backup);
        ensure!(
            !backup.exists(),
            "{} already exists; move it away first",
            backup.display()
        );
        fs::rename(&segment.path, &backup)
            .with_context(|| format!("renaming {}", segment.path.display()))?;
        backups.push(backup);
    }
    for repaired in &report.written {
        let name = repaired.file_name().context("segment without a name")?;
        fs::rename(repaired, dir.join(name))
            .with_context(|| format!("moving {}", repaired.display()))?;
    }
    storage.sync_dir(dir)?;
    let mut report = report;
    report.written = (report.written.iter())
        .filter_map(|p| Some(dir.join(p.file_name()?)))
        .collect();
    Ok((dir.to_path_buf(), backups, report))
}
