//! Logical entries: their bytes, and how kevo cuts them into records.
//!
//! An entry is `op u8 | seq u64 | key_len u32 | key | value_len u32 | value`
//! (no value fields for Delete). One that fits in [`MAX_PAYLOAD`] is one Full
//! record. A larger one is cut the way kevo cuts it: the First record holds the
//! op, the sequence, the key length and as much of the key as fits; everything
//! after that (rest of key, value length, value) is cut into full-sized Middle
//! records and a final, never empty, Last record.

use super::batch::{BatchView, BODY_PREFIX};
use super::record::{RecordType, HEADER_SIZE, MAX_PAYLOAD};
use super::Cursor;

/// Bytes before the key: op (1), sequence (8), key length (4).
pub const ENTRY_PREFIX: usize = 13;

/// Op byte of a batch entry, in either of its two forms.
pub const OP_BATCH: u8 = 4;

/// The operation a log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Set a key to a value.
    Put,
    /// Remove a key; carries no value.
    Delete,
    /// Merge an operand into a key's value.
    Merge,
}

impl Op {
    /// The op byte written to disk.
    pub fn to_byte(self) -> u8 {
        match self {
            Op::Put => 1,
            Op::Delete => 2,
            Op::Merge => 3,
        }
    }

    /// Decodes a single-operation op byte (not a batch).
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Op::Put),
            2 => Some(Op::Delete),
            3 => Some(Op::Merge),
            _ => None,
        }
    }

    /// Whether entries of this op carry a value.
    pub fn has_value(self) -> bool {
        self != Op::Delete
    }

    /// Lower-case name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Delete => "delete",
            Op::Merge => "merge",
        }
    }
}

/// A key, value or batch body is longer than the format's u32 length fields allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The length that does not fit.
    pub len: u64,
}

/// Largest key, value or batch body the format can describe.
pub const MAX_FIELD_LEN: u64 = u32::MAX as u64;

fn field_len(len: usize) -> Result<u32, TooLarge> {
    u32::try_from(len).map_err(|_| TooLarge { len: len as u64 })
}

/// Length of the entry bytes for one operation.
pub fn entry_len(op: Op, key_len: usize, value_len: usize) -> u64 {
    let mut len = ENTRY_PREFIX as u64 + key_len as u64;
    if op.has_value() {
        len += 4 + value_len as u64;
    }
    len
}

/// Bytes on disk, headers included, of an entry of `entry_len` bytes whose key
/// field is `key_len` long.
pub fn encoded_len(entry_len: u64, key_len: u64) -> u64 {
    let payload = MAX_PAYLOAD as u64;
    if entry_len <= payload {
        return HEADER_SIZE as u64 + entry_len;
    }
    let first = ENTRY_PREFIX as u64 + key_len.min(payload - ENTRY_PREFIX as u64);
    let rest = entry_len - first;
    let records = 1 + rest.div_ceil(payload);
    records * HEADER_SIZE as u64 + entry_len
}

/// Streams the bytes of one entry into records, cutting them as kevo does.
///
/// Each record's header is reserved when the record opens and filled in
/// (length, type, checksum) when its last byte arrives, so the entry is encoded
/// straight into `out` with no intermediate copy.
pub(crate) struct RecordSink<'a> {
    out: &'a mut Vec<u8>,
    header_at: usize,
    kind: RecordType,
    room: usize,
    after: u64,
}

impl<'a> RecordSink<'a> {
    /// Starts an entry of `entry_len` bytes whose key field is `key_len` bytes.
    pub(crate) fn new(out: &'a mut Vec<u8>, entry_len: u64, key_len: u64) -> Self {
        out.reserve(usize::try_from(encoded_len(entry_len, key_len)).unwrap_or(0));
        let mut sink = RecordSink {
            out,
            header_at: 0,
            kind: RecordType::Full,
            room: 0,
            after: 0,
        };
        let payload = MAX_PAYLOAD as u64;
        if entry_len <= payload {
            sink.open(RecordType::Full, entry_len as usize);
        } else {
            let first = ENTRY_PREFIX as u64 + key_len.min(payload - ENTRY_PREFIX as u64);
            sink.after = entry_len - first;
            sink.open(RecordType::First, first as usize);
        }
        sink
    }

    fn open(&mut self, kind: RecordType, room: usize) {
        self.header_at = self.out.len();
        self.out.extend_from_slice(&[0; HEADER_SIZE]);
        self.kind = kind;
        self.room = room;
    }

