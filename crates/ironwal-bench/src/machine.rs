//! What the figures were measured on, for the table's header: cores, CPU,
//! memory, kernel, the file system under the benchmark directory, and the
//! exact command line. Best effort: anything unreadable reads "unknown".

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub filesystem: String,
    pub command: String,
}

impl Machine {
    pub fn describe(dir: &Path) -> Machine {
        let unknown = || "unknown".to_owned();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpu_model().unwrap_or_else(unknown),
            memory: memory().unwrap_or_else(unknown),
            kernel: kernel().unwrap_or_else(unknown),
            filesystem: filesystem_of(dir).unwrap_or_else(unknown),
            command: command_line(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn memory() -> Option<String> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

/// "Linux 6.1.0-18-amd64", from /proc/version.
fn kernel() -> Option<String> {
    let version = std::fs::read_to_string("/proc/version").ok()?;
    let mut words = version.split_whitespace();
    let os = words.next()?;
    let release = words.nth(1)?;
    Some(format!("{os} {release}"))
}

/// "ext4 on /dev/vda (mounted at /)": the longest mount point in
/// /proc/mounts that contains `dir`.
fn filesystem_of(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fs_type = fields.next()?;
            let options = fields.next().unwrap_or("");
            dir.starts_with(&mount_point)
                .then_some((mount_point, device, fs_type, options))
        })
        .max_by_key(|(mount_point, ..)| mount_point.len())
        .map(|(mount_point, device, fs_type, options)| {
            format!("{fs_type} on {device} (mounted at {mount_point}, {options})")
        })
}

/// The command line as typed, quoted where a shell would need it.
fn command_line() -> String {
    let quote = |arg: String| {
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
        if plain {
            arg
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    std::env::args().map(quote).collect::<Vec<_>>().join(" ")
}
