//! The `raft-kv` example as a cluster of three processes on loopback: write
//! 10,000 keys through the leader, kill the leader (SIGKILL), check that a
//! new leader is elected and that every acknowledged write is readable on
//! both survivors, then restart the killed node and check that it catches
//! up from its own ironwal log (and the leader).
//!
//! A second test runs the example sharded (`--groups 8`, one multi-log
//! per node): every group gets keys, a failover moves every group's
//! leadership, and the restarted node catches up from its multi-log.
//!
//! Needs the example binary, which `cargo test` builds; with a filtered
//! build (`cargo test --test it`) build it first:
//! `cargo build -p ironwal-raft --example raft-kv`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const KEYS: usize = 10_000;
const WRITERS: usize = 32;
/// The longest any one phase may take.
const PHASE: Duration = Duration::from_secs(30);
/// The longest one request may take.
const CALL: Duration = Duration::from_secs(10);

/// A connection to a node speaking the example's JSON-lines protocol.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = tokio::time::timeout(CALL, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Sends a request and reads its answer, within `CALL`.
    async fn call(&mut self, request: &Value) -> std::io::Result<Value> {
        let exchange = async {
            let mut line = serde_json::to_vec(request)?;
            line.push(b'\n');
            self.writer.write_all(&line).await?;
            let mut answer = String::new();
            if self.reader.read_line(&mut answer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(serde_json::from_str(&answer)?)
        };
        tokio::time::timeout(CALL, exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

async fn call(addr: &str, request: Value) -> std::io::Result<Value> {
    Client::connect(addr).await?.call(&request).await
}

struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    nodes: Vec<Option<Child>>,
    /// Extra arguments of every node.
    args: Vec<String>,
}

impl Cluster {
    fn start(size: u64) -> Cluster {
        Cluster::start_with(size, &[])
    }

    fn start_with(size: u64, args: &[&str]) -> Cluster {
        let addrs = (0..size)
            .map(|_| {
                // A free loopback port: bind, note, release.
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().to_string()
            })
            .collect();
        let mut cluster = Cluster {
            bin: crate::example_binary("raft-kv"),
            dir: tempfile::tempdir().unwrap(),
            addrs,
            nodes: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        for id in 1..=size {
            let child = cluster.spawn(id);
            cluster.nodes.push(Some(child));
        }
        cluster
    }

    fn addr(&self, id: u64) -> &str {
        &self.addrs[id as usize - 1]
    }

    fn spawn(&self, id: u64) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{id}.stderr")))
            .unwrap();
        Command::new(&self.bin)
            .args(["node", "--id", &id.to_string(), "--addr", self.addr(id)])
            .arg("--dir")
            .arg(self.dir.path().join(format!("node-{id}")))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize - 1].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn restart(&mut self, id: u64) {
        let child = self.spawn(id);
        self.nodes[id as usize - 1] = Some(child);
    }

    async fn status(&self, id: u64) -> Option<Value> {
        let answer = call(self.addr(id), json!("Status")).await.ok()?;
        answer.get("Status").cloned()
    }

    /// Polls `check` until it returns `Some`, for at most `PHASE`.
    async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if start.elapsed() > PHASE {
                let logs: Vec<String> = (1..=self.addrs.len())
                    .map(|id| {
                        let path = self.dir.path().join(format!("node-{id}.stderr"));
                        format!(
                            "node {id}: {}",
                            std::fs::read_to_string(path).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!("timed out waiting for {what}\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether node `id` has every key of `keys` with its value.
    async fn has_all(&self, id: u64, keys: &[usize]) -> bool {
        let Ok(mut client) = Client::connect(self.addr(id)).await else {
            return false;
        };
        for chunk in keys.chunks(2000) {
            let names: Vec<String> = chunk.iter().map(|i| format!("key-{i}")).collect();
            let Ok(answer) = client.call(&json!({ "Read": names })).await else {
                return false;
            };
            let Some(values) = answer.get("Values").and_then(Value::as_array) else {
                return false;
            };
            let all = chunk
                .iter()
                .zip(values)
                .all(|(i, v)| v.as_str() == Some(format!("value-{i}").as_str()));
            if !all {
                return false;
            }
        }
        true
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `keys` through `leader` from `WRITERS` connections; returns the
/// keys whose write was acknowledged.
async fn write_keys(leader: &str, keys: std::ops::Range<usize>) -> Vec<usize> {
    let next = Arc::new(AtomicUsize::new(keys.start));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (next, acked, leader, end) = (
            Arc::clone(&next),
            Arc::clone(&acked),
            leader.to_owned(),
            keys.end,
        );
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&leader).await.unwrap();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return;
                }
                let write = json!({ "Write": { "Set": { "key": format!("key-{i}"), "value": format!("value-{i}") } } });
                match client.call(&write).await {
                    Ok(answer) if answer.get("Written").is_some() => acked.lock().push(i),
                    Ok(answer) => panic!("write of key-{i} refused: {answer}"),
                    Err(e) => panic!("write of key-{i} failed: {e}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut acked = std::mem::take(&mut *acked.lock());
    acked.sort_unstable();
    acked
}

#[test]
fn three_nodes_survive_the_loss_of_the_leader() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let mut cluster = Cluster::start(3);
        for id in 1..=3 {
            cluster
                .wait_for(&format!("node {id} to answer"), || cluster.status(id))
                .await;
        }
        let members = json!({ "Init": { "1": cluster.addr(1), "2": cluster.addr(2), "3": cluster.addr(3) } });
        let answer = call(cluster.addr(1), members).await.unwrap();
        assert_eq!(answer, json!({ "Init": { "Ok": null } }));
        let leader = cluster
            .wait_for("a first leader", || async {
                let status = cluster.status(1).await?;
                status["leader"].as_u64()
            })
            .await;

        let t = Instant::now();
        let mut acked = write_keys(cluster.addr(leader), 0..KEYS).await;
        assert_eq!(acked.len(), KEYS);
        let write_time = t.elapsed();
        let old_term = cluster.status(leader).await.unwrap()["term"].as_u64().unwrap();

        cluster.kill(leader);
        let t = Instant::now();
        let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
        let new_leader = cluster
            .wait_for("a new leader", || async {
                for &id in &survivors {
                    let status = cluster.status(id).await?;
                    if status["state"] == "Leader" && status["term"].as_u64()? > old_term {
                        return Some(id);
                    }
                }
                None
            })
            .await;
        let election_time = t.elapsed();
        for &id in &survivors {
            let keys = acked.clone();
            cluster
                .wait_for(&format!("node {id} to hold every acknowledged write"), || {
                    let keys = keys.clone();
                    let cluster = &cluster;
                    async move { cluster.has_all(id, &keys).await.then_some(()) }
                })
                .await;
        }

        // Writes while the old leader is down, which it must catch up on.
        acked.extend(write_keys(cluster.addr(new_leader), KEYS..KEYS + 100).await);
        cluster.restart(leader);
        let status = cluster
            .wait_for("the old leader to restart", || cluster.status(leader))
            .await;
        let recovered = status["recovered_entries"].as_u64().unwrap();
        assert!(
            recovered >= KEYS as u64,
            "the restarted node recovered only {recovered} entries from its log: {status}"
        );
        let keys = acked.clone();
        cluster
            .wait_for("the restarted node to catch up", || {
                let keys = keys.clone();
                let cluster = &cluster;
                async move { cluster.has_all(leader, &keys).await.then_some(()) }
            })
            .await;
        println!(
            "{KEYS} writes in {write_time:?} ({:.0}/s); new leader {new_leader} elected {election_time:?} \
             after killing {leader}; restarted node recovered {recovered} entries; total {:?}",
            KEYS as f64 / write_time.as_secs_f64(),
            started.elapsed()
        );
    });
}

/// Writes `key-{i}` for `keys` through any node, following each group's
/// leader hint; returns the node that answered each write.
async fn write_following_leaders(cluster: &Cluster, keys: std::ops::Range<usize>) -> Vec<String> {
    let mut answered = Vec::new();
    for i in keys {
        let write = json!({ "Write": { "Set": { "key": format!("key-{i}"), "value": format!("value-{i}") } } });
        let mut next = i as u64;
        let mut addr = cluster.addr(1 + next % 3).to_owned();
        let start = Instant::now();
        loop {
            let answer = call(&addr, write.clone()).await;
            match answer {
                Ok(answer) if answer.get("Written").is_some() => {
                    answered.push(addr);
                    break;
                }
                Ok(answer) => {
                    // {"NotLeader": {"leader": [id, {"addr": ...}]}}, or no
                    // leader yet: ask again.
                    if let Some(to) = answer["NotLeader"]["leader"][1]["addr"].as_str() {
                        addr = to.to_owned();
                    }
                }
                // A node down: try the next.
                Err(_) => {
                    next += 1;
                    addr = cluster.addr(1 + next % 3).to_owned();
                }
            }
            assert!(start.elapsed() < PHASE, "write of key-{i} never succeeded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    answered
}

#[test]
fn a_sharded_cluster_spreads_groups_over_nodes_and_restarts_from_its_multi_log() {
    const GROUPS: usize = 8;
    const SHARDED_KEYS: usize = 400;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cluster = Cluster::start_with(3, &["--groups", &GROUPS.to_string()]);
        for id in 1..=3 {
            cluster
                .wait_for(&format!("node {id} to answer"), || cluster.status(id))
                .await;
        }
        let members =
            json!({ "Init": { "1": cluster.addr(1), "2": cluster.addr(2), "3": cluster.addr(3) } });
        let answer = call(cluster.addr(1), members).await.unwrap();
        assert_eq!(answer, json!({ "Init": { "Ok": null } }));
        cluster
            .wait_for("a leader in every group", || async {
                let status = cluster.status(1).await?;
                let leaders = status["leaders"].as_array()?;
                (leaders.len() == GROUPS && leaders.iter().all(|l| l.is_u64())).then_some(())
            })
            .await;

        let answered = write_following_leaders(&cluster, 0..SHARDED_KEYS).await;
        let keys: Vec<usize> = (0..SHARDED_KEYS).collect();
        for id in 1..=3 {
            let keys = keys.clone();
            cluster
                .wait_for(&format!("node {id} to hold every write"), || {
                    let keys = keys.clone();
                    let cluster = &cluster;
                    async move { cluster.has_all(id, &keys).await.then_some(()) }
                })
                .await;
        }
        // The keys went to every group: each group's log grew past the
        // entries its election and membership wrote.
        let status = cluster.status(1).await.unwrap();
        let indexes: Vec<u64> = status["last_log_indexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap_or(0))
            .collect();
        assert_eq!(indexes.len(), GROUPS);
        assert!(
            indexes.iter().all(|&i| i > 10),
            "some group took almost no keys: {indexes:?}"
        );
        let leaders: std::collections::BTreeSet<&String> = answered.iter().collect();
        println!(
            "{SHARDED_KEYS} writes answered by {} leader node(s); group logs end at {indexes:?}",
            leaders.len()
        );

        // Kill the node that leads (node 1 initialized every group, so it
        // leads them all): each group elects a leader among the others.
        cluster.kill(1);
        let leaders: Vec<u64> = cluster
            .wait_for("a new leader in every group", || async {
                let status = cluster.status(2).await?;
                let leaders: Option<Vec<u64>> = status["leaders"]
                    .as_array()?
                    .iter()
                    .map(|l| l.as_u64())
                    .collect();
                leaders.filter(|l| l.len() == GROUPS && l.iter().all(|&id| id != 1))
            })
            .await;
        let more = write_following_leaders(&cluster, SHARDED_KEYS..SHARDED_KEYS + 100).await;
        let all: Vec<usize> = (0..SHARDED_KEYS + 100).collect();
        // A restarted node rebuilds every group from its one multi-log and
        // catches up on what it missed.
        cluster.restart(1);
        let status = cluster
            .wait_for("node 1 to restart", || cluster.status(1))
            .await;
        let recovered = status["recovered_entries"].as_u64().unwrap();
        assert!(
            recovered >= SHARDED_KEYS as u64,
            "node 1 recovered {recovered} entries: {status}"
        );
        assert!(status["recovered"]
            .as_str()
            .unwrap()
            .contains(&format!("{GROUPS} groups")));
        cluster
            .wait_for("node 1 to catch up on every key", || {
                let keys = all.clone();
                let cluster = &cluster;
                async move { cluster.has_all(1, &keys).await.then_some(()) }
            })
            .await;
        let spread: std::collections::BTreeSet<&String> = more.iter().collect();
        println!(
            "after the failover, group leaders {leaders:?}; 100 writes answered by {} node(s)",
            spread.len()
        );
    });
}
