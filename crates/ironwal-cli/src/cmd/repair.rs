//! `ironwal repair`: salvage every intact entry of a damaged log.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Result};
use ironwal::{DropCause, SalvageReport};
use serde::Serialize;

/// Copy every intact entry of a log, in order, with its sequence number and
/// batches kept whole, into a new directory, skipping damaged ranges; and
/// write a report of every skipped range. The repaired log verifies clean.
///
/// The original is never modified, except with `--in-place`: then the
/// originals are kept beside the repaired segments as `<name>.bak`, and the
/// swap is all or nothing: if it fails or the machine stops, the directory
/// holds the original log or the repaired one (the next open finishes an
/// interrupted swap), never a mix.
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
    // `symlink_metadata`: a dangling or looping symlink exists, and the
    // reader says what is wrong with it.
    ensure!(
        args.path.symlink_metadata().is_ok(),
        "{} does not exist",
        args.path.display()
    );
    let out_existed = args.out.as_ref().is_some_and(|out| out.exists());
    let (repaired, backups, report) = match &args.out {
        Some(out) => (out.clone(), Vec::new(), salvage_to(&args.path, out)?),
        None => {
            let done = ironwal::repair_in_place(&args.path)?;
            (args.path.clone(), done.backups, done.salvage)
        }
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
    if let Err(e) = fs::write(&report_path, serde_json::to_vec_pretty(&json)?) {
        let _ = fs::remove_file(&report_path);
        if args.out.is_none() {
            bail!(
                "the log was repaired, but its report could not be written to {}: {e}",
                report_path.display()
            );
        }
        // A copy without its report would pass for a finished repair.
        report.written.iter().for_each(|p| drop(fs::remove_file(p)));
        if !out_existed {
            let _ = fs::remove_dir(&repaired);
        }
        bail!(
            "could not write the report to {} ({e}); the partial copy was removed",
            report_path.display()
        );
    }

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

/// Salvages `source` into `out`. On failure nothing of the copy is left:
/// the library removes the files it wrote, and `out` itself if this
/// created it.
fn salvage_to(source: &Path, out: &Path) -> Result<SalvageReport> {
    let existed = out.exists();
    ironwal::salvage(source, out).map_err(|e| {
        if !existed {
            let _ = fs::remove_dir(out);
        }
        anyhow::Error::new(e).context(format!(
            "repair failed; nothing of the copy is left in {}",
            out.display()
        ))
    })
}
