//! The workload drivers: the one place that times anything, so every peer
//! is measured by the same loop. Runs inside a child process.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};

pub use ironwal_cli::measure::percentile_us;

use crate::cell::Measured;
use crate::peers::{Log, Mode, Peer, Tally};
use crate::plan::KEY_LEN;

/// Random-looking bytes (incompressible, unlike a repeated pattern), with a
/// different slice for each append and no generator call per append.
pub struct Values {
    bytes: Vec<u8>,
    size: usize,
}

/// How many distinct starting offsets the values rotate through.
const VALUE_OFFSETS: usize = 4096;

impl Values {
    pub fn new(size: usize, seed: u64) -> Values {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut bytes = Vec::with_capacity(size + VALUE_OFFSETS + 8);
        while bytes.len() < size + VALUE_OFFSETS {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Values { bytes, size }
    }

    #[inline]
    pub fn get(&self, i: u64) -> &[u8] {
        let start = (i as usize).wrapping_mul(61) % VALUE_OFFSETS;
        &self.bytes[start..start + self.size]
    }
}

/// The key of writer `writer`'s `i`th append: distinct across writers, and
/// increasing for each.
#[inline]
pub fn key(writer: usize, i: u64) -> [u8; KEY_LEN] {
    ((writer as u64) << 40 | i).to_be_bytes()
}

/// W1: `writers` threads append durably until `run_for` has passed.
pub fn durable(
    peer: &dyn Peer,
    dir: &Path,
    writers: usize,
    value_size: usize,
    run_for: Duration,
) -> Result<Measured> {
    ensure!(writers > 0, "at least one writer");
    let log = peer.open(dir, Mode::Durable)?;
    let fsyncs_before = log.fsyncs();
    let barrier = Barrier::new(writers + 1);
    let (elapsed, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|id| {
                let log = &*log;
                let barrier = &barrier;
                s.spawn(move || append_for(log, id, value_size, run_for, barrier))
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a writer panicked")))
            })
            .collect();
        (started.elapsed(), results)
    });
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    let fsyncs = log.fsyncs().zip(fsyncs_before).map(|(a, b)| a - b);
    log.close()?;
    latencies.sort_unstable();
    let ops = latencies.len() as u64;
    Ok(Measured {
        ops,
        payload_bytes: ops * (KEY_LEN + value_size) as u64,
        secs: elapsed.as_secs_f64(),
        p50_us: Some(percentile_us(&latencies, 0.50)),
        p99_us: Some(percentile_us(&latencies, 0.99)),
        fsyncs,
        ..Measured::default()
    })
}

/// One W1 writer: returns each append's latency in nanoseconds.
fn append_for(
    log: &dyn Log,
    id: usize,
    value_size: usize,
    run_for: Duration,
    barrier: &Barrier,
) -> Result<Vec<u64>> {
    // Set up before the barrier, but always reach it, or the others wait
    // for ever.
    let writer = log.writer(id);
    let values = Values::new(value_size, id as u64);
    let mut latencies = Vec::with_capacity(1 << 16);
    barrier.wait();
    let mut writer = writer?;
    let deadline = Instant::now() + run_for;
    let mut i = 0u64;
    loop {
        let started = Instant::now();
        if started >= deadline {
            return Ok(latencies);
        }
        writer.append(&key(id, i), values.get(i))?;
        latencies.push(started.elapsed().as_nanos() as u64);
        i += 1;
    }
}

/// W2, W3: one thread appends `count` values unsynced; the clock stops once
/// everything is handed to the OS.
pub fn unsynced(peer: &dyn Peer, dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let log = peer.open(dir, Mode::Unsynced)?;
    let measured = append_count(&*log, count, value_size)?;
    log.close()?;
    Ok(measured)
}

fn append_count(log: &dyn Log, count: u64, value_size: usize) -> Result<Measured> {
    let values = Values::new(value_size, 0);
    let mut writer = log.writer(0)?;
    let started = Instant::now();
    for i in 0..count {
        writer.append(&key(0, i), values.get(i))?;
    }
    log.flush()?;
    let elapsed = started.elapsed();
    Ok(Measured {
        ops: count,
        payload_bytes: count * (KEY_LEN + value_size) as u64,
        secs: elapsed.as_secs_f64(),
        ..Measured::default()
    })
}

/// W4's preparation: writes `count` values for the replay, unsynced where
/// the peer can, and closes the log.
pub fn write_log(peer: &dyn Peer, dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let writers = peer.replay_log_writers().max(1);
    let log = peer.open(dir, Mode::ReplayLog)?;
    let started = Instant::now();
    let mut measured = if writers == 1 {
        append_count(&*log, count, value_size)?
    } else {
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|id| {
                    let log = &*log;
                    let share =
                        count / writers as u64 + u64::from((id as u64) < count % writers as u64);
                    s.spawn(move || -> Result<()> {
                        let values = Values::new(value_size, id as u64);
                        let mut writer = log.writer(id)?;
                        for i in 0..share {
                            writer.append(&key(id, i), values.get(i))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a writer panicked")))
                })
                .collect()
        });
        results.into_iter().collect::<Result<()>>()?;
        Measured {
            ops: count,
            payload_bytes: count * (KEY_LEN + value_size) as u64,
            note: Some(format!(
                "log written by {writers} writers with durable commits"
            )),
            ..Measured::default()
        }
    };
    log.close()?;
    // Writing the log is not a figure of the table: its time, close (and
    // for most peers a sync) included, only shows in the progress lines.
    measured.secs = started.elapsed().as_secs_f64();
    Ok(measured)
}

/// W4, W5: reopens the log and reads every entry back, recovery included.
pub fn replay(peer: &dyn Peer, dir: &Path, count: u64, value_size: usize) -> Result<Measured> {
    let mut tally = Tally::default();
    let started = Instant::now();
    peer.replay(dir, &mut tally)
        .with_context(|| format!("{} replaying {}", peer.name(), dir.display()))?;
    let elapsed = started.elapsed();
    std::hint::black_box(tally.fold());
    ensure!(
        tally.entries == count,
        "replay yielded {} entries, {count} were written",
        tally.entries
    );
    let expected_bytes = count * (KEY_LEN + value_size) as u64;
    ensure!(
        tally.bytes == expected_bytes,
        "replay yielded {} bytes of keys and values, {expected_bytes} were written",
        tally.bytes
    );
    Ok(Measured {
        ops: tally.entries,
        payload_bytes: tally.bytes,
        secs: elapsed.as_secs_f64(),
        ..Measured::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_between_appends_and_have_the_asked_size() {
        let values = Values::new(100, 7);
        assert_eq!(values.get(0).len(), 100);
        assert_ne!(values.get(0), values.get(1));
        assert_eq!(Values::new(100, 7).get(5), values.get(5));
    }

    #[test]
    fn keys_are_distinct_across_writers() {
        assert_ne!(key(0, 1), key(1, 0));
        assert!(key(0, 1) < key(0, 2));
    }
}
