//! [`ConnStream`]: the few operations a connection needs from a socket,
//! implemented for tokio-uring's TCP and Unix streams so one connection
//! loop serves both.

use std::io;
use std::net::Shutdown;

use tokio_uring::buf::{BoundedBuf, BoundedBufMut};
use tokio_uring::BufResult;

/// A connected stream socket driven by io_uring.
pub(crate) trait ConnStream: 'static {
    /// Reads into the buffer's spare room.
    async fn read<T: BoundedBufMut>(&self, buf: T) -> BufResult<usize, T>;
    /// Writes the whole buffer.
    async fn write_all<T: BoundedBuf>(&self, buf: T) -> BufResult<(), T>;
    /// Shuts down one or both directions; a pending read then completes.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

impl ConnStream for tokio_uring::net::TcpStream {
    async fn read<T: BoundedBufMut>(&self, buf: T) -> BufResult<usize, T> {
        tokio_uring::net::TcpStream::read(self, buf).await
    }
    async fn write_all<T: BoundedBuf>(&self, buf: T) -> BufResult<(), T> {
        tokio_uring::net::TcpStream::write_all(self, buf).await
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        tokio_uring::net::TcpStream::shutdown(self, how)
    }
}

impl ConnStream for tokio_uring::net::UnixStream {
    async fn read<T: BoundedBufMut>(&self, buf: T) -> BufResult<usize, T> {
        tokio_uring::net::UnixStream::read(self, buf).await
    }
    async fn write_all<T: BoundedBuf>(&self, buf: T) -> BufResult<(), T> {
        tokio_uring::net::UnixStream::write_all(self, buf).await
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        tokio_uring::net::UnixStream::shutdown(self, how)
    }
}
