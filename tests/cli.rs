//! The `cityhall` command line against a real server: every client
//! command's exact output and exit status, usage errors, connection
//! errors, auth, Unix sockets, config files and restarts.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use cityhall::protocol::ScanRange;
use server_support::{cli_at, free_port, stderr, stdout, Server, BIN};

#[test]
fn put_get_delete_scan_ping_print_exact_output() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let o = server.cli(&["put", "system.cpu.load", "0.75"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("OK\n", Some(0)),
        "{}",
        stderr(&o)
    );
    let o = server.cli(&["get", "system.cpu.load"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("VALUE 0.75\n", Some(0))
    );
    let o = server.cli(&["get", "non.existent.key"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("NOT_FOUND\n", Some(1))
    );
    assert_eq!(stderr(&o), "");

    for (k, v) in [
        ("system.mem.used", "12"),
        ("system.disk", "3"),
        ("user.name", "ada"),
    ] {
        assert_eq!(server.cli(&["put", k, v]).status.code(), Some(0));
    }
    let o = server.cli(&["scan", "--prefix", "system."]);
    assert_eq!(
        stdout(&o),
        "system.cpu.load\t0.75\nsystem.disk\t3\nsystem.mem.used\t12\n"
    );
    let o = server.cli(&["scan", "--start", "system.d", "--end", "user"]);
    assert_eq!(stdout(&o), "system.disk\t3\nsystem.mem.used\t12\n");
    let o = server.cli(&["scan", "--limit", "2"]);
    assert_eq!(stdout(&o), "system.cpu.load\t0.75\nsystem.disk\t3\n");
    let o = server.cli(&["scan", "--prefix", "nothing."]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));

    let o = server.cli(&["delete", "system.cpu.load"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("OK\n", Some(0)));
    let o = server.cli(&["get", "system.cpu.load"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("NOT_FOUND\n", Some(1))
    );
    let o = server.cli(&["delete", "never.existed"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("OK\n", Some(0)));

    let o = server.cli(&["ping"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("PONG\n", Some(0)));
}

#[test]
fn binary_values_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let o = Command::new(BIN)
        .args(["client", "--addr", &server.addr, "put", "bin"])
        .arg(OsStr::from_bytes(b"a\tb\x01\xff\\c"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = server.cli(&["get", "bin"]);
    assert_eq!(stdout(&o), "VALUE a\\x09b\\x01\\xff\\\\c\n");
    let o = server.cli(&["scan", "--prefix", "bin"]);
    assert_eq!(stdout(&o), "bin\ta\\x09b\\x01\\xff\\\\c\n");
}

#[test]
fn metrics_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.cli(&["put", "k", "v"]);
    server.cli(&["get", "k"]);

    let o = server.cli(&["metrics"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.contains("server.put.requests 1\n"), "{text}");
    assert!(text.contains("server.get.latency_us count=1 "), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("db.")),
        "engine metrics missing:\n{text}"
    );

    let o = server.cli(&["metrics", "--format", "json"]);
    let json = stdout(&o);
    assert!(json.starts_with("{\n") && json.ends_with("}\n"), "{json}");
    assert!(
        json.contains("\"server.put.requests\": {\"type\": \"counter\", \"value\": 1}"),
        "{json}"
    );

    let o = server.cli(&["metrics", "--format", "prometheus"]);
    let prom = stdout(&o);
    assert!(
        prom.contains(
            "# TYPE cityhall_server_put_requests counter\ncityhall_server_put_requests 1\n"
        ),
        "{prom}"
    );
    assert!(
        prom.contains("cityhall_server_get_latency_us_count 1\n"),
        "{prom}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["client"][..],
        &["client", "put", "only-key"],
        &["client", "frobnicate"],
        &["client", "scan", "--prefix", "a", "--start", "b"],
        &["client", "metrics", "--format", "xml"],
        &["bogus"],
        &[],
    ] {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn connection_refused_exits_3_with_one_line() {
    let addr = format!("127.0.0.1:{}", free_port());
    let o = cli_at(&addr, &["get", "k"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!("cityhall: cannot connect to {addr}: connection refused — is `cityhall server` running?\n")
    );
}

#[test]
fn addr_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let o = Command::new(BIN)
        .args(["client", "ping"])
        .env("CITYHALL_ADDR", &server.addr)
        .output()
        .unwrap();
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("PONG\n", Some(0)));
}

#[test]
fn server_errors_exit_3_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = "k".repeat(70_000);
    let o = server.cli(&["put", &key, "v"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cityhall: put failed: "), "{err}");
    assert!(
        err.contains("key of 70000 bytes exceeds key_size_bytes_max 65536"),
        "{err}"
    );
}

#[test]
fn refuses_public_address_without_token() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("not a loopback address") && err.contains("--auth-token-file"),
        "{err}"
    );
}

#[test]
fn auth_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--auth-token-file", token.to_str().unwrap()]);

    let o = server.cli(&["ping"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("auth_failed"), "{}", stderr(&o));

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess").unwrap();
    let o = server.cli(&["--auth-token-file", wrong.to_str().unwrap(), "ping"]);
    assert_eq!(o.status.code(), Some(3));

    let o = server.cli(&[
        "--auth-token-file",
        token.to_str().unwrap(),
        "put",
        "a",
        "1",
    ]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("OK\n", Some(0)),
        "{}",
        stderr(&o)
    );
}

#[test]
fn restart_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for i in 0..20 {
        let o = server.cli(&["put", &format!("key{i:02}"), &format!("value{i}")]);
        assert_eq!(o.status.code(), Some(0));
    }
    server.cli(&["delete", "key07"]);
    let status = server.stop();
    assert_eq!(status.code(), Some(0));

    let server = Server::start(dir.path(), &[]);
    let o = server.cli(&["get", "key19"]);
    assert_eq!(stdout(&o), "VALUE value19\n");
    let o = server.cli(&["get", "key07"]);
    assert_eq!(o.status.code(), Some(1));
    let o = server.cli(&["scan", "--prefix", "key"]);
    assert_eq!(stdout(&o).lines().count(), 19);
}

#[test]
fn unix_socket_listener() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cityhall.sock");
    let listen = format!("unix:{}", sock.display());
    let server = Server::start_listening(&dir.path().join("data"), &listen, &[]);
    assert_eq!(server.addr, listen);
    let o = server.cli(&["put", "u", "1"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("OK\n", Some(0)),
        "{}",
        stderr(&o)
    );
    let o = server.cli(&["get", "u"]);
    assert_eq!(stdout(&o), "VALUE 1\n");
    assert_eq!(server.stop().code(), Some(0));
    assert!(!sock.exists(), "socket file left behind");
}

#[test]
fn config_file_sets_options_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cityhall.conf");
    std::fs::write(
        &config,
        "# a comment\nlisten = \"127.0.0.1:1\"   # overridden by --listen\ndurability = relaxed\nsync_interval_ms = 50\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        server
            .stderr()
            .contains("durability relaxed, sync every 50 ms"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.cli(&["ping"]).status.code(), Some(0));

    std::fs::write(&config, "no_such_setting = 1\n").unwrap();
    let o = Command::new(BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("cityhall.conf:1: unknown setting `no_such_setting`"),
        "{}",
        stderr(&o)
    );
}

fn gauge(m: &cityhall::metrics::MetricsSnapshot, name: &str) -> f64 {
    match m.get(name) {
        Some(cityhall::metrics::MetricValue::Gauge(g)) => *g,
        other => panic!("{name}: not a gauge: {other:?}"),
    }
}

fn counter(m: &cityhall::metrics::MetricsSnapshot, name: &str) -> u64 {
    match m.get(name) {
        Some(cityhall::metrics::MetricValue::Counter(n)) => *n,
        other => panic!("{name}: not a counter: {other:?}"),
    }
}

#[test]
fn compact_prints_ok_and_leaves_one_level() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client();
    // Three rounds of the same keys, each flushed to its own L0 table by a
    // compaction of an empty range, then deletes of a third of them.
    for round in 0..3 {
        for i in 0..300 {
            c.put(
                format!("k{i:04}").as_bytes(),
                format!("v{round}.{i}").as_bytes(),
            )
            .unwrap();
        }
        c.compact(Some(b"zzz"), Some(b"zzz")).unwrap();
    }
    for i in (0..300).step_by(3) {
        c.delete(format!("k{i:04}").as_bytes()).unwrap();
    }
    let before = c.metrics().unwrap();
    assert!(gauge(&before, "level0.files") >= 1.0, "{before:?}");

    let o = server.cli(&["compact", "--start", "k0100", "--end", "k0199"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("OK\n", Some(0)),
        "{}",
        stderr(&o)
    );
    let o = server.cli(&["compact"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("OK\n", Some(0)),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o), "");

    let after = c.metrics().unwrap();
    assert!(counter(&after, "compaction.count") >= 1, "{after:?}");
    let levels: Vec<f64> = (0..7)
        .map(|l| gauge(&after, &format!("level{l}.files")))
        .collect();
    assert_eq!(levels[0], 0.0, "files per level after compact: {levels:?}");
    assert_eq!(
        levels.iter().filter(|&&n| n > 0.0).count(),
        1,
        "files per level after compact: {levels:?}"
    );
    // Nothing lost, nothing deleted comes back.
    let o = server.cli(&["get", "k0001"]);
    assert_eq!(stdout(&o), "VALUE v2.1\n");
    let o = server.cli(&["get", "k0003"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("NOT_FOUND\n", Some(1))
    );
    let o = server.cli(&["scan", "--start", "k0000", "--end", "k0006"]);
    assert_eq!(
        stdout(&o),
        "k0001\tv2.1\nk0002\tv2.2\nk0004\tv2.4\nk0005\tv2.5\n"
    );
    assert_eq!(
        c.scan(ScanRange::Prefix(b"k"), usize::MAX).unwrap().len(),
        200
    );
}

#[test]
fn compact_bad_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Checked by the command before it connects: a usage error.
    let o = server.cli(&["compact", "--start", "b", "--end", "a"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(2)));
    assert_eq!(
        stderr(&o),
        "cityhall: compact: --start b sorts after --end a\n"
    );
    // And by the server, for clients that do not check.
    let mut c = server.client();
    let e = c.compact(Some(b"b"), Some(b"a")).unwrap_err();
    assert_eq!(
        e.to_string(),
        cityhall::Error::InvalidArgument(
            "compact range start \"b\" sorts after its end \"a\"".into()
        )
        .to_string()
    );
    // A bound over the key limit is named.
    let key = "k".repeat(70_000);
    let o = server.cli(&["compact", "--start", &key]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.starts_with("cityhall: compact failed: "), "{err}");
    assert!(
        err.contains("key of 70000 bytes exceeds key_size_bytes_max 65536"),
        "{err}"
    );
    // The connection and the server go on.
    c.put(b"a", b"1").unwrap();
    let o = server.cli(&["compact", "--start", "a", "--end", "a"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("OK\n", Some(0)));
    assert_eq!(c.get(b"a").unwrap(), Some(b"1".to_vec()));
}
