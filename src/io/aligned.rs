//! Buffers aligned for `O_DIRECT`.
//!
//! `O_DIRECT` needs the buffer address, the file offset and the length all
//! to be multiples of the logical block size; [`BLOCK_SIZE`] (4096) covers
//! every device this runs on.

use std::alloc::{self, Layout};

/// The alignment and granularity of direct IO.
pub const BLOCK_SIZE: usize = 4096;

/// A heap buffer whose start is aligned to [`BLOCK_SIZE`] and whose
/// capacity is a multiple of it. `len` bytes are in use; the rest is zero.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer is uniquely owned heap memory, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for AlignedBuf {}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl AlignedBuf {
    /// A zeroed buffer of at least `cap` bytes (rounded up to a block).
    pub fn with_capacity(cap: usize) -> Self {
        let cap = round_up(cap.max(BLOCK_SIZE));
        let layout = Self::layout(cap);
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, cap, len: 0 }
    }

    fn layout(cap: usize) -> Layout {
        match Layout::from_size_align(cap, BLOCK_SIZE) {
            Ok(l) => l,
            Err(_) => panic!("aligned buffer of {cap} bytes is not a valid layout"),
        }
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Appends bytes, growing the buffer if needed.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let need = self.len + data.len();
        if need > self.cap {
            self.grow(need);
        }
        let len = self.len;
        self.as_full_mut()[len..need].copy_from_slice(data);
        self.len = need;
    }

    fn grow(&mut self, need: usize) {
        let mut bigger = AlignedBuf::with_capacity(need.max(self.cap * 2));
        bigger.as_full_mut()[..self.len].copy_from_slice(self.as_slice());
        bigger.len = self.len;
        *self = bigger;
    }

    /// Sets the used length to zero and zeroes the previously used bytes.
    pub fn clear(&mut self) {
        let len = self.len;
        self.as_full_mut()[..len].fill(0);
        self.len = 0;
    }

    /// The used bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap >= len initialised (zeroed) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The used bytes, rounded up to whole blocks (the padding is zero).
    pub fn as_padded(&self) -> &[u8] {
        let n = round_up(self.len).min(self.cap);
        // SAFETY: n <= cap, and all cap bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), n) }
    }

    /// The whole capacity (bytes past `len` are zero).
    pub fn full(&self) -> &[u8] {
        // SAFETY: all cap bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.cap) }
    }

    fn as_full_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for cap initialised bytes, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// Keeps only the bytes from `from` on, moved to the start; the rest is
    /// zeroed.
    pub fn retain_from(&mut self, from: usize) {
        let from = from.min(self.len);
        let len = self.len;
        let full = self.as_full_mut();
        full.copy_within(from..len, 0);
        full[len - from..len].fill(0);
        self.len = len - from;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in with_capacity with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) }
    }
}

/// Rounds `n` up to a multiple of [`BLOCK_SIZE`].
pub fn round_up(n: usize) -> usize {
    n.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// Rounds `n` down to a multiple of [`BLOCK_SIZE`].
pub fn round_down(n: u64) -> u64 {
    n - n % BLOCK_SIZE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_padded() {
        let mut b = AlignedBuf::with_capacity(10);
        assert_eq!(b.capacity(), BLOCK_SIZE);
        assert_eq!(b.as_slice().as_ptr() as usize % BLOCK_SIZE, 0);
        b.extend_from_slice(&[7u8; 5000]);
        assert_eq!(b.len(), 5000);
        assert_eq!(b.as_padded().len(), 8192);
        assert_eq!(b.as_slice().as_ptr() as usize % BLOCK_SIZE, 0);
        assert!(b.as_padded()[5000..].iter().all(|&x| x == 0));
        b.retain_from(4096);
        assert_eq!(b.len(), 904);
        assert!(b.as_slice().iter().all(|&x| x == 7));
        assert!(b.as_padded()[904..].iter().all(|&x| x == 0));
        b.clear();
        assert!(b.is_empty());
        assert!(b.as_padded().iter().all(|&x| x == 0));
    }
}
