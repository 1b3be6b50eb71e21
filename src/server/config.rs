//! [`ServerConfig`]: everything the daemon is started with, and the config
//! file that can carry it.
//!
//! Precedence, lowest first: built-in defaults, the `--config` file, the
//! environment (`CITYHALL_DATA_DIR`, `CITYHALL_LISTEN`), command-line
//! flags. The CLI applies the last two; this module owns the defaults and
//! the file.
//!
//! The file holds `key = value` lines; `#` starts a comment, values may be
//! quoted with `"`. Keys are the long flag names with `_` for `-`:
//!
//! ```text
//! data_dir = "/var/lib/cityhall"
//! listen = "127.0.0.1:7878"
//! durability = "sync"            # or "relaxed"
//! sync_interval_ms = 1000        # relaxed mode only
//! auth_token_file = "/etc/cityhall/token"
//! connections_max = 10000
//! idle_timeout_ms = 300000
//! read_timeout_ms = 30000
//! in_flight_requests_max = 1024
//! threads = 0                    # 0: one per core
//! memtable_size_bytes_max = 67108864   # engine: memtable frozen at this size
//! wal_segment_size_bytes = 67108864    # engine: size of a busy log's WAL segments
//! wal_idle_segment_size_bytes = 1048576 # engine: the WAL segment of a log at rest
//! self_monitor = "10s"           # own metrics as cityhall.* series; "0": off
//! agent_interval = "10s"         # run the host agent in the server; "0": off (the default)
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::options::{Durability, Options};
use crate::protocol::handshake::AUTH_TOKEN_BYTES_MAX;

/// The address the daemon listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Sync interval of the relaxed durability mode when none is given.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 1_000;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The database directory (created if missing).
    pub data_dir: PathBuf,
    /// `host:port` or `unix:/path`.
    pub listen: String,
    /// Engine options (durability and size limits among them).
    pub options: Options,
    /// Sync interval used when durability is relaxed.
    pub sync_interval_ms: u64,
    /// File holding the auth token every HELLO must carry.
    pub auth_token_file: Option<PathBuf>,
    /// Most connections served at once; more are refused with an error.
    pub connections_max: usize,
    /// A connection with nothing pending is closed after this long silent.
    pub idle_timeout: Duration,
    /// A connection with a partial frame (or no HELLO yet) is closed after
    /// this long without completing it.
    pub read_timeout: Duration,
    /// Most answers a connection may have pending before the server stops
    /// reading it (backpressure).
    pub in_flight_requests_max: usize,
    /// Event-loop threads; 0 means one per core.
    pub threads: usize,
    /// Longest wait at shutdown for connections to finish their requests.
    pub drain_timeout: Duration,
    /// Interval of self-monitoring (`cityhall.*` series); zero: off.
    pub self_monitor_interval: Duration,
    /// Interval of the host agent run inside the server; zero: off.
    pub agent_interval: Duration,
}

impl ServerConfig {
    /// Defaults with the data directory `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            listen: DEFAULT_LISTEN.to_string(),
            options: Options::default(),
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            auth_token_file: None,
            connections_max: 10_000,
            idle_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(30),
            in_flight_requests_max: 1_024,
            threads: 0,
            drain_timeout: Duration::from_secs(30),
            self_monitor_interval: Duration::from_secs(10),
            agent_interval: Duration::ZERO,
        }
    }

    /// The default data directory: `~/.cityhall/data`.
    pub fn default_data_dir() -> Result<PathBuf> {
        match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => {
                Ok(PathBuf::from(home).join(".cityhall").join("data"))
            }
            _ => Err(Error::InvalidArgument(
                "HOME is not set; pass --data-dir or set CITYHALL_DATA_DIR".into(),
            )),
        }
    }

    /// Applies the settings of a config file.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read config", path, e))?;
        for (i, line) in text.lines().enumerate() {
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            let at = || format!("{}:{}", path.display(), i + 1);
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "{}: expected `key = value`",
                    at()
                )));
            };
            let value = unquote(value.trim());
            self.set(key.trim(), value)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", at())))?;
        }
        Ok(())
    }

    /// Sets one setting by its config-file name.
    pub fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        match key {
            "data_dir" => self.data_dir = PathBuf::from(value),
            "listen" => self.listen = value.to_string(),
            "durability" => {
                self.options.durability = parse_durability(value, self.sync_interval_ms)?
            }
            "sync_interval_ms" => self.set_sync_interval_ms(parse_num(key, value)?),
            "auth_token_file" => self.auth_token_file = Some(PathBuf::from(value)),
            "connections_max" => self.connections_max = parse_num(key, value)?,
            "idle_timeout_ms" => self.idle_timeout = Duration::from_millis(parse_num(key, value)?),
            "read_timeout_ms" => self.read_timeout = Duration::from_millis(parse_num(key, value)?),
            "in_flight_requests_max" => {
                self.in_flight_requests_max = parse_num::<usize>(key, value)?.max(1)
            }
            "threads" => self.threads = parse_num(key, value)?,
            "memtable_size_bytes_max" => {
                self.options.memtable_size_bytes_max = parse_at_least(key, value, 4096)?
            }
            "wal_segment_size_bytes" => {
                self.options.wal_segment_size_bytes = parse_at_least(key, value, 64 << 10)?
            }
            "wal_idle_segment_size_bytes" => {
                self.options.wal_idle_segment_size_bytes = parse_at_least(key, value, 4096)?
            }
            "self_monitor" => self.self_monitor_interval = parse_interval(key, value)?,
            "agent_interval" => self.agent_interval = parse_interval(key, value)?,
            _ => return Err(format!("unknown setting `{key}`")),
        }
        Ok(())
    }

    /// Sets the relaxed-mode sync interval (whatever the current mode).
    pub fn set_sync_interval_ms(&mut self, ms: u64) {
        self.sync_interval_ms = ms;
        if let Durability::Relaxed { interval_ms } = &mut self.options.durability {
            *interval_ms = ms;
        }
    }

    /// Reads the auth token, if a token file is configured.
    pub fn load_auth_token(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.auth_token_file else {
            return Ok(None);
        };
        let raw = std::fs::read(path).map_err(|e| Error::io("read auth token", path, e))?;
        let token = raw.trim_ascii().to_vec();
        if token.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "auth token file {} is empty",
                path.display()
            )));
        }
        if token.len() > AUTH_TOKEN_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "auth token in {} is {} bytes; at most {AUTH_TOKEN_BYTES_MAX} allowed",
                path.display(),
                token.len()
            )));
        }
        Ok(Some(token))
    }

    /// The number of event-loop threads to start.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Parses `sync` or `relaxed`.
pub fn parse_durability(value: &str, interval_ms: u64) -> std::result::Result<Durability, String> {
    match value {
        "sync" => Ok(Durability::Sync),
        "relaxed" => Ok(Durability::Relaxed { interval_ms }),
        other => Err(format!(
            "durability must be `sync` or `relaxed`, not `{other}`"
        )),
    }
}

/// Parses an interval setting: a duration (`10s`, `500ms`) or `0` (off).
pub fn parse_interval(key: &str, value: &str) -> std::result::Result<Duration, String> {
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let ms = crate::ts::time::parse_duration_ms(value).map_err(|e| format!("`{key}`: {e}"))?;
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> std::result::Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}` must be a non-negative integer, not `{value}`"))
}

fn parse_at_least<T>(key: &str, value: &str, min: T) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = parse_num(key, value)?;
    if n < min {
        return Err(format!("`{key}` must be at least {min}, not `{value}`"));
    }
    Ok(n)
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return line.get(..i).unwrap_or(line),
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}
