//! A one-shot completion a writer waits on, from a thread or a future.
//!
//! The group leader completes it after the write group is durable (or
//! failed). A blocking writer sleeps on the shared [`Epoch`] (the leader
//! wakes a whole group with one call); an async writer (the server) is
//! woken through its stored waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::futex::Epoch;
use crate::error::Result;

#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<()>>,
    waker: Option<Waker>,
}

/// Shared between one waiting writer and the log owner.
#[derive(Debug, Default)]
pub struct Completion {
    slot: Mutex<Slot>,
    done: AtomicBool,
}

impl Completion {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers the result and wakes an async waiter. A blocking waiter
    /// is woken by the leader's [`Epoch::advance_and_wake_all`] afterwards.
    pub fn complete(&self, result: Result<()>) {
        let waker = {
            let mut s = self.lock();
            s.result = Some(result);
            s.waker.take()
        };
        self.done.store(true, Ordering::Release);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the result has been delivered (and not yet taken).
    pub fn is_complete(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Blocks until the result is delivered, sleeping on `epoch`.
    pub fn wait(&self, epoch: &Epoch) -> Result<()> {
        loop {
            let seen = epoch.load();
            if self.is_complete() {
                break;
            }
            epoch.wait(seen);
        }
        self.lock()
            .result
            .take()
            .unwrap_or(Err(crate::Error::Closed))
    }
}

/// The future returned by [`crate::Db::write_async`].
#[derive(Debug)]
pub struct WriteFuture {
    state: FutureState,
}

#[derive(Debug)]
enum FutureState {
    Ready(Option<Result<()>>),
    Waiting(Arc<Completion>),
}

impl WriteFuture {
    pub(crate) fn ready(result: Result<()>) -> Self {
        WriteFuture {
            state: FutureState::Ready(Some(result)),
        }
    }

    pub(crate) fn waiting(c: Arc<Completion>) -> Self {
        WriteFuture {
            state: FutureState::Waiting(c),
        }
    }
}

impl Future for WriteFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.state {
            FutureState::Ready(r) => match r.take() {
                Some(r) => Poll::Ready(r),
                None => Poll::Ready(Err(crate::Error::Closed)),
            },
            FutureState::Waiting(c) => {
                let mut s = c.lock();
                match s.result.take() {
                    Some(r) => Poll::Ready(r),
                    None => {
                        s.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }
}
