//! The fixtures: logs written by ironwal whose every item's place is known,
//! and the damage done to them.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::format::record::write_record;
use ironwal::format::{encode_header_batch, RecordType, HEADER_SIZE};
use ironwal::storage::{MemStorage, OpenMode, Storage};
use ironwal::{
    Entry, Error, Op, Options, RecoveryMode, SegmentId, Seq, SyncPolicy, Wal, WriteBatch,
    RECORD_FILE,
};

use super::judge::read_log;
use super::{DIR, SECTOR};
use crate::rng::Rng;

/// Bytes of each decoy record inside a huge value (see [`Gen::huge`]).
const DECOY: usize = 512;

/// One operation of a fixture step.
type Operation = (Op, Vec<u8>, Vec<u8>);

/// How a fixture's contents are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A fixed sequence of item kinds (every kind, one fragmented entry);
    /// the seed chooses keys and values.
    Standard,
    /// The seed chooses the item kinds, their sizes, the segment size and
    /// the zero tail as well.
    Random,
}

/// What kind of item an [`Item`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// One put, delete or merge.
    Single,
    /// A single-record batch (`WriteBatch`).
    Batch,
    /// A header-form batch: a 13-byte header record, then its entries.
    HeaderBatch,
}

/// A unit a reader yields whole or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Index of its segment in [`Fixture::segments`].
    pub segment: usize,
    /// Its bytes in that segment.
    pub range: Range<u64>,
    /// Its operations, as indices into [`Fixture::entries`].
    pub entries: Range<usize>,
    /// What it is.
    pub kind: ItemKind,
    /// Whether one of its entries is cut into fragments.
    pub fragmented: bool,
}

/// One segment file of a fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its path (under [`DIR`]).
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A log written by ironwal, with the place of everything in it.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The seed its contents came from.
    pub seed: u64,
    /// How they were chosen.
    pub shape: Shape,
    /// The segment size limit it was written with.
    pub max_segment_size: u64,
    /// The segment files, in log order.
    pub segments: Vec<Segment>,
    /// Every operation, in log order.
    pub entries: Vec<Entry>,
    /// Every item, in log order.
    pub items: Vec<Item>,
    /// The segment record (`ironwal-segments`) ironwal keeps beside the
    /// segments, or `None` for a fixture read as a log without one (kevo's).
    pub record: Option<Vec<u8>>,
}

/// One way of damaging one segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damage {
    /// Cut the file to `len` bytes.
    Truncate {
        /// Segment index.
        file: usize,
        /// New length.
        len: u64,
    },
    /// Flip one bit.
    FlipBit {
        /// Segment index.
        file: usize,
        /// Byte offset.
        byte: u64,
        /// Bit, 0 (least significant) to 7.
        bit: u8,
    },
    /// Overwrite the 512-byte sector `sector` (or what of it the file has)
    /// with zeros.
    ZeroSector {
        /// Segment index.
        file: usize,
        /// Sector number.
        sector: u64,
    },
    /// Delete the segment file.
    Delete {
        /// Segment index.
        file: usize,
    },
    /// Swap the names of the segment and the next one.
    SwapWithNext {
        /// Segment index.
        file: usize,
    },
}

impl Damage {
    /// The segment it damages.
    pub fn file(self) -> usize {
        match self {
            Damage::Truncate { file, .. }
            | Damage::FlipBit { file, .. }
            | Damage::ZeroSector { file, .. }
            | Damage::Delete { file }
            | Damage::SwapWithNext { file } => file,
        }
    }

    /// A second segment it damages, if any (the one a swap moves forward).
    pub fn second_file(self) -> Option<usize> {
        match self {
            Damage::SwapWithNext { file } => Some(file + 1),
            _ => None,
        }
    }

