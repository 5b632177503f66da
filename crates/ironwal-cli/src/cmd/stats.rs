//! `ironwal stats`: what a log holds, segment by segment.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ironwal::{DropCause, Histogram, LogReader, Op, RecoveryMode, RecoveryReport};
use serde::Serialize;

use crate::output::{not_a_log, JsonGap, Mode, Progress};

/// Summarise a log: its segments (size, sequences, entries), operation
/// counts, key and value size histograms, batches, fragmented entries, and
/// any torn or corrupt ranges. Reads only; never locks or modifies the log.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory or a single segment file.
    pub path: PathBuf,
    /// How damage is handled; by default damaged ranges are skipped and
    /// listed, so the whole log is summarised.
    #[arg(long, value_enum, default_value = "skip-corrupted")]
    pub mode: Mode,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default)]
struct Counts {
    puts: u64,
    deletes: u64,
    merges: u64,
    batches: u64,
    fragmented: u64,
    key_sizes: Histogram,
    value_sizes: Histogram,
    batch_sizes: Histogram,
}

#[derive(Debug, Serialize)]
struct JsonStats {
    path: String,
    segments: Vec<JsonSegment>,
    entries: u64,
    bytes: u64,
    highest_seq: Option<u64>,
    puts: u64,
    deletes: u64,
    merges: u64,
    batches: u64,
    fragmented: u64,
    key_sizes: Vec<(u64, u64)>,
    value_sizes: Vec<(u64, u64)>,
    batch_sizes: Vec<(u64, u64)>,
    torn_tail: Option<JsonRange>,
    corrupt: Vec<JsonRange>,
    /// Sequence gaps (information).
    gaps: Vec<JsonGap>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct JsonSegment {
    path: String,
    size: u64,
    valid_len: u64,
    entries: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

#[derive(Debug, Serialize)]
struct JsonRange {
    segment: String,
    offset: u64,
    len: u64,
    reason: String,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut reader = LogReader::open(&args.path, RecoveryMode::from(args.mode))?;
    let progress = Progress::bytes(reader.total_len()?, args.json, "reading");
    let mut counts = Counts::default();
    let mut items = 0u64;
    let error = loop {
        let item = match reader.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if item.is_batch() {
            counts.batches += 1;
            counts.batch_sizes.record(item.len() as u64);
        }
        counts.fragmented += u64::from(item.is_fragmented());
        for entry in item.iter() {
            match entry.op {
                Op::Put => counts.puts += 1,
                Op::Delete => counts.deletes += 1,
                Op::Merge => counts.merges += 1,
            }
            counts.key_sizes.record(entry.key.len() as u64);
            if let Some(value) = entry.value {
                counts.value_sizes.record(value.len() as u64);
            }
        }
        items += 1;
        if items.is_multiple_of(4096) {
            progress.set(reader.position());
        }
    };
    progress.finish();
    let report = reader.report();
    if let Some(why) = not_a_log(&args.path, report) {
        anyhow::bail!(why);
    }
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &to_json(args, report, &counts, error.as_ref()))?;
        writeln!(out)?;
    } else {
        print_human(&mut out, report, &counts, error.as_ref())?;
    }
    Ok(if error.is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn to_json(
    args: &Args,
    report: &RecoveryReport,
    counts: &Counts,
    error: Option<&ironwal::Error>,
) -> JsonStats {
    let range = |d: &ironwal::DroppedRange| JsonRange {
        segment: d.segment.display().to_string(),
        offset: d.offset,
        len: d.len,
        reason: d.kind.to_string(),
    };
    JsonStats {
        path: args.path.display().to_string(),
        segments: report
            .segments
            .iter()
            .map(|s| JsonSegment {
                path: s.path.display().to_string(),
                size: s.len,
                valid_len: s.valid_len,
                entries: s.entries,
                first_seq: s.first_seq.map(|q| q.get()),
                last_seq: s.last_seq.map(|q| q.get()),
            })
            .collect(),
        entries: report.entries,
        bytes: report.bytes,
        highest_seq: report.highest_seq.map(|q| q.get()),
        puts: counts.puts,
        deletes: counts.deletes,
        merges: counts.merges,
        batches: counts.batches,
        fragmented: counts.fragmented,
        key_sizes: counts.key_sizes.buckets().collect(),
        value_sizes: counts.value_sizes.buckets().collect(),
        batch_sizes: counts.batch_sizes.buckets().collect(),
        torn_tail: report.torn_tail().map(range),
        corrupt: report
            .dropped
            .iter()
            .filter(|d| d.cause == DropCause::Corruption)
            .map(range)
            .collect(),
        gaps: JsonGap::all(report),
        error: error.map(ToString::to_string),
    }
}

fn print_human(
    out: &mut impl Write,
    report: &RecoveryReport,
    counts: &Counts,
    error: Option<&ironwal::Error>,
) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>12} {:>12} {:>10} {:>22}",
        "segment", "size", "valid", "entries", "sequences"
    )?;
    for s in &report.segments {
        let name = s
            .path
            .file_name()
            .unwrap_or(s.path.as_os_str())
            .to_string_lossy();
        let seqs = match (s.first_seq, s.last_seq) {
            (Some(first), Some(last)) => format!("{first}..={last}"),
            _ => "-".to_owned(),
        };
        writeln!(
            out,
            "{name:<28} {:>12} {:>12} {:>10} {seqs:>22}",
            s.len, s.valid_len, s.entries
        )?;
    }
    let highest = report
        .highest_seq
        .map_or_else(|| "none".to_owned(), |q| q.to_string());
    writeln!(out)?;
    writeln!(
        out,
        "entries      {} ({} bytes), highest seq {highest}",
        report.entries, report.bytes
    )?;
    writeln!(
        out,
        "operations   put {}, delete {}, merge {}",
        counts.puts, counts.deletes, counts.merges
    )?;
    writeln!(
        out,
        "batches      {}, fragmented entries {}",
        counts.batches, counts.fragmented
    )?;
    for (name, histogram) in [
        ("key sizes", &counts.key_sizes),
        ("value sizes", &counts.value_sizes),
        ("batch sizes", &counts.batch_sizes),
    ] {
        if histogram.count() == 0 {
            continue;
        }
        let buckets: Vec<String> = histogram
            .buckets()
            .map(|(top, n)| format!("<={top}: {n}"))
            .collect();
        writeln!(
            out,
            "{name:<12} mean {:.1}, p50 <={}, p99 <={}, max {}  [{}]",
            histogram.mean(),
            histogram.quantile(0.5),
            histogram.quantile(0.99),
            histogram.max(),
            buckets.join(", ")
        )?;
    }
    for d in &report.dropped {
        let what = match d.cause {
            DropCause::TornTail => "torn tail",
            DropCause::Corruption => "corrupt range",
        };
        writeln!(
            out,
            "{what:<12} {} bytes at {} offset {}: {}",
            d.len,
            d.segment.display(),
            d.offset,
            d.kind
        )?;
    }
    for g in &report.gaps {
        writeln!(
            out,
            "sequence gap {} then {} at {} offset {} (information)",
            g.after,
            g.next,
            g.segment.display(),
            g.offset
        )?;
    }
    if let Some(error) = error {
        writeln!(out, "error        {error}")?;
    }
    Ok(())
}
