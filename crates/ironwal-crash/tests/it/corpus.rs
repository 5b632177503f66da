//! The fuzz corpus (`fuzz/corpus/{decode,open}`) and the inputs that
//! reproduce bugs the fuzzers found (`fuzz/regressions/{decode,open}`, kept
//! apart so that a fuzzer is not stopped by a known bug at its first input),
//! replayed through the fuzz target bodies so that `cargo test` needs no
//! fuzzer; and the generator of the seed inputs:
//!
//! ```text
//! cargo test -p ironwal-crash --test it -- --ignored write_seed_corpus
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::format::record::write_record;
use ironwal::format::{encode_batch, encode_entry, encode_header_batch, Op, RecordType};
use ironwal::storage::{MemStorage, Storage};
use ironwal::{Options, Wal, WriteBatch};
use ironwal_crash::fuzz_targets::{self, open_input};

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target)
}

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir(kind, target);
    if kind == "regressions" && !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable corpus file");
            (p, bytes)
        })
        .collect()
}

/// Regression inputs named `bug-*` reproduce a known ironwal bug that is not
/// fixed yet (see each one's comment in `write_seed_corpus`): `open` must
/// still fail on them, so that whoever fixes the bug renames the input (and
/// may then move it into the corpus).
const KNOWN_BUG: &str = "bug-";

#[test]
fn every_corpus_input_passes_both_fuzz_targets() {
    let mut failures = Vec::new();
    let mut known = Vec::new();
    let mut count = 0;
    // Panics are expected (known bugs) or reported below with their input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let dirs = [
        ("corpus", "decode"),
        ("corpus", "open"),
        ("regressions", "decode"),
        ("regressions", "open"),
    ];
    for (kind, target) in dirs {
        for (path, bytes) in inputs(kind, target) {
            count += 1;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let bug = name.is_some_and(|n| n.starts_with(KNOWN_BUG));
            for (body_name, body) in [
                ("decode", fuzz_targets::decode as fn(&[u8])),
                ("open", fuzz_targets::open),
            ] {
                let outcome = catch_unwind(AssertUnwindSafe(|| body(&bytes)));
                match (outcome, bug && body_name == "open") {
                    (Ok(()), false) => {}
                    (Err(panic), false) => failures.push(format!(
                        "{body_name}({}): {}",
                        path.display(),
                        message(&*panic)
                    )),
                    (Err(_), true) => known.push(path.display().to_string()),
                    (Ok(()), true) => failures.push(format!(
                        "{} passes now: the bug is fixed, drop the {KNOWN_BUG} prefix",
                        path.display()
                    )),
                }
            }
        }
    }
    std::panic::set_hook(hook);
    println!("{count} corpus inputs replayed; known ironwal bugs still failing: {known:#?}");
    assert!(count >= 20, "the corpus is missing: {count} inputs");
    assert!(failures.is_empty(), "failing inputs: {failures:#?}");
}

fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

// ---- seed corpus generator ----

/// Entry bytes (a Full record's payload) for a single operation.
fn entry(op: Op, seq: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut records = Vec::new();
    encode_entry(&mut records, op, seq, key, value).expect("a small entry");
    records.split_off(7)
}

/// A log written by ironwal: `(segments in order, each file's bytes)`.
fn log(segment_size: u64, write: impl FnOnce(&Wal)) -> Vec<Vec<u8>> {
    let storage = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(storage.clone()))
        .max_segment_size(segment_size)
        .preallocate(false);
    let wal = Wal::open("/seed", options).expect("open");
    write(&wal);
    wal.close().expect("close");
    let dir = Path::new("/seed");
    let mut names = storage.list(dir).expect("list");
    names.retain(|n| n.ends_with(".wal"));
    names.sort();
    names
        .iter()
        .map(|n| storage.read_file(&dir.join(n)).expect("a segment"))
        .collect()
}

fn mixed(wal: &Wal) {
    wal.put(b"alpha", b"one").expect("put");
    wal.delete(b"beta").expect("delete");
    wal.merge(b"gamma", b"+1").expect("merge");
    let mut batch = WriteBatch::new();
    batch.put(b"b1", b"x").delete(b"b2").merge(b"b3", b"yy");
    wal.write_batch(&batch).expect("batch");
    wal.put(b"", b"").expect("empty put");
    wal.put(b"omega", &[7; 100]).expect("put");
}

fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x10;
    bytes
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let mut decode: Vec<(String, Vec<u8>)> = Vec::new();
    let mut open: Vec<(String, Vec<u8>)> = Vec::new();
    let mut open_bugs: Vec<(String, Vec<u8>)> = Vec::new();

    // Entry bytes.
    decode.push(("entry-put".into(), entry(Op::Put, 1, b"key", b"value")));
    decode.push(("entry-delete".into(), entry(Op::Delete, 2, b"key", b"")));
    decode.push(("entry-merge".into(), entry(Op::Merge, 3, b"k", b"+")));
    decode.push(("entry-empty-key".into(), entry(Op::Put, 4, b"", b"")));
    let mut header = vec![4];
    header.extend_from_slice(&9u64.to_le_bytes());
    header.extend_from_slice(&2u32.to_le_bytes());
    decode.push(("entry-batch-header".into(), header));
    let mut ops = Vec::new();
    ironwal::format::batch::push_op(&mut ops, Op::Put, b"a", b"1").expect("op");
    ironwal::format::batch::push_op(&mut ops, Op::Delete, b"b", b"").expect("op");
    let mut records = Vec::new();
    encode_batch(&mut records, 5, 2, &ops).expect("batch");
    decode.push(("entry-batch-record".into(), records.split_off(7)));

    // Segments written by ironwal, whole and damaged.
    let single = log(1 << 20, mixed).concat();
    let n = single.len();
    decode.push(("ironwal-mixed.wal".into(), single.clone()));
    decode.push(("ironwal-torn-tail.wal".into(), single[..n - 5].to_vec()));
    decode.push(("ironwal-torn-header.wal".into(), single[..n - 126].to_vec()));
    decode.push((
        "ironwal-flipped-payload.wal".into(),
        flip(single.clone(), 40),
    ));
    decode.push(("ironwal-flipped-length.wal".into(), flip(single.clone(), 5)));
    let mut zero_tail = single.clone();
    zero_tail.resize(n + 512, 0);
    decode.push(("ironwal-zero-tail.wal".into(), zero_tail.clone()));
    let mut zeroed = single.clone();
    zeroed[30..90].fill(0);
    decode.push(("ironwal-zeroed-range.wal".into(), zeroed));
    let mut garbage = b"not a log at all, then one".to_vec();
    garbage.extend_from_slice(&single);
    decode.push(("ironwal-garbage-then-valid.wal".into(), garbage));
    let fragmented = log(1 << 20, |wal| {
        wal.put(b"big", &[0xab; 33_000]).expect("put");
        wal.put(b"after", b"x").expect("put");
    })
    .concat();
    decode.push(("ironwal-fragmented.wal".into(), fragmented.clone()));
    let f = fragmented.len();
    decode.push((
        "ironwal-fragmented-torn.wal".into(),
        fragmented[..f - 300].to_vec(),
    ));

    // Small fragmented entries (First, Middle, Last cut anywhere, as a
    // reader must accept) and a header-form batch, without 32 KiB payloads.
    let mut small_fragments = Vec::new();
    let long = entry(Op::Put, 20, b"fragmented-key", &[5; 200]);
    write_record(&mut small_fragments, RecordType::First, &long[..13]);
    write_record(&mut small_fragments, RecordType::Middle, &long[13..60]);
    write_record(&mut small_fragments, RecordType::Middle, &long[60..61]);
    write_record(&mut small_fragments, RecordType::Last, &long[61..]);
    let merge = entry(Op::Merge, 21, b"m", b"after the fragments");
    write_record(&mut small_fragments, RecordType::Full, &merge);
    decode.push((
        "ironwal-small-fragments.wal".into(),
        small_fragments.clone(),
    ));
    let mut header_batch = Vec::new();
    encode_header_batch(
        &mut header_batch,
        30,
        &[
            (Op::Put, b"h1", b"v"),
            (Op::Delete, b"h2", b""),
            (Op::Merge, b"h3", b"+"),
        ],
    )
    .expect("header batch");
    decode.push(("ironwal-header-batch.wal".into(), header_batch.clone()));
    decode.push((
        "ironwal-header-batch-torn.wal".into(),
        header_batch[..header_batch.len() - 20].to_vec(),
    ));

    // kevo's own files, the small ones.
    let compat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kevo");
    let mut kevo: Vec<(String, Vec<u8>)> = Vec::new();
    for vector in std::fs::read_dir(&compat).expect("testdata/kevo") {
        let vector = vector.expect("an entry").path();
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&vector)
            .expect("a vector dir")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        segments.sort();
        let name = vector.file_name().expect("a name").to_string_lossy();
        for (i, segment) in segments.iter().enumerate() {
            let bytes = std::fs::read(segment).expect("a segment");
            if bytes.len() < 8 * 1024 {
                kevo.push((format!("kevo-{name}-{i}.wal"), bytes));
            }
        }
    }
    kevo.sort();
    decode.extend(kevo.iter().cloned());

    // Directories for `open`: control byte bits 3-4 pick the segment size.
    let segments = log(96, mixed);
    assert!(segments.len() >= 2, "small segments rotate");
    let parts: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    open.push(("ironwal-segments".into(), open_input(0, &parts)));
    open.push((
        "ironwal-segments-rotate".into(),
        open_input(0b1_1000, &parts),
    ));
    let last = parts.len() - 1;
    let mut torn = parts.clone();
    torn[last] = &parts[last][..parts[last].len() - 3];
    open.push(("ironwal-segments-torn".into(), open_input(0b0_1000, &torn)));
    let corrupt_first = flip(parts[0].to_vec(), 20);
    let mut corrupt = parts.clone();
    corrupt[0] = &corrupt_first;
    open.push((
        "ironwal-segments-corrupt-first".into(),
        open_input(0, &corrupt),
    ));
    let mut with_empty = vec![parts[0], &[][..]];
    with_empty.extend_from_slice(&parts[1..]);
    open.push((
        "ironwal-segments-empty-between".into(),
        open_input(0x20, &with_empty),
    ));
    open.push((
        "ironwal-one-zero-tail".into(),
        open_input(0b1_0000, &[&zero_tail]),
    ));
    for junk in 0..4u8 {
        let mut with_junk = parts[..2].to_vec();
        with_junk.push(b"junk that is not a segment");
        open.push((
            format!("ironwal-segments-junk-{junk}"),
            open_input(1 | junk << 1, &with_junk),
        ));
    }
    open.push((
        "ironwal-fragmented".into(),
        open_input(0b1_0000, &[&fragmented, &single]),
    ));
    open.push((
        "ironwal-small-fragments-and-batch".into(),
        open_input(0b0_1000, &[&small_fragments, &header_batch]),
    ));
    for (name, bytes) in &kevo {
        open.push((
            name.trim_end_matches(".wal").into(),
            open_input(0b1_1000, &[bytes]),
        ));
    }
    let multi: Vec<&[u8]> = kevo
        .iter()
        .filter(|(n, _)| n.starts_with("kevo-multi-segment-") && !n.ends_with("-3.wal"))
        .map(|(_, b)| b.as_slice())
        .collect();
    open.push(("kevo-multi-segment-prefix".into(), open_input(0, &multi)));

    // Known bugs (named `bug-*`, see KNOWN_BUG).
    //
    // A header-form batch at the end of the last segment, its first member
    // damaged, later members intact, and fewer members than its count: under
    // SkipCorrupted the open drops it to the end of the file and the Wal
    // appends after it; on reopening, the new (acknowledged) entry is taken
    // for a member of the broken batch and dropped with it. Found by the
    // `open` fuzz target (bug-skip-corrupted-fuzz-5637091e is its input).
    let mut swallowing = Vec::new();
    encode_entry(&mut swallowing, Op::Put, 1, b"a", b"1").expect("entry");
    let start = swallowing.len();
    let members: [(Op, &[u8], &[u8]); 4] = [
        (Op::Put, b"b", b"2"),
        (Op::Put, b"c", b"3"),
        (Op::Put, b"d", b"4"),
        (Op::Put, b"e", b"5"),
    ];
    encode_header_batch(&mut swallowing, 2, &members).expect("header batch");
    let (header, member) = (20, 26);
    swallowing[start + header + 10] ^= 0xff;
    swallowing.truncate(start + header + 3 * member);
    open_bugs.push((
        "bug-skip-corrupted-append-swallowed-by-broken-batch".into(),
        open_input(0b1_1000, &[&swallowing]),
    ));

    // A header-form batch header at the end of one segment, junk after it,
    // and entries in the next segment: under SkipCorrupted, recovery on open
    // (like a LogReader) takes the next segment's entries for members of the
    // broken batch and drops them, but `Wal::replay` right after the open
    // (which reads sealed segments only up to their valid length) yields
    // them, above the `next_seq` the open chose. Found by the `open` fuzz
    // target (bug-skip-corrupted-fuzz-6314a3cf is its input).
    let mut first = Vec::new();
    encode_entry(&mut first, Op::Put, 1, b"a", b"1").expect("entry");
    let mut broken = Vec::new();
    let mut header = vec![4];
    header.extend_from_slice(&10u64.to_le_bytes());
    header.extend_from_slice(&3u32.to_le_bytes());
    write_record(&mut broken, RecordType::Full, &header);
    broken.extend_from_slice(&[0xee; 20]);
    let mut next = Vec::new();
    encode_entry(&mut next, Op::Put, 10, b"c", b"1").expect("entry");
    encode_entry(&mut next, Op::Put, 11, b"d", b"1").expect("entry");
    open_bugs.push((
        "bug-skip-corrupted-replay-differs-from-recovery".into(),
        open_input(0b1_1000, &[&first, &broken, &next]),
    ));

    let mut total = 0;
    let dirs = [
        ("corpus", "decode", &decode),
        ("corpus", "open", &open),
        ("regressions", "open", &open_bugs),
    ];
    for (kind, target, inputs) in dirs {
        let dir = fuzz_dir(kind, target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in inputs {
            std::fs::write(dir.join(name), bytes).expect("write");
            total += bytes.len();
        }
    }
    println!(
        "{} decode, {} open and {} regression inputs, {total} bytes",
        decode.len(),
        open.len(),
        open_bugs.len()
    );
    assert!(total < 500 * 1024, "the seed corpus stays small");
}
