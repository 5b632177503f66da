//! `ironwal`: inspect, check and benchmark write-ahead logs.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;
mod output;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (verify: the log is clean)
  1  verify: only a torn tail was found (an interrupted last write)
  2  corruption the mode does not allow, or any error (bad path, I/O
     failure, bad arguments)";

/// Inspect, check and benchmark ironwal / kevo write-ahead logs.
#[derive(Debug, Parser)]
#[command(name = "ironwal", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the entries of a log directory or segment file.
    Dump(cmd::dump::Args),
    /// Check a log and print its recovery report.
    Verify(cmd::verify::Args),
    /// Summarise a log: segments, operations, sizes, batches, damage.
    Stats(cmd::stats::Args),
    /// Copy every intact entry of a damaged log into a new log.
    Repair(cmd::repair::Args),
    /// Print entries as a live writer appends them (like tail -f).
    Tail(cmd::tail::Args),
    /// Write a workload into a fresh log, replay it, and print throughput.
    Bench(cmd::bench::Args),
    /// Build a new log from JSON lines (what `dump --json` prints).
    Load(cmd::load::Args),
    /// Print a shell completion script (source it, or install it where
    /// your shell looks for completions).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ironwal man > ironwal.1`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => cmd::dump::run(&args),
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Stats(args) => cmd::stats::run(&args),
        Command::Repair(args) => cmd::repair::run(&args),
        Command::Tail(args) => cmd::tail::run(&args),
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Load(args) => cmd::load::run(&args),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "ironwal", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ironwal: {}", output::error_line(&error));
            ExitCode::from(2)
        }
    }
}
