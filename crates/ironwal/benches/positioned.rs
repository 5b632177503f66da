//! Positioned reads: `Wal::replay(from)` for 1, 100 and 10,000 entries
//! starting 60 MiB into a 64 MiB segment, against the same counts from the
//! segment's start. With the sparse index both cost about the entries
//! read; without it the first pays for a 60 MiB scan.
//!
//! Run with `cargo bench -p ironwal --bench positioned` (real files, in a
//! temporary directory; the page cache holds them after the first read).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ironwal::{Options, Seq, SyncPolicy, Wal};

const VALUE: usize = 256;
const SEGMENT: u64 = 64 << 20;

fn positioned(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .max_segment_size(SEGMENT)
        .preallocate(false)
        .sync_policy(SyncPolicy::Never);
    let wal = Wal::open(dir.path(), options).unwrap();
    // Fill one segment: entries up to 60 MiB in, then a few MiB more.
    let value = vec![9u8; VALUE];
    let mut at_60_mib = None;
    while wal.segments().len() == 1 {
        let seq = wal
            .put(&wal.next_seq().get().to_be_bytes(), &value)
            .unwrap();
        if at_60_mib.is_none() && wal.metrics().bytes >= 60 << 20 {
            at_60_mib = Some(seq);
        }
    }
    wal.sync().unwrap();
    let deep = at_60_mib.unwrap();
    let mut group = c.benchmark_group("replay_from");
    group.sample_size(20);
    for count in [1usize, 100, 10_000] {
        for (name, from) in [("segment_start", Seq::new(1)), ("60_MiB_in", deep)] {
            group.bench_with_input(BenchmarkId::new(name, count), &count, |b, &count| {
                b.iter(|| {
                    let mut reader = wal.replay(from).unwrap();
                    for _ in 0..count {
                        black_box(reader.next_entry().unwrap().unwrap().seq);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, positioned);
criterion_main!(benches);
