//! Judging what a reader made of a damaged fixture (the rules are in the
//! module docs of [`super`]).

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use ironwal::storage::MemStorage;
use ironwal::{
    DropCause, Entry, EntryRef, Error, LogReader, Op, Options, RecoveryMode, RecoveryReport, Seq,
    Wal,
};

use super::fixture::{Damage, Fixture};
use super::{Tally, DIR};

/// What a read yielded: the index of each entry in the fixture, or why it is
/// not one of them.
pub(super) type Yielded = Vec<Result<usize, String>>;

/// Reads the whole log under `mode`, identifying each entry it yields.
pub(super) fn read_log(
    mem: &MemStorage,
    mode: RecoveryMode,
    entries: &[Entry],
    by_seq: &HashMap<u64, usize>,
) -> (Yielded, Result<RecoveryReport, Error>) {
    read_log_with(mem, mode, |e| identify(e, entries, by_seq))
}

/// The index of `entry` in `entries`, if it is exactly one of them.
fn identify(
    entry: &EntryRef<'_>,
    entries: &[Entry],
    by_seq: &HashMap<u64, usize>,
) -> Result<usize, String> {
    match by_seq.get(&entry.seq.get()) {
        Some(&i) if same(entry, &entries[i]) => Ok(i),
        Some(_) => Err(format!("seq {}: bytes differ from the original", entry.seq)),
        None => Err(format!("seq {}: not in the fixture", entry.seq)),
    }
}

fn read_log_with(
    mem: &MemStorage,
    mode: RecoveryMode,
    mut identify: impl FnMut(&EntryRef<'_>) -> Result<usize, String>,
) -> (Yielded, Result<RecoveryReport, Error>) {
    let mut reader = match LogReader::open_with(Arc::new(mem.clone()), DIR, mode) {
        Ok(reader) => reader,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut got = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(entry)) => got.push(identify(&entry)),
            Ok(None) => return (got, Ok(reader.report().clone())),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// Whether `entry` is exactly `want`.
fn same(entry: &EntryRef<'_>, want: &Entry) -> bool {
    entry.seq == want.seq
        && entry.op == want.op
        && entry.key == want.key.as_slice()
        && entry.value == want.value.as_deref()
}

/// Who read the damaged log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Mode(RecoveryMode),
    Wal,
}

impl fmt::Display for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reader::Mode(mode) => write!(f, "LogReader({mode})"),
            Reader::Wal => f.write_str("Wal::open"),
        }
    }
}

/// A damaged copy of a fixture, and what the damage touched.
pub(super) struct Case<'a> {
    fx: &'a Fixture,
    damage: Damage,
    file: usize,
    /// Per item: whether the damage changed one of its bytes.
    touched: Vec<bool>,
    /// Per item: whether it is a header-form batch whose header record the
    /// damage changed.
    header_lost: Vec<bool>,
    /// The first touched item (`items.len()` if none).
    first: usize,
    /// Offsets of the damaged segment an error may name.
    blame: RangeInclusive<u64>,
    /// Whether the damaged segment holds nothing but zeros from the first
    /// touched item on (it then reads as a shorter, valid segment).
    ends_cleanly: bool,
    /// Entry index by sequence number.
    by_seq: HashMap<u64, usize>,
    /// Item index by entry index.
    item_of: Vec<usize>,
}

/// What a case found, before it is added to a [`Tally`].
#[derive(Default)]
pub(super) struct Findings {
    pub(super) tally: Tally,
    pub(super) problems: Vec<String>,
}

impl Findings {
    fn problem(&mut self, reader: Reader, message: String) {
        self.problems.push(format!("{reader}: {message}"));
    }
}

