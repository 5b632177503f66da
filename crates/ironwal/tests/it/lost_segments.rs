//! A log that loses a segment, or a piece of one, is never read as a clean,
//! shorter log: the segment record (`ironwal-segments`) tells.

use std::path::{Path, PathBuf};

use ironwal::format::{encode_entry, Op};
use ironwal::{
    CorruptionKind, Error, LogReader, Options, RecordState, RecoveryMode, RecoveryReport, Seq, Wal,
    RECORD_FILE,
};

use crate::common::read_all;

/// A log of 6 entries in 3 sealed segments of 2 and an empty active one,
/// closed; returns its segment files in order.
fn three_sealed_segments(dir: &Path) -> Vec<PathBuf> {
    let wal = Wal::open(dir, options()).unwrap();
    for i in 1..=6u8 {
        wal.put(&[i], &[b'v'; 100]).unwrap();
        if i % 2 == 0 {
            // Two entries pass the limit: the next append rotates.
            assert_eq!(wal.segments().len(), usize::from(i / 2));
        }
    }
    wal.put(b"7", b"last").unwrap();
    let files: Vec<PathBuf> = wal.segments().into_iter().map(|s| s.path).collect();
    wal.close().unwrap();
    assert_eq!(files.len(), 4);
    files
}

fn options() -> Options {
    Options::default().max_segment_size(150).preallocate(false)
}

fn keys(dir: &Path, mode: RecoveryMode) -> (Vec<u64>, Option<Error>, RecoveryReport) {
    let (entries, error, report) = read_all(dir, mode);
    (entries.iter().map(|e| e.seq.get()).collect(), error, report)
}

fn corruption(error: Option<Error>) -> (PathBuf, CorruptionKind) {
    match error {
        Some(Error::Corruption { segment, kind, .. }) => (segment, kind),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_missing_sealed_segment_is_corruption_and_point_in_time_stops_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    std::fs::remove_file(&files[1]).unwrap();

    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let (_, error, _) = keys(tmp.path(), mode);
        assert_eq!(
            corruption(error),
            (files[1].clone(), CorruptionKind::SegmentMissing)
        );
    }
    let error = Wal::open(tmp.path(), options()).unwrap_err();
    assert_eq!(corruption(Some(error)).0, files[1]);

    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::PointInTime);
    assert!(error.is_none());
    assert_eq!(seqs, [1, 2]);
    assert!(report.has_corruption());
    assert_eq!(report.dropped[0].kind, CorruptionKind::SegmentMissing);

    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::SkipCorrupted);
    assert!(error.is_none());
    assert_eq!(seqs, [1, 2, 5, 6, 7]);
    assert!(report.has_corruption());

    // A point-in-time open recovers the prefix, moves the rest aside and
    // records the log as it now is: the next default open is clean.
    let wal = Wal::open(
        tmp.path(),
        options().recovery_mode(RecoveryMode::PointInTime),
    )
    .unwrap();
    assert_eq!(wal.next_seq(), Seq::new(3));
    wal.put(b"new", b"entry").unwrap();
    wal.close().unwrap();
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(
        error.is_none() && report.is_clean(),
        "{error:?} {report:#?}"
    );
    assert_eq!(seqs, [1, 2, 3]);
    assert!(tmp
        .path()
        .join(format!(
            "{}.corrupt",
            files[2].file_name().unwrap().to_str().unwrap()
        ))
        .exists());
}

#[test]
fn a_missing_active_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    std::fs::remove_file(&files[3]).unwrap();
    let (_, error, _) = keys(tmp.path(), RecoveryMode::TolerateTornTail);
    assert_eq!(
        corruption(error),
        (files[3].clone(), CorruptionKind::SegmentMissing)
    );
}

#[test]
fn a_sealed_segment_cut_at_an_entry_boundary_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    // Keep the first of its two entries: a valid, shorter segment.
    let one = read_all(&files[0], RecoveryMode::Strict).2.segments[0].valid_len / 2;
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &bytes[..one as usize]).unwrap();

    let (_, error, _) = keys(tmp.path(), RecoveryMode::TolerateTornTail);
    let (segment, kind) = corruption(error);
    assert_eq!(segment, files[1]);
    assert!(
        matches!(kind, CorruptionKind::SegmentLength { found, .. } if found == one),
        "{kind}"
    );
    let (seqs, _, report) = keys(tmp.path(), RecoveryMode::PointInTime);
    assert_eq!(seqs, [1, 2, 3]);
    assert!(report.has_corruption());
}

