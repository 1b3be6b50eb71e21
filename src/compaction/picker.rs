//! The compaction picker: a pure function from a [`LevelsSnapshot`] and
//! the [`InFlight`] compactions to a [`CompactionPlan`]. No IO, no locks,
//! no clock; the same inputs always give the same plan.
//!
//! **Automatic picks** ([`pick_compaction`]): score every level (see
//! [`super::sizing`]); try the levels with score >= 1, highest first, and
//! return the first plan that can be formed without conflicting with a
//! running one (see [`InFlight`]).
//!
//! - *L0* (one L0 compaction at a time, so none if any L0 table is busy):
//!   start from the oldest L0 file and take every L0 file overlapping the
//!   growing key range, until it stops growing. No L0 file left behind
//!   overlaps the inputs, so no older version of an input key stays above
//!   a newer one moved down. Output: the base level.
//! - *Ln, n >= 1*: candidates in [`super::FilePriority`] order; the first
//!   idle candidate, widened to a clean cut (neighbours sharing a boundary
//!   user key come along), whose plan can be formed. Output: Ln+1.
//!
//! **Every plan** then takes the output level's files overlapping the
//! inputs' user-key range, widened to a clean cut; it is a trivial move
//! when that leaves one input and nothing in the output level; `is_bottom`
//! when no deeper level overlaps the final range and no running plan
//! writes below the output level over it.
//!
//! **Manual** ([`manual_range`]): one step of `compact_range(start, end)`
//! at a time, from `from_level` down. A step takes the level's files in the
//! range (L0: closed as above) and merges them into the first level below
//! holding data in the merged range or in the asked range (L0: at or below
//! the base level). The step that lands on that deepest level also takes all of
//! its files in the range and is never a trivial move, so the range ends
//! up rewritten once at the bottom with shadowed versions and (if nothing
//! lies below) tombstones gone. A range present only at its deepest level
//! is rewritten in place (output level = input level).

use std::cmp::Ordering;

use super::options::{CompactionOptions, FilePriority};
use super::plan::{CompactionPlan, CompactionReason, LevelInputs};
use super::sizing::{level_scores, level_targets, levels_in_use, LevelTargets};
use super::snapshot::{clean_cut, overlapping, InFlight, KeyRange, LevelsSnapshot, TableDesc};
use crate::types::compare_internal_keys;

/// Picks the most urgent compaction, if any level needs one and it can run
/// alongside those in flight.
pub fn pick_compaction(
    snap: &LevelsSnapshot,
    in_flight: &InFlight,
    opts: &CompactionOptions,
) -> Option<CompactionPlan> {
    let cx = Ctx::new(snap, in_flight, opts);
    let scores = level_scores(snap, in_flight, opts, &cx.targets);
    let mut order: Vec<(usize, f64)> = scores
        .into_iter()
        .enumerate()
        .filter(|&(_, s)| s >= 1.0)
        .collect();
    // Highest score first; ties go to the shallower level.
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.into_iter().find_map(|(level, score)| {
        if level == 0 {
            cx.pick_level0(score)
        } else {
            cx.pick_sized(level, score)
        }
    })
}

/// One step of a manual compaction.
#[derive(Clone, Debug, PartialEq)]
pub enum ManualStep {
    /// Run this plan, install it, then call again with `next_level`.
    Plan {
        /// The step.
        plan: CompactionPlan,
        /// The `from_level` of the next call.
        next_level: usize,
    },
    /// The next step conflicts with a running compaction: wait, retry.
    Busy,
    /// Nothing in the range remains to be compacted.
    Done,
}

