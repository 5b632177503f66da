//! raft-engine (tikv) through its key-value API: one `LogBatch::put` per
//! append, written with `Engine::write(&mut batch, sync)` (concurrent
//! writers are grouped, one fsync per group). Each writer thread uses its own
//! raft group. Replay is `Engine::open` (which reads the whole log to rebuild
//! the memtables) plus a scan of every group.
//!
//! Two things a reader of the figures must know: the key-value API keeps
//! every value in the memtable, so memory grows with the log (its W5); and
//! batch compression is switched off, since the values are random bytes that
//! lz4 could only spend CPU on.

use std::path::Path;

use anyhow::{Context, Result};
use raft_engine::{Config, Engine, LogBatch, ReadableSize};

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct RaftEngine;

fn config(dir: &Path) -> Result<Config> {
    let dir = dir
        .to_str()
        .context("raft-engine needs a UTF-8 directory path")?;
    Ok(Config {
        dir: dir.to_owned(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    })
}

impl Peer for RaftEngine {
    fn name(&self) -> &'static str {
        "raft-engine"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W1 => Some("one raft group per writer"),
            Workload::W4 => Some("Engine::open (rebuilds the memtables), then a scan"),
            Workload::W5 => Some("its KV API keeps every value in the memtable"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let engine = Engine::open(config(dir)?)?;
        Ok(Box::new(RaftLog {
            engine,
            sync: mode == Mode::Durable,
        }))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let engine = Engine::open(config(dir)?)?;
        for group in engine.raft_groups() {
            engine.scan_raw_messages(group, None, None, false, |key, value| {
                tally.see(key, value);
                true
            })?;
        }
        Ok(())
    }
}

struct RaftLog {
    engine: Engine,
    sync: bool,
}

impl Log for RaftLog {
    fn writer(&self, id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(RaftWriter {
            log: self,
            group: id as u64 + 1,
            batch: LogBatch::default(),
        }))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.engine.sync()?)
    }
}

struct RaftWriter<'a> {
    log: &'a RaftLog,
    group: u64,
    batch: LogBatch,
}

impl Writer for RaftWriter<'_> {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        // The API takes owned vectors: these two copies are its cost.
        self.batch.put(self.group, key.to_vec(), value.to_vec())?;
        self.log.engine.write(&mut self.batch, self.log.sync)?;
        Ok(())
    }
}
