//! ironwal, through its public API: `Wal::put` under `SyncPolicy::Always` or
//! `Never`, and `LogReader`'s borrowing `next_entry` for replay.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use ironwal::storage::default_storage;
use ironwal::{LogReader, Options, RecoveryMode, SyncPolicy, Wal};
use ironwal_cli::measure::CountingStorage;

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct Ironwal;

impl Peer for Ironwal {
    fn name(&self) -> &'static str {
        "ironwal"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W4 => Some("LogReader, borrowing next_entry"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let policy = match mode {
            Mode::Durable => SyncPolicy::Always,
            Mode::Unsynced | Mode::ReplayLog => SyncPolicy::Never,
        };
        let storage = Arc::new(CountingStorage::new(default_storage()));
        let options = Options::default()
            .sync_policy(policy)
            .storage(storage.clone());
        let wal = Wal::open(dir, options)?;
        Ok(Box::new(IronwalLog { wal, storage }))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let mut reader = LogReader::open(dir, RecoveryMode::TolerateTornTail)?;
        while let Some(entry) = reader.next_entry()? {
            tally.see(entry.key, entry.value.unwrap_or_default());
        }
        Ok(())
    }
}

struct IronwalLog {
    wal: Wal,
    storage: Arc<CountingStorage>,
}

impl Log for IronwalLog {
    fn writer(&self, _id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(IronwalWriter(&self.wal)))
    }

    fn flush(&self) -> Result<()> {
        Ok(self.wal.flush()?)
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.storage.syncs())
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.wal.close()?)
    }
}

struct IronwalWriter<'a>(&'a Wal);

impl Writer for IronwalWriter<'_> {
    #[inline]
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)?;
        Ok(())
    }
}
