//! RocksDB through the `rocksdb` crate (only with `--features rocksdb`):
//! `DB::put_opt` with `WriteOptions::set_sync(true)` when durable (RocksDB
//! groups concurrent writers' WAL writes and syncs), `set_sync(false)`
//! otherwise (the WAL record still goes to the OS on every write). Replay is
//! `DB::open` (WAL recovery) plus a full scan with a raw iterator.

use std::path::Path;

use anyhow::Result;
use rocksdb::{Options, WriteOptions, DB};

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct RocksDb;

fn open(dir: &Path) -> Result<DB> {
    let mut options = Options::default();
    options.create_if_missing(true);
    Ok(DB::open(&options, dir)?)
}

impl Peer for RocksDb {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W1 => Some("WriteOptions::set_sync(true)"),
            Workload::W4 => Some("DB::open, then a full scan"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        Ok(Box::new(RocksLog {
            db: open(dir)?,
            sync: mode == Mode::Durable,
        }))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let db = open(dir)?;
        let mut iter = db.raw_iterator();
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            tally.see(key, value);
            iter.next();
        }
        Ok(iter.status()?)
    }
}

struct RocksLog {
    db: DB,
    sync: bool,
}

impl Log for RocksLog {
    fn writer(&self, _id: usize) -> Result<Box<dyn Writer + '_>> {
        // WriteOptions is Send but not Sync: one per writer thread.
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        Ok(Box::new(RocksWriter {
            db: &self.db,
            options,
        }))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }
}

struct RocksWriter<'a> {
    db: &'a DB,
    options: WriteOptions,
}

impl Writer for RocksWriter<'_> {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_opt(key, value, &self.options)?)
    }
}
