//! Arbitrary bytes as an entry, then as a segment file read in every
//! recovery mode (see `ironwal_crash::fuzz_targets::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ironwal_crash::fuzz_targets::decode(data));
