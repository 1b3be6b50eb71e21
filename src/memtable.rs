//! The in-memory write buffer: sorted runs of entries plus a hash index.
//!
//! A skip list, LevelDB's and RocksDB's memtable, puts every insert
//! through a search from the top: ~20 dependent cache misses in a memtable
//! of a few hundred thousand entries, which was most of a random write's
//! time. Here an insert does no search of the ordered structure:
//!
//! - the entry is appended to an arena (a bump allocation);
//! - a hash index over user keys is pointed at it (one or two cache
//!   misses); the entry links to the key's previous version, so point
//!   lookups at any snapshot never need order;
//! - a 24-byte slot (the first 16 bytes of the user key as two integers,
//!   then the entry's address) goes into a small sorted *tail* in cache.
//!
//! A full tail becomes a sorted *run*; runs are merged like an LSM tree in
//! memory: while a run is less than four times the size of the next newer
//! one, the two are merged (sequential passes over 24-byte slots that
//! compare integers and touch an entry only when 16 key bytes tie). So an
//! entry is copied a few times in cache-friendly passes instead of being
//! found by pointer chasing, and there are about log4(entries / tail)
//! runs. A merge of up to 4096 slots is done by the insert that calls for
//! it; a larger one advances 32 slots with each insert (one such merge at
//! a time), so no insert waits for a merge of a few hundred thousand
//! slots. Scans and flushes read a k-way merge of the runs and a copy of
//! the tail, taken in one short critical section.
//!
//! One writer at a time inserts (the log owner; a mutex makes that a rule
//! rather than a convention); readers never block it for longer than it
//! takes to copy the tail. Entries become visible to the database's reads
//! only through the sequence number the log owner publishes after the
//! group is durable, so inserting before that is safe, and an iterator
//! created after a snapshot was taken holds every entry at or below it.
//! Inserts come in increasing sequence order (the log owner applies groups
//! in order; recovery replays the log in order).
//!
//! Entries live in an arena of 1 MiB chunks freed together when the last
//! reference to the memtable goes. Entry layout (8-byte aligned, native
//! endian, never on disk):
//!
//! ```text
//! +-------------+---------------+--------------+-----------------------+-------+
//! | key_len u32 | value_len u32 | older: ptr   | internal key          | value |
//! +-------------+---------------+--------------+-----------------------+-------+
//!  older: the previous version of the same user key in this memtable, or
//!  null (and null whenever the key has no index slot)
//! ```
//!
//! The hash index (open addressing, one `AtomicU64` a slot: the top 16
//! bits of the key's seeded hash, then the newest entry's address) is set
//! with a release store after the entry is written whole, so a reader that
//! finds an entry through it sees the entry and its older versions. It is
//! sized from the memtable's byte bound (one slot per 64 bytes) and probes
//! at most [`PROBES_MAX`] slots; a key that finds no free slot within
//! them, or a table three quarters full, leaves the index incomplete, and
//! a lookup it does not answer searches the runs and the tail.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Result;
use crate::iter::EntryIter;
use crate::types::{
    compare_internal_keys, encode_internal_key, split_internal_key, SeqNo, ValueKind, TRAILER_LEN,
};

/// Arena chunk size; larger entries get a chunk of their own.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of an entry before its internal key.
const ENTRY_HEADER_BYTES: usize = 16;
/// Slots in the tail before it becomes a run. Readers copy the tail, so
/// it stays small; the writer inserts into it by binary search and a move
/// of at most this many slots.
const TAIL_SLOTS_MAX: usize = 64;
/// The newest run is merged into the one before it while that one is
/// less than this many times its size.
const RUN_RATIO: usize = 4;
/// Merges of up to this many slots are done at once by the insert that
/// calls for them (tens of microseconds); larger ones advance
/// [`MERGE_STEP_SLOTS`] slots with each insert, so that no insert waits for
/// a merge of a few hundred thousand slots (milliseconds).
const MERGE_NOW_SLOTS_MAX: usize = 4096;
/// Slots an insert adds to a merge in progress: more than the ~16 copies
/// an entry takes on average across all merges, so merges keep up.
const MERGE_STEP_SLOTS: usize = 32;
/// Memtable bytes per slot of the point-lookup index.
const BYTES_PER_INDEX_SLOT: usize = 64;
/// Slots a lookup or an insert probes at most in the index.
const PROBES_MAX: usize = 32;
/// Bits of a slot that hold the entry's address (x86-64 and AArch64 user
/// space addresses fit in 48).
const ADDRESS_BITS: u32 = 48;
const ADDRESS_MASK: u64 = (1 << ADDRESS_BITS) - 1;

