//! A futex word that many threads wait on and one wakes all at once.
//!
//! The leader of a write group completes every writer's slot, then bumps
//! the epoch and wakes all waiters with one system call, instead of one
//! wake-up call per writer. A woken writer whose own write is not done yet
//! (it is in the next group) simply waits again.

use std::sync::atomic::{AtomicU32, Ordering};

/// The shared epoch.
#[derive(Debug, Default)]
pub struct Epoch(AtomicU32);

impl Epoch {
    /// The current value.
    pub fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Sleeps while the epoch still equals `seen` (returns at once if it
    /// has moved; spurious returns are possible).
    pub fn wait(&self, seen: u32) {
        // SAFETY: FUTEX_WAIT on a valid, aligned u32 that outlives the call;
        // the kernel only reads it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.0.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                seen,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    /// Advances the epoch and wakes every waiter.
    pub fn advance_and_wake_all(&self) {
        self.0.fetch_add(1, Ordering::Release);
        // SAFETY: FUTEX_WAKE on a valid, aligned u32; no memory is written.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.0.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
    }
}
