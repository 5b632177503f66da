//! chaos: a `raft-kv` cluster of real node processes under faults, with
//! every client operation recorded and checked afterwards.
//!
//! ```text
//! cargo build --release -p ironwal-raft --examples
//! target/release/examples/chaos --nodes 5 --minutes 30
//! ```
//!
//! (`scripts/chaos.sh` does both.) Clients put and get a small key space
//! through the leader while the nemesis, repeatedly and mixed: SIGKILLs
//! and restarts nodes (leader or not, up to a minority at once), pauses
//! them with SIGSTOP for longer than the election timeout, kills a node and
//! tears its log (in each segment, the bytes written after its last
//! fdatasync, cut at a random point, maybe with garbage; segments are 1 MiB
//! so rotations meet the faults) before restarting it, and cuts the
//! power of the whole cluster (every node torn that way at once). Then it
//! heals the cluster and checks: it converges; every node's state machine
//! agrees with a final linearizable read of each key; every acknowledged
//! write is in every node's log and the logs are equal; the history is
//! linearizable per key (a register each). Exit status 1 on any anomaly.
//!
//! `--lying-fsync` runs nodes whose fdatasync only pretends; the check
//! must fail (the test suite proves it does).

mod cluster;
#[allow(dead_code)]
#[path = "../raft-kv/journal.rs"]
mod journal;
#[allow(dead_code)]
#[path = "../raft-kv/rpc.rs"]
mod rpc;
mod verify;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ironwal_testkit::Rng;
use parking_lot::Mutex;

use crate::cluster::Cluster;
use crate::rpc::{Conn, Request, Response};
use crate::workload::{History, Target};

