//! The in-memory write buffer.
//!
//! A lock-free skip list (`crossbeam-skiplist`) of encoded internal keys to
//! values. One thread (the log owner) inserts; any thread reads. Entries
//! become visible to reads only through the sequence number the log owner
//! publishes after the group is durable, so inserting before that is safe.
//! Sizes are approximate (keys, values and per-entry overhead) and drive
//! the freeze decision.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::types::{compare_internal_keys, internal_key, split_internal_key, SeqNo, ValueKind};

/// Bytes charged per entry beyond key and value (skip-list node, tower).
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// An encoded internal key ordered by [`compare_internal_keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IKey(pub Box<[u8]>);

impl Ord for IKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(&self.0, &other.0)
    }
}

impl PartialOrd for IKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A memtable.
#[derive(Debug)]
pub struct Memtable {
    map: SkipMap<IKey, Box<[u8]>>,
    size: AtomicUsize,
    /// The first WAL segment holding any of this memtable's writes.
    wal_segment_first: u64,
}

impl Memtable {
    /// An empty memtable whose writes start in WAL segment `wal_segment_first`.
    pub fn new(wal_segment_first: u64) -> Self {
        Memtable {
            map: SkipMap::new(),
            size: AtomicUsize::new(0),
            wal_segment_first,
        }
    }

    /// The first WAL segment this memtable depends on.
    pub fn wal_segment_first(&self) -> u64 {
        self.wal_segment_first
    }

    /// Inserts one entry. Sequence numbers are unique, so keys never repeat.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let ikey = internal_key(user_key, seq, kind);
        self.size.fetch_add(
            ikey.len() + value.len() + ENTRY_OVERHEAD_BYTES,
            AtomicOrdering::Relaxed,
        );
        self.map.insert(IKey(ikey.into_boxed_slice()), value.into());
    }

    /// The newest entry for `user_key` with sequence <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        let target = IKey(internal_key(user_key, snapshot, ValueKind::Put).into_boxed_slice());
        let entry = self.map.lower_bound(Bound::Included(&target))?;
        let (uk, _, kind) = split_internal_key(&entry.key().0)?;
        (uk == user_key).then(|| (kind, entry.value().to_vec()))
    }

    /// Approximate bytes used.
    pub fn size_bytes(&self) -> usize {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the memtable holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A cursor over all entries in internal-key order.
    pub fn iter(self: &Arc<Self>) -> MemIter {
        MemIter {
            mem: Arc::clone(self),
            cur: None,
        }
    }
}

/// A cursor over a memtable. Each step is a fresh `O(log n)` search from
/// the current key, so the cursor holds no borrow of the skip list.
#[derive(Debug)]
pub struct MemIter {
    mem: Arc<Memtable>,
    cur: Option<(IKey, Box<[u8]>)>,
}

impl MemIter {
    fn load(&mut self, bound: Bound<&IKey>) {
        self.cur = self
            .mem
            .map
            .lower_bound(bound)
            .map(|e| (e.key().clone(), e.value().clone()));
    }
}

impl EntryIter for MemIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let t = IKey(target.into());
        self.load(Bound::Included(&t));
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.load(Bound::Unbounded);
        Ok(())
    }

    fn valid(&self) -> bool {
        self.cur.is_some()
    }

    fn key(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |(k, _)| &k.0)
    }

    fn value(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |(_, v)| v)
    }

    fn next(&mut self) -> Result<()> {
        if let Some((k, _)) = self.cur.take() {
            self.load(Bound::Excluded(&k));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_visible_version_wins() {
        let m = Memtable::new(1);
        m.insert(b"k", 1, ValueKind::Put, b"v1");
        m.insert(b"k", 3, ValueKind::Put, b"v3");
        m.insert(b"k", 5, ValueKind::Delete, b"");
        m.insert(b"j", 2, ValueKind::Put, b"j");
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(m.get(b"k", 2), Some((ValueKind::Put, b"v1".to_vec())));
        assert_eq!(m.get(b"k", 4), Some((ValueKind::Put, b"v3".to_vec())));
        assert_eq!(m.get(b"k", 9), Some((ValueKind::Delete, Vec::new())));
        assert_eq!(m.get(b"l", 9), None);
        let m = Arc::new(m);
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut seen = Vec::new();
        while it.valid() {
            let (uk, seq, _) = split_internal_key(it.key()).unwrap();
            seen.push((uk.to_vec(), seq));
            it.next().unwrap();
        }
        assert_eq!(
            seen,
            vec![
                (b"j".to_vec(), 2),
                (b"k".to_vec(), 5),
                (b"k".to_vec(), 3),
                (b"k".to_vec(), 1)
            ]
        );
    }
}
