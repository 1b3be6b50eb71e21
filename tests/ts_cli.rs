//! The `cityhall client ts ...` commands against a real server: exact
//! output and exit status of every command, usage errors (exit 2, before
//! any connection), refusals by the server (exit 3), and data surviving a
//! restart.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::process::Output;

use server_support::{cli_at, free_port, stderr, stdout, Server};

fn ok(o: &Output) -> (String, Option<i32>) {
    (stdout(o), o.status.code())
}

fn expect(o: &Output, out: &str, code: i32) {
    assert_eq!(
        (stdout(o).as_str(), o.status.code()),
        (out, Some(code)),
        "stderr: {}",
        stderr(o)
    );
}

fn now_ms() -> i64 {
    cityhall::ts::options::system_now_ms()
}

#[test]
fn add_range_latest_series_print_exact_output() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let cli = |args: &[&str]| server.cli(&[&["ts"], args].concat());

    expect(
        &cli(&["add", "cpu", "0.75", "--time", "1700000000000"]),
        "OK\n",
        0,
    );
    expect(
        &cli(&["add", "cpu", "1.5", "--time", "2023-11-14T22:13:30Z"]),
        "OK\n",
        0,
    );
    expect(
        &cli(&[
            "add",
            "cpu",
            "-2",
            "--at",
            "1700000020000",
            "--labels",
            "host=a",
        ]),
        "OK\n",
        0,
    );
    expect(
        &cli(&["add", "cpu{host=a}", "3", "--time", "1700000030000"]),
        "OK\n",
        0,
    );
    expect(
        &cli(&[
            "add",
            "disk",
            "1e300",
            "--time",
            "1700000000000",
            "--label",
            "dev=sda",
            "--label",
            "host=b",
        ]),
        "OK\n",
        0,
    );

    expect(
        &cli(&["range", "cpu"]),
        "1700000000000\t0.75\n1700000010000\t1.5\n",
        0,
    );
    expect(
        &cli(&[
            "range",
            "cpu",
            "--from",
            "1700000005000",
            "--to",
            "2023-11-15T00:00:00Z",
        ]),
        "1700000010000\t1.5\n",
        0,
    );
    expect(
        &cli(&["range", "cpu", "--limit", "1"]),
        "1700000000000\t0.75\n",
        0,
    );
    expect(
        &cli(&["range", "cpu", "--agg", "sum"]),
        "1700000000000\t2.25\n",
        0,
    );
    expect(
        &cli(&["range", "cpu", "--agg", "count"]),
        "1700000000000\t2\n",
        0,
    );
    expect(
        &cli(&["range", "cpu", "--agg", "rate"]),
        "1700000010000\t0.075\n",
        0,
    );
    // Buckets start on multiples of the width: 1700000020000 and
    // 1700000030000 both fall in the minute starting at 1699999980000.
    expect(
        &cli(&[
            "range", "cpu", "--labels", "host=a", "--agg", "avg", "--bucket", "1m",
        ]),
        "1699999980000\t0.5\n",
        0,
    );
    expect(
        &cli(&["range", "cpu{host=a}", "--agg", "max", "--bucket", "10s"]),
        "1700000020000\t-2\n1700000030000\t3\n",
        0,
    );
    expect(
        &cli(&["range", "disk{host=b,dev=sda}"]),
        "1700000000000\t1e300\n",
        0,
    );
    // An empty range prints nothing and exits 1; an unknown series says so.
    expect(
        &cli(&[
            "range",
            "cpu",
            "--from",
            "1800000000000",
            "--to",
            "1800000001000",
        ]),
        "",
        1,
    );
    expect(&cli(&["range", "nothing"]), "NOT_FOUND\n", 1);

    expect(&cli(&["latest", "cpu"]), "1700000010000\t1.5\n", 0);
    expect(
        &cli(&["latest", "cpu", "--labels", "host=a"]),
        "1700000030000\t3\n",
        0,
    );
    expect(&cli(&["latest", "nothing"]), "NOT_FOUND\n", 1);

    expect(
        &cli(&["series"]),
        "cpu\ncpu{host=a}\ndisk{dev=sda,host=b}\n",
        0,
    );
    expect(
        &cli(&["series", "--prefix", "cpu"]),
        "cpu\ncpu{host=a}\n",
        0,
    );
    expect(&cli(&["series", "--labels", "host=a"]), "cpu{host=a}\n", 0);
    expect(
        &cli(&["series", "--labels", "host!=a"]),
        "cpu\ndisk{dev=sda,host=b}\n",
        0,
    );
    expect(&cli(&["series", "--limit", "1"]), "cpu\n", 0);
    expect(&cli(&["series", "--prefix", "mem"]), "", 1);

    // Everything survives a restart.
    let addr = server.addr.clone();
    assert!(server.stop().success());
    let server = Server::start(dir.path(), &[]);
    assert_ne!(addr, "");
    let o = server.cli(&["ts", "range", "cpu"]);
    expect(&o, "1700000000000\t0.75\n1700000010000\t1.5\n", 0);
    let o = server.cli(&["ts", "series", "--prefix", "cpu"]);
    expect(&o, "cpu\ncpu{host=a}\n", 0);
}

