//! What a run measures: the workloads, their sizes in a full and a quick
//! run, and the names of the peers. No I/O here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Peers in table order; `raw` and `kevo` are the ceilings and the quoted
/// reference, not libraries.
pub const PEER_NAMES: &[&str] = &[
    "ironwal",
    "okaywal",
    "raft-engine",
    "walrus-rust",
    "fjall",
    "rocksdb",
    "raw",
    "kevo",
];

/// Bytes of the key every entry carries (a big-endian counter).
pub const KEY_LEN: usize = 8;

/// The raw ceilings write records of key + value + this much framing, so a
/// 100-byte value makes the 116-byte record the issue measures.
pub const RAW_FRAMING: usize = 8;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
    W5,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
    ];
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "W1" => Ok(Workload::W1),
            "W2" => Ok(Workload::W2),
            "W3" => Ok(Workload::W3),
            "W4" => Ok(Workload::W4),
            "W5" => Ok(Workload::W5),
            _ => Err(format!("{s:?}: expected one of W1, W2, W3, W4, W5")),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Sizes and durations of one run.
#[derive(Clone, Debug)]
pub struct Scale {
    /// How long each W1 cell (and each raw fdatasync loop) appends.
    pub durable_run_for: Duration,
    pub w1_writers: &'static [usize],
    pub w1_value_size: usize,
    /// (value size, appends) for each W2 case.
    pub w2_cases: [(usize, u64); 2],
    pub w3_value_size: usize,
    pub w3_values: u64,
    pub w4_value_size: usize,
    /// Entries in the W4 log: its values add up to the 1 GiB.
    pub w4_entries: u64,
    /// The raw ceiling's one sequential write + fdatasync.
    pub raw_sequential_bytes: u64,
    /// A child still running after this long is killed and its cell failed.
    pub cell_timeout: Duration,
}

impl Scale {
    pub fn full() -> Scale {
        Scale {
            durable_run_for: Duration::from_secs(3),
            w1_writers: &[1, 4, 16, 64],
            w1_value_size: 100,
            w2_cases: [(100, 2_000_000), (KIB, 500_000)],
            w3_value_size: MIB,
            w3_values: 1024,
            w4_value_size: KIB,
            w4_entries: 1024 * 1024,
            raw_sequential_bytes: 256 * MIB as u64,
            cell_timeout: Duration::from_secs(600),
        }
    }

    pub fn quick() -> Scale {
        Scale {
            durable_run_for: Duration::from_millis(200),
            w1_writers: &[1, 4, 16, 64],
            w1_value_size: 100,
            w2_cases: [(100, 50_000), (KIB, 20_000)],
            w3_value_size: MIB,
            w3_values: 32,
            w4_value_size: KIB,
            w4_entries: 16 * 1024,
            raw_sequential_bytes: 16 * MIB as u64,
            cell_timeout: Duration::from_secs(120),
        }
    }
}

/// "100 B", "1 KiB", "1 MiB".
pub fn size_label(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// "1 GiB" for the W4 log, from its entries and value size.
pub fn volume_label(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else {
        size_label(usize::try_from(bytes).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_in_any_case() {
        assert_eq!("w3".parse::<Workload>(), Ok(Workload::W3));
        assert_eq!(" W5".parse::<Workload>(), Ok(Workload::W5));
        assert!("W6".parse::<Workload>().is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(100), "100 B");
        assert_eq!(size_label(KIB), "1 KiB");
        assert_eq!(size_label(MIB), "1 MiB");
        assert_eq!(volume_label(1 << 30), "1 GiB");
        assert_eq!(volume_label(16 * MIB as u64), "16 MiB");
    }

    #[test]
    fn the_full_w4_log_holds_one_gib_of_values() {
        let s = Scale::full();
        assert_eq!(s.w4_entries * s.w4_value_size as u64, 1 << 30);
    }
}
