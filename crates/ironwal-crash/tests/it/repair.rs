//! Repair never makes things worse, on the simulated file system: an
//! in-place repair that loses power at any storage operation leaves a
//! directory that reads as exactly the original log or exactly the repaired
//! one, and a salvage that runs out of space leaves no partial copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::storage::{OpenMode, Storage};
use ironwal::{repair_in_place_with, Error, LogReader, Options, RecoveryMode, Wal, REPAIR_MARKER};
use ironwal_crash::sim::{CrashMode, SimStorage};

const DIR: &str = "/wal";

/// A log of four segments whose second one is damaged mid-way, at rest.
fn damaged_log() -> SimStorage {
    let sim = SimStorage::new();
    let options = Options::default()
        .storage(Arc::new(sim.clone()))
        .preallocate(false)
        .max_segment_size(4096);
    let wal = Wal::open(DIR, options).unwrap();
    while wal.segments().len() < 4 {
        let n = wal.next_seq().get();
        wal.put(format!("key-{n}").as_bytes(), &[b'v'; 200])
            .unwrap();
    }
    let second = wal.segments()[1].path.clone();
    wal.close().unwrap();
    let file = sim.open(&second, OpenMode::ReadWrite).unwrap();
    file.write_all_at(&[0xAB; 64], 1500).unwrap();
    file.sync_data().unwrap();
    sim
}

/// Every file of the log directory and its bytes, but the lock file.
fn files(sim: &SimStorage) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = sim.snapshot().files().clone();
    files.retain(|p, _| p.parent() == Some(Path::new(DIR)) && !p.ends_with("LOCK"));
    files
}

fn read_all(sim: &SimStorage) -> ironwal::Result<Vec<ironwal::Entry>> {
    let reader = LogReader::open_with(Arc::new(sim.clone()), DIR, RecoveryMode::SkipCorrupted)?;
    reader.collect()
}

#[test]
fn an_in_place_repair_cut_off_at_any_operation_leaves_the_old_log_or_the_new() {
    let original = damaged_log();
    let base = original.snapshot();
    let old = files(&original);

    let whole = SimStorage::from_image(&base);
    let report = repair_in_place_with(Arc::new(whole.clone()), DIR).unwrap();
    assert!(!report.salvage.skipped().is_empty(), "the log was damaged");
    let repaired = files(&whole);
    assert_ne!(repaired, old);
    let total = whole.ops();
    let entries = read_all(&whole).unwrap();

    let mut seen_old = 0;
    let mut seen_new = 0;
    for crash_at in 1..=total {
        for (n, mode) in [CrashMode::Sectors512, CrashMode::Garble512]
            .into_iter()
            .enumerate()
        {
            let seed = crash_at * 2 + n as u64;
            let sim = SimStorage::from_image(&base);
            sim.crash_at_op(crash_at, mode, seed);
            let _ = repair_in_place_with(Arc::new(sim.clone()), DIR);
            let image = sim
                .crash_image()
                .unwrap_or_else(|| sim.crash_now(mode, seed));
            let after = SimStorage::from_image(&image);
            // Opening the directory finishes or rolls back what the crash
            // interrupted.
            let read = read_all(&after)
                .unwrap_or_else(|e| panic!("crash at op {crash_at} of {total}: {e}"));
            let now = files(&after);
            if now == old {
                seen_old += 1;
                // A repair started again goes through.
                let again = repair_in_place_with(Arc::new(after.clone()), DIR);
                again.unwrap_or_else(|e| panic!("repair after a crash at op {crash_at}: {e}"));
                assert_eq!(read_all(&after).unwrap(), entries, "crash at op {crash_at}");
            } else if now == repaired {
                seen_new += 1;
                assert_eq!(read, entries, "crash at op {crash_at}");
            } else {
                let names: Vec<_> = now.keys().collect();
                panic!("crash at op {crash_at} of {total} left a mix: {names:?}");
            }
        }
    }
    println!("{total} operations: {seen_old} crashes left the old log, {seen_new} the new");
    assert!(
        seen_old > 0 && seen_new > 0,
        "{seen_old} old, {seen_new} new"
    );
}

