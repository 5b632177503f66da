//! What the Raft-log benchmarks share: the entries they append.

use ironwal_raft::kv::{KvRequest, KvTypeConfig};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

/// Bytes of each entry's value.
pub const VALUE_LEN: usize = 256;

/// A deterministic stream of printable bytes (splitmix64).
pub struct Noise(pub u64);

impl Noise {
    pub fn text(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                char::from(b'!' + ((z ^ (z >> 31)) % 94) as u8)
            })
            .collect()
    }
}

/// The entry at `index`: a set of a key to [`VALUE_LEN`] random bytes.
pub fn entry(noise: &mut Noise, index: u64) -> Entry<KvTypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: noise.text(VALUE_LEN),
        }),
    }
}
