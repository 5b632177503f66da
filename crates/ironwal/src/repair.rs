//! In-place repair: salvage a damaged log into its own directory, then swap
//! the repaired segments in for the originals, all or nothing.
//!
//! The repaired segments are first written beside the originals as
//! `<name>.repaired` (names no reader takes for a segment) and read back.
//! Every name the swap will need is checked before anything is touched.
//! Then a marker, [`REPAIR_MARKER`], is stored atomically and durably: it
//! lists the files to keep as `<name>.bak` and the repaired files to move
//! in. The marker is the commit point. Before it exists, a crash leaves
//! the original log with some `.repaired` files beside it, which the next
//! open removes; once it exists, whoever opens the directory next
//! ([`crate::Wal::open`], [`crate::LogReader::open`], another repair)
//! finishes the swap. Every step of finishing is a rename that is skipped
//! once done, so a crash while finishing is finished by the next open.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::recovery::LogReader;
use crate::report::RecoveryMode;
use crate::salvage::{copy_intact, read_back, SalvageReport};
use crate::segment::{list_segments, lock_dir, SegmentId};
use crate::segment_record::RECORD_FILE;
use crate::storage::{default_storage, write_atomically, PathKind, Storage};

/// The file that marks an in-place repair's swap as committed (see
/// [`repair_in_place`]); its presence means the swap must be finished
/// before the directory is read.
pub const REPAIR_MARKER: &str = "ironwal-repair-swap";

const MARKER_TEMP: &str = "ironwal-repair-swap.tmp";
const MAGIC: &str = "ironwal-repair-swap 1";
/// The suffix of a repaired segment waiting to be swapped in.
const STAGED: &str = ".repaired";
/// The suffix the swap gives each original it replaces.
const BACKUP: &str = ".bak";
/// A marker longer than this is not one.
const MAX_MARKER: u64 = 1 << 20;

/// What [`repair_in_place`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InPlaceReport {
    /// The salvage; `written` names the repaired segments at their final
    /// place in the directory.
    pub salvage: SalvageReport,
    /// The originals, kept as `<name>.bak`.
    pub backups: Vec<PathBuf>,
}

/// Repairs the log in `dir` in place, on the real file system: every
/// intact entry is kept, in order, with its sequence number; each original
/// segment (and the segment record) is kept as `<name>.bak`. All or
/// nothing: if this fails or the machine stops, the directory holds either
/// the original log or the repaired one, never a mix. Fails with
/// [`Error::Locked`] while a writer has the log open.
pub fn repair_in_place(dir: impl AsRef<Path>) -> Result<InPlaceReport> {
    repair_in_place_with(default_storage(), dir)
}

/// [`repair_in_place`] through `storage`.
pub fn repair_in_place_with(
    storage: Arc<dyn Storage>,
    dir: impl AsRef<Path>,
) -> Result<InPlaceReport> {
    let dir = dir.as_ref();
    if storage.kind_of(dir).map_err(Error::io(dir))? != PathKind::Dir {
        return Err(invalid(dir, "an in-place repair needs a log directory"));
    }
    let _lock = lock_dir(&*storage, dir)?;
    finish_interrupted_locked(&*storage, dir)?;

    // Everything the swap will rename, checked before anything is written.
    let mut backups: Vec<String> = list_segments(&*storage, dir)?
        .into_iter()
        .map(|(id, _)| id.file_name())
        .collect();
    if kind(&*storage, &dir.join(RECORD_FILE))? == PathKind::File {
        backups.push(RECORD_FILE.to_owned());
    }
    for name in &backups {
        let backup = dir.join(format!("{name}{BACKUP}"));
        if kind(&*storage, &backup)? != PathKind::Missing {
            return Err(Error::Io {
                path: backup,
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the repair would keep the original under this name; move it away first",
                ),
            });
        }
    }

    let reader = LogReader::open_locked(Arc::clone(&storage), dir, RecoveryMode::SkipCorrupted)?;
    let staged = |source: &Path| -> Result<PathBuf> {
        let name = source.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match SegmentId::parse(name) {
            Some(id) => Ok(dir.join(format!("{}{STAGED}", id.file_name()))),
            None => Err(Error::Internal("a listed segment without a segment name")),
        }
    };
    let salvage = match copy_intact(&*storage, reader, staged) {
        Ok(salvage) => salvage,
        Err(e) => {
            remove_staged(&*storage, dir)?;
            return Err(e);
        }
    };
    let installs: Vec<String> = (salvage.written.iter())
        .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(STAGED))
        .map(str::to_owned)
        .collect();
    let verified = read_back(&storage, &salvage.written, salvage.entries)
        .and_then(|()| storage.sync_dir(dir).map_err(Error::io(dir)));
    if let Err(e) = verified {
        remove_staged(&*storage, dir)?;
        return Err(e);
    }

    let swap = Swap { backups, installs };
    write_atomically(&*storage, dir, MARKER_TEMP, REPAIR_MARKER, &swap.encode())?;
    swap.finish(&*storage, dir)?;

    let mut salvage = salvage;
    salvage.written = swap.installs.iter().map(|n| dir.join(n)).collect();
    let backups = (swap.backups.iter())
        .map(|n| dir.join(format!("{n}{BACKUP}")))
        .collect();
    Ok(InPlaceReport { salvage, backups })
}

