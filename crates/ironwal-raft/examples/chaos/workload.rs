//! The clients: each puts and gets keys of a small key space, one operation
//! at a time, through whichever node it believes leads, and records every
//! operation's invocation, completion and result. Every put writes a value
//! no other put writes, so a read names the write it saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironwal_raft::kv::KvRequest;
use ironwal_testkit::linearizable::{Action, Op};
use ironwal_testkit::Rng;
use parking_lot::Mutex;

use crate::rpc::{Conn, Request, Response};

/// How long a client waits for an answer before it calls the outcome
/// unknown.
const TIMEOUT: Duration = Duration::from_secs(1);

/// What the clients did.
#[derive(Default)]
pub struct History {
    pub ops: Vec<Op>,
    /// Writes the cluster acknowledged: (key, value).
    pub acked: Vec<(u64, u64)>,
    /// Requests a node refused as not the leader.
    pub not_leader: u64,
    /// Requests that failed otherwise, or got no answer in time.
    pub failed: u64,
    /// Requests not sent: the node did not take the connection.
    pub not_sent: u64,
}

/// Where the clients send requests, and the shared clock.
pub struct Target {
    pub addrs: Vec<String>,
    pub start: Instant,
    pub history: Mutex<History>,
}

impl Target {
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record(&self, op: Op) {
        let mut history = self.history.lock();
        if let (Action::Write(value), Some(_)) = (&op.action, op.completed) {
            history.acked.push((op.key, *value));
        }
        history.ops.push(op);
    }
}

pub fn key_name(key: u64) -> String {
    format!("k{key}")
}

/// What became of a request (one at a time per client, so its size does
/// not matter).
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Answered(Response),
    /// No connection: the request was never sent.
    NotSent,
    /// Sent, but no answer came in time (or the connection broke).
    Lost,
}

/// One request, within `TIMEOUT`, on `conn` (opened to `addr` if empty);
/// a connection that failed is dropped.
pub async fn call(conn: &mut Option<Conn>, addr: &str, request: &Request) -> Outcome {
    if conn.is_none() {
        match tokio::time::timeout(TIMEOUT, Conn::connect(addr)).await {
            Ok(Ok(open)) => *conn = Some(open),
            _ => return Outcome::NotSent,
        }
    }
    let Some(open) = conn.as_mut() else {
        return Outcome::NotSent;
    };
    match tokio::time::timeout(TIMEOUT, open.call(request)).await {
        Ok(Ok(response)) => Outcome::Answered(response),
        _ => {
            *conn = None;
            Outcome::Lost
        }
    }
}

/// Runs client `client` until `until`.
pub async fn client(client: u64, keys: u64, seed: u64, target: Arc<Target>, until: Instant) {
    let mut rng = Rng::new(seed ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let nodes = target.addrs.len() as u64;
    let mut node = rng.below(nodes) as usize;
    let mut conn = None;
    let mut written = 0u64;
    while Instant::now() < until {
        let key = rng.below(keys);
        let (request, value) = if rng.one_in(2) {
            written += 1;
            let value = (client + 1) * 1_000_000_000 + written;
            let set = KvRequest::Set {
                key: key_name(key),
                value: value.to_string(),
            };
            (Request::Write(set), Some(value))
        } else {
            (Request::Get(key_name(key)), None)
        };
        let invoked = target.now();
        let outcome = call(&mut conn, &target.addrs[node], &request).await;
        let completed = target.now();
        let op = |action, completed| Op {
            key,
            action,
            invoked,
            completed,
            client,
        };
        let hint = match (outcome, value) {
            (Outcome::Answered(Response::Written { .. }), Some(value)) => {
                target.record(op(Action::Write(value), Some(completed)));
                continue;
            }
            (Outcome::Answered(Response::Value(seen)), None) => {
                let seen = seen.and_then(|v| v.parse().ok());
                target.record(op(Action::Read(seen), Some(completed)));
                continue;
            }
            (outcome, value) => {
                if let (false, Some(value)) = (matches!(outcome, Outcome::NotSent), value) {
                    // Not acknowledged: the write may still take effect, at
                    // any time from now on. (A read that failed says nothing.)
                    target.record(op(Action::Write(value), None));
                }
                let mut history = target.history.lock();
                match outcome {
                    Outcome::Answered(Response::NotLeader { leader }) => {
                        history.not_leader += 1;
                        leader.map(|(id, _)| id)
                    }
                    Outcome::NotSent => {
                        history.not_sent += 1;
                        None
                    }
                    _ => {
                        history.failed += 1;
                        None
                    }
                }
            }
        };
        if hint.is_none_or(|id| id as usize != node + 1) {
            conn = None;
        }
        node = match hint {
            Some(id) if (1..=nodes).contains(&id) => id as usize - 1,
            _ => rng.below(nodes) as usize,
        };
        if hint.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
