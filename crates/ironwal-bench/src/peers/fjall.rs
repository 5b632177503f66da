//! fjall 3: `Keyspace::insert` (which hands the journal entry to the OS),
//! followed, when durable, by `Database::persist(PersistMode::SyncAll)`, its
//! strongest persist mode, after every insert. fjall syncs its journal under
//! the journal's lock, so concurrent writers do not share fsyncs. Replay is
//! `Database` recovery (the journal back into memtables) plus a full scan of
//! the keyspace, which by then may also read tables flushed while writing.

use std::path::Path;

use anyhow::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct Fjall;

const KEYSPACE: &str = "bench";

fn open(dir: &Path) -> Result<(Database, Keyspace)> {
    let db = Database::builder(dir).open()?;
    let keyspace = db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)?;
    Ok((db, keyspace))
}

impl Peer for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W1 => Some("persist(SyncAll) after every insert"),
            Workload::W4 => Some("reopen, then a full keyspace scan"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let (db, keyspace) = open(dir)?;
        Ok(Box::new(FjallLog {
            db,
            keyspace,
            durable: mode == Mode::Durable,
        }))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let (_db, keyspace) = open(dir)?;
        for guard in keyspace.iter() {
            let (key, value) = guard.into_inner()?;
            tally.see(&key, &value);
        }
        Ok(())
    }
}

struct FjallLog {
    db: Database,
    keyspace: Keyspace,
    durable: bool,
}

impl Log for FjallLog {
    fn writer(&self, _id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(FjallWriter(self)))
    }

    fn flush(&self) -> Result<()> {
        Ok(self.db.persist(PersistMode::Buffer)?)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }
}

struct FjallWriter<'a>(&'a FjallLog);

impl Writer for FjallWriter<'_> {
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.keyspace.insert(key, value)?;
        if self.0.durable {
            self.0.db.persist(PersistMode::SyncAll)?;
        }
        Ok(())
    }
}
