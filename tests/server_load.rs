//! The server under load: deep pipelines answered in order, many
//! concurrent connections, every request kind through the client, SCAN
//! paging, and SIGTERM in the middle of a write load losing no
//! acknowledged write.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cityhall::client::Client;
use cityhall::protocol::{Request, Response, ScanRange};
use cityhall::WriteBatch;

use server_support::Server;

#[test]
fn a_thousand_pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // A small in-flight bound makes the server stop and write mid-pipeline.
    let server = Server::start(dir.path(), &["--in-flight-requests-max", "64"]);
    let mut c = server.client();
    let keys: Vec<String> = (0..500).map(|i| format!("pipe{i:04}")).collect();
    for (i, k) in keys.iter().enumerate() {
        // Each GET follows its PUT: read-your-writes on one connection.
        let v = format!("v{i}");
        c.send(&Request::Put {
            key: k.as_bytes(),
            value: v.as_bytes(),
        })
        .unwrap();
        c.send(&Request::Get { key: k.as_bytes() }).unwrap();
    }
    assert_eq!(c.in_flight(), 1000);
    c.flush().unwrap();
    for i in 0..500 {
        assert_eq!(c.recv().unwrap(), Response::Ok, "answer {}", 2 * i);
        assert_eq!(
            c.recv().unwrap(),
            Response::Value(format!("v{i}").into_bytes()),
            "answer {}",
            2 * i + 1
        );
    }
    assert_eq!(c.in_flight(), 0);

    // Reads only, 1,001 deep.
    for k in &keys {
        c.send(&Request::Get { key: k.as_bytes() }).unwrap();
    }
    for k in &keys {
        c.send(&Request::Get { key: k.as_bytes() }).unwrap();
    }
    c.send(&Request::Ping).unwrap();
    for round in 0..2 {
        for i in 0..500 {
            assert_eq!(
                c.recv().unwrap(),
                Response::Value(format!("v{i}").into_bytes()),
                "round {round} get {i}"
            );
        }
    }
    assert_eq!(c.recv().unwrap(), Response::Pong);
}

#[test]
fn fifty_concurrent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr).unwrap();
                for i in 0..40 {
                    let k = format!("t{t:02}.k{i:02}");
                    c.put(k.as_bytes(), k.as_bytes()).unwrap();
                    assert_eq!(c.get(k.as_bytes()).unwrap(), Some(k.clone().into_bytes()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = server.client();
    let all = c.scan(ScanRange::Prefix(b"t"), usize::MAX).unwrap();
    assert_eq!(all.len(), 50 * 40);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "scan out of order");
}

#[test]
fn batches_mget_and_scan_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client();

    let mut b = WriteBatch::new();
    for i in 0..100 {
        b.put(format!("s{i:03}").into_bytes(), vec![b'x'; i]);
    }
    b.delete(b"s050".to_vec());
    c.write_batch(&b).unwrap();

    let got = c.mget(&[b"s000", b"s050", b"s099", b"zzz"]).unwrap();
    assert_eq!(
        got,
        vec![Some(Vec::new()), None, Some(vec![b'x'; 99]), None]
    );

    // Pages of 10 chain through continuations.
    let page = c.scan_page(ScanRange::Prefix(b"s"), 10).unwrap();
    assert_eq!(page.pairs.len(), 10);
    assert_eq!(page.continuation.as_deref(), Some(&b"s010"[..]));
    let page = c
        .scan_page(
            ScanRange::Range {
                start: b"s095",
                end: Some(b"t"),
            },
            10,
        )
        .unwrap();
    assert_eq!(page.pairs.len(), 5);
    assert_eq!(page.continuation, None);

    let all = c
        .scan(
            ScanRange::Range {
                start: b"s",
                end: None,
            },
            usize::MAX,
        )
        .unwrap();
    let model: BTreeMap<Vec<u8>, Vec<u8>> = (0..100)
        .filter(|i| *i != 50)
        .map(|i| (format!("s{i:03}").into_bytes(), vec![b'x'; i]))
        .collect();
    assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    assert_eq!(c.scan(ScanRange::Prefix(b"s"), 7).unwrap().len(), 7);

    // A large value round-trips.
    let big = vec![7u8; 4 << 20];
    c.put(b"big", &big).unwrap();
    assert_eq!(c.get(b"big").unwrap(), Some(big));
}

#[test]
fn sigterm_during_a_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (addr, acked, stop) = (server.addr.clone(), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let Ok(mut c) = Client::connect(&addr) else {
                    return;
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Pipelines of 4 so writes are in flight at the signal.
                    let batch: Vec<(String, String)> = (0..4)
                        .map(|j| (format!("w{w}.{:08}", i + j), format!("value-{w}-{}", i + j)))
                        .collect();
                    i += 4;
                    let sent = batch.iter().all(|(k, v)| {
                        c.send(&Request::Put {
                            key: k.as_bytes(),
                            value: v.as_bytes(),
                        })
                        .is_ok()
                    });
                    if !sent || c.flush().is_err() {
                        return;
                    }
                    for kv in batch {
                        match c.recv() {
                            Ok(Response::Ok) => acked.lock().unwrap().push(kv),
                            _ => return,
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "no write was acknowledged before the signal");
    let status = server.stop();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "server did not exit cleanly");

    let server = Server::start(dir.path(), &[]);
    let mut c = server.client();
    let acked = acked.lock().unwrap();
    for chunk in acked.chunks(500) {
        let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_bytes()).collect();
        let values = c.mget(&keys).unwrap();
        for ((k, v), got) in chunk.iter().zip(values) {
            assert_eq!(
                got.as_deref(),
                Some(v.as_bytes()),
                "acknowledged write {k} lost"
            );
        }
    }
}
