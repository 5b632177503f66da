//! Shared output helpers: JSON entries, byte escaping, broken pipes.

use std::io;

use clap::ValueEnum;
use ironwal::{EntryRef, RecoveryMode};
use serde::Serialize;

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

/// One entry as `dump --json` prints it.
#[derive(Debug, Serialize)]
pub struct JsonEntry {
    pub seq: u64,
    pub op: &'static str,
    pub key: String,
    pub value: Option<String>,
}

impl From<&EntryRef<'_>> for JsonEntry {
    fn from(e: &EntryRef<'_>) -> Self {
        JsonEntry {
            seq: e.seq.get(),
            op: e.op.as_str(),
            key: hex::encode(e.key),
            value: e.value.map(hex::encode),
        }
    }
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
