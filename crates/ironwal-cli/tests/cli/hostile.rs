//! Paths that are not logs: a FIFO, a device, a directory or a symlink
//! loop where a segment should be. Every command refuses them promptly,
//! with the path named once and the cause said once.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Long enough that only a command blocked for good misses it.
const HANG: Duration = Duration::from_secs(20);

/// Runs `ironwal args`; fails the test if it is still running after
/// [`HANG`].
fn run_bounded(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("ironwal {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

const SEGMENT: &str = "01796216994074089056.wal";

/// Builds each hostile case in `root`; returns the paths to give the tools.
fn hostile_paths(root: &Path) -> Vec<(String, std::path::PathBuf)> {
    let fifo = root.join("fifo.wal");
    mkfifo(&fifo);
    let fifo_inside = root.join("fifo-log");
    std::fs::create_dir(&fifo_inside).unwrap();
    mkfifo(&fifo_inside.join(SEGMENT));
    let dir_inside = root.join("dir-log");
    std::fs::create_dir_all(dir_inside.join(SEGMENT)).unwrap();
    let zero = root.join("zero.wal");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let zero_inside = root.join("zero-log");
    std::fs::create_dir(&zero_inside).unwrap();
    std::os::unix::fs::symlink("/dev/zero", zero_inside.join(SEGMENT)).unwrap();
    let looped = root.join("loop.wal");
    std::os::unix::fs::symlink("loop.wal", &looped).unwrap();
    vec![
        ("a FIFO".into(), fifo),
        ("a FIFO segment".into(), fifo_inside),
        ("a directory segment".into(), dir_inside),
        ("a symlink to /dev/zero".into(), zero),
        ("a /dev/zero segment".into(), zero_inside),
        ("a symlink loop".into(), looped),
    ]
}

#[test]
fn no_command_hangs_on_or_accepts_what_is_not_a_log() {
    let root = tempfile::tempdir().unwrap();
    for (what, path) in hostile_paths(root.path()) {
        let p = path.to_str().unwrap();
        let out_dir = root.path().join("repaired");
        let commands: Vec<Vec<&str>> = vec![
            vec!["dump", p],
            vec!["verify", p],
            vec!["stats", p],
            vec!["tail", p],
            vec!["repair", p, "--out", out_dir.to_str().unwrap()],
        ];
        for args in commands {
            let out = run_bounded(&args);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(2), "{what}: {args:?}: {said}");
            assert!(
                said.contains(p),
                "{what}: {args:?} does not name the path: {said}"
            );
            assert!(!said.contains("does not exist"), "{what}: {args:?}: {said}");
            assert!(!said.contains("4096 bytes"), "{what}: {args:?}: {said}");
            for line in said
                .lines()
                .filter(|l| l.contains("ironwal:") || l.contains("error:"))
            {
                let causes = ["os error 40", "not a regular file", "neither a log"];
                for cause in causes {
                    assert!(line.matches(cause).count() <= 1, "{what}: {args:?}: {line}");
                }
            }
            assert!(
                !out_dir.exists(),
                "{what}: repair left {}",
                out_dir.display()
            );
        }
    }
}

#[test]
fn tail_says_it_waits_for_a_directory_that_does_not_exist_yet() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("not-yet");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["tail", "--follow", missing.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line);
        line
    });
    let started = Instant::now();
    while !reader.is_finished() && started.elapsed() < HANG {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    if reader.is_finished() {
        line = reader.join().unwrap();
    }
    assert!(line.contains("waiting"), "tail said {line:?}");
    assert!(line.contains("not-yet"), "tail said {line:?}");

    // Without --follow there is nothing to wait for.
    let out = run_bounded(&["tail", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
