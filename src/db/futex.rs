//! Futex words for waking many writers at once, off the leader's path.
//!
//! Blocking writers sleep on the [`Epoch`]. When the leader has completed
//! a group it advances the epoch; if anyone sleeps on it, the leader asks
//! the waker thread to wake them all (one `FUTEX_WAKE` of every sleeper),
//! so the leader pays for waking one thread, not fifty, and starts the
//! next group at once while the other core does the wake-ups. A woken
//! writer whose own write is not done yet (it is in the next group) simply
//! sleeps again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

fn futex_wait(word: &AtomicU32, seen: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 that outlives the call;
    // the kernel only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            seen,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32; no memory is written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        );
    }
}

/// The epoch blocking writers sleep on.
#[derive(Debug, Default)]
pub struct Epoch {
    word: AtomicU32,
    sleepers: AtomicU32,
}

impl Epoch {
    /// The current value.
    pub fn load(&self) -> u32 {
        self.word.load(Ordering::SeqCst)
    }

    /// Sleeps while the epoch still equals `seen` (returns at once if it
    /// has moved; spurious returns are possible).
    pub fn wait(&self, seen: u32) {
        // SeqCst pairs with `advance`: either the advancer sees this
        // sleeper, or this sleeper sees the new epoch and does not sleep.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if self.word.load(Ordering::SeqCst) == seen {
            futex_wait(&self.word, seen);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Advances the epoch; true if some thread sleeps on it and needs
    /// [`Epoch::wake_all`].
    pub fn advance(&self) -> bool {
        self.word.fetch_add(1, Ordering::SeqCst);
        self.sleepers.load(Ordering::SeqCst) > 0
    }

    /// Wakes every sleeper.
    pub fn wake_all(&self) {
        futex_wake(&self.word, i32::MAX);
    }
}

/// Asks the waker thread to wake an epoch's sleepers.
#[derive(Debug, Default)]
pub struct WakeRequests {
    word: AtomicU32,
    stop: AtomicBool,
}

impl WakeRequests {
    /// Requests one round of wake-ups.
    pub fn request(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        futex_wake(&self.word, 1);
    }

    /// Stops the waker thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.request();
    }

    /// The waker thread: wakes `epoch`'s sleepers once per request batch.
    pub fn run(&self, epoch: &Epoch) {
        // Start from the initial value, not from what the word holds when
        // this thread first runs: a request made before then must count.
        let mut seen = 0;
        loop {
            let now = self.word.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                epoch.wake_all();
                continue;
            }
            if self.stop.load(Ordering::SeqCst) {
                // Wake anyone left before leaving.
                epoch.wake_all();
                return;
            }
            futex_wait(&self.word, seen);
        }
    }
}
