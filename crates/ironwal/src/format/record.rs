//! Physical records: a 7-byte header (CRC-32 of the payload, u16 length, type)
//! followed by at most [`MAX_PAYLOAD`] payload bytes.

/// Size of a record header: CRC (4), payload length (2), record type (1).
pub const HEADER_SIZE: usize = 7;

/// Largest payload a single record may carry.
pub const MAX_PAYLOAD: usize = 32 * 1024;

/// Largest record on disk, header included.
pub const MAX_RECORD: usize = HEADER_SIZE + MAX_PAYLOAD;

/// The role of a physical record within a logical entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// A whole logical entry in one record.
    Full = 1,
    /// The first fragment of an entry too large for one record.
    First = 2,
    /// A fragment between `First` and `Last`.
    Middle = 3,
    /// The final fragment of an entry.
    Last = 4,
}

impl RecordType {
    /// Decodes the type byte of a record header.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Full),
            2 => Some(Self::First),
            3 => Some(Self::Middle),
            4 => Some(Self::Last),
            _ => None,
        }
    }
}

/// A record header as read from disk, before any validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// Stored CRC-32 of the payload.
    pub checksum: u32,
    /// Stored payload length.
    pub len: u16,
    /// Stored record type byte.
    pub kind: u8,
}

impl RawHeader {
    /// Splits the seven header bytes into their fields.
    pub fn parse(bytes: [u8; HEADER_SIZE]) -> Self {
        let [c0, c1, c2, c3, l0, l1, kind] = bytes;
        Self {
            checksum: u32::from_le_bytes([c0, c1, c2, c3]),
            len: u16::from_le_bytes([l0, l1]),
            kind,
        }
    }

    /// Checks the fields that can be judged without the payload.
    ///
    /// kevo never writes an empty record, so a zero length is rejected too: it
    /// keeps runs of zeros and near-zeros from passing as records.
    pub fn validate(&self) -> Result<RecordType, HeaderProblem> {
        let kind = RecordType::from_byte(self.kind).ok_or(HeaderProblem::InvalidType(self.kind))?;
        if usize::from(self.len) > MAX_PAYLOAD {
            return Err(HeaderProblem::TooLong(self.len));
        }
        if self.len == 0 {
            return Err(HeaderProblem::Empty);
        }
        Ok(kind)
    }
}

/// Why a record header cannot be valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The type byte is not 1–4.
    InvalidType(u8),
    /// The length exceeds [`MAX_PAYLOAD`].
    TooLong(u16),
    /// The length is zero.
    Empty,
}

/// CRC-32 (IEEE) of a payload, as stored in the header.
pub fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Appends one complete record to `out`.
///
/// The caller guarantees `1 <= payload.len() <= MAX_PAYLOAD`.
pub fn write_record(out: &mut Vec<u8>, kind: RecordType, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_parse() {
        let mut out = Vec::new();
        write_record(&mut out, RecordType::Last, b"abc");
        let header = RawHeader::parse(out[..HEADER_SIZE].try_into().unwrap());
        assert_eq!(header.len, 3);
        assert_eq!(header.validate(), Ok(RecordType::Last));
        assert_eq!(header.checksum, checksum(b"abc"));
        assert_eq!(&out[HEADER_SIZE..], b"abc");
    }

    #[test]
    fn bad_record_type_is_rejected() {
        for kind in [0u8, 5, 255] {
            let header = RawHeader {
                checksum: 0,
                len: 1,
                kind,
            };
            assert_eq!(header.validate(), Err(HeaderProblem::InvalidType(kind)));
        }
    }

    #[test]
    fn overlong_and_empty_records_are_rejected() {
        let header = RawHeader {
            checksum: 0,
            len: 32769,
            kind: 1,
        };
        assert_eq!(header.validate(), Err(HeaderProblem::TooLong(32769)));
        let header = RawHeader {
            checksum: 0,
            len: 0,
            kind: 3,
        };
        assert_eq!(header.validate(), Err(HeaderProblem::Empty));
    }
}
