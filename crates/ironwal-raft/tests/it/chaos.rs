//! Short runs of the chaos harness (`examples/chaos`): a 3-node and a
//! 5-node cluster of real processes under kills, pauses, torn tails and
//! power loss keep every acknowledged write and a linearizable history;
//! and the same run on nodes whose fdatasync lies is caught.

use std::process::{Command, Output};

use parking_lot::Mutex;

/// One chaos run at a time: each starts its own cluster of processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn chaos(test: &str, args: &[&str]) -> (Output, String) {
    let _turn = ONE_AT_A_TIME.lock();
    let seed = ironwal_testkit::test_seed(test);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(crate::example_binary("chaos"))
        .args(args)
        .args(["--seed", &seed.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run the chaos example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    (output, text)
}

#[test]
fn three_nodes_under_chaos_lose_no_acknowledged_write_and_stay_linearizable() {
    let (output, text) = chaos(
        "three_nodes_under_chaos",
        &["--nodes", "3", "--seconds", "15"],
    );
    assert!(output.status.success(), "chaos run failed:\n{text}");
    assert!(text.contains("anomalies: 0"), "{text}");
    assert!(text.contains("power losses"), "{text}");
}

#[test]
fn five_nodes_under_chaos_lose_no_acknowledged_write_and_stay_linearizable() {
    let (output, text) = chaos(
        "five_nodes_under_chaos",
        &["--nodes", "5", "--seconds", "15"],
    );
    assert!(output.status.success(), "chaos run failed:\n{text}");
    assert!(text.contains("anomalies: 0"), "{text}");
}

#[test]
fn a_cluster_whose_fsync_lies_fails_the_chaos_check_in_its_default_duration() {
    // No --seconds: the default duration is what must catch it.
    let (output, text) = chaos("lying_fsync_under_chaos", &["--lying-fsync"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the lying cluster passed:\n{text}"
    );
    // Failed on anomalies, not on a harness error: lost acknowledged
    // writes, stale reads, or a node whose log no longer opens (an older
    // segment torn where the lying fsync had claimed it durable).
    let found = text
        .lines()
        .find_map(|l| l.strip_prefix("anomalies: "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(found.is_some_and(|n| n > 0), "no anomaly reported:\n{text}");
    assert!(
        ["lacks", "not linearizable", "exited on its own"]
            .iter()
            .any(|what| text.contains(what)),
        "the check failed, but not on lost writes, linearizability or a log that no longer opens:\n{text}"
    );
}
