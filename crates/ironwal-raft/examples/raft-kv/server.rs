//! A node: serves Raft's messages and the clients' requests, each
//! connection in its own task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ironwal_raft::kv::{KvRequest, KvStateMachine, KvTypeConfig};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::net::TcpListener;

use crate::rpc::{Conn, Request, Response, Status};

/// One Raft group of a node: a shard of the keys.
pub struct Shard {
    pub raft: Raft<KvTypeConfig>,
    pub kv: KvStateMachine,
    /// The index of the last entry the group's log held at start.
    pub recovered_last_index: Option<u64>,
}

pub struct Node {
    /// One, or (sharded) one per group, keys hashed over them.
    pub shards: Vec<Shard>,
    pub recovered_entries: u64,
    pub recovered: String,
}

/// The group of `key`: FNV-1a of its bytes, modulo the groups.
pub fn group_of(key: &str, groups: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % groups.max(1) as u64) as usize
}

pub async fn serve(listener: TcpListener, node: Arc<Node>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            let mut conn = Conn::new(stream);
            // Any error ends this connection only; the peer reconnects.
            while let Ok(Some(request)) = conn.recv::<Request>().await {
                let response = node.handle(request).await;
                if conn.send(&response).await.is_err() {
                    break;
                }
            }
        });
    }
}

impl Shard {
    /// Whether this group's state machine has caught up with what its log
    /// held at start.
    ///
    /// The state machine lives in memory, so a restart takes it back to the
    /// committed id the log recorded, which may lag what the node applied
    /// (and answered) before: openraft saves it without waiting for it to
    /// be durable. A leader that openraft restores at start (its vote was
    /// committed) answers `ensure_linearizable` from that old commit, which
    /// would let a read see a state older than a write it acknowledged
    /// before the restart (the chaos test caught this). Every entry this
    /// node acknowledged is in the log it recovered, so waiting until the
    /// state machine has applied that log's last index closes the gap.
    async fn caught_up(&self) -> Result<(), String> {
        let Some(last) = self.recovered_last_index else {
            return Ok(());
        };
        self.raft
            .wait(Some(Duration::from_secs(1)))
            .applied_index_at_least(Some(last), "applied what the log held at start")
            .await
            .map(drop)
            .map_err(|e| format!("not caught up with the log recovered at start: {e}"))
    }

    async fn write(&self, write: KvRequest) -> Response {
        match self.raft.client_write(write).await {
            Ok(written) => Response::Written {
                index: written.log_id.index,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Response::NotLeader {
                    leader: to.leader_id.zip(to.leader_node),
                }
            }
            Err(e) => Response::Failed(e.to_string()),
        }
    }

    async fn get(&self, key: &str) -> Response {
        match self.raft.ensure_linearizable().await {
            Ok(_) => match self.caught_up().await {
                Ok(()) => Response::Value(self.kv.get(key)),
                Err(e) => Response::Failed(e),
            },
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Response::NotLeader {
                    leader: to.leader_id.zip(to.leader_node),
                }
            }
            Err(e) => Response::Failed(e.to_string()),
        }
    }
}

impl Node {
    fn shard(&self, key: &str) -> Option<&Shard> {
        self.shards.get(group_of(key, self.shards.len()))
    }

    fn group(&self, group: u64) -> Result<&Shard, String> {
        usize::try_from(group)
            .ok()
            .and_then(|g| self.shards.get(g))
            .ok_or_else(|| format!("no Raft group {group} here ({} groups)", self.shards.len()))
    }

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(group, rpc) => match self.group(group) {
                Ok(shard) => Response::AppendEntries(shard.raft.append_entries(rpc).await),
                Err(e) => Response::Failed(e),
            },
            Request::Vote(group, rpc) => match self.group(group) {
                Ok(shard) => Response::Vote(shard.raft.vote(rpc).await),
                Err(e) => Response::Failed(e),
            },
            Request::InstallSnapshot(group, rpc) => match self.group(group) {
                Ok(shard) => Response::InstallSnapshot(shard.raft.install_snapshot(rpc).await),
                Err(e) => Response::Failed(e),
            },
            Request::Init(members) => {
                let nodes: BTreeMap<u64, BasicNode> = members
                    .into_iter()
                    .map(|(id, addr)| (id, BasicNode { addr }))
                    .collect();
                for shard in &self.shards {
                    if let Err(e) = shard.raft.initialize(nodes.clone()).await {
                        return Response::Init(Err(e.to_string()));
                    }
                }
                Response::Init(Ok(()))
            }
            Request::Write(write) => {
                let key = match &write {
                    KvRequest::Set { key, .. } | KvRequest::Delete { key } => key.clone(),
                };
                match self.shard(&key) {
                    Some(shard) => shard.write(write).await,
                    None => Response::Failed("no Raft group".to_owned()),
                }
            }
            Request::Get(key) => match self.shard(&key) {
                Some(shard) => shard.get(&key).await,
                None => Response::Failed("no Raft group".to_owned()),
            },
            Request::Read(keys) => Response::Values(
                keys.iter()
                    .map(|k| self.shard(k).and_then(|shard| shard.kv.get(k)))
                    .collect(),
            ),
            Request::Status => self.status(),
        }
    }

    fn status(&self) -> Response {
        let metrics: Vec<_> = self
            .shards
            .iter()
            .map(|shard| shard.raft.metrics().borrow().clone())
            .collect();
        let Some(m) = metrics.first() else {
            return Response::Failed("no Raft group".to_owned());
        };
        Response::Status(Status {
            id: m.id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|id| id.index),
            keys: self.shards.iter().map(|shard| shard.kv.len()).sum(),
            recovered_entries: self.recovered_entries,
            recovered: self.recovered.clone(),
            leaders: metrics.iter().map(|m| m.current_leader).collect(),
            last_log_indexes: metrics.iter().map(|m| m.last_log_index).collect(),
        })
    }
}