    /// The damaged copy of `bytes`: what the segment's name holds after
    /// the damage (nothing once deleted; a swap is [`Fixture::storage`]'s).
    pub fn apply(self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        match self {
            Damage::Delete { .. } => out.clear(),
            Damage::SwapWithNext { .. } => {}
            Damage::Truncate { len, .. } => out.truncate(len as usize),
            Damage::FlipBit { byte, bit, .. } => {
                if let Some(b) = out.get_mut(byte as usize) {
                    *b ^= 1 << bit;
                }
            }
            Damage::ZeroSector { sector, .. } => {
                let start = (sector * SECTOR) as usize;
                let end = (start + SECTOR as usize).min(out.len());
                if let Some(bytes) = out.get_mut(start..end) {
                    bytes.fill(0);
                }
            }
        }
        out
    }

    /// The bytes of `original` the damage changes (removed bytes count as
    /// changed); empty if it changes nothing.
    pub fn changed(self, original: &[u8]) -> Range<u64> {
        let len = original.len() as u64;
        match self {
            Damage::Delete { .. } | Damage::SwapWithNext { .. } => 0..len,
            Damage::Truncate { len: cut, .. } => cut.min(len)..len,
            Damage::FlipBit { byte, .. } if byte < len => byte..byte + 1,
            Damage::FlipBit { .. } => 0..0,
            Damage::ZeroSector { sector, .. } => {
                let start = (sector * SECTOR).min(len);
                let end = (start + SECTOR).min(len);
                let bytes = &original[start as usize..end as usize];
                match (
                    bytes.iter().position(|&b| b != 0),
                    bytes.iter().rposition(|&b| b != 0),
                ) {
                    (Some(first), Some(last)) => start + first as u64..start + last as u64 + 1,
                    _ => 0..0,
                }
            }
        }
    }

    /// Every damage of the segment `file` of `len` bytes: each truncation,
    /// each bit flip, each sector zeroed.
    pub fn all_of(file: usize, len: u64) -> impl Iterator<Item = Damage> {
        let truncations = (0..len).map(move |len| Damage::Truncate { file, len });
        let flips = (0..len * 8).map(move |i| Damage::FlipBit {
            file,
            byte: i / 8,
            bit: (i % 8) as u8,
        });
        let sectors =
            (0..len.div_ceil(SECTOR)).map(move |sector| Damage::ZeroSector { file, sector });
        truncations.chain(flips).chain(sectors)
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncate { file, len } => write!(f, "segment {file} truncated to {len} bytes"),
            Damage::FlipBit { file, byte, bit } => {
                write!(f, "segment {file} byte {byte} bit {bit} flipped")
            }
            Damage::ZeroSector { file, sector } => write!(
                f,
                "segment {file} sector {sector} (bytes {}..{}) zeroed",
                sector * SECTOR,
                (sector + 1) * SECTOR
            ),
            Damage::Delete { file } => write!(f, "segment {file} deleted"),
            Damage::SwapWithNext { file } => {
                write!(f, "segments {file} and {} swapped names", file + 1)
            }
        }
    }
}

/// Content choices for a fixture.
struct Gen {
    rng: Rng,
    keys: u32,
    /// Whether small values may hold arbitrary bytes (else letters only).
    binary: bool,
}

