//! Judging a recovered log: the checks every crash harness applies to what
//! it reads back, whatever crashed it (a simulated power loss, kill -9).
//!
//! This module only looks at entries; what counts as acknowledged, and so
//! what must be present, is each harness's business.

use std::collections::{BTreeMap, HashMap};

use ironwal::Entry;

use crate::workload::{judge, Key};

/// What [`examine`] found in a recovered log.
#[derive(Debug, Default)]
pub struct Findings {
    /// The workload key found at each sequence.
    pub present: HashMap<u64, Key>,
    /// Everything wrong, one sentence each: entries the workload never
    /// wrote, sequence gaps, duplicates, partial batches, and sequences
    /// holding another key than the one known for them.
    pub wrong: Vec<String>,
}

/// Checks a recovered log: sequences gap-free, every entry one the workload
/// could have written (see [`judge`]), no key twice, every batch whole with
/// consecutive sequences, and every sequence listed in `known` holding the
/// key known for it (a sequence missing altogether is for the caller to
/// judge: it may not have been acknowledged).
pub fn examine(entries: &[Entry], known: &BTreeMap<u64, Key>) -> Findings {
    let mut wrong = Vec::new();
    let mut batches: HashMap<(u32, u64), Vec<(u64, Key)>> = HashMap::new();
    let mut seen = HashMap::new();
    let mut prev: Option<u64> = None;
    for entry in entries {
        let seq = entry.seq.get();
        if let Some(prev) = prev {
            if seq != prev.wrapping_add(1) {
                wrong.push(format!("sequence {seq} follows {prev}"));
            }
        }
        prev = Some(seq);
        match judge(entry) {
            Err(e) => wrong.push(e),
            Ok(key) => {
                if let Some(expected) = known.get(&seq) {
                    if *expected != key {
                        wrong.push(format!("seq {seq} holds {key:?}, not {expected:?}"));
                    }
                }
                if seen.insert(key.encode(), seq).is_some() {
                    wrong.push(format!("{key:?} appears twice"));
                }
                batches
                    .entry((key.writer, key.serial))
                    .or_default()
                    .push((seq, key));
            }
        }
    }
    for ops in batches.values() {
        let size = ops[0].1.batch as usize;
        let whole = ops.len() == size
            && ops
                .iter()
                .enumerate()
                .all(|(i, (seq, key))| key.index as usize == i && *seq == ops[0].0 + i as u64);
        if !whole {
            wrong.push(format!(
                "batch {:?} recovered as {} of {size} operations",
                ops[0].1,
                ops.len()
            ));
        }
    }
    let present = entries
        .iter()
        .filter_map(|e| Some((e.seq.get(), Key::decode(&e.key)?)))
        .collect();
    Findings { present, wrong }
}

#[cfg(test)]
mod tests {
    use ironwal::{Op, Seq};

    use super::*;

    fn entry(seq: u64, key: Key) -> Entry {
        let planned = key.planned();
        Entry {
            seq: Seq::new(seq),
            op: planned.op,
            key: planned.key,
            value: planned.value,
        }
    }

    fn key(writer: u32, serial: u64, index: u32, batch: u32) -> Key {
        Key {
            writer,
            serial,
            index,
            batch,
            op: Op::Put,
            len: 3,
        }
    }

    #[test]
    fn a_whole_gap_free_log_has_no_findings() {
        let entries = [
            entry(5, key(0, 1, 0, 1)),
            entry(6, key(1, 1, 0, 2)),
            entry(7, key(1, 1, 1, 2)),
        ];
        let known = BTreeMap::from([(6, key(1, 1, 0, 2))]);
        let findings = examine(&entries, &known);
        assert!(findings.wrong.is_empty(), "{:?}", findings.wrong);
        assert_eq!(findings.present.len(), 3);
    }

    #[test]
    fn gaps_partial_batches_duplicates_and_swapped_keys_are_wrong() {
        let entries = [
            entry(1, key(0, 1, 0, 1)),
            entry(3, key(1, 1, 0, 2)),
            entry(4, key(0, 1, 0, 1)),
        ];
        let known = BTreeMap::from([(1, key(0, 2, 0, 1))]);
        let wrong = examine(&entries, &known).wrong;
        // A gap, a swapped key, a duplicate, and two broken batches.
        assert_eq!(wrong.len(), 5, "{wrong:?}");
    }

    #[test]
    fn an_entry_the_workload_never_wrote_is_wrong() {
        let mut bad = entry(1, key(0, 1, 0, 1));
        bad.value = Some(b"xyz".to_vec());
        assert_eq!(examine(&[bad], &BTreeMap::new()).wrong.len(), 1);
    }
}
