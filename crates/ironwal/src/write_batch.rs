//! [`WriteBatch`]: operations written atomically.

use crate::entry::EntryRef;
use crate::format::batch::{op_len, push_op, BODY_PREFIX};
use crate::format::entry::{ENTRY_PREFIX, MAX_FIELD_LEN};
use crate::format::{BatchOps, Op};
use crate::seq::Seq;

/// Operations that reach the log all together or not at all.
///
/// A batch is written as one logical entry (kevo's single-record form), so
/// one checksum covers every operation; its operations get consecutive
/// sequence numbers.
///
/// ```
/// # fn main() -> Result<(), ironwal::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use ironwal::{Options, Wal, WriteBatch};
///
/// let wal = Wal::open(dir.path(), Options::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"apple", b"red").delete(b"pear").merge(b"count", b"+1");
/// let first = wal.write_batch(&batch)?;
/// assert_eq!(wal.last_seq().get(), first.get() + 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The encoded operations, as they appear in the batch body.
    ops: Vec<u8>,
    count: u64,
    /// Set when an operation could not be encoded (a key or value over 4 GiB).
    oversized: Option<u64>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation of any kind (the value is ignored for
    /// [`Op::Delete`]), for code that copies operations from elsewhere.
    ///
    /// ```
    /// use ironwal::{Op, WriteBatch};
    ///
    /// let mut batch = WriteBatch::new();
    /// let ops: [(Op, &[u8], &[u8]); 2] = [(Op::Put, b"a", b"1"), (Op::Delete, b"b", b"")];
    /// for (op, key, value) in ops {
    ///     batch.push(op, key, value);
    /// }
    /// assert_eq!(batch.len(), 2);
    /// ```
    pub fn push(&mut self, op: Op, key: &[u8], value: &[u8]) -> &mut Self {
        if let Err(e) = push_op(&mut self.ops, op, key, value) {
            self.oversized.get_or_insert(e.len);
        }
        self.count += 1;
        self
    }

    /// Adds a Put.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.push(Op::Put, key, value)
    }

    /// Adds a Delete.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.push(Op::Delete, key, &[])
    }

    /// Adds a Merge.
    pub fn merge(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.push(Op::Merge, key, value)
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.count = 0;
        self.oversized = None;
    }

    /// Bytes of entry data the batch will take in the log (headers excluded).
    pub fn encoded_len(&self) -> u64 {
        ENTRY_PREFIX as u64 + BODY_PREFIX as u64 + self.ops.len() as u64 + 4
    }

    /// The operations, numbered from `first_seq`.
    pub fn iter(&self, first_seq: Seq) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        BatchOps::over(&self.ops, count, first_seq.get()).map(|op| EntryRef {
            seq: Seq::new(op.seq),
            op: op.op,
            key: op.key,
            value: op.value,
        })
    }

    /// The encoded operations and their count, once checked against the
    /// format's limits.
    pub(crate) fn encoded(&self) -> Result<(&[u8], u32), crate::Error> {
        use crate::error::Oversized;
        let too_large = |what, len, max| crate::Error::TooLarge { what, len, max };
        if let Some(len) = self.oversized {
            return Err(too_large(Oversized::BatchField, len, MAX_FIELD_LEN));
        }
        let count = u32::try_from(self.count)
            .map_err(|_| too_large(Oversized::BatchCount, self.count, u64::from(u32::MAX)))?;
        let body = BODY_PREFIX as u64 + self.ops.len() as u64;
        if body > MAX_FIELD_LEN {
            return Err(too_large(Oversized::Batch, body, MAX_FIELD_LEN));
        }
        Ok((&self.ops, count))
    }

    /// Bytes an operation adds to a batch (for callers that size batches).
    pub fn op_len(op: Op, key_len: usize, value_len: usize) -> usize {
        op_len(op, key_len, value_len)
    }
}
