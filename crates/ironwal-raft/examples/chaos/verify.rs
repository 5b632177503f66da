//! The checks after the faults stop: the cluster heals and agrees, a final
//! read of every key, every node's state machine equal, every acknowledged
//! write in every node's log, the logs equal, and the history linearizable.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use ironwal_raft::{LogStore, StoreOptions};
use ironwal_testkit::linearizable::{self, Action, Op};
use openraft::{EntryPayload, RaftLogReader};

use crate::cluster::Cluster;
use crate::rpc::{Conn, Request, Response};
use crate::workload::{call, key_name, History, Outcome, Target};

/// How long the healed cluster may take to elect a leader and catch up.
const CONVERGE: Duration = Duration::from_secs(90);

/// Waits until every node has applied the leader's whole log; returns the
/// leader and that log's last index.
pub async fn converge(cluster: &Cluster) -> Result<(u64, u64), String> {
    let start = Instant::now();
    loop {
        if let Some(leader) = cluster.leader().await {
            let statuses = cluster.statuses().await;
            let last = statuses[leader as usize - 1]
                .as_ref()
                .and_then(|s| s.last_log_index);
            let all = statuses
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.last_applied_index == last));
            if let (true, Some(last)) = (all, last) {
                return Ok((leader, last));
            }
        }
        if start.elapsed() > CONVERGE {
            let statuses = cluster.statuses().await;
            return Err(format!(
                "the healed cluster did not converge in {CONVERGE:?}: {statuses:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads every key through the leader (recorded in the history); returns
/// the values.
pub async fn final_reads(
    target: &Target,
    leader: u64,
    keys: u64,
) -> Result<BTreeMap<u64, Option<u64>>, String> {
    let addr = &target.addrs[leader as usize - 1];
    let mut conn = None;
    let mut values = BTreeMap::new();
    for key in 0..keys {
        let invoked = target.now();
        match call(&mut conn, addr, &Request::Get(key_name(key))).await {
            Outcome::Answered(Response::Value(value)) => {
                let value = value.and_then(|v| v.parse().ok());
                target.record(Op {
                    key,
                    action: Action::Read(value),
                    invoked,
                    completed: Some(target.now()),
                    client: u64::MAX,
                });
                values.insert(key, value);
            }
            Outcome::Answered(other) => {
                return Err(format!("final read of {} failed: {other:?}", key_name(key)))
            }
            Outcome::NotSent | Outcome::Lost => {
                return Err(format!("final read of {} got no answer", key_name(key)))
            }
        }
    }
    Ok(values)
}

/// Every node's own state machine holds `values`.
pub async fn state_machines_agree(
    cluster: &Cluster,
    values: &BTreeMap<u64, Option<u64>>,
) -> Vec<String> {
    let names: Vec<String> = values.keys().map(|&k| key_name(k)).collect();
    let mut anomalies = Vec::new();
    for id in 1..=cluster.size() {
        let read = async {
            let mut conn = Conn::connect(cluster.addr(id)).await?;
            conn.call(&Request::Read(names.clone())).await
        };
        match read.await {
            Ok(Response::Values(got)) => {
                for ((key, want), got) in values.iter().zip(got) {
                    let got = got.and_then(|v| v.parse().ok());
                    if got != *want {
                        anomalies.push(format!(
                            "node {id}'s state machine has {}={got:?}, the leader read {want:?}",
                            key_name(*key)
                        ));
                    }
                }
            }
            other => anomalies.push(format!("node {id} did not answer a read: {other:?}")),
        }
    }
    anomalies
}

/// One node's log up to `last`, as (index, term, write).
type Log = Vec<(u64, u64, Option<(String, String)>)>;

async fn read_log(cluster: &Cluster, id: u64, last: u64) -> Result<Log, String> {
    let store = LogStore::<KvTypeConfig>::open(cluster.dir(id), StoreOptions::default())
        .map_err(|e| format!("node {id}'s log does not open: {e}"))?;
    let mut reader = store.reader();
    let first = store.recovered().first_index.unwrap_or(1);
    let mut log = Vec::new();
    let mut at = first;
    while at <= last {
        let to = (at + 10_000).min(last + 1);
        let entries = reader
            .try_get_log_entries(at..to)
            .await
            .map_err(|e| format!("node {id}'s log: {e}"))?;
        if entries.len() as u64 != to - at {
            return Err(format!(
                "node {id}'s log lacks entries of {at}..{to}: it has {} of them",
                entries.len()
            ));
        }
        for entry in entries {
            let write = match entry.payload {
                EntryPayload::Normal(KvRequest::Set { key, value }) => Some((key, value)),
                _ => None,
            };
            log.push((entry.log_id.index, entry.log_id.leader_id.term, write));
        }
        at = to;
    }
    Ok(log)
}

/// Every acknowledged write is in every node's log (up to `last`, which
/// every node applied), and the logs are equal.
pub async fn logs_agree(cluster: &Cluster, acked: &[(u64, u64)], last: u64) -> Vec<String> {
    let mut anomalies = Vec::new();
    let mut first_log: Option<(u64, Log)> = None;
    for id in 1..=cluster.size() {
        let log = match read_log(cluster, id, last).await {
            Ok(log) => log,
            Err(e) => {
                anomalies.push(e);
                continue;
            }
        };
        let present: HashSet<(&str, &str)> = log
            .iter()
            .filter_map(|(_, _, w)| w.as_ref().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let missing: Vec<String> = acked
            .iter()
            .map(|&(key, value)| (key_name(key), value.to_string()))
            .filter(|(k, v)| !present.contains(&(k.as_str(), v.as_str())))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !missing.is_empty() {
            anomalies.push(format!(
                "node {id}'s log lacks {} acknowledged writes, such as {}",
                missing.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match &first_log {
            None => first_log = Some((id, log)),
            Some((other, theirs)) => {
                let common = theirs.len().min(log.len());
                let start_theirs = theirs.len() - common;
                let start_ours = log.len() - common;
                if let Some(i) =
                    (0..common).find(|&i| theirs[start_theirs + i] != log[start_ours + i])
                {
                    anomalies.push(format!(
                        "logs of nodes {other} and {id} differ: {:?} against {:?}",
                        theirs[start_theirs + i],
                        log[start_ours + i]
                    ));
                }
            }
        }
    }
    anomalies
}

/// The history is linearizable per key.
pub fn linearizable(history: &History) -> Result<linearizable::Summary, String> {
    linearizable::check(&history.ops).map_err(|v| v.to_string())
}
