//! The in-memory write buffer: a skip list of encoded internal keys to
//! values, in the manner of LevelDB's and RocksDB's memtables.
//!
//! One writer at a time inserts (the log owner; a mutex makes that a rule
//! rather than a convention); any number of threads read without locks.
//! Entries become visible to the database's reads only through the
//! sequence number the log owner publishes after the group is durable, so
//! inserting before that is safe.
//!
//! Nodes, keys and values live in an arena of 1 MiB chunks that are freed
//! together when the last reference to the memtable goes: an insert is a
//! bump allocation and a few pointer stores, a flush walks level 0 of the
//! list without copying, and dropping a flushed memtable frees a handful
//! of chunks instead of one allocation per entry.
//!
//! Node layout in the arena (8-byte aligned, native endian, never on disk):
//!
//! ```text
//! +-------------+---------------+-----------+-------------------------+-----------+-------+
//! | key_len u32 | value_len u32 | height u32| pad u32 | next[height]  | key bytes | value |
//! +-------------+---------------+-----------+---------+---------------+-----------+-------+
//!  next[i]: AtomicPtr to the following node at level i (null at the end)
//! ```
//!
//! Publication: a node is written whole, then linked bottom-up, each link
//! a release store that readers load with acquire, so a reader that finds
//! a node sees its key and value.

use std::cmp::Ordering;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::iter::EntryIter;
use crate::types::{
    compare_internal_keys, encode_internal_key, split_internal_key, SeqNo, ValueKind,
};

/// Tallest tower; with a branching factor of 4 this serves 4^12 = 16M
/// entries at full speed.
const HEIGHT_MAX: usize = 12;
/// One in this many nodes at a level also reaches the next.
const BRANCHING: u64 = 4;
/// Arena chunk size; larger entries get a chunk of their own.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of a node before its `next` pointers.
const NODE_HEADER_BYTES: usize = 16;

/// The arena and the height generator: the writer's state.
struct Writer {
    /// Chunks from `Box::into_raw`, freed in `Memtable::drop`.
    chunks: Vec<(*mut u64, usize)>,
    /// Free space of the current chunk.
    cursor: *mut u8,
    remaining: usize,
    rng: u64,
    /// The internal key being inserted, kept to save an allocation a write.
    ikey: Vec<u8>,
}

impl Writer {
    /// `bytes` of 8-byte-aligned, zeroed memory that stays put until the
    /// memtable is dropped.
    fn alloc(&mut self, bytes: usize) -> *mut u8 {
        let bytes = bytes.next_multiple_of(8);
        if bytes > self.remaining {
            let words = bytes.max(CHUNK_BYTES) / 8;
            let chunk = Box::into_raw(vec![0u64; words].into_boxed_slice()).cast::<u64>();
            self.chunks.push((chunk, words));
            if bytes >= CHUNK_BYTES {
                // A chunk of its own; the current chunk keeps its space.
                return chunk.cast();
            }
            self.cursor = chunk.cast();
            self.remaining = words * 8;
        }
        let at = self.cursor;
        // SAFETY: `bytes <= remaining`, so the result stays in the chunk.
        self.cursor = unsafe { at.add(bytes) };
        self.remaining -= bytes;
        at
    }

    fn random_height(&mut self) -> usize {
        let mut h = 1;
        while h < HEIGHT_MAX {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if self.rng % BRANCHING != 0 {
                break;
            }
            h += 1;
        }
        h
    }
}

/// A memtable.
pub struct Memtable {
    /// The head node: height `HEIGHT_MAX`, no key.
    head: *mut u8,
    /// Height of the tallest node so far.
    height: AtomicUsize,
    writer: Mutex<Writer>,
    size: AtomicUsize,
    len: AtomicUsize,
    /// The first WAL segment holding any of this memtable's writes.
    wal_segment_first: u64,
}

// SAFETY: the raw pointers point into chunks this memtable owns and frees
// only on drop. Nodes are immutable once linked, links are atomics, and
// all arena writes happen under the `writer` mutex into memory no reader
// can reach before the release store that links it.
unsafe impl Send for Memtable {}
// SAFETY: as above.
unsafe impl Sync for Memtable {}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("len", &self.len())
            .field("size_bytes", &self.size_bytes())
            .field("wal_segment_first", &self.wal_segment_first)
            .finish()
    }
}

impl Drop for Memtable {
    fn drop(&mut self) {
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for &(chunk, words) in &w.chunks {
            // SAFETY: made by `Box::into_raw` of a `[u64]` of `words`
            // elements in `Writer::alloc`, freed once, here.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(chunk, words)) });
        }
    }
}

/// The `next` pointer of `node` at `level` (`level < node's height`).
///
/// # Safety
/// `node` is a node of a live memtable and `level` is below its height.
unsafe fn next_of<'a>(node: *const u8, level: usize) -> &'a AtomicPtr<u8> {
    // SAFETY: the caller's promise; the slot is 8-byte aligned.
    unsafe {
        &*node
            .add(NODE_HEADER_BYTES + 8 * level)
            .cast::<AtomicPtr<u8>>()
    }
}

