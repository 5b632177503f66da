//! Self-describing operations: every key says who wrote it, what operation
//! it is, which batch it belongs to and how long its value is, and the value
//! is a function of the key. A checker can therefore judge any entry it
//! finds in a recovered log without knowing whether it was acknowledged.

use ironwal::{Entry, Op, Seq, Wal, WriteBatch};

use crate::rng::Rng;

/// One operation as the workload wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The key (self-describing, see [`Key`]).
    pub key: Vec<u8>,
    /// The operation.
    pub op: Op,
    /// The value (`None` for deletes).
    pub value: Option<Vec<u8>>,
}

/// What a key says about its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Writer (thread or process) that wrote it.
    pub writer: u32,
    /// The writer's operation counter (a batch uses one for all its ops).
    pub serial: u64,
    /// Position inside its batch (0 for a single operation).
    pub index: u32,
    /// Operations in its batch (1 for a single operation).
    pub batch: u32,
    /// The operation.
    pub op: Op,
    /// Length of the value.
    pub len: u32,
}

fn op_char(op: Op) -> char {
    match op {
        Op::Put => 'p',
        Op::Delete => 'd',
        Op::Merge => 'm',
    }
}

impl Key {
    /// The key bytes.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "w{}/s{}/i{}/b{}/{}/l{}",
            self.writer,
            self.serial,
            self.index,
            self.batch,
            op_char(self.op),
            self.len
        )
        .into_bytes()
    }

    /// Parses key bytes; `None` if they are not a workload key.
    pub fn decode(bytes: &[u8]) -> Option<Key> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split('/');
        let mut field =
            |prefix: char| -> Option<u64> { parts.next()?.strip_prefix(prefix)?.parse().ok() };
        let writer = u32::try_from(field('w')?).ok()?;
        let serial = field('s')?;
        let index = u32::try_from(field('i')?).ok()?;
        let batch = u32::try_from(field('b')?).ok()?;
        let op = match parts.next()? {
            "p" => Op::Put,
            "d" => Op::Delete,
            "m" => Op::Merge,
            _ => return None,
        };
        let len = u32::try_from(parts.next()?.strip_prefix('l')?.parse::<u64>().ok()?).ok()?;
        if parts.next().is_some() || index >= batch {
            return None;
        }
        Some(Key {
            writer,
            serial,
            index,
            batch,
            op,
            len,
        })
    }

    /// The value an entry with this key must carry.
    pub fn value(&self) -> Option<Vec<u8>> {
        if self.op == Op::Delete {
            return None;
        }
        let seed = u64::from(self.writer) << 48 ^ self.serial << 8 ^ u64::from(self.index);
        Some(Rng::new(seed).bytes(self.len as usize))
    }

    /// The planned operation for this key.
    pub fn planned(&self) -> Planned {
        Planned {
            key: self.encode(),
            op: self.op,
            value: self.value(),
        }
    }
}

/// Why a recovered entry is not one the workload could have written.
pub fn judge(entry: &Entry) -> Result<Key, String> {
    let key = Key::decode(&entry.key).ok_or_else(|| {
        format!(
            "seq {}: key {:?} is not a workload key",
            entry.seq,
            String::from_utf8_lossy(&entry.key)
        )
    })?;
    if key.op != entry.op {
        return Err(format!(
            "seq {}: op {:?} but the key says {:?}",
            entry.seq, entry.op, key.op
        ));
    }
    if key.value() != entry.value {
        return Err(format!(
            "seq {}: value differs from what key {:?} implies",
            entry.seq, key
        ));
    }
    Ok(key)
}

/// Picks the next operation (or batch) a writer performs.
pub fn plan(rng: &mut Rng, writer: u32, serial: u64) -> Vec<Key> {
    let batch = match rng.below(100) {
        0..=9 => 2 + rng.below(5) as u32,
        _ => 1,
    };
    (0..batch)
        .map(|index| {
            let op = match rng.below(20) {
                0 => Op::Delete,
                1 => Op::Merge,
                _ => Op::Put,
            };
            let len = match rng.below(50) {
                0 => 33_000 + rng.below(40_000) as u32,
                1..=4 => rng.below(4_000) as u32,
                _ => rng.below(200) as u32,
            };
            Key {
                writer,
                serial,
                index,
                batch,
                op,
                len: if op == Op::Delete { 0 } else { len },
            }
        })
        .collect()
}

/// Appends what [`plan`] picked: one operation on its own, several as one
/// atomic batch (built in `batch`, which is cleared first). Returns the
/// sequence of the first operation; the others follow it.
pub fn append(wal: &Wal, keys: &[Key], batch: &mut WriteBatch) -> ironwal::Result<Seq> {
    if let [key] = keys {
        let planned = key.planned();
        let value = planned.value.as_deref().unwrap_or_default();
        return match key.op {
            Op::Put => wal.put(&planned.key, value),
            Op::Delete => wal.delete(&planned.key),
            Op::Merge => wal.merge(&planned.key, value),
        };
    }
    batch.clear();
    for key in keys {
        let planned = key.planned();
        let value = planned.value.as_deref().unwrap_or_default();
        batch.push(key.op, &planned.key, value);
    }
    wal.write_batch(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_values_are_deterministic() {
        let mut rng = Rng::new(7);
        for serial in 0..500 {
            for key in plan(&mut rng, 3, serial) {
                assert_eq!(Key::decode(&key.encode()), Some(key));
                assert_eq!(key.value(), key.value());
                assert_eq!(key.value().map_or(0, |v| v.len()), key.len as usize);
            }
        }
        assert_eq!(
            Key::decode(b"w1/s2/i3/b3/p/l4"),
            None,
            "index must be below batch"
        );
        assert_eq!(Key::decode(b"garbage"), None);
    }
}
