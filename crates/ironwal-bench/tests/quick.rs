//! The harness end to end, on its smallest run: ironwal and the raw ceilings
//! with `--quick --json`, cheap enough for every `cargo test --workspace`.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironwal-bench"))
        .args(args)
        .output()
        .expect("running ironwal-bench")
}

#[test]
fn quick_json_run_prints_only_parseable_rows_for_every_workload() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = bench(&[
        "--quick",
        "--only",
        "ironwal,raw",
        "--json",
        "--dir",
        dir_arg,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {}; stderr:\n{stderr}",
        out.status
    );

    let stdout = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();

    for workload in ["W1", "W2", "W3", "W4", "W5"] {
        let ironwal: Vec<&Value> = rows
            .iter()
            .filter(|r| r["workload"] == workload && r["peer"] == "ironwal")
            .collect();
        assert!(!ironwal.is_empty(), "no ironwal row for {workload}");
        for row in ironwal {
            assert_eq!(row["status"], "measured", "{row}");
            assert!(row["value"].as_f64().unwrap() > 0.0, "{row}");
        }
        let raw = rows
            .iter()
            .filter(|r| r["workload"] == workload)
            .filter(|r| r["peer"].as_str().unwrap().starts_with("raw"));
        for row in raw {
            assert_eq!(row["status"], "measured", "{row}");
            assert!(row["ironwal_ratio"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    // W1's four writer counts, each with ironwal and both raw loops.
    let w1 = rows.iter().filter(|r| r["workload"] == "W1").count();
    assert_eq!(w1, 4 * 3, "{stdout}");
    let p99 = rows
        .iter()
        .find(|r| r["workload"] == "W1" && r["peer"] == "ironwal")
        .and_then(|r| r["p99_us"].as_f64());
    assert!(p99.is_some_and(|us| us > 0.0));
    // Peers left out with --only leave no rows, and the run cleans up.
    assert!(!rows
        .iter()
        .any(|r| r["peer"] == "fjall" || r["peer"] == "kevo"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unknown_peers_and_workloads_are_usage_errors() {
    let out = bench(&["--quick", "--only", "ironwal,leveldb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leveldb"));

    let out = bench(&["--quick", "--workloads", "W6"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(out.stdout.is_empty());
}
