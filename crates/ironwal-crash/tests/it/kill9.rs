//! The fast tier of the kill -9 harness: about a hundred real processes
//! killed while appending, each log reopened and checked.
//!
//! `IRONWAL_CRASH_SEED` reruns a seed, `IRONWAL_KILL9_CYCLES` changes the
//! number of cycles.

use std::path::Path;

use ironwal_crash::kill9;
use ironwal_crash::rng::Rng;

fn seed() -> u64 {
    match std::env::var("IRONWAL_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("IRONWAL_CRASH_SEED is a number"),
        Err(_) => Rng::fresh_seed(),
    }
}

fn child() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironwal-crash"))
}

#[test]
fn kill9_never_loses_an_acknowledged_entry() {
    let seed = seed();
    let cycles = std::env::var("IRONWAL_KILL9_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(kill9::DEFAULT_CYCLES);
    let started = std::time::Instant::now();
    let summary = kill9::run_with(child(), seed, Some(cycles), None, false);
    println!("{summary} ({:.1?})", started.elapsed());
    assert!(
        summary.passed(),
        "rerun with IRONWAL_CRASH_SEED={seed}: {:#?}",
        summary.failures
    );
    assert_eq!(summary.runs, cycles);
    assert!(summary.acked > 0, "no child acknowledged anything");
}

/// A kill only catches early acknowledgements when it lands after some
/// (on a loaded machine a child may be killed before its first): up to five
/// rounds of ten cycles, each from its own seed, must catch some.
#[test]
fn kill9_harness_catches_a_child_that_acknowledges_early() {
    let seed = seed();
    let mut seeds = Vec::new();
    for round in 0..5u64 {
        let round_seed = seed.wrapping_add(round);
        let summary = kill9::run_with(child(), round_seed, Some(10), None, true);
        println!("early acks: {summary}");
        if summary.lost_acked > 0 {
            return;
        }
        seeds.push(round_seed);
    }
    panic!(
        "seeds {seeds:?}: children acknowledging before durability lost nothing: the harness has no teeth"
    );
}
