//! The cluster under test: `raft-kv` node processes on loopback, and the
//! faults done to them: SIGKILL and restart, SIGSTOP/SIGCONT, and power
//! loss, which tears what a node wrote after the last fdatasync of each
//! segment (the node's journal says which bytes each fdatasync covered;
//! see `raft-kv/journal.rs`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ironwal::storage::{FsStorage, OpenMode, Storage, StorageFile};
use ironwal_testkit::Rng;
use rustix::process::{kill_process, Pid, Signal};

use crate::journal::data_end;
use crate::rpc::{Conn, Request, Response, Status};

/// How one node is doing.
enum Life {
    Up(Child),
    Paused(Child),
    Down,
}

struct Node {
    id: u64,
    addr: String,
    dir: PathBuf,
    journal: PathBuf,
    stderr: PathBuf,
    life: Life,
    /// Per file name, how far its bytes are known durable (carried across
    /// the node's lives, from its journals).
    durable: HashMap<String, u64>,
}

/// What the faults did, for the summary.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub kills: u64,
    pub leader_kills: u64,
    pub torn_tails: u64,
    pub torn_bytes: u64,
    pub pauses: u64,
    pub power_losses: u64,
    pub restarts: u64,
}

pub struct Cluster {
    bin: PathBuf,
    segment_size: u64,
    lying_fsync: bool,
    nodes: Vec<Node>,
    pub faults: FaultCounts,
}