impl<'a> Case<'a> {
    pub(super) fn new(fx: &'a Fixture, damage: Damage) -> Case<'a> {
        let file = damage.file();
        let original = &fx.segments[file].bytes;
        let bytes = damage.apply(original);
        let changed = damage.changed(original);
        let touched: Vec<bool> = fx
            .items
            .iter()
            .map(|item| {
                (item.segment == file
                    && item.range.start < changed.end
                    && changed.start < item.range.end)
                    || damage.second_file() == Some(item.segment)
            })
            .collect();
        // A header-form batch's header record: 7 header bytes and 13 entry bytes.
        let header_lost: Vec<bool> = fx
            .items
            .iter()
            .map(|item| {
                item.kind == super::fixture::ItemKind::HeaderBatch
                    && item.segment == file
                    && item.range.start < changed.end
                    && changed.start < item.range.start + 20
            })
            .collect();
        let first = touched.iter().position(|&t| t).unwrap_or(fx.items.len());
        let in_file = || fx.items.iter().filter(|item| item.segment == file);
        let low = in_file()
            .map(|item| item.range.end)
            .filter(|&end| end <= changed.start)
            .max()
            .unwrap_or(0);
        let high = in_file()
            .find(|item| item.range.contains(&changed.start))
            .map_or(changed.start, |item| item.range.end - 1);
        // With a segment record, only the active (last) segment's length is
        // not recorded: a sealed one that ends early is always found out.
        let recorded = fx.record.is_some() && file + 1 < fx.segments.len();
        let ends_cleanly = !recorded
            && fx.items.get(first).is_some_and(|item| {
                bytes
                    .get(item.range.start as usize..)
                    .is_none_or(|rest| rest.iter().all(|&b| b == 0))
            });
        Case {
            fx,
            damage,
            file,
            touched,
            header_lost,
            first,
            blame: low..=high,
            ends_cleanly,
            by_seq: fx.by_seq(),
            item_of: fx
                .items
                .iter()
                .enumerate()
                .flat_map(|(i, item)| item.entries.clone().map(move |_| i))
                .collect(),
        }
    }

    fn path(&self) -> &Path {
        &self.fx.segments[self.file].path
    }

    /// Runs every reader over the damaged copy and judges each.
    pub(super) fn check(&self) -> Findings {
        let mut out = Findings::default();
        let mem = self.fx.storage(Some(self.damage));
        let mut torn_tail_read = None;
        for mode in RecoveryMode::ALL {
            let (got, outcome) = read_log(&mem, mode, &self.fx.entries, &self.by_seq);
            self.judge(Reader::Mode(mode), &got, outcome.as_ref(), &mut out);
            if mode == RecoveryMode::TolerateTornTail {
                torn_tail_read = Some((got, outcome.is_ok()));
            }
        }
        let Some((expected, expected_ok)) = torn_tail_read else {
            return out;
        };
        self.check_wal(&mem, &expected, expected_ok, &mut out);
        out
    }

    /// Opens the damaged copy as a `Wal` (which may repair it), appends one
    /// entry, closes, and rereads: the reread must hold what the reader in
    /// the default mode recovered (`expected`), then the new entry.
    fn check_wal(
        &self,
        mem: &MemStorage,
        expected: &Yielded,
        expected_ok: bool,
        out: &mut Findings,
    ) {
        let options = Options::default()
            .storage(Arc::new(mem.clone()))
            .preallocate(false)
            .max_segment_size(self.fx.max_segment_size);
        let wal = match Wal::open(DIR, options) {
            Ok(wal) => wal,
            Err(e) => {
                if expected_ok {
                    out.problem(
                        Reader::Wal,
                        format!("fails ({e}) where the reader succeeds"),
                    );
                }
                self.judge(Reader::Wal, &[], Err(&e), out);
                return;
            }
        };
        if !expected_ok {
            out.problem(Reader::Wal, "opens where the reader fails".into());
        }
        let report = wal.recovery_report().clone();
        let highest = expected
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|&i| self.fx.entries[i].seq.get())
            .max()
            .unwrap_or(0);
        let appended = Entry {
            seq: Seq::new(highest + 1),
            op: Op::Put,
            key: b"appended-after-damage".to_vec(),
            value: Some(b"new".to_vec()),
        };
        match wal.put(&appended.key, appended.value.as_deref().unwrap_or_default()) {
            Ok(seq) if seq == appended.seq => {}
            Ok(seq) => out.problem(
                Reader::Wal,
                format!("the append got sequence {seq}, expected {}", appended.seq),
            ),
            Err(e) => out.problem(Reader::Wal, format!("the append failed: {e}")),
        }
        if let Err(e) = wal.close() {
            out.problem(Reader::Wal, format!("close failed: {e}"));
        }
        drop(wal);
        let (mut reread, outcome) = read_log_with(mem, RecoveryMode::TolerateTornTail, |e| {
            if same(e, &appended) {
                return Ok(usize::MAX);
            }
            identify(e, &self.fx.entries, &self.by_seq)
        });
        match outcome {
            Ok(after) => {
                if !after.is_clean() {
                    out.problem(
                        Reader::Wal,
                        format!(
                            "after repair and an append the log is not clean: {:?}",
                            after.dropped
                        ),
                    );
                }
                if reread.last() == Some(&Ok(usize::MAX)) {
                    reread.pop();
                } else {
                    out.problem(
                        Reader::Wal,
                        "the appended entry does not end the log".into(),
                    );
                }
            }
            Err(e) => out.problem(
                Reader::Wal,
                format!("after repair and an append the log fails to read: {e}"),
            ),
        }
        if reread != *expected {
            out.problem(
                Reader::Wal,
                format!(
                    "recovered {} entries where the reader recovers {}",
                    reread.len(),
                    expected.len()
                ),
            );
        }
        self.judge(Reader::Wal, &reread, Ok(&report), out);
    }

