//! Binding the listening socket: address parsing, the loopback rule and
//! the accept backlog.
//!
//! The socket is bound once, here, with the standard library; every event
//! loop then accepts from its own duplicate of the descriptor (the kernel
//! hands each connection to one of them). Binding anything but a loopback
//! address requires an auth token, so a default setup can never expose
//! the store to the network.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Pending connections the kernel queues before `accept`.
pub const ACCEPT_BACKLOG: i32 = 4_096;

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP `host:port`.
    Tcp(String),
    /// A Unix stream socket path (`unix:/path`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses `host:port` or `unix:/path`.
    pub fn parse(s: &str) -> Result<ListenAddr> {
        match s.strip_prefix("unix:") {
            Some("") => Err(Error::InvalidArgument("`unix:` needs a socket path".into())),
            Some(path) => Ok(ListenAddr::Unix(PathBuf::from(path))),
            None => Ok(ListenAddr::Tcp(s.to_string())),
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Bound {
    /// TCP, with the address actually bound (port 0 resolved).
    Tcp(TcpListener, SocketAddr),
    /// A Unix socket at a path.
    Unix(UnixListener, PathBuf),
}

impl Bound {
    /// The address to print and connect to (`127.0.0.1:7878`, `unix:/p`).
    pub fn display_addr(&self) -> String {
        match self {
            Bound::Tcp(_, a) => a.to_string(),
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Binds `addr`. A non-loopback TCP address is refused unless `has_token`.
pub fn bind(addr: &ListenAddr, has_token: bool) -> Result<Bound> {
    match addr {
        ListenAddr::Tcp(s) => bind_tcp(s, has_token),
        ListenAddr::Unix(p) => bind_unix(p),
    }
}

fn bind_tcp(s: &str, has_token: bool) -> Result<Bound> {
    let fail = |e: std::io::Error| Error::Io {
        op: "listen on",
        path: s.to_string(),
        source: e,
    };
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(fail)?.collect();
    let Some(&first) = addrs.first() else {
        return Err(Error::InvalidArgument(format!(
            "listen address {s} resolves to nothing"
        )));
    };
    if !has_token {
        if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(Error::InvalidArgument(format!(
                "refusing to listen on {a}, which is not a loopback address, without \
                 --auth-token-file: anyone who can reach it could read and change the data"
            )));
        }
    }
    let listener = TcpListener::bind(first).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    // SAFETY: the descriptor is a bound, listening socket owned by
    // `listener`; calling listen() again only raises its backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) };
    if rc != 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    let bound = listener.local_addr().map_err(fail)?;
    Ok(Bound::Tcp(listener, bound))
}

fn bind_unix(path: &Path) -> Result<Bound> {
    let fail = |op, e| Error::io(op, path, e);
    if path.exists() {
        // A socket file left by a process that is gone may be replaced;
        // one that still answers may not.
        if UnixStream::connect(path).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "{} is in use by another server",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| fail("remove stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail("listen on", e))?;
    // SAFETY: as for TCP, raises the backlog of a socket we own.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) };
    if rc != 0 {
        return Err(fail("listen on", std::io::Error::last_os_error()));
    }
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_public_addresses_without_a_token() {
        let e = bind(&ListenAddr::parse("0.0.0.0:0").unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        let b = bind(&ListenAddr::parse("127.0.0.1:0").unwrap(), false).unwrap();
        assert!(b.display_addr().starts_with("127.0.0.1:"));
        assert_eq!(
            ListenAddr::parse("unix:/tmp/x").unwrap(),
            ListenAddr::Unix(PathBuf::from("/tmp/x"))
        );
        assert!(ListenAddr::parse("unix:").is_err());
    }
}
