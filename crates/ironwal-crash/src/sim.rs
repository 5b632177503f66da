//! A simulated file system that can lose power.
//!
//! Every file has a *durable* image (what is on the platter) and an ordered
//! list of writes not yet synced; reads see both. `sync_data` makes a file's
//! pending writes durable. Creating, renaming and removing a name becomes
//! durable only when its directory is synced. A crash keeps the durable
//! state and, of each pending write, cuts it into sectors and keeps, drops
//! or (in the garbling mode) garbles each sector independently; a hole
//! before a kept sector reads as zeros. Faults (EIO, short writes, ENOSPC,
//! failing fsyncs) can be injected at chosen operations.
//!
//! Directories themselves are created durably at once: ironwal never
//! relies on a directory it created surviving a crash before its first
//! segment is synced into it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::storage::{DirLock, OpenMode, PathKind, Storage, StorageFile};
use parking_lot::Mutex;

use crate::rng::Rng;

/// How a crash treats the writes that were not yet synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Each 512-byte sector of an unsynced write is kept or dropped.
    Sectors512,
    /// Each 4096-byte sector of an unsynced write is kept or dropped.
    Sectors4096,
    /// Each 512-byte sector is kept, dropped or filled with garbage.
    Garble512,
}

impl CrashMode {
    /// Every mode, for picking one at random.
    pub const ALL: [CrashMode; 3] = [
        CrashMode::Sectors512,
        CrashMode::Sectors4096,
        CrashMode::Garble512,
    ];

    fn sector(self) -> u64 {
        match self {
            CrashMode::Sectors4096 => 4096,
            CrashMode::Sectors512 | CrashMode::Garble512 => 512,
        }
    }
}

/// The kinds of operation a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `write_all_at`.
    Write,
    /// `read_at`.
    Read,
    /// `sync_data`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// Opening a file with `CreateNew`.
    Create,
    /// `set_len` (truncating or extending a file).
    SetLen,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails with EIO and has no effect. For `Sync` the pending
    /// writes are also dropped from the durable future, as Linux does after
    /// a failed fsync: they stay visible to reads but will not survive.
    Eio,
    /// A write stores the first half of its bytes, then fails with EIO.
    ShortWrite,
    /// The call fails with ENOSPC (a write stores nothing).
    NoSpace,
}

