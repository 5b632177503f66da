//! Following a live log: reading entries as another process (or thread)
//! appends them, without taking its lock, across rotations and restarts of
//! the writer.
//!
//! A follower reads what the writer has handed to the operating system,
//! whole items only. The end of what is there, an incomplete entry or a
//! record still being written all mean "nothing new yet". Damage is an
//! error only once it has stayed in place for a grace period and valid data
//! follows it (the writer has moved past it): a writer in the middle of a
//! write, or one that crashed and will truncate its torn tail on restart,
//! is waited for. This module never writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::entry::EntryRef;
use crate::entry::Slot;
use crate::error::{Error, Result};
use crate::reader::{
    holds_valid, next_item, valid_after, Assembler, Next, Problem, SegmentScanner,
};
use crate::segment::{list_segments, SegmentId};
use crate::seq::Seq;
use crate::storage::{default_storage, OpenMode, PathKind, Storage, StorageFile};

/// How long a follower sleeps between looks at the log by default.
const DEFAULT_POLL: Duration = Duration::from_millis(10);

/// How long damage must stay in place, with valid data after it, before a
/// follower calls it corruption.
const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// Reads a log's entries as they are appended; see the module docs.
///
/// ```
/// # fn main() -> Result<(), ironwal::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use ironwal::{Follower, Options, Seq, Wal};
///
/// let wal = Wal::open(dir.path(), Options::default())?;
/// let mut follower = Follower::open(dir.path(), Seq::ZERO)?;
/// assert!(follower.try_next()?.is_none(), "nothing appended yet");
///
/// wal.put(b"k", b"v")?;
/// let entry = follower.next_timeout(Duration::from_secs(5))?.expect("the new entry");
/// assert_eq!(entry.key, b"k");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Follower {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    from: Seq,
    poll: Duration,
    grace: Duration,
    segment: Option<Cursor>,
    asm: Assembler,
    slots: Vec<Slot>,
    next_slot: usize,
    stall: Option<Stall>,
    /// For a follower made by [`Wal::subscribe`](crate::Wal::subscribe):
    /// how far the log is durable, and the last value read from it.
    ceiling: Option<(Ceiling, u64)>,
    /// The sequence the next entry should have, once known: `from` (if
    /// not zero), then one past the last entry read.
    expect: Option<Seq>,
    /// The current segment was just entered: its first entry is checked
    /// against `expect`.
    entered: bool,
    /// Entries found gone at a segment boundary, to report once.
    gone: Option<(Seq, Seq)>,
}

/// Reads the highest sequence a follower may yield.
#[derive(Clone)]
pub(crate) struct Ceiling(pub(crate) Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for Ceiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ceiling")
    }
}

/// The segment being followed.
#[derive(Debug)]
struct Cursor {
    id: SegmentId,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    /// Offset just past the last complete item.
    pos: u64,
}

/// A place where reading stopped on something other than a clean end.
#[derive(Debug)]
struct Stall {
    id: SegmentId,
    pos: u64,
    since: Instant,
}

impl Follower {
    /// Follows the log in `dir` on the real file system, yielding entries
    /// with a sequence of at least `from` (use `Seq::ZERO` for all).
    pub fn open(dir: impl AsRef<Path>, from: Seq) -> Result<Self> {
        Self::open_with(default_storage(), dir, from)
    }

    /// Follows the log in `dir` through `storage`. The directory need not
    /// exist yet.
    pub fn open_with(storage: Arc<dyn Storage>, dir: impl AsRef<Path>, from: Seq) -> Result<Self> {
        Ok(Self::new(storage, dir, from))
    }

    pub(crate) fn new(storage: Arc<dyn Storage>, dir: impl AsRef<Path>, from: Seq) -> Self {
        Follower {
            storage,
            dir: dir.as_ref().to_path_buf(),
            from,
            poll: DEFAULT_POLL,
            grace: DEFAULT_GRACE,
            segment: None,
            asm: Assembler::default(),
            slots: Vec::new(),
            next_slot: 0,
            stall: None,
            ceiling: None,
            expect: (from > Seq::ZERO).then_some(from),
            entered: false,
            gone: None,
        }
    }

