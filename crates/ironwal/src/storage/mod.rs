//! The file-system seam: every byte ironwal reads or writes, every file it
//! creates, renames or removes, every fsync and the directory lock go through
//! the [`Storage`] trait.
//!
//! [`FsStorage`] is the real file system and the default. [`MemStorage`] keeps
//! files in memory, for tests and for programs that want a throwaway log.
//! Tests that simulate crashes or inject I/O errors plug in their own
//! implementation; nothing else in the crate calls `std::fs`.

mod file;
mod memory;

pub use file::FsStorage;
pub use memory::MemStorage;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`Storage::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write a new, empty file; fails if the file exists.
    CreateNew,
}

/// What [`Storage::kind_of`] found at a path (following symbolic links).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// Nothing exists there.
    Missing,
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Something else: a FIFO, a socket or a device. ironwal reads and
    /// writes none of them (opening a FIFO would block).
    Special,
}

/// A file opened through a [`Storage`].
///
/// All methods take `&self` and use explicit offsets, so one handle can be
/// written by one thread while another syncs it.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes every completed write to this file durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;

    /// Asks the operating system to start writing `len` bytes at `offset`
    /// to disk, without waiting: a hint that makes a later
    /// [`sync_data`](Self::sync_data) shorter, never a promise of
    /// durability. The default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Truncates or extends the file to `len` bytes (new bytes read as zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// An exclusive lock on a directory, released when dropped.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// A file system, as ironwal needs it.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Names of the entries of a directory (not recursive, any order).
    /// Names that are not valid UTF-8 are left out.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// What exists at `path`.
    fn kind_of(&self, path: &Path) -> io::Result<PathKind>;

    /// Opens a file. Anything but a regular file (a directory, a FIFO, a
    /// device) is refused, without blocking, with
    /// [`io::ErrorKind::InvalidInput`].
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes the creation, removal and renaming of entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on `dir`, or returns `Ok(None)` if another
    /// holder (in this process or another) has it.
    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>>;
}

/// The default storage: the real file system.
pub fn default_storage() -> Arc<dyn Storage> {
    Arc::new(FsStorage)
}

/// Fills as much of `buf` as the file has from `offset`; returns the count.
pub(crate) fn read_up_to(file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Replaces `dir/name` with `bytes`, atomically and durably: written to
/// `dir/temp` (any older one removed first), synced, renamed over `name`,
/// and the directory synced.
pub(crate) fn write_atomically(
    storage: &dyn Storage,
    dir: &Path,
    temp: &str,
    name: &str,
    bytes: &[u8],
) -> crate::error::Result<()> {
    use crate::error::Error;
    let temp = dir.join(temp);
    let path = dir.join(name);
    if storage.kind_of(&temp).map_err(Error::io(&temp))? != PathKind::Missing {
        storage.remove_file(&temp).map_err(Error::io(&temp))?;
    }
    let file = storage
        .open(&temp, OpenMode::CreateNew)
        .map_err(Error::io(&temp))?;
    file.write_all_at(bytes, 0)
        .and_then(|()| file.sync_data())
        .map_err(Error::io(&temp))?;
    drop(file);
    storage.rename(&temp, &path).map_err(Error::io(&path))?;
    storage.sync_dir(dir).map_err(Error::io(dir))
}

/// The path of the lock file inside a log directory.
pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}
