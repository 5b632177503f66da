//! `ironwal load`: build a log from JSON lines, the inverse of `dump --json`.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use ironwal::{LogReader, Op, Options, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};

use crate::output::JsonEntry;

/// Build a new log from JSON lines as `dump --json` prints them
/// ({"seq","op","key","value"}, hex bytes; entries sharing a "batch" field
/// are written as one atomic batch). The input is checked whole before
/// anything is written; the log is built beside NEW_DIR and moved into
/// place only once it reads back, so a failure leaves no partial log.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory to create: it must not exist, or be empty.
    #[arg(value_name = "NEW_DIR")]
    pub dir: PathBuf,
    /// Read the lines from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Number the entries afresh (from the first line's `seq`, one by one)
    /// instead of requiring consecutive sequence numbers: for a log whose
    /// dump was filtered.
    #[arg(long)]
    pub renumber: bool,
}

/// One operation to write.
struct Loaded {
    op: Op,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// What the input asks for: single operations and batches, in order.
enum Item {
    One(Loaded),
    Batch(Vec<Loaded>),
}

/// The input, checked.
struct Input {
    first_seq: Option<u64>,
    items: Vec<Item>,
    entries: u64,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let target = Target::check(&args.dir)?;
    let input: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(io::stdin().lock()),
    };
    let input = parse(BufReader::new(input), args.renumber)?;

    let staging = target.staging()?;
    if let Err(e) = build(&staging, &input) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // A rename replaces an empty directory; anything else in the way was
    // refused above (and is refused here again if it appeared meanwhile).
    if let Err(e) = std::fs::rename(&staging, &target.path) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e)
            .with_context(|| format!("cannot move the new log to {}", target.path.display()));
    }
    std::fs::File::open(&target.parent)
        .and_then(|dir| dir.sync_all())
        .with_context(|| {
            format!(
                "the log is in place at {}, but syncing {} failed",
                target.path.display(),
                target.parent.display()
            )
        })?;
    let batches = input
        .items
        .iter()
        .filter(|i| matches!(i, Item::Batch(_)))
        .count();
    eprintln!(
        "ironwal: loaded {} entries ({batches} batches) into {}",
        input.entries,
        target.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where the new log goes.
struct Target {
    parent: PathBuf,
    name: String,
    /// `parent` joined with `name`: the path renamed onto.
    path: PathBuf,
}

impl Target {
    /// Refuses, before any input is read, a path that names no directory
    /// (`.`, `/`, `x/..`), a symbolic link, and anything that exists and
    /// is not an empty directory.
    fn check(dir: &Path) -> Result<Target> {
        // Components, not `Path::parent`: `x/.` is `x` itself.
        let mut components = dir.components();
        let name = match components.next_back() {
            Some(Component::Normal(name)) => name.to_string_lossy().into_owned(),
            _ => bail!("{} names no new directory", dir.display()),
        };
        let parent = match components.as_path() {
            p if p.as_os_str().is_empty() => PathBuf::from("."),
            p => p.to_path_buf(),
        };
        let path = parent.join(&name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot look at {}", path.display())),
            Ok(meta) if meta.file_type().is_symlink() => {
                bail!(
                    "{} is a symbolic link: give the directory it names",
                    path.display()
                )
            }
            Ok(meta) if !meta.is_dir() => bail!("{} exists and is not a directory", path.display()),
            Ok(_) => {
                let mut entries = std::fs::read_dir(&path)
                    .with_context(|| format!("cannot list {}", path.display()))?;
                if entries.next().is_some() {
                    bail!("{} exists and is not empty", path.display());
                }
            }
        }
        Ok(Target { parent, name, path })
    }

    /// A fresh directory beside the target to build the log in, after
    /// removing what an interrupted load of the same name left behind.
    fn staging(&self) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.parent)
            .with_context(|| format!("cannot create {}", self.parent.display()))?;
        let prefix = format!(".{}.loading-", self.name);
        if let Ok(entries) = std::fs::read_dir(&self.parent) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(&prefix) else {
                    continue;
                };
                // Only a load that is no longer running (Linux: no /proc
                // entry for its process).
                let proc = Path::new("/proc");
                if proc.is_dir() && !proc.join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let staging = self.parent.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        Ok(staging)
    }
}