/// (key length, value length, height) of `node`.
///
/// # Safety
/// `node` is a linked node (or the head) of a live memtable.
unsafe fn header(node: *const u8) -> (usize, usize, usize) {
    // SAFETY: the caller's promise; the header is written before linking.
    unsafe {
        let h = node.cast::<u32>();
        (
            h.read() as usize,
            h.add(1).read() as usize,
            h.add(2).read() as usize,
        )
    }
}

/// The internal key of `node`.
///
/// # Safety
/// `node` is a linked node of a memtable that outlives `'a`.
unsafe fn key_of<'a>(node: *const u8) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe {
        let (k, _, h) = header(node);
        std::slice::from_raw_parts(node.add(NODE_HEADER_BYTES + 8 * h), k)
    }
}

/// The value of `node`.
///
/// # Safety
/// As for [`key_of`].
unsafe fn value_of<'a>(node: *const u8) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe {
        let (k, v, h) = header(node);
        std::slice::from_raw_parts(node.add(NODE_HEADER_BYTES + 8 * h + k), v)
    }
}

impl Memtable {
    /// An empty memtable whose writes start in WAL segment `wal_segment_first`.
    pub fn new(wal_segment_first: u64) -> Self {
        let mut w = Writer {
            chunks: Vec::new(),
            cursor: ptr::null_mut(),
            remaining: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ wal_segment_first,
            ikey: Vec::new(),
        };
        let head = w.alloc(NODE_HEADER_BYTES + 8 * HEIGHT_MAX);
        // SAFETY: fresh zeroed memory: key and value lengths 0, links null.
        unsafe { head.cast::<u32>().add(2).write(HEIGHT_MAX as u32) };
        Memtable {
            head,
            height: AtomicUsize::new(1),
            writer: Mutex::new(w),
            size: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            wal_segment_first,
        }
    }

    /// The first WAL segment this memtable depends on.
    pub fn wal_segment_first(&self) -> u64 {
        self.wal_segment_first
    }

    /// The first node whose key is >= `target` (null if none); with
    /// `prev`, also each level's last node before it.
    fn seek_node(&self, target: &[u8], mut prev: Option<&mut [*mut u8; HEIGHT_MAX]>) -> *mut u8 {
        let mut x = self.head;
        let mut level = self.height.load(AtomicOrdering::Relaxed) - 1;
        loop {
            // SAFETY: `x` is the head or a linked node; `level` is below
            // the list height, so below `x`'s height (x was reached at a
            // level at least this high).
            let next = unsafe { next_of(x, level) }.load(AtomicOrdering::Acquire);
            // SAFETY: `next` is null or a linked node of this memtable.
            if !next.is_null()
                && compare_internal_keys(unsafe { key_of(next) }, target) == Ordering::Less
            {
                x = next;
                continue;
            }
            if let Some(p) = prev.as_deref_mut() {
                p[level] = x;
            }
            if level == 0 {
                return next;
            }
            level -= 1;
        }
    }

    /// Inserts one entry. Sequence numbers are unique, so keys never repeat.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ikey = std::mem::take(&mut w.ikey);
        ikey.clear();
        encode_internal_key(&mut ikey, user_key, seq, kind);
        let mut prev = [self.head; HEIGHT_MAX];
        self.seek_node(&ikey, Some(&mut prev));
        let height = w.random_height();
        let list_height = self.height.load(AtomicOrdering::Relaxed);
        if height > list_height {
            // prev[list_height..height] are already the head. A reader
            // that sees the new height before the links finds null there
            // and drops a level, which is correct.
            self.height.store(height, AtomicOrdering::Relaxed);
        }
        let bytes = NODE_HEADER_BYTES + 8 * height + ikey.len() + value.len();
        let node = w.alloc(bytes);
        // SAFETY: `node` is `bytes` of fresh, aligned, zeroed memory only
        // this writer can reach; the lengths fit u32 (batches are bounded
        // far below 4 GiB).
        unsafe {
            let h = node.cast::<u32>();
            h.write(ikey.len() as u32);
            h.add(1).write(value.len() as u32);
            h.add(2).write(height as u32);
            let data = node.add(NODE_HEADER_BYTES + 8 * height);
            ptr::copy_nonoverlapping(ikey.as_ptr(), data, ikey.len());
            ptr::copy_nonoverlapping(value.as_ptr(), data.add(ikey.len()), value.len());
        }
        for (level, &p) in prev.iter().enumerate().take(height) {
            // SAFETY: `p` is the head or a linked node reached at `level`,
            // so its height exceeds `level`; `node` has `height` slots.
            unsafe {
                let p_next = next_of(p, level);
                next_of(node, level).store(
                    p_next.load(AtomicOrdering::Relaxed),
                    AtomicOrdering::Relaxed,
                );
                p_next.store(node, AtomicOrdering::Release);
            }
        }
        w.ikey = ikey;
        drop(w);
        self.size.fetch_add(bytes, AtomicOrdering::Relaxed);
        self.len.fetch_add(1, AtomicOrdering::Relaxed);
    }

    /// The newest entry for `user_key` with sequence <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        let mut target = Vec::with_capacity(user_key.len() + 8);
        encode_internal_key(&mut target, user_key, snapshot, ValueKind::Put);
        let node = self.seek_node(&target, None);
        if node.is_null() {
            return None;
        }
        // SAFETY: a linked node of this memtable, alive while `self` is.
        let (key, value) = unsafe { (key_of(node), value_of(node)) };
        let (uk, _, kind) = split_internal_key(key)?;
        (uk == user_key).then(|| (kind, value.to_vec()))
    }

    /// Approximate bytes used (nodes, keys and values in the arena).
    pub fn size_bytes(&self) -> usize {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len.load(AtomicOrdering::Relaxed)
    }

    /// Whether the memtable holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cursor over all entries in internal-key order.
    pub fn iter(self: &Arc<Self>) -> MemIter {
        MemIter {
            mem: Arc::clone(self),
            node: ptr::null(),
        }
    }
}

