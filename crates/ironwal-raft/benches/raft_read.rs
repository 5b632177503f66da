//! Reading old Raft entries (a cache miss: a lagging or restarted
//! follower): ironwal-raft's `try_get_log_entries` against raft-engine's
//! `fetch_entries_to`, for 1, 100 and 10,000 entries starting at the log's
//! first entry and about 60 MiB into a 64 MiB segment.
//!
//! Both logs hold the same entries (256-byte values, encoded as
//! ironwal-raft encodes them; raft-engine's carry those bytes in a minimal
//! protobuf message, as TiKV's entries carry theirs), written in batches of
//! 256 and reopened before reading, so nothing is served from what writing
//! left in memory (the files are in the page cache). raft-engine keeps each
//! entry's file and offset in memory and reads the entries from its files;
//! ironwal-raft runs with its entry cache off and reads through the sparse
//! index. Each read decodes the entries it returns, on both sides, and
//! each repetition starts 300 entries after the one before, so neither
//! side serves it from what the previous one read.
//!
//! `cargo bench -p ironwal-raft --bench raft_read [-- --reps N] [--dir D]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use ironwal_raft::{LogStore, StoreOptions};
use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};

const VALUE_LEN: usize = 256;
/// Entries that fill about 63 MiB of one 64 MiB segment.
const ENTRIES: u64 = 63 * 1024 * 1024 / (VALUE_LEN as u64 + 64);
const COUNTS: [u64; 3] = [1, 100, 10_000];

fn entry(index: u64) -> Entry<KvTypeConfig> {
    let fill = char::from(b'a' + (index % 26) as u8);
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: std::iter::repeat_n(fill, VALUE_LEN).collect(),
        }),
    }
}

fn store_options() -> StoreOptions {
    StoreOptions::default()
        .cache_bytes(0)
        .wal(ironwal::Options::default().max_segment_size(64 << 20))
}

fn fill_ironwal(dir: &Path, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let mut store = LogStore::<KvTypeConfig>::open(dir, store_options()).unwrap();
        for start in (1..=ENTRIES).step_by(256) {
            let batch: Vec<_> = (start..(start + 256).min(ENTRIES + 1)).map(entry).collect();
            store.blocking_append(batch).await.unwrap();
        }
        store.close().unwrap();
    });
}

fn engine(dir: &Path) -> raft_engine::Engine {
    let config = raft_engine::Config {
        dir: dir.to_str().expect("a UTF-8 path").to_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    };
    raft_engine::Engine::open(config).unwrap()
}

/// A Raft entry as raft-engine stores it: a protobuf message (field 1 the
/// index, field 2 the entry bytes), written by hand against the protobuf
/// runtime raft-engine uses, instead of generated code.
mod pb {
    use protobuf::rt;
    use protobuf::{
        CachedSize, Clear, CodedInputStream, CodedOutputStream, Message, ProtobufResult,
        UnknownFields,
    };

    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct RaftEntry {
        pub index: u64,
        pub data: Vec<u8>,
        unknown: UnknownFields,
        size: CachedSize,
    }

    impl RaftEntry {
        pub fn new(index: u64, data: Vec<u8>) -> Self {
            RaftEntry {
                index,
                data,
                ..RaftEntry::default()
            }
        }
    }

    impl Clear for RaftEntry {
        fn clear(&mut self) {
            *self = RaftEntry::default();
        }
    }

    impl Message for RaftEntry {
        fn descriptor(&self) -> &'static protobuf::reflect::MessageDescriptor {
            Self::descriptor_static()
        }

        fn is_initialized(&self) -> bool {
            true
        }

        fn merge_from(&mut self, is: &mut CodedInputStream) -> ProtobufResult<()> {
            while !is.eof()? {
                let (field, wire_type) = is.read_tag_unpack()?;
                match field {
                    1 => self.index = is.read_uint64()?,
                    2 => self.data = is.read_bytes()?,
                    _ => rt::read_unknown_or_skip_group(field, wire_type, is, &mut self.unknown)?,
                }
            }
            Ok(())
        }

        fn write_to_with_cached_sizes(&self, os: &mut CodedOutputStream) -> ProtobufResult<()> {
            os.write_uint64(1, self.index)?;
            os.write_bytes(2, &self.data)
        }

