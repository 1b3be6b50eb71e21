//! [`Transport`]: the byte stream under a [`super::Client`], TCP or a Unix
//! socket, and the parsing of server addresses.
//!
//! An address is `host:port` (`127.0.0.1:7878`, `localhost:7878`,
//! `[::1]:7878`) or `unix:/path/to/socket`.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::error::{Error, Result};

/// A connected stream.
#[derive(Debug)]
pub enum Transport {
    /// A TCP connection (Nagle disabled).
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

impl Transport {
    /// The socket's file descriptor.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Transport::Tcp(s) => s.as_raw_fd(),
            Transport::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Connects to `addr`, trying every address a host name resolves to,
    /// each for at most `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Transport> {
        let fail = |source: io::Error| Error::Io {
            op: "connect",
            path: addr.to_string(),
            source,
        };
        if let Some(path) = addr.strip_prefix("unix:") {
            return UnixStream::connect(path).map(Transport::Unix).map_err(fail);
        }
        let mut last = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        );
        for sa in addr.to_socket_addrs().map_err(fail)? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(fail)?;
                    return Ok(Transport::Tcp(s));
                }
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }

    /// Sets the timeout of every later read and write (`None`: wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Transport::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    /// Closes the writing half, telling the server no more requests come.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Transport::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
        }
    }
}