/// The point-lookup index (see the module docs).
struct HashIndex {
    /// 0: empty; else `tag << 48 | entry address`, where a null address
    /// means "this key's versions are not chained: search".
    slots: Box<[AtomicU64]>,
    /// Seeds the hash, so that crafted keys cannot be aimed at one slot.
    seed: u64,
    /// Slots in use (writer only; atomic for `Sync`).
    used: AtomicUsize,
    /// Every key inserted has a slot: a lookup that finds none may stop.
    complete: AtomicBool,
}

/// A slot the writer found for a key: its index, the key's tag, and the
/// entry it holds (null if the slot is free).
#[derive(Clone, Copy)]
struct Claim {
    slot: usize,
    tag: u64,
    newest: *mut u8,
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

    /// The probe sequence of `user_key`: slot indexes and the tag (never
    /// zero, so that a used slot never reads as empty).
    fn probes(&self, user_key: &[u8]) -> (impl Iterator<Item = usize>, u64) {
        let hash = self.hash(user_key);
        let mask = self.slots.len().wrapping_sub(1);
        let start = hash as usize;
        let n = PROBES_MAX.min(self.slots.len());
        (
            (0..n).map(move |i| start.wrapping_add(i) & mask),
            (hash >> ADDRESS_BITS) | 1,
        )
    }

    /// The newest entry of `user_key`: `Some(null)` if the index knows the
    /// key is absent, `None` if the runs must be searched.
    fn find(&self, user_key: &[u8]) -> Option<*mut u8> {
        let (probes, tag) = self.probes(user_key);
        for i in probes {
            let slot = self.slots.get(i)?.load(AtomicOrdering::Acquire);
            if slot == 0 {
                return self
                    .complete
                    .load(AtomicOrdering::Acquire)
                    .then(ptr::null_mut);
            }
            if slot >> ADDRESS_BITS == tag {
                let entry = (slot & ADDRESS_MASK) as usize as *mut u8;
                if entry.is_null() {
                    return None;
                }
                // SAFETY: slots hold published entries of this memtable.
                if user_key_of(unsafe { key_of(entry) }) == user_key {
                    return Some(entry);
                }
            }
        }
        None
    }

    /// The writer's slot for `user_key`: the key's own or a free one.
    /// `None` (and the index incomplete) if there is no room.
    fn claim(&self, user_key: &[u8]) -> Option<Claim> {
        if self.slots.is_empty() {
            return None;
        }
        let (probes, tag) = self.probes(user_key);
        for i in probes {
            let Some(slot) = self.slots.get(i) else { break };
            let old = slot.load(AtomicOrdering::Relaxed);
            if old == 0 {
                if self.used.load(AtomicOrdering::Relaxed) * 4 >= self.slots.len() * 3 {
                    break;
                }
                return Some(Claim {
                    slot: i,
                    tag,
                    newest: ptr::null_mut(),
                });
            }
            if old >> ADDRESS_BITS == tag {
                let entry = (old & ADDRESS_MASK) as usize as *mut u8;
                if entry.is_null() {
                    // Unchained: it may be this key's; it stays unanswered.
                    break;
                }
                // SAFETY: slots hold published entries of this memtable.
                if user_key_of(unsafe { key_of(entry) }) == user_key {
                    return Some(Claim {
                        slot: i,
                        tag,
                        newest: entry,
                    });
                }
            }
        }
        self.complete.store(false, AtomicOrdering::Release);
        None
    }

