//! The result rows, ironwal's ratios, kevo's quoted figures, and the two ways
//! of printing them: an aligned table or one JSON object per line.

use std::io::{self, Write};

use serde::Serialize;

use crate::machine::Machine;
use crate::plan::Workload;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Measured,
    /// A figure copied from the issue, not measured by this run.
    Quoted,
    /// Not applicable, or failed: `note` says why.
    #[serde(rename = "na")]
    NA,
}

/// Higher is better for every metric but peak RSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Metric {
    #[serde(rename = "appends/s")]
    AppendsPerSec,
    #[serde(rename = "MB/s")]
    MbPerSec,
    #[serde(rename = "MiB peak RSS")]
    PeakRssMib,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::AppendsPerSec => "appends/s",
            Metric::MbPerSec => "MB/s",
            Metric::PeakRssMib => "MiB RSS",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub workload: Workload,
    /// The workload's parameters, e.g. "100 B, 16 writers"; rows with the
    /// same workload and case are compared.
    pub case: String,
    pub peer: String,
    pub status: Status,
    pub metric: Metric,
    pub value: Option<f64>,
    pub mb_per_sec: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Appends made or entries replayed, and in how long.
    pub ops: Option<u64>,
    pub secs: Option<f64>,
    pub fsyncs: Option<u64>,
    /// ironwal's figure divided by this row's (same workload and case).
    pub ironwal_ratio: Option<f64>,
    /// ironwal's p99 latency divided by this row's.
    pub ironwal_p99_ratio: Option<f64>,
    pub note: String,
}

impl Row {
    pub fn new(workload: Workload, case: &str, peer: &str, metric: Metric) -> Row {
        Row {
            workload,
            case: case.to_owned(),
            peer: peer.to_owned(),
            status: Status::Measured,
            metric,
            value: None,
            mb_per_sec: None,
            p50_us: None,
            p99_us: None,
            ops: None,
            secs: None,
            fsyncs: None,
            ironwal_ratio: None,
            ironwal_p99_ratio: None,
            note: String::new(),
        }
    }

    pub fn not_applicable(mut self, why: impl Into<String>) -> Row {
        self.status = Status::NA;
        self.note = why.into();
        self
    }

    fn is_ironwal(&self) -> bool {
        self.peer == "ironwal"
    }
}

/// kevo's figures from issue 4 ("measured with fio and a C loop" on the
/// development machine), for the rows of `workload` and `case`.
pub fn kevo_row(workload: Workload, case: &str, metric: Metric) -> Row {
    let row = Row::new(workload, case, "kevo", metric);
    let (value, detail) = match workload {
        Workload::W1 => (7_100.0, "~7,100/s at 1 to 64 goroutines"),
        Workload::W2 if case.starts_with("100 B") => (5.2e6, "5.2 M/s"),
        Workload::W2 => return row.not_applicable("issue 4 quotes no figure for 1 KiB values"),
        Workload::W3 => (1_600.0, "~1.6 GB/s"),
        Workload::W4 => (1_800.0, "~1.8 GB/s"),
        Workload::W5 => (20.0, "~20 MiB"),
    };
    Row {
        status: Status::Quoted,
        value: Some(value),
        note: format!("not measured: issue 4 says {detail} (Go, not built here)"),
        ..row
    }
}

/// Fills in ironwal's ratio to every other row of the same workload and case.
pub fn compute_ratios(rows: &mut [Row]) {
    let ironwal: Vec<(Workload, String, Option<f64>, Option<f64>)> = rows
        .iter()
        .filter(|r| r.is_ironwal() && r.status == Status::Measured)
        .map(|r| (r.workload, r.case.clone(), r.value, r.p99_us))
        .collect();
    for row in rows.iter_mut().filter(|r| !r.is_ironwal()) {
        let Some((_, _, value, p99)) = ironwal
            .iter()
            .find(|(w, case, ..)| *w == row.workload && *case == row.case)
        else {
            continue;
        };
        let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        row.ironwal_ratio = ratio(*value, row.value);
        row.ironwal_p99_ratio = ratio(*p99, row.p99_us);
    }
}

