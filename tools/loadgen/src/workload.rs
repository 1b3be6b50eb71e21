//! What each benchmark workload does: [`OpSource`] turns a workload name
//! into a stream of operations on key indexes, and [`Budget`] shares the
//! operation count (`--num`) and the stop signal (`--duration`) between
//! the connections.
//!
//! | workload       | operation                                                   |
//! |----------------|-------------------------------------------------------------|
//! | `fillseq`      | put key `i` for the i-th operation of the run (key order)   |
//! | `fillrandom`   | put a random key of the key space                           |
//! | `overwrite`    | the same, meant to run on a filled database                 |
//! | `readrandom`   | get a random key                                            |
//! | `readmissing`  | get a random key with `.` appended (never written)          |
//! | `readhot`      | get a uniformly random key of the first 1% of the key space |
//! | `scan`         | read `--scan-length` pairs from a random key                |
//! | `mixed`        | get (`--read-percent`) or put a random key                  |
//! | `deleterandom` | delete a random key                                         |
//! | `deleteall`    | delete key `i` for the i-th operation, every key once       |
//!
//! "Random" follows `--distribution`. `smoke` is not here: it checks
//! answers against a model and lives in [`crate::smoke`]; nor is
//! `compact`, one call timed by `main`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cli::Workload;
use crate::keys::KeyChooser;
use crate::rng::Rng;

/// The kinds of operation, each with its own latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
    Delete,
    Scan,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 4] = [OpKind::Read, OpKind::Write, OpKind::Delete, OpKind::Scan];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Delete => "delete",
            OpKind::Scan => "scan",
        }
    }
}

/// One operation on a key index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put(u64),
    Get(u64),
    GetMissing(u64),
    Delete(u64),
    Scan(u64),
}

impl Op {
    /// Its kind.
    pub fn kind(self) -> OpKind {
        match self {
            Op::Put(_) => OpKind::Write,
            Op::Get(_) | Op::GetMissing(_) => OpKind::Read,
            Op::Delete(_) => OpKind::Delete,
            Op::Scan(_) => OpKind::Scan,
        }
    }
}

/// The operations of one workload run, shared by its connections.
#[derive(Debug)]
pub struct Budget {
    num: Option<u64>,
    claimed: AtomicU64,
    stop: AtomicBool,
}

impl Budget {
    /// At most `num` operations (`None`: until [`Budget::stop`]).
    pub fn new(num: Option<u64>) -> Budget {
        Budget {
            num,
            claimed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The run-wide sequence number of the next operation, or `None` when
    /// the run is over.
    pub fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        match self.num {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }

    /// Ends the run: no more operations are handed out.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection's stream of operations.
#[derive(Debug)]
pub struct OpSource {
    workload: Workload,
    chooser: KeyChooser,
    /// Keys `readhot` reads from: the first 1% of the key space.
    hot_keys: u64,
    read_percent: u64,
    rng: Rng,
}

impl OpSource {
    /// The stream of `workload` over `key_space` keys drawn by `chooser`.
    pub fn new(
        workload: Workload,
        chooser: KeyChooser,
        key_space: u64,
        read_percent: u8,
        rng: Rng,
    ) -> OpSource {
        OpSource {
            workload,
            chooser,
            hot_keys: key_space.div_ceil(100).max(1),
            read_percent: u64::from(read_percent),
            rng,
        }
    }

    /// The operation for the run's `seq`-th operation.
    pub fn op(&mut self, seq: u64) -> Op {
        let key = self.chooser.next(&mut self.rng);
        match self.workload {
            Workload::Fillseq => Op::Put(seq),
            Workload::Fillrandom | Workload::Overwrite => Op::Put(key),
            Workload::Readrandom => Op::Get(key),
            Workload::Readmissing => Op::GetMissing(key),
            Workload::Readhot => Op::Get(self.rng.below(self.hot_keys)),
            Workload::Scan => Op::Scan(key),
            Workload::Mixed if self.rng.below(100) < self.read_percent => Op::Get(key),
            Workload::Mixed => Op::Put(key),
            Workload::Deleterandom => Op::Delete(key),
            Workload::Deleteall => Op::Delete(seq),
            // Not benchmark streams (see `smoke`, and `compact` in main);
            // reading is harmless.
            Workload::Smoke | Workload::Compact => Op::Get(key),
        }
    }

    /// The generator, for value bytes.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_hands_out_num_operations() {
        let b = Budget::new(Some(3));
        assert_eq!(b.claim(), Some(0));
        assert_eq!(b.claim(), Some(1));
        assert_eq!(b.claim(), Some(2));
        assert_eq!(b.claim(), None);
        let unbounded = Budget::new(None);
        assert_eq!(unbounded.claim(), Some(0));
        unbounded.stop();
        assert_eq!(unbounded.claim(), None);
    }

    #[test]
    fn workloads_make_their_operations() {
        let src = |w| OpSource::new(w, KeyChooser::uniform(1000), 1000, 50, Rng::new(1, 0));
        assert_eq!(src(Workload::Fillseq).op(7), Op::Put(7));
        assert!(matches!(src(Workload::Readmissing).op(0), Op::GetMissing(k) if k < 1000));
        let mut hot = src(Workload::Readhot);
        for i in 0..100 {
            assert!(matches!(hot.op(i), Op::Get(k) if k < 10));
        }
        let mut mixed = src(Workload::Mixed);
        let reads = (0..1000)
            .filter(|i| mixed.op(*i).kind() == OpKind::Read)
            .count();
        assert!((400..600).contains(&reads), "{reads}");
        assert_eq!(src(Workload::Deleterandom).op(0).kind(), OpKind::Delete);
        assert_eq!(src(Workload::Deleteall).op(7), Op::Delete(7));
    }
}
