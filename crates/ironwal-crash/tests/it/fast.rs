//! Simulated power loss: the fast tier of the power-loss harness, and proof
//! that it catches a log that does not sync.

use ironwal_crash::power_loss;
use ironwal_crash::rng::Rng;

fn seed() -> u64 {
    match std::env::var("IRONWAL_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("IRONWAL_CRASH_SEED is a number"),
        Err(_) => Rng::fresh_seed(),
    }
}

#[test]
fn power_loss_never_loses_an_acknowledged_entry() {
    let seed = seed();
    let runs: u64 = std::env::var("IRONWAL_CRASH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_500);
    let tally = power_loss::run_many(seed, runs, None);
    println!("power-loss: first seed {seed}: {tally:?}");
    assert!(
        tally.failures.is_empty(),
        "rerun with IRONWAL_CRASH_SEED={seed}: {:#?}",
        tally.failures
    );
    assert_eq!((tally.lost_acked, tally.wrong), (0, 0));
    assert!(tally.acked > 0 && tally.crashes >= runs);
}

#[test]
fn power_loss_harness_catches_a_wal_that_does_not_sync() {
    let mut seeder = Rng::new(seed());
    let lost: u64 = (0..200)
        .map(|_| power_loss::run(seeder.next_u64(), true).lost_acked)
        .sum();
    assert!(
        lost > 0,
        "with fdatasync disabled, no acknowledged entry was lost: the harness has no teeth"
    );
}
