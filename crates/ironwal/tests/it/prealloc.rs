//! Preallocated segments: created ahead of need and filled with zeros, which
//! every reader takes for a clean end of the log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironwal::{LogReader, Options, RecoveryMode, SegmentId, Seq, Wal};

use crate::common::{append_zeros, read_all, replay_all};

const SEGMENT: u64 = 64 * 1024;

fn options() -> Options {
    Options::default()
        .max_segment_size(SEGMENT)
        .preallocate(true)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| SegmentId::parse(p.file_name().unwrap().to_str().unwrap()).is_some())
        .collect();
    files.sort();
    files
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Waits (up to a few seconds) until the directory holds `n` segments.
fn wait_for_segments(dir: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = segment_files(dir);
        if files.len() >= n && files.iter().all(|f| len(f) == SEGMENT) || Instant::now() > deadline
        {
            return files;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn new_segments_are_zero_filled_to_the_segment_size_and_read_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), options()).unwrap();
    let first = wal.segments()[0].path.clone();
    assert_eq!(len(&first), SEGMENT);
    for i in 0..50u32 {
        wal.put(&i.to_be_bytes(), b"value").unwrap();
    }
    wal.close().unwrap();
    assert_eq!(
        len(&first),
        SEGMENT,
        "appends overwrite zeros, never extend"
    );

    let (entries, error, report) = read_all(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(entries.len(), 50);
    assert!(report.is_clean(), "{report:#?}");
    let segment = &report.segments[0];
    assert!(segment.valid_len < segment.len);
}

#[test]
fn the_next_segment_is_prepared_before_rotation_and_used_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), options()).unwrap();
    let files = wait_for_segments(tmp.path(), 2);
    assert_eq!(
        files.len(),
        2,
        "the preparer made the next segment: {files:?}"
    );
    let prepared = files[1].clone();
    assert_eq!(len(&prepared), SEGMENT);

    // Fill the active segment past its limit; the next append rotates.
    let value = vec![b'v'; 1000];
    let mut n = 0u32;
    while wal.segments().len() < 2 {
        wal.put(&n.to_be_bytes(), &value).unwrap();
        n += 1;
    }
    let segments = wal.segments();
    assert_eq!(
        segments[1].path, prepared,
        "rotation took the prepared segment"
    );
    assert!(segments[1].first_seq.is_some());
    wal.close().unwrap();

    let (entries, error, report) = read_all(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(entries.len() as u32, n);
    assert!(report.is_clean());
}

#[test]
fn reopen_continues_inside_the_zero_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), options()).unwrap();
    wal.put(b"a", b"1").unwrap();
    let path = wal.segments()[0].path.clone();
    wal.close().unwrap();
    // The closed log may include a prepared, still empty, next segment: it
    // becomes the active one, and the first keeps its entry.
    let wal = Wal::open(tmp.path(), options()).unwrap();
    assert_eq!(wal.next_seq(), Seq::new(2));
    wal.put(b"b", b"2").unwrap();
    wal.close().unwrap();
    assert_eq!(len(&path), SEGMENT);
    let (entries, error, _) = read_all(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none(), "{error:?}");
    let keys: Vec<&[u8]> = entries.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(keys, [b"a", b"b"]);
}

#[test]
fn a_torn_write_into_the_zeros_is_truncated_and_the_segment_refilled() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = options();
    let wal = Wal::open(tmp.path(), opts.clone()).unwrap();
    for i in 0..10u32 {
        wal.put(&i.to_be_bytes(), b"value").unwrap();
    }
    let path = wal.segments()[0].path.clone();
    let end = {
        let mut reader = wal.replay(Seq::ZERO).unwrap();
        while reader.next_entry().unwrap().is_some() {}
        reader.report().segments[0].valid_len
    };
    wal.close().unwrap();
    // Remove any prepared segment so the damaged one is the last.
    for file in segment_files(tmp.path()).into_iter().filter(|f| *f != path) {
        std::fs::remove_file(file).unwrap();
    }
    // The start of a record header and a few payload bytes, then zeros.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[end as usize..end as usize + 10].copy_from_slice(&[1, 2, 3, 4, 40, 0, 1, 9, 9, 9]);
    std::fs::write(&path, &bytes).unwrap();

    let wal = Wal::open(tmp.path(), opts).unwrap();
    let torn = wal
        .recovery_report()
        .torn_tail()
        .expect("a torn tail")
        .clone();
    assert_eq!(torn.offset, end);
    assert_eq!(
        len(&path),
        SEGMENT,
        "the truncated segment is zero-filled again"
    );
    assert_eq!(wal.next_seq(), Seq::new(11));
    wal.put(b"after", b"tear").unwrap();
    assert_eq!(replay_all(&wal).len(), 11);
    wal.close().unwrap();
    let (_, error, report) = read_all(tmp.path(), RecoveryMode::Strict);
    assert!(
        error.is_none() && report.is_clean(),
        "{error:?} {report:#?}"
    );
}

#[test]
fn a_half_prepared_segment_reads_as_empty_and_is_continued() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), options().preallocate(false)).unwrap();
    wal.put(b"k", b"v").unwrap();
    let after = wal.segments()[0].id;
    wal.close().unwrap();
    // A crash while the next segment was being zero-filled leaves a short
    // file of zeros.
    let half = tmp.path().join(SegmentId::new(after.get() + 1).file_name());
    let mut zeros = Vec::new();
    append_zeros(&mut zeros, 3000);
    std::fs::write(&half, &zeros).unwrap();

    let report = LogReader::open(tmp.path(), RecoveryMode::Strict)
        .unwrap()
        .finish()
        .unwrap();
    assert!(report.is_clean());
    let wal = Wal::open(tmp.path(), options()).unwrap();
    assert_eq!(wal.segments().last().unwrap().path, half);
    wal.put(b"k2", b"v2").unwrap();
    wal.close().unwrap();
    assert_eq!(len(&half), SEGMENT);
    let (entries, error, _) = read_all(tmp.path(), RecoveryMode::Strict);
    assert!(error.is_none());
    assert_eq!(entries.len(), 2);
}

#[test]
fn closing_right_after_opening_never_hangs_on_the_segment_preparer() {
    // A wake-up to stop the preparer could once fall between its check and
    // its wait, and close then waited forever.
    for _ in 0..3000 {
        let mem = ironwal::storage::MemStorage::new();
        let options = Options::default()
            .storage(std::sync::Arc::new(mem))
            .max_segment_size(4096)
            .preallocate(true);
        let wal = Wal::open("/log", options).unwrap();
        wal.close().unwrap();
    }
}
