//! What a `Wal` promises while it runs: one opener at a time (in this
//! process or another), nothing after close, sequences that continue across
//! reopens and never collide between threads, segments that rotate with
//! increasing names even when the clock goes backwards, and retention that
//! only ever removes whole, old, sealed segments.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironwal::{
    Entry, Error, Op, Options, RecoveryMode, SegmentId, Seq, SyncPolicy, Wal, WriteBatch,
};

use crate::common::{entry, letters, put_entry, read_all_in, replay_all, Store};

// ---------------------------------------------------------------------------
// The directory lock.

#[test]
fn second_open_in_the_same_process_is_locked() {
    for store in Store::both() {
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        match Wal::open(store.dir(), store.options()) {
            Err(Error::Locked { dir }) => assert_eq!(dir, store.dir(), "{}", store.name()),
            other => panic!("{}: expected Locked, got {other:?}", store.name()),
        }
        // The refused opener changed nothing: the first still works.
        wal.put(b"still", b"mine").unwrap();
        wal.close().unwrap();
    }
}

#[test]
fn close_releases_the_lock() {
    for store in Store::both() {
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        wal.put(b"a", b"1").unwrap();
        wal.close().unwrap();
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert_eq!(wal.next_seq(), Seq::new(2), "{}", store.name());
        // Dropping releases it too.
        drop(wal);
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        wal.close().unwrap();
    }
}

const LOCK_CHILD_ENV: &str = "IRONWAL_TEST_LOCK_CHILD";
const LOCK_CHILD_MARKER: &str = "ironwal-test-child-holds-the-lock";

/// Not a test: the child process of
/// `second_open_from_another_process_is_locked`, which runs it by name with
/// `--ignored` (so it is never counted as a passing test). It opens the log
/// in `IRONWAL_TEST_LOCK_CHILD`, says so on stdout and holds the lock until
/// it is killed (or a minute passes, so a lost parent leaves nothing
/// behind).
#[test]
#[ignore = "a child process helper, run by second_open_from_another_process_is_locked"]
fn lock_holder_child_process() {
    let dir = std::env::var_os(LOCK_CHILD_ENV)
        .expect("run only as a child process, with IRONWAL_TEST_LOCK_CHILD set");
    let wal = Wal::open(&dir, Options::default()).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "\n{LOCK_CHILD_MARKER}").unwrap();
    out.flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(wal);
}

#[test]
fn second_open_from_another_process_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wal_behaviour::lock_holder_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut locked = false;
    for line in stdout.lines() {
        if line.unwrap().contains(LOCK_CHILD_MARKER) {
            locked = true;
            break;
        }
    }
    let result = std::panic::catch_unwind(|| {
        assert!(locked, "the child process never took the lock");
        match Wal::open(&dir, Options::default()) {
            Err(Error::Locked { dir: locked_dir }) => assert_eq!(locked_dir, dir),
            other => panic!("expected Locked while another process holds it, got {other:?}"),
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // The lock dies with its process.
    let wal = Wal::open(&dir, Options::default()).unwrap();
    wal.put(b"after", b"the child").unwrap();
    wal.close().unwrap();
}

// ---------------------------------------------------------------------------
// Close.

#[test]
fn appends_after_close_fail_with_closed() {
    for store in Store::both() {
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        wal.put(b"k", b"v").unwrap();
        wal.close().unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"k", b"v");
        let name = store.name();
        assert!(
            matches!(wal.put(b"k", b"v"), Err(Error::Closed)),
            "{name}: put"
        );
        assert!(
            matches!(wal.delete(b"k"), Err(Error::Closed)),
            "{name}: delete"
        );
        assert!(
            matches!(wal.merge(b"k", b"v"), Err(Error::Closed)),
            "{name}: merge"
        );
        assert!(
            matches!(wal.write_batch(&batch), Err(Error::Closed)),
            "{name}: batch"
        );
        assert!(matches!(wal.sync(), Err(Error::Closed)), "{name}: sync");
        assert!(matches!(wal.flush(), Err(Error::Closed)), "{name}: flush");
        assert!(
            matches!(wal.remove_segments_before(Seq::new(10)), Err(Error::Closed)),
            "{name}: retention"
        );
        // Closing again is a no-op, and nothing was appended after the first.
        wal.close().unwrap();
        wal.close().unwrap();
        let (got, error, _) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none());
        assert_eq!(got, [put_entry(1, b"k", b"v")], "{name}");
    }
}

