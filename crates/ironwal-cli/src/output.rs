//! Shared output helpers: JSON entries, byte escaping, broken pipes.

use std::io;

use clap::ValueEnum;
use ironwal::{EntryRef, RecoveryMode, RecoveryReport, SegmentId};
use serde::{Deserialize, Serialize};

/// A recovery mode as a command-line value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Drop an interrupted write at the very end; fail on other damage.
    TolerateTornTail,
    /// Fail on any invalid byte, torn tail included.
    Strict,
    /// Stop at the first damage and report what follows.
    PointInTime,
    /// Skip damaged ranges, report them, and read on.
    SkipCorrupted,
}

impl From<Mode> for RecoveryMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::TolerateTornTail => RecoveryMode::TolerateTornTail,
            Mode::Strict => RecoveryMode::Strict,
            Mode::PointInTime => RecoveryMode::PointInTime,
            Mode::SkipCorrupted => RecoveryMode::SkipCorrupted,
        }
    }
}

/// One entry as `dump --json` prints it, and as `load` reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEntry {
    pub seq: u64,
    pub op: String,
    pub key: String,
    pub value: Option<String>,
    /// For an entry written in a batch: the batch's first sequence number
    /// (as far as the dump shows it), the same for all its entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
}

impl JsonEntry {
    fn new(e: &EntryRef<'_>, batch: Option<u64>) -> Self {
        JsonEntry {
            seq: e.seq.get(),
            op: e.op.as_str().to_owned(),
            key: hex::encode(e.key),
            value: e.value.map(hex::encode),
            batch,
        }
    }
}

/// Prints one entry: a `dump --json` object (with `batch`, the batch's
/// first sequence, for an entry of a batch), or a tab-separated line of
/// sequence, op, key and value (`-` for a delete).
pub fn print_entry(
    out: &mut impl std::io::Write,
    entry: &EntryRef<'_>,
    json: bool,
    batch: Option<u64>,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &JsonEntry::new(entry, batch))?;
        out.write_all(b"\n")?;
    } else {
        let value = entry.value.map_or_else(|| "-".to_owned(), escape);
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            entry.seq,
            entry.op.as_str(),
            escape(entry.key),
            value
        )?;
    }
    Ok(())
}

/// Bytes as a quoted string: printable ASCII as is, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    out.push('"');
    out
}

/// Whether an error comes from writing to a closed pipe (`ironwal dump | head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == Some(io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line, each said once: a cause whose
/// text the message already holds (ironwal's errors name their cause in
/// their own text) is not repeated.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// A progress bar on stderr, shown only when stderr is a terminal and the
/// output is not JSON; otherwise every call does nothing.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar counting bytes up to `total`.
    pub fn bytes(total: u64, json: bool, message: &'static str) -> Self {
        Self::new(
            total,
            json,
            message,
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
        )
    }

    /// A bar counting items up to `total`.
    pub fn items(total: u64, json: bool, message: &'static str) -> Self {
        Self::new(total, json, message, "{msg} [{bar:40}] {pos}/{len} ({eta})")
    }

    fn new(total: u64, json: bool, message: &'static str, template: &str) -> Self {
        use std::io::IsTerminal;
        if json || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message);
        Progress(Some(bar))
    }

    /// Moves the bar to `position`.
    pub fn set(&self, position: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Why the path the user gave is plainly not a log, if it is not: a
/// single file whose name is not a segment name and in which not one valid
/// record was found, or a directory without a single segment file (an empty
/// directory, or the log's parent given by mistake) and with no segment
/// record that lists any.
pub fn not_a_log(path: &std::path::Path, report: &RecoveryReport) -> Option<String> {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(SegmentId::parse)
        .is_some();
    let empty_file = path.is_file()
        && !named
        && report.entries == 0
        && report
            .segments
            .iter()
            .all(|s| s.valid_len == 0 && s.len > 0);
    if empty_file {
        return Some(format!(
            "{}: no valid record found: not a write-ahead log segment",
            path.display()
        ));
    }
    let no_segments = path.is_dir() && report.segments.is_empty() && report.dropped.is_empty();
    no_segments.then(|| {
        format!(
            "{}: no segment files (<20 digits>.wal) in this directory: not a log",
            path.display()
        )
    })
}

/// A sequence gap as `verify --json` and `stats --json` print it.
#[derive(Debug, serde::Serialize)]
pub struct JsonGap {
    segment: String,
    offset: u64,
    after: u64,
    next: u64,
}

impl JsonGap {
    /// Every gap of a report.
    pub fn all(report: &RecoveryReport) -> Vec<JsonGap> {
        report
            .gaps
            .iter()
            .map(|g| JsonGap {
                segment: g.segment.display().to_string(),
                offset: g.offset,
                after: g.after.get(),
                next: g.next.get(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = io::Error::new(io::ErrorKind::InvalidInput, "Too many levels");
        let error = ironwal::Error::Io {
            path: "x.wal".into(),
            source: io,
        };
        let error = anyhow::Error::new(error);
        assert_eq!(error_line(&error), "I/O error on x.wal: Too many levels");
        let error = error.context("repair failed");
        assert_eq!(
            error_line(&error),
            "repair failed: I/O error on x.wal: Too many levels"
        );
    }
}