    /// Points the claimed slot at `entry` (writer only, once the entry is
    /// written whole), or marks the key unchained if `entry` is null or
    /// its address does not fit.
    fn publish(&self, claim: Claim, entry: *mut u8) {
        let address = entry as usize as u64;
        let value = if entry.is_null() || address & !ADDRESS_MASK != 0 {
            self.complete.store(false, AtomicOrdering::Release);
            claim.tag << ADDRESS_BITS
        } else {
            claim.tag << ADDRESS_BITS | address
        };
        if claim.newest.is_null() {
            self.used.fetch_add(1, AtomicOrdering::Relaxed);
        }
        if let Some(slot) = self.slots.get(claim.slot) {
            slot.store(value, AtomicOrdering::Release);
        }
    }

    /// The first slot `user_key` probes, for a prefetch.
    fn first_slot(&self, user_key: &[u8]) -> Option<&AtomicU64> {
        let (mut probes, _) = self.probes(user_key);
        self.slots.get(probes.next()?)
    }

    fn size_bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

/// Asks the CPU to start loading the cache line at `p` (a hint: it never
/// faults, whatever `p` is).
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that performs no access the program can
    // observe and never faults, for any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The user key of an internal key.
fn user_key_of(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// The first 16 bytes of a user key (zero-padded) as two big-endian
/// integers: comparing them orders keys as comparing the bytes does,
/// except that a tie says nothing.
fn key_words(user_key: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 16];
    let n = user_key.len().min(16);
    b[..n].copy_from_slice(&user_key[..n]);
    let (hi, lo) = b.split_at(8);
    let word = |w: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        u64::from_be_bytes(a)
    };
    (word(hi), word(lo))
}

/// An entry's place in a run: its key words, then its address.
#[derive(Clone, Copy, Debug)]
struct Slot {
    k0: u64,
    k1: u64,
    entry: *const u8,
}

// SAFETY: `entry` points into the arena of the memtable that holds the
// slot; every holder of a slot (the memtable's view, a `MemIter`) keeps
// that memtable alive, and entries are immutable once published.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

/// Orders slots as their entries' internal keys.
fn compare_slots(a: &Slot, b: &Slot) -> Ordering {
    match (a.k0, a.k1).cmp(&(b.k0, b.k1)) {
        // SAFETY: slots point at published entries of a live memtable.
        Ordering::Equal => unsafe { compare_internal_keys(key_of(a.entry), key_of(b.entry)) },
        o => o,
    }
}

/// A seek target: an internal key and its user key's words.
struct Target<'a> {
    k0: u64,
    k1: u64,
    key: &'a [u8],
}

impl<'a> Target<'a> {
    fn new(key: &'a [u8]) -> Self {
        let (k0, k1) = key_words(user_key_of(key));
        Target { k0, k1, key }
    }

    /// Whether `s` sorts before the target.
    fn after(&self, s: &Slot) -> bool {
        match (s.k0, s.k1).cmp(&(self.k0, self.k1)) {
            // SAFETY: slots point at published entries of a live memtable.
            Ordering::Equal => {
                compare_internal_keys(unsafe { key_of(s.entry) }, self.key) == Ordering::Less
            }
            o => o == Ordering::Less,
        }
    }
}

/// Merges two sorted runs.
fn merge_runs(a: &[Slot], b: &[Slot]) -> Vec<Slot> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if compare_slots(y, x) == Ordering::Less {
            out.push(*y);
            j += 1;
        } else {
            out.push(*x);
            i += 1;
        }
    }
    out.extend_from_slice(a.get(i..).unwrap_or_default());
    out.extend_from_slice(b.get(j..).unwrap_or_default());
    out
}

/// A merge of two adjacent runs done a few slots at a time. Readers see
/// the two runs until it ends and its result replaces them.
struct Merging {
    older: Arc<Vec<Slot>>,
    newer: Arc<Vec<Slot>>,
    out: Vec<Slot>,
    i: usize,
    j: usize,
}

impl Merging {
    fn new(older: Arc<Vec<Slot>>, newer: Arc<Vec<Slot>>) -> Self {
        Merging {
            out: Vec::with_capacity(older.len() + newer.len()),
            older,
            newer,
            i: 0,
            j: 0,
        }
    }

