//! kill -9 on the real file system. A child process (this crate's binary,
//! `ironwal-crash kill9-child`) appends from several threads under
//! `SyncPolicy::Always` and reports every acknowledged operation on its
//! stdout; the parent kills it with SIGKILL at a random moment, reopens the
//! log, checks it, appends one entry, closes it, and starts the next child on
//! the same directory, so the log accumulates over many crashes (now and
//! then it starts over in a fresh directory).
//!
//! A killed process loses nothing the operating system accepted, so there is
//! no excuse here: every acknowledged operation must come back with its
//! bytes, after the torn tail (if the kill cut a write short) is truncated.
//! The parent prints nothing: it returns a [`Summary`]. The child speaks only
//! its protocol, one line `<seq> <key in hex>` per acknowledged operation,
//! all lines of a batch in one write.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ironwal::{
    Entry, Error, LogReader, Op, Options, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch,
};
use parking_lot::Mutex;

use crate::check::{examine, Findings};
use crate::rng::Rng;
use crate::summary::Summary;
use crate::workload::{append, plan, Key};

/// The harness name in its summary line.
pub const HARNESS: &str = "kill9";

/// The hidden subcommand of the `ironwal-crash` binary that runs the child.
pub const CHILD_COMMAND: &str = "kill9-child";

/// Cycles run when neither a count nor a deadline is given.
pub const DEFAULT_CYCLES: u64 = 100;

/// The writer id of the entry the parent appends after each recovery.
const PARENT_WRITER: u32 = 1_000_000;

/// A child exits by itself after this long, in case its parent forgot it.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

/// The longest the parent waits for a child to acknowledge enough entries.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// A directory grown past this many bytes is replaced by a fresh one.
const MAX_DIR_BYTES: u64 = 256 * 1024 * 1024;

/// Failure messages kept in the summary.
const MAX_FAILURES: usize = 10;

/// How a child runs: everything it needs, passed on its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildConfig {
    /// The log directory.
    pub dir: PathBuf,
    /// Seeds the workload of every writer thread.
    pub seed: u64,
    /// Writer threads.
    pub threads: u32,
    /// Serials of this child's operations start here, so that keys never
    /// repeat in a directory.
    pub serial_base: u64,
    /// `Options::max_segment_size`.
    pub segment_size: u64,
    /// `Options::preallocate`.
    pub preallocate: bool,
    /// Acknowledge operations before they are durable (`SyncPolicy::Never`),
    /// so that kills lose acknowledged entries: proves the parent notices.
    pub early_acks: bool,
}

impl ChildConfig {
    /// The options the log is opened with, by the child and the parent alike:
    /// the defaults (`SyncPolicy::Always`, `TolerateTornTail`) but for the
    /// segment size and preallocation.
    pub fn options(&self) -> Options {
        let options = Options::default()
            .max_segment_size(self.segment_size)
            .preallocate(self.preallocate);
        if self.early_acks {
            options.sync_policy(SyncPolicy::Never)
        } else {
            options
        }
    }

    /// The command line (after the subcommand) that passes this config on.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--dir".into(),
            self.dir.display().to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--threads".into(),
            self.threads.to_string(),
            "--serial-base".into(),
            self.serial_base.to_string(),
            "--segment-size".into(),
            self.segment_size.to_string(),
            "--preallocate".into(),
            self.preallocate.to_string(),
        ];
        if self.early_acks {
            args.push("--early-acks".into());
        }
        args
    }
}