impl Cluster {
    /// Starts `size` nodes with their logs under `root`, in segments of
    /// `segment_size` bytes.
    pub fn start(
        bin: &Path,
        root: &Path,
        size: u64,
        segment_size: u64,
        lying_fsync: bool,
    ) -> io::Result<Cluster> {
        let mut nodes = Vec::new();
        for id in 1..=size {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            nodes.push(Node {
                id,
                addr: listener.local_addr()?.to_string(),
                dir: root.join(format!("node-{id}")),
                journal: root.join(format!("node-{id}.journal")),
                stderr: root.join(format!("node-{id}.stderr")),
                life: Life::Down,
                durable: HashMap::new(),
            });
        }
        let mut cluster = Cluster {
            bin: bin.to_path_buf(),
            segment_size,
            lying_fsync,
            nodes,
            faults: FaultCounts::default(),
        };
        for id in 1..=size {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    pub fn size(&self) -> u64 {
        self.nodes.len() as u64
    }

    pub fn addr(&self, id: u64) -> &str {
        &self.node(id).addr
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn dir(&self, id: u64) -> &Path {
        &self.node(id).dir
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// The nodes that are down or paused.
    pub fn impaired(&self) -> Vec<u64> {
        let up = |n: &&Node| matches!(n.life, Life::Up(_));
        self.nodes.iter().filter(|n| !up(n)).map(|n| n.id).collect()
    }

    pub fn is_up(&self, id: u64) -> bool {
        matches!(self.node(id).life, Life::Up(_))
    }

    fn spawn(&mut self, id: u64) -> io::Result<()> {
        let node = self.node(id);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.stderr)?;
        let mut command = Command::new(&self.bin);
        command
            .args(["node", "--id", &id.to_string(), "--addr", &node.addr])
            .arg("--dir")
            .arg(&node.dir)
            .arg("--journal")
            .arg(&node.journal)
            .args(["--max-segment-size", &self.segment_size.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if self.lying_fsync {
            command.arg("--lying-fsync");
        }
        let child = command.spawn()?;
        self.node_mut(id).life = Life::Up(child);
        Ok(())
    }

    /// SIGKILLs node `id` (paused or not); with `tear`, then loses power
    /// under it: what it wrote after its last fdatasync is torn at a random
    /// point.
    pub fn kill(&mut self, id: u64, tear: bool, rng: &mut Rng) -> io::Result<()> {
        let node = self.node_mut(id);
        if let Life::Up(mut child) | Life::Paused(mut child) =
            std::mem::replace(&mut node.life, Life::Down)
        {
            child.kill()?;
            child.wait()?;
        }
        self.faults.kills += 1;
        let node = self.node_mut(id);
        node.read_journal()?;
        if tear {
            let torn = node.tear_unsynced(rng)?;
            self.faults.torn_tails += u64::from(torn > 0);
            self.faults.torn_bytes += torn;
        }
        Ok(())
    }

    /// Starts node `id` again if it is down, resumes it if it is paused.
    pub fn heal(&mut self, id: u64) -> io::Result<()> {
        let node = self.node_mut(id);
        match std::mem::replace(&mut node.life, Life::Down) {
            Life::Paused(child) => {
                signal(&child, Signal::CONT)?;
                node.life = Life::Up(child);
                Ok(())
            }
            Life::Up(child) => {
                node.life = Life::Up(child);
                Ok(())
            }
            Life::Down => {
                self.faults.restarts += 1;
                self.spawn(id)
            }
        }
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: u64) -> io::Result<()> {
        let node = self.node_mut(id);
        if let Life::Up(child) = std::mem::replace(&mut node.life, Life::Down) {
            signal(&child, Signal::STOP)?;
            node.life = Life::Paused(child);
            self.faults.pauses += 1;
        }
        Ok(())
    }

    /// A node that exited on its own (it failed to start or crashed), with
    /// the end of its stderr.
    pub fn exited(&mut self) -> Option<(u64, String)> {
        for node in &mut self.nodes {
            if let Life::Up(child) = &mut node.life {
                if let Ok(Some(status)) = child.try_wait() {
                    node.life = Life::Down;
                    let log = std::fs::read_to_string(&node.stderr).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Some((node.id, format!("{status}: {}", tail.join("\n"))));
                }
            }
        }
        None
    }

    /// Stops every node (SIGKILL; the page cache keeps what they wrote).
    pub fn stop_all(&mut self) -> io::Result<()> {
        for node in &mut self.nodes {
            if let Life::Up(mut child) | Life::Paused(mut child) =
                std::mem::replace(&mut node.life, Life::Down)
            {
                child.kill()?;
                child.wait()?;
            }
        }
        Ok(())
    }

    /// The leader most nodes that answer agree on, if any.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for node in &self.nodes {
            if !matches!(node.life, Life::Up(_)) {
                continue;
            }
            if let Some(status) = status(&node.addr).await {
                if status.state == "Leader" && best.is_none_or(|(term, _)| status.term > term) {
                    best = Some((status.term, status.id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Every node's status (`None` for a node that does not answer).
    pub async fn statuses(&self) -> Vec<Option<Status>> {
        let mut all = Vec::new();
        for node in &self.nodes {
            all.push(status(&node.addr).await);
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

/// A node's status, within a second.
pub async fn status(addr: &str) -> Option<Status> {
    let ask = async { Conn::connect(addr).await?.call(&Request::Status).await };
    match tokio::time::timeout(Duration::from_secs(1), ask).await {
        Ok(Ok(Response::Status(status))) => Some(status),
        _ => None,
    }
}

fn signal(child: &Child, signal: Signal) -> io::Result<()> {
    let pid = Pid::from_raw(child.id() as i32).ok_or(io::ErrorKind::InvalidInput)?;
    kill_process(pid, signal).map_err(io::Error::from)
}

impl Node {
    /// Folds the journal of the life that just ended into `durable`, then
    /// removes it (the next life starts a new one).
    fn read_journal(&mut self) -> io::Result<()> {
        let text = match std::fs::read_to_string(&self.journal) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut names: HashMap<u64, String> = HashMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["open", id, name, mode] => {
                    let Ok(id) = id.parse() else { continue };
                    names.insert(id, name.to_owned());
                    if mode == "new" {
                        self.durable.insert(name.to_owned(), 0);
                    }
                }
                ["rename", from, to] => {
                    for name in names.values_mut().filter(|n| *n == from) {
                        *name = to.to_owned();
                    }
                    match self.durable.remove(from) {
                        Some(end) => self.durable.insert(to.to_owned(), end),
                        None => self.durable.remove(to),
                    };
                }
                ["remove", name] => {
                    names.retain(|_, n| n != name);
                    self.durable.remove(name);
                }
                ["sync", id, end] => {
                    let (Ok(id), Ok(end)) = (id.parse::<u64>(), end.parse::<u64>()) else {
                        continue;
                    };
                    if let Some(name) = names.get(&id) {
                        let known = self.durable.entry(name.clone()).or_insert(0);
                        *known = (*known).max(end);
                    }
                }
                // A line cut short by the kill: it is written after its
                // event returned to ironwal, so a line that is not whole
                // notes a call ironwal had not seen succeed.
                _ => {}
            }
        }
        std::fs::remove_file(&self.journal)
    }

    /// Loses power under the node: in every segment, from a random point
    /// at or after where its durable bytes end to where its data ends, the
    /// bytes are lost (read as zeros), the first few maybe as garbage. A
    /// correct log has unsynced bytes only in its newest segment or two (a
    /// segment whose seal was pending at a rotation). Returns the bytes
    /// torn.
    fn tear_unsynced(&mut self, rng: &mut Rng) -> io::Result<u64> {
        let segments: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.ends_with(".wal"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut torn = 0;
        for name in segments {
            let file = FsStorage.open(&self.dir.join(&name), OpenMode::ReadWrite)?;
            let end = data_end(&*file)?;
            let durable = self.durable.get(&name).copied().unwrap_or(0).min(end);
            let durable = skip_zeros(&*file, durable, end)?;
            let from = durable + rng.below(end - durable + 1);
            if from == end {
                continue;
            }
            let mut lost = vec![0u8; (end - from) as usize];
            if rng.one_in(2) {
                // A sector that was being written when power went.
                let garbage = lost.len().min(1 + rng.below(512) as usize);
                lost[..garbage].copy_from_slice(&rng.bytes(garbage));
            }
            file.write_all_at(&lost, from)?;
            file.sync_data()?;
            torn += end - from;
        }
        Ok(torn)
    }
}

/// The first byte at or after `from` that is not zero (`to` if none up to
/// there): where a torn tail may start. Zeros right after a durable mark
/// can be the synced end of an entry (a vote ends in a zero byte), which a
/// mark taken from `data_end` leaves out.
fn skip_zeros(file: &dyn StorageFile, from: u64, to: u64) -> io::Result<u64> {
    let mut at = from;
    let mut chunk = vec![0u8; 4096];
    while at < to {
        let len = chunk.len().min((to - at) as usize);
        let n = file.read_at(&mut chunk[..len], at)?;
        if n == 0 {
            return Ok(to);
        }
        if let Some(first) = chunk[..n].iter().position(|&b| b != 0) {
            return Ok(at + first as u64);
        }
        at += n as u64;
    }
    Ok(to)
}