/// Finishes an in-place repair a crash interrupted, if `dir` holds one:
/// a committed swap is completed, repaired segments staged by an attempt
/// that did not commit are removed. Takes the directory's lock for it;
/// [`Error::RepairInProgress`] if a repair holds it.
pub(crate) fn finish_interrupted(storage: &dyn Storage, dir: &Path) -> Result<()> {
    if !has_leftovers(storage, dir)? {
        return Ok(());
    }
    let _lock = match lock_dir(storage, dir) {
        Err(Error::Locked { dir }) => return Err(Error::RepairInProgress { dir }),
        lock => lock?,
    };
    finish_interrupted_locked(storage, dir)
}

/// [`finish_interrupted`], with the lock held by the caller.
pub(crate) fn finish_interrupted_locked(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let marker = dir.join(REPAIR_MARKER);
    match kind(storage, &marker)? {
        PathKind::Missing => remove_staged(storage, dir),
        PathKind::File => Swap::load(storage, &marker)?.finish(storage, dir),
        _ => Err(invalid(
            &marker,
            "not a file, where a repair marker belongs",
        )),
    }
}

/// Whether `dir` holds a repair marker or staged segments.
fn has_leftovers(storage: &dyn Storage, dir: &Path) -> Result<bool> {
    let names = storage.list(dir).map_err(Error::io(dir))?;
    Ok(names
        .iter()
        .any(|n| n == REPAIR_MARKER || n == MARKER_TEMP || is_staged(n)))
}

fn is_staged(name: &str) -> bool {
    name.strip_suffix(STAGED)
        .and_then(SegmentId::parse)
        .is_some()
}

/// Removes what an uncommitted repair left: staged segments and a marker
/// that was never renamed into place.
fn remove_staged(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let names = storage.list(dir).map_err(Error::io(dir))?;
    let leftovers: Vec<&String> = (names.iter())
        .filter(|n| is_staged(n) || *n == MARKER_TEMP)
        .collect();
    for name in &leftovers {
        let path = dir.join(name);
        storage.remove_file(&path).map_err(Error::io(&path))?;
    }
    if !leftovers.is_empty() {
        tracing::info!(dir = %dir.display(), "removed what an unfinished repair left");
        storage.sync_dir(dir).map_err(Error::io(dir))?;
    }
    Ok(())
}

fn kind(storage: &dyn Storage, path: &Path) -> Result<PathKind> {
    storage.kind_of(path).map_err(Error::io(path))
}

fn invalid(path: &Path, why: &'static str) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, why),
    }
}

/// A committed swap, as its marker records it.
#[derive(Debug, PartialEq, Eq)]
struct Swap {
    /// Names in the directory to keep as `<name>.bak`.
    backups: Vec<String>,
    /// Names of repaired segments to move in from `<name>.repaired`.
    installs: Vec<String>,
}

