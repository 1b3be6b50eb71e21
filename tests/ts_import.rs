//! `cityhall client ts import`: InfluxDB line protocol loaded through the
//! real binary, from a file and from standard input; malformed lines
//! reported by number while the rest loads; the data then read back with
//! `ts series` and `ts range`, and still there after a restart.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use server_support::{stderr, stdout, Server};

fn expect(o: &Output, out: &str, code: i32) {
    assert_eq!(
        (stdout(o).as_str(), o.status.code()),
        (out, Some(code)),
        "stderr: {}",
        stderr(o)
    );
}

const INPUT: &str = "\
# two hosts, TSBS style
cpu,hostname=host_0,region=eu-west-1 usage_user=58i,usage_system=2.5 1451606400000000000
cpu,hostname=host_0,region=eu-west-1 usage_user=59i,usage_system=3 1451606410000000000

cpu,hostname=host_1 usage_user=1,state=\"up, really\",ok=true 1451606400123456789
not line protocol
cpu,hostname=host_1 usage_user=abc 1451606410000000000
mem,hostname=host_1 used_percent=41.25 1451606400000000000
";

#[test]
fn import_file_reports_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.lp");
    std::fs::write(&file, INPUT).unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let cli = |args: &[&str]| server.cli(&[&["ts"], args].concat());

    let o = cli(&["import", file.to_str().unwrap()]);
    expect(
        &o,
        "imported 6 points into 4 series from 8 lines; \
         skipped 2 string or boolean fields; 2 malformed lines\n",
        1,
    );
    let err = stderr(&o);
    assert!(
        err.contains("line 6: field \"line\" has no '=value'"),
        "{err}"
    );
    assert!(
        err.contains("line 7: field \"usage_user\": \"abc\" is not a number"),
        "{err}"
    );

    expect(
        &cli(&["series", "--prefix", "cpu."]),
        "cpu.usage_system{hostname=host_0,region=eu-west-1}\n\
         cpu.usage_user{hostname=host_0,region=eu-west-1}\n\
         cpu.usage_user{hostname=host_1}\n",
        0,
    );
    expect(
        &cli(&[
            "range",
            "cpu.usage_user",
            "--label",
            "hostname=host_0",
            "--label",
            "region=eu-west-1",
        ]),
        "1451606400000\t58\n1451606410000\t59\n",
        0,
    );
    // Nanoseconds are floored to milliseconds.
    expect(
        &cli(&["range", "cpu.usage_user{hostname=host_1}"]),
        "1451606400123\t1\n",
        0,
    );
    expect(
        &cli(&["latest", "mem.used_percent{hostname=host_1}"]),
        "1451606400000\t41.25\n",
        0,
    );

    // A whole-database compaction seals every head into chunks.
    let head_points = |server: &Server| {
        let m = stdout(&server.cli(&["metrics"]));
        m.lines()
            .find_map(|l| l.strip_prefix("ts.head_points "))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no ts.head_points in metrics:\n{m}"))
    };
    assert_eq!(head_points(&server), "6");
    expect(&server.cli(&["compact"]), "OK\n", 0);
    assert_eq!(head_points(&server), "0");
    expect(
        &cli(&["range", "cpu.usage_user{hostname=host_1}"]),
        "1451606400123\t1\n",
        0,
    );

    let db = dir.path().join("db");
    assert!(server.stop().success());
    let server = Server::start(&db, &[]);
    expect(
        &server.cli(&[
            "ts",
            "range",
            "cpu.usage_system{hostname=host_0,region=eu-west-1}",
        ]),
        "1451606400000\t2.5\n1451606410000\t3\n",
        0,
    );
}

#[test]
fn import_from_stdin_in_small_batches_with_precision() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // 1,000 points of 10 series, 7 points a request: many requests in flight.
    let mut input = String::new();
    for t in 0..100 {
        for s in 0..10 {
            input.push_str(&format!("m,s={s} v={} {}\n", t * 10 + s, 1_700_000_000 + t));
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_cityhall"))
        .args(["client", "--addr", &server.addr])
        .args(["ts", "import", "-", "--precision", "s", "--batch", "7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    expect(
        &o,
        "imported 1000 points into 10 series from 1000 lines; \
         skipped 0 string or boolean fields; 0 malformed lines\n",
        0,
    );
    let o = server.cli(&["ts", "range", "m.v{s=3}", "--agg", "count"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("\t100\n"), "{}", stdout(&o));
    expect(
        &server.cli(&["ts", "range", "m.v{s=3}", "--from", "1700000099000"]),
        "1700000099000\t993\n",
        0,
    );
}

#[test]
fn import_usage_errors_exit_2_and_missing_file_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let o = server.cli(&["ts", "import", "-", "--precision", "h"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--precision \"h\": use ns, us, ms or s"));
    let o = server.cli(&["ts", "import", "-", "--batch", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let missing = dir.path().join("nope.lp");
    let o = server.cli(&["ts", "import", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope.lp"), "{}", stderr(&o));
}
