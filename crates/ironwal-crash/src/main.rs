//! `ironwal-crash`: runs the crash-safety harnesses.

fn main() {}
