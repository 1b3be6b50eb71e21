//! `cityhall agent` against a real server on this machine: one sample with
//! `--once`, then the series and points are there; the continuous agent
//! survives the server stopping and coming back, and says what it dropped.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_support::{cli_at, free_port, stderr, stdout, Server, BIN};

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("agent")
        .args(args)
        .env_remove("CITYHALL_ADDR")
        .output()
        .unwrap()
}

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn once_writes_one_sample_of_every_host_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--self-monitor", "0"]);
    let o = agent(&["--addr", &server.addr, "--once"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let written: usize = stdout(&o)
        .strip_prefix("OK ")
        .and_then(|r| r.strip_suffix(" points\n"))
        .unwrap()
        .parse()
        .unwrap();

    // Every CPU of this machine has its usage series, and the total.
    // /proc/stat lists every CPU of the machine (available_parallelism
    // would count only those this process may use).
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let o = server.cli(&["ts", "series", "--prefix", "cpu."]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let series = lines(&o);
    assert!(
        series.contains(&"cpu.usage_user{cpu=cpu-total}".to_string()),
        "{series:?}"
    );
    assert!(
        series.contains(&"cpu.usage_idle{cpu=cpu0}".to_string()),
        "{series:?}"
    );
    assert_eq!(
        series
            .iter()
            .filter(|s| s.starts_with("cpu.usage_system{"))
            .count(),
        cpus + 1,
        "{series:?}"
    );
    assert_eq!(series.len(), 10 * (cpus + 1));

    // One point each, at the same time, with a plausible value.
    let mut stamps = Vec::new();
    for s in [
        "cpu.usage_idle{cpu=cpu-total}",
        "mem.used_percent",
        "system.load1",
    ] {
        let o = server.cli(&["ts", "range", s]);
        assert_eq!(o.status.code(), Some(0), "{s}: {}", stderr(&o));
        let l = lines(&o);
        assert_eq!(l.len(), 1, "{s}: {l:?}");
        let (ts, v) = l[0].split_once('\t').unwrap();
        let v: f64 = v.parse().unwrap();
        assert!(v >= 0.0, "{s} = {v}");
        if s.starts_with("cpu.") || s.starts_with("mem.") {
            assert!(v <= 100.0, "{s} = {v}");
        }
        stamps.push(ts.to_string());
    }
    assert!(stamps.windows(2).all(|w| w[0] == w[1]), "{stamps:?}");
    let total: f64 = lines(&server.cli(&["ts", "latest", "mem.total"]))[0]
        .split_once('\t')
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(total > 0.0);
    // The whole sample was one batch: every series listed got its point.
    let all = lines(&server.cli(&["ts", "series"]));
    assert_eq!(all.len(), written);
    assert!(
        all.contains(&"disk.used_percent{path=/}".to_string()),
        "{all:?}"
    );
    assert!(all
        .iter()
        .any(|s| s.starts_with("net.bytes_recv{interface=")));
    assert!(all.contains(&"agent.points_per_sample".to_string()));
}

#[test]
fn once_without_a_server_fails_with_exit_3() {
    let addr = format!("127.0.0.1:{}", free_port());
    let o = agent(&["--addr", &addr, "--once", "--interval", "100ms"]);
    assert_eq!(o.status.code(), Some(3), "stdout: {}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("cannot reach {addr}")), "{e}");
    assert!(e.contains("not written"), "{e}");
    let o = agent(&["--interval", "0s", "--once"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be positive"), "{}", stderr(&o));
}

/// A running agent whose stderr is collected.
struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let mut child = Command::new(BIN)
            .arg("agent")
            .args(args)
            .env_remove("CITYHALL_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let l = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        Agent { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(addr: &str, series: &str) -> usize {
    lines(&cli_at(addr, &["ts", "range", series])).len()
}

#[test]
fn the_agent_reconnects_and_reports_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Server::start_listening(dir.path(), &addr, &["--self-monitor", "0"]);
    let mut agent = Agent::start(&["--addr", &addr, "--interval", "100ms", "--buffer", "3"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&addr, "system.uptime") < 3 {
        assert!(Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.stop().code(), Some(0));
    agent.wait_for("lost 127.0.0.1");
    // Down for well over 3 intervals: the buffer of 3 must drop samples.
    std::thread::sleep(Duration::from_millis(1500));
    let before = agent.log();
    assert!(before.contains(&format!("cannot reach {addr}")), "{before}");
    let server = Server::start_listening(dir.path(), &addr, &["--self-monitor", "0"]);
    agent.wait_for("reconnected to");
    agent.wait_for("wrote 3 buffered samples; dropped ");
    let n = count(&addr, "system.uptime");
    // SAFETY: sends SIGTERM to our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());
    // The thread reading the agent's stderr may lag behind its exit.
    agent.wait_for("cityhall agent: stopped: ");
    let log = agent.log();
    let summary = log
        .lines()
        .find(|l| l.starts_with("cityhall agent: stopped: "))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let dropped: u64 = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" dropped (buffer full)"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 0, "{summary}");
    // The drops are stored too, and the points before and after the outage.
    let latest = lines(&cli_at(&addr, &["ts", "latest", "agent.samples_dropped"]));
    let stored: f64 = latest[0].split_once('\t').unwrap().1.parse().unwrap();
    assert!(
        stored > 0.0 && stored <= dropped as f64,
        "{stored} vs {summary}"
    );
    assert!(n >= 6, "{n} points");
    // Counters come back as rates.
    let rates = lines(&cli_at(
        &addr,
        &["ts", "range", "kernel.context_switches", "--agg", "rate"],
    ));
    assert!(rates.len() >= 5, "{rates:?}");
    assert!(rates
        .iter()
        .all(|l| l.split_once('\t').unwrap().1.parse::<f64>().unwrap() >= 0.0));
    drop(server);
}

fn wait_for_points(addr: &str, series: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Only `timestamp<TAB>value` lines: a series not written yet
        // answers NOT_FOUND, which is no point.
        let l: Vec<String> = lines(&cli_at(addr, &["ts", "range", series]))
            .into_iter()
            .filter(|l| l.contains('\t'))
            .collect();
        if l.len() >= n {
            return l;
        }
        assert!(Instant::now() < deadline, "{series}: {l:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_monitors_itself_and_can_run_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--self-monitor", "200ms", "--agent-interval", "200ms"],
    );
    let put = |from: usize| {
        for i in from..from + 10 {
            let o = server.cli(&["put", &format!("k{i}"), "v"]);
            assert_eq!(o.status.code(), Some(0));
        }
    };
    // cityhall.put.p99: the p99 latency in µs of the PUTs of each interval
    // that had any.
    put(0);
    wait_for_points(&server.addr, "cityhall.put.p99", 1);
    put(10);
    let p99 = wait_for_points(&server.addr, "cityhall.put.p99", 2);
    let v: f64 = p99[1].split_once('\t').unwrap().1.parse().unwrap();
    assert!(v >= 1.0, "{p99:?}");
    // Each PUT is counted in exactly one interval.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = server.cli(&["ts", "range", "cityhall.put.count", "--agg", "sum"]);
        let sum: f64 = lines(&o)[0].split_once('\t').unwrap().1.parse().unwrap();
        assert!(sum <= 20.0, "{}", stdout(&o));
        if sum == 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", stdout(&o));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The request counter reaches 20 in a later sample.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = lines(&server.cli(&["ts", "latest", "cityhall.put.requests"]));
        let v = l
            .first()
            .and_then(|l| l.split_once('\t'))
            .map(|(_, v)| v.to_string());
        if v.as_deref() == Some("20") {
            break;
        }
        assert!(Instant::now() < deadline, "{l:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = lines(&server.cli(&["ts", "series", "--prefix", "cityhall."]));
    for want in [
        "cityhall.wal.sync_latency_us.p99",
        "cityhall.write.stalls",
        "cityhall.level0.bytes",
        "cityhall.block_cache.hits",
    ] {
        assert!(names.contains(&want.to_string()), "{want} not in {names:?}");
    }
    // The host agent runs in the server process too.
    wait_for_points(&server.addr, "cpu.usage_user{cpu=cpu-total}", 1);
    wait_for_points(&server.addr, "mem.used_percent", 2);
    assert_eq!(server.stop().code(), Some(0));

    // --self-monitor 0 turns it off; a bad value is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--self-monitor", "0"]);
    server.cli(&["put", "k", "v"]);
    std::thread::sleep(Duration::from_millis(300));
    let o = server.cli(&["ts", "series", "--prefix", "cityhall."]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(1)));
    drop(server);
    let o = Command::new(BIN)
        .args(["server", "--self-monitor", "often", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--self-monitor"), "{}", stderr(&o));
}

#[test]
fn top_prints_the_latest_figures_with_sparklines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--self-monitor", "200ms", "--agent-interval", "200ms"],
    );
    server.cli(&["put", "k", "v"]);
    wait_for_points(&server.addr, "cityhall.put.p99", 1);
    wait_for_points(&server.addr, "cpu.usage_user{cpu=cpu-total}", 2);
    let o = Command::new(BIN)
        .args(["top", "--once", "--history", "24s", "--addr", &server.addr])
        .env_remove("CITYHALL_ADDR")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let row = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} row in:\n{out}"))
            .to_string()
    };
    assert!(out.starts_with("host\n"), "{out}");
    assert!(out.contains("\ncityhall\n"), "{out}");
    let cpu = row("cpu user");
    assert!(cpu.contains(" %"), "{cpu}");
    assert!(cpu.chars().any(|c| ('▁'..='█').contains(&c)), "{cpu}");
    assert!(row("put p99").contains('s'), "{out}");
    assert!(row("mem used").contains('%'), "{out}");

    let addr = format!("127.0.0.1:{}", free_port());
    let o = Command::new(BIN)
        .args(["top", "--once", "--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
}
