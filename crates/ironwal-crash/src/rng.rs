//! The seeded generator every harness run replays from (SplitMix64), shared
//! with the test suites through `ironwal-testkit`.

pub use ironwal_testkit::Rng;
