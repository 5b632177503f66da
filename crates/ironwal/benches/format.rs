//! Micro-benchmarks of the CPU cost of the format and the append and replay
//! paths, with no disk involved (`MemStorage`, `SyncPolicy::Never`).
//!
//! Run with `cargo bench -p ironwal --bench format`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ironwal::format::{decode_entry, encode_entry, record::checksum, Op};
use ironwal::storage::MemStorage;
use ironwal::{LogReader, Options, RecoveryMode, Seq, SyncPolicy, Wal};

const SIZES: [usize; 3] = [100, 1024, 1024 * 1024];

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_entry");
    for size in SIZES {
        let value = vec![7u8; size];
        let mut out = Vec::with_capacity(2 * size + 64);
        group.throughput(Throughput::Bytes(size as u64 + 16));
        group.bench_with_input(BenchmarkId::from_parameter(size), &value, |b, value| {
            b.iter(|| {
                out.clear();
                encode_entry(&mut out, Op::Put, 42, b"key-0000000042", value).unwrap();
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_entry");
    for size in [100usize, 1024, 16 * 1024] {
        let mut out = Vec::new();
        encode_entry(&mut out, Op::Put, 42, b"key-0000000042", &vec![7u8; size]).unwrap();
        let payload = out[7..].to_vec();
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, payload| {
            b.iter(|| black_box(decode_entry(black_box(payload)).unwrap()))
        });
    }
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for size in [128usize, 4096, 32 * 1024] {
        let data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| black_box(checksum(black_box(data))))
        });
    }
    group.finish();
}

fn options(mem: &MemStorage) -> Options {
    Options::default()
        .storage(Arc::new(mem.clone()))
        .sync_policy(SyncPolicy::Never)
        .preallocate(false)
        .max_segment_size(1 << 30)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_unsynced");
    for size in [100usize, 1024] {
        let mem = MemStorage::new();
        let wal = Wal::open("/bench", options(&mem)).unwrap();
        let value = vec![7u8; size];
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(size), &value, |b, value| {
            b.iter(|| wal.put(b"key-0000000042", value).unwrap())
        });
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay");
    for size in [100usize, 1024] {
        let mem = MemStorage::new();
        let wal = Wal::open("/bench", options(&mem)).unwrap();
        let value = vec![7u8; size];
        let n = (64 << 20) / (size + 32);
        for i in 0..n as u64 {
            wal.put(&i.to_be_bytes(), &value).unwrap();
        }
        wal.close().unwrap();
        let bytes = LogReader::open_with(
            Arc::new(mem.clone()),
            "/bench",
            RecoveryMode::TolerateTornTail,
        )
        .unwrap()
        .finish()
        .unwrap()
        .bytes;
        group.throughput(Throughput::Bytes(bytes));
        group.sample_size(10);
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                let storage = Arc::new(mem.clone());
                let mut reader =
                    LogReader::open_with(storage, "/bench", RecoveryMode::TolerateTornTail)
                        .unwrap()
                        .from_seq(Seq::ZERO);
                let mut total = 0usize;
                while let Some(entry) = reader.next_entry().unwrap() {
                    total += entry.key.len() + entry.value.map_or(0, <[u8]>::len);
                }
                black_box(total)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode, crc, append, replay);
criterion_main!(benches);
