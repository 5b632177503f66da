//! raft-kv: a replicated key-value store, three nodes (or more) on one
//! machine, with ironwal as each node's Raft log.
//!
//! ```text
//! cargo build --release -p ironwal-raft --example raft-kv
//! bin=target/release/examples/raft-kv
//! $bin node --id 1 --addr 127.0.0.1:21001 --dir /tmp/raft-kv/1 &
//! $bin node --id 2 --addr 127.0.0.1:21002 --dir /tmp/raft-kv/2 &
//! $bin node --id 3 --addr 127.0.0.1:21003 --dir /tmp/raft-kv/3 &
//! $bin init --addr 127.0.0.1:21001 1=127.0.0.1:21001 2=127.0.0.1:21002 3=127.0.0.1:21003
//! $bin put --addr 127.0.0.1:21001 greeting hello
//! $bin get --addr 127.0.0.1:21002 greeting
//! $bin status --addr 127.0.0.1:21003
//! ```
//!
//! `put` and `get` go through the leader (following its hint once); `get`
//! is linearizable (openraft's `ensure_linearizable`).
//!
//! **Sharded:** `node --groups G` runs G Raft groups on every node, keys
//! hashed over them (each group elects its own leader: the node that
//! `init` reached leads them all at first, and a failover spreads them),
//! their logs in one ironwal
//! [`MultiLog`](ironwal_raft::MultiLog) per node, all groups sharing its
//! fsyncs. Every node of a cluster must run the same number of groups; a
//! directory written with one count reads back only with the same count. The chaos harness
//! (`examples/chaos`) starts nodes with `--journal`, to learn which bytes
//! each fdatasync made durable (`journal.rs`).
//!
//! The protocol is one JSON object per line over TCP (see `rpc.rs`). The
//! state machine lives in memory: a restarted node rebuilds it from its
//! ironwal log (openraft re-applies the committed entries), then catches
//! up from the leader. Snapshots are switched off, so the log is never
//! purged and a restart always replays it.

mod journal;
mod network;
mod rpc;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ironwal_raft::kv::{KvRequest, KvStateMachine, KvTypeConfig};
use ironwal_raft::{LogStore, MultiLog, MultiLogOptions, StoreOptions};
use openraft::{Config, Raft, SnapshotPolicy};
use tokio::net::TcpListener;

use crate::journal::JournalStorage;
use crate::rpc::{Conn, Request, Response};

#[derive(Parser)]
#[command(about = "A replicated key-value store on openraft and ironwal")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a node until killed.
    Node {
        #[arg(long)]
        id: u64,
        /// Address to listen on (loopback).
        #[arg(long)]
        addr: String,
        /// Directory of the node's ironwal log.
        #[arg(long)]
        dir: PathBuf,
        /// Notes which bytes each fdatasync made durable in this file, for
        /// the chaos harness (`journal.rs`).
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Breaks the node on purpose: fdatasync reports success without
        /// syncing. Only for proving that the chaos test catches it.
        #[arg(long, requires = "journal")]
        lying_fsync: bool,
        /// Size at which the log starts a new segment (default ironwal's,
        /// 64 MiB); the chaos harness makes it small so rotations happen.
        #[arg(long, value_name = "BYTES")]
        max_segment_size: Option<u64>,
        /// Raft groups (shards) on this node, keys hashed over them, their
        /// logs in one multi-log; 1 keeps one plain log.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
        groups: u64,
    },
    /// Makes the given nodes a cluster: `ID=ADDR` each.
    Init {
        #[arg(long)]
        addr: String,
        members: Vec<String>,
    },
    /// Sets a key, through the leader.
    Put {
        #[arg(long)]
        addr: String,
        key: String,
        value: String,
    },
    /// Reads a key, linearizably, through the leader.
    Get {
        #[arg(long)]
        addr: String,
        key: String,
    },
    /// Shows a node's view of the cluster.
    Status {
        #[arg(long)]
        addr: String,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    match Args::parse().command {
        Command::Node {
            id,
            addr,
            dir,
            journal,
            lying_fsync,
            max_segment_size,
            groups,
        } => {
            let mut wal = StoreOptions::default().wal;
            if let Some(size) = max_segment_size {
                wal.max_segment_size = size;
            }
            if let Some(journal) = journal {
                wal.storage = Arc::new(JournalStorage::new(&journal, lying_fsync)?);
            }
            run_node(id, &addr, dir, wal, groups).await
        }
        Command::Init { addr, members } => {
            let mut map = BTreeMap::new();
            for member in members {
                let (id, at) = member.split_once('=').ok_or("members are ID=ADDR")?;
                map.insert(id.parse()?, at.to_owned());
            }
            print(&addr, Request::Init(map)).await
        }
        Command::Put { addr, key, value } => {
            via_leader(&addr, || {
                Request::Write(KvRequest::Set {
                    key: key.clone(),
                    value: value.clone(),
                })
            })
            .await
        }
        Command::Get { addr, key } => via_leader(&addr, || Request::Get(key.clone())).await,
        Command::Status { addr } => print(&addr, Request::Status).await,
    }
}