    /// Appends entry bytes, closing and opening records as they fill.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            debug_assert!(self.room > 0, "more bytes pushed than the entry length");
            let n = self.room.min(bytes.len());
            let (now, later) = bytes.split_at(n);
            self.out.extend_from_slice(now);
            bytes = later;
            self.room -= n;
            if self.room == 0 {
                self.close_record();
            }
        }
    }

    fn close_record(&mut self) {
        fill_header(self.out, self.header_at, self.kind);
        if self.after > 0 {
            let room = self.after.min(MAX_PAYLOAD as u64);
            self.after -= room;
            let kind = if self.after > 0 {
                RecordType::Middle
            } else {
                RecordType::Last
            };
            self.open(kind, room as usize);
        }
    }

    /// Whether every byte of the entry has been pushed.
    pub(crate) fn is_complete(&self) -> bool {
        self.room == 0 && self.after == 0
    }
}

/// Appends the records of a single Put, Delete or Merge to `out`.
///
/// `value` is ignored for [`Op::Delete`]. Produces exactly the bytes kevo's
/// `WAL.Append` writes for the same entry.
pub fn encode_entry(
    out: &mut Vec<u8>,
    op: Op,
    seq: u64,
    key: &[u8],
    value: &[u8],
) -> Result<(), TooLarge> {
    let key_len = field_len(key.len())?;
    let value_len = if op.has_value() {
        field_len(value.len())?
    } else {
        0
    };
    let len = entry_len(op, key.len(), value.len());
    if len <= MAX_PAYLOAD as u64 {
        // The common case, one Full record: written in one pass, without
        // the record cutting.
        let header_at = out.len();
        out.reserve(HEADER_SIZE + len as usize);
        out.extend_from_slice(&[0; HEADER_SIZE]);
        out.push(op.to_byte());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        if op.has_value() {
            out.extend_from_slice(&value_len.to_le_bytes());
            out.extend_from_slice(value);
        }
        fill_header(out, header_at, RecordType::Full);
        return Ok(());
    }
    let mut sink = RecordSink::new(out, len, key_len.into());
    sink.push(&[op.to_byte()]);
    sink.push(&seq.to_le_bytes());
    sink.push(&key_len.to_le_bytes());
    sink.push(key);
    if op.has_value() {
        sink.push(&value_len.to_le_bytes());
        sink.push(value);
    }
    debug_assert!(sink.is_complete());
    Ok(())
}

/// Fills in the header of the record of type `kind` whose header starts at
/// `header_at` and whose payload runs to the end of `out`.
fn fill_header(out: &mut [u8], header_at: usize, kind: RecordType) {
    if let Some((header, payload)) = out
        .get_mut(header_at..)
        .and_then(|r| r.split_at_mut_checked(HEADER_SIZE))
    {
        let crc = super::record::checksum(payload).to_le_bytes();
        let len = (payload.len() as u16).to_le_bytes();
        header.copy_from_slice(&[crc[0], crc[1], crc[2], crc[3], len[0], len[1], kind as u8]);
    }
}

/// A decoded entry, borrowing from the entry bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryView<'a> {
    /// One Put, Delete or Merge.
    Single(OpView<'a>),
    /// The 13-byte header of a header-form batch: `count` ordinary entries
    /// with sequences `seq`, `seq + 1`, … follow it.
    BatchHeader {
        /// Sequence of the first entry of the batch.
        seq: u64,
        /// Number of entries that follow.
        count: u32,
    },
    /// A single-record-form batch, already validated.
    Batch(BatchView<'a>),
}

/// One operation, borrowing its key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpView<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Operation.
    pub op: Op,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes; `None` exactly for deletes.
    pub value: Option<&'a [u8]>,
}

/// Why a checksum-valid entry's bytes are still not a valid entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Fewer than 13 bytes.
    #[error("entry is {len} bytes, shorter than the 13-byte minimum")]
    TooShort {
        /// Entry length.
        len: usize,
    },
    /// The op byte is not Put, Delete, Merge or Batch.
    #[error("unknown operation type {0}")]
    UnknownOp(u8),
    /// A batch operation is itself a batch.
    #[error("a batch operation has the batch op type")]
    NestedBatch,
    /// A key length runs past the end of the entry.
    #[error("key length {len} runs past the end of the entry")]
    KeyOverrun {
        /// Stored key length.
        len: u32,
    },
    /// The value length field is missing.
    #[error("the value length field is missing")]
    MissingValueLength,
    /// A value length runs past the end of the entry.
    #[error("value length {len} runs past the end of the entry")]
    ValueOverrun {
        /// Stored value length.
        len: u32,
    },
    /// Bytes remain after the last field.
    #[error("{extra} unexpected bytes after the last field")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// A batch's operation count is more than its bytes hold.
    #[error("the batch claims {count} operations, but its bytes end after {found}")]
    BatchCountOverrun {
        /// The count the batch claims.
        count: u32,
        /// Operations its bytes hold.
        found: u32,
    },
    /// A single-record batch is too short to hold its count and sequence.
    #[error("batch body is {len} bytes, shorter than its 12-byte header")]
    BatchBodyTooShort {
        /// Body length.
        len: usize,
    },
    /// A single-record batch's body names a different sequence than its entry.
    #[error("batch body sequence {body} differs from entry sequence {entry}")]
    BatchSeqMismatch {
        /// Sequence in the entry prefix.
        entry: u64,
        /// Sequence in the batch body.
        body: u64,
    },
    /// A single-record batch carries a non-empty value.
    #[error("batch entry carries a {len}-byte value where none belongs")]
    BatchValueNotEmpty {
        /// Value length.
        len: usize,
    },
    /// A batch's sequence numbers would pass `u64::MAX`.
    #[error("batch sequence numbers overflow")]
    SequenceOverflow,
}

