//! `ironwal-crash`: runs one crash-safety harness and prints its summary line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{ArgAction, Args, Parser, Subcommand};
use ironwal_crash::damage;
use ironwal_crash::kill9::{self, ChildConfig};
use ironwal_crash::power_loss;
use ironwal_crash::rng::Rng;
use ironwal_crash::summary::Summary;

/// Seeds the power-loss harness runs when given no budget.
const DEFAULT_POWER_LOSS_RUNS: u64 = 300;

#[derive(Parser)]
#[command(
    name = "ironwal-crash",
    about = "Runs one of ironwal's crash-safety harnesses and prints its summary line:\n\
             <harness>: runs=<n> acked=<n> lost_acked=<n> wrong=<n> seed=<seed>",
    after_help = "Failures go to stderr, each with what reproduces it.\n\n\
                  Exit status: 0 if nothing was lost or wrong, 1 if the harness found \
                  lost or wrong entries or failed, 2 on a usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Random workloads on a simulated file system, crashed by power loss.
    PowerLoss(Budget),
    /// A child process appending to a real log, killed with SIGKILL.
    Kill9(Budget),
    /// Every truncation, bit flip and zeroed sector of a log, read back
    /// (exhaustive: a time limit cuts it short, --runs does not apply).
    Damage(Budget),
    /// The child of `kill9` (internal).
    #[command(name = "kill9-child", hide = true)]
    Kill9Child(ChildArgs),
}

/// How long a harness runs, and from which seed.
#[derive(Args)]
struct Budget {
    /// Run for this many minutes.
    #[arg(long, conflicts_with_all = ["seconds", "runs"])]
    minutes: Option<f64>,
    /// Run for this many seconds.
    #[arg(long, conflicts_with_all = ["minutes", "runs"])]
    seconds: Option<f64>,
    /// Run this many times (seeds for power-loss, kill cycles for kill9).
    #[arg(long, conflicts_with_all = ["minutes", "seconds"])]
    runs: Option<u64>,
    /// The seed (default: from the clock); the summary line shows it.
    #[arg(long)]
    seed: Option<u64>,
}

impl Budget {
    fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(Rng::fresh_seed)
    }

    fn deadline(&self) -> Result<Option<Instant>, String> {
        let secs = match (self.minutes, self.seconds) {
            (Some(m), _) => m * 60.0,
            (_, Some(s)) => s,
            _ => return Ok(None),
        };
        Duration::try_from_secs_f64(secs)
            .map(|d| Some(Instant::now() + d))
            .map_err(|_| format!("not a duration: {secs} seconds"))
    }
}

#[derive(Args)]
struct ChildArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    threads: u32,
    #[arg(long, default_value_t = 0)]
    serial_base: u64,
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    segment_size: u64,
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    preallocate: bool,
    #[arg(long)]
    early_acks: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let summary = match cli.command {
        Command::PowerLoss(budget) => with_budget(&budget, |seed, runs, deadline| {
            let runs = runs.unwrap_or(if deadline.is_some() {
                u64::MAX
            } else {
                DEFAULT_POWER_LOSS_RUNS
            });
            power_loss::run_many(seed, runs, deadline).summary(seed)
        }),
        Command::Kill9(budget) => with_budget(&budget, kill9::run),
        Command::Damage(budget) if budget.runs.is_some() => {
            Err("damage is exhaustive: bound it with --minutes or --seconds, not --runs".into())
        }
        Command::Damage(budget) => {
            with_budget(&budget, |seed, _, deadline| damage::run(seed, deadline))
        }
        Command::Kill9Child(args) => return kill9_child(args),
    };
    match summary {
        Ok(summary) => report(&summary),
        Err(message) => {
            eprintln!("ironwal-crash: {message}");
            ExitCode::from(2)
        }
    }
}

fn with_budget(
    budget: &Budget,
    run: impl FnOnce(u64, Option<u64>, Option<Instant>) -> Summary,
) -> Result<Summary, String> {
    let deadline = budget.deadline()?;
    Ok(run(budget.seed(), budget.runs, deadline))
}

fn report(summary: &Summary) -> ExitCode {
    println!("{summary}");
    for failure in &summary.failures {
        eprintln!("{}: {failure}", summary.harness);
    }
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn kill9_child(args: ChildArgs) -> ExitCode {
    let config = ChildConfig {
        dir: args.dir,
        seed: args.seed,
        threads: args.threads.max(1),
        serial_base: args.serial_base,
        segment_size: args.segment_size,
        preallocate: args.preallocate,
        early_acks: args.early_acks,
    };
    match kill9::child(&config, std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kill9-child: {message}");
            ExitCode::FAILURE
        }
    }
}
