//! The event loops: one thread per core, each running its own tokio-uring
//! runtime that accepts connections and serves them as local tasks.
//!
//! TCP: every loop accepts from its own duplicate of the one listening
//! socket; the kernel gives each connection to one of them. Unix sockets:
//! tokio-uring cannot adopt a listening Unix socket, so one plain thread
//! accepts and deals the connections to the loops in turn.
//!
//! On stop, a loop stops accepting, lets its connections finish what they
//! were executing (each answers in-flight requests, then closes), waits at
//! most `drain_timeout` for them, and returns.

use std::cell::Cell;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc as tmpsc, watch, Notify};

use crate::error::{Error, Result};
use crate::protocol::{ErrorCode, ProtocolError};

use super::connection::{refuse, serve};
use super::listener::Bound;
use super::stream::ConnStream;
use super::Shared;

/// Most refusals (connections over `connections_max`) in progress per
/// loop; beyond it extra connections are closed without an answer.
const REFUSALS_MAX: usize = 256;

/// Where a loop's connections come from.
enum Incoming {
    Tcp(std::net::TcpListener),
    Unix(tmpsc::UnboundedReceiver<UnixStream>),
}

/// The started event loops.
pub(crate) struct Workers {
    threads: Vec<JoinHandle<()>>,
    unix_acceptor: Option<(JoinHandle<()>, Arc<AtomicBool>, PathBuf)>,
}

impl Workers {
    /// Starts `n` loops on `bound`; returns once every loop runs, or the
    /// first loop's failure to start.
    pub fn start(
        n: usize,
        shared: &Arc<Shared>,
        bound: &Bound,
        stop: &watch::Receiver<bool>,
    ) -> Result<Workers> {
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut workers = Workers {
            threads: Vec::new(),
            unix_acceptor: None,
        };
        let mut unix_senders = Vec::new();
        for i in 0..n {
            let incoming = match bound {
                Bound::Tcp(l, addr) => Incoming::Tcp(l.try_clone().map_err(|e| Error::Io {
                    op: "duplicate listening socket",
                    path: addr.to_string(),
                    source: e,
                })?),
                Bound::Unix(..) => {
                    let (tx, rx) = tmpsc::unbounded_channel();
                    unix_senders.push(tx);
                    Incoming::Unix(rx)
                }
            };
            let (shared, stop, ready) = (Arc::clone(shared), stop.clone(), ready_tx.clone());
            let t = std::thread::Builder::new()
                .name(format!("cityhall-loop-{i}"))
                .spawn(move || run_loop(shared, incoming, stop, ready))
                .map_err(|e| Error::io("spawn event loop", std::path::Path::new("thread"), e))?;
            workers.threads.push(t);
        }
        drop(ready_tx);
        for _ in 0..n {
            let started = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop exited while starting")));
            if let Err(e) = started {
                return Err(Error::InvalidArgument(format!(
                    "cannot start an io_uring event loop: {e}; likely cause: io_uring is disabled \
                     by seccomp or kernel.io_uring_disabled"
                )));
            }
        }
        if let Bound::Unix(l, path) = bound {
            workers.unix_acceptor = Some(start_unix_acceptor(l, path.clone(), unix_senders)?);
        }
        Ok(workers)
    }