#[test]
fn close_makes_every_policy_durable() {
    for policy in policies() {
        let store = Store::mem();
        let wal = Wal::open(store.dir(), store.options().sync_policy(policy)).unwrap();
        for i in 0..50u8 {
            wal.put(&[i], b"value").unwrap();
        }
        wal.close().unwrap();
        assert_eq!(wal.durable_seq(), Seq::new(50), "{policy:?}");
        let (got, _, _) = store.read_all(RecoveryMode::Strict);
        assert_eq!(got.len(), 50, "{policy:?}");
    }
}

#[test]
fn dropping_without_close_keeps_buffered_entries() {
    for store in Store::both() {
        let options = store.options().sync_policy(SyncPolicy::Never);
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        wal.put(b"buffered", b"only").unwrap();
        drop(wal);
        let wal = Wal::open(store.dir(), options).unwrap();
        assert_eq!(
            replay_all(&wal),
            [put_entry(1, b"buffered", b"only")],
            "{}",
            store.name()
        );
        wal.close().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Sequences.

#[test]
fn a_new_log_starts_at_first_seq_and_an_existing_one_ignores_it() {
    for store in Store::both() {
        let options = || store.options().first_seq(Seq::new(100));
        let wal = Wal::open(store.dir(), options()).unwrap();
        assert_eq!(wal.next_seq(), Seq::new(100), "{}", store.name());
        assert_eq!(wal.put(b"a", b"1").unwrap(), Seq::new(100));
        wal.close().unwrap();

        let wal = Wal::open(store.dir(), store.options().first_seq(Seq::new(5000))).unwrap();
        assert_eq!(
            wal.put(b"b", b"2").unwrap(),
            Seq::new(101),
            "{}",
            store.name()
        );
        let seqs: Vec<Seq> = replay_all(&wal).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [Seq::new(100), Seq::new(101)]);
        wal.close().unwrap();

        match Wal::open(store.dir(), store.options().first_seq(Seq::ZERO)) {
            Err(Error::InvalidOption(ironwal::InvalidOption::FirstSeq)) => {}
            other => panic!("{}: expected InvalidOption, got {other:?}", store.name()),
        }
    }
}

#[test]
fn sequences_continue_across_reopen() {
    for store in Store::both() {
        let mut want = Vec::new();
        for round in 0..3u64 {
            let wal = Wal::open(store.dir(), store.options()).unwrap();
            let base = round * 5;
            assert_eq!(wal.next_seq(), Seq::new(base + 1), "{}", store.name());
            assert_eq!(wal.last_seq(), Seq::new(base), "{}", store.name());
            assert_eq!(wal.put(b"p", b"1").unwrap(), Seq::new(base + 1));
            assert_eq!(wal.delete(b"d").unwrap(), Seq::new(base + 2));
            let mut batch = WriteBatch::new();
            batch.put(b"b1", b"x").merge(b"b2", b"y").delete(b"b3");
            assert_eq!(wal.write_batch(&batch).unwrap(), Seq::new(base + 3));
            assert_eq!(wal.next_seq(), Seq::new(base + 6));
            want.push(put_entry(base + 1, b"p", b"1"));
            want.push(entry(base + 2, Op::Delete, b"d", None));
            want.extend(batch.iter(Seq::new(base + 3)).map(|e| e.to_entry()));
            wal.close().unwrap();
        }
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert!(replay_all(&wal) == want, "{}", store.name());
        assert_eq!(wal.next_seq(), Seq::new(16));
        wal.close().unwrap();
    }
}

#[test]
fn empty_batch_is_refused_and_burns_no_sequence() {
    for store in Store::both() {
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        wal.put(b"a", b"1").unwrap();
        assert!(matches!(
            wal.write_batch(&WriteBatch::new()),
            Err(Error::EmptyBatch)
        ));
        assert_eq!(
            wal.put(b"b", b"2").unwrap(),
            Seq::new(2),
            "{}",
            store.name()
        );
        wal.close().unwrap();
        let (got, error, _) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none());
        assert_eq!(got, [put_entry(1, b"a", b"1"), put_entry(2, b"b", b"2")]);
    }
}

