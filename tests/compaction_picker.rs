//! Model test of the compaction policy, without a disk.
//!
//! Every simulated table carries its versions, (user key, sequence), so
//! the test can check what actually matters: after every installed plan,
//! reading any key level by level (L0 newest first, then L1, L2, ...)
//! meets its versions newest first, and no version was lost. Plans are
//! picked while others run and installed in random order against a shape
//! that changed since they were picked, as the compaction thread would.
//! Each plan is also checked against the rules it promises (closed L0
//! inputs, clean cuts, trivial moves, `is_bottom`, no shared table, no
//! overlapping writes into one level). The seed of every run is printed
//! on failure by proptest.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use cityhall::compaction::{
    level_scores, level_targets, manual_range, pick_compaction, CompactionOptions, CompactionPlan,
    CompactionReason, FilePriority, InFlight, KeyRange, LevelsSnapshot, ManualStep, TableDesc,
};
use cityhall::io::sim::SimRng;
use cityhall::types::{internal_key, ValueKind};
use proptest::prelude::*;

const ENTRY_BYTES: u64 = 100;
const KEYS: u64 = 300;

/// (user key, sequence)
type Ver = (u64, u64);

fn ukey(k: u64) -> Vec<u8> {
    format!("k{k:05}").into_bytes()
}

fn ikey(v: Ver) -> Vec<u8> {
    internal_key(&ukey(v.0), v.1, ValueKind::Put)
}

struct World {
    snap: LevelsSnapshot,
    files: HashMap<u64, Vec<Ver>>,
    next_number: u64,
    next_seq: u64,
    total: usize,
    opts: CompactionOptions,
    rng: SimRng,
}

