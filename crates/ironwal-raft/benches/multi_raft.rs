//! Many Raft groups on one node, each appending single entries and
//! waiting for each to be durable: ironwal-raft's `MultiLog` against
//! raft-engine (tikv) with as many regions, in one run.
//!
//! * ironwal-raft: one `MultiLog`; each group a tokio task (2 worker
//!   threads) that appends one entry through openraft's `blocking_append`
//!   on its group's `LogStore` and waits for the callback, durable through
//!   the log's shared group commit.
//! * raft-engine 0.4: one `Engine`; each region a thread that puts one
//!   entry in a `LogBatch` (region, index) and calls `Engine::write(batch,
//!   true)`, which joins raft-engine's own group commit. Its file system is
//!   the default one behind a wrapper that counts `sync` calls.
//!
//! Both write the same bytes per entry: the openraft entry with a 256-byte
//! value, as ironwal-raft encodes it. Each side runs 1 s of warm-up, then
//! `--seconds` measured: entries per second, fsyncs per second and the
//! 99th percentile of the append latency.
//!
//! `cargo bench -p ironwal-raft --bench multi_raft [-- --seconds S]
//! [--groups 1,10,100,1000] [--rounds N] [--dir D]`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironwal_raft::kv::KvTypeConfig;
use ironwal_raft::{MultiLog, MultiLogOptions};
use openraft::storage::RaftLogStorageExt;
use raft_engine::env::{DefaultFileSystem, FileSystem, Handle, Permission};

mod common;

use common::{entry, Noise, VALUE_LEN};

const WARMUP: Duration = Duration::from_secs(1);

/// What one side did in the measured window.
struct Figures {
    entries_per_sec: f64,
    fsyncs_per_sec: f64,
    p99: Duration,
}

/// Latencies of the appends that completed inside the measured window.
#[derive(Default)]
struct Window {
    latencies: Mutex<Vec<Duration>>,
}

impl Window {
    fn figures(&self, measure: Duration, fsyncs: u64) -> Figures {
        let mut latencies = self.latencies.lock().unwrap();
        latencies.sort();
        let p99 = latencies
            .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        Figures {
            entries_per_sec: latencies.len() as f64 / measure.as_secs_f64(),
            fsyncs_per_sec: fsyncs as f64 / measure.as_secs_f64(),
            p99,
        }
    }
}

/// When the measured window opens and closes.
#[derive(Clone, Copy)]
struct Clock {
    open: Instant,
    close: Instant,
}

impl Clock {
    fn new(measure: Duration) -> Self {
        let open = Instant::now() + WARMUP;
        Clock {
            open,
            close: open + measure,
        }
    }

    /// Whether an append that finished now counts.
    fn counts(&self, now: Instant) -> bool {
        now >= self.open && now < self.close
    }

    fn done(&self) -> bool {
        Instant::now() >= self.close
    }

    /// Reads `counter` when the window opens and when it closes.
    fn delta(&self, counter: impl Fn() -> u64) -> u64 {
        std::thread::sleep(self.open.saturating_duration_since(Instant::now()));
        let start = counter();
        std::thread::sleep(self.close.saturating_duration_since(Instant::now()));
        counter() - start
    }
}