#[test]
fn invalid_options_are_refused() {
    let store = Store::mem();
    for options in [
        store.options().max_segment_size(0),
        store.options().write_buffer_size(0),
        store.options().background_sync_bytes(Some(0)),
        store.options().sync_policy(SyncPolicy::Bytes(0)),
        store
            .options()
            .sync_policy(SyncPolicy::Interval(Duration::ZERO)),
    ] {
        assert!(matches!(
            Wal::open(store.dir(), options),
            Err(Error::InvalidOption(_))
        ));
    }
}

// ---------------------------------------------------------------------------
// Rotation.

/// Appends `n` puts of about 100 bytes each; returns what a reader must see.
fn fill(wal: &Wal, n: u32) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let key = format!("key-{i:05}");
            let value = letters(80, i as u8);
            let seq = wal.put(key.as_bytes(), &value).unwrap();
            put_entry(seq.get(), key.as_bytes(), &value)
        })
        .collect()
}

fn segment_ids(store: &Store) -> Vec<SegmentId> {
    store
        .files()
        .iter()
        .filter_map(|n| SegmentId::parse(n))
        .collect()
}

#[test]
fn rotation_replays_segments_in_order() {
    for store in Store::both() {
        let options = store
            .options()
            .max_segment_size(4096)
            .sync_policy(SyncPolicy::Never);
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        let want = fill(&wal, 200);
        let infos = wal.segments();
        assert!(
            infos.len() >= 4,
            "{}: {} segments",
            store.name(),
            infos.len()
        );
        assert!(
            infos.windows(2).all(|w| w[0].id < w[1].id),
            "names increase"
        );
        assert_eq!(
            infos.iter().map(|s| s.active).collect::<Vec<_>>(),
            (0..infos.len())
                .map(|i| i + 1 == infos.len())
                .collect::<Vec<_>>()
        );
        assert!(
            replay_all(&wal) == want,
            "{}: replay before close",
            store.name()
        );
        wal.close().unwrap();

        let ids = segment_ids(&store);
        assert_eq!(ids, infos.iter().map(|s| s.id).collect::<Vec<_>>());
        let paths = store.segments();
        let mut next = 1;
        for (i, path) in paths.iter().enumerate() {
            let len = store.read(path).len() as u64;
            if i + 1 < paths.len() {
                // Sealed once it reached the limit, and by no more than one entry.
                assert!(
                    (4096..4096 + 120).contains(&len),
                    "segment {i} is {len} bytes"
                );
            }
            let (got, error, report) = read_all_in(store.storage(), path, RecoveryMode::Strict);
            assert!(
                error.is_none() && report.is_clean(),
                "segment {i}: {error:?}"
            );
            assert_eq!(got.first().map(|e| e.seq), infos[i].first_seq);
            assert_eq!(got.last().map(|e| e.seq), infos[i].last_seq);
            assert_eq!(
                got[0].seq,
                Seq::new(next),
                "segment {i} continues the previous one"
            );
            next = got.last().unwrap().seq.get() + 1;
        }

        let wal = Wal::open(store.dir(), options).unwrap();
        assert!(wal.recovery_report().is_clean());
        assert_eq!(wal.recovery_report().segments.len(), paths.len());
        assert!(
            replay_all(&wal) == want,
            "{}: replay after reopen",
            store.name()
        );
        assert_eq!(wal.next_seq(), Seq::new(201));
        wal.close().unwrap();
    }
}