    /// Moves up to `n` slots to the output; true once both inputs are done.
    fn step(&mut self, n: usize) -> bool {
        for _ in 0..n {
            let next = match (self.older.get(self.i), self.newer.get(self.j)) {
                (Some(x), Some(y)) if compare_slots(y, x) == Ordering::Less => {
                    self.j += 1;
                    *y
                }
                (Some(x), _) => {
                    self.i += 1;
                    *x
                }
                (None, Some(y)) => {
                    self.j += 1;
                    *y
                }
                (None, None) => return true,
            };
            self.out.push(next);
        }
        self.i == self.older.len() && self.j == self.newer.len()
    }

    /// Whether `run` is one of the inputs.
    fn involves(&self, run: &Arc<Vec<Slot>>) -> bool {
        Arc::ptr_eq(run, &self.older) || Arc::ptr_eq(run, &self.newer)
    }
}

/// The arena and the merge in progress: the writer's state.
struct Writer {
    /// Chunks from `Box::into_raw`, freed in `Memtable::drop`.
    chunks: Vec<(*mut u64, usize)>,
    /// Free space of the current chunk.
    cursor: *mut u8,
    remaining: usize,
    merging: Option<Merging>,
}

impl Writer {
    /// `bytes` of 8-byte-aligned memory that stays put until the memtable
    /// is dropped.
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
}

/// What readers see of the order: sorted runs, oldest first, and the
/// sorted tail.
struct View {
    runs: Vec<Arc<Vec<Slot>>>,
    tail: Vec<Slot>,
}

/// A memtable.
pub struct Memtable {
    writer: Mutex<Writer>,
    view: Mutex<View>,
    size: AtomicUsize,
    len: AtomicUsize,
    /// The first WAL segment holding any of this memtable's writes.
    wal_segment_first: u64,
    index: HashIndex,
}

// SAFETY: the raw pointers point into chunks this memtable owns and frees
// only on drop. Entries are immutable once published, and all arena
// writes happen under the `writer` mutex into memory no reader can reach
// before the release (the view mutex, an index slot) that publishes it.
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

/// (key length, value length) of `entry`.
///
/// # Safety
/// `entry` is a published entry of a live memtable.
unsafe fn header(entry: *const u8) -> (usize, usize) {
    // SAFETY: the caller's promise; the header is written before publishing.
    unsafe {
        let h = entry.cast::<u32>();
        (h.read() as usize, h.add(1).read() as usize)
    }
}

/// The previous version of `entry`'s user key, or null.
///
/// # Safety
/// As for [`header`].
unsafe fn older_of(entry: *const u8) -> *const u8 {
    // SAFETY: the caller's promise; the field is 8-byte aligned.
    unsafe { entry.add(8).cast::<*const u8>().read() }
}

/// The internal key of `entry`.
///
/// # Safety
/// `entry` is a published entry of a memtable that outlives `'a`.
unsafe fn key_of<'a>(entry: *const u8) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe {
        let (k, _) = header(entry);
        std::slice::from_raw_parts(entry.add(ENTRY_HEADER_BYTES), k)
    }
}

/// The value of `entry`.
///
/// # Safety
/// As for [`key_of`].
unsafe fn value_of<'a>(entry: *const u8) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe {
        let (k, v) = header(entry);
        std::slice::from_raw_parts(entry.add(ENTRY_HEADER_BYTES + k), v)
    }
}

/// Bytes a slot takes in a run, counted in the memtable's size.
const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

impl Memtable {
    /// An empty memtable whose writes start in WAL segment
    /// `wal_segment_first`, without a point-lookup index (replay, tests).
    pub fn new(wal_segment_first: u64) -> Self {
        Self::with_index(wal_segment_first, 0)
    }

