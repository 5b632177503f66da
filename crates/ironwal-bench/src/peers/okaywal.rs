//! okaywal (khonsulabs): one entry of one chunk (key then value) per append,
//! committed with `EntryWriter::commit`, which always fsyncs (concurrent
//! committers share fsyncs). Replay is `WriteAheadLog` recovery handing every
//! entry to a `LogManager` that reads and checks each chunk.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use okaywal::{
    Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader, WriteAheadLog,
};

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct Okaywal;

impl Peer for Okaywal {
    fn name(&self) -> &'static str {
        "okaywal"
    }

    fn unsupported(&self, workload: Workload) -> Option<String> {
        match workload {
            Workload::W2 | Workload::W3 => {
                Some("no unsynced append: every EntryWriter::commit fsyncs".to_owned())
            }
            _ => None,
        }
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W4 => Some("recovery into a LogManager that reads every chunk"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let config = Configuration::default_for(dir);
        let config = match mode {
            // The defaults: segments are checkpointed (and recycled) as they
            // fill, as in real use.
            Mode::Durable => config,
            Mode::Unsynced => bail!("okaywal cannot append without an fsync"),
            // Never checkpoint, or the replay would find recycled segments.
            Mode::ReplayLog => config.checkpoint_after_bytes(u64::MAX),
        };
        let wal = config.open(Recovered::default())?;
        Ok(Box::new(OkaywalLog(wal)))
    }

    /// Every commit fsyncs, so W4's log is written by many committers that
    /// share fsyncs.
    fn replay_log_writers(&self) -> usize {
        64
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let seen = Arc::new(Mutex::new(None));
        let manager = Recovered {
            tally: Tally::default(),
            buf: Vec::new(),
            report_to: Some(Arc::clone(&seen)),
        };
        let wal = Configuration::default_for(dir)
            .checkpoint_after_bytes(u64::MAX)
            .open(manager)?;
        // Recovery is done once open returns; the manager hands its tally
        // over when the log drops it.
        wal.shutdown()?;
        let recovered = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("tally lock poisoned"))?
            .take();
        match recovered {
            Some(recovered) => *tally = recovered,
            None => bail!("okaywal did not drop its log manager on shutdown"),
        }
        Ok(())
    }
}

struct OkaywalLog(WriteAheadLog);

impl Log for OkaywalLog {
    fn writer(&self, _id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(OkaywalWriter(&self.0)))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.0.shutdown()?)
    }
}

struct OkaywalWriter<'a>(&'a WriteAheadLog);

impl Writer for OkaywalWriter<'_> {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut entry = self.0.begin_entry()?;
        let mut chunk = entry.begin_chunk(u32::try_from(key.len() + value.len())?)?;
        chunk.write_all(key)?;
        chunk.write_all(value)?;
        chunk.finish()?;
        entry.commit()?;
        Ok(())
    }
}

/// Reads every recovered chunk (checking its CRC) into a tally, and treats
/// checkpointed entries as applied elsewhere. Its tally goes to `report_to`
/// when okaywal drops it, so no lock is taken per entry.
#[derive(Debug, Default)]
struct Recovered {
    tally: Tally,
    buf: Vec<u8>,
    report_to: Option<Arc<Mutex<Option<Tally>>>>,
}

impl LogManager for Recovered {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    self.buf.clear();
                    chunk.read_to_end(&mut self.buf)?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "okaywal chunk CRC mismatch",
                        ));
                    }
                    self.tally.see_joined(&self.buf);
                }
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => return Ok(()),
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Recovered {
    fn drop(&mut self) {
        if let Some(report_to) = self.report_to.take() {
            if let Ok(mut slot) = report_to.lock() {
                *slot = Some(std::mem::take(&mut self.tally));
            }
        }
    }
}