#[test]
fn a_torn_end_in_a_sealed_segment_is_never_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    // Only the sealed segments stay; the last is cut mid-record.
    std::fs::remove_file(&files[3]).unwrap();
    let bytes = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &bytes[..bytes.len() - 10]).unwrap();
    let (_, error, _) = keys(tmp.path(), RecoveryMode::TolerateTornTail);
    assert_eq!(corruption(error).0, files[2]);
    assert!(Wal::open(tmp.path(), options()).is_err());
}

#[test]
fn swapped_segments_are_corruption_and_never_read_out_of_order() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    let aside = tmp.path().join("aside");
    std::fs::rename(&files[0], &aside).unwrap();
    std::fs::rename(&files[1], &files[0]).unwrap();
    std::fs::rename(&aside, &files[1]).unwrap();

    let (_, error, _) = keys(tmp.path(), RecoveryMode::TolerateTornTail);
    let (segment, kind) = corruption(error);
    assert_eq!(segment, files[0]);
    assert_eq!(
        kind,
        CorruptionKind::SequenceGap {
            expected: 1,
            found: 3
        }
    );
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::PointInTime);
    assert!(error.is_none());
    assert!(seqs.is_empty(), "{seqs:?}");
    assert_eq!(report.ignored_segments.len(), 4);

    // Salvage sets both aside whole: nothing comes out of order.
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::SkipCorrupted);
    assert!(error.is_none());
    assert_eq!(seqs, [5, 6, 7]);
    assert_eq!(report.ignored_segments, files[..2]);
    let skip = options().recovery_mode(RecoveryMode::SkipCorrupted);
    let wal = Wal::open(tmp.path(), skip).unwrap();
    assert_eq!(wal.next_seq(), Seq::new(8));
    wal.close().unwrap();
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(
        error.is_none() && report.is_clean(),
        "{error:?} {report:#?}"
    );
    assert_eq!(seqs, [5, 6, 7]);
    for file in &files[..2] {
        let aside = format!("{}.corrupt", file.display());
        assert!(Path::new(&aside).exists(), "{aside} kept");
    }
}

#[test]
fn the_record_is_rebuilt_when_missing_or_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    let record = tmp.path().join(RECORD_FILE);
    let original = std::fs::read(&record).unwrap();

    std::fs::remove_file(&record).unwrap();
    let (_, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none());
    assert_eq!(report.record, RecordState::Absent);
    Wal::open(tmp.path(), options()).unwrap().close().unwrap();
    assert_eq!(
        std::fs::read(&record).unwrap(),
        original,
        "rebuilt as it was"
    );

    let mut damaged = original.clone();
    damaged[30] ^= 1;
    std::fs::write(&record, &damaged).unwrap();
    let (_, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none());
    assert!(
        matches!(report.record, RecordState::Unreadable { .. }),
        "{:?}",
        report.record
    );
    Wal::open(tmp.path(), options()).unwrap().close().unwrap();
    assert_eq!(std::fs::read(&record).unwrap(), original);

    // Rebuilt, it tells a lost segment again.
    std::fs::remove_file(&files[2]).unwrap();
    let (_, error, report) = keys(tmp.path(), RecoveryMode::TolerateTornTail);
    assert_eq!(report.record, RecordState::Checked);
    assert_eq!(corruption(error).1, CorruptionKind::SegmentMissing);
}

#[test]
fn retention_updates_the_record_before_removing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    let wal = Wal::open(tmp.path(), options()).unwrap();
    let removed = wal.remove_segments_before(Seq::new(5)).unwrap();
    assert_eq!(removed, files[..2]);
    wal.close().unwrap();
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none() && report.is_clean(), "{error:?}");
    assert_eq!(report.record, RecordState::Checked);
    assert_eq!(seqs, [5, 6, 7]);

    // A crash after the record update but before the files went leaves
    // segments older than the record: they read as before.
    let tmp = tempfile::tempdir().unwrap();
    let files = three_sealed_segments(tmp.path());
    let wal = Wal::open(tmp.path(), options()).unwrap();
    let keep: Vec<Vec<u8>> = files[..2]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    wal.remove_segments_before(Seq::new(5)).unwrap();
    wal.close().unwrap();
    for (file, bytes) in files.iter().zip(keep) {
        std::fs::write(file, bytes).unwrap();
    }
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none() && report.is_clean(), "{error:?}");
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_log_without_a_record_reports_gaps_as_information() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for seq in [1, 2, 5, 6, 9] {
        encode_entry(&mut bytes, Op::Put, seq, b"k", b"v").unwrap();
    }
    let segment = tmp.path().join("01000000000000000000.wal");
    std::fs::write(&segment, &bytes).unwrap();
    let (seqs, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none() && report.is_clean());
    assert_eq!(seqs, [1, 2, 5, 6, 9]);
    assert_eq!(report.record, RecordState::Absent);
    let gaps: Vec<(u64, u64)> = report
        .gaps
        .iter()
        .map(|g| (g.after.get(), g.next.get()))
        .collect();
    assert_eq!(gaps, [(2, 5), (6, 9)]);

    // Opening it makes it ironwal's: the record lists it as it is, gaps
    // and all, and a reread is clean.
    Wal::open(tmp.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    let (_, error, report) = keys(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none() && report.is_clean());
    assert_eq!(report.record, RecordState::Checked);
}

