//! openraft's own conformance suite, run on a store in a temporary
//! directory of the real file system.

use ironwal_raft::kv::KvStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use tempfile::TempDir;

use crate::{small, Store, C};

struct TempDirBuilder;

impl StoreBuilder<C, Store, KvStateMachine, TempDir> for TempDirBuilder {
    async fn build(&self) -> Result<(TempDir, Store, KvStateMachine), StorageError<u64>> {
        let failed =
            |e: String| -> StorageError<u64> { StorageIOError::write(AnyError::error(e)).into() };
        let dir = tempfile::tempdir().map_err(|e| failed(e.to_string()))?;
        // Small segments: each store preallocates one.
        let store = Store::open(dir.path(), small(256 * 1024, 1 << 20))
            .map_err(|e| failed(e.to_string()))?;
        Ok((dir, store, KvStateMachine::new()))
    }
}

#[test]
fn openraft_conformance_suite_passes() {
    Suite::test_all(TempDirBuilder).unwrap();
}
