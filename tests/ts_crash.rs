//! Time series under `kill -9`: a client adds batches of points of two
//! series through the real server while the sealer runs; the server is
//! killed with SIGKILL at an arbitrary moment and restarted. Every
//! acknowledged batch must be there whole; a batch in flight is all there
//! or not at all (one add is one atomic engine batch).
#![allow(clippy::unwrap_used)]

mod server_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cityhall::client::Client;
use cityhall::protocol::ts::TsSeriesPoints;
use cityhall::ts::{Point, RangeQuery, SeriesKey};

use server_support::Server;

const PER_SERIES: i64 = 25;

fn key(s: &str) -> SeriesKey {
    SeriesKey::parse(s).unwrap()
}

fn batch(round: i64, i: i64) -> Vec<TsSeriesPoints> {
    let base = round * 1_000_000_000 + i * PER_SERIES * 10;
    ["crash{s=a}", "crash{s=b}"]
        .iter()
        .enumerate()
        .map(|(n, s)| TsSeriesPoints {
            series: key(s),
            points: (0..PER_SERIES)
                .map(|j| Point {
                    ts: base + j * 10,
                    value: (i * 1000 + j) as f64 + n as f64 / 2.0,
                })
                .collect(),
        })
        .collect()
}

#[test]
fn acknowledged_points_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4i64 {
        let server = Server::start(dir.path(), &[]);
        let addr = server.addr.clone();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr).unwrap();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    if c.ts_add(batch(round, i)).is_err() {
                        break;
                    }
                    acked.lock().unwrap().push(i);
                    i += 1;
                }
                i
            })
        };
        std::thread::sleep(Duration::from_millis(150 + 170 * round as u64));
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(server.pid(), libc::SIGKILL) };
        let sent = writer.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        drop(server);
        let acked = acked.lock().unwrap().clone();
        eprintln!("round {round}: {} acknowledged, {sent} sent", acked.len());
        assert!(!acked.is_empty(), "round {round}: nothing was acknowledged");

        let server = Server::start(dir.path(), &[]);
        let mut c = server.client();
        let q = RangeQuery::raw(round * 1_000_000_000, (round + 1) * 1_000_000_000 - 1);
        for (n, s) in ["crash{s=a}", "crash{s=b}"].iter().enumerate() {
            let got = c.ts_range(&key(s), &q).unwrap().unwrap();
            let batches = got.len() as i64 / PER_SERIES;
            assert_eq!(
                got.len() as i64 % PER_SERIES,
                0,
                "round {round} {s}: a partial batch"
            );
            assert!(
                batches >= acked.len() as i64 && batches <= sent + 1,
                "round {round} {s}: {batches} batches stored, {} acknowledged, {sent} sent",
                acked.len()
            );
            for (k, p) in got.iter().enumerate() {
                let (i, j) = (k as i64 / PER_SERIES, k as i64 % PER_SERIES);
                let want = &batch(round, i)[n].points[j as usize];
                assert_eq!(p, want, "round {round} {s}: point {k}");
            }
        }
        drop(server);
    }
}
