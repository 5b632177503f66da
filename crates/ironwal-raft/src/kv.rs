//! A small replicated key-value store: the type configuration and an
//! in-memory state machine with snapshots, for the `raft-kv` example and the
//! tests. It keeps its data in memory only: after a restart, openraft
//! rebuilds it by re-applying the committed entries of the [`LogStore`]
//! (or by installing a snapshot from the leader).
//!
//! [`LogStore`]: crate::LogStore

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::record;

/// A write to the key-value store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// The result of applying a [`KvRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    /// The key's value before the write.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The Raft types of the key-value store: `u64` node ids, nodes with an
    /// address ([`BasicNode`]), [`KvRequest`] entries, snapshots in memory.
    pub KvTypeConfig: D = KvRequest, R = KvResponse
);

/// A log id of the key-value store.
pub type KvLogId = LogId<u64>;

#[derive(Debug, Default)]
struct KvState {
    last_applied: Option<KvLogId>,
    last_membership: StoredMembership<u64, BasicNode>,
    data: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    state: RwLock<KvState>,
    snapshot: Mutex<Option<StoredSnapshot>>,
    snapshots_built: AtomicU64,
}

/// The key-value state machine: a `BTreeMap` in memory, and the latest
/// snapshot (built or installed) in memory. Clones share the same state, so
/// a server keeps one to serve reads while openraft owns another.
#[derive(Clone, Debug, Default)]
pub struct KvStateMachine {
    inner: Arc<Inner>,
}

fn snapshot_error(e: impl std::fmt::Display, verb: ErrorVerb) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::Snapshot(None),
        verb,
        openraft::AnyError::error(e),
    )
    .into()
}

impl KvStateMachine {
    /// An empty state machine.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.state.read().data.get(key).cloned()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.state.read().data.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last log id applied.
    pub fn last_applied(&self) -> Option<KvLogId> {
        self.inner.state.read().last_applied
    }

    /// A copy of every key and value.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.inner.state.read().data.clone()
    }
}

impl RaftSnapshotBuilder<KvTypeConfig> for KvStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<KvTypeConfig>, StorageError<u64>> {
        let (data, last_log_id, last_membership) = {
            let st = self.inner.state.read();
            let data = record::encode(&st.data).map_err(|e| snapshot_error(e, ErrorVerb::Write))?;
            (data, st.last_applied, st.last_membership.clone())
        };
        let n = self.inner.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        *self.inner.snapshot.lock() = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<KvTypeConfig> for KvStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<KvLogId>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let st = self.inner.state.read();
        Ok((st.last_applied, st.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<KvResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<KvTypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut st = self.inner.state.write();
        let mut responses = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => KvResponse::default(),
                EntryPayload::Normal(KvRequest::Set { key, value }) => KvResponse {
                    previous: st.data.insert(key, value),
                },
                EntryPayload::Normal(KvRequest::Delete { key }) => KvResponse {
                    previous: st.data.remove(&key),
                },
                EntryPayload::Membership(membership) => {
                    st.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    KvResponse::default()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let data: BTreeMap<String, String> =
            record::decode(&bytes).map_err(|e| snapshot_error(e, ErrorVerb::Read))?;
        {
            let mut st = self.inner.state.write();
            st.data = data;
            st.last_applied = meta.last_log_id;
            st.last_membership = meta.last_membership.clone();
        }
        *self.inner.snapshot.lock() = Some(StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<KvTypeConfig>>, StorageError<u64>> {
        Ok(self.inner.snapshot.lock().clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