    /// An empty memtable with a point-lookup index sized for
    /// `size_bytes_max` bytes of entries.
    pub fn with_index(wal_segment_first: u64, size_bytes_max: usize) -> Self {
        Memtable {
            writer: Mutex::new(Writer {
                chunks: Vec::new(),
                cursor: ptr::null_mut(),
                remaining: 0,
                merging: None,
            }),
            view: Mutex::new(View {
                runs: Vec::new(),
                tail: Vec::with_capacity(TAIL_SLOTS_MAX),
            }),
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

    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every run and a copy of the tail, oldest first: all entries
    /// published so far, in sorted pieces.
    fn pieces(&self) -> Vec<Arc<Vec<Slot>>> {
        let v = self.view();
        let mut pieces = Vec::with_capacity(v.runs.len() + 1);
        pieces.extend(v.runs.iter().cloned());
        if !v.tail.is_empty() {
            pieces.push(Arc::new(v.tail.clone()));
        }
        pieces
    }

    /// Starts loading what inserting or looking up `user_key` first
    /// touches: its index slot. A caller with many keys in hand (a write
    /// group) calls this some keys ahead, so that the cache misses of
    /// several inserts overlap instead of following one another.
    pub fn prefetch_slot(&self, user_key: &[u8]) {
        if let Some(slot) = self.index.first_slot(user_key) {
            prefetch(std::ptr::from_ref(slot).cast());
        }
    }

    /// Starts loading the newest entry `user_key`'s first index slot
    /// points at (the key an insert compares), once that slot is cached
    /// ([`Memtable::prefetch_slot`] a few keys earlier).
    pub fn prefetch_entry(&self, user_key: &[u8]) {
        if let Some(slot) = self.index.first_slot(user_key) {
            let entry = slot.load(AtomicOrdering::Relaxed) & ADDRESS_MASK;
            if entry != 0 {
                prefetch(entry as usize as *const u8);
            }
        }
    }

    /// Inserts one entry. Sequence numbers are unique, so keys never repeat.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let key_len = user_key.len() + TRAILER_LEN;
        let bytes = ENTRY_HEADER_BYTES + key_len + value.len();
        let entry = w.alloc(bytes);
        let claim = self.index.claim(user_key);
        let mut older = claim.map_or(ptr::null_mut(), |c| c.newest);
        let mut chained = true;
        if !older.is_null() {
            // SAFETY: a published entry of this memtable.
            let newest_seq = split_internal_key(unsafe { key_of(older) }).map_or(0, |(_, s, _)| s);
            if newest_seq >= seq {
                // Out of order: the chain would no longer run newest first.
                older = ptr::null_mut();
                chained = false;
            }
        }
        // SAFETY: `entry` is `bytes` of fresh, aligned memory only this
        // writer can reach; the lengths fit u32 (batches are bounded far
        // below 4 GiB).
        unsafe {
            let h = entry.cast::<u32>();
            h.write(key_len as u32);
            h.add(1).write(value.len() as u32);
            entry.add(8).cast::<*mut u8>().write(older);
            let data = entry.add(ENTRY_HEADER_BYTES);
            ptr::copy_nonoverlapping(user_key.as_ptr(), data, user_key.len());
            let trailer = ((seq << 8) | kind as u64).to_be_bytes();
            ptr::copy_nonoverlapping(trailer.as_ptr(), data.add(user_key.len()), TRAILER_LEN);
            ptr::copy_nonoverlapping(value.as_ptr(), data.add(key_len), value.len());
        }
        let (k0, k1) = key_words(user_key);
        let slot = Slot { k0, k1, entry };
        let full = {
            let mut v = self.view();
            let at = v
                .tail
                .partition_point(|s| compare_slots(s, &slot) == Ordering::Less);
            v.tail.insert(at, slot);
            if v.tail.len() >= TAIL_SLOTS_MAX {
                let run = std::mem::replace(&mut v.tail, Vec::with_capacity(TAIL_SLOTS_MAX));
                v.runs.push(Arc::new(run));
                true
            } else {
                false
            }
        };
        if let Some(c) = claim {
            self.index
                .publish(c, if chained { entry } else { ptr::null_mut() });
        }
        self.size
            .fetch_add(bytes + SLOT_BYTES, AtomicOrdering::Relaxed);
        self.len.fetch_add(1, AtomicOrdering::Relaxed);
        let merged = match w.merging.as_mut() {
            Some(m) => m.step(MERGE_STEP_SLOTS),
            None => false,
        };
        if merged {
            if let Some(m) = w.merging.take() {
                self.replace_pair(&m.older, &m.newer, m.out);
            }
        }
        if full || merged {
            self.compact_runs(&mut w);
        }
        drop(w);
    }

    /// Replaces the adjacent runs `older` and `newer` with `merged`.
    fn replace_pair(&self, older: &Arc<Vec<Slot>>, newer: &Arc<Vec<Slot>>, merged: Vec<Slot>) {
        let mut v = self.view();
        // Only the writer changes runs, by pushing newer ones and merging
        // pairs that do not overlap: the two are still side by side.
        if let Some(at) = v.runs.iter().position(|r| Arc::ptr_eq(r, older)) {
            if v.runs.get(at + 1).is_some_and(|r| Arc::ptr_eq(r, newer)) {
                v.runs.splice(at..at + 2, [Arc::new(merged)]);
            }
        }
    }

    /// Merges adjacent runs while one is less than [`RUN_RATIO`] times the
    /// size of the next newer (writer only), newest pair first: at once if
    /// small, else by starting a merge that later inserts advance (one at a
    /// time; pairs that wait for it are taken up when it ends). Readers go
    /// on with the old runs meanwhile: entries never change.
    fn compact_runs(&self, w: &mut Writer) {
        loop {
            let due = {
                let v = self.view();
                let busy = |r: &Arc<Vec<Slot>>| w.merging.as_ref().is_some_and(|m| m.involves(r));
                v.runs
                    .windows(2)
                    .rev()
                    .find(|p| p[0].len() < RUN_RATIO * p[1].len() && !busy(&p[0]) && !busy(&p[1]))
                    .map(|p| (Arc::clone(&p[0]), Arc::clone(&p[1])))
            };
            let Some((older, newer)) = due else { return };
            if older.len() + newer.len() > MERGE_NOW_SLOTS_MAX {
                if w.merging.is_none() {
                    w.merging = Some(Merging::new(older, newer));
                }
                return;
            }
            let merged = merge_runs(&older, &newer);
            self.replace_pair(&older, &newer, merged);
        }
    }

    /// The newest entry for `user_key` with sequence <= `snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        // Every point read asks the active memtable first, which after an
        // open or a flush is often empty: spare it the index's cache miss.
        if self.is_empty() {
            return None;
        }
        if let Some(mut entry) = self.index.find(user_key) {
            // The newest version, or null; older ones follow the chain.
            while !entry.is_null() {
                // SAFETY: a published entry of this memtable, alive while
                // `self` is; so is every older version it links to.
                let (key, value) = unsafe { (key_of(entry), value_of(entry)) };
                let (_, seq, kind) = split_internal_key(key)?;
                if seq <= snapshot {
                    return Some((kind, value.to_vec()));
                }
                // SAFETY: as above.
                entry = unsafe { older_of(entry) }.cast_mut();
            }
            return None;
        }
        let mut target = Vec::with_capacity(user_key.len() + TRAILER_LEN);
        encode_internal_key(&mut target, user_key, snapshot, ValueKind::Put);
        let t = Target::new(&target);
        // The newest version at or below the snapshot in each sorted piece.
        let mut best: Option<(SeqNo, *const u8)> = None;
        let mut consider = |piece: &[Slot]| {
            let Some(s) = piece.get(piece.partition_point(|s| t.after(s))) else {
                return;
            };
            // SAFETY: a published entry of this memtable.
            if let Some((uk, seq, _)) = split_internal_key(unsafe { key_of(s.entry) }) {
                if uk == user_key && best.is_none_or(|(b, _)| seq > b) {
                    best = Some((seq, s.entry));
                }
            }
        };
        // The tail is searched in place; the runs outside the lock.
        let runs = {
            let v = self.view();
            consider(&v.tail);
            v.runs.clone()
        };
        for run in &runs {
            consider(run);
        }
        let (_, entry) = best?;
        // SAFETY: as above.
        let (key, value) = unsafe { (key_of(entry), value_of(entry)) };
        let (_, _, kind) = split_internal_key(key)?;
        Some((kind, value.to_vec()))
    }