/// The next step of compacting user keys `start..=end` (`None`: unbounded)
/// from level `from_level` down (see the module docs). An empty range
/// (`start > end`) is `Done` at once.
pub fn manual_range(
    snap: &LevelsSnapshot,
    in_flight: &InFlight,
    opts: &CompactionOptions,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    from_level: usize,
) -> ManualStep {
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return ManualStep::Done;
        }
    }
    let cx = Ctx::new(snap, in_flight, opts);
    let bounds = Bounds {
        lo: start.unwrap_or_default().to_vec(),
        hi: end.map(<[u8]>::to_vec),
    };
    let Some(deepest) = (0..cx.n)
        .rev()
        .find(|&l| snap.level(l).iter().any(|t| bounds.meets(t)))
    else {
        return ManualStep::Done;
    };
    for level in from_level..=deepest {
        let files = snap.level(level);
        let inputs = if level == 0 {
            let seeds: Vec<usize> = (0..files.len())
                .filter(|&i| files.get(i).is_some_and(|t| bounds.meets(t)))
                .collect();
            if seeds.is_empty() {
                continue;
            }
            if files.iter().any(|t| in_flight.is_busy(t.number)) {
                return ManualStep::Busy;
            }
            close_level0(files, seeds)
        } else {
            let r = clean_cut(files, bounds.overlapping(files));
            match files.get(r) {
                Some(t) if !t.is_empty() => t.to_vec(),
                _ => continue,
            }
        };
        let Some(hull) = KeyRange::covering(&inputs) else {
            continue;
        };
        let first_below = if level == 0 {
            cx.targets.base_level
        } else {
            level + 1
        };
        // The first level below with data in the merged range or in the
        // asked range: nothing in between overlaps the inputs, and no
        // level with data in the asked range is skipped.
        let output_level = if level == deepest && level > 0 {
            level
        } else {
            (first_below..=deepest)
                .find(|&l| {
                    let f = snap.level(l);
                    !overlapping(f, &hull).is_empty() || !bounds.overlapping(f).is_empty()
                })
                .unwrap_or(first_below)
        };
        let landing = output_level >= deepest;
        let spec = Spec {
            reason: CompactionReason::Manual,
            score: 0.0,
            input_level: level,
            inputs,
            output_level,
            also_take: landing.then_some(&bounds),
            allow_trivial: !landing,
        };
        return match cx.build(spec) {
            Some(plan) => ManualStep::Plan {
                plan,
                next_level: if landing {
                    output_level + 1
                } else {
                    output_level
                },
            },
            None => ManualStep::Busy,
        };
    }
    ManualStep::Done
}

/// User keys `lo..=hi`, `hi = None` meaning unbounded.
#[derive(Debug)]
struct Bounds {
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
}

impl Bounds {
    fn meets(&self, t: &TableDesc) -> bool {
        self.lo.as_slice() <= t.largest_user_key()
            && self
                .hi
                .as_deref()
                .is_none_or(|hi| t.smallest_user_key() <= hi)
    }

    /// The files of a sorted level (L1+) meeting the bounds.
    fn overlapping(&self, files: &[TableDesc]) -> std::ops::Range<usize> {
        let start = files.partition_point(|t| t.largest_user_key() < self.lo.as_slice());
        let end = match &self.hi {
            Some(hi) => files.partition_point(|t| t.smallest_user_key() <= hi.as_slice()),
            None => files.len(),
        };
        start..end.max(start)
    }
}

/// What to build a plan from.
struct Spec<'a> {
    reason: CompactionReason,
    score: f64,
    input_level: usize,
    inputs: Vec<TableDesc>,
    output_level: usize,
    /// Also take the output level's files meeting these bounds.
    also_take: Option<&'a Bounds>,
    allow_trivial: bool,
}

struct Ctx<'a> {
    snap: &'a LevelsSnapshot,
    in_flight: &'a InFlight,
    opts: &'a CompactionOptions,
    n: usize,
    targets: LevelTargets,
}

impl<'a> Ctx<'a> {
    fn new(snap: &'a LevelsSnapshot, in_flight: &'a InFlight, opts: &'a CompactionOptions) -> Self {
        Ctx {
            snap,
            in_flight,
            opts,
            n: levels_in_use(snap, opts),
            targets: level_targets(snap, opts),
        }
    }

    fn busy(&self, tables: &[TableDesc]) -> bool {
        tables.iter().any(|t| self.in_flight.is_busy(t.number))
    }

    fn pick_level0(&self, score: f64) -> Option<CompactionPlan> {
        let files = self.snap.level(0);
        if files.is_empty() || self.busy(files) {
            return None;
        }
        let inputs = close_level0(files, vec![files.len() - 1]);
        self.build(Spec {
            reason: CompactionReason::Level0,
            score,
            input_level: 0,
            inputs,
            output_level: self.targets.base_level,
            also_take: None,
            allow_trivial: true,
        })
    }

    fn pick_sized(&self, level: usize, score: f64) -> Option<CompactionPlan> {
        let files = self.snap.level(level);
        self.candidates(level).into_iter().find_map(|i| {
            let first = files.get(i)?;
            if self.in_flight.is_busy(first.number) {
                return None;
            }
            let inputs = files.get(clean_cut(files, i..i + 1))?.to_vec();
            let pointer = inputs.last().map(|t| t.largest.clone());
            let mut plan = self.build(Spec {
                reason: CompactionReason::LevelSize,
                score,
                input_level: level,
                inputs,
                output_level: level + 1,
                also_take: None,
                allow_trivial: true,
            })?;
            plan.compact_pointer = pointer;
            Some(plan)
        })
    }

