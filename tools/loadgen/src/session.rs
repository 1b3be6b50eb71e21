//! [`Session`]: one connection's way of issuing requests, the same for a
//! server (through `cityhall::client::Client`, the one codec) and for an
//! embedded `cityhall::Db`.
//!
//! Requests are queued with `send`, written with `flush`, and answered in
//! order by `recv`. Over TCP that is the client's pipelined API. Embedded,
//! a put or delete sent while others are in flight goes through
//! `Db::write_async` so that a pipeline of writes joins one group commit
//! as it would in the server; a read first waits for the writes before it,
//! which gives the same read-your-writes order the server gives one
//! connection. With `--pipeline 1` embedded writes use the blocking
//! `Db::put`/`Db::delete`.
//!
//! A session is used by one thread.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use cityhall::client::{server_error, Client};
use cityhall::protocol::{Request, Response, ScanRange};
use cityhall::{Db, WriteBatch, WriteFuture};

/// A request, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub enum Req<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
    },
    Get {
        key: &'a [u8],
    },
    Delete {
        key: &'a [u8],
    },
    Scan {
        start: &'a [u8],
        end: Option<&'a [u8]>,
        limit: u32,
    },
}

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A write was applied.
    Done,
    /// A GET found this value.
    Found(Vec<u8>),
    /// A GET found nothing.
    NotFound,
    /// A scan page; `more` when the range holds pairs beyond it.
    Pairs {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        more: bool,
    },
}

/// One connection (or embedded handle).
pub trait Session {
    /// Queues a request.
    fn send(&mut self, req: Req<'_>) -> Result<(), String>;
    /// Writes the queued requests.
    fn flush(&mut self) -> Result<(), String>;
    /// The answer to the oldest unanswered request.
    fn recv(&mut self) -> Result<Outcome, String>;
    /// The socket to wait on for answers, if there is one.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Whether `recv` can answer without reading from the socket.
    fn has_buffered_answer(&self) -> bool {
        false
    }
}

/// A session over TCP.
pub struct Remote {
    client: Client,
}

impl Remote {
    /// Connects to `addr`; refuses a scan length the server would refuse.
    pub fn connect(addr: &str, scan_length: u32) -> Result<Remote, String> {
        let client = Client::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let max = client.limits().scan_limit_max;
        if scan_length as usize > max {
            return Err(format!(
                "--scan-length {scan_length} exceeds the server's scan_limit_max {max}"
            ));
        }
        Ok(Remote { client })
    }
}

impl Session for Remote {
    fn send(&mut self, req: Req<'_>) -> Result<(), String> {
        let request = match req {
            Req::Put { key, value } => Request::Put { key, value },
            Req::Get { key } => Request::Get { key },
            Req::Delete { key } => Request::Delete { key },
            Req::Scan { start, end, limit } => Request::Scan {
                range: ScanRange::Range { start, end },
                limit,
            },
        };
        self.client.send(&request).map_err(|e| e.to_string())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.client.flush().map_err(|e| e.to_string())
    }

    fn recv(&mut self) -> Result<Outcome, String> {
        match self.client.recv().map_err(|e| e.to_string())? {
            Response::Ok => Ok(Outcome::Done),
            Response::Value(v) => Ok(Outcome::Found(v)),
            Response::NotFound => Ok(Outcome::NotFound),
            Response::ScanPage(p) => Ok(Outcome::Pairs {
                pairs: p.pairs,
                more: p.continuation.is_some(),
            }),
            Response::Error(e) => Err(server_error(e).to_string()),
            other => Err(format!("unexpected answer from the server: {other:?}")),
        }
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.client.raw_fd())
    }

    fn has_buffered_answer(&self) -> bool {
        self.client.has_buffered_answer()
    }
}

/// A request the embedded session has taken but not yet answered.
enum Pending {
    Write(WriteFuture),
    Answered(Result<Outcome, String>),
}

/// A session over an in-process database.
pub struct Embedded {
    db: Db,
    pipelined: bool,
    pending: VecDeque<Pending>,
}

impl Embedded {
    /// A session on `db`; `pipeline` is the run's `--pipeline`.
    pub fn new(db: Db, pipeline: usize) -> Embedded {
        Embedded {
            db,
            pipelined: pipeline > 1,
            pending: VecDeque::with_capacity(pipeline),
        }
    }

    /// Waits for every write still in flight, keeping answers in order.
    fn settle_writes(&mut self) {
        if !self.pending.iter().any(|p| matches!(p, Pending::Write(_))) {
            return;
        }
        self.pending = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| match p {
                Pending::Write(f) => {
                    Pending::Answered(block_on(f).map(|()| Outcome::Done).map_err(err))
                }
                answered => answered,
            })
            .collect();
    }

    fn write(&mut self, batch: WriteBatch) {
        if self.pipelined {
            self.pending
                .push_back(Pending::Write(self.db.write_async(batch)));
        } else {
            let r = self.db.write(batch).map(|()| Outcome::Done).map_err(err);
            self.pending.push_back(Pending::Answered(r));
        }
    }
}

impl Session for Embedded {
    fn send(&mut self, req: Req<'_>) -> Result<(), String> {
        match req {
            Req::Put { key, value } => {
                let mut b = WriteBatch::new();
                b.put(key, value);
                self.write(b);
            }
            Req::Delete { key } => {
                let mut b = WriteBatch::new();
                b.delete(key);
                self.write(b);
            }
            Req::Get { key } => {
                self.settle_writes();
                let r = match self.db.get(key) {
                    Ok(Some(v)) => Ok(Outcome::Found(v)),
                    Ok(None) => Ok(Outcome::NotFound),
                    Err(e) => Err(err(e)),
                };
                self.pending.push_back(Pending::Answered(r));
            }
            Req::Scan { start, end, limit } => {
                self.settle_writes();
                let r = self
                    .db
                    .scan(start, end, limit as usize + 1)
                    .map(|mut pairs| {
                        let more = pairs.len() > limit as usize;
                        pairs.truncate(limit as usize);
                        Outcome::Pairs { pairs, more }
                    })
                    .map_err(err);
                self.pending.push_back(Pending::Answered(r));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn recv(&mut self) -> Result<Outcome, String> {
        match self.pending.pop_front() {
            Some(Pending::Write(f)) => block_on(f).map(|()| Outcome::Done).map_err(err),
            Some(Pending::Answered(r)) => r,
            None => Err("recv with nothing in flight".into()),
        }
    }
}

fn err(e: cityhall::Error) -> String {
    e.to_string()
}

/// Wakes the thread that blocks in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` to completion on this thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
