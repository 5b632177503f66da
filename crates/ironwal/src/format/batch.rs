//! The body of a single-record-form batch: `count u32 | seq u64`, then per
//! operation `op u8 | key_len u32 | key | value_len u32 | value` (no value
//! fields for Delete). The body is stored in the key field of an entry whose
//! op is Batch and whose value is empty.

use super::entry::{EntryError, Op, OpView, TooLarge, OP_BATCH};
use super::Cursor;

/// Bytes of the body before the first operation: count (4) and sequence (8).
pub const BODY_PREFIX: usize = 12;

/// Bytes an operation takes in a batch body.
pub fn op_len(op: Op, key_len: usize, value_len: usize) -> usize {
    let mut len = 1 + 4 + key_len;
    if op.has_value() {
        len += 4 + value_len;
    }
    len
}

/// Appends one encoded operation to a batch body under construction.
pub fn push_op(ops: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8]) -> Result<(), TooLarge> {
    let key_len = u32::try_from(key.len()).map_err(|_| TooLarge {
        len: key.len() as u64,
    })?;
    let value_len = if op.has_value() {
        u32::try_from(value.len()).map_err(|_| TooLarge {
            len: value.len() as u64,
        })?
    } else {
        0
    };
    ops.reserve(op_len(op, key.len(), value.len()));
    ops.push(op.to_byte());
    ops.extend_from_slice(&key_len.to_le_bytes());
    ops.extend_from_slice(key);
    if op.has_value() {
        ops.extend_from_slice(&value_len.to_le_bytes());
        ops.extend_from_slice(value);
    }
    Ok(())
}

/// A validated single-record batch: iterating it cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchView<'a> {
    seq: u64,
    count: u32,
    ops: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Validates a batch body found in an entry with sequence `seq`.
    pub fn parse(seq: u64, body: &'a [u8]) -> Result<Self, EntryError> {
        let mut cur = Cursor::new(body);
        let (count, body_seq) = match (cur.u32(), cur.u64()) {
            (Some(count), Some(seq)) => (count, seq),
            _ => return Err(EntryError::BatchBodyTooShort { len: body.len() }),
        };
        if body_seq != seq {
            return Err(EntryError::BatchSeqMismatch {
                entry: seq,
                body: body_seq,
            });
        }
        if count > 0 && seq.checked_add(u64::from(count) - 1).is_none() {
            return Err(EntryError::SequenceOverflow);
        }
        let ops = cur.rest();
        let mut check = Cursor::new(ops);
        for found in 0..count {
            if check.is_empty() {
                return Err(EntryError::BatchCountOverrun { count, found });
            }
            next_op(&mut check, seq)?;
        }
        if !check.is_empty() {
            return Err(EntryError::TrailingBytes {
                extra: check.remaining(),
            });
        }
        Ok(BatchView { seq, count, ops })
    }

    /// Sequence of the first operation.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of operations.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The operations, with sequences `seq`, `seq + 1`, …
    pub fn iter(&self) -> BatchOps<'a> {
        BatchOps {
            cur: Cursor::new(self.ops),
            seq: self.seq,
            left: self.count,
        }
    }
}

/// Decodes one batch operation, giving it sequence `seq`.
fn next_op<'a>(cur: &mut Cursor<'a>, seq: u64) -> Result<OpView<'a>, EntryError> {
    let byte = cur.u8().ok_or(EntryError::TrailingBytes { extra: 0 })?;
    let op = match Op::from_byte(byte) {
        Some(op) => op,
        None if byte == OP_BATCH => return Err(EntryError::NestedBatch),
        None => return Err(EntryError::UnknownOp(byte)),
    };
    let key_len = cur.u32().ok_or(EntryError::KeyOverrun { len: 0 })?;
    let key = cur
        .take(key_len as usize)
        .ok_or(EntryError::KeyOverrun { len: key_len })?;
    let value = if op.has_value() {
        let len = cur.u32().ok_or(EntryError::MissingValueLength)?;
        Some(
            cur.take(len as usize)
                .ok_or(EntryError::ValueOverrun { len })?,
        )
    } else {
        None
    };
    Ok(OpView {
        seq,
        op,
        key,
        value,
    })
}

/// Iterator over the operations of a [`BatchView`] or a batch under construction.
#[derive(Clone, Debug)]
pub struct BatchOps<'a> {
    cur: Cursor<'a>,
    seq: u64,
    left: u32,
}

impl<'a> BatchOps<'a> {
    /// Iterates encoded operations that were built with [`push_op`], numbering
    /// them from `seq`.
    pub fn over(ops: &'a [u8], count: u32, seq: u64) -> Self {
        BatchOps {
            cur: Cursor::new(ops),
            seq,
            left: count,
        }
    }
}

impl<'a> Iterator for BatchOps<'a> {
    type Item = OpView<'a>;

    fn next(&mut self) -> Option<OpView<'a>> {
        if self.left == 0 {
            return None;
        }
        // The body was validated (or built by us), so this only fails on a bug;
        // ending the iteration early is the non-panicking answer.
        let op = next_op(&mut self.cur, self.seq).ok()?;
        self.seq = self.seq.wrapping_add(1);
        self.left -= 1;
        Some(op)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A count far beyond the operations present is named as such, not as
    /// "0 unexpected bytes".
    #[test]
    fn a_count_beyond_the_bytes_is_named() {
        let mut body = Vec::new();
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        body.extend_from_slice(&7u64.to_le_bytes());
        push_op(&mut body, Op::Put, b"k", b"v").unwrap();
        let error = BatchView::parse(7, &body).unwrap_err();
        assert_eq!(
            error,
            EntryError::BatchCountOverrun {
                count: u32::MAX,
                found: 1
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("4294967295") && message.contains("after 1"),
            "{message}"
        );
    }
}