    /// Waits for every loop to finish (after the stop signal was sent).
    pub fn join(mut self) {
        if let Some((t, stopping, path)) = self.unix_acceptor.take() {
            stopping.store(true, Ordering::Release);
            let _ = UnixStream::connect(&path); // wakes the blocked accept()
            let _ = t.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An event loop's runtime. Its ring runs completion work cooperatively
/// (`IORING_SETUP_COOP_TASKRUN`): when a socket becomes readable the
/// kernel queues the read for this thread's next entry into the kernel
/// instead of interrupting it, which the loop makes often (and a sleeping
/// loop is still woken). Kernels before 5.19 refuse the flag; the ring is
/// then made without it.
fn event_loop_runtime() -> io::Result<tokio_uring::Runtime> {
    let mut ring = tokio_uring::uring_builder();
    ring.setup_coop_taskrun();
    tokio_uring::Runtime::new(tokio_uring::builder().uring_builder(&ring))
        .or_else(|_| tokio_uring::Runtime::new(&tokio_uring::builder()))
}

fn run_loop(
    shared: Arc<Shared>,
    incoming: Incoming,
    stop: watch::Receiver<bool>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let rt = match event_loop_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    rt.block_on(async move {
        let live = Rc::new(Live::default());
        match incoming {
            Incoming::Tcp(l) => accept_tcp(&shared, l, &stop, &live).await,
            Incoming::Unix(rx) => accept_unix(&shared, rx, &stop, &live).await,
        }
        live.drain(shared.config.drain_timeout).await;
    });
}

async fn accept_tcp(
    shared: &Arc<Shared>,
    l: std::net::TcpListener,
    stop: &watch::Receiver<bool>,
    live: &Rc<Live>,
) {
    let listener = tokio_uring::net::TcpListener::from_std(l);
    let mut stop_rx = stop.clone();
    loop {
        if *stop_rx.borrow() {
            return;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop_rx.changed() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                admit(shared, stream, stop, live);
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                eprintln!("cityhall: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_unix(
    shared: &Arc<Shared>,
    mut rx: tmpsc::UnboundedReceiver<UnixStream>,
    stop: &watch::Receiver<bool>,
    live: &Rc<Live>,
) {
    let mut stop_rx = stop.clone();
    loop {
        if *stop_rx.borrow() {
            return;
        }
        let next = tokio::select! {
            s = rx.recv() => s,
            _ = stop_rx.changed() => return,
        };
        match next {
            Some(s) => admit(
                shared,
                tokio_uring::net::UnixStream::from_std(s),
                stop,
                live,
            ),
            None => return,
        }
    }
}

/// Serves a new connection, or refuses it when `connections_max` are open.
fn admit<S: ConnStream>(
    shared: &Arc<Shared>,
    stream: S,
    stop: &watch::Receiver<bool>,
    live: &Rc<Live>,
) {
    let max = shared.config.connections_max;
    if !shared.stats.try_open_connection(max) {
        shared.stats.connections_rejected.inc();
        if live.refusing.get() >= REFUSALS_MAX {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        live.refusing.set(live.refusing.get() + 1);
        let live = Rc::clone(live);
        let e = ProtocolError::new(
            ErrorCode::TooManyConnections,
            format!("the server already serves connections_max {max} connections; try again later"),
        );
        tokio_uring::spawn(async move {
            refuse(stream, e).await;
            live.refusing.set(live.refusing.get().saturating_sub(1));
        });
        return;
    }
    live.open.set(live.open.get() + 1);
    let (shared, stop, live) = (Arc::clone(shared), stop.clone(), Rc::clone(live));
    tokio_uring::spawn(async move {
        serve(stream, Arc::clone(&shared), stop).await;
        shared.stats.close_connection();
        live.open.set(live.open.get().saturating_sub(1));
        live.closed.notify_one();
    });
}

/// The connections of one loop.
#[derive(Default)]
struct Live {
    open: Cell<usize>,
    refusing: Cell<usize>,
    closed: Notify,
}

impl Live {
    /// Waits until every connection has closed, at most `timeout`.
    async fn drain(&self, timeout: Duration) {
        let wait = async {
            while self.open.get() > 0 {
                self.closed.notified().await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

type UnixAcceptor = (JoinHandle<()>, Arc<AtomicBool>, PathBuf);

fn start_unix_acceptor(
    l: &UnixListener,
    path: PathBuf,
    senders: Vec<tmpsc::UnboundedSender<UnixStream>>,
) -> Result<UnixAcceptor> {
    let l = l
        .try_clone()
        .map_err(|e| Error::io("duplicate listening socket", &path, e))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    let t = std::thread::Builder::new()
        .name("cityhall-unix-accept".into())
        .spawn(move || {
            let mut next = 0usize;
            for conn in l.incoming() {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let Some(tx) = senders.get(next % senders.len().max(1)) {
                    let _ = tx.send(conn);
                }
                next = next.wrapping_add(1);
            }
        })
        .map_err(|e| Error::io("spawn unix acceptor", &path, e))?;
    Ok((t, stopping, path))
}