/// The id of a segment created far in the future (about the year 2540).
const FUTURE: u64 = 18_000_000_000_000_000_000;

#[test]
fn segment_names_keep_increasing_after_a_future_segment() {
    for store in Store::both() {
        let options = store
            .options()
            .max_segment_size(4096)
            .sync_policy(SyncPolicy::Never);
        // Some entries under today's clock, then an empty segment named by a
        // clock that was far ahead (and has since gone back).
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        let mut want = fill(&wal, 10);
        wal.close().unwrap();
        let future = SegmentId::new(FUTURE);
        store.write(&store.dir().join(future.file_name()), b"");

        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        assert_eq!(
            wal.segments().last().unwrap().id,
            future,
            "continues the last segment"
        );
        let seqs: Vec<Entry> = fill(&wal, 150);
        want.extend(seqs);
        let ids: Vec<SegmentId> = wal.segments().iter().map(|s| s.id).collect();
        wal.close().unwrap();

        let after: Vec<SegmentId> = ids.iter().copied().filter(|id| *id > future).collect();
        assert!(after.len() >= 3, "{}: {ids:?}", store.name());
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{}: {ids:?}",
            store.name()
        );
        assert_eq!(segment_ids(&store), ids);
        let (got, error, report) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none() && report.is_clean(), "{error:?}");
        assert!(got == want, "{}: replay in log order", store.name());
    }
}

#[test]
fn full_future_segment_is_followed_by_a_greater_name() {
    for store in Store::both() {
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        let mut want = fill(&wal, 20);
        wal.close().unwrap();
        // The only segment is renamed into the future, and is over the limit
        // the log is reopened with.
        let old = store.segments()[0].clone();
        let future = store.dir().join(SegmentId::new(FUTURE).file_name());
        store.storage().rename(&old, &future).unwrap();
        // Renaming a segment breaks the log's segment record; without one,
        // the log is read as a foreign (kevo) one.
        store
            .storage()
            .remove_file(&store.dir().join(ironwal::RECORD_FILE))
            .unwrap();

        let options = store.options().max_segment_size(1000);
        let wal = Wal::open(store.dir(), options).unwrap();
        let ids: Vec<SegmentId> = wal.segments().iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 2, "{}: a new segment is started", store.name());
        assert!(ids[1] > ids[0], "{}: {ids:?}", store.name());
        assert_eq!(wal.next_seq(), Seq::new(21));
        want.extend(fill(&wal, 1));
        wal.close().unwrap();
        let (got, error, _) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none());
        assert!(got == want);
    }
}