impl Gen {
    fn letters(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| b'a' + self.rng.below(26) as u8).collect()
    }

    fn key(&mut self) -> Vec<u8> {
        self.keys += 1;
        let mut key = format!("k{}-", self.keys).into_bytes();
        let extra = self.rng.below(12) as usize;
        key.extend(self.letters(extra));
        key
    }

    /// A value of up to `max` bytes: letters, or now and then any bytes.
    fn value(&mut self, max: u64) -> Vec<u8> {
        let len = self.rng.below(max + 1) as usize;
        if self.binary && self.rng.below(3) == 0 {
            self.rng.bytes(len)
        } else {
            self.letters(len)
        }
    }

    fn op(&mut self, op: Op, max: u64) -> Operation {
        let key = self.key();
        let value = if op == Op::Delete {
            Vec::new()
        } else {
            self.value(max)
        };
        (op, key, value)
    }

    /// A value big enough to cut its entry into First, Middle and Last
    /// records. Letters only: no byte can pass for a record type, so after
    /// damage the reader's search for the next valid record crosses the
    /// whole 32 KiB record. With `decoys`, the letters carry a complete
    /// Middle record every 512 to 768 bytes: a value that looks like a log, which
    /// the search stops at (cheaply) and the assembler must reject as an
    /// orphan fragment, never as an entry.
    fn huge(&mut self, decoys: bool) -> Vec<u8> {
        let len = 32_800 + self.rng.below(300) as usize;
        let mut value = Vec::with_capacity(len);
        while decoys && value.len() + 2 * DECOY < len {
            let gap = self.rng.below(DECOY as u64 / 2) as usize;
            let letters = self.letters(gap);
            value.extend(letters);
            let payload = self.letters(DECOY - HEADER_SIZE);
            write_record(&mut value, RecordType::Middle, &payload);
        }
        let rest = self.letters(len - value.len());
        value.extend(rest);
        value
    }

    fn random_op(&mut self, max: u64) -> Operation {
        let op = match self.rng.below(6) {
            0 => Op::Delete,
            1 => Op::Merge,
            _ => Op::Put,
        };
        self.op(op, max)
    }
}

/// One thing written to the fixture.
#[derive(Clone, Debug)]
enum Step {
    Single(Operation),
    Batch(Vec<Operation>),
    /// kevo writes only puts and deletes in this form.
    HeaderBatch(Vec<Operation>),
}

impl Fixture {
    /// The standard fixture: 26 items in segments of about 384 bytes, with
    /// one fragmented put in the middle of the log and a 200-byte zero tail.
    pub fn standard(seed: u64) -> Result<Fixture, String> {
        let mut g = Gen {
            rng: Rng::new(seed),
            keys: 0,
            binary: true,
        };
        let (put, del, merge) = (Op::Put, Op::Delete, Op::Merge);
        // Elements are evaluated in order, so the seed fixes every byte.
        let steps = vec![
            Step::Single(g.op(put, 60)),
            Step::Single(g.op(del, 0)),
            Step::Single(g.op(merge, 40)),
            Step::Batch(vec![g.op(put, 40), g.op(del, 0), g.op(merge, 20)]),
            Step::Single((put, g.key(), Vec::new())),
            Step::HeaderBatch(vec![g.op(put, 40), g.op(del, 0)]),
            Step::Single(g.op(put, 80)),
            Step::Batch(vec![g.op(put, 30)]),
            Step::Single(g.op(merge, 30)),
            Step::HeaderBatch(vec![g.op(put, 30)]),
            Step::Single(g.op(put, 50)),
            Step::Single((put, g.key(), g.huge(true))),
            Step::Single(g.op(put, 50)),
            Step::Single((del, Vec::new(), Vec::new())),
            Step::Batch(vec![
                g.op(put, 30),
                g.op(put, 30),
                g.op(del, 0),
                g.op(merge, 30),
            ]),
            Step::Single(g.op(put, 70)),
            Step::HeaderBatch(vec![g.op(del, 0), g.op(put, 30), g.op(put, 30)]),
            Step::Single(g.op(put, 60)),
            Step::Single(g.op(merge, 30)),
            Step::Batch(vec![g.op(merge, 20), g.op(put, 20)]),
            Step::Single(g.op(put, 90)),
            Step::HeaderBatch(vec![g.op(put, 25), g.op(put, 25)]),
            Step::Single(g.op(del, 0)),
            Step::Batch(vec![g.op(put, 20), g.op(del, 0)]),
            Step::Single(g.op(put, 40)),
            Step::HeaderBatch(vec![g.op(put, 20)]),
        ];
        Fixture::write(seed, Shape::Standard, 384, &steps, 200, true)
    }