    /// Judges what `reader` yielded and how it ended.
    fn judge(
        &self,
        reader: Reader,
        got: &[Result<usize, String>],
        outcome: Result<&RecoveryReport, &Error>,
        out: &mut Findings,
    ) {
        let fx = self.fx;
        out.tally.reads += 1;
        if let (Reader::Wal, Err(e)) = (reader, outcome) {
            // A log that does not open recovers nothing, and loses nothing.
            self.judge_error(reader, e, out);
            return;
        }
        // Exactness and order.
        let mut present = vec![0usize; fx.items.len()];
        let item_of = &self.item_of;
        let mut last: Option<usize> = None;
        for entry in got {
            match entry {
                Err(why) => {
                    out.tally.wrong += 1;
                    out.problem(reader, format!("yielded a wrong entry: {why}"));
                }
                Ok(i) => {
                    if last.is_some_and(|l| l >= *i) {
                        out.tally.wrong += 1;
                        let seq = fx.entries[*i].seq;
                        out.problem(reader, format!("yielded seq {seq} out of order"));
                    }
                    last = Some(*i);
                    present[item_of[*i]] += 1;
                }
            }
        }
        for (i, item) in fx.items.iter().enumerate() {
            let n = present[i];
            if n != 0
                && n != item.entries.len()
                && reader == Reader::Mode(RecoveryMode::SkipCorrupted)
                && self.header_lost[i]
            {
                // Salvage resynchronised past a header-form batch's damaged
                // header onto its later entries: nothing in the format marks
                // them as batch members (see the module docs).
                out.tally.undetectable += 1;
                continue;
            }
            if n != 0 && n != item.entries.len() {
                out.tally.wrong += n as u64;
                out.problem(
                    reader,
                    format!(
                        "yielded {n} of the {} operations of item {i}",
                        item.entries.len()
                    ),
                );
            }
        }
        let whole = |i: usize| present[i] == fx.items[i].entries.len();
        // Everything before the damage must be there.
        for i in 0..self.first {
            let n = fx.items[i].entries.len() as u64;
            if whole(i) {
                out.tally.acked += n;
            } else {
                out.tally.lost_acked += n;
                out.problem(reader, format!("item {i}, before the damage, is missing"));
            }
        }
        // Items from the damage on; a header-form batch of no operations
        // yields nothing, so nothing can tell whether it was read.
        let later = || (self.first..fx.items.len()).filter(|&i| !fx.items[i].entries.is_empty());
        let after: Vec<usize> = later().filter(|&i| !self.touched[i]).collect();
        let kept_after = after.iter().filter(|&&i| whole(i)).count();
        let touched_kept = later().any(|i| self.touched[i] && whole(i));
        let touched_lost = later().any(|i| self.touched[i] && !whole(i));
        let report = match outcome {
            Err(e) => {
                self.judge_error(reader, e, out);
                return;
            }
            Ok(report) => report,
        };
        let mode = match reader {
            Reader::Mode(mode) => mode,
            Reader::Wal => RecoveryMode::TolerateTornTail,
        };
        if self.first == fx.items.len() {
            out.tally.unchanged += 1;
        }
        if touched_lost && report.is_clean() {
            if !self.ends_cleanly {
                out.problem(
                    reader,
                    "lost damaged items without reporting anything".into(),
                );
            } else if kept_after > 0 {
                // A sealed segment that now ends cleanly where the damage
                // began: no reader can tell (see the module docs).
                out.tally.undetectable += 1;
            }
        }
        let intact_after = |out: &mut Findings| {
            for &i in &after {
                let n = fx.items[i].entries.len() as u64;
                if whole(i) {
                    out.tally.acked += n;
                } else {
                    out.tally.dropped_intact += n;
                    out.problem(
                        reader,
                        format!("intact item {i}, after the damage, is missing"),
                    );
                }
            }
        };
        if mode == RecoveryMode::SkipCorrupted {
            // Salvage: everything intact comes back; damaged items may too,
            // if they read back exactly (checked above).
            intact_after(out);
        } else if kept_after == 0 && !touched_kept {
            // The log ends where the damage begins.
            if !after.is_empty() {
                match mode {
                    RecoveryMode::PointInTime if report.has_corruption() => {}
                    RecoveryMode::PointInTime => out.problem(
                        reader,
                        "drops the intact items after the damage without reporting corruption"
                            .into(),
                    ),
                    _ => intact_after(out),
                }
            }
        } else if kept_after == after.len()
            && !touched_kept
            && self.ends_cleanly
            && report.is_clean()
        {
            // A sealed segment that now ends cleanly where the damage began.
            intact_after(out);
        } else {
            out.problem(
                reader,
                format!(
                    "reads past the damage without an error (yields {kept_after} of {} intact items after it{})",
                    after.len(),
                    if touched_kept { ", and damaged ones" } else { "" }
                ),
            );
        }
        self.judge_report(reader, mode, report, out);
    }