#[test]
fn other_files_in_the_directory_are_never_touched() {
    for store in Store::both() {
        let keep = [
            ("notes.txt", &b"mine"[..]),
            ("01745172985771529746.wal.corrupt", b"kept aside"),
            ("1745172985771529746.wal", b"not 20 digits"),
            ("99999999999999999999.wal", b"above u64::MAX"),
        ];
        for (name, bytes) in keep {
            store.write(&store.dir().join(name), bytes);
        }
        let options = store.options().max_segment_size(1024);
        let wal = Wal::open(store.dir(), options).unwrap();
        fill(&wal, 60);
        let removed = wal.remove_segments_before(wal.next_seq()).unwrap();
        assert!(!removed.is_empty());
        wal.close().unwrap();
        for (name, bytes) in keep {
            assert_eq!(
                store.read(&store.dir().join(name)),
                bytes,
                "{}: {name}",
                store.name()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Retention.

#[test]
fn retention_removes_only_whole_old_sealed_segments() {
    for store in Store::both() {
        let options = store
            .options()
            .max_segment_size(4096)
            .sync_policy(SyncPolicy::Never);
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        let all = fill(&wal, 250);
        let infos = wal.segments();
        assert!(infos.len() >= 5, "{} segments", infos.len());
        let first = |i: usize| infos[i].first_seq.unwrap();
        let last = |i: usize| infos[i].last_seq.unwrap();
        let name = store.name();

        // Below the first segment's entries: nothing goes.
        assert!(
            wal.remove_segments_before(first(0)).unwrap().is_empty(),
            "{name}"
        );

        // A sequence inside segment 2: segments 0 and 1 go, 2 holds it and stays.
        let seq = Seq::new(first(2).get() + 1);
        let removed = wal.remove_segments_before(seq).unwrap();
        assert_eq!(
            removed,
            [infos[0].path.clone(), infos[1].path.clone()],
            "{name}"
        );
        assert_eq!(wal.segments()[0].id, infos[2].id);
        let replayed = replay_all(&wal);
        assert_eq!(
            replayed[0].seq,
            first(2),
            "{name}: replay starts at the first kept"
        );
        assert!(replayed[..] == all[first(2).get() as usize - 1..], "{name}");

        // Segment 3's last sequence is in segment 3: only segment 2 goes.
        let removed = wal.remove_segments_before(last(3)).unwrap();
        assert_eq!(removed, [infos[2].path.clone()], "{name}");
        // Exactly segment 4's first: segment 3 is all below it and goes.
        let removed = wal.remove_segments_before(first(4)).unwrap();
        assert_eq!(removed, [infos[3].path.clone()], "{name}");

        // Everything, even past the end: while the active segment's entries
        // are not yet durable (SyncPolicy::Never), the sealed segment holding
        // the newest durable entries stays, so a crash cannot lose the
        // log's place in the sequence...
        let removed = wal.remove_segments_before(Seq::new(u64::MAX)).unwrap();
        assert_eq!(
            removed.len(),
            infos.len() - 6,
            "{name}: keeps the last holder"
        );
        // ...and once they are durable, every sealed segment goes, never the active.
        wal.sync().unwrap();
        let removed = wal.remove_segments_before(Seq::new(u64::MAX)).unwrap();
        let active = infos.last().unwrap();
        assert_eq!(removed, [infos[infos.len() - 2].path.clone()], "{name}");
        assert!(
            !removed.contains(&active.path),
            "{name}: removed the active segment"
        );
        assert_eq!(
            store.segments(),
            std::slice::from_ref(&active.path),
            "{name}"
        );
        for path in infos[..infos.len() - 1].iter().map(|s| &s.path) {
            assert!(
                !store.files().iter().any(|n| path.ends_with(n)),
                "{name}: {path:?}"
            );
        }
        let tail = &all[active.first_seq.unwrap().get() as usize - 1..];
        assert!(replay_all(&wal) == tail, "{name}");
        let seq = wal.put(b"after", b"retention").unwrap();
        assert_eq!(seq, Seq::new(251));
        wal.close().unwrap();

        // Reopening a log whose start was removed continues it.
        let wal = Wal::open(store.dir(), options).unwrap();
        assert!(wal.recovery_report().is_clean());
        assert_eq!(wal.next_seq(), Seq::new(252), "{name}");
        let mut want = tail.to_vec();
        want.push(put_entry(251, b"after", b"retention"));
        assert!(replay_all(&wal) == want, "{name}");
        wal.close().unwrap();
    }
}

#[test]
fn retention_keeps_the_last_sequence_holder_until_the_active_segment_is_durable() {
    // A segment that reached the limit with its last append is sealed by the
    // next open, which starts an empty segment. A checkpoint covering every
    // entry then removes all the sealed segments; the log must still know
    // where its sequence is.
    for store in Store::both() {
        let options = store.options().max_segment_size(4096);
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        let path = wal.segments()[0].path.clone();
        let mut n = 0;
        while store.read(&path).len() < 4096 {
            fill(&wal, 1);
            n += 1;
        }
        wal.close().unwrap();

        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        assert_eq!(
            wal.segments().len(),
            2,
            "{}: a fresh active segment",
            store.name()
        );
        assert_eq!(wal.next_seq(), Seq::new(n + 1));
        // The active segment holds nothing yet: the segment holding the
        // highest sequence is all the log knows of its place, so it stays.
        let removed = wal.remove_segments_before(wal.next_seq()).unwrap();
        assert!(removed.is_empty(), "{}: removed {removed:?}", store.name());
        // Once the active segment holds a durable entry, it can go.
        let seq = wal.put(b"k", b"v").unwrap();
        assert_eq!(seq, Seq::new(n + 1));
        let removed = wal.remove_segments_before(wal.next_seq()).unwrap();
        assert_eq!(removed, std::slice::from_ref(&path));
        wal.close().unwrap();

        let wal = Wal::open(store.dir(), options).unwrap();
        assert_eq!(
            wal.next_seq(),
            Seq::new(n + 2),
            "{}: sequence numbers restarted after retention",
            store.name()
        );
        wal.close().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Sync policies and concurrent appenders.

fn policies() -> [SyncPolicy; 4] {
    [
        SyncPolicy::Always,
        SyncPolicy::Bytes(1024),
        SyncPolicy::Interval(Duration::from_millis(5)),
        SyncPolicy::Never,
    ]
}

const THREADS: usize = 8;
const PER_THREAD: usize = 200;

/// Eight threads append (puts and, every tenth, a batch of three) at once;
/// every returned sequence is unique, together they are exactly 1..=N, and
/// after reopening the log holds every entry in sequence order.
///
/// Returns where `Wal::segments` (taken before close) disagreed with what
/// each segment file holds.
fn concurrent_appends(store: &Store, policy: SyncPolicy) {
    let ctx = format!("{} {policy:?}", store.name());
    let options = store
        .options()
        .sync_policy(policy)
        .max_segment_size(32 * 1024);
    let wal = Arc::new(Wal::open(store.dir(), options.clone()).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut written = Vec::new();
                for i in 0..PER_THREAD {
                    let key = format!("t{t}-{i}");
                    let value = letters(i % 50, t as u8);
                    if i % 10 == 9 {
                        let mut batch = WriteBatch::new();
                        batch
                            .put(key.as_bytes(), &value)
                            .delete(b"gone")
                            .merge(key.as_bytes(), b"+1");
                        let seq = wal.write_batch(&batch).unwrap();
                        written.extend(batch.iter(seq).map(|e| e.to_entry()));
                    } else {
                        let seq = wal.put(key.as_bytes(), &value).unwrap();
                        if policy == SyncPolicy::Always {
                            assert!(wal.durable_seq() >= seq, "acknowledged before durable");
                        }
                        written.push(put_entry(seq.get(), key.as_bytes(), &value));
                    }
                }
                written
            })
        })
        .collect();
    let mut written: Vec<Entry> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    written.sort_by_key(|e| e.seq);
    let n = (THREADS * PER_THREAD + THREADS * PER_THREAD / 10 * 2) as u64;
    let seqs: Vec<u64> = written.iter().map(|e| e.seq.get()).collect();
    assert!(
        seqs.iter().copied().eq(1..=n),
        "{ctx}: sequences are not exactly 1..={n}"
    );

    // What the Wal says about each segment is what the segment holds.
    wal.flush().unwrap();
    let infos = wal.segments();
    assert!(infos.len() > 1, "{ctx}: expected rotation");
    let mut mismatches = Vec::new();
    for info in &infos {
        let (got, error, _) = read_all_in(store.storage(), &info.path, RecoveryMode::Strict);
        assert!(error.is_none(), "{ctx}: {error:?}");
        let held = (got.first().map(|e| e.seq), got.last().map(|e| e.seq));
        if held != (info.first_seq, info.last_seq) {
            mismatches.push(format!(
                "{}: segments() says {:?}..={:?}, the file holds {:?}..={:?}",
                info.id, info.first_seq, info.last_seq, held.0, held.1
            ));
        }
    }
    wal.close().unwrap();

    let wal = Wal::open(store.dir(), options).unwrap();
    assert!(wal.recovery_report().is_clean(), "{ctx}");
    assert_eq!(wal.next_seq(), Seq::new(n + 1), "{ctx}");
    // The reader yields in file order, so this is also "file order is
    // sequence order".
    assert!(replay_all(&wal) == written, "{ctx}: entries after reopen");
    wal.close().unwrap();
    assert!(
        mismatches.is_empty(),
        "{ctx}: Wal::segments disagrees with the segment files:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn concurrent_appends_get_unique_sequences_under_every_policy() {
    for policy in policies() {
        concurrent_appends(&Store::mem(), policy);
    }
}

#[test]
fn concurrent_appends_on_the_real_file_system() {
    for policy in [
        SyncPolicy::Always,
        SyncPolicy::Bytes(1024),
        SyncPolicy::Never,
    ] {
        concurrent_appends(&Store::fs(), policy);
    }
}

#[test]
fn segment_sequence_ranges_match_the_files_after_concurrent_rotation() {
    // An appender that arrives while another thread is sealing the full
    // segment must be counted in the segment its entry is written to. The
    // real file system's fsyncs hold the segment open long enough for the
    // other threads to arrive.
    for _ in 0..2 {
        concurrent_appends(&Store::fs(), SyncPolicy::Always);
        concurrent_appends(&Store::mem(), SyncPolicy::Always);
    }
}

#[test]
fn interval_policy_makes_entries_durable_without_a_sync() {
    for store in Store::both() {
        let options = store
            .options()
            .sync_policy(SyncPolicy::Interval(Duration::from_millis(5)));
        let wal = Wal::open(store.dir(), options).unwrap();
        let seq = wal.put(b"k", b"v").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while wal.durable_seq() < seq {
            assert!(Instant::now() < deadline, "{}: never flushed", store.name());
            std::thread::sleep(Duration::from_millis(2));
        }
        wal.close().unwrap();
    }
}

#[test]
fn sync_policies_advance_the_durable_sequence_as_promised() {
    let store = Store::mem();
    // Never: only an explicit sync makes anything durable.
    let wal = Wal::open(store.dir(), store.options().sync_policy(SyncPolicy::Never)).unwrap();
    fill(&wal, 20);
    assert_eq!(wal.durable_seq(), Seq::ZERO);
    assert_eq!(wal.last_seq(), Seq::new(20));
    wal.sync().unwrap();
    assert_eq!(wal.durable_seq(), Seq::new(20));
    wal.close().unwrap();

    // Bytes(1024): about every ten 100-byte entries.
    let store = Store::mem();
    let options = store.options().sync_policy(SyncPolicy::Bytes(1024));
    let wal = Wal::open(store.dir(), options).unwrap();
    for _ in 0..40 {
        fill(&wal, 1);
        let lag = wal.last_seq().get() - wal.durable_seq().get();
        assert!(lag <= 11, "{lag} entries (over 1 KiB) not yet synced");
    }
    wal.close().unwrap();

    // Replay sees what is appended even before it is synced.
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options().sync_policy(SyncPolicy::Never)).unwrap();
    let want = fill(&wal, 3);
    assert!(replay_all(&wal) == want);
    wal.close().unwrap();
}

#[test]
fn open_creates_missing_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/c");
    let wal = Wal::open(&dir, Options::default().preallocate(false)).unwrap();
    wal.put(b"k", b"v").unwrap();
    wal.close().unwrap();
    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| SegmentId::parse(n).is_some())
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn close_while_appending_loses_nothing_acknowledged() {
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let store = Store::mem();
        let wal = Arc::new(Wal::open(store.dir(), store.options().sync_policy(policy)).unwrap());
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0u32.. {
                        let key = format!("t{t}-{i}");
                        match wal.put(key.as_bytes(), b"v") {
                            Ok(seq) => acked.push(put_entry(seq.get(), key.as_bytes(), b"v")),
                            Err(Error::Closed) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        wal.close().unwrap();
        let mut acked: Vec<Entry> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        acked.sort_by_key(|e| e.seq);
        assert!(!acked.is_empty());
        let (got, error, report) = store.read_all(RecoveryMode::Strict);
        assert!(
            error.is_none() && report.is_clean(),
            "{policy:?}: {error:?}"
        );
        assert!(
            got == acked,
            "{policy:?}: the log is not exactly the acknowledged appends"
        );
    }
}

/// Writes a kevo-style log with the given sequences (gaps allowed).
fn log_with_sequences(store: &Store, seqs: &[u64]) -> Vec<Entry> {
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for &seq in seqs {
        let key = seq.to_le_bytes();
        ironwal::format::encode_entry(&mut bytes, Op::Put, seq, &key, b"kevo").unwrap();
        want.push(put_entry(seq, &key, b"kevo"));
    }
    store.write(&store.dir().join("01745172985771529746.wal"), &bytes);
    want
}

#[test]
fn sequence_gaps_in_a_kevo_log_are_accepted() {
    for store in Store::both() {
        let mut want = log_with_sequences(&store, &[1, 2, 10, 11, 500]);
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert!(wal.recovery_report().is_clean());
        assert_eq!(wal.next_seq(), Seq::new(501), "{}", store.name());
        let seq = wal.put(b"next", b"one").unwrap();
        want.push(put_entry(seq.get(), b"next", b"one"));
        assert!(replay_all(&wal) == want, "{}", store.name());
        wal.close().unwrap();
    }
}

#[test]
fn sequence_exhaustion_is_an_error_not_a_wrap() {
    let store = Store::mem();
    let mut want = log_with_sequences(&store, &[u64::MAX - 3]);
    let wal = Wal::open(store.dir(), store.options()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"a", b"1").put(b"b", b"2").put(b"c", b"3");
    assert!(matches!(
        wal.write_batch(&batch),
        Err(Error::SequenceExhausted)
    ));
    let seq = wal.put(b"last", b"one").unwrap();
    assert_eq!(seq, Seq::new(u64::MAX - 2));
    want.push(put_entry(seq.get(), b"last", b"one"));
    let seq = wal.put(b"very last", b"one").unwrap();
    assert_eq!(seq, Seq::new(u64::MAX - 1));
    want.push(put_entry(seq.get(), b"very last", b"one"));
    assert!(matches!(wal.put(b"x", b"y"), Err(Error::SequenceExhausted)));
    assert!(matches!(wal.delete(b"x"), Err(Error::SequenceExhausted)));
    wal.close().unwrap();
    // The refused appends left nothing behind.
    let (got, error, _) = store.read_all(RecoveryMode::Strict);
    assert!(error.is_none());
    assert!(got == want);
}

/// A program that starts processes while it closes and reopens its log: a
/// child holds copies of the parent's files from fork to exec, the lock's
/// among them, which must not make the log's own reopen fail as `Locked`.
#[test]
fn reopening_while_other_threads_start_processes_is_not_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::process::Command::new("true").status();
                }
            });
        }
        // Failures are collected, not raised, so the spawning threads are
        // always told to stop and the scope can end.
        let failure = (0..300u32).find_map(|i| {
            let options = Options::default().preallocate(false);
            match Wal::open(tmp.path(), options).and_then(|wal| wal.close()) {
                Ok(()) => None,
                Err(e) => Some(format!("reopen {i}: {e}")),
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(failure, None);
    });
}