    /// A fixture whose every choice comes from `seed`.
    pub fn random(seed: u64) -> Result<Fixture, String> {
        let mut rng = Rng::new(seed);
        let mut g = Gen {
            rng: Rng::new(rng.next_u64()),
            keys: 0,
            binary: rng.below(2) == 0,
        };
        let max_segment_size = 128 + rng.below(1024);
        let count = 8 + rng.below(30);
        let huge_at = match rng.below(2) {
            0 => None,
            _ => Some(rng.below(count)),
        };
        let small = [0, 8, 60, 300][rng.below(4) as usize];
        // Without decoys, each bit flip in the huge record costs a scan of
        // all of it: a fixture takes minutes instead of seconds.
        let decoys = rng.below(4) != 0;
        let mut steps = Vec::new();
        for i in 0..count {
            if Some(i) == huge_at {
                let (op, key, _) = g.random_op(0);
                let huge = g.huge(decoys);
                steps.push(match (rng.below(3), op) {
                    (0, _) => Step::Batch(vec![g.random_op(small), (Op::Put, key, huge)]),
                    (_, Op::Delete) => Step::Single((Op::Put, key, huge)),
                    (_, op) => Step::Single((op, key, huge)),
                });
                continue;
            }
            let step = match rng.below(10) {
                0 | 1 => Step::Batch((0..1 + rng.below(4)).map(|_| g.random_op(small)).collect()),
                2 => Step::HeaderBatch(
                    (0..rng.below(4))
                        .map(|_| {
                            let op = if rng.below(3) == 0 {
                                Op::Delete
                            } else {
                                Op::Put
                            };
                            g.op(op, small)
                        })
                        .collect(),
                ),
                _ => Step::Single(g.random_op(small)),
            };
            steps.push(step);
        }
        let zero_tail = [0, 0, 7, 300, 700][rng.below(5) as usize];
        let record = rng.below(4) != 0;
        Fixture::write(
            seed,
            Shape::Random,
            max_segment_size,
            &steps,
            zero_tail,
            record,
        )
    }

