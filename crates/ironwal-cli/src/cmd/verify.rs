//! `ironwal verify`: check a log and print its recovery report.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ironwal::{
    DropCause, Error, LogReader, RecordState, RecoveryMode, RecoveryReport, RECORD_FILE,
};
use serde::Serialize;

use crate::output::{not_a_log, JsonGap, Mode, Progress};

/// Read a whole log under a recovery mode and print what recovery finds.
/// Reads only: never locks, truncates or modifies the log.
///
/// Exits 0 if the log is clean, 1 if only a torn tail was found, 2 on
/// corruption or any error.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory or a single segment file.
    pub path: PathBuf,
    /// How damage is handled.
    #[arg(long, value_enum, default_value = "tolerate-torn-tail")]
    pub mode: Mode,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The verdict, most severe last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Clean,
    TornTail,
    Corrupt,
    Error,
}

impl Status {
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Status::Clean => 0,
            Status::TornTail => 1,
            Status::Corrupt | Status::Error => 2,
        })
    }
}

#[derive(Debug, Serialize)]
struct JsonReport {
    path: String,
    mode: &'static str,
    status: Status,
    segments: Vec<JsonSegment>,
    entries: u64,
    batches: u64,
    bytes: u64,
    highest_seq: Option<u64>,
    dropped: Vec<JsonDropped>,
    ignored_segments: Vec<String>,
    error: Option<JsonError>,
    /// `absent`, `checked`, or `unreadable: <why>`.
    record: Option<String>,
    gaps: Vec<JsonGap>,
    /// Bytes a live writer was still writing at the end of the log.
    in_flight: Option<u64>,
    /// Segments removed (by retention) while the log was read.
    removed_segments: Vec<String>,
}

