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
//!
//! Point lookups skip the list: a search from the top costs ~20 dependent
//! cache misses in a memtable of a few hundred thousand entries, which
//! was most of a server GET's time. A hash index over user keys (open
//! addressing, one `AtomicU64` a slot: the top 16 bits of the key's hash,
//! then the node's address) leads to the newest node of a key, from which
//! older versions follow on level 0, as the list orders them. The writer
//! sets a slot after linking the node (release), so a reader that finds a
//! node through it sees it whole; versions of one key keep one slot. The
//! table is sized from the memtable's byte bound (one slot per 64 bytes,
//! 8 bytes each, so an eighth of the memtable's size on top) and probes at
//! most [`PROBES_MAX`] slots; a key that finds no free slot within them,
//! or a table three quarters full, leaves the index incomplete, and a
//! lookup it does not answer then searches the list.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering as AtomicOrdering,
};
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
/// Memtable bytes per slot of the point-lookup index.
const BYTES_PER_INDEX_SLOT: usize = 64;
/// Slots a lookup or an insert probes at most in the index.
const PROBES_MAX: usize = 32;
/// Bits of a slot that hold the node's address (x86-64 and AArch64 user
/// space addresses fit in 48).
const ADDRESS_BITS: u32 = 48;
const ADDRESS_MASK: u64 = (1 << ADDRESS_BITS) - 1;

/// The point-lookup index (see the module docs).
struct HashIndex {
    /// 0: empty; else `tag << 48 | node address`.
    slots: Box<[AtomicU64]>,
    /// Seeds the hash, so that crafted keys cannot be aimed at one slot.
    seed: u64,
    /// Slots in use (writer only; atomic for `Sync`).
    used: AtomicUsize,
    /// Every key inserted has a slot: a lookup that finds none may stop.
    complete: AtomicBool,
}

