//! How the Raft log is spelled in ironwal entries: pure bytes, no I/O.
//!
//! Every record is an ironwal Put. Its key starts with one byte naming the
//! kind of record; the value is a postcard-encoded openraft type.
//!
//! | kind | key | value | meaning on replay |
//! |---|---|---|---|
//! | entry | `b'e'` + index (u64 BE) + postcard(leader id) | postcard(entry) | the entry at `index` |
//! | truncate | `b't'` + index (u64 BE) | empty | entries at `index` and above are gone |
//! | purge | `b'p'` | postcard(log id) | entries up to the log id are gone; it is the last purged id |
//! | vote | `b'v'` | postcard(vote) | the vote |
//! | committed | `b'c'` | postcard(`Option<log id>`) | the committed log id |
//! | moved | `b'm'` + index (u64 BE) + postcard(leader id) | postcard(entry) | the entry at `index`, still present, is now here (multi-log compaction) |
//!
//! In a multi-log ([`crate::MultiLog`]) every key is prefixed with `b'g'`
//! and the group id (u64 BE); a group removed with
//! [`crate::MultiLog::remove_group`] writes `b'g'` + id + `b'x'`.
//!
//! An entry's key carries its log id (index and leader), so opening a log
//! rebuilds the index from keys alone, without decoding any entry.

use openraft::{CommittedLeaderId, NodeId};
use serde::de::DeserializeOwned;
use serde::Serialize;

const ENTRY: u8 = b'e';
const TRUNCATE: u8 = b't';
const PURGE: u8 = b'p';
const VOTE: u8 = b'v';
const COMMITTED: u8 = b'c';
const MOVED: u8 = b'm';
const REMOVED: u8 = b'x';
const GROUP: u8 = b'g';

/// The key of the vote record.
pub(crate) const VOTE_KEY: &[u8] = &[VOTE];
/// The key of the committed record.
pub(crate) const COMMITTED_KEY: &[u8] = &[COMMITTED];
/// The key of the purge record.
pub(crate) const PURGE_KEY: &[u8] = &[PURGE];

/// A decoded record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key<NID: NodeId> {
    Entry {
        index: u64,
        leader: CommittedLeaderId<NID>,
    },
    Truncate {
        index: u64,
    },
    Purge,
    Vote,
    Committed,
    /// A copy of a present entry, written forward by a compaction.
    Moved {
        index: u64,
        leader: CommittedLeaderId<NID>,
    },
    /// The whole group is gone (multi-log only).
    Removed,
}

/// Builds the keys of one Raft log: bare for a [`crate::LogStore`] of its
/// own, prefixed with the group for a group of a [`crate::MultiLog`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    /// The keys of group `id` of a multi-log.
    pub(crate) fn group(id: u64) -> Self {
        let mut prefix = Vec::with_capacity(9);
        prefix.push(GROUP);
        prefix.extend_from_slice(&id.to_be_bytes());
        Keys { prefix }
    }

    /// The group these keys belong to, for a multi-log's.
    pub(crate) fn group_id(&self) -> Option<u64> {
        split_group(&self.prefix).ok().map(|(id, _)| id)
    }

    fn with(&self, rest: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + rest.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(rest);
        key
    }

    fn indexed<NID: NodeId>(
        &self,
        kind: u8,
        index: u64,
        leader: &CommittedLeaderId<NID>,
    ) -> Result<Vec<u8>, postcard::Error> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + 8 + 12);
        key.extend_from_slice(&self.prefix);
        key.push(kind);
        key.extend_from_slice(&index.to_be_bytes());
        postcard::to_extend(leader, key)
    }

    /// The key of the entry at `index` proposed by `leader`.
    pub(crate) fn entry<NID: NodeId>(
        &self,
        index: u64,
        leader: &CommittedLeaderId<NID>,
    ) -> Result<Vec<u8>, postcard::Error> {
        self.indexed(ENTRY, index, leader)
    }

    /// The key of a moved copy of the entry at `index`.
    pub(crate) fn moved<NID: NodeId>(
        &self,
        index: u64,
        leader: &CommittedLeaderId<NID>,
    ) -> Result<Vec<u8>, postcard::Error> {
        self.indexed(MOVED, index, leader)
    }

    /// The key of a truncation of the entries at `index` and above.
    pub(crate) fn truncate(&self, index: u64) -> Vec<u8> {
        self.with(&truncate_key(index))
    }

    pub(crate) fn vote(&self) -> Vec<u8> {
        self.with(VOTE_KEY)
    }

    pub(crate) fn committed(&self) -> Vec<u8> {
        self.with(COMMITTED_KEY)
    }

    pub(crate) fn purge(&self) -> Vec<u8> {
        self.with(PURGE_KEY)
    }

    pub(crate) fn removed(&self) -> Vec<u8> {
        self.with(&[REMOVED])
    }
}

/// Splits a multi-log key into its group and the group's own key.
pub(crate) fn split_group(key: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    match key.first() {
        Some(&GROUP) => {
            let (group, rest) = index_after_kind(key)?;
            Ok((group, rest))
        }
        Some(other) => Err(format!(
            "record kind {other:#04x} without a group in a multi-log"
        )),
        None => Err("empty key".to_owned()),
    }
}

/// Why a key or value could not be decoded.
pub(crate) type DecodeError = String;

/// The key of the entry at `index` proposed by `leader`.
#[cfg(test)]
pub(crate) fn entry_key<NID: NodeId>(
    index: u64,
    leader: &CommittedLeaderId<NID>,
) -> Result<Vec<u8>, postcard::Error> {
    Keys::default().entry(index, leader)
}

