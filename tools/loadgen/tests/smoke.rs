//! Runs the built `cityhall-loadgen` for a couple of seconds, embedded and
//! against a real `cityhall server` on a free loopback port, so the tool
//! (and its smoke check of every operation) never rots.
//!
//! The server binary is `cityhall` next to the load generator in the
//! target directory; it is built first (`cargo build --bin cityhall`) so
//! that a `cargo test -p cityhall-loadgen` alone does not run a stale one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_cityhall-loadgen");

/// Runs the load generator with `args` and `--json`.
fn loadgen(args: &[&str]) -> Output {
    Command::new(LOADGEN)
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The JSON lines of a run, after checking it succeeded.
fn json_lines(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stderr.contains("Setup"), "no Setup header:\n{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn assert_smoke_passed(v: &Value) {
    assert_eq!(v["workload"], "smoke");
    assert!(v["ops"].as_u64().unwrap() > 0, "{v}");
    assert!(v["ops_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["check"]["mismatches"], 0, "{v}");
    assert!(v["check"]["keys_verified"].as_u64().unwrap() > 0, "{v}");
    assert!(v["latency_us"]["p99"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["setup"]["cpus"].as_u64().is_some(), "{v}");
}

#[test]
fn smoke_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let hgrm = dir.path().join("smoke.hgrm");
    let db = dir.path().join("db");
    let out = loadgen(&[
        "--workload",
        "smoke",
        "--embedded",
        db.to_str().unwrap(),
        "--duration",
        "2s",
        "--hdr-out",
        hgrm.to_str().unwrap(),
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_smoke_passed(&lines[0]);
    assert_eq!(lines[0]["target"], "embedded");
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(text.contains("#[Buckets ="));
}

#[test]
fn benchmark_workloads_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let out = loadgen(&[
        "--workload",
        "fillseq,readrandom,readmissing,scan,mixed,deleterandom",
        "--embedded",
        db.to_str().unwrap(),
        "--durability",
        "relaxed",
        "--num",
        "2000",
        "--connections",
        "2",
        "--pipeline",
        "4",
        "--scan-length",
        "10",
        "--seed",
        "7",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 6);
    for v in &lines {
        assert_eq!(v["ops"], 2000, "{v}");
    }
    // Every key of 0..2000 was written by fillseq, and none with a '.'.
    assert_eq!(lines[1]["found"], 2000);
    assert_eq!(lines[2]["not_found"], 2000);
    assert!(lines[3]["pairs_scanned"].as_u64().unwrap() > 0);
}

#[test]
fn compact_and_deleteall_give_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let out = Command::new(LOADGEN)
        .args([
            "--workload",
            "fillseq,compact,deleteall,compact",
            "--embedded",
        ])
        .arg(&db)
        .args([
            "--durability",
            "relaxed",
            "--num",
            "3000",
            "--seed",
            "7",
            "--settle",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let engine: Vec<&str> = text.lines().filter(|l| l.contains("engine: ")).collect();
    // fillseq (at the end, settled), compact, deleteall (two), compact.
    assert_eq!(engine.len(), 6, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("compact ")).count(),
        2
    );
    assert!(
        engine[2].contains("files per level [0 0 0 0 0 0 1]"),
        "{text}"
    );
    assert!(!engine[2].contains("tables 0 bytes"), "{text}");
    // deleteall deleted every key once; compacting dropped them all.
    assert!(
        text.contains("deleteall    :") && text.contains("(3000 ops in"),
        "{text}"
    );
    assert!(engine[5].contains("tables 0 bytes"), "{text}");
    assert!(
        engine[5].contains("files per level [0 0 0 0 0 0 0]"),
        "{text}"
    );
}

/// A `cityhall server` on a free loopback port; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(server_binary())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("CITYHALL_DATA_DIR")
            .env_remove("CITYHALL_LISTEN")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("cityhall: listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
        };
        server.addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not print its address within a minute");
        assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `cityhall` binary beside the load generator, built first.
fn server_binary() -> PathBuf {
    let exe_dir = Path::new(LOADGEN).parent().unwrap();
    let target_dir = exe_dir.parent().unwrap();
    let profile = exe_dir.file_name().unwrap().to_str().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "-p", "cityhall", "--bin", "cityhall"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building the cityhall binary failed");
    let bin = exe_dir.join("cityhall");
    assert!(bin.exists(), "{} is missing after the build", bin.display());
    bin
}

#[test]
fn smoke_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = loadgen(&[
        "--workload",
        "smoke",
        "--addr",
        &server.addr,
        "--connections",
        "4",
        "--pipeline",
        "8",
        "--duration",
        "2s",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_smoke_passed(&lines[0]);
    assert_eq!(lines[0]["target"], "server");
    assert_eq!(lines[0]["options"]["connections"], 4);
    assert_eq!(lines[0]["options"]["pipeline"], 8);
}

/// Several connections per client thread (the epoll loop): every answer
/// is read and counted, pipelined or not.
#[test]
fn multiplexed_connections_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for pipeline in ["1", "8"] {
        let out = loadgen(&[
            "--workload",
            "fillseq,readrandom,readmissing",
            "--addr",
            &server.addr,
            "--num",
            "3000",
            "--connections",
            "6",
            "--client-threads",
            "2",
            "--pipeline",
            pipeline,
            "--seed",
            "3",
        ]);
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 3);
        for v in &lines {
            assert_eq!(v["ops"], 3000, "{v}");
            assert_eq!(v["options"]["client_threads"], 2, "{v}");
        }
        assert_eq!(lines[1]["found"], 3000, "pipeline {pipeline}");
        assert_eq!(lines[2]["not_found"], 3000, "pipeline {pipeline}");
    }
}