/// A file system image as a crash left it.
#[derive(Clone, Debug, Default)]
pub struct Image {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Image {
    /// The files of the image and their bytes.
    pub fn files(&self) -> &BTreeMap<PathBuf, Vec<u8>> {
        &self.files
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct SimFile {
    durable: Vec<u8>,
    pending: Vec<Pending>,
    current: Vec<u8>,
}

impl SimFile {
    fn apply(bytes: &mut Vec<u8>, op: &Pending) {
        match op {
            Pending::Write { offset, data } => write_at(bytes, *offset, data),
            Pending::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }
}

fn write_at(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

type FileId = u64;

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    /// Names as the running program sees them.
    names: BTreeMap<PathBuf, FileId>,
    /// Names as they would be after a crash.
    durable_names: BTreeMap<PathBuf, FileId>,
    files: HashMap<FileId, SimFile>,
    next_id: FileId,
    locks: BTreeSet<PathBuf>,
    /// Storage operations performed so far.
    ops: u64,
    /// Crash when `ops` reaches this count: take the image, then fail every
    /// operation, as a machine that lost power would.
    crash_at: Option<(u64, CrashMode, u64)>,
    image: Option<Image>,
    dead: bool,
    faults: Vec<(FaultOp, u64, FaultKind)>,
    counts: HashMap<FaultOp, u64>,
    /// fdatasync does nothing: for proving a harness notices lost data.
    ignore_syncs: bool,
    /// Bytes all files together may hold (ENOSPC beyond).
    space_limit: Option<u64>,
    syncs: u64,
}

/// A simulated file system; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimHandle {
    state: Arc<Mutex<State>>,
    id: FileId,
    writable: bool,
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.dir);
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl SimStorage {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file system holding exactly what a crash left.
    pub fn from_image(image: &Image) -> Self {
        let sim = SimStorage::new();
        {
            let mut st = sim.state.lock();
            st.dirs = image.dirs.clone();
            for (path, bytes) in &image.files {
                let id = st.next_id;
                st.next_id += 1;
                let file = SimFile {
                    durable: bytes.clone(),
                    pending: Vec::new(),
                    current: bytes.clone(),
                };
                st.files.insert(id, file);
                st.names.insert(path.clone(), id);
                st.durable_names.insert(path.clone(), id);
            }
        }
        sim
    }

    /// Makes `fdatasync` a no-op (writes stay unsynced): a harness run on
    /// such a storage must find lost acknowledged writes.
    pub fn ignore_syncs(&self, ignore: bool) {
        self.state.lock().ignore_syncs = ignore;
    }

    /// Whether fdatasync is a no-op.
    pub fn ignores_syncs(&self) -> bool {
        self.state.lock().ignore_syncs
    }

    /// Makes the `nth` (1-based, counted from now) call of `op` fail with `kind`.
    pub fn inject(&self, op: FaultOp, nth: u64, kind: FaultKind) {
        let mut st = self.state.lock();
        let at = st.counts.get(&op).copied().unwrap_or(0) + nth;
        st.faults.push((op, at, kind));
    }

    /// Loses power when the storage has served `ops` operations in all
    /// (counted from its creation); see [`SimStorage::crash_image`].
    pub fn crash_at_op(&self, ops: u64, mode: CrashMode, seed: u64) {
        self.state.lock().crash_at = Some((ops, mode, seed));
    }

    /// Loses power now: every later operation fails; returns the image.
    pub fn crash_now(&self, mode: CrashMode, seed: u64) -> Image {
        let mut st = self.state.lock();
        if let Some(image) = &st.image {
            return image.clone();
        }
        let image = st.crash(mode, seed);
        st.image = Some(image.clone());
        st.dead = true;
        image
    }

    /// The image of the crash that happened (by `crash_at_op` or
    /// `crash_now`), if one did.
    pub fn crash_image(&self) -> Option<Image> {
        self.state.lock().image.clone()
    }

    /// Limits the bytes all files together may hold: a write that would
    /// pass the limit stores what fits, then fails with ENOSPC.
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.state.lock().space_limit = bytes;
    }

    /// Operations served so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// fdatasync calls served so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// What every file holds now, as the running program sees it.
    pub fn snapshot(&self) -> Image {
        let st = self.state.lock();
        let files = st
            .names
            .iter()
            .map(|(path, id)| (path.clone(), st.files[id].current.clone()))
            .collect();
        Image {
            dirs: st.dirs.clone(),
            files,
        }
    }
}

impl State {
    /// Counts an operation; fails it if the machine is down, crashes it if
    /// this is the planned moment, or returns an injected fault.
    fn enter(&mut self, op: Option<FaultOp>) -> io::Result<Option<FaultKind>> {
        if self.dead {
            return Err(eio());
        }
        self.ops += 1;
        if let Some((at, mode, seed)) = self.crash_at {
            if self.ops >= at {
                let image = self.crash(mode, seed);
                self.image = Some(image);
                self.dead = true;
                return Err(eio());
            }
        }
        let Some(op) = op else { return Ok(None) };
        let count = self.counts.entry(op).or_insert(0);
        *count += 1;
        let count = *count;
        let hit = self
            .faults
            .iter()
            .position(|(o, at, _)| *o == op && *at == count);
        Ok(hit.map(|i| self.faults.swap_remove(i).2))
    }

    fn crash(&self, mode: CrashMode, seed: u64) -> Image {
        let mut rng = Rng::new(seed);
        let sector = mode.sector();
        // Per crash, either a random prefix of the pending sectors survives
        // (in-order write-back) or each survives independently.
        let in_order = rng.below(2) == 0;
        let keep_p = [0.0, 0.25, 0.5, 0.75, 1.0][rng.below(5) as usize];
        let mut files = BTreeMap::new();
        for (path, id) in &self.durable_names {
            let file = &self.files[id];
            let mut bytes = file.durable.clone();
            let pieces: usize = file
                .pending
                .iter()
                .map(|p| pieces_of(p, sector).len())
                .sum();
            let cut = rng.below(pieces as u64 + 1) as usize;
            let mut index = 0;
            for op in &file.pending {
                for piece in pieces_of(op, sector) {
                    let keep = if in_order {
                        index < cut
                    } else {
                        rng.chance(keep_p)
                    };
                    index += 1;
                    match (&piece, keep) {
                        (_, false) => {}
                        (Pending::Write { offset, data }, true)
                            if mode == CrashMode::Garble512 && rng.below(4) == 0 =>
                        {
                            let garbage: Vec<u8> =
                                (0..data.len()).map(|_| rng.next_u64() as u8).collect();
                            write_at(&mut bytes, *offset, &garbage);
                        }
                        (piece, true) => SimFile::apply(&mut bytes, piece),
                    }
                }
            }
            files.insert(path.clone(), bytes);
        }
        Image {
            dirs: self.dirs.clone(),
            files,
        }
    }

    fn file(&mut self, id: FileId) -> &mut SimFile {
        self.files.entry(id).or_default()
    }

