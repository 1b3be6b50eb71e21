//! `cityhall client ts agg ...` against a real server: exact output of
//! aggregates across series (selectors, buckets, pages), usage errors
//! (exit 2, before any connection) and the server's refusals (exit 3), the
//! series bound among them.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::process::Output;

use server_support::{cli_at, free_port, stderr, stdout, Server};

fn expect(o: &Output, out: &str, code: i32) {
    assert_eq!(
        (stdout(o).as_str(), o.status.code()),
        (out, Some(code)),
        "stderr: {}",
        stderr(o)
    );
}

#[test]
fn agg_prints_one_line_per_bucket_across_the_selected_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let cli = |args: &[&str]| server.cli(&[&["ts"], args].concat());
    for (series, value, at) in [
        ("cpu.user{host=a}", "1", "1000"),
        ("cpu.user{host=b}", "2", "1000"),
        ("cpu.user{host=b}", "5", "2500"),
        ("cpu.sys{host=a}", "7", "3000"),
        ("cpu.sys{host=a}", "-4", "3001"),
        ("mem.free{host=a}", "100", "1500"),
    ] {
        expect(&cli(&["add", series, value, "--time", at]), "OK\n", 0);
    }

    // Without a bucket: one line stamped with --from.
    expect(
        &cli(&["agg", "count", "--prefix", "cpu.", "--from", "0"]),
        "0\t5\n",
        0,
    );
    expect(&cli(&["agg", "count", "--from", "0"]), "0\t6\n", 0);
    expect(
        &cli(&["agg", "sum", "--prefix", "cpu.", "--from", "500"]),
        "500\t11\n",
        0,
    );
    expect(
        &cli(&["agg", "avg", "--prefix", "cpu.user", "--from", "0"]),
        "0\t2.6666666666666665\n",
        0,
    );
    expect(
        &cli(&["agg", "min", "--prefix", "cpu", "--from", "0"]),
        "0\t-4\n",
        0,
    );
    expect(&cli(&["agg", "max", "--from", "0"]), "0\t100\n", 0);
    // Ties at 1000: first takes the series first in canonical order
    // (cpu.user{host=a}), last the one last (cpu.user{host=b}).
    expect(
        &cli(&["agg", "first", "--prefix", "cpu.user", "--from", "0"]),
        "0\t1\n",
        0,
    );
    expect(
        &cli(&[
            "agg", "last", "--prefix", "cpu.user", "--from", "0", "--to", "2000",
        ]),
        "0\t2\n",
        0,
    );
    expect(
        &cli(&["agg", "last", "--prefix", "cpu", "--from", "0"]),
        "0\t-4\n",
        0,
    );
    // Labels select, = and !=; --to bounds the range.
    expect(
        &cli(&["agg", "sum", "--label", "host=b", "--from", "0"]),
        "0\t7\n",
        0,
    );
    expect(
        &cli(&[
            "agg", "count", "--prefix", "cpu.", "--label", "host!=b", "--from", "0", "--to", "3000",
        ]),
        "0\t2\n",
        0,
    );
    // Buckets: aligned, stamped with their start, empty ones omitted.
    expect(
        &cli(&["agg", "sum", "--from", "0", "--bucket", "1s"]),
        "1000\t103\n2000\t5\n3000\t3\n",
        0,
    );
    expect(
        &cli(&[
            "agg", "count", "--prefix", "cpu.", "--from", "0", "--bucket", "2s",
        ]),
        "0\t2\n2000\t3\n",
        0,
    );
    // --limit keeps the earliest buckets.
    expect(
        &cli(&[
            "agg", "max", "--from", "0", "--bucket", "1s", "--limit", "2",
        ]),
        "1000\t100\n2000\t5\n",
        0,
    );
    // Nothing selected, or nothing in the range: no line, exit 1.
    expect(&cli(&["agg", "count", "--prefix", "disk."]), "", 1);
    expect(
        &cli(&["agg", "count", "--from", "5000", "--to", "6000"]),
        "",
        1,
    );
}

