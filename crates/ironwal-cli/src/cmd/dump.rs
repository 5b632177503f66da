//! `ironwal dump`: print the entries of a log.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ironwal::{DropCause, LogReader, RecoveryMode, Seq};

use crate::output::{not_a_log, print_entry, Mode};

/// Print the entries of a log directory or one `.wal` file, in order,
/// batches flattened into their operations. Reads only: never locks,
/// truncates or modifies the log, so it is safe beside a live writer.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory or a single segment file.
    pub path: PathBuf,
    /// Print only entries with this sequence number or above.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// How damage is handled.
    #[arg(long, value_enum, default_value = "tolerate-torn-tail")]
    pub mode: Mode,
    /// One JSON object per line: {"seq":N,"op":"put|delete|merge","key":"<hex>","value":"<hex>"|null},
    /// plus "batch":<its first seq> for an entry written in a batch (what `ironwal load` reads).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mode = RecoveryMode::from(args.mode);
    let mut reader = LogReader::open(&args.path, mode)?.from_seq(Seq::new(args.from.unwrap_or(0)));
    let mut out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    loop {
        match reader.next_item() {
            Ok(Some(item)) => {
                let batch = item
                    .is_batch()
                    .then(|| item.iter().next().map(|e| e.seq.get()));
                for entry in item.iter() {
                    print_entry(&mut out, &entry, args.json, batch.flatten())?;
                }
            }
            Ok(None) => break,
            Err(error) => {
                out.flush()?;
                eprintln!("ironwal: {error}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    out.flush()?;
    let report = reader.report();
    if let Some(why) = not_a_log(&args.path, report) {
        eprintln!("ironwal: {why}");
        return Ok(ExitCode::from(2));
    }
    for range in &report.dropped {
        let what = match (range.cause, mode) {
            (DropCause::TornTail, _) => "dropped torn tail",
            (DropCause::Corruption, RecoveryMode::SkipCorrupted) => "skipped corrupt range",
            (DropCause::Corruption, _) => "stopped at corruption, dropped",
        };
        eprintln!(
            "ironwal: {what}: {} bytes at {} offset {} ({})",
            range.len,
            range.segment.display(),
            range.offset,
            range.kind
        );
    }
    for segment in &report.ignored_segments {
        eprintln!(
            "ironwal: ignored segment after the recovery point: {}",
            segment.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