/// Reads and checks every line; errors name the line.
fn parse(input: impl BufRead, renumber: bool) -> Result<Input> {
    let mut parsed = Input {
        first_seq: None,
        items: Vec::new(),
        entries: 0,
    };
    let mut last_seq: Option<u64> = None;
    // The batch the previous line belonged to, and every batch seen.
    let mut open_batch: Option<u64> = None;
    let mut batches_seen = std::collections::HashSet::new();
    for (n, line) in input.lines().enumerate() {
        let n = n + 1;
        let line = line.with_context(|| format!("line {n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: JsonEntry =
            serde_json::from_str(&line).map_err(|e| anyhow!("line {n}: invalid entry: {e}"))?;
        let loaded = decode(&entry).map_err(|e| anyhow!("line {n}: {e}"))?;
        match last_seq {
            None if entry.seq == 0 => bail!("line {n}: sequence 0: sequences start at 1"),
            _ if entry.seq == u64::MAX => {
                bail!(
                    "line {n}: sequence {}: the highest a log can number is one less",
                    entry.seq
                )
            }
            None => parsed.first_seq = Some(entry.seq),
            Some(last) if entry.seq <= last => bail!(
                "line {n}: sequence {} does not follow {last}: sequences must increase",
                entry.seq
            ),
            Some(last) if entry.seq != last + 1 && !renumber => bail!(
                "line {n}: sequence {} leaves a gap after {last}: a log numbers its entries \
                 one by one; pass --renumber to number them afresh",
                entry.seq
            ),
            Some(_) => {}
        }
        last_seq = Some(entry.seq);
        parsed.entries += 1;
        match entry.batch {
            None => {
                open_batch = None;
                parsed.items.push(Item::One(loaded));
            }
            Some(id) if open_batch == Some(id) => {
                let Some(Item::Batch(ops)) = parsed.items.last_mut() else {
                    bail!("line {n}: batch {id} lost its place (a bug in ironwal load)");
                };
                ops.push(loaded);
            }
            Some(id) => {
                if !batches_seen.insert(id) {
                    bail!("line {n}: batch {id} resumes after other entries: a batch's entries are consecutive lines");
                }
                open_batch = Some(id);
                parsed.items.push(Item::Batch(vec![loaded]));
            }
        }
    }
    Ok(parsed)
}

fn decode(entry: &JsonEntry) -> Result<Loaded> {
    let key = hex::decode(&entry.key).map_err(|e| anyhow!("key is not hex: {e}"))?;
    let hex_value = |v: &Option<String>| -> Result<Vec<u8>> {
        let v = v
            .as_ref()
            .ok_or_else(|| anyhow!("a {} needs a value", entry.op))?;
        hex::decode(v).map_err(|e| anyhow!("value is not hex: {e}"))
    };
    let (op, value) = match entry.op.as_str() {
        "put" => (Op::Put, hex_value(&entry.value)?),
        "merge" => (Op::Merge, hex_value(&entry.value)?),
        "delete" if entry.value.is_none() => (Op::Delete, Vec::new()),
        "delete" => bail!("a delete has no value (\"value\":null)"),
        other => bail!("unknown op {other:?}: put, delete or merge"),
    };
    Ok(Loaded { op, key, value })
}

/// Writes the log into `dir` (new), then reads it back strictly.
fn build(dir: &Path, input: &Input) -> Result<()> {
    let first = Seq::new(input.first_seq.unwrap_or(1));
    let options = Options::default()
        .first_seq(first)
        .sync_policy(SyncPolicy::Never)
        .preallocate(false);
    let wal = Wal::open(dir, options)?;
    let mut batch = WriteBatch::new();
    for item in &input.items {
        match item {
            Item::One(e) => match e.op {
                Op::Put => wal.put_nowait(&e.key, &e.value)?,
                Op::Merge => wal.merge_nowait(&e.key, &e.value)?,
                Op::Delete => wal.delete_nowait(&e.key)?,
            },
            Item::Batch(ops) => {
                batch.clear();
                for e in ops {
                    batch.push(e.op, &e.key, &e.value);
                }
                wal.write_batch_nowait(&batch)?
            }
        };
    }
    wal.sync()?;
    wal.close()?;
    // Read it back strictly: the same items (batches as batches), the same
    // operations, numbered from `first`.
    let mut reader = LogReader::open(dir, RecoveryMode::Strict)?;
    let mut expected = input.items.iter();
    let mut seq = first;
    while let Some(item) = reader.next_item()? {
        let (batch, ops) = match expected.next() {
            Some(Item::One(e)) => (false, std::slice::from_ref(e)),
            Some(Item::Batch(ops)) => (true, ops.as_slice()),
            None => bail!("the new log reads back more entries than were written"),
        };
        let first_seq = seq;
        let same = item.is_batch() == batch
            && item.len() == ops.len()
            && item.iter().zip(ops).all(|(got, want)| {
                let ok = got.seq == seq
                    && got.op == want.op
                    && got.key == want.key.as_slice()
                    && got.value.unwrap_or_default() == want.value.as_slice();
                seq = seq.next();
                ok
            });
        if !same {
            bail!("the new log reads back differently at sequence {first_seq}");
        }
    }
    if expected.next().is_some() {
        bail!("the new log reads back fewer entries than were written");
    }
    Ok(())
}
