//! Following a live log: a `Follower` sees what a writer appends, across
//! rotations, preallocated segments, restarts and torn tails.

use std::sync::Arc;
use std::time::Duration;

use ironwal::storage::MemStorage;
use ironwal::{Entry, Error, Follower, Options, Seq, SyncPolicy, Wal};

use crate::common::{flip_bit, Store};

const WAIT: Duration = Duration::from_secs(10);

fn collect(follower: &mut Follower, n: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    while out.len() < n {
        match follower.next_timeout(WAIT).unwrap() {
            Some(entry) => out.push(entry.to_entry()),
            None => panic!("follower stalled after {} of {n} entries", out.len()),
        }
    }
    out
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

#[test]
fn follows_appends_from_another_thread_across_rotations() {
    for preallocate in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let options = Options::default()
            .max_segment_size(4096)
            .preallocate(preallocate)
            .sync_policy(SyncPolicy::Always);
        let wal = Arc::new(Wal::open(tmp.path(), options).unwrap());
        let mut follower = Follower::open(tmp.path(), Seq::ZERO)
            .unwrap()
            .poll_interval(Duration::from_millis(1));
        let writer = {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..400u32 {
                    wal.put(&key(i), &[b'v'; 100]).unwrap();
                    if i % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        };
        let got = collect(&mut follower, 400);
        writer.join().unwrap();
        assert!(wal.segments().len() > 5, "the test must rotate");
        for (i, entry) in got.iter().enumerate() {
            assert_eq!(
                entry.seq,
                Seq::new(i as u64 + 1),
                "preallocate {preallocate}"
            );
            assert_eq!(entry.key, key(i as u32));
        }
        assert!(follower.try_next().unwrap().is_none());
    }
}

#[test]
fn a_prepared_next_segment_does_not_make_it_skip_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::default()
        .max_segment_size(1 << 20)
        .preallocate(true);
    let wal = Wal::open(tmp.path(), options).unwrap();
    wal.put(b"first", b"1").unwrap();
    // Wait for the preparer to create the next, empty, segment.
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_str().unwrap();
            ironwal::SegmentId::parse(name).is_some() || name.ends_with(".wal.prepared")
        })
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no prepared segment");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut follower = Follower::open(tmp.path(), Seq::ZERO).unwrap();
    assert_eq!(collect(&mut follower, 1)[0].key, b"first");
    assert!(follower.try_next().unwrap().is_none());
    wal.put(b"second", b"2").unwrap();
    assert_eq!(collect(&mut follower, 1)[0].key, b"second");
}

#[test]
fn follows_a_writer_through_restarts_and_from_a_sequence() {
    let store = Store::mem();
    let options = store.options().max_segment_size(2048);
    let mut follower = Follower::open_with(store.storage(), store.dir(), Seq::new(5)).unwrap();
    assert!(follower.try_next().unwrap().is_none(), "no directory yet");
    for round in 0..3u32 {
        let wal = Wal::open(store.dir(), options.clone()).unwrap();
        for i in 0..20u32 {
            wal.put(&key(round * 100 + i), b"v").unwrap();
        }
        wal.close().unwrap();
    }
    let got = collect(&mut follower, 56);
    assert_eq!(got[0].seq, Seq::new(5));
    assert_eq!(got.last().unwrap().seq, Seq::new(60));
    assert!(follower.try_next().unwrap().is_none());
}

#[test]
fn an_incomplete_tail_is_waited_for_and_a_restart_continues_past_it() {
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem.clone()))
        .preallocate(false);
    let wal = Wal::open("/log", options.clone()).unwrap();
    wal.put(b"a", b"1").unwrap();
    let path = wal.segments()[0].path.clone();
    wal.close().unwrap();
    // A crash left half a record behind.
    let mut bytes = mem.read_file(&path).unwrap();
    let torn = bytes.len();
    bytes.extend_from_slice(&[9, 9, 9, 9, 50, 0, 1, 1, 2, 3]);
    mem.write_file(&path, &bytes);

    let mut follower = Follower::open_with(Arc::new(mem.clone()), "/log", Seq::ZERO)
        .unwrap()
        .grace_period(Duration::ZERO);
    assert_eq!(collect(&mut follower, 1)[0].key, b"a");
    for _ in 0..3 {
        assert!(
            follower.try_next().unwrap().is_none(),
            "a torn tail with nothing after it is waited for"
        );
    }
    // The writer restarts: the torn tail is truncated and appends continue.
    let wal = Wal::open("/log", options).unwrap();
    assert_eq!(mem.read_file(&path).unwrap().len(), torn);
    wal.put(b"b", b"2").unwrap();
    assert_eq!(collect(&mut follower, 1)[0].key, b"b");
}