/// The child: opens the log and appends from `config.threads` threads until
/// killed, writing `<seq> <key in hex>` to `out` for every acknowledged
/// operation. Returns `Ok` when `out` is closed (the parent is gone) or after
/// a long while, and an error when the log fails.
pub fn child(config: &ChildConfig, out: impl Write + Send) -> Result<(), String> {
    let wal = Wal::open(&config.dir, config.options())
        .map_err(|e| format!("opening {}: {e}", config.dir.display()))?;
    let out = Mutex::new(out);
    let stop = AtomicBool::new(false);
    let until = Instant::now() + CHILD_LIFETIME;
    let results: Vec<Result<(), String>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..config.threads)
            .map(|writer| {
                let (wal, out, stop) = (&wal, &out, &stop);
                scope.spawn(move || {
                    let result = child_writer(wal, config, writer, out, stop, until);
                    stop.store(true, Ordering::Relaxed);
                    result
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a writer panicked".into())))
            .collect()
    });
    results.into_iter().collect::<Result<(), String>>()?;
    wal.close().map_err(|e| format!("closing: {e}"))
}

fn child_writer(
    wal: &Wal,
    config: &ChildConfig,
    writer: u32,
    out: &Mutex<impl Write>,
    stop: &AtomicBool,
    until: Instant,
) -> Result<(), String> {
    let mut rng =
        Rng::new(config.seed ^ (u64::from(writer) + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let mut batch = WriteBatch::new();
    let mut lines = String::new();
    for serial in config.serial_base.. {
        if stop.load(Ordering::Relaxed) || Instant::now() >= until {
            return Ok(());
        }
        let keys = plan(&mut rng, writer, serial);
        let first = append(wal, &keys, &mut batch)
            .map_err(|e| format!("writer {writer}, serial {serial}: append failed: {e}"))?;
        lines.clear();
        for (i, key) in keys.iter().enumerate() {
            let _ = writeln!(lines, "{} {}", first.get() + i as u64, hex(&key.encode()));
        }
        let mut out = out.lock();
        if out
            .write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses an acknowledgement line (without its newline).
fn parse_ack(line: &str) -> Option<(u64, Key)> {
    let (seq, key) = line.split_once(' ')?;
    Some((seq.parse().ok()?, Key::decode(&unhex(key)?)?))
}

/// When the parent kills the child.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after starting it.
    After(Duration),
    /// Once it has acknowledged this many operations.
    Acks(usize),
}

/// A log directory and what it must hold.
#[derive(Debug)]
struct Log {
    dir: PathBuf,
    segment_size: u64,
    preallocate: bool,
    /// Every operation known to be in the log (it was acknowledged, or
    /// recovered and then closed cleanly), by sequence.
    known: BTreeMap<u64, Key>,
}

/// Runs kill cycles with this executable as the child (it must be the
/// `ironwal-crash` binary), until `cycles` ran or `deadline` passed (with
/// neither, [`DEFAULT_CYCLES`]).
pub fn run(seed: u64, cycles: Option<u64>, deadline: Option<Instant>) -> Summary {
    match std::env::current_exe() {
        Ok(program) => run_with(&program, seed, cycles, deadline, false),
        Err(e) => Summary {
            harness: HARNESS,
            seed,
            failures: vec![format!("cannot find the ironwal-crash executable: {e}")],
            ..Summary::default()
        },
    }
}

/// Like [`run`], with `program` (the `ironwal-crash` binary) as the child;
/// `early_acks` makes the children acknowledge before durability (see
/// [`ChildConfig::early_acks`]), which the checks must notice.
pub fn run_with(
    program: &Path,
    seed: u64,
    cycles: Option<u64>,
    deadline: Option<Instant>,
    early_acks: bool,
) -> Summary {
    let mut summary = Summary {
        harness: HARNESS,
        seed,
        ..Summary::default()
    };
    let root = match tempfile::Builder::new().prefix("ironwal-kill9-").tempdir() {
        Ok(root) => root,
        Err(e) => {
            summary
                .failures
                .push(format!("no temporary directory: {e}"));
            return summary;
        }
    };
    let max = cycles.unwrap_or(if deadline.is_some() {
        u64::MAX
    } else {
        DEFAULT_CYCLES
    });
    let mut rng = Rng::new(seed);
    let mut log: Option<Log> = None;
    let mut keep_root = false;
    for cycle in 0..max {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let cycle_seed = rng.next_u64();
        let mut crng = Rng::new(cycle_seed);
        let fresh = match &log {
            None => true,
            Some(log) => crng.chance(1.0 / 30.0) || dir_bytes(&log.dir) > MAX_DIR_BYTES,
        };
        if fresh {
            if let Some(old) = log.take() {
                let _ = std::fs::remove_dir_all(&old.dir);
            }
            log = Some(Log {
                dir: root.path().join(format!("log-{cycle}")),
                // Small segments rotate often; the default 64 MiB ones make
                // every open and re-read slower, so they come less often.
                segment_size: [
                    64 * 1024,
                    256 * 1024,
                    1024 * 1024,
                    8 * 1024 * 1024,
                    64 * 1024 * 1024,
                ][[0, 0, 1, 1, 2, 2, 3, 4][crng.below(8) as usize]],
                preallocate: crng.below(4) != 0,
                known: BTreeMap::new(),
            });
        }
        let Some(current) = log.as_mut() else { break };
        let config = ChildConfig {
            dir: current.dir.clone(),
            seed: crng.next_u64(),
            threads: [1, 2, 4, 8][crng.below(4) as usize],
            serial_base: cycle << 32,
            segment_size: current.segment_size,
            preallocate: current.preallocate,
            early_acks,
        };
        let kill = if crng.below(2) == 0 {
            Kill::After(Duration::from_millis(1 + crng.below(200)))
        } else {
            Kill::Acks(1 + crng.below(300) as usize)
        };
        let before = (summary.lost_acked, summary.wrong, summary.failures.len());
        let context = format!(
            "cycle {cycle} (seed {seed}, cycle seed {cycle_seed}, {config:?}, kill {kill:?})"
        );
        if let Err(message) = kill_cycle(program, &config, kill)
            .and_then(|acks| verify(current, acks, cycle, &context, &mut summary))
        {
            note(&mut summary, format!("{context}: {message}"));
        }
        summary.runs += 1;
        if (summary.lost_acked, summary.wrong, summary.failures.len()) != before {
            // Keep the evidence (unless failing is the point), and go on in
            // a fresh directory.
            keep_root |= !early_acks;
            log = None;
        }
    }
    if keep_root {
        let kept = root.keep();
        summary
            .failures
            .push(format!("the logs are kept in {}", kept.display()));
    }
    summary
}

fn note(summary: &mut Summary, message: String) {
    if summary.failures.len() < MAX_FAILURES {
        summary.failures.push(message);
    }
}

/// Starts a child, kills it as `kill` says, and returns what it acknowledged.
fn kill_cycle(program: &Path, config: &ChildConfig, kill: Kill) -> Result<Vec<(u64, Key)>, String> {
    let start = Instant::now();
    let mut child = Command::new(program)
        .arg(CHILD_COMMAND)
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the child has no stdout or stderr".into());
    };
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || read_acks(stdout, &tx));
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
        text
    });
    let (until, want) = match kill {
        Kill::After(delay) => (start + delay, usize::MAX),
        Kill::Acks(n) => (start + ACK_WAIT, n),
    };
    let mut seen = 0;
    while seen < want {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(()) => seen += 1,
            // Timed out, or the child closed its stdout (it died).
            Err(_) => break,
        }
    }
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    let acks = reader
        .join()
        .unwrap_or_else(|_| Err("the reader thread panicked".into()));
    let errors = errors.join().unwrap_or_default();
    if let Some(status) = exited {
        return Err(format!(
            "the child exited by itself ({status}): {}",
            errors.trim()
        ));
    }
    acks
}

