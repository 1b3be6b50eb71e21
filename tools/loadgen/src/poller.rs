//! [`Poller`]: an epoll set over the connections one thread drives, so
//! that it reads from whichever answers first instead of blocking on each
//! connection in turn (what an event loop such as `redis-benchmark`'s
//! does; a blocking read per connection cost the load generator a context
//! switch per answer).

use std::os::fd::RawFd;
use std::time::Duration;

/// An epoll instance; closed on drop.
pub struct Poller {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    /// An epoll set watching `fds` for input, each reported by its index.
    pub fn new(fds: &[RawFd]) -> Result<Poller, String> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "epoll_create1: {}",
                std::io::Error::last_os_error()
            ));
        }
        let poller = Poller {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; fds.len().clamp(1, 1024)],
        };
        for (i, &sock) in fds.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: `ev` is a valid epoll_event for the duration of the
            // call; both descriptors are open.
            if unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, sock, &mut ev) } < 0 {
                return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(poller)
    }

    /// Waits up to `timeout` for input; the indexes of the connections
    /// that have some (none if the time ran out).
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<usize>) -> Result<(), String> {
        ready.clear();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let n = loop {
            // SAFETY: `events` has room for `len` entries the kernel fills.
            let n = unsafe {
                libc::epoll_wait(
                    self.fd,
                    self.events.as_mut_ptr(),
                    self.events.len() as i32,
                    ms,
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("epoll_wait: {e}"));
            }
        };
        ready.extend(self.events[..n].iter().map(|e| e.u64 as usize));
        Ok(())
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}
