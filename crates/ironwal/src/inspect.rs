//! Inspecting a log as tools do (`ironwal stats`, `dump`, `verify`): item
//! by item, as it was written, without the raw format.
//!
//! [`LogReader::next_item`] yields each [`Item`] whole: one operation, or
//! every operation of one batch, with where it was read from and how it
//! was written (a batch, fragmented across records). The
//! [`RecoveryReport`] accounts for every byte not used. That is the whole
//! inspection surface: the byte-level encoders and decoders stay private,
//! so the format can be fixed without breaking tools.
//!
//! ```
//! # fn main() -> Result<(), ironwal::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let wal = ironwal::Wal::open(dir.path(), ironwal::Options::default())?;
//! # wal.put(b"big", &vec![7; 100_000])?;
//! # let mut batch = ironwal::WriteBatch::new();
//! # batch.put(b"a", b"1").delete(b"b");
//! # wal.write_batch(&batch)?;
//! # wal.close()?;
//! use ironwal::inspect::{Item, LogReader, RecoveryMode};
//!
//! let mut reader = LogReader::open(dir.path(), RecoveryMode::SkipCorrupted)?;
//! let (mut batches, mut fragmented) = (0, 0);
//! while let Some(item) = reader.next_item()? {
//!     let item: Item<'_> = item;
//!     batches += usize::from(item.is_batch());
//!     fragmented += usize::from(item.is_fragmented());
//! }
//! assert_eq!((batches, fragmented), (1, 1));
//! assert!(reader.report().is_clean());
//! # Ok(()) }
//! ```

pub use crate::entry::{EntryRef, Item};
pub use crate::recovery::LogReader;
pub use crate::report::{DroppedRange, RecoveryMode, RecoveryReport, SegmentReport};
