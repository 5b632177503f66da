//! A storage that tells the chaos harness (`examples/chaos`) which bytes of
//! each file an fdatasync made durable, so the harness can take a power
//! loss faithfully after it kills the node: it may tear what was written
//! after the last sync, never what a sync covered.
//!
//! The journal is a text file, one event per line, written after the event
//! happened (a kill loses no line: the page cache outlives the process):
//!
//! ```text
//! open <id> <name> new|existing
//!                       a handle to <name> was opened as <id>
//! rename <from> <to>    <from> now has the name <to>
//! remove <name>
//! sync <id> <end>       every byte of the file below <end> is durable
//! ```
//!
//! `--lying-fsync` makes `sync_data` return success without syncing or
//! telling the journal: a disk that acknowledges writes before they are
//! durable. The chaos test must catch a cluster running on it.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironwal::storage::{DirLock, FsStorage, OpenMode, PathKind, Storage, StorageFile};
use parking_lot::Mutex;

#[derive(Debug)]
struct Journal {
    out: Mutex<File>,
    next_id: AtomicU64,
    lying: bool,
}

impl Journal {
    fn line(&self, line: std::fmt::Arguments<'_>) -> io::Result<()> {
        let text = format!("{line}\n");
        self.out.lock().write_all(text.as_bytes())
    }
}

/// The real file system, with every open, rename, removal and sync noted.
#[derive(Debug)]
pub struct JournalStorage {
    inner: FsStorage,
    journal: Arc<Journal>,
}

impl JournalStorage {
    /// Notes events in `journal` (created, or appended to).
    pub fn new(journal: &Path, lying: bool) -> io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)?;
        Ok(JournalStorage {
            inner: FsStorage,
            journal: Arc::new(Journal {
                out: Mutex::new(out),
                next_id: AtomicU64::new(1),
                lying,
            }),
        })
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the data of a file ends: after its last byte that is not zero
/// (a preallocated tail is zeros, and tearing zeros changes nothing). A
/// file that shrinks meanwhile is read to its new end.
pub fn data_end(file: &dyn StorageFile) -> io::Result<u64> {
    let mut end = file.len()?;
    let mut chunk = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], start + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        if let Some(last) = buf[..done].iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

impl Storage for JournalStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        self.inner.kind_of(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open(path, mode)?;
        let written = match mode {
            // A reading handle never writes or syncs.
            OpenMode::CreateNew | OpenMode::Read => 0,
            OpenMode::ReadWrite => data_end(&*inner)?,
        };
        let id = self.journal.next_id.fetch_add(1, Ordering::Relaxed);
        let age = match mode {
            OpenMode::CreateNew => "new",
            OpenMode::Read | OpenMode::ReadWrite => "existing",
        };
        self.journal
            .line(format_args!("open {id} {} {age}", name(path)))?;
        Ok(Arc::new(JournalFile {
            inner,
            id,
            written: AtomicU64::new(written),
            sync: Mutex::new(()),
            journal: Arc::clone(&self.journal),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)?;
        self.journal.line(format_args!("remove {}", name(path)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)?;
        self.journal
            .line(format_args!("rename {} {}", name(from), name(to)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        self.inner.try_lock_dir(dir)
    }
}

#[derive(Debug)]
struct JournalFile {
    inner: Arc<dyn StorageFile>,
    id: u64,
    /// Where the data written so far ends (writes of zeros left out).
    written: AtomicU64,
    /// Keeps this file's sync lines in the order of what they cover.
    sync: Mutex<()>,
    journal: Arc<Journal>,
}

impl StorageFile for JournalFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        if buf.iter().any(|&b| b != 0) {
            self.written
                .fetch_max(offset + buf.len() as u64, Ordering::SeqCst);
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.journal.lying {
            return Ok(());
        }
        let _order = self.sync.lock();
        let end = self.written.load(Ordering::SeqCst);
        self.inner.sync_data()?;
        self.journal.line(format_args!("sync {} {end}", self.id))
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)?;
        self.written.fetch_min(len, Ordering::SeqCst);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}
