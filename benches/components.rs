//! Component benchmarks (criterion) for the parts on every request's path
//! that benches/sstable.rs does not cover: memtable insert and lookup, WAL
//! record framing and checking, write-batch encoding, the wire
//! protocol's request encode and decode, and point reads through the
//! whole engine.
//!
//! ```text
//! cargo bench --bench components                # everything, ~1 s per case
//! cargo bench --bench components -- memtable    # one group
//! ```
//! Keys are 16 bytes (zero-padded decimal, as cityhall-loadgen draws them),
//! values 100 bytes. No disk IO is timed: device time is
//! benches/write_path.rs'.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cityhall::memtable::Memtable;
use cityhall::protocol::{decode_frame, Decoded, Limits, Request};
use cityhall::types::ValueKind;
use cityhall::wal::format::{check_record, encode_record};
use cityhall::WriteBatch;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:016}").as_bytes());
    k
}

/// A cheap, fixed pseudo-random sequence (splitmix64), so runs compare.
fn scrambled(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const VALUE: [u8; 100] = [b'v'; 100];

fn memtable(c: &mut Criterion) {
    let mut g = c.benchmark_group("memtable");
    // Inserts into a memtable growing to 200,000 entries (~30 MiB), as
    // the database's memtables are made: past the caches, where a skip
    // list's search from the top missed ~20 times an insert.
    const N: u64 = 200_000;
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("insert_200k_random", |b| {
        b.iter_batched(
            || Memtable::with_index(1, 64 << 20),
            |m| {
                for i in 0..N {
                    m.insert(
                        &key(scrambled(i) % 1_000_000),
                        i + 1,
                        ValueKind::Put,
                        &VALUE,
                    );
                }
                m
            },
            BatchSize::PerIteration,
        );
    });
    g.sample_size(100);

    // Lookups in a memtable of 200,000 entries (~25 MiB), present and
    // absent: through the point-lookup index (as the database's memtables
    // have it) and by binary search of the sorted runs alone.
    const FILLED: u64 = 200_000;
    for (name, mem) in [
        ("", Memtable::with_index(1, 64 << 20)),
        ("_runs", Memtable::new(1)),
    ] {
        let full = Arc::new(mem);
        for i in 0..FILLED {
            full.insert(
                &key(scrambled(i) % 1_000_000),
                i + 1,
                ValueKind::Put,
                &VALUE,
            );
        }
        g.throughput(Throughput::Elements(1));
        let mut i = 0u64;
        g.bench_function(format!("get_present_200k{name}"), |b| {
            b.iter(|| {
                i += 1;
                black_box(full.get(&key(scrambled(i % FILLED) % 1_000_000), u64::MAX >> 8))
            });
        });
        let mut j = 0u64;
        g.bench_function(format!("get_absent_200k{name}"), |b| {
            b.iter(|| {
                j += 1;
                black_box(full.get(&key(1_000_000 + j % FILLED), u64::MAX >> 8))
            });
        });
    }
    g.finish();
}

fn wal(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal");
    let mut batch = WriteBatch::new();
    batch.put(key(42), VALUE);
    let mut payload = Vec::new();
    batch.encode(1, &mut payload);
    g.throughput(Throughput::Bytes(payload.len() as u64));
    let mut out = Vec::with_capacity(4096);
    g.bench_function("encode_record_put", |b| {
        b.iter(|| {
            out.clear();
            encode_record(&mut out, 7, 0, black_box(&payload));
            black_box(out.len())
        });
    });
    let mut framed = Vec::new();
    encode_record(&mut framed, 7, 0, &payload);
    g.bench_function("check_record_put", |b| {
        b.iter(|| black_box(check_record(black_box(&framed), 7).is_some()));
    });

    // A group of 64 single-put records, as one leader writes for 64 writers.
    let mut group = Vec::new();
    for i in 0..64 {
        let mut b = WriteBatch::new();
        b.put(key(i), VALUE);
        let mut p = Vec::new();
        b.encode(i + 1, &mut p);
        group.push(p);
    }
    let bytes: usize = group.iter().map(Vec::len).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode_group_64", |b| {
        b.iter(|| {
            out.clear();
            for p in &group {
                encode_record(&mut out, 7, 0, p);
            }
            black_box(out.len())
        });
    });
    g.finish();
}

fn protocol(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocol");
    let limits = Limits::default();
    let k = key(123_456);
    let put = Request::Put {
        key: &k,
        value: &VALUE,
    };
    let mut out = Vec::with_capacity(256);
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_put", |b| {
        b.iter(|| {
            out.clear();
            black_box(&put).encode(&mut out);
            black_box(out.len())
        });
    });
    let mut frame = Vec::new();
    put.encode(&mut frame);
    g.bench_function("decode_put", |b| {
        b.iter(
            || match decode_frame(black_box(&frame), limits.frame_size_bytes_max) {
                Decoded::Frame(f) => black_box(Request::decode(f, &limits).is_ok()),
                _ => panic!("a whole frame was not decoded"),
            },
        );
    });

    // 16 pipelined GETs in one buffer, as one read of the socket brings them.
    let mut pipelined = Vec::new();
    for i in 0..16 {
        let k = key(i);
        Request::Get { key: &k }.encode(&mut pipelined);
    }
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_get_pipeline_16", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut n = 0;
            while at < pipelined.len() {
                match decode_frame(&pipelined[at..], limits.frame_size_bytes_max) {
                    Decoded::Frame(f) => {
                        n += usize::from(Request::decode(f, &limits).is_ok());
                        at += f.consumed;
                    }
                    _ => panic!("a whole frame was not decoded"),
                }
            }
            black_box(n)
        });
    });
    g.finish();
}

/// Point reads through the whole engine (`Db::get`), 16 at a time as a
/// pipelining client sends them: 1,000,000 keys in one compacted table
/// (every block cached by a first pass) and 200,000 more in the memtable;
/// half the reads are for keys written, half for keys in neither.
///
/// ```text
/// cargo bench --bench components -- db/
/// ```
fn db_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let opts = cityhall::Options {
        durability: cityhall::Durability::Relaxed { interval_ms: 1000 },
        ..cityhall::Options::default()
    };
    let db = cityhall::Db::open(dir.path(), opts).unwrap();
    const TABLED: u64 = 1_000_000;
    const WRITTEN: u64 = TABLED + 200_000;
    // Key n of the sequence; the first WRITTEN are written.
    let nth = |n: u64| key(scrambled(n) % 4_000_000);
    let fill = |range: std::ops::Range<u64>| {
        for chunk in range.collect::<Vec<_>>().chunks(1000) {
            let mut batch = WriteBatch::new();
            for &n in chunk {
                batch.put(nth(n).to_vec(), VALUE.to_vec());
            }
            db.write(batch).unwrap();
        }
    };
    fill(0..TABLED);
    db.compact_range(None, None).unwrap();
    fill(TABLED..WRITTEN);
    for n in 0..TABLED {
        black_box(db.get(&nth(n)).unwrap());
    }
    let mut g = c.benchmark_group("db");
    const BATCH: u64 = 16;
    g.throughput(Throughput::Elements(BATCH));
    let mut next = 0u64;
    g.bench_function("get_16", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                next += 1;
                let n = if next % 2 == 0 {
                    next % WRITTEN
                } else {
                    WRITTEN + next
                };
                black_box(db.get(&nth(n)).unwrap());
            }
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = memtable, wal, protocol, db_reads
}
criterion_main!(benches);