/// Decodes entry bytes (a Full record's payload or reassembled fragments).
pub fn decode_entry(bytes: &[u8]) -> Result<EntryView<'_>, EntryError> {
    let mut cur = Cursor::new(bytes);
    let (op_byte, seq, key_len) = match (cur.u8(), cur.u64(), cur.u32()) {
        (Some(op), Some(seq), Some(key_len)) => (op, seq, key_len),
        _ => return Err(EntryError::TooShort { len: bytes.len() }),
    };
    if op_byte == OP_BATCH && cur.is_empty() {
        // Header form: the 4 bytes read as a key length are the entry count.
        return Ok(EntryView::BatchHeader {
            seq,
            count: key_len,
        });
    }
    let op = match Op::from_byte(op_byte) {
        Some(op) => Some(op),
        None if op_byte == OP_BATCH => None,
        None => return Err(EntryError::UnknownOp(op_byte)),
    };
    let key = cur
        .take(key_len as usize)
        .ok_or(EntryError::KeyOverrun { len: key_len })?;
    let value = if op.is_some_and(|op| !op.has_value()) {
        None
    } else {
        let len = cur.u32().ok_or(EntryError::MissingValueLength)?;
        Some(
            cur.take(len as usize)
                .ok_or(EntryError::ValueOverrun { len })?,
        )
    };
    if !cur.is_empty() {
        return Err(EntryError::TrailingBytes {
            extra: cur.remaining(),
        });
    }
    match op {
        Some(op) => Ok(EntryView::Single(OpView {
            seq,
            op,
            key,
            value,
        })),
        None => {
            let value_len = value.map_or(0, <[u8]>::len);
            if value_len != 0 {
                return Err(EntryError::BatchValueNotEmpty { len: value_len });
            }
            BatchView::parse(seq, key).map(EntryView::Batch)
        }
    }
}

/// Appends the records of a single-record-form batch (kevo's `Batch.Write`)
/// whose encoded operations are `ops`.
pub fn encode_batch(out: &mut Vec<u8>, seq: u64, count: u32, ops: &[u8]) -> Result<(), TooLarge> {
    let body_len = field_len(BODY_PREFIX + ops.len())?;
    let entry_len = ENTRY_PREFIX as u64 + u64::from(body_len) + 4;
    let mut sink = RecordSink::new(out, entry_len, body_len.into());
    sink.push(&[OP_BATCH]);
    sink.push(&seq.to_le_bytes());
    sink.push(&body_len.to_le_bytes());
    sink.push(&count.to_le_bytes());
    sink.push(&seq.to_le_bytes());
    sink.push(ops);
    sink.push(&0u32.to_le_bytes());
    debug_assert!(sink.is_complete());
    Ok(())
}

/// Appends a header-form batch (kevo's `WAL.AppendBatch`): a 13-byte header
/// record and one entry per operation with consecutive sequences.
///
/// ironwal writes batches in the single-record form; this exists so tools and
/// tests can produce the other form kevo files contain.
pub fn encode_header_batch(
    out: &mut Vec<u8>,
    seq: u64,
    ops: &[(Op, &[u8], &[u8])],
) -> Result<(), TooLarge> {
    let count = field_len(ops.len())?;
    let mut header = RecordSink::new(out, ENTRY_PREFIX as u64, 0);
    header.push(&[OP_BATCH]);
    header.push(&seq.to_le_bytes());
    header.push(&count.to_le_bytes());
    debug_assert!(header.is_complete());
    for (i, (op, key, value)) in ops.iter().enumerate() {
        encode_entry(out, *op, seq.wrapping_add(i as u64), key, value)?;
    }
    Ok(())
}