/// Sends a request that only the leader answers, following the leader
/// hint once.
async fn via_leader(addr: &str, request: impl Fn() -> Request) -> Result<(), Error> {
    let response = Conn::connect(addr).await?.call(&request()).await?;
    if let Response::NotLeader {
        leader: Some((_, node)),
    } = response
    {
        return print(&node.addr, request()).await;
    }
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}

async fn print(addr: &str, request: Request) -> Result<(), Error> {
    let response = Conn::connect(addr).await?.call(&request).await?;
    println!("{}", serde_json::to_string(&response)?);
    Ok(())
}

/// Opens the node's log: one store, or one per group of a multi-log.
/// Returns the stores and what opening found.
fn open_logs(
    dir: &std::path::Path,
    wal: ironwal::Options,
    groups: u64,
) -> Result<(Vec<LogStore<KvTypeConfig>>, u64, String), Error> {
    if groups == 1 {
        let store = LogStore::open(dir, StoreOptions::default().wal(wal))?;
        let recovered = store.recovered();
        let (entries, text) = (recovered.entries, recovered.to_string());
        return Ok((vec![store], entries, text));
    }
    let log = MultiLog::open(dir, MultiLogOptions::default().wal(wal))?;
    let found = log.groups();
    if found.iter().any(|&g| g >= groups) {
        return Err(format!("the log holds groups {found:?}, more than --groups {groups}").into());
    }
    let recovered = log.recovered();
    let (entries, text) = (recovered.entries, recovered.to_string());
    Ok(((0..groups).map(|g| log.group(g)).collect(), entries, text))
}

async fn run_node(
    id: u64,
    addr: &str,
    dir: PathBuf,
    wal: ironwal::Options,
    groups: u64,
) -> Result<(), Error> {
    let (stores, recovered_entries, recovered) = open_logs(&dir, wal, groups)?;
    eprintln!("node {id}: recovered {recovered}");
    let config = Config {
        cluster_name: "raft-kv".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // The state machine is in memory: keep the whole log so a restart
        // rebuilds it from there.
        snapshot_policy: SnapshotPolicy::Never,
        max_payload_entries: 512,
        ..Config::default()
    }
    .validate()?;
    let config = Arc::new(config);
    let mut shards = Vec::with_capacity(stores.len());
    for (group, store) in (0..).zip(stores) {
        let kv = KvStateMachine::new();
        let recovered_last_index = store.recovered().last_log_id.map(|id| id.index);
        let network = network::Network { group };
        let raft = Raft::new(id, Arc::clone(&config), network, store, kv.clone()).await?;
        shards.push(server::Shard {
            raft,
            kv,
            recovered_last_index,
        });
    }
    let listener = TcpListener::bind(addr).await?;
    eprintln!("node {id}: listening on {addr} ({groups} Raft groups)");
    let node = Arc::new(server::Node {
        shards,
        recovered_entries,
        recovered,
    });
    server::serve(listener, node).await?;
    Ok(())
}
