//! The `cityhall` command: the daemon (`cityhall server`) and the CLI
//! client (`cityhall client ...`).
//!
//! Output strings (`OK`, `VALUE <v>`, `NOT_FOUND`, `PONG`) and exit codes
//! are part of the interface: 0 success, 1 not found, 2 usage (clap), 3 a
//! connection, server or IO error, reported as one line on stderr that
//! names what failed.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use cityhall::client::render::{escape_bytes, render_metrics, MetricsFormat};
use cityhall::client::ts_cli::{self, TsCommand, TsFailure, TsOutcome};
use cityhall::client::{Client, ConnectOptions, DEFAULT_ADDR};
use cityhall::protocol::ScanRange;
use cityhall::server::config::parse_durability;
use cityhall::server::ServerConfig;
use cityhall::Error;

/// A crash-proof key-value and time-series store for the data of one's own machine.
#[derive(Parser, Debug)]
#[command(name = "cityhall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (stops gracefully on SIGTERM or SIGINT).
    Server(ServerArgs),
    /// Send one command to a running server.
    Client(ClientArgs),
    /// Verify every file of a database offline (manifest, WAL, tables);
    /// exits 0 when all is well, 3 when anything is damaged.
    Check(CheckArgs),
    /// Feed this machine's metrics (CPU, memory, disks, network, load)
    /// into a server as time series.
    Agent(cityhall::agent::cli::AgentArgs),
    /// Show the latest host and CityHall figures with sparklines,
    /// refreshed every interval.
    Top(cityhall::agent::top::TopArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Database directory, created if missing [default: ~/.cityhall/data].
    #[arg(long, env = "CITYHALL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on: host:port or unix:/path [default: 127.0.0.1:7878].
    #[arg(long, env = "CITYHALL_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// When a write is acknowledged: after it is synced, or after it is
    /// written with a sync every --sync-interval-ms [default: sync].
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    /// Milliseconds between syncs in relaxed mode [default: 1000].
    #[arg(long, value_name = "N")]
    sync_interval_ms: Option<u64>,
    /// Config file of `key = value` lines (flags and environment win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// File holding the token clients must present; required to listen on
    /// a non-loopback address.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Most connections served at once [default: 10000].
    #[arg(long, value_name = "N")]
    connections_max: Option<usize>,
    /// Close connections silent this long [default: 300000].
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Close connections that leave a frame (or the HELLO) incomplete this
    /// long [default: 30000].
    #[arg(long, value_name = "MS")]
    read_timeout_ms: Option<u64>,
    /// Answers a connection may have pending before it is no longer read
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    in_flight_requests_max: Option<usize>,
    /// Event-loop threads; 0 for one per core [default: 0].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Write the server's own metrics as `cityhall.*` series every D
    /// (10s, 1m, ...); 0 turns it off [default: 10s].
    #[arg(long, value_name = "D")]
    self_monitor: Option<String>,
    /// Also run the host agent (`cityhall agent`) inside the server, every
    /// D; 0 turns it off [default: 0].
    #[arg(long, value_name = "D")]
    agent_interval: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    Sync,
    Relaxed,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// Server address: host:port or unix:/path.
    #[arg(long, env = "CITYHALL_ADDR", default_value = DEFAULT_ADDR, value_name = "ADDR", global = true)]
    addr: String,
    /// File holding the server's auth token.
    #[arg(
        long,
        env = "CITYHALL_AUTH_TOKEN_FILE",
        value_name = "FILE",
        global = true
    )]
    auth_token_file: Option<PathBuf>,
    #[command(subcommand)]
    op: ClientOp,
}

