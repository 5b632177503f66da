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
        while print_next(&mut follower, &mut out, args.json, None)? {}
        out.flush()?;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        print_next(
            &mut follower,
            &mut out,
            args.json,
            Some(Duration::from_millis(200)),
        )?;
    }
}

/// Prints the next entry, waiting up to `wait` for one; whether there was
/// one. Entries removed by retention before they could be read are said
/// on stderr, and following goes on.
fn print_next(
    follower: &mut Follower,
    out: &mut impl Write,
    json: bool,
    wait: Option<Duration>,
) -> Result<bool> {
    let next = match wait {
        Some(wait) => follower.next_timeout(wait),
        None => follower.try_next(),
    };
    match next {
        Ok(Some(entry)) => {
            print_entry(out, &entry, json, None)?;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(gone @ ironwal::Error::EntriesGone { .. }) => {
            out.flush()?;
            eprintln!("ironwal: {gone}");
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}
