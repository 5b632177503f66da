//! `ironwal tail`: print entries as another process appends them.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ironwal::{Follower, Seq};

use crate::output::print_entry;

/// Print the entries of a live log directory, like `tail -f`, without
/// taking the writer's lock: follows rotation to new segments and restarts
/// of the writer. Without `--follow`, prints what is there and exits.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory.
    pub path: PathBuf,
    /// Print only entries with this sequence number or above.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Keep waiting for new entries (until interrupted).
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per line, as `dump --json` prints them.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    match std::fs::metadata(&args.path) {
        Ok(meta) => ensure!(
            meta.is_dir(),
            "{} is not a directory; tail follows a log directory",
            args.path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure!(args.follow, "{} does not exist", args.path.display());
            eprintln!(
                "ironwal: {} does not exist yet; waiting for a writer to create it",
                args.path.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("{}", args.path.display())),
    }
    let mut follower = Follower::open(&args.path, Seq::new(args.from.unwrap_or(0)))?;
    let mut out = BufWriter::new(io::stdout().lock());
    loop {
        // Print everything there is, then flush before waiting.
        while let Some(entry) = follower.try_next()? {
            print_entry(&mut out, &entry, args.json)?;
        }
        out.flush()?;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(entry) = follower.next_timeout(Duration::from_millis(200))? {
            print_entry(&mut out, &entry, args.json)?;
        }
    }
}
