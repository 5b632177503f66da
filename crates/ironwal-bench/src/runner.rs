//! The parent's side of a run: decides which cells to measure, runs each in
//! a child process with a directory of its own, turns the outcomes into
//! table rows, and prints them.
//!
//! Between cells it deletes the cell's files and runs sync(1), so one peer's
//! dirty pages are not written back on the next peer's time.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cell::{Job, Outcome, Spec};
use crate::machine::Machine;
use crate::plan::{size_label, volume_label, Scale, Workload, PEER_NAMES};
use crate::table::{self, Metric, Row, Status};
use crate::{peers, raw};

#[derive(Debug)]
pub struct Settings {
    pub quick: bool,
    pub only: Vec<String>,
    pub workloads: Vec<Workload>,
    pub dir: Option<PathBuf>,
    pub json: bool,
}

/// The library peers, as opposed to `raw` and `kevo`.
const LIBRARIES: &[&str] = &[
    "ironwal",
    "okaywal",
    "raft-engine",
    "walrus-rust",
    "fjall",
    "rocksdb",
];

pub fn run(settings: &Settings) -> Result<ExitCode> {
    let selected = select_peers(&settings.only)?;
    let workloads: BTreeSet<Workload> = if settings.workloads.is_empty() {
        Workload::ALL.into_iter().collect()
    } else {
        settings.workloads.iter().copied().collect()
    };
    let parent = settings.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let root = tempfile::Builder::new()
        .prefix("ironwal-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;

    let machine = Machine::describe(root.path());
    let header = |out: &mut dyn Write| -> io::Result<()> {
        table::print_header(&mut *out, &machine, &cargo_command(), settings.quick)?;
        writeln!(out)
    };
    let shown = if settings.json {
        header(&mut io::stderr().lock())
    } else {
        header(&mut io::stdout().lock())
    };
    if !printed(shown)? {
        return Ok(ExitCode::SUCCESS);
    }

    let mut runner = Runner {
        exe: std::env::current_exe().context("finding this executable")?,
        root: root.path().to_path_buf(),
        scale: if settings.quick {
            Scale::quick()
        } else {
            Scale::full()
        },
        selected,
        cells: 0,
        dirs: 0,
        failures: 0,
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    if workloads.contains(&Workload::W1) {
        rows.extend(runner.w1());
    }
    if workloads.contains(&Workload::W2) {
        rows.extend(runner.w2());
    }
    if workloads.contains(&Workload::W3) {
        rows.extend(runner.w3());
    }
    if workloads.contains(&Workload::W4) || workloads.contains(&Workload::W5) {
        let (w4, w5) = runner.w4_w5();
        if workloads.contains(&Workload::W4) {
            rows.extend(w4);
        }
        if workloads.contains(&Workload::W5) {
            rows.extend(w5);
        }
    }
    add_peer_notes(&mut rows);
    table::compute_ratios(&mut rows);
    eprintln!(
        "ironwal-bench: {} cells in {:.0} s",
        runner.cells,
        started.elapsed().as_secs_f64()
    );

    let mut out = io::stdout().lock();
    let shown = if settings.json {
        table::print_json(&mut out, &rows)
    } else {
        table::print_table(&mut out, &rows)
    };
    root.close().context("removing the benchmark directory")?;
    if !printed(shown.and_then(|()| out.flush()))? {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if runner.failures > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// `Ok(false)` when stdout was closed early (`ironwal-bench | head`): the
/// run then ends quietly, as a filter's would.
fn printed(result: io::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The peers to run, in table order.
fn select_peers(only: &[String]) -> Result<Vec<&'static str>> {
    if only.is_empty() {
        return Ok(PEER_NAMES.to_vec());
    }
    let mut wanted = BTreeSet::new();
    for name in only {
        let name = name.trim();
        match PEER_NAMES.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            Some(peer) => {
                wanted.insert(*peer);
            }
            None => bail!(
                "--only: no peer named {name:?}; the peers are {}",
                PEER_NAMES.join(", ")
            ),
        }
    }
    Ok(PEER_NAMES
        .iter()
        .copied()
        .filter(|p| wanted.contains(p))
        .collect())
}

/// The cargo command that reproduces this run.
fn cargo_command() -> String {
    let features = if cfg!(feature = "rocksdb") {
        " --features rocksdb"
    } else {
        ""
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", args.join(" "))
    };
    format!("cargo run --release -p ironwal-bench{features}{args}")
}

struct Runner {
    exe: PathBuf,
    root: PathBuf,
    scale: Scale,
    selected: Vec<&'static str>,
    /// Child processes run, directories handed out, cells that failed.
    cells: usize,
    dirs: usize,
    failures: usize,
}

impl Runner {
    fn wants(&self, peer: &str) -> bool {
        self.selected.contains(&peer)
    }

    fn libraries(&self) -> Vec<&'static str> {
        LIBRARIES
            .iter()
            .copied()
            .filter(|p| self.wants(p))
            .collect()
    }

    /// Why `peer` cannot run `workload`, if it cannot.
    fn unsupported(peer: &str, workload: Workload) -> Option<String> {
        match peers::by_name(peer) {
            Some(p) => p.unsupported(workload),
            // The raw ceilings run every workload.
            None if peer == "raw" => None,
            None => Some(format!("unknown peer {peer}")),
        }
    }

    fn w1(&mut self) -> Vec<Row> {
        let value_size = self.scale.w1_value_size;
        let millis = self.scale.durable_run_for.as_millis() as u64;
        let record = raw::record_len(value_size);
        // The raw loops are single-threaded: measured once, shown in each case.
        let mut ceilings = Vec::new();
        if self.wants("raw") {
            let jobs = [
                (
                    "raw: append+fdatasync",
                    Job::RawAppendSync { record, millis },
                    "fresh file",
                ),
                (
                    "raw: overwrite+fdatasync",
                    Job::RawOverwriteSync { record, millis },
                    "pre-zeroed, synced blocks",
                ),
            ];
            for (peer, job, what) in jobs {
                let outcome = self.fresh_cell("raw", job, &format!("W1 {peer}"));
                let note = format!("{record}-byte records, {what}; one thread, measured once");
                ceilings.push((peer, outcome, note));
            }
        }
        let mut rows = Vec::new();
        for &writers in self.scale.w1_writers {
            let case = format!(
                "{}, {writers} writer{}",
                size_label(value_size),
                if writers == 1 { "" } else { "s" }
            );
            for peer in self.libraries() {
                let row = Row::new(Workload::W1, &case, peer, Metric::AppendsPerSec);
                if let Some(why) = Self::unsupported(peer, Workload::W1) {
                    rows.push(row.not_applicable(why));
                    continue;
                }
                let job = Job::Durable {
                    writers,
                    value_size,
                    millis,
                };
                let outcome = self.fresh_cell(peer, job, &format!("W1 {case}"));
                rows.push(Self::appends_row(row, outcome, false));
            }
            for (peer, outcome, note) in &ceilings {
                let row = Row::new(Workload::W1, &case, peer, Metric::AppendsPerSec);
                let mut row = Self::appends_row(row, outcome.clone(), false);
                if row.status == Status::Measured {
                    row.note = note.clone();
                }
                rows.push(row);
            }
            if self.wants("kevo") {
                rows.push(table::kevo_row(Workload::W1, &case, Metric::AppendsPerSec));
            }
        }
        rows
    }

    fn w2(&mut self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (value_size, count) in self.scale.w2_cases {
            let case = format!("{}, 1 writer", size_label(value_size));
            let job = Job::Unsynced { count, value_size };
            for peer in self.libraries() {
                let row = Row::new(Workload::W2, &case, peer, Metric::AppendsPerSec);
                if let Some(why) = Self::unsupported(peer, Workload::W2) {
                    rows.push(row.not_applicable(why));
                    continue;
                }
                let outcome = self.fresh_cell(peer, job, &format!("W2 {case}"));
                rows.push(Self::appends_row(row, outcome, true));
            }
            if self.wants("raw") {
                let peer = "raw: write() per record";
                let outcome = self.fresh_cell("raw", job, &format!("W2 {case}"));
                let row = Row::new(Workload::W2, &case, peer, Metric::AppendsPerSec);
                rows.push(Self::appends_row(row, outcome, true));
            }
            if self.wants("kevo") {
                rows.push(table::kevo_row(Workload::W2, &case, Metric::AppendsPerSec));
            }
        }
        rows
    }

    fn w3(&mut self) -> Vec<Row> {
        let value_size = self.scale.w3_value_size;
        let count = self.scale.w3_values;
        let case = format!("{}, 1 writer", size_label(value_size));
        let job = Job::Unsynced { count, value_size };
        let mut rows = Vec::new();
        for peer in self.libraries() {
            let row = Row::new(Workload::W3, &case, peer, Metric::MbPerSec);
            if let Some(why) = Self::unsupported(peer, Workload::W3) {
                rows.push(row.not_applicable(why));
                continue;
            }
            let outcome = self.fresh_cell(peer, job, "W3");
            rows.push(Self::throughput_row(row, outcome));
        }
        if self.wants("raw") {
            let outcome = self.fresh_cell("raw", job, "W3 raw writes");
            let row = Row::new(
                Workload::W3,
                &case,
                "raw: write() per record",
                Metric::MbPerSec,
            );
            rows.push(Self::throughput_row(row, outcome));
            let bytes = self.scale.raw_sequential_bytes;
            let peer = format!("raw: {} write+fdatasync", volume_label(bytes));
            let outcome =
                self.fresh_cell("raw", Job::RawSequentialSync { bytes }, "W3 raw sequential");
            let mut row = Self::throughput_row(
                Row::new(Workload::W3, &case, &peer, Metric::MbPerSec),
                outcome,
            );
            if row.status == Status::Measured {
                row.note =
                    "one write(2) of the whole buffer, then one fdatasync (durable, unlike W3)"
                        .to_owned();
            }
            rows.push(row);
        }
        if self.wants("kevo") {
            rows.push(table::kevo_row(Workload::W3, &case, Metric::MbPerSec));
        }
        rows
    }

    /// W4 rows and W5 rows: each peer's log is written, then replayed in a
    /// child of its own whose peak RSS is W5.
    fn w4_w5(&mut self) -> (Vec<Row>, Vec<Row>) {
        let value_size = self.scale.w4_value_size;
        let count = self.scale.w4_entries;
        let case = format!(
            "{} log of {} values",
            volume_label(count * value_size as u64),
            size_label(value_size)
        );
        let (mut w4, mut w5) = (Vec::new(), Vec::new());
        let mut targets: Vec<(&str, String)> = self
            .libraries()
            .into_iter()
            .map(|p| (p, p.to_owned()))
            .collect();
        if self.wants("raw") {
            targets.push(("raw", "raw: read() 1 MiB at a time".to_owned()));
        }
        for (peer, label) in targets {
            let w4_row = Row::new(Workload::W4, &case, &label, Metric::MbPerSec);
            let w5_row = Row::new(Workload::W5, &case, &label, Metric::PeakRssMib);
            if let Some(why) = Self::unsupported(peer, Workload::W4) {
                w4.push(w4_row.not_applicable(why.clone()));
                w5.push(w5_row.not_applicable(why));
                continue;
            }
            let dir = self.fresh_dir(peer);
            let written = self.run_cell(
                peer,
                Job::WriteLog { count, value_size },
                &dir,
                "W4 write the log",
            );
            let (replayed, write_note) = match written {
                Outcome::Measured(m) => {
                    settle();
                    let replayed =
                        self.run_cell(peer, Job::Replay { count, value_size }, &dir, "W4 replay");
                    (replayed, m.note)
                }
                Outcome::Failed(why) => (Outcome::Failed(format!("writing the log: {why}")), None),
            };
            discard(&dir);
            let mut row4 = Self::throughput_row(w4_row, replayed.clone());
            let mut row5 = match &replayed {
                Outcome::Measured(m) => Row {
                    value: m.peak_rss_mib,
                    ..w5_row
                },
                Outcome::Failed(why) => w5_row.not_applicable(format!("failed: {why}")),
            };
            if let Some(note) = write_note {
                for row in [&mut row4, &mut row5] {
                    if row.status == Status::Measured {
                        row.note = join_notes(&row.note, &note);
                    }
                }
            }
            w4.push(row4);
            w5.push(row5);
        }
        if self.wants("kevo") {
            w4.push(table::kevo_row(Workload::W4, &case, Metric::MbPerSec));
            w5.push(table::kevo_row(Workload::W5, &case, Metric::PeakRssMib));
        }
        (w4, w5)
    }

    fn appends_row(row: Row, outcome: Outcome, with_mb: bool) -> Row {
        match outcome {
            Outcome::Measured(m) => Row {
                value: Some(m.ops_per_sec()),
                mb_per_sec: with_mb.then(|| m.mb_per_sec()),
                p50_us: m.p50_us,
                p99_us: m.p99_us,
                ops: Some(m.ops),
                secs: Some(m.secs),
                fsyncs: m.fsyncs,
                note: m.note.unwrap_or_default(),
                ..row
            },
            Outcome::Failed(why) => row.not_applicable(format!("failed: {why}")),
        }
    }

    fn throughput_row(row: Row, outcome: Outcome) -> Row {
        match outcome {
            Outcome::Measured(m) => Row {
                value: Some(m.mb_per_sec()),
                ops: Some(m.ops),
                secs: Some(m.secs),
                note: m.note.unwrap_or_default(),
                ..row
            },
            Outcome::Failed(why) => row.not_applicable(format!("failed: {why}")),
        }
    }

    fn fresh_dir(&mut self, peer: &str) -> PathBuf {
        self.dirs += 1;
        self.root.join(format!("{:03}-{peer}", self.dirs))
    }

    /// Runs `job` for `peer` in a directory of its own, then removes it.
    fn fresh_cell(&mut self, peer: &str, job: Job, what: &str) -> Outcome {
        let dir = self.fresh_dir(peer);
        let outcome = self.run_cell(peer, job, &dir, what);
        discard(&dir);
        outcome
    }

    fn run_cell(&mut self, peer: &str, job: Job, dir: &Path, what: &str) -> Outcome {
        self.cells += 1;
        let started = Instant::now();
        let outcome = match std::fs::create_dir_all(dir) {
            Ok(()) => self.spawn(&Spec {
                peer: peer.to_owned(),
                job,
                dir: dir.to_path_buf(),
            }),
            Err(e) => Outcome::Failed(format!("creating {}: {e}", dir.display())),
        };
        let summary = match &outcome {
            Outcome::Measured(m) => {
                format!("{:.0} ops/s, {:.1} MB/s", m.ops_per_sec(), m.mb_per_sec())
            }
            Outcome::Failed(why) => {
                self.failures += 1;
                format!("FAILED: {why}")
            }
        };
        eprintln!(
            "  {what:<28} {peer:<12} {summary} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        outcome
    }

    /// Runs one cell in a child process and reads its outcome.
    fn spawn(&self, spec: &Spec) -> Outcome {
        match self.try_spawn(spec) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    fn try_spawn(&self, spec: &Spec) -> Result<Outcome> {
        let spec_json = serde_json::to_string(spec)?;
        let mut child = Command::new(&self.exe)
            .arg("cell")
            .arg(&spec_json)
            // walrus-rust takes its directory from the environment, and
            // prints debug lines on stdout unless told to be quiet.
            .env("WALRUS_DATA_DIR", &spec.dir)
            .env("WALRUS_QUIET", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the child process")?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + self.scale.cell_timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                bail!("timed out after {} s", self.scale.cell_timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            eprintln!("    | {line}");
        }
        let outcome = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<Outcome>(line).ok());
        match outcome {
            Some(outcome) => Ok(outcome),
            None => {
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output");
                bail!("child exited with {status}: {last}")
            }
        }
    }
}

/// Reads a child's pipe to the end on a thread of its own, so neither pipe
/// can fill up and stall the child.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    })
}

/// Removes a cell's files (discarding their dirty pages) and lets the disk
/// settle before the next cell.
fn discard(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("ironwal-bench: could not remove {}: {e}", dir.display());
        }
    }
    settle();
}

/// Writes back everything dirty, so the next measurement starts clean.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Adds what each peer says a reader of its figures must know.
fn add_peer_notes(rows: &mut [Row]) {
    for row in rows.iter_mut().filter(|r| r.status == Status::Measured) {
        if let Some(note) = peers::by_name(&row.peer).and_then(|p| p.note(row.workload)) {
            row.note = join_notes(note, &row.note);
        }
    }
}

fn join_notes(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}; {b}"),
    }
}