        fn compute_size(&self) -> u32 {
            let size = rt::tag_size(1)
                + rt::compute_raw_varint64_size(self.index)
                + rt::bytes_size(2, &self.data);
            self.size.set(size);
            size
        }

        fn get_cached_size(&self) -> u32 {
            self.size.get()
        }

        fn get_unknown_fields(&self) -> &UnknownFields {
            &self.unknown
        }

        fn mut_unknown_fields(&mut self) -> &mut UnknownFields {
            &mut self.unknown
        }

        fn as_any(&self) -> &dyn std::any::Any {
            self
        }

        fn new() -> Self {
            RaftEntry::default()
        }

        fn default_instance() -> &'static Self {
            static INSTANCE: rt::LazyV2<RaftEntry> = rt::LazyV2::INIT;
            INSTANCE.get(RaftEntry::default)
        }
    }

    /// Tells raft-engine where a `RaftEntry`'s index is.
    pub struct Ext;

    impl raft_engine::MessageExt for Ext {
        type Entry = RaftEntry;

        fn index(entry: &RaftEntry) -> u64 {
            entry.index
        }
    }
}

fn fill_raft_engine(dir: &Path) {
    let engine = engine(dir);
    let mut batch = raft_engine::LogBatch::default();
    let mut pending = Vec::new();
    for index in 1..=ENTRIES {
        let value = postcard::to_allocvec(&entry(index)).unwrap();
        pending.push(pb::RaftEntry::new(index, value));
        if index % 256 == 0 || index == ENTRIES {
            batch.add_entries::<pb::Ext>(1, &pending).unwrap();
            engine.write(&mut batch, true).unwrap();
            pending.clear();
        }
    }
}

/// Entries between the starts of two repetitions: more than one write
/// batch, so no repetition finds its first entries in what the one before
/// left in a cache (raft-engine keeps the last block it decoded).
const STRIDE: u64 = 300;

/// The median of `reps` timings of `read`, given the repetition's number.
fn median_of(reps: usize, mut read: impl FnMut(u64)) -> Duration {
    let mut times: Vec<Duration> = (0..reps as u64)
        .map(|rep| {
            let started = Instant::now();
            read(rep);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut reps = 21usize;
    let mut base: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => reps = args.next().and_then(|s| s.parse().ok()).expect("--reps N"),
            "--dir" => base = args.next().map(PathBuf::from),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    let scratch = match &base {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = scratch.path().join("ironwal-raft");
    let theirs = scratch.path().join("raft-engine");
    fill_ironwal(&ours, &rt);
    fill_raft_engine(&theirs);
    let deep = ENTRIES * 60 / 63 - 10_000;
    assert!(
        deep + reps as u64 * STRIDE + 10_000 <= ENTRIES,
        "--reps too high"
    );
    println!(
        "Raft-entry reads after reopening, {VALUE_LEN}-byte values, {ENTRIES} entries \
         (~63 MiB); median of {reps} ({})",
        scratch.path().display()
    );
    println!(
        "{:>7} {:>14} {:>16} {:>16} {:>7}",
        "entries", "from", "ironwal-raft", "raft-engine", "ratio"
    );
    let mut store = LogStore::<KvTypeConfig>::open(&ours, store_options()).unwrap();
    let engine = engine(&theirs);
    for count in COUNTS {
        for (name, start) in [("first entry", 1), ("~60 MiB in", deep)] {
            let a = median_of(reps, |rep| {
                let start = start + rep * STRIDE;
                let got = rt
                    .block_on(store.try_get_log_entries(start..start + count))
                    .unwrap();
                assert_eq!(got.len() as u64, count);
            });
            let b = median_of(reps, |rep| {
                let start = start + rep * STRIDE;
                let mut got = Vec::new();
                engine
                    .fetch_entries_to::<pb::Ext>(1, start, start + count, None, &mut got)
                    .unwrap();
                assert_eq!(got.len() as u64, count);
                for e in got {
                    let entry: Entry<KvTypeConfig> = postcard::from_bytes(&e.data).unwrap();
                    std::hint::black_box(entry);
                }
            });
            println!(
                "{count:>7} {name:>14} {:>13.1} us {:>13.1} us {:>6.2}x",
                a.as_secs_f64() * 1e6,
                b.as_secs_f64() * 1e6,
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
    }
    store.close().unwrap();
}