impl World {
    /// A random, valid shape: deeper levels hold older versions.
    fn new(opts: CompactionOptions, seed: u64) -> Self {
        let mut w = World {
            snap: LevelsSnapshot::new(vec![Vec::new(); opts.num_levels]),
            files: HashMap::new(),
            next_number: 1,
            next_seq: 1,
            total: 0,
            opts,
            rng: SimRng::new(seed),
        };
        for level in (1..w.opts.num_levels).rev() {
            if w.rng.below(3) == 0 {
                continue;
            }
            let count = 1 + w.rng.below(80) as usize;
            let mut vers: Vec<Ver> = (0..count).map(|_| (w.rng.below(KEYS), w.seq())).collect();
            sort(&mut vers);
            let mut files = Vec::new();
            let mut chunk = Vec::new();
            for v in vers {
                chunk.push(v);
                if w.rng.below(8) == 0 {
                    files.push(w.make_file(std::mem::take(&mut chunk)));
                }
            }
            if !chunk.is_empty() {
                files.push(w.make_file(chunk));
            }
            w.snap.levels[level] = files;
        }
        for _ in 0..w.rng.below(7) {
            w.flush();
        }
        w.check();
        w
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn make_file(&mut self, mut vers: Vec<Ver>) -> TableDesc {
        sort(&mut vers);
        let number = self.next_number;
        self.next_number += 1;
        let desc = TableDesc {
            number,
            size: vers.len() as u64 * ENTRY_BYTES,
            smallest: ikey(vers[0]),
            largest: ikey(vers[vers.len() - 1]),
        };
        self.total += vers.len();
        self.files.insert(number, vers);
        desc
    }

    /// A new L0 table over a random window of keys.
    fn flush(&mut self) {
        let lo = self.rng.below(KEYS);
        let width = 1 + self.rng.below(KEYS / 2);
        let n = 1 + self.rng.below(20) as usize;
        let vers: Vec<Ver> = (0..n)
            .map(|_| ((lo + self.rng.below(width)) % KEYS, self.seq()))
            .collect();
        let desc = self.make_file(vers);
        self.snap.levels[0].insert(0, desc);
    }

    /// Installs a plan: merges its inputs' versions into outputs cut at the
    /// target size, never inside one user key, as the job does.
    fn install(&mut self, plan: &CompactionPlan) {
        for (level, t) in plan.input_tables() {
            assert!(
                self.snap.level(level).contains(t),
                "input {} vanished",
                t.number
            );
        }
        let mut outputs = Vec::new();
        if !plan.trivial_move {
            let mut vers: Vec<Ver> = Vec::new();
            for n in plan.input_numbers() {
                let v = self.files.remove(&n).expect("input versions");
                self.total -= v.len();
                vers.extend(v);
            }
            sort(&mut vers);
            let target = self.opts.target_file_size_bytes;
            let mut chunk: Vec<Ver> = Vec::new();
            for v in vers {
                let full = chunk.len() as u64 * ENTRY_BYTES >= target;
                if full && chunk.last().is_some_and(|l| l.0 != v.0) {
                    outputs.push(self.make_file(std::mem::take(&mut chunk)));
                }
                chunk.push(v);
            }
            if !chunk.is_empty() {
                outputs.push(self.make_file(chunk));
            }
        }
        self.snap = self.snap.apply(plan, &outputs);
        self.check();
    }

    /// The shape is valid and every key reads newest first.
    fn check(&self) {
        if let Err(e) = self.snap.validate() {
            panic!("invalid shape: {e}\n{:#?}", self.snap.levels);
        }
        let live: usize = self
            .snap
            .levels
            .iter()
            .flatten()
            .map(|t| self.files[&t.number].len())
            .sum();
        assert_eq!(live, self.total, "versions lost or duplicated");
        let mut newest_below: HashMap<u64, (u64, usize)> = HashMap::new();
        for (level, files) in self.snap.levels.iter().enumerate() {
            for t in files {
                for &(k, s) in &self.files[&t.number] {
                    if let Some(&(prev, prev_level)) = newest_below.get(&k) {
                        assert!(
                            s < prev,
                            "key {k}: version {s} in L{level} (table {}) is read after {prev} from L{prev_level}",
                            t.number
                        );
                    }
                    newest_below.insert(k, (s, level));
                }
            }
        }
    }
}

fn sort(v: &mut [Ver]) {
    v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
}

/// Checks a plan against the shape it was picked from and the plans
/// running beside it.
fn check_plan(
    snap: &LevelsSnapshot,
    plan: &CompactionPlan,
    running: &[CompactionPlan],
    opts: &CompactionOptions,
) {
    let n_levels = snap.levels.len().max(opts.num_levels);
    for (level, t) in plan.input_tables() {
        assert!(
            snap.level(level).contains(t),
            "input {} not in L{level}",
            t.number
        );
    }
    let all: Vec<&TableDesc> = plan.input_tables().map(|(_, t)| t).collect();
    assert_eq!(
        Some(plan.key_range.clone()),
        KeyRange::covering(all.iter().copied())
    );
    for r in running {
        let mine = plan.input_numbers();
        assert!(
            r.input_numbers().iter().all(|n| !mine.contains(n)),
            "table shared by two plans"
        );
        let spans_meet = r.input_level <= plan.output_level && plan.input_level <= r.output_level;
        assert!(
            !(spans_meet && r.key_range.overlaps(&plan.key_range)),
            "two plans over one range share a level"
        );
        assert!(
            !(r.input_level == 0 && plan.input_level == 0),
            "two L0 compactions"
        );
    }
    match plan.reason {
        CompactionReason::Level0 => {
            assert_eq!(plan.input_level, 0);
            assert_eq!(plan.output_level, level_targets(snap, opts).base_level);
        }
        CompactionReason::LevelSize => assert_eq!(plan.output_level, plan.input_level + 1),
        CompactionReason::Manual => assert!(plan.output_level >= plan.input_level),
    }
    let first = &plan.inputs[0];
    assert_eq!(first.level, plan.input_level);
    assert!(!first.tables.is_empty());
    let in_range = KeyRange::covering(&first.tables).unwrap();
    if plan.input_level == 0 {
        // No L0 table left behind is older than an input and overlaps it.
        let l0 = snap.level(0);
        for (j, older) in l0.iter().enumerate() {
            if first.tables.contains(older) {
                continue;
            }
            for newer in &l0[..j] {
                if first.tables.contains(newer) {
                    assert!(
                        !older.overlaps(&newer.range()),
                        "L0 {} left under input {}",
                        older.number,
                        newer.number
                    );
                }
            }
        }
    } else {
        check_clean_run(snap.level(plan.input_level), &first.tables);
    }
    let out_files = snap.level(plan.output_level);
    let taken: Vec<TableDesc> = plan
        .inputs
        .get(1)
        .map(|g| g.tables.clone())
        .unwrap_or_default();
    if let Some(g) = plan.inputs.get(1) {
        assert_eq!(g.level, plan.output_level);
        assert_ne!(g.level, plan.input_level);
        check_clean_run(out_files, &g.tables);
    }
    assert!(plan.inputs.len() <= 2);
    if plan.output_level != plan.input_level {
        for t in out_files {
            if t.overlaps(&in_range) {
                assert!(
                    taken.contains(t),
                    "L{} table {} overlaps the inputs but is not taken",
                    plan.output_level,
                    t.number
                );
            }
        }
    }
    if plan.trivial_move {
        assert_eq!(plan.input_numbers().len(), 1);
        assert!(!out_files.iter().any(|t| t.overlaps(&plan.key_range)));
    }
    let deeper_overlap = (plan.output_level + 1..n_levels)
        .any(|l| snap.level(l).iter().any(|t| t.overlaps(&plan.key_range)));
    let deeper_writes = running
        .iter()
        .any(|r| r.output_level > plan.output_level && r.key_range.overlaps(&plan.key_range));
    assert_eq!(
        plan.is_bottom,
        !deeper_overlap && !deeper_writes,
        "is_bottom wrong"
    );
}

/// `run` is a contiguous run of `files` with no user key split at its ends.
fn check_clean_run(files: &[TableDesc], run: &[TableDesc]) {
    let start = files.iter().position(|t| t == &run[0]).expect("run start");
    assert_eq!(
        &files[start..start + run.len()],
        run,
        "inputs not contiguous"
    );
    let end = start + run.len();
    if start > 0 {
        assert_ne!(
            files[start - 1].largest_user_key(),
            files[start].smallest_user_key(),
            "user key split at the run start"
        );
    }
    if end < files.len() {
        assert_ne!(
            files[end - 1].largest_user_key(),
            files[end].smallest_user_key(),
            "user key split at the run end"
        );
    }
}

fn options() -> impl Strategy<Value = CompactionOptions> {
    (
        3usize..8,
        1usize..6,
        5u64..40,
        2u64..11,
        2u64..16,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(num_levels, trigger, base, mult, target, dynamic, round_robin)| CompactionOptions {
                num_levels,
                level0_file_num_compaction_trigger: trigger,
                max_bytes_for_level_base: base * ENTRY_BYTES,
                max_bytes_for_level_multiplier: mult,
                target_file_size_bytes: target * ENTRY_BYTES,
                level_compaction_dynamic_level_bytes: dynamic,
                file_priority: if round_robin {
                    FilePriority::RoundRobin
                } else {
                    FilePriority::MinOverlappingRatio
                },
                ..CompactionOptions::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn concurrent_plans_keep_the_tree_readable(opts in options(), seed in any::<u64>(), steps in 0usize..150) {
        let mut w = World::new(opts.clone(), seed);
        let mut in_flight = InFlight::new();
        let mut running: Vec<CompactionPlan> = Vec::new();
        for _ in 0..steps {
            match w.rng.below(5) {
                0 => w.flush(),
                4 => {
                    // A manual step from a random level, beside the others.
                    let a = w.rng.below(KEYS);
                    let (lo, hi) = (ukey(a), ukey(a + w.rng.below(KEYS / 3)));
                    let from = w.rng.below(opts.num_levels as u64) as usize;
                    let step = manual_range(&w.snap, &in_flight, &opts, Some(&lo), Some(&hi), from);
                    if let ManualStep::Plan { plan, .. } = step {
                        check_plan(&w.snap, &plan, &running, &opts);
                        in_flight.add(&plan);
                        running.push(plan);
                    }
                }
                1 | 2 => {
                    if let Some(plan) = pick_compaction(&w.snap, &in_flight, &opts) {
                        check_plan(&w.snap, &plan, &running, &opts);
                        in_flight.add(&plan);
                        running.push(plan);
                    }
                }
                _ if !running.is_empty() => {
                    let i = w.rng.below(running.len() as u64) as usize;
                    let plan = running.swap_remove(i);
                    // Still the bottom for its keys when it completes: no
                    // version of them arrived below meanwhile.
                    if plan.is_bottom {
                        let keys: HashSet<u64> = plan
                            .input_numbers()
                            .iter()
                            .flat_map(|n| w.files[n].iter().map(|v| v.0))
                            .collect();
                        for l in plan.output_level + 1..w.snap.levels.len() {
                            for t in w.snap.level(l) {
                                prop_assert!(
                                    !w.files[&t.number].iter().any(|v| keys.contains(&v.0)),
                                    "L{} table {} holds a key of a bottom plan", l, t.number
                                );
                            }
                        }
                    }
                    w.install(&plan);
                    in_flight.remove(&plan);
                }
                _ => {}
            }
        }
        for plan in std::mem::take(&mut running) {
            w.install(&plan);
            in_flight.remove(&plan);
        }
        prop_assert!(in_flight.is_empty());
        // With nothing running, compaction converges: every score < 1.
        let mut rounds = 0;
        while let Some(plan) = pick_compaction(&w.snap, &in_flight, &opts) {
            check_plan(&w.snap, &plan, &[], &opts);
            w.install(&plan);
            rounds += 1;
            prop_assert!(rounds < 5000, "compaction does not converge");
        }
        let scores = level_scores(&w.snap, &in_flight, &opts, &level_targets(&w.snap, &opts));
        prop_assert!(scores.iter().all(|&s| s < 1.0), "scores {:?} but no plan", scores);
    }

    #[test]
    fn manual_compaction_brings_a_range_to_one_level(
        opts in options(),
        seed in any::<u64>(),
        start in prop::option::of(0u64..KEYS),
        len in prop::option::of(0u64..KEYS),
    ) {
        let mut w = World::new(opts.clone(), seed);
        let first_new = w.next_number;
        let lo = start.map(ukey);
        let hi = len.map(|l| ukey(start.unwrap_or(0) + l));
        let mut from = 0;
        let mut steps = 0;
        loop {
            match manual_range(&w.snap, &InFlight::new(), &opts, lo.as_deref(), hi.as_deref(), from) {
                ManualStep::Plan { plan, next_level } => {
                    check_plan(&w.snap, &plan, &[], &opts);
                    prop_assert!(next_level > from || plan.input_level >= from);
                    w.install(&plan);
                    from = next_level;
                    steps += 1;
                    prop_assert!(steps <= 2 * opts.num_levels, "manual compaction does not finish");
                }
                ManualStep::Busy => prop_assert!(false, "busy with nothing in flight"),
                ManualStep::Done => break,
            }
        }
        let in_bounds = |k: u64| {
            let k = ukey(k);
            lo.as_ref().is_none_or(|l| &k >= l) && hi.as_ref().is_none_or(|h| &k <= h)
        };
        let levels: Vec<usize> = w.snap.levels.iter().enumerate()
            .filter(|(_, files)| files.iter().any(|t| w.files[&t.number].iter().any(|v| in_bounds(v.0))))
            .map(|(l, _)| l)
            .collect();
        prop_assert!(levels.len() <= 1, "range still spread over levels {:?}", levels);
        // ... and was rewritten there (shadowed versions and tombstones go).
        for t in w.snap.levels.iter().flatten() {
            if w.files[&t.number].iter().any(|v| in_bounds(v.0)) {
                prop_assert!(t.number >= first_new, "table {} in range was never rewritten", t.number);
            }
        }
    }
}
