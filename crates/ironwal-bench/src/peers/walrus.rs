//! walrus-rust: `append_for_topic` of key and value as one payload, under
//! `FsyncSchedule::SyncEach` (its strongest: the file is opened O_SYNC and
//! synced after every entry) or `NoFsync`. Each writer thread has its own
//! topic, since walrus serializes a topic's writes, fsync included. Replay
//! reopens the instance (its recovery scan) and drains the topic with
//! `batch_read_for_topic`.
//!
//! walrus places its files under `$WALRUS_DATA_DIR/<key>` and prints debug
//! lines on stdout unless `WALRUS_QUIET` is set; the harness sets both in
//! every child's environment, so nothing here touches the environment.

use std::path::Path;

use anyhow::{bail, Result};
use walrus_rust::{FsyncSchedule, ReadConsistency, Walrus as Instance};

use super::{join_into, Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct Walrus;

/// The instance key: the files go to `$WALRUS_DATA_DIR/bench`.
const KEY: &str = "bench";

/// Bytes asked for per `batch_read_for_topic` call (walrus also stops at
/// 2,000 entries).
const READ_BATCH_BYTES: usize = 8 << 20;

fn topic(writer: usize) -> String {
    format!("w{writer}")
}

fn open(dir: &Path, schedule: FsyncSchedule) -> Result<Instance> {
    match std::env::var_os("WALRUS_DATA_DIR") {
        Some(data_dir) if Path::new(&data_dir) == dir => {}
        other => bail!(
            "walrus-rust writes under $WALRUS_DATA_DIR, which is {other:?}, not {}; \
             run it through the harness",
            dir.display()
        ),
    }
    // Read positions are persisted only every u32::MAX reads: replay measures
    // reading, not cursor bookkeeping.
    let consistency = ReadConsistency::AtLeastOnce {
        persist_every: u32::MAX,
    };
    Ok(Instance::with_consistency_and_schedule_for_key(
        KEY,
        consistency,
        schedule,
    )?)
}

impl Peer for Walrus {
    fn name(&self) -> &'static str {
        "walrus-rust"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W1 => Some("one topic per writer; SyncEach: O_SYNC and an fsync per entry"),
            Workload::W4 => Some("reopen, then batch_read_for_topic"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let schedule = match mode {
            Mode::Durable => FsyncSchedule::SyncEach,
            Mode::Unsynced | Mode::ReplayLog => FsyncSchedule::NoFsync,
        };
        Ok(Box::new(WalrusLog(open(dir, schedule)?)))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let wal = open(dir, FsyncSchedule::NoFsync)?;
        // W4's log is written by one writer, so it is all in topic w0.
        let topic = topic(0);
        loop {
            let entries = wal.batch_read_for_topic(&topic, READ_BATCH_BYTES, true)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in &entries {
                tally.see_joined(&entry.data);
            }
        }
    }
}

struct WalrusLog(Instance);

impl Log for WalrusLog {
    fn writer(&self, id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(WalrusWriter {
            wal: &self.0,
            topic: topic(id),
            buf: Vec::new(),
        }))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

struct WalrusWriter<'a> {
    wal: &'a Instance,
    topic: String,
    buf: Vec<u8>,
}

impl Writer for WalrusWriter<'_> {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let payload = join_into(&mut self.buf, key, value);
        self.wal.append_for_topic(&self.topic, payload)?;
        Ok(())
    }
}