impl Swap {
    fn encode(&self) -> Vec<u8> {
        let mut text = format!("{MAGIC}\n");
        for name in &self.backups {
            let _ = writeln!(text, "backup {name}");
        }
        for name in &self.installs {
            let _ = writeln!(text, "install {name}");
        }
        let crc = crc32fast::hash(text.as_bytes());
        let _ = writeln!(text, "crc32 {crc:08x}");
        text.into_bytes()
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Swap, &'static str> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text")?;
        let body_end = (text.strip_suffix('\n'))
            .and_then(|t| t.rfind('\n'))
            .map(|i| i + 1)
            .ok_or("no checksum line")?;
        let (body, crc_line) = text.split_at(body_end);
        let crc = crc32fast::hash(body.as_bytes());
        if crc_line != format!("crc32 {crc:08x}\n") {
            return Err("its checksum does not match its contents");
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a repair marker");
        }
        let mut swap = Swap {
            backups: Vec::new(),
            installs: Vec::new(),
        };
        for line in lines {
            match line.split_once(' ') {
                Some(("backup", name)) if is_backup_name(name) => {
                    swap.backups.push(name.to_owned())
                }
                Some(("install", name)) if SegmentId::parse(name).is_some() => {
                    swap.installs.push(name.to_owned())
                }
                _ => return Err("a line it cannot read"),
            }
        }
        Ok(swap)
    }

    fn load(storage: &dyn Storage, path: &Path) -> Result<Swap> {
        let file = storage
            .open(path, crate::storage::OpenMode::Read)
            .map_err(Error::io(path))?;
        let len = file.len().map_err(Error::io(path))?;
        if len > MAX_MARKER {
            return Err(invalid(path, "too long to be a repair marker"));
        }
        let mut bytes = vec![0; len as usize];
        let read = crate::storage::read_up_to(&*file, &mut bytes, 0).map_err(Error::io(path))?;
        bytes.truncate(read);
        Swap::decode(&bytes).map_err(|why| Error::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, why),
        })
    }

    /// Completes the swap from wherever it stopped, then removes the
    /// marker. Each rename is skipped once done.
    fn finish(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        for name in &self.backups {
            let from = dir.join(name);
            let to = dir.join(format!("{name}{BACKUP}"));
            if kind(storage, &from)? == PathKind::File && kind(storage, &to)? == PathKind::Missing {
                storage.rename(&from, &to).map_err(Error::io(&from))?;
            }
        }
        for name in &self.installs {
            let from = dir.join(format!("{name}{STAGED}"));
            let to = dir.join(name);
            if kind(storage, &from)? != PathKind::File {
                continue;
            }
            if kind(storage, &to)? != PathKind::Missing {
                // Only a hand in the directory between two runs can do this.
                return Err(Error::Io {
                    path: to,
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "an interrupted repair cannot move the repaired segment here",
                    ),
                });
            }
            storage.rename(&from, &to).map_err(Error::io(&from))?;
        }
        storage.sync_dir(dir).map_err(Error::io(dir))?;
        let marker = dir.join(REPAIR_MARKER);
        storage.remove_file(&marker).map_err(Error::io(&marker))?;
        storage.sync_dir(dir).map_err(Error::io(dir))?;
        tracing::info!(dir = %dir.display(), "finished an in-place repair");
        Ok(())
    }
}

/// Whether a marker's `backup` line names something a repair backs up.
fn is_backup_name(name: &str) -> bool {
    name == RECORD_FILE || SegmentId::parse(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_encodes_decodes_and_refuses_damage() {
        let swap = Swap {
            backups: vec!["00000000000000000001.wal".into(), RECORD_FILE.to_owned()],
            installs: vec!["00000000000000000001.wal".into()],
        };
        let bytes = swap.encode();
        assert_eq!(Swap::decode(&bytes), Ok(swap));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(Swap::decode(&bad).is_err(), "byte {i}");
            assert!(Swap::decode(&bytes[..i]).is_err(), "cut at {i}");
        }
        let hostile = Swap {
            backups: vec!["../etc/passwd".into()],
            installs: vec![],
        };
        assert!(Swap::decode(&hostile.encode()).is_err());
    }
}
