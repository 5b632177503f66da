//! An in-memory file system.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{DirLock, OpenMode, PathKind, Storage, StorageFile};

/// [`Storage`] that keeps every file in memory.
///
/// Clones share the same files, so a test can "reopen" a log by opening it
/// again through a clone. Writes are durable the moment they return (there is
/// no crash to lose them in); fsyncs only count (see [`MemStorage::syncs`]).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    inner: Arc<MemInner>,
}

#[derive(Debug, Default)]
struct MemInner {
    tree: Mutex<Tree>,
    locks: Arc<Mutex<BTreeSet<PathBuf>>>,
    syncs: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Tree {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, Arc<MemFile>>,
}

#[derive(Debug, Default)]
struct MemFile {
    data: RwLock<Vec<u8>>,
}

/// A read-only or read-write view of a [`MemFile`].
#[derive(Debug)]
struct MemHandle {
    file: Arc<MemFile>,
    writable: bool,
    syncs: Arc<AtomicU64>,
}

#[derive(Debug)]
struct MemLock {
    locks: Arc<Mutex<BTreeSet<PathBuf>>>,
    dir: PathBuf,
}

impl DirLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.locks.lock().remove(&self.dir);
    }
}

impl MemStorage {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times a file was fdatasynced through this storage.
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// A copy of a file's bytes, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let tree = self.inner.tree.lock();
        tree.files.get(path).map(|f| f.data.read().clone())
    }

    /// Creates or replaces a file with the given bytes (and its parent dirs).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) {
        let mut tree = self.inner.tree.lock();
        if let Some(parent) = path.parent() {
            tree.add_dir(parent);
        }
        let file = MemFile {
            data: RwLock::new(bytes.to_vec()),
        };
        tree.files.insert(path.to_path_buf(), Arc::new(file));
    }
}

impl Tree {
    fn add_dir(&mut self, dir: &Path) {
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                self.dirs.insert(ancestor.to_path_buf());
            }
        }
    }

    fn require_dir(&self, dir: &Path) -> io::Result<()> {
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"))
        }
    }
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file")
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.tree.lock().add_dir(dir);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let tree = self.inner.tree.lock();
        tree.require_dir(dir)?;
        let children = tree.files.keys().chain(tree.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        let tree = self.inner.tree.lock();
        Ok(if tree.dirs.contains(path) {
            PathKind::Dir
        } else if tree.files.contains_key(path) {
            PathKind::File
        } else {
            PathKind::Missing
        })
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut tree = self.inner.tree.lock();
        let parent = path.parent().unwrap_or(Path::new(""));
        tree.require_dir(parent)?;
        let file = match (mode, tree.files.get(path)) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"))
            }
            (OpenMode::CreateNew, None) => {
                let file = Arc::new(MemFile::default());
                tree.files.insert(path.to_path_buf(), Arc::clone(&file));
                file
            }
            (_, Some(file)) => Arc::clone(file),
            (_, None) => return Err(not_found()),
        };
        let writable = mode != OpenMode::Read;
        let syncs = Arc::clone(&self.inner.syncs);
        Ok(Arc::new(MemHandle {
            file,
            writable,
            syncs,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner
            .tree
            .lock()
            .files
            .remove(path)
            .map(drop)
            .ok_or_else(not_found)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut tree = self.inner.tree.lock();
        let file = tree.files.remove(from).ok_or_else(not_found)?;
        tree.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.tree.lock().require_dir(dir)
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        self.inner.tree.lock().require_dir(dir)?;
        let mut locks = self.inner.locks.lock();
        if !locks.insert(dir.to_path_buf()) {
            return Ok(None);
        }
        let locks = Arc::clone(&self.inner.locks);
        Ok(Some(Box::new(MemLock {
            locks,
            dir: dir.to_path_buf(),
        })))
    }
}

impl StorageFile for MemHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.file.data.read();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "opened read-only",
            ));
        }
        let offset = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = offset + buf.len();
        let mut data = self.file.data.write();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "opened read-only",
            ));
        }
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.file.data.write().resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.data.read().len() as u64)
    }
}
