//! [`VersionFilter`]: which versions a compaction keeps.
//!
//! The merged input arrives in internal-key order: per user key, newest
//! version first. The live snapshots cut the sequence axis into *stripes*:
//! stripe `i` holds sequences in `(s[i-1], s[i]]` for the sorted snapshot
//! boundaries `s`, and a last, open stripe holds everything newer. A reader
//! at any snapshot (or at the newest state) sees, per user key, the newest
//! version of some stripe, never an older one. Hence, per user key:
//!
//! - **Shadowed**: a version with a newer version of the same key in the
//!   same stripe is invisible to every reader and is dropped (LevelDB's
//!   `last_sequence_for_key <= smallest_snapshot`, RocksDB's
//!   `CompactionIterator`, generalised to every snapshot).
//! - **Obsolete tombstone**: the newest tombstone of the lowest stripe
//!   (sequence <= the earliest snapshot) is dropped when the compaction
//!   writes the bottom for its key range (`is_bottom`): every reader sees
//!   it or something newer, everything older in the compaction is in the
//!   same stripe and so shadowed, and nothing older exists below. Dropping
//!   it changes no read. A tombstone in a higher stripe is kept: an older
//!   snapshot still sees the version it hides from newer readers.
//! - Everything else is kept, with its sequence unchanged.
//!
//! The boundaries are the live snapshots plus the caller's
//! `smallest_snapshot` (the oldest sequence any reader may use: the oldest
//! live snapshot, or the last sequence when none is live). An extra
//! boundary only keeps more versions, so a conservative caller is safe.

use crate::types::{SeqNo, ValueKind};

/// What to do with one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it to the output.
    Keep,
    /// A newer version of the key is visible to every reader that could
    /// see this one.
    Shadowed,
    /// A tombstone at the bottom that no reader needs.
    ObsoleteTombstone,
}

/// The per-key state machine deciding [`Verdict`]s, fed in internal-key
/// order.
#[derive(Clone, Debug)]
pub struct VersionFilter {
    /// Stripe upper bounds, sorted ascending, deduplicated, non-empty.
    boundaries: Vec<SeqNo>,
    is_bottom: bool,
    key: Vec<u8>,
    /// The stripe of the last version seen of `key`; `None` before the
    /// first version of a key.
    last_stripe: Option<usize>,
}

impl VersionFilter {
    /// A filter for a compaction. `live_snapshots` need not be sorted.
    pub fn new(smallest_snapshot: SeqNo, live_snapshots: &[SeqNo], is_bottom: bool) -> Self {
        let mut boundaries = Vec::with_capacity(live_snapshots.len() + 1);
        boundaries.push(smallest_snapshot);
        boundaries.extend_from_slice(live_snapshots);
        boundaries.sort_unstable();
        boundaries.dedup();
        VersionFilter {
            boundaries,
            is_bottom,
            key: Vec::new(),
            last_stripe: None,
        }
    }

    /// The earliest stripe boundary: tombstones at or below it may go.
    pub fn earliest_snapshot(&self) -> SeqNo {
        self.boundaries.first().copied().unwrap_or(SeqNo::MAX)
    }

    fn stripe(&self, seq: SeqNo) -> usize {
        self.boundaries.partition_point(|&b| b < seq)
    }

    /// Decides one version. Versions must come in internal-key order.
    pub fn decide(&mut self, user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Verdict {
        if self.last_stripe.is_none() || self.key.as_slice() != user_key {
            self.key.clear();
            self.key.extend_from_slice(user_key);
            self.last_stripe = None;
        }
        let stripe = self.stripe(seq);
        if self.last_stripe == Some(stripe) {
            return Verdict::Shadowed;
        }
        self.last_stripe = Some(stripe);
        if kind == ValueKind::Delete && self.is_bottom && seq <= self.earliest_snapshot() {
            return Verdict::ObsoleteTombstone;
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueKind::{Delete, Put};

    fn run(f: &mut VersionFilter, versions: &[(&str, SeqNo, ValueKind)]) -> Vec<Verdict> {
        versions
            .iter()
            .map(|&(k, s, kind)| f.decide(k.as_bytes(), s, kind))
            .collect()
    }

    #[test]
    fn newest_per_stripe_survives() {
        use Verdict::*;
        // Snapshots at 5 and 10; last sequence 20.
        let mut f = VersionFilter::new(5, &[10, 5], false);
        let got = run(
            &mut f,
            &[
                ("a", 12, Put),
                ("a", 11, Put),
                ("a", 9, Delete),
                ("a", 7, Put),
                ("a", 5, Put),
                ("a", 1, Put),
                ("b", 3, Put),
            ],
        );
        assert_eq!(
            got,
            vec![Keep, Shadowed, Keep, Shadowed, Keep, Shadowed, Keep]
        );
    }

    #[test]
    fn tombstones_go_only_at_the_bottom_and_below_every_snapshot() {
        use Verdict::*;
        let versions = [
            ("a", 8, Delete),
            ("a", 3, Put),
            ("b", 2, Delete),
            ("c", 9, Put),
        ];
        let mut bottom_no_snap = VersionFilter::new(SeqNo::MAX, &[], true);
        assert_eq!(
            run(&mut bottom_no_snap, &versions),
            vec![ObsoleteTombstone, Shadowed, ObsoleteTombstone, Keep]
        );
        let mut not_bottom = VersionFilter::new(SeqNo::MAX, &[], false);
        assert_eq!(
            run(&mut not_bottom, &versions),
            vec![Keep, Shadowed, Keep, Keep]
        );
        // A snapshot at 5 still sees a@3 under the tombstone a@8.
        let mut snap5 = VersionFilter::new(5, &[5], true);
        assert_eq!(
            run(&mut snap5, &versions),
            vec![Keep, Keep, ObsoleteTombstone, Keep]
        );
    }
}