    /// Writes `steps` with a `Wal` (header-form batches are appended to the
    /// last segment between two sessions), renames the segments
    /// `00000000000000000001.wal`, … in order, appends `zero_tail` zeros
    /// to the last, and (if `record`) has ironwal record the segments.
    fn write(
        seed: u64,
        shape: Shape,
        max_segment_size: u64,
        steps: &[Step],
        zero_tail: usize,
        record: bool,
    ) -> Result<Fixture, String> {
        let mem = MemStorage::new();
        let dir = Path::new(DIR);
        let options = Options::default()
            .storage(Arc::new(mem.clone()))
            .sync_policy(SyncPolicy::Always)
            .preallocate(false)
            .max_segment_size(max_segment_size);
        let open = || Wal::open(dir, options.clone()).map_err(|e| format!("open: {e}"));
        let mut wal = Some(open()?);
        let mut entries: Vec<Entry> = Vec::new();
        // Items with the path of their segment (renamed at the end).
        let mut placed: Vec<(PathBuf, Item)> = Vec::new();
        let end_of = |path: &Path| -> Result<u64, String> {
            let file = mem
                .open(path, OpenMode::Read)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.len().map_err(|e| e.to_string())
        };
        for step in steps {
            let first = entries.len();
            let seq = match &wal {
                Some(w) => w.next_seq().get(),
                None => return Err("no open log".into()),
            };
            let ops: &[Operation] = match step {
                Step::Single(op) => std::slice::from_ref(op),
                Step::Batch(ops) | Step::HeaderBatch(ops) => ops,
            };
            for (i, (op, key, value)) in ops.iter().enumerate() {
                entries.push(Entry {
                    seq: Seq::new(seq + i as u64),
                    op: *op,
                    key: key.clone(),
                    value: (*op != Op::Delete).then(|| value.clone()),
                });
            }
            let fragmented = ops.iter().map(|(_, k, v)| k.len() + v.len()).sum::<usize>() > 32_000;
            let (path, kind) = match step {
                Step::HeaderBatch(ops) => {
                    if let Some(w) = wal.take() {
                        w.close().map_err(|e| format!("close: {e}"))?;
                    }
                    let path = last_segment(&mem, dir)?;
                    let mut bytes = mem.read_file(&path).unwrap_or_default();
                    let refs: Vec<(Op, &[u8], &[u8])> = ops
                        .iter()
                        .map(|(op, k, v)| (*op, k.as_slice(), v.as_slice()))
                        .collect();
                    encode_header_batch(&mut bytes, seq, &refs)
                        .map_err(|e| format!("encode_header_batch: {e:?}"))?;
                    mem.write_file(&path, &bytes);
                    wal = Some(open()?);
                    (path, ItemKind::HeaderBatch)
                }
                Step::Single((op, key, value)) => {
                    let w = wal.as_ref().ok_or("no open log")?;
                    let got = match op {
                        Op::Put => w.put(key, value),
                        Op::Delete => w.delete(key),
                        Op::Merge => w.merge(key, value),
                    };
                    check_seq(got, seq)?;
                    (active_segment(w)?, ItemKind::Single)
                }
                Step::Batch(ops) => {
                    let w = wal.as_ref().ok_or("no open log")?;
                    let mut batch = WriteBatch::new();
                    for (op, key, value) in ops {
                        batch.push(*op, key, value);
                    }
                    check_seq(w.write_batch(&batch), seq)?;
                    (active_segment(w)?, ItemKind::Batch)
                }
            };
            let end = end_of(&path)?;
            let start = match placed.last() {
                Some((prev, item)) if *prev == path => item.range.end,
                _ => 0,
            };
            let item = Item {
                segment: 0,
                range: start..end,
                entries: first..entries.len(),
                kind,
                fragmented,
            };
            placed.push((path, item));
        }
        if let Some(w) = wal.take() {
            w.close().map_err(|e| format!("close: {e}"))?;
        }

        let mut names: Vec<(SegmentId, String)> = mem
            .list(dir)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|name| Some((SegmentId::parse(&name)?, name)))
            .collect();
        names.sort();
        let mut segments = Vec::new();
        let mut index_of = HashMap::new();
        for (i, (_, name)) in names.iter().enumerate() {
            let old = dir.join(name);
            let bytes = mem.read_file(&old).unwrap_or_default();
            index_of.insert(old, i);
            segments.push(Segment {
                path: dir.join(SegmentId::new(i as u64 + 1).file_name()),
                bytes,
            });
        }
        if let Some(last) = segments.last_mut() {
            last.bytes.resize(last.bytes.len() + zero_tail, 0);
        }
        let items = placed
            .into_iter()
            .map(|(path, item)| {
                let segment = index_of
                    .get(&path)
                    .copied()
                    .ok_or("item in a lost segment")?;
                Ok(Item { segment, ..item })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut fixture = Fixture {
            seed,
            shape,
            max_segment_size,
            segments,
            entries,
            items,
            record: None,
        };
        if record {
            fixture.record = Some(fixture.make_record()?);
        }
        fixture.validate()?;
        Ok(fixture)
    }

    /// The segment record ironwal writes for the segments as they are: a
    /// `Wal` opened on a copy of them writes it (with no size limit, so it
    /// continues the last segment rather than start one).
    fn make_record(&self) -> Result<Vec<u8>, String> {
        let mem = self.storage(None);
        let options = Options::default()
            .storage(Arc::new(mem.clone()))
            .preallocate(false)
            .max_segment_size(u64::MAX);
        let wal = Wal::open(DIR, options).map_err(|e| format!("recording: {e}"))?;
        wal.close().map_err(|e| format!("recording: {e}"))?;
        mem.read_file(&Path::new(DIR).join(RECORD_FILE))
            .ok_or_else(|| "the Wal wrote no segment record".to_owned())
    }

    /// Checks that the items tile every segment (up to the zero tail) and
    /// that a strict read yields exactly the entries.
    fn validate(&self) -> Result<(), String> {
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            let mut at = 0;
            for item in self.items.iter().filter(|item| item.segment == i) {
                if item.range.start != at || item.range.end <= at {
                    return Err(format!("{self}: item {item:?} does not follow byte {at}"));
                }
                at = item.range.end;
            }
            let len = segment.bytes.len() as u64;
            let tail_ok = segment
                .bytes
                .get(at as usize..)
                .is_some_and(|tail| tail.iter().all(|&b| b == 0));
            if (i != last && at != len) || !tail_ok {
                return Err(format!(
                    "{self}: segment {i} has {len} bytes, items end at {at}"
                ));
            }
        }
        let mem = self.storage(None);
        let (got, outcome) = read_log(&mem, RecoveryMode::Strict, &self.entries, &self.by_seq());
        let want: Vec<Result<usize, String>> = (0..self.entries.len()).map(Ok).collect();
        if got != want || outcome.is_err() {
            return Err(format!("{self}: reads back as {got:?}, {outcome:?}"));
        }
        Ok(())
    }

