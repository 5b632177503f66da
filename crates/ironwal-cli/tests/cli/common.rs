//! Helpers shared by the CLI test modules.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub use ironwal_testkit::compat_dir;

pub fn ironwal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(args)
        .output()
        .expect("run ironwal")
}

/// Every compat vector: its directory and manifest.
pub fn vectors() -> Vec<(PathBuf, Value)> {
    let root = compat_dir();
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("the compat vectors must be at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|dir| dir.join("manifest.json").is_file())
        .map(|dir| {
            let manifest =
                serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            (dir, manifest)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty());
    out
}

pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// `dump --json` lines as kevo's manifests list entries: batches
/// flattened, without the `batch` field (the load tests check that one).
pub fn manifest_entries(stdout: &[u8]) -> Vec<Value> {
    json_lines(stdout)
        .into_iter()
        .map(|mut line| {
            if let Some(fields) = line.as_object_mut() {
                fields.remove("batch");
            }
            line
        })
        .collect()
}

pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}