#[test]
fn the_kevo_vectors_have_no_record_and_read_as_before() {
    let reader = LogReader::open(
        crate::common::compat_dir().join("multi-segment"),
        RecoveryMode::Strict,
    )
    .unwrap();
    let report = reader.finish().unwrap();
    assert_eq!(report.record, RecordState::Absent);
    assert!(report.is_clean());
}

/// A reader beside a writer that rotates and runs retention never takes the
/// writer's work for a lost segment: it reads the record before and after
/// listing the segments, and the writer records a segment after creating it
/// and forgets one before removing it.
#[test]
fn a_reader_beside_a_rotating_writer_sees_no_lost_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let wal = Wal::open(&dir, options().max_segment_size(2048)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..3000u32 {
                wal.put(&i.to_be_bytes(), &[b'v'; 200]).unwrap();
                if i % 50 == 0 {
                    let keep = wal.last_seq().get().saturating_sub(40);
                    wal.remove_segments_before(Seq::new(keep)).unwrap();
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut reads = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let outcome =
                LogReader::open(&dir, RecoveryMode::SkipCorrupted).and_then(|r| r.finish());
            match outcome {
                Ok(report) => {
                    for range in &report.dropped {
                        assert!(!range.kind.is_segment_level(), "{range:?}");
                    }
                    reads += 1;
                }
                // A segment that retention removed while it was being read
                // (reading beside retention is not atomic).
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(reads > 10, "{reads} reads");
    });
    wal.close().unwrap();
}

/// A `MemStorage` that runs a hook once, right after the next listing of a
/// directory: a writer's work landing between a reader's listing and its
/// reading of the segment record.
#[derive(Default)]
struct AfterListing {
    mem: ironwal::storage::MemStorage,
    hook: parking_lot::Mutex<Option<Hook>>,
}

type Hook = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for AfterListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterListing").finish_non_exhaustive()
    }
}

impl ironwal::storage::Storage for AfterListing {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.mem.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let names = self.mem.list(dir);
        if let Some(hook) = self.hook.lock().take() {
            hook();
        }
        names
    }
    fn kind_of(&self, path: &Path) -> std::io::Result<ironwal::storage::PathKind> {
        self.mem.kind_of(path)
    }
    fn open(
        &self,
        path: &Path,
        mode: ironwal::storage::OpenMode,
    ) -> std::io::Result<std::sync::Arc<dyn ironwal::storage::StorageFile>> {
        self.mem.open(path, mode)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.mem.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.mem.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.mem.sync_dir(dir)
    }
    fn try_lock_dir(
        &self,
        dir: &Path,
    ) -> std::io::Result<Option<Box<dyn ironwal::storage::DirLock>>> {
        self.mem.try_lock_dir(dir)
    }
}

/// The race above, made certain: the writer rotates and removes the oldest
/// segment just after the reader listed the directory.
#[test]
fn a_rotation_and_retention_right_after_the_listing_is_no_lost_segment() {
    let storage = std::sync::Arc::new(AfterListing::default());
    let dir = Path::new("/log");
    let wal = std::sync::Arc::new(Wal::open(dir, options().storage(storage.clone())).unwrap());
    for i in 1..=6u8 {
        wal.put(&[i], &[b'v'; 100]).unwrap();
    }
    assert_eq!(wal.segments().len(), 3);
    let writer = std::sync::Arc::clone(&wal);
    *storage.hook.lock() = Some(Box::new(move || {
        writer.put(b"7", &[b'v'; 100]).unwrap();
        writer.put(b"8", &[b'v'; 100]).unwrap();
        assert_eq!(writer.segments().len(), 4, "rotated");
        assert_eq!(writer.remove_segments_before(Seq::new(3)).unwrap().len(), 1);
    }));
    let report = LogReader::open_with(storage.clone(), dir, RecoveryMode::Strict)
        .unwrap()
        .finish()
        .unwrap();
    assert!(storage.hook.lock().is_none(), "the hook ran");
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.entries, 6);
    assert_eq!(
        report.segments.len(),
        3,
        "the listing after the writer's work"
    );
}
