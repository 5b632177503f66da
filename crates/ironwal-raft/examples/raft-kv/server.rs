//! A node: serves Raft's messages and the clients' requests, each
//! connection in its own task.

use std::collections::BTreeMap;
use std::sync::Arc;

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
                Ok(_) => Response::Value(self.kv.get(&key)),
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
