//! The measuring parts of `ironwal bench`, shared with the comparison
//! harness (`ironwal-bench`) so both measure the same way. The command-line
//! tool itself is the `ironwal` binary.

pub mod measure;
