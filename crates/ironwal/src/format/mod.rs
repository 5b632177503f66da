//! The kevo WAL v1 format: pure encoding and decoding of bytes.
//!
//! This module owns the layout of records, entries and batches and must never
//! touch a file, a clock or a lock. Decoding never panics and never allocates
//! on the strength of a length read from the input.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

pub mod batch;
pub mod entry;
pub mod record;

pub use batch::{BatchOps, BatchView};
pub use entry::{
    decode_entry, encode_batch, encode_entry, encode_header_batch, EntryError, EntryView, Op,
    OpView, TooLarge,
};
pub use record::{RawHeader, RecordType, HEADER_SIZE, MAX_PAYLOAD, MAX_RECORD};

/// Reads little-endian fields off the front of a byte slice without panicking.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