    /// The indices of `level`'s files in the order they should be tried.
    fn candidates(&self, level: usize) -> Vec<usize> {
        let files = self.snap.level(level);
        match self.opts.file_priority {
            FilePriority::RoundRobin => {
                let p = self.snap.compact_pointer(level);
                let start = if p.is_empty() {
                    0
                } else {
                    files.partition_point(|t| {
                        compare_internal_keys(&t.largest, p) != Ordering::Greater
                    })
                };
                (start..files.len()).chain(0..start).collect()
            }
            FilePriority::MinOverlappingRatio => {
                let next = self.snap.level(level + 1);
                let mut keyed: Vec<(u128, u128, usize)> = files
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let over: u64 = next
                            .get(overlapping(next, &t.range()))
                            .map_or(0, |o| o.iter().map(|x| x.size).sum());
                        (u128::from(over), u128::from(t.size.max(1)), i)
                    })
                    .collect();
                // over_a / size_a < over_b / size_b, without division.
                keyed.sort_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)).then(a.2.cmp(&b.2)));
                keyed.into_iter().map(|k| k.2).collect()
            }
        }
    }

    /// Completes a plan: output-level inputs, conflicts, trivial move,
    /// bottom. `None` if it conflicts with a running plan.
    fn build(&self, spec: Spec<'_>) -> Option<CompactionPlan> {
        let mut range = KeyRange::covering(&spec.inputs)?;
        if self.busy(&spec.inputs) {
            return None;
        }
        let mut groups = vec![LevelInputs {
            level: spec.input_level,
            tables: spec.inputs,
        }];
        if spec.output_level != spec.input_level {
            let files = self.snap.level(spec.output_level);
            let mut r = overlapping(files, &range);
            if let Some(b) = spec.also_take {
                let rb = b.overlapping(files);
                r = match (r.is_empty(), rb.is_empty()) {
                    (true, _) => rb,
                    (false, true) => r,
                    (false, false) => r.start.min(rb.start)..r.end.max(rb.end),
                };
            }
            let taken = files.get(clean_cut(files, r))?.to_vec();
            if self.busy(&taken) {
                return None;
            }
            if let Some(r2) = KeyRange::covering(&taken) {
                range.extend(&r2);
                groups.push(LevelInputs {
                    level: spec.output_level,
                    tables: taken,
                });
            }
        }
        if self
            .in_flight
            .conflicts(spec.input_level..=spec.output_level, &range)
        {
            return None;
        }
        let trivial_move = spec.allow_trivial
            && spec.output_level != spec.input_level
            && groups.len() == 1
            && groups.first().is_some_and(|g| g.tables.len() == 1);
        let is_bottom = (spec.output_level + 1..self.n)
            .all(|l| overlapping(self.snap.level(l), &range).is_empty())
            && !self.in_flight.writes_below(spec.output_level, &range);
        Some(CompactionPlan {
            reason: spec.reason,
            score: spec.score,
            input_level: spec.input_level,
            output_level: spec.output_level,
            inputs: groups,
            trivial_move,
            is_bottom,
            key_range: range,
            compact_pointer: None,
            target_file_size_bytes: self.opts.target_file_size_bytes,
        })
    }
}

/// The L0 files reachable from `seeds` by overlap with the growing range,
/// in L0 order (newest first). Every L0 file left out is disjoint from the
/// result's range.
fn close_level0(files: &[TableDesc], seeds: Vec<usize>) -> Vec<TableDesc> {
    let mut chosen = vec![false; files.len()];
    let mut range: Option<KeyRange> = None;
    for i in seeds {
        if let (Some(c), Some(t)) = (chosen.get_mut(i), files.get(i)) {
            *c = true;
            match &mut range {
                Some(r) => r.extend(&t.range()),
                None => range = Some(t.range()),
            }
        }
    }
    let Some(mut range) = range else {
        return Vec::new();
    };
    let mut grew = true;
    while grew {
        grew = false;
        for (c, t) in chosen.iter_mut().zip(files) {
            if !*c && t.overlaps(&range) {
                *c = true;
                range.extend(&t.range());
                grew = true;
            }
        }
    }
    files
        .iter()
        .zip(&chosen)
        .filter(|(_, &c)| c)
        .map(|(t, _)| t.clone())
        .collect()
}