#[derive(Debug, Serialize)]
struct JsonSegment {
    path: String,
    len: u64,
    valid_len: u64,
    entries: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

#[derive(Debug, Serialize)]
struct JsonDropped {
    segment: String,
    offset: u64,
    len: u64,
    cause: &'static str,
    reason: String,
}

#[derive(Debug, Serialize)]
struct JsonError {
    message: String,
    segment: Option<String>,
    offset: Option<u64>,
}

fn cause_name(cause: DropCause) -> &'static str {
    match cause {
        DropCause::TornTail => "torn_tail",
        DropCause::Corruption => "corruption",
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mode = RecoveryMode::from(args.mode);
    let (report, error) = match LogReader::open(&args.path, mode) {
        Ok(mut reader) => {
            let progress = Progress::bytes(reader.total_len().unwrap_or(0), args.json, "verifying");
            let mut entries = 0u64;
            let error = loop {
                match reader.next_entry() {
                    Ok(Some(_)) => {}
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
                entries += 1;
                if entries.is_multiple_of(4096) {
                    progress.set(reader.position());
                }
            };
            progress.finish();
            (Some(reader.report().clone()), error)
        }
        Err(e) => (None, Some(e)),
    };
    let not_a_log = report.as_ref().and_then(|r| not_a_log(&args.path, r));
    let status = match (&error, &report) {
        (Some(Error::Corruption { .. }), _) => Status::Corrupt,
        _ if not_a_log.is_some() => Status::Error,
        (Some(_), _) | (None, None) => Status::Error,
        (None, Some(r)) if r.has_corruption() => Status::Corrupt,
        (None, Some(r)) if r.torn_tail().is_some() => Status::TornTail,
        (None, Some(_)) => Status::Clean,
    };
    let mut out = io::stdout().lock();
    if args.json {
        let json = to_json(
            args,
            mode,
            status,
            report.as_ref(),
            error.as_ref(),
            not_a_log,
        );
        serde_json::to_writer(&mut out, &json)?;
        writeln!(out)?;
    } else {
        print_human(
            &mut out,
            args,
            mode,
            status,
            report.as_ref(),
            error.as_ref(),
            not_a_log.as_deref(),
        )?;
    }
    out.flush()?;
    Ok(status.exit_code())
}

fn to_json(
    args: &Args,
    mode: RecoveryMode,
    status: Status,
    report: Option<&RecoveryReport>,
    error: Option<&Error>,
    not_a_log: Option<String>,
) -> JsonReport {
    let display = |p: &std::path::Path| p.display().to_string();
    JsonReport {
        path: display(&args.path),
        mode: mode.name(),
        status,
        segments: report
            .map(|r| {
                r.segments
                    .iter()
                    .map(|s| JsonSegment {
                        path: display(&s.path),
                        len: s.len,
                        valid_len: s.valid_len,
                        entries: s.entries,
                        first_seq: s.first_seq.map(|q| q.get()),
                        last_seq: s.last_seq.map(|q| q.get()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        entries: report.map_or(0, |r| r.entries),
        batches: report.map_or(0, |r| r.batches),
        bytes: report.map_or(0, |r| r.bytes),
        highest_seq: report.and_then(|r| r.highest_seq).map(|q| q.get()),
        dropped: report
            .map(|r| {
                r.dropped
                    .iter()
                    .map(|d| JsonDropped {
                        segment: display(&d.segment),
                        offset: d.offset,
                        len: d.len,
                        cause: cause_name(d.cause),
                        reason: d.kind.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ignored_segments: report
            .map(|r| r.ignored_segments.iter().map(|p| display(p)).collect())
            .unwrap_or_default(),
        error: error
            .map(|e| match e {
                Error::Corruption {
                    segment, offset, ..
                } => JsonError {
                    message: e.to_string(),
                    segment: Some(display(segment)),
                    offset: Some(*offset),
                },
                _ => JsonError {
                    message: e.to_string(),
                    segment: None,
                    offset: None,
                },
            })
            .or_else(|| {
                not_a_log.map(|message| JsonError {
                    message,
                    segment: None,
                    offset: None,
                })
            }),
        record: report.map(|r| record_state(&r.record)),
        gaps: report.map(JsonGap::all).unwrap_or_default(),
        in_flight: report.and_then(|r| r.in_flight),
        removed_segments: report
            .map(|r| r.removed_segments.iter().map(|p| display(p)).collect())
            .unwrap_or_default(),
    }
}

/// How the report's segment record state is spelled in the output.
fn record_state(state: &RecordState) -> String {
    match state {
        RecordState::Absent => "absent".to_owned(),
        RecordState::Checked => "checked".to_owned(),
        RecordState::Unreadable { reason } => format!("unreadable: {reason}"),
    }
}

fn print_human(
    out: &mut impl Write,
    args: &Args,
    mode: RecoveryMode,
    status: Status,
    report: Option<&RecoveryReport>,
    error: Option<&Error>,
    not_a_log: Option<&str>,
) -> io::Result<()> {
    writeln!(out, "log:      {} (mode {mode})", args.path.display())?;
    if let Some(report) = report {
        writeln!(out, "segments: {}", report.segments.len())?;
        for s in &report.segments {
            let seqs = match (s.first_seq, s.last_seq) {
                (Some(first), Some(last)) => format!("seq {first}..={last}"),
                _ => "no entries".to_owned(),
            };
            let name = s
                .path
                .file_name()
                .unwrap_or(s.path.as_os_str())
                .to_string_lossy();
            writeln!(
                out,
                "  {name}  {} bytes ({} valid)  {} entries  {seqs}",
                s.len, s.valid_len, s.entries
            )?;
        }
        let highest = report
            .highest_seq
            .map_or_else(|| "none".to_owned(), |q| q.to_string());
        writeln!(
            out,
            "entries:  {} ({} batches), {} bytes, highest seq {highest}",
            report.entries, report.batches, report.bytes
        )?;
        for removed in &report.removed_segments {
            writeln!(
                out,
                "removed:  {} (while it was read: the writer's retention; its entries show as a gap)",
                removed.display()
            )?;
        }
        if let Some(bytes) = report.in_flight {
            writeln!(
                out,
                "live:     {bytes} bytes in flight (a writer holds the log and was writing them)"
            )?;
        }
        for d in &report.dropped {
            let what = match (d.cause, mode) {
                (DropCause::TornTail, _) => "torn tail",
                (DropCause::Corruption, RecoveryMode::SkipCorrupted) => "skipped",
                (DropCause::Corruption, _) => "corruption, not recovered",
            };
            writeln!(
                out,
                "{what}: {} bytes at {} offset {}: {}",
                d.len,
                d.segment.display(),
                d.offset,
                d.kind
            )?;
        }
        for p in &report.ignored_segments {
            writeln!(out, "ignored after the recovery point: {}", p.display())?;
        }
        let record = match &report.record {
            RecordState::Absent => {
                "none (a kevo log, or an older ironwal's): lost segments cannot be told".to_owned()
            }
            RecordState::Checked => format!("segments checked against {RECORD_FILE}"),
            RecordState::Unreadable { reason } => {
                format!("{RECORD_FILE} is unreadable ({reason}); segments not checked")
            }
        };
        writeln!(out, "record:   {record}")?;
        for g in &report.gaps {
            writeln!(
                out,
                "sequence gap (information): {} then {} at {} offset {}",
                g.after,
                g.next,
                g.segment.display(),
                g.offset
            )?;
        }
    }
    if let Some(error) = error {
        writeln!(out, "error:    {error}")?;
    } else if let Some(why) = not_a_log {
        writeln!(out, "error:    {why}")?;
    }
    let verdict = match status {
        Status::Clean => "clean",
        Status::TornTail => "torn tail (an interrupted last write; the rest is intact)",
        Status::Corrupt => "CORRUPT",
        Status::Error => "ERROR",
    };
    writeln!(out, "result:   {verdict}")
}
