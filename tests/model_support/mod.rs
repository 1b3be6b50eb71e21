//! What the model-based tests share (`engine_model.rs`, `engine_flush.rs`,
//! `compaction_crash.rs`): keys and values whose origin shows in a failure
//! message, the `BTreeMap` model and how a batch applies to it, the checks
//! of a database against the model (every key, a full scan, the sequence;
//! a snapshot against the model as of its taking), the check of a
//! directory after an open (the manifest names exactly the tables there
//! are, and `cityhall check` finds nothing), and the proptest config.
//!
//! Every check returns a `TestCaseError` carrying `ctx` (the seed and the
//! operation), so a proptest failure prints a reproducible case.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use cityhall::io::sim::SimFs;
use cityhall::io::Fs;
use cityhall::metrics::MetricValue;
use cityhall::{Db, Snapshot, WriteBatch};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// Where the simulated database lives.
pub const DIR: &str = "/db";
/// Keys `key0..key15`.
pub const KEYS: u8 = 16;

pub type R = Result<(), TestCaseError>;

pub fn fail<T>(msg: String) -> Result<T, TestCaseError> {
    Err(TestCaseError::fail(msg))
}

pub fn key(k: u8) -> Vec<u8> {
    // "key1" is a prefix of "key10".."key15": ordering by user key matters.
    format!("key{k}").into_bytes()
}

/// A value unique to `n` (for lengths of 8 and more).
pub fn value(n: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = n.to_le_bytes().iter().copied().cycle().take(len).collect();
    if let Some(last) = v.last_mut() {
        *last ^= (len % 251) as u8;
    }
    v
}

/// One operation of a batch: a put of a value of the given length, or a
/// delete.
#[derive(Clone, Debug)]
pub enum BOp {
    Put(u8, usize),
    Del(u8),
}

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// A batch with its values chosen: (key, Some(value) | None for delete).
pub type Concrete = Vec<(Vec<u8>, Option<Vec<u8>>)>;

pub fn apply(model: &mut Model, ops: &Concrete) {
    for (k, v) in ops {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

pub fn to_batch(ops: &Concrete) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in ops {
        match v {
            Some(v) => b.put(k.clone(), v.clone()),
            None => b.delete(k.clone()),
        };
    }
    b
}

/// A value as "#n/len": `n` is the write that made it (see `value`).
pub fn show(v: &[u8]) -> String {
    match v.get(..8) {
        Some(b) => format!("#{}/{}", u64::from_le_bytes(b.try_into().unwrap()), v.len()),
        None => format!("{:?}", v),
    }
}

pub fn summary(m: &Model) -> Vec<(String, String)> {
    m.iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), show(v)))
        .collect()
}

fn pairs(m: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn shown(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), show(v)))
        .collect()
}

pub fn counter(db: &Db, name: &str) -> u64 {
    match db.metrics().get(name) {
        Some(MetricValue::Counter(n)) => *n,
        other => panic!("{name}: not a counter: {other:?}"),
    }
}

pub fn gauge(db: &Db, name: &str) -> f64 {
    match db.metrics().get(name) {
        Some(MetricValue::Gauge(g)) => *g,
        other => panic!("{name}: not a gauge: {other:?}"),
    }
}

/// Every key, a full scan and the last sequence agree with the model.
pub fn check_db(db: &Db, model: &Model, seq: u64, ctx: &str) -> R {
    for k in 0..KEYS {
        let got = db.get(&key(k)).unwrap();
        let want = model.get(&key(k)).cloned();
        prop_assert!(
            got == want,
            "{ctx}: key{k}: got {:?}, model {:?}",
            got.as_deref().map(show),
            want.as_deref().map(show)
        );
    }
    let scan = db.scan(b"", None, usize::MAX).unwrap();
    prop_assert!(
        scan == pairs(model),
        "{ctx}: full scan differs from the model\n got {:?}\n want {:?}",
        shown(&scan),
        summary(model)
    );
    prop_assert_eq!(db.last_sequence(), seq, "{}: last sequence", ctx);
    Ok(())
}

/// Every key and a full scan through `snap` agree with `model`, the
/// model as of the snapshot's taking.
pub fn check_snapshot(snap: &Snapshot, model: &Model, ctx: &str) -> R {
    for k in 0..KEYS {
        let got = snap.get(&key(k)).unwrap();
        prop_assert!(
            got.as_ref() == model.get(&key(k)),
            "{ctx}: snapshot at {}: key{k}: got {:?}, then {:?}",
            snap.sequence(),
            got.as_deref().map(show),
            model.get(&key(k)).map(|v| show(v))
        );
    }
    let scan = snap.scan(b"", None, usize::MAX).unwrap();
    prop_assert!(
        scan == pairs(model),
        "{ctx}: snapshot scan at {}: got {:?}, want {:?}",
        snap.sequence(),
        shown(&scan),
        summary(model)
    );
    Ok(())
}

/// Checks a closed database's directory: the manifest names exactly the
/// tables there are (no table leaked, none missing), and `check_dir`
/// finds no problem and nothing left over (it also checks that levels 1
/// and deeper are sorted and do not overlap).
pub fn check_dir(sim: &SimFs, ctx: &str) -> R {
    let dir = Path::new(DIR);
    let number = cityhall::manifest::read_current(sim, dir)
        .map_err(|e| TestCaseError::fail(format!("{ctx}: CURRENT: {e}")))?
        .unwrap_or(0);
    let state = cityhall::manifest::recover(sim, dir, number)
        .map_err(|e| TestCaseError::fail(format!("{ctx}: manifest: {e}")))?;
    let ssts: Vec<u64> = sim
        .list(dir)
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_suffix(".sst")?.parse().ok())
        .collect();
    let named: Vec<u64> = state.tables.keys().copied().collect();
    prop_assert!(
        ssts == named,
        "{ctx}: the directory holds tables {ssts:?}, the manifest names {named:?}"
    );
    let report = cityhall::check::check_dir(sim, dir);
    prop_assert!(
        report.ok() && report.notes.is_empty(),
        "{ctx}: check: problems {:?}, notes {:?}",
        report.problems,
        report.notes
    );
    Ok(())
}

/// Cases from `PROPTEST_CASES` (default 64); shrunk failures are printed
/// (seed and ops), not written next to the sources; shrinking, which
/// re-runs cases with real threads, is bounded.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 5_000,
        ..Config::default()
    }
}
