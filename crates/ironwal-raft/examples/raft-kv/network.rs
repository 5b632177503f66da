//! openraft's network: one TCP connection per peer, reconnected on failure.

use std::time::Duration;

use ironwal_raft::kv::KvTypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::rpc::{Conn, Request, Response};

/// The network of one Raft group: its messages name the group.
pub struct Network {
    pub group: u64,
}

impl RaftNetworkFactory<KvTypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            group: self.group,
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

pub struct Peer {
    group: u64,
    target: u64,
    addr: String,
    conn: Option<Conn>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Peer {
    /// Sends `request`; a connection that fails is dropped and the peer
    /// reported unreachable, so openraft backs off before retrying.
    async fn call<E: std::error::Error>(
        &mut self,
        request: Request,
        ttl: Duration,
    ) -> Result<Response, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        let attempt = async {
            let conn = match &mut self.conn {
                Some(conn) => conn,
                empty => empty.insert(Conn::connect(&self.addr).await?),
            };
            conn.call(&request).await
        };
        match tokio::time::timeout(ttl, attempt).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.conn = None;
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(elapsed) => {
                self.conn = None;
                Err(RPCError::Network(NetworkError::new(&elapsed)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(
        response: Response,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        let e = std::io::Error::other(format!("unexpected response {response:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<KvTypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KvTypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self
            .call(Request::AppendEntries(self.group, rpc), option.hard_ttl())
            .await?
        {
            Response::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KvTypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self
            .call(Request::InstallSnapshot(self.group, rpc), option.hard_ttl())
            .await?
        {
            Response::InstallSnapshot(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        match self
            .call(Request::Vote(self.group, rpc), option.hard_ttl())
            .await?
        {
            Response::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(Self::unexpected(other)),
        }
    }
}
