//! The real file system.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{DirLock, OpenMode, PathKind, Storage, StorageFile};

/// [`Storage`] on the operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

/// The error for a path that is not a regular file.
fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a directory, FIFO, socket or device cannot be a segment)",
    )
}

#[derive(Debug)]
struct FsFile {
    file: File,
}

#[derive(Debug)]
struct FsLock {
    // Held only to keep the lock: flock is released when the file closes.
    _file: File,
}

impl DirLock for FsLock {}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(PathKind::Dir),
            Ok(meta) if meta.is_file() => Ok(PathKind::File),
            Ok(_) => Ok(PathKind::Special),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PathKind::Missing),
            Err(e) => Err(e),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
        };
        // A FIFO opened for reading waits for a writer: O_NONBLOCK keeps the
        // open from blocking (it changes nothing for a regular file), and
        // what is not a regular file is refused before any read.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = options.open(path)?;
        if !file.metadata()?.is_file() {
            return Err(not_regular());
        }
        Ok(Arc::new(FsFile { file }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // Directory handles cannot be fsynced here; metadata is journaled.
        Ok(())
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(super::lock_path(dir))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(FsLock { _file: file }))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl StorageFile for FsFile {
    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }

    #[cfg(windows)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset)
    }

    #[cfg(unix)]
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }

    #[cfg(windows)]
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_write(&self.file, buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// `posix_fadvise(POSIX_FADV_DONTNEED)` over the range: Linux starts
    /// the write-back of its dirty pages and returns (`sync_file_range`
    /// would say it more plainly, but has no safe binding). Pages of the
    /// range already clean leave the page cache; the ones just written
    /// are under write-back and stay.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::{fadvise, Advice};
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        fadvise(&self.file, offset, Some(len), Advice::DontNeed).map_err(io::Error::from)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::read_up_to;

    /// A write-back hint over what was just written, over nothing and past
    /// the end is accepted and leaves the bytes as they were.
    #[test]
    fn a_write_back_hint_changes_nothing_a_reader_sees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = FsStorage.open(&path, OpenMode::CreateNew).unwrap();
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        file.write_all_at(&data, 0).unwrap();
        file.start_writeback(0, 1 << 20).unwrap();
        file.start_writeback(1 << 20, data.len() as u64).unwrap();
        file.start_writeback(7, 0).unwrap();
        file.start_writeback(64 << 20, 4096).unwrap();
        let mut back = vec![0; data.len() + 1];
        assert_eq!(read_up_to(&*file, &mut back, 0).unwrap(), data.len());
        assert_eq!(&back[..data.len()], &data[..]);
        file.sync_data().unwrap();
    }

    /// A FIFO, a directory and a device are not files: `kind_of` says so and
    /// `open` refuses them without blocking (a FIFO opened for reading
    /// would wait for a writer forever).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wal");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let sub = dir.path().join("sub.wal");
        fs::create_dir(&sub).unwrap();
        let cases = [
            (fifo.as_path(), PathKind::Special),
            (sub.as_path(), PathKind::Dir),
            (Path::new("/dev/zero"), PathKind::Special),
        ];
        for (path, kind) in cases {
            assert_eq!(FsStorage.kind_of(path).unwrap(), kind, "{}", path.display());
            for mode in [OpenMode::Read, OpenMode::ReadWrite] {
                let error = FsStorage.open(path, mode).unwrap_err();
                let refused = [io::ErrorKind::InvalidInput, io::ErrorKind::IsADirectory];
                assert!(
                    refused.contains(&error.kind()),
                    "{}: {error}",
                    path.display()
                );
            }
        }
    }
}
