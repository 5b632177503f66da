//! Helpers shared by the test modules.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ironwal::{Entry, LogReader, Op, RecoveryMode, RecoveryReport, Seq};

/// The directory of kevo-written vectors (`../shared/compat` from the
/// project root), or `IRONWAL_COMPAT_DIR` if set.
pub fn compat_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IRONWAL_COMPAT_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat")
}

/// An operation as a manifest (and `ironwal dump --json`) spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub seq: u64,
    pub op: Op,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl From<&Entry> for Expected {
    fn from(e: &Entry) -> Self {
        Expected {
            seq: e.seq.get(),
            op: e.op,
            key: e.key.clone(),
            value: e.value.clone(),
        }
    }
}

pub fn parse_op(name: &str) -> Op {
    match name {
        "put" => Op::Put,
        "delete" => Op::Delete,
        "merge" => Op::Merge,
        other => panic!("unknown op {other:?} in manifest"),
    }
}

/// Reads a whole log (directory or file), returning what it yielded before
/// any error, the error, and the report.
pub fn read_all(
    path: &Path,
    mode: RecoveryMode,
) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
    read_from(path, mode, Seq::ZERO)
}

pub fn read_from(
    path: &Path,
    mode: RecoveryMode,
    from: Seq,
) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
    let mut reader = LogReader::open(path, mode)
        .expect("open reader")
        .from_seq(from);
    let mut entries = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(e)) => entries.push(e.to_entry()),
            Ok(None) => return (entries, None, reader.report().clone()),
            Err(e) => return (entries, Some(e), reader.report().clone()),
        }
    }
}

/// Copies a directory's files (not recursive) into a new temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let to = dir.path().join(entry.file_name());
            std::fs::copy(entry.path(), &to).unwrap();
            let mut perms = std::fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&to, perms).unwrap();
        }
    }
    dir
}
