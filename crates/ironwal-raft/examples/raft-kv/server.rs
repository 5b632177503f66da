//! A node: serves Raft's messages and the clients' requests, each
//! connection in its own task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ironwal_raft::kv::{KvStateMachine, KvTypeConfig};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::net::TcpListener;

use crate::rpc::{Conn, Request, Response, Status};

pub struct Node {
    pub raft: Raft<KvTypeConfig>,
    pub kv: KvStateMachine,
    pub recovered_entries: u64,
    pub recovered: String,
    /// The index of the last entry the log held at start.
    pub recovered_last_index: Option<u64>,
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

impl Node {
    /// Whether this node's state machine has caught up with what its log
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

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Request::Init(members) => {
                let nodes: BTreeMap<u64, BasicNode> = members
                    .into_iter()
                    .map(|(id, addr)| (id, BasicNode { addr }))
                    .collect();
                Response::Init(self.raft.initialize(nodes).await.map_err(|e| e.to_string()))
            }
            Request::Write(write) => match self.raft.client_write(write).await {
                Ok(written) => Response::Written {
                    index: written.log_id.index,
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                    Response::NotLeader {
                        leader: to.leader_id.zip(to.leader_node),
                    }
                }
                Err(e) => Response::Failed(e.to_string()),
            },
            Request::Get(key) => match self.raft.ensure_linearizable().await {
                Ok(_) => match self.caught_up().await {
                    Ok(()) => Response::Value(self.kv.get(&key)),
                    Err(e) => Response::Failed(e),
                },
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                    Response::NotLeader {
                        leader: to.leader_id.zip(to.leader_node),
                    }
                }
                Err(e) => Response::Failed(e.to_string()),
            },
            Request::Read(keys) => Response::Values(keys.iter().map(|k| self.kv.get(k)).collect()),
            Request::Status => {
                let m = self.raft.metrics().borrow().clone();
                Response::Status(Status {
                    id: m.id,
                    state: format!("{:?}", m.state),
                    term: m.current_term,
                    leader: m.current_leader,
                    last_log_index: m.last_log_index,
                    last_applied_index: m.last_applied.map(|id| id.index),
                    keys: self.kv.len(),
                    recovered_entries: self.recovered_entries,
                    recovered: self.recovered.clone(),
                })
            }
        }
    }
}
