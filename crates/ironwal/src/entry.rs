//! The operations a reader hands out: owned ([`Entry`]), borrowed
//! ([`EntryRef`]), and grouped as they were written ([`Item`]).

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{Op, OpView};
use crate::seq::Seq;

/// One operation read from the log, owning its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Sequence number.
    pub seq: Seq,
    /// Operation.
    pub op: Op,
    /// Key.
    pub key: Vec<u8>,
    /// Value; `None` exactly for deletes.
    pub value: Option<Vec<u8>>,
}

/// One operation read from the log, borrowing the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Sequence number.
    pub seq: Seq,
    /// Operation.
    pub op: Op,
    /// Key.
    pub key: &'a [u8],
    /// Value; `None` exactly for deletes.
    pub value: Option<&'a [u8]>,
}

impl EntryRef<'_> {
    /// Copies the entry out of the reader's buffer.
    pub fn to_entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            op: self.op,
            key: self.key.to_vec(),
            value: self.value.map(<[u8]>::to_vec),
        }
    }
}

/// A whole item read by [`LogReader::next_item`](crate::LogReader::next_item): one operation, or the
/// operations of one batch.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    arena: &'a [u8],
    slots: &'a [Slot],
    batch: bool,
    fragmented: bool,
    segment: &'a Path,
}

impl<'a> Item<'a> {
    /// The segment file the item was read from.
    pub fn segment(&self) -> &'a Path {
        self.segment
    }

    /// Whether the operations were written as one batch.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// Whether an entry of the item was too long for one record (32 KiB
    /// with its header) and was written in fragments.
    pub fn is_fragmented(&self) -> bool {
        self.fragmented
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the item has no operation (never, for an item returned by
    /// `next_item`).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let arena = self.arena;
        // `new` checked that every slot resolves.
        self.slots
            .iter()
            .filter_map(move |slot| slot.resolve(arena).ok())
    }

    /// The item of `slots`, located in `arena`; [`Error::Internal`] if one
    /// does not lie in it.
    pub(crate) fn new(
        arena: &'a [u8],
        slots: &'a [Slot],
        (batch, fragmented): (bool, bool),
        segment: &'a Path,
    ) -> Result<Self> {
        for slot in slots {
            slot.resolve(arena)?;
        }
        Ok(Item {
            arena,
            slots,
            batch,
            fragmented,
            segment,
        })
    }
}

/// An operation of a complete item, located in the assembler's arena.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    seq: Seq,
    op: Op,
    key: Range<usize>,
    value: Option<Range<usize>>,
}

impl Slot {
    /// Locates `op`, whose bytes `arena` holds.
    pub(crate) fn locate(arena: &[u8], op: OpView<'_>) -> Slot {
        Slot {
            seq: Seq::new(op.seq),
            op: op.op,
            key: range_in(arena, op.key),
            value: op.value.map(|v| range_in(arena, v)),
        }
    }

    /// The operation's sequence.
    pub(crate) fn seq(&self) -> Seq {
        self.seq
    }

    /// The operation, borrowing its bytes from `arena` (the one it was
    /// located in). A slot that does not lie in it is a bug, reported as
    /// [`Error::Internal`] rather than read as the end of the log.
    pub(crate) fn resolve<'a>(&self, arena: &'a [u8]) -> Result<EntryRef<'a>> {
        const LOST: Error = Error::Internal("an operation's bytes are not in the reader's buffer");
        let key = arena.get(self.key.clone()).ok_or(LOST)?;
        let value = match &self.value {
            Some(range) => Some(arena.get(range.clone()).ok_or(LOST)?),
            None => None,
        };
        Ok(EntryRef {
            seq: self.seq,
            op: self.op,
            key,
            value,
        })
    }
}

/// The position of `part` inside `whole`, which it borrows from; an empty
/// range past any buffer if it does not lie in `whole` (which
/// [`Slot::resolve`] then reports).
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize);
    match start.and_then(|s| Some(s..s.checked_add(part.len())?)) {
        Some(range) if range.end <= whole.len() => range,
        _ => usize::MAX..usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<'a>(key: &'a [u8], value: &'a [u8]) -> OpView<'a> {
        OpView {
            seq: 7,
            op: Op::Put,
            key,
            value: Some(value),
        }
    }

    #[test]
    fn a_slot_resolves_in_the_arena_it_was_located_in() {
        let arena = b"keyvalue".to_vec();
        let slot = Slot::locate(&arena, op(&arena[..3], &arena[3..]));
        let entry = slot.resolve(&arena).unwrap();
        assert_eq!((entry.key, entry.value), (&b"key"[..], Some(&b"value"[..])));
    }

    /// A slot pointing outside its arena is a broken invariant: an error,
    /// never a silent end of the log.
    #[test]
    fn a_slot_outside_its_arena_is_an_internal_error() {
        let arena = b"keyvalue".to_vec();
        let elsewhere = b"other bytes".to_vec();
        let foreign = Slot::locate(&arena, op(&elsewhere[..3], &elsewhere[3..]));
        assert!(matches!(foreign.resolve(&arena), Err(Error::Internal(_))));

        let slot = Slot::locate(&arena, op(&arena[..3], &arena[3..]));
        assert!(matches!(slot.resolve(&arena[..4]), Err(Error::Internal(_))));
        let slots = [slot];
        let item = Item::new(&arena[..4], &slots, (false, false), Path::new("x.wal"));
        assert!(matches!(item, Err(Error::Internal(_))));
    }
}