/// The key of a truncation of the entries at `index` and above.
pub(crate) fn truncate_key(index: u64) -> [u8; 9] {
    let mut key = [TRUNCATE; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn index_after_kind(key: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    let bytes = key
        .get(1..9)
        .ok_or_else(|| format!("key of {} bytes is too short for an index", key.len()))?;
    let mut index = [0u8; 8];
    index.copy_from_slice(bytes);
    Ok((u64::from_be_bytes(index), key.get(9..).unwrap_or_default()))
}

/// Decodes a record key.
pub(crate) fn decode_key<NID: NodeId>(key: &[u8]) -> Result<Key<NID>, DecodeError> {
    let exact = |k: Key<NID>| {
        if key.len() == 1 {
            Ok(k)
        } else {
            Err(format!("metadata key of {} bytes", key.len()))
        }
    };
    let indexed = || -> Result<(u64, CommittedLeaderId<NID>), DecodeError> {
        let (index, rest) = index_after_kind(key)?;
        let (leader, tail) =
            postcard::take_from_bytes(rest).map_err(|e| format!("entry key's leader id: {e}"))?;
        if !tail.is_empty() {
            return Err(format!("{} stray bytes after an entry key", tail.len()));
        }
        Ok((index, leader))
    };
    match key.first() {
        Some(&ENTRY) => indexed().map(|(index, leader)| Key::Entry { index, leader }),
        Some(&MOVED) => indexed().map(|(index, leader)| Key::Moved { index, leader }),
        Some(&REMOVED) => exact(Key::Removed),
        Some(&TRUNCATE) => match index_after_kind(key)? {
            (index, []) => Ok(Key::Truncate { index }),
            (_, rest) => Err(format!("{} stray bytes after a truncate key", rest.len())),
        },
        Some(&PURGE) => exact(Key::Purge),
        Some(&VOTE) => exact(Key::Vote),
        Some(&COMMITTED) => exact(Key::Committed),
        Some(&GROUP) => Err("a multi-log's record (open it with MultiLog)".to_owned()),
        Some(other) => Err(format!("unknown record kind {other:#04x}")),
        None => Err("empty key".to_owned()),
    }
}

/// Encodes a value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

/// Decodes a value that must fill `bytes` exactly.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} stray bytes after the value", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_key_round_trips_with_its_leader() {
        let leader = CommittedLeaderId::new(7, 3u64);
        let key = entry_key(42, &leader).unwrap();
        assert_eq!(key[0], b'e');
        assert_eq!(&key[1..9], &42u64.to_be_bytes());
        assert_eq!(
            decode_key::<u64>(&key),
            Ok(Key::Entry { index: 42, leader })
        );
    }

    #[test]
    fn entry_keys_sort_by_index() {
        let leader = CommittedLeaderId::new(1, 1u64);
        let low = entry_key(255, &leader).unwrap();
        let high = entry_key(256, &leader).unwrap();
        assert!(low < high);
    }

    #[test]
    fn truncate_key_round_trips() {
        let key = truncate_key(u64::MAX - 1);
        assert_eq!(
            decode_key::<u64>(&key),
            Ok(Key::Truncate {
                index: u64::MAX - 1
            })
        );
    }

    #[test]
    fn metadata_keys_decode() {
        assert_eq!(decode_key::<u64>(VOTE_KEY), Ok(Key::Vote));
        assert_eq!(decode_key::<u64>(COMMITTED_KEY), Ok(Key::Committed));
        assert_eq!(decode_key::<u64>(PURGE_KEY), Ok(Key::Purge));
    }

    #[test]
    fn group_keys_split_into_the_group_and_its_own_key() {
        let keys = Keys::group(0x0102_0304_0506_0708);
        let leader = CommittedLeaderId::new(3, 2u64);
        let key = keys.moved(9, &leader).unwrap();
        let (group, rest) = split_group(&key).unwrap();
        assert_eq!(group, 0x0102_0304_0506_0708);
        assert_eq!(decode_key::<u64>(rest), Ok(Key::Moved { index: 9, leader }));
        let removed = keys.removed();
        let (_, rest) = split_group(&removed).unwrap();
        assert_eq!(decode_key::<u64>(rest), Ok(Key::Removed));
        assert!(split_group(VOTE_KEY).is_err());
        assert!(split_group(&[b'g', 1, 2]).is_err());
        assert!(decode_key::<u64>(&keys.vote())
            .unwrap_err()
            .contains("MultiLog"));
    }

    #[test]
    fn unknown_kind_is_refused() {
        assert!(decode_key::<u64>(b"z")
            .unwrap_err()
            .contains("unknown record kind"));
        assert!(decode_key::<u64>(b"").is_err());
    }

    #[test]
    fn short_or_padded_keys_are_refused() {
        assert!(decode_key::<u64>(&[b'e', 0, 0]).is_err());
        assert!(decode_key::<u64>(&[b't', 0, 0, 0, 0, 0, 0, 0, 1, 9]).is_err());
        assert!(decode_key::<u64>(&[b'v', 0]).is_err());
        let mut key = entry_key(1, &CommittedLeaderId::new(1, 1u64)).unwrap();
        key.push(0);
        assert!(decode_key::<u64>(&key).is_err());
    }

    #[test]
    fn value_with_stray_bytes_is_refused() {
        let mut bytes = encode(&5u64).unwrap();
        assert_eq!(decode::<u64>(&bytes), Ok(5));
        bytes.push(1);
        assert!(decode::<u64>(&bytes).is_err());
    }
}
