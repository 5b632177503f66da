//! Raw-disk ceilings: what the file system and disk do with no log library in
//! the way, written directly with `std::fs` and `FileExt`. Records are
//! key + value + [`RAW_FRAMING`] bytes (116 for a 100-byte value). Runs
//! inside a child process.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::cell::Measured;
use crate::drive::{percentile_us, Values};
use crate::plan::{KEY_LEN, MIB, RAW_FRAMING};

const LOG_FILE: &str = "raw.log";

/// How much the overwrite ceiling pre-zeroes; the loop wraps around if it
/// gets to the end (it stays an overwrite of written blocks).
const PREZEROED_BYTES: u64 = 64 * MIB as u64;

/// Bytes of a raw record holding a `value_size`-byte value.
pub fn record_len(value_size: usize) -> usize {
    KEY_LEN + value_size + RAW_FRAMING
}

fn create(dir: &Path) -> Result<File> {
    let path = dir.join(LOG_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Makes the new file's directory entry durable, as a log would before use.
fn sync_dir(dir: &Path) -> Result<()> {
    Ok(File::open(dir)?.sync_all()?)
}

/// (a) `record`-byte appends to a fresh file, each followed by fdatasync.
pub fn append_sync(dir: &Path, record: usize, run_for: Duration) -> Result<Measured> {
    let file = create(dir)?;
    sync_dir(dir)?;
    sync_loop(&file, record, run_for, None)
}

/// (b) The same, overwriting blocks that were written with zeros and synced
/// beforehand (size included), as a log with pre-allocated segments does.
pub fn overwrite_sync(dir: &Path, record: usize, run_for: Duration) -> Result<Measured> {
    let file = create(dir)?;
    let zeros = vec![0u8; MIB];
    let mut offset = 0;
    while offset < PREZEROED_BYTES {
        file.write_all_at(&zeros, offset)?;
        offset += zeros.len() as u64;
    }
    file.sync_all()?;
    sync_dir(dir)?;
    sync_loop(&file, record, run_for, Some(PREZEROED_BYTES))
}

fn sync_loop(
    file: &File,
    record: usize,
    run_for: Duration,
    wrap_at: Option<u64>,
) -> Result<Measured> {
    let values = Values::new(record, 1);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut offset = 0u64;
    let mut i = 0u64;
    let started = Instant::now();
    let deadline = started + run_for;
    loop {
        let t = Instant::now();
        if t >= deadline {
            break;
        }
        if wrap_at.is_some_and(|end| offset + record as u64 > end) {
            offset = 0;
        }
        file.write_all_at(values.get(i), offset)?;
        file.sync_data()?;
        latencies.push(t.elapsed().as_nanos() as u64);
        offset += record as u64;
        i += 1;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Measured {
        ops: i,
        payload_bytes: i * record as u64,
        secs: elapsed.as_secs_f64(),
        p50_us: Some(percentile_us(&latencies, 0.50)),
        p99_us: Some(percentile_us(&latencies, 0.99)),
        fsyncs: Some(i),
        ..Measured::default()
    })
}

/// (c) One sequential write of `bytes` to a fresh file, then one fdatasync.
pub fn sequential_sync(dir: &Path, bytes: u64) -> Result<Measured> {
    let mut file = create(dir)?;
    let len = usize::try_from(bytes)?;
    let values = Values::new(len, 2);
    let started = Instant::now();
    file.write_all(values.get(0))?;
    file.sync_data()?;
    let elapsed = started.elapsed();
    Ok(Measured {
        ops: 1,
        payload_bytes: bytes,
        secs: elapsed.as_secs_f64(),
        fsyncs: Some(1),
        ..Measured::default()
    })
}

/// W2 and W3's ceiling: one write(2) per record, unsynced.
pub fn unsynced_writes(dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let mut file = create(dir)?;
    let values = Values::new(record_len(value_size), 3);
    let started = Instant::now();
    for i in 0..count {
        file.write_all(values.get(i))?;
    }
    let elapsed = started.elapsed();
    Ok(Measured {
        ops: count,
        payload_bytes: count * (KEY_LEN + value_size) as u64,
        secs: elapsed.as_secs_f64(),
        ..Measured::default()
    })
}

/// W4's preparation for the raw read: a file of `count` records.
pub fn write_log(dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let mut out = BufWriter::with_capacity(MIB, create(dir)?);
    let values = Values::new(record_len(value_size), 4);
    let started = Instant::now();
    for i in 0..count {
        out.write_all(values.get(i))?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Measured {
        ops: count,
        payload_bytes: count * (KEY_LEN + value_size) as u64,
        secs: started.elapsed().as_secs_f64(),
        ..Measured::default()
    })
}

/// W4's ceiling: read the file back in 1 MiB reads, parsing nothing.
pub fn read_log(dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let started = Instant::now();
    let mut file = File::open(dir.join(LOG_FILE))?;
    let mut buf = vec![0u8; MIB];
    let mut total = 0u64;
    let mut fold = 0u8;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        fold ^= buf[n - 1];
    }
    let elapsed = started.elapsed();
    std::hint::black_box(fold);
    let records = total / record_len(value_size) as u64;
    ensure!(
        records == count,
        "read {records} records, {count} were written"
    );
    Ok(Measured {
        ops: records,
        payload_bytes: records * (KEY_LEN + value_size) as u64,
        secs: elapsed.as_secs_f64(),
        note: Some("no parsing, no checksums".to_owned()),
        ..Measured::default()
    })
}