#[derive(Subcommand, Debug)]
enum ClientOp {
    /// Set KEY to VALUE; prints OK once durable.
    Put { key: OsString, value: OsString },
    /// Print `VALUE <value>`, or NOT_FOUND (exit 1).
    Get { key: OsString },
    /// Delete KEY; prints OK.
    Delete { key: OsString },
    /// Print `key<TAB>value` lines in key order.
    Scan {
        /// Only keys starting with P.
        #[arg(long, value_name = "P", conflicts_with_all = ["start", "end"])]
        prefix: Option<OsString>,
        /// First key (inclusive).
        #[arg(long, value_name = "A")]
        start: Option<OsString>,
        /// End key (exclusive).
        #[arg(long, value_name = "B")]
        end: Option<OsString>,
        /// Most pairs to print [default: all].
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Print the server's and the engine's metrics.
    Metrics {
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
    },
    /// Print PONG if the server answers.
    Ping,
    /// Flush the memtables and compact the keys in [A, B] (both inclusive;
    /// default: every key) down the levels; prints OK when done.
    Compact {
        /// First key (inclusive) [default: the first key].
        #[arg(long, value_name = "A")]
        start: Option<OsString>,
        /// Last key (inclusive) [default: the last key].
        #[arg(long, value_name = "B")]
        end: Option<OsString>,
    },
    /// Time series: add points, read ranges (raw or aggregated), list,
    /// delete, set retention and duplicate policy.
    Ts {
        #[command(subcommand)]
        cmd: TsCommand,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Text,
    Json,
    Prometheus,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The database directory [default: ~/.cityhall/data].
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => run_server(args),
        Command::Client(args) => run_client(args),
        Command::Check(args) => run_check(args),
        Command::Agent(args) => ExitCode::from(cityhall::agent::cli::run(args)),
        Command::Top(args) => ExitCode::from(cityhall::agent::top::run(args)),
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    let dir = match args.dir {
        Some(d) => d,
        None => match ServerConfig::default_data_dir() {
            Ok(d) => d,
            Err(e) => return fail(&format!("check: {e}")),
        },
    };
    let fs = cityhall::io::plain::PlainFs::new();
    let report = cityhall::check::check_dir(&fs, &dir);
    let mut out = io::stdout().lock();
    for line in &report.checked {
        let _ = writeln!(out, "checked {line}");
    }
    for line in &report.notes {
        let _ = writeln!(out, "note    {line}");
    }
    for line in &report.problems {
        let _ = writeln!(out, "PROBLEM {line}");
    }
    if report.ok() {
        let _ = writeln!(out, "{}: no problems found", dir.display());
        ExitCode::SUCCESS
    } else {
        let _ = out.flush();
        fail(&format!(
            "check: {} problem(s) found in {}",
            report.problems.len(),
            dir.display()
        ))
    }
}

fn run_server(args: ServerArgs) -> ExitCode {
    let config = match server_config(args) {
        Ok(c) => c,
        Err(e) => return fail(&format!("server: {e}")),
    };
    match cityhall::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server: {e}")),
    }
}

fn server_config(args: ServerArgs) -> cityhall::Result<ServerConfig> {
    let mut cfg = ServerConfig::new(PathBuf::new());
    if let Some(file) = &args.config {
        cfg.apply_file(file)?;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if cfg.data_dir.as_os_str().is_empty() {
        cfg.data_dir = ServerConfig::default_data_dir()?;
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(ms) = args.sync_interval_ms {
        cfg.set_sync_interval_ms(ms);
    }
    if let Some(d) = args.durability {
        let name = match d {
            DurabilityArg::Sync => "sync",
            DurabilityArg::Relaxed => "relaxed",
        };
        cfg.options.durability =
            parse_durability(name, cfg.sync_interval_ms).map_err(Error::InvalidArgument)?;
    }
    if let Some(f) = args.auth_token_file {
        cfg.auth_token_file = Some(f);
    }
    if let Some(n) = args.connections_max {
        cfg.connections_max = n;
    }
    if let Some(ms) = args.idle_timeout_ms {
        cfg.idle_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = args.read_timeout_ms {
        cfg.read_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = args.in_flight_requests_max {
        cfg.in_flight_requests_max = n.max(1);
    }
    if let Some(n) = args.threads {
        cfg.threads = n;
    }
    for (key, value) in [
        ("self_monitor", &args.self_monitor),
        ("agent_interval", &args.agent_interval),
    ] {
        if let Some(v) = value {
            cfg.set(key, v)
                .map_err(|e| Error::InvalidArgument(format!("--{}: {e}", key.replace('_', "-"))))?;
        }
    }
    Ok(cfg)
}

/// The outcome of a client command that reached the server.
enum Outcome {
    Done,
    NotFound,
}

fn run_client(args: ClientArgs) -> ExitCode {
    let mut options = ConnectOptions::default();
    if let Some(path) = &args.auth_token_file {
        match cityhall::client::read_auth_token(path) {
            Ok(token) => options.auth_token = token,
            Err(e) => return fail(&e),
        }
    }
    // A time-series command is checked before connecting: usage errors
    // exit 2 whether or not a server runs.
    let ts_action = match &args.op {
        ClientOp::Ts { cmd } => match ts_cli::plan(cmd, cityhall::ts::options::system_now_ms()) {
            Ok(a) => Some(a),
            Err(m) => {
                eprintln!("cityhall: {}: {m}", ts_cli::command_name(cmd));
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    // So is a compact range: its start may not sort after its end.
    if let ClientOp::Compact {
        start: Some(a),
        end: Some(b),
    } = &args.op
    {
        if a.as_bytes() > b.as_bytes() {
            eprintln!(
                "cityhall: compact: --start {} sorts after --end {}",
                escape_bytes(a.as_bytes()),
                escape_bytes(b.as_bytes())
            );
            return ExitCode::from(2);
        }
    }
    let mut client = match Client::connect_with(&args.addr, &options) {
        Ok(c) => c,
        Err(e) => return fail(&connect_message(&args.addr, &e)),
    };
    let name = op_name(&args.op);
    let mut stdout = io::stdout().lock();
    if let Some(action) = ts_action {
        return match ts_cli::execute(&mut client, action, &mut stdout) {
            Ok(TsOutcome::Done) => ExitCode::SUCCESS,
            Ok(TsOutcome::NotFound | TsOutcome::Incomplete) => ExitCode::from(1),
            Err(TsFailure::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(TsFailure::Stdout(e)) => fail(&format!("cannot write to stdout: {e}")),
            Err(TsFailure::Server(e)) => fail(&format!("{name} failed: {e}")),
        };
    }
    match client_op(&mut client, args.op, &mut stdout) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(OpError::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(OpError::Stdout(e)) => fail(&format!("cannot write to stdout: {e}")),
        Err(OpError::Server(e)) => fail(&format!("{name} failed: {e}")),
    }
}

enum OpError {
    Server(Error),
    Stdout(io::Error),
}

impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        OpError::Server(e)
    }
}

impl From<io::Error> for OpError {
    fn from(e: io::Error) -> Self {
        OpError::Stdout(e)
    }
}

fn client_op(client: &mut Client, op: ClientOp, out: &mut impl Write) -> Result<Outcome, OpError> {
    match op {
        ClientOp::Put { key, value } => {
            client.put(key.as_bytes(), value.as_bytes())?;
            writeln!(out, "OK")?;
        }
        ClientOp::Get { key } => match client.get(key.as_bytes())? {
            Some(v) => writeln!(out, "VALUE {}", escape_bytes(&v))?,
            None => {
                writeln!(out, "NOT_FOUND")?;
                out.flush()?;
                return Ok(Outcome::NotFound);
            }
        },
        ClientOp::Delete { key } => {
            client.delete(key.as_bytes())?;
            writeln!(out, "OK")?;
        }
        ClientOp::Scan {
            prefix,
            start,
            end,
            limit,
        } => {
            let range = match &prefix {
                Some(p) => ScanRange::Prefix(p.as_bytes()),
                None => ScanRange::Range {
                    start: start.as_ref().map_or(&b""[..], |s| s.as_bytes()),
                    end: end.as_ref().map(|e| e.as_bytes()),
                },
            };
            for (k, v) in client.scan(range, limit.unwrap_or(usize::MAX))? {
                writeln!(out, "{}\t{}", escape_bytes(&k), escape_bytes(&v))?;
            }
        }
        ClientOp::Metrics { format } => {
            let format = match format {
                FormatArg::Text => MetricsFormat::Text,
                FormatArg::Json => MetricsFormat::Json,
                FormatArg::Prometheus => MetricsFormat::Prometheus,
            };
            write!(out, "{}", render_metrics(&client.metrics()?, format))?;
        }
        ClientOp::Ping => {
            client.ping()?;
            writeln!(out, "PONG")?;
        }
        ClientOp::Compact { start, end } => {
            client.compact(
                start.as_ref().map(|s| s.as_bytes()),
                end.as_ref().map(|e| e.as_bytes()),
            )?;
            writeln!(out, "OK")?;
        }
        ClientOp::Ts { .. } => {
            return Err(OpError::Server(Error::InvalidArgument(
                "a ts command reached the key-value path".into(),
            )))
        }
    }
    out.flush()?;
    Ok(Outcome::Done)
}

fn op_name(op: &ClientOp) -> &'static str {
    match op {
        ClientOp::Put { .. } => "put",
        ClientOp::Get { .. } => "get",
        ClientOp::Delete { .. } => "delete",
        ClientOp::Scan { .. } => "scan",
        ClientOp::Metrics { .. } => "metrics",
        ClientOp::Ping => "ping",
        ClientOp::Compact { .. } => "compact",
        ClientOp::Ts { cmd } => ts_cli::command_name(cmd),
    }
}

/// The one-line message for a failed connection or handshake.
fn connect_message(addr: &str, e: &Error) -> String {
    match e {
        Error::Io {
            op: "connect",
            source,
            ..
        } => {
            let hint = matches!(
                source.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::TimedOut
            );
            let reason = match source.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                io::ErrorKind::NotFound => "no such socket".to_string(),
                io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => source.to_string(),
            };
            let hint = if hint {
                " — is `cityhall server` running?"
            } else {
                ""
            };
            format!("cannot connect to {addr}: {reason}{hint}")
        }
        other => format!("cannot connect to {addr}: {other}"),
    }
}

/// Prints `cityhall: <msg>` on stderr and returns exit code 3.
fn fail(msg: &str) -> ExitCode {
    eprintln!("cityhall: {msg}");
    ExitCode::from(3)
}