#[derive(Parser)]
#[command(about = "A raft-kv cluster under kills, pauses, torn tails and power loss, checked")]
struct Args {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// How long the faults go on, in seconds (default 30).
    #[arg(long, conflicts_with = "minutes")]
    seconds: Option<u64>,
    /// How long the faults go on, in minutes.
    #[arg(long)]
    minutes: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u64,
    /// Keys the clients share.
    #[arg(long, default_value_t = 8)]
    keys: u64,
    /// The nodes' segment size in bytes: small, so that rotations (and
    /// their pending seals) meet the faults.
    #[arg(long, default_value_t = 1 << 20)]
    segment_size: u64,
    /// Seed of the clients' and the nemesis' choices (printed when drawn).
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes whose fdatasync only pretends: a store that acknowledges
    /// appends before they are durable. The check must fail.
    #[arg(long)]
    lying_fsync: bool,
    /// The raft-kv binary (default: beside this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the nodes keep their logs (default: a temporary directory,
    /// kept when an anomaly is found).
    #[arg(long)]
    dir: Option<PathBuf>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.nodes < 3 {
        return Err("--nodes must be at least 3".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let anomalies = runtime.block_on(run(args))?;
    if anomalies > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> Result<usize, Error> {
    let duration = match (args.seconds, args.minutes) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(m)) => Duration::from_secs(m * 60),
        (None, None) => Duration::from_secs(30),
    };
    let seed = args.seed.unwrap_or_else(Rng::fresh_seed);
    let bin = match args.bin {
        Some(bin) => bin,
        None => std::env::current_exe()?.with_file_name("raft-kv"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p ironwal-raft --examples`",
            bin.display()
        )
        .into());
    }
    let mut temp = None;
    let root = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => temp.insert(tempfile::tempdir()?).path().to_path_buf(),
    };
    println!(
        "chaos: {} nodes, {} clients on {} keys, {:?} of faults, seed {seed}{}",
        args.nodes,
        args.clients,
        args.keys,
        duration,
        if args.lying_fsync {
            ", LYING FSYNC"
        } else {
            ""
        }
    );

    let mut cluster = Cluster::start(&bin, &root, args.nodes, args.segment_size, args.lying_fsync)?;
    let target = Arc::new(Target {
        addrs: cluster.addrs(),
        start: Instant::now(),
        history: Mutex::new(History::default()),
    });
    initialize(&cluster).await?;

    let until = Instant::now() + duration;
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let target = Arc::clone(&target);
            tokio::spawn(workload::client(c, args.keys, seed, target, until))
        })
        .collect();
    let mut anomalies = nemesis(&mut cluster, Rng::new(seed), until).await?;
    for client in clients {
        client.await?;
    }

    for id in 1..=cluster.size() {
        cluster.heal(id)?;
    }
    match verify::converge(&cluster).await {
        Ok((leader, last)) => {
            match verify::final_reads(&target, leader, args.keys).await {
                Ok(values) => {
                    anomalies.extend(verify::state_machines_agree(&cluster, &values).await)
                }
                Err(e) => anomalies.push(e),
            }
            cluster.stop_all()?;
            let acked = target.history.lock().acked.clone();
            anomalies.extend(verify::logs_agree(&cluster, &acked, last).await);
            println!("log: {last} entries on every node");
        }
        Err(e) => anomalies.push(e),
    }
    cluster.stop_all()?;

    let history = std::mem::take(&mut *target.history.lock());
    match verify::linearizable(&history) {
        Ok(summary) => println!(
            "linearizable: {} keys, {} operations checked ({} unacknowledged writes never seen)",
            summary.keys, summary.ops, summary.dropped_unknown
        ),
        Err(violation) => anomalies.push(format!("not linearizable: {violation}")),
    }
    let writes = history.acked.len();
    let unknown = history
        .ops
        .iter()
        .filter(|op| op.completed.is_none())
        .count();
    let reads = history.ops.len() - writes - unknown;
    let f = &cluster.faults;
    println!(
        "operations: {} ({writes} writes acknowledged, {reads} reads, {unknown} writes with unknown outcome); \
         requests refused by a follower {}, failed or unanswered {}, not sent (node down) {}",
        history.ops.len(),
        history.not_leader,
        history.failed,
        history.not_sent
    );
    println!(
        "faults: {} kills ({} of the leader), {} tails torn ({} unsynced bytes cut), {} pauses, {} power losses, {} restarts",
        f.kills, f.leader_kills, f.torn_tails, f.torn_bytes, f.pauses, f.power_losses, f.restarts
    );
    println!("anomalies: {}", anomalies.len());
    for anomaly in &anomalies {
        println!("  - {anomaly}");
    }
    if let (false, Some(temp)) = (anomalies.is_empty(), temp) {
        println!("logs kept in {}", temp.keep().display());
    }
    Ok(anomalies.len())
}

fn millis(rng: &mut Rng, range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(range.start + rng.below(range.end - range.start))
}

/// Waits for every node to answer, makes them a cluster and waits for its
/// first leader.
async fn initialize(cluster: &Cluster) -> Result<(), Error> {
    let start = Instant::now();
    while cluster.statuses().await.iter().any(Option::is_none) {
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the nodes did not start in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members = (1..=cluster.size())
        .map(|id| (id, cluster.addr(id).to_owned()))
        .collect();
    match Conn::connect(cluster.addr(1))
        .await?
        .call(&Request::Init(members))
        .await?
    {
        Response::Init(Ok(())) => {}
        other => return Err(format!("initializing the cluster: {other:?}").into()),
    }
    while cluster.leader().await.is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err("no first leader in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Injects faults until `until`; returns what went wrong on the way (a node
/// that exits on its own, such as one whose log does not open).
async fn nemesis(
    cluster: &mut Cluster,
    mut rng: Rng,
    until: Instant,
) -> Result<Vec<String>, Error> {
    let mut anomalies = Vec::new();
    let mut heal_at: Vec<(u64, Instant)> = Vec::new();
    let size = cluster.size();
    let minority = ((size - 1) / 2) as usize;
    let halfway = Instant::now() + until.saturating_duration_since(Instant::now()) / 2;
    let mut next_fault = Instant::now() + millis(&mut rng, 500..1500);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        for &(id, _) in heal_at.iter().filter(|(_, at)| *at <= now) {
            cluster.heal(id)?;
        }
        heal_at.retain(|(_, at)| *at > now);
        if let Some((id, why)) = cluster.exited() {
            if anomalies.len() < 10 {
                anomalies.push(format!("node {id} exited on its own: {why}"));
            }
            heal_at.push((id, now + Duration::from_secs(1)));
        }
        if now < next_fault {
            continue;
        }
        next_fault = now + millis(&mut rng, 400..1600);
        let impaired = cluster.impaired();
        let power_loss = cluster.faults.power_losses == 0 && now > halfway || rng.one_in(12);
        if power_loss && impaired.is_empty() {
            for id in 1..=size {
                cluster.kill(id, true, &mut rng)?;
            }
            cluster.faults.power_losses += 1;
            let back = now + millis(&mut rng, 300..1200);
            heal_at.extend((1..=size).map(|id| (id, back)));
            continue;
        }
        let budget = minority.saturating_sub(impaired.len());
        if budget == 0 {
            continue;
        }
        let leader = cluster.leader().await;
        let mut up: Vec<u64> = (1..=size).filter(|&id| cluster.is_up(id)).collect();
        // Half the time the leader goes first.
        if let Some(leader) = leader.filter(|_| rng.one_in(2)) {
            up.retain(|&id| id != leader);
            up.insert(0, leader);
        } else {
            for i in (1..up.len()).rev() {
                up.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let count = 1 + rng.below(budget as u64) as usize;
        let kind = rng.below(3);
        for &id in up.iter().take(count) {
            if Some(id) == leader && kind != 2 {
                cluster.faults.leader_kills += 1;
            }
            let until = match kind {
                0 => {
                    cluster.kill(id, false, &mut rng)?;
                    millis(&mut rng, 200..3000)
                }
                1 => {
                    cluster.kill(id, true, &mut rng)?;
                    millis(&mut rng, 200..2000)
                }
                _ => {
                    cluster.pause(id)?;
                    millis(&mut rng, 1000..2500)
                }
            };
            heal_at.push((id, now + until));
        }
    }
    Ok(anomalies)
}
