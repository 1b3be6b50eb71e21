//! Stop signals: SIGTERM and SIGINT end the daemon gracefully.
//!
//! [`StopSignals::block`] must run on the main thread before any other
//! thread exists: it blocks both signals, every thread created afterwards
//! inherits the mask, and the main thread then takes them synchronously
//! with `sigwait`. No signal handler runs, so nothing async-signal-unsafe
//! can happen, and no event loop is interrupted.

use std::io;

/// The blocked stop signals.
#[derive(Debug)]
pub struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks SIGTERM and SIGINT in the calling thread (and so in every
    /// thread it starts later).
    pub fn block() -> io::Result<StopSignals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before
        // any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, initialised sigset_t owned by this frame.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(StopSignals { set })
    }

    /// Waits for SIGTERM or SIGINT and returns its number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig: libc::c_int = 0;
        loop {
            // SAFETY: `self.set` was initialised by `block`; `sig` is a
            // valid out-pointer.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            match rc {
                0 => return Ok(sig),
                libc::EINTR => continue,
                e => return Err(io::Error::from_raw_os_error(e)),
            }
        }
    }
}

/// The conventional name of a stop signal.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}