    /// Checks the report of a read that succeeded.
    fn judge_report(
        &self,
        reader: Reader,
        mode: RecoveryMode,
        report: &RecoveryReport,
        out: &mut Findings,
    ) {
        if mode == RecoveryMode::Strict && !report.is_clean() {
            out.problem(
                reader,
                format!("strict read dropped bytes: {:?}", report.dropped),
            );
        }
        let path = self.path();
        let second = (self.damage.second_file()).map(|i| self.fx.segments[i].path.as_path());
        for range in &report.dropped {
            if Some(range.segment.as_path()) == second {
                // A swap damages two segments; the second is out of place too.
            } else if range.segment != path {
                out.problem(
                    reader,
                    format!(
                        "dropped bytes of undamaged {} at {}",
                        range.segment.display(),
                        range.offset
                    ),
                );
            } else if !self.blame.contains(&range.offset) {
                out.problem(
                    reader,
                    format!(
                        "dropped range starts at {}, outside {:?}",
                        range.offset, self.blame
                    ),
                );
            }
            if mode == RecoveryMode::TolerateTornTail && range.cause != DropCause::TornTail {
                out.problem(reader, format!("dropped {range:?} as corruption"));
            }
        }
        for ignored in &report.ignored_segments {
            // The damaged segment itself is set aside when it is out of
            // place by the segment record.
            if ignored.as_path() < path {
                out.problem(
                    reader,
                    format!("ignored {}, not after the damage", ignored.display()),
                );
            }
        }
    }

    /// Checks an error: a corruption naming the damaged place, where the
    /// mode may fail.
    fn judge_error(&self, reader: Reader, error: &Error, out: &mut Findings) {
        if reader == Reader::Mode(RecoveryMode::SkipCorrupted) {
            out.problem(reader, format!("failed: {error}"));
            return;
        }
        match error {
            Error::Corruption {
                segment, offset, ..
            } if segment == self.path() && self.blame.contains(offset) => {
                out.tally.refused += 1;
            }
            Error::Corruption {
                segment,
                offset,
                kind,
            } => out.problem(
                reader,
                format!(
                    "blames {} at {offset} ({kind}); the damage allows {} at {:?}",
                    segment.display(),
                    self.path().display(),
                    self.blame
                ),
            ),
            other => out.problem(
                reader,
                format!("failed with a non-corruption error: {other}"),
            ),
        }
    }
}