/// A cursor over a memtable; it keeps the memtable (and so its arena)
/// alive and steps along level 0 without copying.
#[derive(Debug)]
pub struct MemIter {
    mem: Arc<Memtable>,
    /// The current node; null when not on an entry.
    node: *const u8,
}

// SAFETY: `node` points into the arena `mem` keeps alive; nodes are
// immutable once linked.
unsafe impl Send for MemIter {}

impl EntryIter for MemIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.node = self.mem.seek_node(target, None);
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        // SAFETY: the head has `HEIGHT_MAX` > 0 links.
        self.node = unsafe { next_of(self.mem.head, 0) }.load(AtomicOrdering::Acquire);
        Ok(())
    }

    fn valid(&self) -> bool {
        !self.node.is_null()
    }

    fn key(&self) -> &[u8] {
        if self.node.is_null() {
            return &[];
        }
        // SAFETY: a linked node of `mem`, which outlives the borrow of self.
        unsafe { key_of(self.node) }
    }

    fn value(&self) -> &[u8] {
        if self.node.is_null() {
            return &[];
        }
        // SAFETY: as in `key`.
        unsafe { value_of(self.node) }
    }

    fn next(&mut self) -> Result<()> {
        if !self.node.is_null() {
            // SAFETY: a linked node; every node has at least one link.
            self.node = unsafe { next_of(self.node, 0) }.load(AtomicOrdering::Acquire);
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

    #[test]
    fn matches_a_sorted_model_and_iterates_in_order() {
        let m = Arc::new(Memtable::new(7));
        let mut model = std::collections::BTreeMap::new();
        let mut x = 1u64;
        for seq in 1..5_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = format!("k{:04}", (x >> 33) % 1_000);
            // Some values big enough to take a chunk of their own.
            let value = if seq % 1_000 == 0 {
                vec![seq as u8; CHUNK_BYTES + 3]
            } else {
                format!("v{seq}").into_bytes()
            };
            m.insert(key.as_bytes(), seq, ValueKind::Put, &value);
            model.insert((key.into_bytes(), std::cmp::Reverse(seq)), value);
        }
        assert_eq!(m.len(), model.len());
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        for ((k, std::cmp::Reverse(seq)), v) in &model {
            assert!(it.valid());
            let (uk, s, kind) = split_internal_key(it.key()).unwrap();
            assert_eq!((uk, s, kind), (k.as_slice(), *seq, ValueKind::Put));
            assert_eq!(it.value(), v.as_slice());
            it.next().unwrap();
        }
        assert!(!it.valid());
        for ((k, std::cmp::Reverse(seq)), v) in model.iter().step_by(7) {
            assert_eq!(m.get(k, *seq), Some((ValueKind::Put, v.clone())));
        }
        assert_eq!(m.get(b"k", u64::MAX >> 8), None);
        assert_eq!(m.get(b"zzz", u64::MAX >> 8), None);
    }

    #[test]
    fn readers_see_every_published_entry_while_a_writer_inserts() {
        let m = Arc::new(Memtable::new(1));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let m = Arc::clone(&m);
                let done = Arc::clone(&done);
                std::thread::spawn(move || {
                    let mut scans = 0;
                    while !done.load(AtomicOrdering::Acquire) || scans == 0 {
                        // Entries are only ever added: a scan sees a sorted
                        // sequence with no duplicates, each value matching
                        // its key.
                        let mut it = m.iter();
                        it.seek_to_first().unwrap();
                        let mut last: Option<Vec<u8>> = None;
                        while it.valid() {
                            let k = it.key().to_vec();
                            let (uk, _, _) = split_internal_key(&k).unwrap();
                            assert_eq!(it.value(), uk);
                            if let Some(l) = &last {
                                assert_eq!(compare_internal_keys(l, &k), Ordering::Less);
                            }
                            last = Some(k);
                            it.next().unwrap();
                        }
                        scans += 1;
                    }
                })
            })
            .collect();
        for i in 0..20_000u64 {
            let k = format!("{:08}", (i * 7_919) % 20_000);
            m.insert(k.as_bytes(), i + 1, ValueKind::Put, k.as_bytes());
        }
        done.store(true, AtomicOrdering::Release);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(m.len(), 20_000);
    }
}
