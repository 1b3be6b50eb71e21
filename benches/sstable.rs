//! SSTable component benchmarks (criterion): block encode and decode, block
//! seek, filter build and probe, a table point read served from the block
//! cache, and a merged scan over four tables.
//!
//! ```text
//! cargo bench --bench sstable                 # everything, ~1 s per case
//! cargo bench --bench sstable -- filter       # one group
//! ```
//! Tables live in the simulated file system, so the figures are CPU cost
//! (decode, search, cache), not device time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cityhall::io::sim::SimFs;
use cityhall::io::{Fs, OpenOptions};
use cityhall::iter::EntryIter;
use cityhall::merge::MergingIter;
use cityhall::sstable::block::{Block, BlockBuilder};
use cityhall::sstable::filter::{hash_key, Filter};
use cityhall::sstable::format::{unframe, Framer};
use cityhall::sstable::{BlockCache, Table, TableBuilder, TableOptions};
use cityhall::types::{internal_key, ValueKind};

fn user(i: u64) -> Vec<u8> {
    format!("system.host{:03}.cpu.{:06}", i % 97, i).into_bytes()
}

fn entry(i: u64) -> (Vec<u8>, Vec<u8>) {
    (
        internal_key(&user(i), 1000 + i, ValueKind::Put),
        format!("{:.6}", i as f64 / 7.0).into_bytes(),
    )
}

/// Sorted entries `from, from + step, ...` (n of them).
fn entries(n: u64, from: u64, step: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = (0..n).map(|i| entry(from + i * step)).collect();
    v.sort_by(|a, b| cityhall::types::compare_internal_keys(&a.0, &b.0));
    v
}

/// The entries of one ~4 KiB block.
fn block_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let all = entries(400, 0, 1);
    let mut b = BlockBuilder::new(16);
    let mut out = Vec::new();
    for (k, v) in all {
        if b.size_estimate() >= 4096 {
            break;
        }
        b.add(&k, &v).unwrap();
        out.push((k, v));
    }
    out
}

fn origin() -> Arc<Path> {
    Arc::from(Path::new("bench.sst"))
}

fn blocks(c: &mut Criterion) {
    let es = block_entries();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(es.len() as u64));
    let mut builder = BlockBuilder::new(16);
    let mut framer = Framer::new(true);
    g.bench_function("encode_4k", |b| {
        b.iter(|| {
            builder.reset();
            for (k, v) in &es {
                builder.add(k, v).unwrap();
            }
            let (payload, trailer) = framer.frame(builder.finish());
            black_box((payload.len(), trailer));
        })
    });
    builder.reset();
    for (k, v) in &es {
        builder.add(k, v).unwrap();
    }
    let (payload, trailer) = framer.frame(builder.finish());
    let mut framed = payload.to_vec();
    framed.extend_from_slice(&trailer);
    g.bench_function("decode_4k", |b| {
        b.iter(|| {
            let raw = unframe(black_box(&framed)).unwrap();
            black_box(Block::decode(raw, origin(), 0).unwrap().entries())
        })
    });
    g.throughput(Throughput::Elements(1));
    let block = Arc::new(Block::decode(unframe(&framed).unwrap(), origin(), 0).unwrap());
    let mut it = block.iter();
    let mut i = 0;
    g.bench_function("seek", |b| {
        b.iter(|| {
            i = (i + 37) % es.len();
            it.seek(&es[i].0).unwrap();
            black_box(it.value().len())
        })
    });
    g.finish();
}

fn filters(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..10_000).map(|i| hash_key(&user(i))).collect();
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(hashes.len() as u64));
    g.bench_function("build_10k", |b| {
        b.iter_batched(|| hashes.clone(), Filter::build, BatchSize::SmallInput)
    });
    let filter = Filter::build(hashes);
    g.throughput(Throughput::Elements(1));
    let present = user(1234);
    let absent = b"system.host001.mem.000000".to_vec();
    g.bench_function("probe_present", |b| {
        b.iter(|| filter.may_contain(black_box(&present)))
    });
    g.bench_function("probe_absent", |b| {
        b.iter(|| filter.may_contain(black_box(&absent)))
    });
    g.finish();
}

fn build_table(fs: &SimFs, name: &str, es: &[(Vec<u8>, Vec<u8>)]) -> PathBuf {
    let path = PathBuf::from(format!("/bench/{name}"));
    let file = fs.open(&path, OpenOptions::create_new()).unwrap();
    let mut b = TableBuilder::new(file, TableOptions::default());
    for (k, v) in es {
        b.add(k, v).unwrap();
    }
    b.finish().unwrap();
    path
}

fn tables(c: &mut Criterion) {
    let fs = SimFs::new(1);
    let cache = Arc::new(BlockCache::new(64 << 20));
    let es = entries(10_000, 0, 1);
    let path = build_table(&fs, "get.sst", &es);
    let file = fs.open(&path, OpenOptions::read()).unwrap();
    let table = Table::open(file, 1, cache.clone()).unwrap();
    let mut g = c.benchmark_group("table");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get_cached", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            black_box(table.get(&user(i), u64::MAX).unwrap())
        })
    });
    g.bench_function("get_absent", |b| {
        b.iter(|| black_box(table.get(b"system.host001.mem.000000", u64::MAX).unwrap()))
    });

    // Four tables with interleaved keys, merged.
    let opened: Vec<Table> = (0..4u64)
        .map(|t| {
            let path = build_table(&fs, &format!("merge{t}.sst"), &entries(10_000, t, 4));
            let file = fs.open(&path, OpenOptions::read()).unwrap();
            Table::open(file, 10 + t, cache.clone()).unwrap()
        })
        .collect();
    g.throughput(Throughput::Elements(40_000));
    g.bench_function("merge_scan_4x10k", |b| {
        b.iter(|| {
            let sources: Vec<Box<dyn EntryIter>> = opened
                .iter()
                .map(|t| Box::new(t.iter()) as Box<dyn EntryIter>)
                .collect();
            let mut m = MergingIter::new(sources);
            m.seek_to_first().unwrap();
            let mut n = 0u64;
            while m.valid() {
                n += m.value().len() as u64;
                m.next().unwrap();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = blocks, filters, tables
}
criterion_main!(benches);