#[test]
fn time_defaults_to_now_and_relative_times_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let before = now_ms();
    expect(&server.cli(&["ts", "add", "load", "0.5"]), "OK\n", 0);
    expect(
        &server.cli(&["ts", "add", "load", "0.25", "--time", "-30m"]),
        "OK\n",
        0,
    );
    let after = now_ms();
    let o = server.cli(&["ts", "range", "load", "--from", "-1h"]);
    let (out, code) = ok(&o);
    assert_eq!(code, Some(0), "{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let t0: i64 = lines[0].split('\t').next().unwrap().parse().unwrap();
    let t1: i64 = lines[1].split('\t').next().unwrap().parse().unwrap();
    assert!(t0 >= before - 1_800_000 && t0 <= after - 1_800_000, "{t0}");
    assert!(t1 >= before && t1 <= after, "{t1}");
    assert!(lines[0].ends_with("\t0.25") && lines[1].ends_with("\t0.5"));
    expect(
        &server.cli(&["ts", "range", "load", "--from", "-10m", "--to", "-5m"]),
        "",
        1,
    );
}

#[test]
fn delete_retention_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let cli = |args: &[&str]| server.cli(&[&["ts"], args].concat());
    for (v, t) in [
        ("1", "1700000000000"),
        ("2", "1700000010000"),
        ("3", "1700000020000"),
    ] {
        expect(&cli(&["add", "m", v, "--time", t]), "OK\n", 0);
    }
    expect(
        &cli(&[
            "delete",
            "m",
            "--from",
            "1700000005000",
            "--to",
            "1700000015000",
        ]),
        "OK\n",
        0,
    );
    expect(
        &cli(&["range", "m"]),
        "1700000000000\t1\n1700000020000\t3\n",
        0,
    );
    expect(&cli(&["delete", "m"]), "OK\n", 0);
    expect(&cli(&["delete", "m"]), "NOT_FOUND\n", 1);
    expect(&cli(&["range", "m"]), "NOT_FOUND\n", 1);
    expect(&cli(&["series"]), "", 1);

    // Retention: a point five hours old goes once the series keeps an hour.
    let now = now_ms();
    let old = (now - 5 * 3_600_000).to_string();
    let recent = (now - 60_000).to_string();
    expect(&cli(&["add", "r", "7", "--time", &old]), "OK\n", 0);
    expect(&cli(&["add", "r", "8", "--time", &recent]), "OK\n", 0);
    expect(
        &cli(&["range", "r", "--from", "-1d"]),
        &format!("{old}\t7\n{recent}\t8\n"),
        0,
    );
    expect(&cli(&["retention", "r", "1h"]), "OK\n", 0);
    expect(
        &cli(&["range", "r", "--from", "-1d"]),
        &format!("{recent}\t8\n"),
        0,
    );
    let o = cli(&["add", "r", "9", "--time", &old]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("older than the series keeps"),
        "{}",
        stderr(&o)
    );
    expect(&cli(&["retention", "r", "forever"]), "OK\n", 0);
    expect(&cli(&["retention", "nothing", "1h"]), "NOT_FOUND\n", 1);

    // Duplicate policies: last wins by default; block refuses.
    expect(
        &cli(&["add", "p", "1", "--time", "1700000000000"]),
        "OK\n",
        0,
    );
    expect(
        &cli(&["add", "p", "2", "--time", "1700000000000"]),
        "OK\n",
        0,
    );
    expect(&cli(&["latest", "p"]), "1700000000000\t2\n", 0);
    expect(&cli(&["policy", "p", "block"]), "OK\n", 0);
    let o = cli(&["add", "p", "5", "--time", "1700000000000"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("exists already"), "{}", stderr(&o));
    expect(&cli(&["latest", "p"]), "1700000000000\t2\n", 0);
    expect(&cli(&["policy", "p", "sum"]), "OK\n", 0);
    expect(
        &cli(&["add", "p", "5", "--time", "1700000000000"]),
        "OK\n",
        0,
    );
    expect(&cli(&["latest", "p"]), "1700000000000\t7\n", 0);
    expect(&cli(&["policy", "nothing", "last"]), "NOT_FOUND\n", 1);

    // The default retention applies to series that have none of their own.
    expect(&cli(&["retention", "--default", "30d"]), "OK\n", 0);
    expect(&cli(&["range", "p"]), "", 1);
    expect(
        &cli(&["range", "r", "--from", "-1d"]),
        &format!("{recent}\t8\n"),
        0,
    );
    expect(&cli(&["retention", "r", "default"]), "OK\n", 0);
    expect(
        &cli(&["range", "r", "--from", "-1d"]),
        &format!("{recent}\t8\n"),
        0,
    );
    expect(&cli(&["retention", "--default", "forever"]), "OK\n", 0);
}