/// Reads acknowledgement lines until the child's stdout closes, signalling
/// each on `tx`. A last line without its newline was cut by the kill: it was
/// not (fully) reported, so it does not count.
fn read_acks(stdout: impl Read, tx: &mpsc::Sender<()>) -> Result<Vec<(u64, Key)>, String> {
    let mut stdout = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) => return Ok(acks),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the child's output: {e}")),
        }
        let Some(text) = line.strip_suffix('\n') else {
            return Ok(acks);
        };
        let ack = parse_ack(text).ok_or_else(|| format!("unreadable child output {text:?}"))?;
        acks.push(ack);
        let _ = tx.send(());
    }
}

/// Reopens the log after a kill and checks it against what was acknowledged;
/// then appends one entry, closes, and re-reads everything in Strict mode.
/// Returns an error for a failure that is not a count (the log would not
/// open, …).
fn verify(
    log: &mut Log,
    acks: Vec<(u64, Key)>,
    cycle: u64,
    context: &str,
    summary: &mut Summary,
) -> Result<(), String> {
    summary.acked += acks.len() as u64;
    let mut known = log.known.clone();
    for (seq, key) in acks {
        if let Some(old) = known.insert(seq, key) {
            if old != key {
                summary.wrong += 1;
                note(
                    summary,
                    format!("{context}: seq {seq} acknowledged for {key:?}, but it was {old:?}"),
                );
            }
        }
    }
    let options = Options::default()
        .max_segment_size(log.segment_size)
        .preallocate(log.preallocate);
    let wal = Wal::open(&log.dir, options).map_err(|e| format!("reopening failed: {e}"))?;
    let entries = wal
        .replay(Seq::ZERO)
        .and_then(|r| r.collect::<Result<Vec<Entry>, Error>>())
        .map_err(|e| format!("replay failed: {e}"))?;
    let Findings { present, wrong } = examine(&entries, &known);
    summary.wrong += wrong.len() as u64;
    for message in wrong.into_iter().take(3) {
        note(summary, format!("{context}: {message}"));
    }
    for (seq, key) in &known {
        if present.get(seq) != Some(key) {
            summary.lost_acked += 1;
            note(
                summary,
                format!("{context}: acknowledged seq {seq} ({key:?}) lost"),
            );
        }
    }

    // The recovered log takes appends, and closes clean.
    let expected_seq = wal.next_seq();
    let key = Key {
        writer: PARENT_WRITER,
        serial: cycle,
        index: 0,
        batch: 1,
        op: Op::Put,
        len: (cycle % 100) as u32,
    };
    let planned = key.planned();
    let seq = wal
        .put(&planned.key, planned.value.as_deref().unwrap_or_default())
        .map_err(|e| format!("appending after recovery failed: {e}"))?;
    if seq != expected_seq {
        return Err(format!("appended at {seq}, expected {expected_seq}"));
    }
    wal.close()
        .map_err(|e| format!("closing after recovery failed: {e}"))?;
    let mut expected = entries;
    expected.push(Entry {
        seq,
        op: planned.op,
        key: planned.key,
        value: planned.value,
    });
    let reread = read_strict(&log.dir).map_err(|e| format!("strict re-read failed: {e}"))?;
    if reread != expected {
        let at = reread
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(reread.len().min(expected.len()));
        return Err(format!(
            "strict re-read differs from what was recovered and appended: {} entries, expected {}, first difference at index {at}",
            reread.len(),
            expected.len()
        ));
    }
    log.known = present.into_iter().collect();
    log.known.insert(seq.get(), key);
    Ok(())
}

fn read_strict(dir: &Path) -> Result<Vec<Entry>, Error> {
    let mut reader = LogReader::open(dir, RecoveryMode::Strict)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry.to_entry());
    }
    Ok(entries)
}

/// Bytes in the files of `dir` (0 if it cannot be listed).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_lines_round_trip() {
        let key = Key {
            writer: 3,
            serial: 7 << 32,
            index: 1,
            batch: 2,
            op: Op::Merge,
            len: 40,
        };
        let line = format!("{} {}", 42, hex(&key.encode()));
        assert_eq!(parse_ack(&line), Some((42, key)));
        assert_eq!(parse_ack("42"), None);
        assert_eq!(parse_ack("x 00"), None);
        assert_eq!(parse_ack("42 0"), None);
        assert_eq!(parse_ack("42 zz"), None);
    }
}