    /// Approximate bytes used (entries in the arena and their slots).
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

    /// A cursor over all entries inserted so far, in internal-key order.
    pub fn iter(self: &Arc<Self>) -> MemIter {
        let pieces = self.pieces();
        MemIter {
            _mem: Arc::clone(self),
            pos: vec![0; pieces.len()],
            heap: Vec::with_capacity(pieces.len()),
            pieces,
        }
    }
}

/// A cursor over a memtable: a merge of the runs and the tail as they
/// were when it was made. It keeps the memtable (and so its arena) alive.
#[derive(Debug)]
pub struct MemIter {
    _mem: Arc<Memtable>,
    pieces: Vec<Arc<Vec<Slot>>>,
    pos: Vec<usize>,
    /// Pieces not yet exhausted, as a binary min-heap on their current
    /// slots: the top holds the current entry.
    heap: Vec<usize>,
}

impl MemIter {
    /// The current slot of piece `p` (`p`'s position is in bounds for
    /// pieces in the heap).
    fn head(&self, p: usize) -> Option<&Slot> {
        self.pieces.get(p)?.get(*self.pos.get(p)?)
    }

    /// Whether piece `a`'s current slot sorts before piece `b`'s.
    fn before(&self, a: usize, b: usize) -> bool {
        match (self.head(a), self.head(b)) {
            (Some(x), Some(y)) => compare_slots(x, y) == Ordering::Less,
            (x, _) => x.is_some(),
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            for c in [l, r] {
                if let (Some(&pc), Some(&pl)) = (self.heap.get(c), self.heap.get(least)) {
                    if self.before(pc, pl) {
                        least = c;
                    }
                }
            }
            if least == i {
                return;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }

    /// Rebuilds the heap from every piece with slots left.
    fn heapify(&mut self) {
        self.heap.clear();
        for (i, (piece, &p)) in self.pieces.iter().zip(&self.pos).enumerate() {
            if p < piece.len() {
                self.heap.push(i);
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn slot(&self) -> Option<&Slot> {
        self.head(*self.heap.first()?)
    }
}

impl EntryIter for MemIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let t = Target::new(target);
        for (piece, p) in self.pieces.iter().zip(&mut self.pos) {
            *p = piece.partition_point(|s| t.after(s));
        }
        self.heapify();
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.pos.fill(0);
        self.heapify();
        Ok(())
    }

    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn key(&self) -> &[u8] {
        match self.slot() {
            // SAFETY: a published entry of the memtable `self` keeps alive.
            Some(s) => unsafe { key_of(s.entry) },
            None => &[],
        }
    }

    fn value(&self) -> &[u8] {
        match self.slot() {
            // SAFETY: as in `key`.
            Some(s) => unsafe { value_of(s.entry) },
            None => &[],
        }
    }

    fn next(&mut self) -> Result<()> {
        let Some(&top) = self.heap.first() else {
            return Ok(());
        };
        let exhausted = match (self.pos.get_mut(top), self.pieces.get(top)) {
            (Some(p), Some(piece)) => {
                *p += 1;
                *p >= piece.len()
            }
            _ => true,
        };
        if exhausted {
            self.heap.swap_remove(0);
        }
        self.sift_down(0);
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

    /// Keys whose order the 16 key bytes kept in a slot cannot decide:
    /// shared 16-byte prefixes, trailing zero bytes, prefixes of others.
    fn awkward_key(k: u8) -> Vec<u8> {
        let mut key = match k % 4 {
            0 => b"sixteen-byte-pre".to_vec(),
            1 => b"a".to_vec(),
            2 => b"a\0".to_vec(),
            _ => Vec::new(),
        };
        key.extend(std::iter::repeat_n(0u8, usize::from(k / 4 % 3)));
        key.push(k / 12);
        key
    }

    proptest::proptest! {
        #[test]
        fn gets_and_seeks_match_a_model(
            ops in proptest::collection::vec((0u8..48, proptest::bool::ANY, 0usize..3), 1..600),
            shuffle in proptest::collection::vec(0usize..600, 0..8),
            probes in proptest::collection::vec((0u8..48, 0u64..700), 1..40),
            kind in 0usize..3,
        ) {
            let m = Arc::new(each_kind().into_iter().nth(kind).unwrap());
            // Sequences in order but for a few swapped pairs: out-of-order
            // inserts must still answer right.
            let mut seqs: Vec<u64> = (1..=ops.len() as u64).collect();
            for w in shuffle.chunks_exact(2) {
                let (a, b) = (w[0] % seqs.len(), w[1] % seqs.len());
                seqs.swap(a, b);
            }
            let mut model = std::collections::BTreeMap::new();
            for (&(k, put, size), &seq) in ops.iter().zip(&seqs) {
                let key = awkward_key(k);
                let kind = if put { ValueKind::Put } else { ValueKind::Delete };
                let value = if put { vec![k; [3, 40, 300][size]] } else { Vec::new() };
                m.insert(&key, seq, kind, &value);
                model.insert(internal_key_vec(&key, seq, kind), value);
            }
            proptest::prop_assert_eq!(m.len(), model.len());
            for &(k, snapshot) in &probes {
                let key = awkward_key(k);
                let target = internal_key_vec(&key, snapshot, ValueKind::Put);
                let want = model
                    .range(target.clone()..)
                    .next()
                    .filter(|(ik, _)| user_key_of(&ik.0) == key.as_slice())
                    .map(|(ik, v)| (split_internal_key(&ik.0).unwrap().2, v.clone()));
                proptest::prop_assert_eq!(m.get(&key, snapshot), want);
                let mut it = m.iter();
                it.seek(&target.0).unwrap();
                for (ik, v) in model.range(target..).take(5) {
                    proptest::prop_assert!(it.valid());
                    proptest::prop_assert_eq!(it.key(), ik.0.as_slice());
                    proptest::prop_assert_eq!(it.value(), v.as_slice());
                    it.next().unwrap();
                }
            }
            let mut it = m.iter();
            it.seek_to_first().unwrap();
            for ik in model.keys() {
                proptest::prop_assert_eq!(it.key(), ik.0.as_slice());
                it.next().unwrap();
            }
            proptest::prop_assert!(!it.valid());
        }
    }

    /// An internal key ordered as the memtable orders it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Ik(Vec<u8>);

    impl PartialOrd for Ik {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for Ik {
        fn cmp(&self, other: &Self) -> Ordering {
            compare_internal_keys(&self.0, &other.0)
        }
    }

    fn internal_key_vec(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Ik {
        Ik(crate::types::internal_key(user_key, seq, kind))
    }

    #[test]
    fn runs_stay_few_and_merges_stay_small_as_entries_grow() {
        let m = Arc::new(Memtable::with_index(1, 64 << 20));
        let mut model = std::collections::BTreeMap::new();
        let mut most_runs = 0;
        let mut merges_started = 0;
        for seq in 1..=300_000u64 {
            let key = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
            let before: Vec<usize> = m.view().runs.iter().map(|r| r.len()).collect();
            let in_progress = m
                .writer
                .lock()
                .unwrap()
                .merging
                .as_ref()
                .map(|g| g.out.capacity());
            m.insert(&key, seq, ValueKind::Put, b"");
            model.insert(key, seq);
            let v = m.view();
            most_runs = most_runs.max(v.runs.len());
            // No insert merged more than MERGE_NOW_SLOTS_MAX slots at once:
            // every run is at most that big, a run from before, or the end
            // of the merge that earlier inserts advanced.
            for r in &v.runs {
                assert!(
                    r.len() <= MERGE_NOW_SLOTS_MAX
                        || before.contains(&r.len())
                        || in_progress == Some(r.len()),
                    "insert {seq} made a run of {} at once: {before:?}",
                    r.len()
                );
            }
            drop(v);
            if m.writer.lock().unwrap().merging.is_some() && seq % 10_007 == 0 {
                // Mid-merge, a cursor still sees every entry once, in order.
                merges_started += 1;
                let mut it = m.iter();
                it.seek_to_first().unwrap();
                for (k, s) in &model {
                    let (uk, seq_at, _) = split_internal_key(it.key()).unwrap();
                    assert_eq!((uk, seq_at), (&k[..], *s));
                    it.next().unwrap();
                }
                assert!(!it.valid());
            }
        }
        assert!(merges_started > 0, "no checkpoint fell inside a merge");
        // ~log4(300,000 / 64) + 1 runs, and a few waiting for a merge.
        assert!(most_runs <= 10, "{most_runs} runs");
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