impl HashIndex {
    fn new(memtable_bytes: usize) -> Self {
        let want = memtable_bytes / BYTES_PER_INDEX_SLOT;
        let slots = if want == 0 {
            0
        } else {
            want.next_power_of_two().max(64)
        };
        HashIndex {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64),
            used: AtomicUsize::new(0),
            complete: AtomicBool::new(slots > 0),
        }
    }

    fn hash(&self, user_key: &[u8]) -> u64 {
        let mut h = self.seed ^ (user_key.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut words = user_key.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            h = (h ^ u64::from_le_bytes(b))
                .wrapping_mul(0xff51_afd7_ed55_8ccd)
                .rotate_left(29);
        }
        let mut b = [0u8; 8];
        b[..words.remainder().len()].copy_from_slice(words.remainder());
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        // fmix64
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// The probe sequence of `hash`: slot indexes and the tag.
    fn probes(&self, hash: u64) -> (impl Iterator<Item = usize>, u64) {
        let mask = self.slots.len().wrapping_sub(1);
        let start = hash as usize;
        let n = PROBES_MAX.min(self.slots.len());
        (
            (0..n).map(move |i| start.wrapping_add(i) & mask),
            hash >> ADDRESS_BITS,
        )
    }

    /// The newest node of `user_key`: `Some(null)` if the index knows the
    /// key is absent, `None` if the list must be searched.
    fn find(&self, user_key: &[u8]) -> Option<*mut u8> {
        let (probes, tag) = self.probes(self.hash(user_key));
        for i in probes {
            let slot = self.slots.get(i)?.load(AtomicOrdering::Acquire);
            if slot == 0 {
                return self
                    .complete
                    .load(AtomicOrdering::Acquire)
                    .then(ptr::null_mut);
            }
            if slot >> ADDRESS_BITS == tag {
                let node = (slot & ADDRESS_MASK) as usize as *mut u8;
                // SAFETY: slots hold linked nodes of this memtable.
                if user_key_of(unsafe { key_of(node) }) == user_key {
                    return Some(node);
                }
            }
        }
        None
    }

    /// Points `user_key`'s slot at `node`, its newest version (writer
    /// only, after `node` is linked).
    fn set(&self, user_key: &[u8], node: *mut u8) {
        if self.slots.is_empty() {
            return;
        }
        let address = node as usize as u64;
        if address & !ADDRESS_MASK != 0 {
            self.complete.store(false, AtomicOrdering::Release);
            return;
        }
        let (probes, tag) = self.probes(self.hash(user_key));
        let entry = tag << ADDRESS_BITS | address;
        for i in probes {
            let Some(slot) = self.slots.get(i) else { break };
            let old = slot.load(AtomicOrdering::Relaxed);
            if old == 0 {
                if self.used.load(AtomicOrdering::Relaxed) * 4 >= self.slots.len() * 3 {
                    break;
                }
                self.used.fetch_add(1, AtomicOrdering::Relaxed);
                slot.store(entry, AtomicOrdering::Release);
                return;
            }
            if old >> ADDRESS_BITS == tag {
                let other = (old & ADDRESS_MASK) as usize as *mut u8;
                // SAFETY: slots hold linked nodes of this memtable.
                if user_key_of(unsafe { key_of(other) }) == user_key {
                    slot.store(entry, AtomicOrdering::Release);
                    return;
                }
            }
        }
        // No room for this key: lookups that miss must search the list.
        self.complete.store(false, AtomicOrdering::Release);
    }

    fn size_bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

/// The user key of an internal key.
fn user_key_of(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(crate::types::TRAILER_LEN)]
}

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
    index: HashIndex,
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
    /// An empty memtable whose writes start in WAL segment
    /// `wal_segment_first`, without a point-lookup index (replay, tests).
    pub fn new(wal_segment_first: u64) -> Self {
        Self::with_index(wal_segment_first, 0)
    }

    /// An empty memtable with a point-lookup index sized for
    /// `size_bytes_max` bytes of entries.
    pub fn with_index(wal_segment_first: u64, size_bytes_max: usize) -> Self {
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
            index: HashIndex::new(size_bytes_max),
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
        // Linked: the index may lead readers to it now.
        self.index.set(user_key, node);
        w.ikey = ikey;
        drop(w);
        self.size.fetch_add(bytes, AtomicOrdering::Relaxed);
        self.len.fetch_add(1, AtomicOrdering::Relaxed);
    }

    /// The newest entry for `user_key` with sequence <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        // Every point read asks the active memtable first, which after an
        // open or a flush is often empty: spare it the index's cache miss.
        if self.is_empty() {
            return None;
        }
        if let Some(mut node) = self.index.find(user_key) {
            // The newest version, or null; older ones follow on level 0.
            while !node.is_null() {
                // SAFETY: a linked node of this memtable, alive while
                // `self` is.
                let (key, value) = unsafe { (key_of(node), value_of(node)) };
                let (uk, seq, kind) = split_internal_key(key)?;
                if uk != user_key {
                    return None;
                }
                if seq <= snapshot {
                    return Some((kind, value.to_vec()));
                }
                // SAFETY: as above; level 0 exists in every node.
                node = unsafe { next_of(node, 0) }.load(AtomicOrdering::Acquire);
            }
            return None;
        }
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

    /// Bytes of the point-lookup index (not counted in `size_bytes`).
    pub fn index_size_bytes(&self) -> usize {
        self.index.size_bytes()
    }

    /// Whether the point-lookup index answers every lookup (it has a slot
    /// for every key inserted).
    pub fn index_complete(&self) -> bool {
        self.index.complete.load(AtomicOrdering::Acquire)
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

    /// A memtable without the index, with a roomy one, and with one so
    /// small that most keys find no slot.
    fn each_kind() -> [Memtable; 3] {
        [
            Memtable::new(1),
            Memtable::with_index(1, 64 << 20),
            Memtable::with_index(1, 64 * BYTES_PER_INDEX_SLOT),
        ]
    }

    #[test]
    fn newest_visible_version_wins() {
        for m in each_kind() {
            newest_visible_version_wins_in(m);
        }
    }

    fn newest_visible_version_wins_in(m: Memtable) {
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
        for m in each_kind() {
            matches_a_sorted_model_in(Arc::new(m));
        }
    }

    fn matches_a_sorted_model_in(m: Arc<Memtable>) {
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
        // Every key at every snapshot, against the model: the newest
        // version at or below the snapshot, or nothing.
        for snapshot in [0u64, 1, 17, 2_500, 4_998, 4_999, u64::MAX >> 8] {
            for k in 0..1_000 {
                let key = format!("k{k:04}").into_bytes();
                let want = model
                    .range((key.clone(), std::cmp::Reverse(snapshot))..)
                    .next()
                    .filter(|((uk, _), _)| *uk == key)
                    .map(|(_, v)| (ValueKind::Put, v.clone()));
                assert_eq!(m.get(&key, snapshot), want, "k{k:04} at {snapshot}");
            }
        }
        assert_eq!(m.get(b"k", u64::MAX >> 8), None);
        assert_eq!(m.get(b"zzz", u64::MAX >> 8), None);
    }

    #[test]
    fn index_is_complete_until_it_runs_out_of_room() {
        let roomy = Memtable::with_index(1, 64 << 20);
        let tiny = Memtable::with_index(1, 64 * BYTES_PER_INDEX_SLOT);
        for (i, m) in [&roomy, &tiny].into_iter().enumerate() {
            for seq in 1..=200u64 {
                m.insert(format!("key{seq}").as_bytes(), seq, ValueKind::Put, b"v");
            }
            assert_eq!(m.index_complete(), i == 0);
            // Complete or not, a key the index has no slot for is found
            // through the list, and an absent key is absent.
            for seq in 1..=200u64 {
                let key = format!("key{seq}");
                assert_eq!(
                    m.get(key.as_bytes(), seq),
                    Some((ValueKind::Put, b"v".to_vec())),
                    "{key}"
                );
                assert_eq!(m.get(key.as_bytes(), seq - 1), None, "{key}");
            }
            assert_eq!(m.get(b"key0", 1_000), None);
            assert_eq!(m.get(b"key201", 1_000), None);
        }
        assert!(!Memtable::new(1).index_complete());
    }

    #[test]
    fn readers_see_every_published_entry_while_a_writer_inserts() {
        for m in each_kind() {
            readers_see_every_published_entry_in(Arc::new(m));
        }
    }

    fn readers_see_every_published_entry_in(m: Arc<Memtable>) {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Inserts done so far: each reader looks up keys of those.
        let published = Arc::new(AtomicU64::new(0));
        let key_of_insert = |i: u64| format!("{:08}", (i * 7_919) % 20_000);
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let m = Arc::clone(&m);
                let done = Arc::clone(&done);
                let published = Arc::clone(&published);
                std::thread::spawn(move || {
                    let mut scans = 0;
                    let mut x: u64 = r + 1;
                    while !done.load(AtomicOrdering::Acquire) || scans == 0 {
                        for _ in 0..200 {
                            let n = published.load(AtomicOrdering::Acquire);
                            if n == 0 {
                                break;
                            }
                            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            let k = key_of_insert((x >> 33) % n);
                            assert_eq!(
                                m.get(k.as_bytes(), u64::MAX >> 8),
                                Some((ValueKind::Put, k.clone().into_bytes())),
                                "{k} of {n} inserts"
                            );
                        }
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
            let k = key_of_insert(i);
            m.insert(k.as_bytes(), i + 1, ValueKind::Put, k.as_bytes());
            published.store(i + 1, AtomicOrdering::Release);
        }
        done.store(true, AtomicOrdering::Release);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(m.len(), 20_000);
    }
}