#[test]
fn damage_with_data_after_it_is_reported_once_the_grace_period_is_over() {
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem.clone()))
        .preallocate(false);
    let wal = Wal::open("/log", options).unwrap();
    for i in 0..10u32 {
        wal.put(&key(i), b"value").unwrap();
    }
    let path = wal.segments()[0].path.clone();
    wal.close().unwrap();
    let mut bytes = mem.read_file(&path).unwrap();
    let middle = bytes.len() / 2;
    flip_bit(&mut bytes, middle, 3);
    mem.write_file(&path, &bytes);

    let mut follower = Follower::open_with(Arc::new(mem), "/log", Seq::ZERO)
        .unwrap()
        .grace_period(Duration::from_millis(50));
    let mut good = 0;
    let error = loop {
        match follower.next_timeout(WAIT) {
            Ok(Some(_)) => good += 1,
            Ok(None) => panic!("damage never reported"),
            Err(e) => break e,
        }
    };
    assert!(good > 0 && good < 10);
    assert!(matches!(error, Error::Corruption { .. }), "{error}");
}

#[test]
fn a_subscription_yields_only_durable_entries() {
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options().sync_policy(SyncPolicy::Never)).unwrap();
    let mut subscription = wal.subscribe(Seq::ZERO);
    for i in 0..10u32 {
        wal.put(&key(i), b"v").unwrap();
    }
    wal.flush().unwrap();
    let mut plain = Follower::open_with(store.storage(), store.dir(), Seq::ZERO).unwrap();
    assert_eq!(
        collect(&mut plain, 10).len(),
        10,
        "a plain follower sees written entries"
    );
    assert!(
        subscription.try_next().unwrap().is_none(),
        "none is durable yet"
    );
    wal.sync().unwrap();
    let got = collect(&mut subscription, 10);
    assert_eq!(got.last().unwrap().seq, Seq::new(10));
    wal.put(b"later", b"v").unwrap();
    wal.flush().unwrap();
    assert!(subscription.try_next().unwrap().is_none());
    // Closing syncs it, and a subscription outlives its log.
    wal.close().unwrap();
    drop(wal);
    assert_eq!(collect(&mut subscription, 1)[0].key, b"later");
}

/// Retention removes segments the follower had not reached: it says which
/// entries it missed, once, then goes on with the first one still there
/// (it used to jump ahead silently).
#[test]
fn entries_removed_before_the_follower_reads_them_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wal = crate::common::small_segments(dir.path(), 6);
    wal.flush().unwrap();
    let segments = wal.segments();
    let mut follower = Follower::open(dir.path(), Seq::ZERO).unwrap();
    // Into the second segment.
    let in_second = segments[1].first_seq.unwrap();
    let mut last = Seq::ZERO;
    while last < in_second {
        last = follower.try_next().unwrap().unwrap().seq;
    }
    let keep_from = segments[4].first_seq.unwrap();
    wal.remove_segments_before(keep_from).unwrap();
    let mut read = Vec::new();
    let gone = loop {
        match follower.try_next() {
            Ok(Some(entry)) => read.push(entry.seq),
            Ok(None) => panic!("ended without a word about the removed entries"),
            Err(Error::EntriesGone { first, last }) => break (first, last),
            Err(e) => panic!("{e}"),
        }
    };
    // The rest of the second segment was still readable (the follower had
    // it open); the third and fourth were gone.
    assert_eq!(read.last().copied(), segments[1].last_seq);
    assert_eq!(
        gone,
        (
            segments[2].first_seq.unwrap(),
            Seq::new(keep_from.get() - 1)
        )
    );
    assert_eq!(follower.try_next().unwrap().unwrap().seq, keep_from);
    wal.close().unwrap();
}
