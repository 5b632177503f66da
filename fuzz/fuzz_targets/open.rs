//! Arbitrary bytes as a log directory opened, appended to and reopened in
//! every recovery mode (see `ironwal_crash::fuzz_targets::open`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ironwal_crash::fuzz_targets::open(data));