/// The marker is what commits a swap: with it in place, `Wal::open`
/// finishes the swap before reading; a reader beside the repair that holds
/// the lock is told a repair is in progress.
#[test]
fn a_committed_swap_is_finished_by_the_next_open() {
    let original = damaged_log();
    let base = original.snapshot();
    let whole = SimStorage::from_image(&base);
    repair_in_place_with(Arc::new(whole.clone()), DIR).unwrap();
    let repaired = files(&whole);

    // Find the first crash point after which the marker is durable.
    let mut committed = None;
    for crash_at in 1..=whole.ops() {
        let sim = SimStorage::from_image(&base);
        sim.crash_at_op(crash_at, CrashMode::Sectors512, crash_at);
        let _ = repair_in_place_with(Arc::new(sim.clone()), DIR);
        let image = sim
            .crash_image()
            .unwrap_or_else(|| sim.crash_now(CrashMode::Sectors512, crash_at));
        if image
            .files()
            .contains_key(&Path::new(DIR).join(REPAIR_MARKER))
        {
            committed = Some(image);
            break;
        }
    }
    let image = committed.expect("some crash leaves a committed swap");
    let held = SimStorage::from_image(&image);
    let lock = held.try_lock_dir(Path::new(DIR)).unwrap().unwrap();
    match LogReader::open_with(Arc::new(held.clone()), DIR, RecoveryMode::Strict) {
        Err(Error::RepairInProgress { .. }) => {}
        other => panic!("expected RepairInProgress, got {:?}", other.map(|_| ())),
    }
    drop(lock);
    let options = Options::default().storage(Arc::new(held.clone()));
    let wal = Wal::open(DIR, options).unwrap();
    wal.close().unwrap();
    let mut now = files(&held);
    // Open records the segments; the rest is the repaired log.
    now.remove(&Path::new(DIR).join(ironwal::RECORD_FILE));
    let mut want = repaired;
    want.remove(&Path::new(DIR).join(ironwal::RECORD_FILE));
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
}

/// A salvage whose destination fills up fails and leaves nothing of the
/// copy: a rerun into the same directory is not refused as non-empty.
#[test]
fn a_salvage_that_runs_out_of_space_leaves_no_partial_copy() {
    let sim = damaged_log();
    let used: u64 = files(&sim).values().map(|b| b.len() as u64).sum();
    sim.limit_space(Some(used + 6000));
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let failed = ironwal::salvage_with(Arc::clone(&storage), DIR, "/out");
    assert!(failed.is_err(), "the copy cannot fit");
    assert_eq!(sim.list(Path::new("/out")).unwrap(), Vec::<String>::new());
    sim.limit_space(None);
    let report = ironwal::salvage_with(storage, DIR, "/out").unwrap();
    assert!(report.entries > 0);
}

/// A repair that an I/O error stops (at any create, write, sync or
/// directory sync) says which path failed, and leaves the old log or the
/// repaired one once the directory is next opened, never a mix.
#[test]
fn a_failed_in_place_repair_names_the_path_and_leaves_one_log() {
    use ironwal_crash::sim::{FaultKind, FaultOp};
    let base = damaged_log().snapshot();
    let old = files(&SimStorage::from_image(&base));
    let whole = SimStorage::from_image(&base);
    repair_in_place_with(Arc::new(whole.clone()), DIR).unwrap();
    let repaired = files(&whole);
    let mut failures = 0;
    for op in [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::SyncDir,
    ] {
        for nth in 1.. {
            let sim = SimStorage::from_image(&base);
            sim.inject(op, nth, FaultKind::Eio);
            let error = match repair_in_place_with(Arc::new(sim.clone()), DIR) {
                Ok(_) => break,
                Err(error) => error,
            };
            failures += 1;
            match &error {
                Error::Io { path, .. } => assert!(path.starts_with(DIR), "{op:?} #{nth}: {error}"),
                other => panic!("{op:?} #{nth}: {other}"),
            }
            read_all(&sim).unwrap_or_else(|e| panic!("{op:?} #{nth}: then {e}"));
            let now = files(&sim);
            assert!(
                now == old || now == repaired,
                "{op:?} #{nth} left a mix: {:?}",
                now.keys()
            );
        }
    }
    assert!(failures > 10, "{failures}");
}