pub fn print_json(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, row)?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn print_header(
    out: &mut dyn Write,
    machine: &Machine,
    cargo_command: &str,
    quick: bool,
) -> io::Result<()> {
    writeln!(
        out,
        "ironwal-bench{}",
        if quick {
            " (--quick: smoke-test sizes, not for quoting)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  machine:    {} cores, {}, {} RAM",
        machine.cores, machine.cpu, machine.memory
    )?;
    writeln!(out, "  kernel:     {}", machine.kernel)?;
    writeln!(out, "  filesystem: {}", machine.filesystem)?;
    writeln!(out, "  command:    {}", machine.command)?;
    writeln!(out, "  reproduce:  {cargo_command}")?;
    for line in [
        "  units:      MB = 10^6 bytes of key + value (8-byte keys, distinct per append)",
        "  W4, W5:     replay from a warm page cache; W5 is the replay process's VmHWM",
        "  ratio:      ironwal's figure / the row's: above 1 is ironwal ahead,",
        "              except for W5 (RSS) and p99, where below 1 is ironwal ahead",
    ] {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub fn print_table(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    const HEADINGS: [&str; 9] = [
        "workload",
        "case",
        "peer",
        "figure",
        "unit",
        "p50 us",
        "p99 us",
        "ironwal/peer",
        "note",
    ];
    let cells: Vec<[String; 9]> = rows.iter().map(render).collect();
    let mut widths = HEADINGS.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(8) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String; 9]| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            // Text left-aligned, figures right-aligned.
            if matches!(i, 3 | 5 | 6 | 7) {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else if i == 8 {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
            if i < 8 {
                text.push_str("  ");
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &HEADINGS.map(str::to_owned))?;
    let total: usize = widths.iter().take(8).map(|w| w + 2).sum::<usize>() + 4;
    writeln!(out, "{}", "-".repeat(total))?;
    let mut previous: Option<(Workload, &str)> = None;
    for (row, cells) in rows.iter().zip(&cells) {
        let group = (row.workload, row.case.as_str());
        if previous.is_some_and(|p| p != group) {
            writeln!(out)?;
        }
        previous = Some(group);
        line(out, cells)?;
    }
    Ok(())
}

fn render(row: &Row) -> [String; 9] {
    let dash = || "-".to_owned();
    let figure = match (row.status, row.value) {
        (Status::NA, _) | (_, None) => "N/A".to_owned(),
        (_, Some(v)) => format_figure(v, row.metric),
    };
    let unit = match (row.metric, row.mb_per_sec) {
        (Metric::AppendsPerSec, Some(mb)) => format!("appends/s ({mb:.0} MB/s)"),
        (metric, _) => metric.unit().to_owned(),
    };
    let us = |v: Option<f64>| v.map_or_else(dash, |v| format!("{v:.1}"));
    let ratio = if row.is_ironwal() {
        dash()
    } else {
        match (row.ironwal_ratio, row.ironwal_p99_ratio) {
            (Some(r), Some(p)) => format!("{} (p99 {})", format_ratio(r), format_ratio(p)),
            (Some(r), None) => format_ratio(r),
            _ => dash(),
        }
    };
    let mut note = row.note.clone();
    if let (Some(fsyncs), Some(ops)) = (row.fsyncs, row.ops) {
        // The raw loops sync every record: saying so on each row is noise.
        if fsyncs > 0 && row.metric == Metric::AppendsPerSec && !row.peer.starts_with("raw") {
            let per = ops as f64 / fsyncs as f64;
            let extra = format!("{per:.1} appends per fsync");
            note = if note.is_empty() {
                extra
            } else {
                format!("{extra}; {note}")
            };
        }
    }
    let peer = match row.status {
        Status::Quoted => format!("{} (quoted)", row.peer),
        _ => row.peer.clone(),
    };
    [
        row.workload.to_string(),
        row.case.clone(),
        peer,
        figure,
        unit,
        us(row.p50_us),
        us(row.p99_us),
        ratio,
        note,
    ]
}

/// "1.52x"; small ratios keep two significant digits rather than read 0.00x.
fn format_ratio(r: f64) -> String {
    if r >= 0.01 {
        format!("{r:.2}x")
    } else {
        format!("{r:.1e}x")
    }
}

/// 1,234,567 for rates; one decimal below 100.
fn format_figure(v: f64, metric: Metric) -> String {
    if metric == Metric::PeakRssMib || v < 100.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(peer: &str, value: f64) -> Row {
        Row {
            value: Some(value),
            ..Row::new(Workload::W2, "100 B, 1 writer", peer, Metric::AppendsPerSec)
        }
    }

    #[test]
    fn ratios_compare_rows_of_the_same_case_only() {
        let mut rows = vec![
            measured("ironwal", 300.0),
            measured("fjall", 100.0),
            Row {
                case: "1 KiB, 1 writer".to_owned(),
                ..measured("walrus-rust", 10.0)
            },
        ];
        compute_ratios(&mut rows);
        assert_eq!(rows[0].ironwal_ratio, None);
        assert_eq!(rows[1].ironwal_ratio, Some(3.0));
        assert_eq!(rows[2].ironwal_ratio, None);
    }

    #[test]
    fn figures_get_thousands_separators() {
        assert_eq!(
            format_figure(1_234_567.4, Metric::AppendsPerSec),
            "1,234,567"
        );
        assert_eq!(format_figure(999.0, Metric::MbPerSec), "999");
        assert_eq!(format_figure(12.34, Metric::MbPerSec), "12.3");
        assert_eq!(format_figure(1234.5, Metric::PeakRssMib), "1234.5");
    }

    #[test]
    fn small_ratios_do_not_read_as_zero() {
        assert_eq!(format_ratio(1.5), "1.50x");
        assert_eq!(format_ratio(0.0015), "1.5e-3x");
    }

    #[test]
    fn kevo_has_no_1_kib_figure() {
        assert_eq!(
            kevo_row(Workload::W2, "1 KiB, 1 writer", Metric::AppendsPerSec).status,
            Status::NA
        );
        assert_eq!(
            kevo_row(Workload::W2, "100 B, 1 writer", Metric::AppendsPerSec).value,
            Some(5.2e6)
        );
    }
}