#[test]
fn usage_errors_exit_2_before_connecting() {
    // Nothing listens here: a usage error must not need a server.
    let addr = format!("127.0.0.1:{}", free_port());
    for (args, why) in [
        (&["ts", "add", "cpu", "nan"][..], "not a finite number"),
        (&["ts", "add", "cpu", "inf"][..], "not a finite number"),
        (&["ts", "add", "cpu", "x"][..], "not a number"),
        (
            &["ts", "add", "cpu", "1", "--time", "yesterday"][..],
            "not a time",
        ),
        (&["ts", "add", "cpu{host}", "1"][..], "not key=value"),
        (&["ts", "add", "a b", "1"][..], "not allowed"),
        (&["ts", "range", "cpu", "--agg", "median"][..], "use avg"),
        (
            &["ts", "range", "cpu", "--agg", "avg", "--bucket", "5"][..],
            "not a duration",
        ),
        (
            &["ts", "range", "cpu", "--from", "now", "--to", "-1h"][..],
            "is after",
        ),
        (&["ts", "retention", "cpu", "soon"][..], "not a duration"),
        (&["ts", "retention", "cpu"][..], "SERIES DURATION"),
        (
            &["ts", "retention", "--default", "default"][..],
            "cannot be",
        ),
        (&["ts", "policy", "cpu", "median"][..], "use last"),
        (&["ts", "series", "--labels", "host"][..], "key=value"),
    ] {
        let o = cli_at(&addr, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "");
    }
    // Clap's own usage errors exit 2 as well.
    let o = cli_at(&addr, &["ts", "range", "cpu", "--bucket", "1m"]);
    assert_eq!(o.status.code(), Some(2));
    // A well-formed command without a server is a connection error.
    let o = cli_at(&addr, &["ts", "latest", "cpu"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}