    /// Yields only entries with a sequence of at most what `ceiling` says
    /// (read again only when an entry waits above the last value).
    pub(crate) fn with_ceiling(mut self, ceiling: Ceiling) -> Self {
        self.ceiling = Some((ceiling, 0));
        self
    }

    /// Whether the next entry is at or below the ceiling, if there is one.
    fn below_ceiling(&mut self) -> bool {
        let Some(slot) = self.slots.get(self.next_slot) else {
            return false;
        };
        let seq = slot.seq().get();
        match &mut self.ceiling {
            None => true,
            Some((_, seen)) if seq <= *seen => true,
            Some((ceiling, seen)) => {
                *seen = (ceiling.0)();
                seq <= *seen
            }
        }
    }

    /// How long [`Self::next_timeout`] sleeps between looks (default 10 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// How long damage must stay in place before it is reported (default
    /// 2 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The next entry if one is there now; `Ok(None)` if the follower has
    /// caught up with the writer.
    pub fn try_next(&mut self) -> Result<Option<EntryRef<'_>>> {
        if !self.ready()? {
            return Ok(None);
        }
        self.take()
    }

    /// The next entry, waiting up to `timeout` for one to be appended.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<EntryRef<'_>>> {
        let deadline = Instant::now() + timeout;
        while !self.ready()? {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(self.poll.min(deadline - now));
        }
        self.take()
    }

    fn take(&mut self) -> Result<Option<EntryRef<'_>>> {
        let Some(slot) = self.slots.get(self.next_slot) else {
            return Ok(None);
        };
        self.next_slot += 1;
        slot.resolve(self.asm.arena()).map(Some)
    }

    /// Whether an entry is ready to take, reading more of the log if not.
    fn ready(&mut self) -> Result<bool> {
        if self.next_slot < self.slots.len() {
            return Ok(self.below_ceiling());
        }
        self.slots.clear();
        self.next_slot = 0;
        loop {
            if self.segment.is_none() {
                match self.segments_after(None)?.into_iter().next() {
                    Some((id, path)) => {
                        self.segment = Some(self.open_segment(id, path)?);
                        self.entered = true;
                    }
                    None => return Ok(false),
                }
            }
            match self.read_segment()? {
                Progress::Item => {
                    if let Some((first, last)) = self.gone.take() {
                        // Reported once; the next call yields what follows.
                        return Err(Error::EntriesGone { first, last });
                    }
                    if !self.slots.is_empty() {
                        return Ok(self.below_ceiling());
                    }
                }
                Progress::CleanEnd => {
                    if !self.move_on()? {
                        return Ok(false);
                    }
                }
                Progress::Stalled(problem) => {
                    self.check_stall(problem)?;
                    return Ok(false);
                }
            }
        }
    }

    /// Reads the current segment from its position to the next complete
    /// item, or to where it stops.
    fn read_segment(&mut self) -> Result<Progress> {
        let Some(cursor) = &mut self.segment else {
            return Ok(Progress::CleanEnd);
        };
        let len = cursor.file.len().map_err(Error::io(&cursor.path))?;
        let mut scanner = SegmentScanner::new(Arc::clone(&cursor.file), len);
        scanner.seek(cursor.pos);
        self.asm.consume();
        let next = next_item(&mut scanner, &mut self.asm).map_err(Error::io(&cursor.path))?;
        Ok(match next {
            Next::Item { end, .. } => {
                cursor.pos = end;
                self.stall = None;
                let item = self.asm.list_ops(self.from, &mut self.slots);
                self.note_item(item.first, item.last);
                Progress::Item
            }
            Next::End { .. } => Progress::CleanEnd,
            Next::Problem(problem) => Progress::Stalled(problem),
        })
    }

    /// Checks an item's sequences against what should come next: at the
    /// start of a segment, entries missing before it were removed (by the
    /// writer's retention) before this follower got to them.
    fn note_item(&mut self, first: Option<Seq>, last: Option<Seq>) {
        if let (Some(first), Some(expect), true) = (first, self.expect, self.entered) {
            if first > expect {
                let last_gone = Seq::new(first.get() - 1);
                tracing::warn!(%expect, %last_gone, "entries were gone before the follower read them");
                self.gone = Some((expect, last_gone));
            }
        }
        self.entered = false;
        if let Some(last) = last {
            self.expect = Some(self.expect.map_or(last.next(), |e| e.max(last.next())));
        }
    }

    /// At the clean end of the current segment: moves on once the writer
    /// has written into a later segment. (A preallocated next segment exists
    /// before the writer rotates into it; moving early would skip entries
    /// still to come in this one.)
    fn move_on(&mut self) -> Result<bool> {
        match self.later_with_data()? {
            Some(next) => {
                self.segment = Some(next);
                self.entered = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The first segment after the current one that holds a valid record.
    /// Once one does, the writer will not come back to the current one.
    fn later_with_data(&self) -> Result<Option<Cursor>> {
        let after = self.segment.as_ref().map(|c| c.id);
        for (id, path) in self.segments_after(after)? {
            let next = self.open_segment(id, path)?;
            let len = next.file.len().map_err(Error::io(&next.path))?;
            let found = holds_valid(Arc::clone(&next.file), len).map_err(Error::io(&next.path))?;
            if found {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    /// Stopped on damage or an incomplete entry: wait, unless it has stayed
    /// for the grace period with valid data after it.
    fn check_stall(&mut self, problem: Problem) -> Result<()> {
        let Some(cursor) = &self.segment else {
            return Ok(());
        };
        match &self.stall {
            Some(stall) if stall.id == cursor.id && stall.pos == cursor.pos => {
                if stall.since.elapsed() < self.grace {
                    return Ok(());
                }
            }
            _ => {
                self.stall = Some(Stall {
                    id: cursor.id,
                    pos: cursor.pos,
                    since: Instant::now(),
                });
                return Ok(());
            }
        }
        let len = cursor.file.len().map_err(Error::io(&cursor.path))?;
        let mut scanner = SegmentScanner::new(Arc::clone(&cursor.file), len);
        let followed = valid_after(&mut scanner, &problem).map_err(Error::io(&cursor.path))?
            || self.later_with_data()?.is_some();
        if followed {
            return Err(Error::Corruption {
                segment: cursor.path.clone(),
                offset: problem.offset,
                kind: problem.kind,
            });
        }
        Ok(())
    }

    /// Segments with an id above `after` (all of them for `None`), in order.
    fn segments_after(&self, after: Option<SegmentId>) -> Result<Vec<(SegmentId, PathBuf)>> {
        if self
            .storage
            .kind_of(&self.dir)
            .map_err(Error::io(&self.dir))?
            != PathKind::Dir
        {
            return Ok(Vec::new());
        }
        let mut segments = list_segments(&*self.storage, &self.dir)?;
        segments.retain(|(id, _)| after.is_none_or(|after| *id > after));
        Ok(segments)
    }

    fn open_segment(&self, id: SegmentId, path: PathBuf) -> Result<Cursor> {
        let file = self
            .storage
            .open(&path, OpenMode::Read)
            .map_err(Error::io(&path))?;
        Ok(Cursor {
            id,
            path,
            file,
            pos: 0,
        })
    }
}

/// How far [`Follower::read_segment`] got.
enum Progress {
    /// A complete item was read (its operations are in `slots`, if any
    /// pass the `from` filter).
    Item,
    /// The segment ends cleanly (end of file or zeros) after the last item.
    CleanEnd,
    /// Reading stopped on damage or an incomplete entry.
    Stalled(Problem),
}