#[test]
fn agg_pages_continue_at_the_first_bucket_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // 3 series x 400 points, one a second: 400 buckets of 1 s.
    let mut lp = String::new();
    for t in 0..400i64 {
        for h in 0..3 {
            lp.push_str(&format!("m,h=h{h} v={} {}\n", t + h, t * 1_000_000_000));
        }
    }
    let file = dir.path().join("m.lp");
    std::fs::write(&file, lp).unwrap();
    let o = server.cli(&["ts", "import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = server.cli(&[
        "ts", "agg", "sum", "--prefix", "m.", "--from", "0", "--bucket", "1s",
    ]);
    let want: String = (0..400i64)
        .map(|t| format!("{}\t{}\n", t * 1000, 3 * t + 3))
        .collect();
    expect(&o, &want, 0);
    // Pages of 7 buckets, each continued at its next_from, make the same.
    let mut client = server.client();
    let mut q = cityhall::ts::SelectQuery {
        prefix: "m.".into(),
        matchers: vec![],
        from: 0,
        to: 1_000_000,
        agg: cityhall::ts::Aggregation::Sum,
        bucket_ms: 1000,
        limit: 7,
        series_max: cityhall::protocol::ts::TS_AGG_SERIES_MAX,
    };
    let mut paged = String::new();
    let mut pages = 0;
    loop {
        let page = client.ts_agg_page(&q).unwrap();
        assert!(page.points.len() <= 7);
        pages += 1;
        for p in &page.points {
            paged.push_str(&format!("{}\t{}\n", p.ts, p.value));
        }
        match page.next_from {
            Some(next) => q.from = next,
            None => break,
        }
    }
    assert_eq!(pages, 58);
    assert_eq!(paged, want);
    let o = server.cli(&["ts", "agg", "count", "--from", "0", "--to", "399999"]);
    expect(&o, "0\t1200\n", 0);
    let o = server.cli(&[
        "ts", "agg", "count", "--from", "0", "--bucket", "1m", "--limit", "3",
    ]);
    expect(&o, "0\t180\n60000\t180\n120000\t180\n", 0);
}

#[test]
fn agg_refuses_a_selector_over_the_series_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let n = cityhall::protocol::ts::TS_AGG_SERIES_MAX + 1;
    let lp: String = (0..n)
        .map(|i| format!("m,i={i} v=1 1000000000\n"))
        .collect();
    let file = dir.path().join("many.lp");
    std::fs::write(&file, lp).unwrap();
    let o = server.cli(&["ts", "import", file.to_str().unwrap(), "--batch", "5000"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = server.cli(&["ts", "agg", "count", "--prefix", "m."]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let e = stderr(&o);
    assert!(e.contains("series_max 10000"), "{e}");
    assert!(e.contains("narrow it"), "{e}");
    // A narrower selector is answered.
    expect(
        &server.cli(&["ts", "agg", "count", "--label", "i=17", "--from", "0"]),
        "0\t1\n",
        0,
    );
}

#[test]
fn agg_usage_errors_exit_2_before_connecting() {
    let addr = format!("127.0.0.1:{}", free_port());
    for (args, why) in [
        (&["ts", "agg", "median"][..], "use count, sum"),
        (&["ts", "agg", "rate"][..], "use count, sum"),
        (&["ts", "agg", "count", "--label", "host"][..], "key=value"),
        (
            &["ts", "agg", "count", "--label", "a b=1"][..],
            "not allowed",
        ),
        (
            &["ts", "agg", "count", "--bucket", "5"][..],
            "not a duration",
        ),
        (
            &["ts", "agg", "count", "--from", "now", "--to", "-1h"][..],
            "is after",
        ),
    ] {
        let o = cli_at(&addr, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "");
    }
    let o = cli_at(&addr, &["ts", "agg"]);
    assert_eq!(o.status.code(), Some(2));
}
