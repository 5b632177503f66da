//! One module per subcommand.

pub mod bench;
pub mod dump;
pub mod load;
pub mod repair;
pub mod stats;
pub mod tail;
pub mod verify;