    fn total_bytes(&self) -> u64 {
        self.names
            .values()
            .map(|id| self.files[id].current.len() as u64)
            .sum()
    }
}

/// Cuts a pending operation into sector-aligned pieces (a length change is
/// one piece).
fn pieces_of(op: &Pending, sector: u64) -> Vec<Pending> {
    match op {
        Pending::SetLen(_) => vec![op.clone()],
        Pending::Write { offset, data } => {
            let mut pieces = Vec::new();
            let end = offset + data.len() as u64;
            let mut at = *offset;
            while at < end {
                let next = ((at / sector) + 1) * sector;
                let stop = next.min(end);
                let slice = &data[(at - offset) as usize..(stop - offset) as usize];
                pieces.push(Pending::Write {
                    offset: at,
                    data: slice.to_vec(),
                });
                at = stop;
            }
            pieces
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.enter(None)?;
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            st.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.state.lock();
        st.enter(None)?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let children = st.names.keys().chain(st.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        let mut st = self.state.lock();
        st.enter(None)?;
        Ok(if st.dirs.contains(path) {
            PathKind::Dir
        } else if st.names.contains_key(path) {
            PathKind::File
        } else {
            PathKind::Missing
        })
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.state.lock();
        let fault = st.enter((mode == OpenMode::CreateNew).then_some(FaultOp::Create))?;
        if let Some(kind) = fault {
            return Err(if kind == FaultKind::NoSpace {
                enospc()
            } else {
                eio()
            });
        }
        if !path.parent().is_some_and(|p| st.dirs.contains(p)) {
            return Err(not_found(path));
        }
        let id = match (mode, st.names.get(path).copied()) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"))
            }
            (OpenMode::CreateNew, None) => {
                let id = st.next_id;
                st.next_id += 1;
                st.files.insert(id, SimFile::default());
                st.names.insert(path.to_path_buf(), id);
                id
            }
            (_, Some(id)) => id,
            (_, None) => return Err(not_found(path)),
        };
        Ok(Arc::new(SimHandle {
            state: Arc::clone(&self.state),
            id,
            writable: mode != OpenMode::Read,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.enter(None)?;
        st.names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.enter(None)?;
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.enter(Some(FaultOp::SyncDir))?.is_some() {
            return Err(eio());
        }
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let now: Vec<_> = st
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        st.durable_names.extend(now);
        Ok(())
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        let mut st = self.state.lock();
        st.enter(None)?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if !st.locks.insert(dir.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            state: Arc::clone(&self.state),
            dir: dir.to_path_buf(),
        })))
    }
}

impl StorageFile for SimHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.state.lock();
        if st.enter(Some(FaultOp::Read))?.is_some() {
            return Err(eio());
        }
        let data = &st.file(self.id).current;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only handle",
            ));
        }
        let mut st = self.state.lock();
        let fault = st.enter(Some(FaultOp::Write))?;
        let (mut data, mut error) = match fault {
            None => (buf, None),
            Some(FaultKind::Eio) => return Err(eio()),
            Some(FaultKind::NoSpace) => return Err(enospc()),
            Some(FaultKind::ShortWrite) => (&buf[..buf.len() / 2], Some(eio())),
        };
        if let Some(limit) = st.space_limit {
            let len = st.file(self.id).current.len() as u64;
            let growth = (offset + data.len() as u64).saturating_sub(len);
            let room = limit.saturating_sub(st.total_bytes());
            if growth > room {
                let fits = (len + room).saturating_sub(offset).min(data.len() as u64);
                data = &data[..fits as usize];
                error = Some(enospc());
            }
        }
        if !data.is_empty() {
            let file = st.file(self.id);
            write_at(&mut file.current, offset, data);
            file.pending.push(Pending::Write {
                offset,
                data: data.to_vec(),
            });
        }
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        let fault = st.enter(Some(FaultOp::Sync))?;
        st.syncs += 1;
        if st.ignore_syncs {
            return Ok(());
        }
        let file = st.file(self.id);
        let pending = std::mem::take(&mut file.pending);
        if fault.is_some() {
            // Linux marks the pages clean after a failed writeback: the data
            // stays readable but never reaches the disk.
            return Err(eio());
        }
        for op in &pending {
            SimFile::apply(&mut file.durable, op);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only handle",
            ));
        }
        let mut st = self.state.lock();
        if st.enter(Some(FaultOp::SetLen))?.is_some() {
            return Err(eio());
        }
        let file = st.file(self.id);
        file.current.resize(len as usize, 0);
        file.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.enter(None)?;
        Ok(st.file(self.id).current.len() as u64)
    }
}
