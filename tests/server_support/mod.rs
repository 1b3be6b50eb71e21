//! Starting and stopping a real `cityhall server` for integration tests.
//!
//! [`Server::start`] runs the binary on `127.0.0.1:0` with a given data
//! directory and reads the bound address from its "listening on" line.
//! The guard kills the process on drop, so no test leaves a server behind.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cityhall::client::Client;

pub mod raw;

/// The `cityhall` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cityhall");

/// A running server; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The address it listens on (`127.0.0.1:port` or `unix:/path`).
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server on a free loopback port over `data_dir`, with two
    /// event loops, self-monitoring off (unless `extra` sets it) and
    /// `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_listening(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a server listening on `listen`.
    pub fn start_listening(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["server", "--listen", listen, "--threads", "2", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            // Self-monitoring adds `cityhall.*` series every 10 s; tests
            // that list series ask for it explicitly.
            .args(if extra.contains(&"--self-monitor") {
                &[][..]
            } else {
                &["--self-monitor", "0"][..]
            })
            .env_remove("CITYHALL_DATA_DIR")
            .env_remove("CITYHALL_LISTEN")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(rest) = line.strip_prefix("cityhall: listening on ") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => server.addr = addr,
            Err(_) => panic!("server did not start; stderr:\n{}", server.stderr()),
        }
        server
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// A connected client.
    pub fn client(&self) -> Client {
        Client::connect(&self.addr).unwrap()
    }

    /// Runs `cityhall client --addr ADDR args...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_at(&self.addr, args)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
    }

    /// Sends SIGTERM and waits (at most a minute) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not stop within a minute of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cityhall client --addr addr args...`.
pub fn cli_at(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["client", "--addr", addr])
        .args(args)
        .env_remove("CITYHALL_ADDR")
        .output()
        .unwrap()
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
