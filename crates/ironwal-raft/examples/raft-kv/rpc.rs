//! The wire protocol: one JSON object per line over TCP, a request then its
//! response, on a connection that carries any number of them in turn.

use std::collections::BTreeMap;

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// What a node is asked: Raft's messages between nodes (each for one Raft
/// group of the node; there is one group unless the node runs sharded),
/// and the clients'. Clients name keys, not groups: a node sends each key
/// to the group it hashes to.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(u64, AppendEntriesRequest<KvTypeConfig>),
    Vote(u64, VoteRequest<u64>),
    InstallSnapshot(u64, InstallSnapshotRequest<KvTypeConfig>),
    /// Make these nodes the cluster of every group (sent to one node, once).
    Init(BTreeMap<u64, String>),
    /// A write, accepted by the leader only.
    Write(KvRequest),
    /// Values of keys in this node's state machine (no leader check).
    Read(Vec<String>),
    /// A key's value, linearizable: answered by the leader only, once it
    /// has confirmed it still leads and applied every write before the read.
    Get(String),
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Init(Result<(), String>),
    /// The write is committed and applied, at this log index.
    Written {
        index: u64,
    },
    /// Not the leader; ask this one (if known).
    NotLeader {
        leader: Option<(u64, BasicNode)>,
    },
    Failed(String),
    Values(Vec<Option<String>>),
    /// The answer to a `Get`.
    Value(Option<String>),
    Status(Status),
}

/// A node's view of the cluster (of its first Raft group, and the leader
/// and last log index of each group).
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub keys: usize,
    /// What the log store recovered from its ironwal log at start.
    pub recovered_entries: u64,
    pub recovered: String,
    /// Each Raft group's leader, in group order.
    #[serde(default)]
    pub leaders: Vec<Option<u64>>,
    /// Each Raft group's last log index, in group order.
    #[serde(default)]
    pub last_log_indexes: Vec<Option<u64>>,
}

/// One end of a connection.
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        Conn {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
        }
    }

    pub async fn connect(addr: &str) -> std::io::Result<Self> {
        Ok(Conn::new(TcpStream::connect(addr).await?))
    }

    pub async fn send<T: Serialize>(&mut self, message: &T) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(message)?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await
    }

    /// The next message; `None` when the peer closed the connection.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> std::io::Result<Option<T>> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&self.line)?))
    }

    /// Sends a request and waits for its response.
    pub async fn call(&mut self, request: &Request) -> std::io::Result<Response> {
        self.send(request).await?;
        self.recv().await?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
        })
    }
}