fn run_ironwal(dir: &Path, groups: u64, measure: Duration) -> Figures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(MultiLog::<KvTypeConfig>::open(dir, MultiLogOptions::default()).unwrap());
    let window = Arc::new(Window::default());
    let clock = Clock::new(measure);
    let tasks: Vec<_> = (0..groups)
        .map(|g| {
            let (log, window) = (Arc::clone(&log), Arc::clone(&window));
            rt.spawn(async move {
                let mut store = log.group(g);
                let mut noise = Noise(g);
                let mut mine = Vec::new();
                let mut index = 1;
                while !clock.done() {
                    let e = entry(&mut noise, index);
                    let start = Instant::now();
                    store.blocking_append([e]).await.unwrap();
                    let end = Instant::now();
                    if clock.counts(end) {
                        mine.push(end - start);
                    }
                    index += 1;
                }
                window.latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    let fsyncs = clock.delta(|| log.wal_metrics().fsyncs);
    rt.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    log.close().unwrap();
    window.figures(measure, fsyncs)
}

/// raft-engine's default file system, counting syncs.
struct Counting {
    inner: DefaultFileSystem,
    syncs: Arc<AtomicU64>,
}

type InnerHandle = <DefaultFileSystem as FileSystem>::Handle;

struct CountingHandle {
    inner: Arc<InnerHandle>,
    syncs: Arc<AtomicU64>,
}

impl Handle for CountingHandle {
    fn truncate(&self, offset: usize) -> std::io::Result<()> {
        self.inner.truncate(offset)
    }

    fn file_size(&self) -> std::io::Result<usize> {
        self.inner.file_size()
    }

    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }
}

impl Counting {
    fn wrap(&self, inner: InnerHandle) -> CountingHandle {
        CountingHandle {
            inner: Arc::new(inner),
            syncs: Arc::clone(&self.syncs),
        }
    }
}

impl FileSystem for Counting {
    type Handle = CountingHandle;
    type Reader = <DefaultFileSystem as FileSystem>::Reader;
    type Writer = <DefaultFileSystem as FileSystem>::Writer;

    fn create<P: AsRef<Path>>(&self, path: P) -> std::io::Result<Self::Handle> {
        self.inner.create(path).map(|h| self.wrap(h))
    }

    fn open<P: AsRef<Path>>(&self, path: P, perm: Permission) -> std::io::Result<Self::Handle> {
        self.inner.open(path, perm).map(|h| self.wrap(h))
    }

    fn delete<P: AsRef<Path>>(&self, path: P) -> std::io::Result<()> {
        self.inner.delete(path)
    }

    fn rename<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> std::io::Result<()> {
        self.inner.rename(src_path, dst_path)
    }

    fn reuse<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> std::io::Result<()> {
        self.inner.reuse(src_path, dst_path)
    }

    fn new_reader(&self, handle: Arc<Self::Handle>) -> std::io::Result<Self::Reader> {
        self.inner.new_reader(Arc::clone(&handle.inner))
    }

    fn new_writer(&self, handle: Arc<Self::Handle>) -> std::io::Result<Self::Writer> {
        self.inner.new_writer(Arc::clone(&handle.inner))
    }
}

fn run_raft_engine(dir: &Path, groups: u64, measure: Duration) -> Figures {
    let config = raft_engine::Config {
        dir: dir.to_str().expect("a UTF-8 path").to_owned(),
        batch_compression_threshold: raft_engine::ReadableSize(0),
        ..raft_engine::Config::default()
    };
    let syncs = Arc::new(AtomicU64::new(0));
    let fs = Arc::new(Counting {
        inner: DefaultFileSystem,
        syncs: Arc::clone(&syncs),
    });
    let engine = raft_engine::Engine::open_with_file_system(config, fs).unwrap();
    let window = Window::default();
    let clock = Clock::new(measure);
    let fsyncs = std::thread::scope(|scope| {
        for g in 0..groups {
            let (engine, window) = (&engine, &window);
            scope.spawn(move || {
                let mut noise = Noise(g);
                let mut batch = raft_engine::LogBatch::default();
                let mut mine = Vec::new();
                let mut index = 1u64;
                while !clock.done() {
                    let value = postcard::to_allocvec(&entry(&mut noise, index)).unwrap();
                    let start = Instant::now();
                    batch
                        .put(g + 1, index.to_be_bytes().to_vec(), value)
                        .unwrap();
                    engine.write(&mut batch, true).unwrap();
                    let end = Instant::now();
                    if clock.counts(end) {
                        mine.push(end - start);
                    }
                    index += 1;
                }
                window.latencies.lock().unwrap().extend(mine);
            });
        }
        clock.delta(|| syncs.load(Ordering::Relaxed))
    });
    window.figures(measure, fsyncs)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 5u64;
    let mut rounds = 1usize;
    let mut groups: Vec<u64> = vec![1, 10, 100, 1000];
    let mut base: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds S")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds N")
            }
            "--groups" => {
                groups = args
                    .next()
                    .map(|s| {
                        s.split(',')
                            .map(|g| g.parse().expect("--groups 1,10,100"))
                            .collect()
                    })
                    .expect("--groups G[,G...]")
            }
            "--dir" => base = args.next().map(PathBuf::from),
            // cargo bench passes --bench; other flags are not ours.
            _ => {}
        }
    }
    let measure = Duration::from_secs(seconds);
    let temp = tempfile::tempdir_in(base.unwrap_or_else(std::env::temp_dir)).unwrap();
    println!(
        "Many Raft groups, single {VALUE_LEN}-byte entries, each durable before the next; \
         {seconds} s measured after 1 s of warm-up"
    );
    println!(
        "{:>6} {:>5} | {:>27} | {:>27} | {:>5}",
        "groups", "round", "ironwal-raft MultiLog", "raft-engine", "ratio"
    );
    println!(
        "{:>6} {:>5} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>5}",
        "", "", "entries/s", "fsyncs/s", "p99 ms", "entries/s", "fsyncs/s", "p99 ms", ""
    );
    let show = |f: &Figures| {
        format!(
            "{:>9.0} {:>8.0} {:>8.2}",
            f.entries_per_sec,
            f.fsyncs_per_sec,
            f.p99.as_secs_f64() * 1e3
        )
    };
    let mut run = 0;
    for &g in &groups {
        for round in 1..=rounds {
            run += 1;
            let ours_dir = temp.path().join(format!("ironwal-{run}"));
            let theirs_dir = temp.path().join(format!("raft-engine-{run}"));
            std::fs::create_dir_all(&ours_dir).unwrap();
            std::fs::create_dir_all(&theirs_dir).unwrap();
            // Alternate who goes first, so neither always meets a warmer disk.
            let (ours, theirs) = if run % 2 == 1 {
                let a = run_ironwal(&ours_dir, g, measure);
                (a, run_raft_engine(&theirs_dir, g, measure))
            } else {
                let b = run_raft_engine(&theirs_dir, g, measure);
                (run_ironwal(&ours_dir, g, measure), b)
            };
            println!(
                "{g:>6} {round:>5} | {} | {} | {:>5.2}",
                show(&ours),
                show(&theirs),
                ours.entries_per_sec / theirs.entries_per_sec
            );
            let _ = std::fs::remove_dir_all(&ours_dir);
            let _ = std::fs::remove_dir_all(&theirs_dir);
        }
    }
}