    /// A file system holding the fixture (and its segment record), damaged
    /// by `damage` if given.
    pub fn storage(&self, damage: Option<Damage>) -> MemStorage {
        let mem = MemStorage::new();
        let bytes = |i: usize| &self.segments[i].bytes;
        for (i, segment) in self.segments.iter().enumerate() {
            let content = match damage {
                Some(Damage::Delete { file }) if file == i => continue,
                Some(Damage::SwapWithNext { file }) if file == i => bytes(i + 1).clone(),
                Some(Damage::SwapWithNext { file }) if file + 1 == i => bytes(i - 1).clone(),
                Some(d) if d.file() == i => d.apply(bytes(i)),
                _ => bytes(i).clone(),
            };
            mem.write_file(&segment.path, &content);
        }
        if let Some(record) = &self.record {
            mem.write_file(&Path::new(DIR).join(RECORD_FILE), record);
        }
        mem
    }

    /// Entry index by sequence number.
    pub(super) fn by_seq(&self) -> HashMap<u64, usize> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.seq.get(), i))
            .collect()
    }

    /// Bytes in all segments.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes.len() as u64).sum()
    }

    /// Whether the fixture holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every damage of the fixture; with a segment record, also every
    /// segment deleted and every two neighbours swapped.
    pub fn cases(&self) -> Vec<Damage> {
        let n = self.segments.len();
        let mut cases: Vec<Damage> = self
            .segments
            .iter()
            .enumerate()
            .flat_map(|(file, s)| Damage::all_of(file, s.bytes.len() as u64))
            .collect();
        if self.record.is_some() {
            cases.extend((0..n).map(|file| Damage::Delete { file }));
            cases.extend((0..n.saturating_sub(1)).map(|file| Damage::SwapWithNext { file }));
        }
        cases
    }
}

impl fmt::Display for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match self.shape {
            Shape::Standard => "standard",
            Shape::Random => "random",
        };
        write!(f, "fixture {shape}({})", self.seed)
    }
}

fn check_seq(got: Result<Seq, Error>, want: u64) -> Result<(), String> {
    match got {
        Ok(seq) if seq.get() == want => Ok(()),
        Ok(seq) => Err(format!("append got sequence {seq}, expected {want}")),
        Err(e) => Err(format!("append: {e}")),
    }
}

fn active_segment(wal: &Wal) -> Result<PathBuf, String> {
    wal.segments()
        .into_iter()
        .find(|s| s.active)
        .map(|s| s.path)
        .ok_or_else(|| "no active segment".into())
}

fn last_segment(storage: &dyn Storage, dir: &Path) -> Result<PathBuf, String> {
    storage
        .list(dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|name| Some((SegmentId::parse(&name)?, name)))
        .max()
        .map(|(_, name)| dir.join(name))
        .ok_or_else(|| "no segment".into())
}
