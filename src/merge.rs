//! Merging sorted sources: [`MergingIter`] (every entry, k-way) and
//! [`UserIter`] (what a reader at a snapshot sees).
//!
//! `MergingIter` merges any number of [`EntryIter`]s with a binary min-heap
//! of source indices ordered by (current internal key, source index).
//! Sources are given newest first (memtable, immutable memtables, L0 newest
//! to oldest, then L1..Ln), so among equal internal keys the earliest
//! source wins; an internal key present in several sources (the same write
//! seen twice, e.g. in a memtable and the table it was flushed to) is
//! yielded once, from the earliest source. The output is therefore
//! strictly increasing, which is what a table builder needs. Each step
//! costs O(log k) key comparisons.
//!
//! `UserIter` sits on top of a merged stream and yields, for each user key,
//! only the newest version with sequence <= the snapshot, and only if that
//! version is a put (tombstones hide older versions and are not yielded),
//! stopping before an optional exclusive end key. This is `Db::scan`.
//!
//! Both are single-threaded cursors (`Send`, not shared). An error from a
//! source invalidates the merged cursor and is returned by the call that
//! hit it.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::iter::EntryIter;
use crate::types::{
    compare_internal_keys, split_internal_key, user_key, SeqNo, ValueKind, SEQ_MAX,
};

/// A k-way merge of sorted sources into one sorted stream.
pub struct MergingIter {
    sources: Vec<Box<dyn EntryIter>>,
    /// Indices of the valid sources, as a min-heap.
    heap: Vec<usize>,
}

impl std::fmt::Debug for MergingIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergingIter")
            .field("sources", &self.sources.len())
            .field("live", &self.heap.len())
            .finish()
    }
}

impl MergingIter {
    /// A merge of `sources`, newest first. Not positioned until a seek.
    pub fn new(sources: Vec<Box<dyn EntryIter>>) -> Self {
        let heap = Vec::with_capacity(sources.len());
        MergingIter { sources, heap }
    }

    /// The number of sources.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Whether source `a`'s entry comes before source `b`'s.
    fn less(&self, a: usize, b: usize) -> bool {
        match compare_internal_keys(self.sources[a].key(), self.sources[b].key()) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let Some(child) = self.min_child(pos) else {
                return;
            };
            if !self.less(self.heap[child], self.heap[pos]) {
                return;
            }
            self.heap.swap(pos, child);
            pos = child;
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.less(self.heap[pos], self.heap[parent]) {
                return;
            }
            self.heap.swap(pos, parent);
            pos = parent;
        }
    }

    /// The heap position of the smaller child of `pos`, if any.
    fn min_child(&self, pos: usize) -> Option<usize> {
        let left = 2 * pos + 1;
        let right = left + 1;
        if left >= self.heap.len() {
            None
        } else if right < self.heap.len() && self.less(self.heap[right], self.heap[left]) {
            Some(right)
        } else {
            Some(left)
        }
    }

    fn remove_at(&mut self, pos: usize) {
        let Some(last) = self.heap.pop() else {
            return;
        };
        if pos < self.heap.len() {
            self.heap[pos] = last;
            self.sift_down(pos);
            self.sift_up(pos);
        }
    }

    /// Advances the source at heap position `pos` and restores the heap.
    fn advance_at(&mut self, pos: usize) -> Result<()> {
        let s = self.heap[pos];
        self.sources[s].next()?;
        if self.sources[s].valid() {
            self.sift_down(pos);
        } else {
            self.remove_at(pos);
        }
        Ok(())
    }

    fn rebuild(&mut self) {
        self.heap.clear();
        self.heap
            .extend((0..self.sources.len()).filter(|&i| self.sources[i].valid()));
        for pos in (0..self.heap.len() / 2).rev() {
            self.sift_down(pos);
        }
    }

    fn position(&mut self, mut op: impl FnMut(&mut dyn EntryIter) -> Result<()>) -> Result<()> {
        self.heap.clear();
        for s in &mut self.sources {
            op(s.as_mut())?;
        }
        self.rebuild();
        Ok(())
    }

    fn next_inner(&mut self) -> Result<()> {
        let Some(&top) = self.heap.first() else {
            return Ok(());
        };
        // Later sources holding the very same internal key: skip them.
        while let Some(child) = self.min_child(0) {
            let same = self.sources[self.heap[child]].key() == self.sources[top].key();
            if !same {
                break;
            }
            self.advance_at(child)?;
        }
        self.advance_at(0)
    }
}

impl EntryIter for MergingIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = self.position(|s| s.seek(target));
        settle(&mut self.heap, r)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let r = self.position(|s| s.seek_to_first());
        settle(&mut self.heap, r)
    }

    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn key(&self) -> &[u8] {
        self.heap.first().map_or(&[], |&s| self.sources[s].key())
    }

    fn value(&self) -> &[u8] {
        self.heap.first().map_or(&[], |&s| self.sources[s].value())
    }

    fn next(&mut self) -> Result<()> {
        let r = self.next_inner();
        settle(&mut self.heap, r)
    }
}

fn settle(heap: &mut Vec<usize>, r: Result<()>) -> Result<()> {
    if r.is_err() {
        heap.clear();
    }
    r
}

/// The visible newest version of each user key at a snapshot, without
/// tombstones, up to an optional exclusive end key.
///
/// As an [`EntryIter`], `key()` is the internal key of the visible version
/// and `seek(target)` uses only the user-key part of `target` (it positions
/// at the first visible user key >= it).
#[derive(Debug)]
pub struct UserIter<I = MergingIter> {
    inner: I,
    snapshot_seq: SeqNo,
    end: Option<Vec<u8>>,
    valid: bool,
    /// The user key just yielded or deleted: its older versions are skipped.
    skip: Vec<u8>,
}

impl<I: EntryIter> UserIter<I> {
    /// Reads `inner` at `snapshot_seq`, stopping before user key `end`.
    pub fn new(inner: I, snapshot_seq: SeqNo, end: Option<Vec<u8>>) -> Self {
        UserIter {
            inner,
            snapshot_seq: snapshot_seq.min(SEQ_MAX),
            end,
            valid: false,
            skip: Vec::new(),
        }
    }

    /// Positions at the first visible user key >= `start`.
    pub fn seek_to_user_key(&mut self, start: &[u8]) -> Result<()> {
        let mut target = Vec::with_capacity(start.len() + 8);
        target.extend_from_slice(start);
        target.extend_from_slice(&((self.snapshot_seq << 8) | 0xff).to_be_bytes());
        let r = self.inner.seek(&target);
        self.after(r, false)
    }

    /// The current user key. Only meaningful when `valid()`.
    pub fn user_key(&self) -> &[u8] {
        user_key(self.inner.key())
    }

    /// The merged source.
    pub fn into_inner(self) -> I {
        self.inner
    }

    fn after(&mut self, r: Result<()>, skipping: bool) -> Result<()> {
        let r = r.and_then(|()| self.find_visible(skipping));
        if r.is_err() {
            self.valid = false;
        }
        r
    }

    /// Moves forward to the next visible put, skipping versions of
    /// `self.skip` when `skipping`.
    fn find_visible(&mut self, mut skipping: bool) -> Result<()> {
        loop {
            if !self.inner.valid() {
                self.valid = false;
                return Ok(());
            }
            let key = self.inner.key();
            let Some((user, seq, kind)) = split_internal_key(key) else {
                self.valid = false;
                return Err(Error::InvalidArgument(format!(
                    "merged source yielded a malformed internal key of {} bytes",
                    key.len()
                )));
            };
            if self.end.as_deref().is_some_and(|end| user >= end) {
                self.valid = false;
                return Ok(());
            }
            if seq <= self.snapshot_seq && !(skipping && user == self.skip.as_slice()) {
                self.skip.clear();
                self.skip.extend_from_slice(user);
                if kind == ValueKind::Put {
                    self.valid = true;
                    return Ok(());
                }
                skipping = true;
            }
            self.inner.next()?;
        }
    }
}

impl<I: EntryIter> EntryIter for UserIter<I> {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let start = user_key(target).to_vec();
        self.seek_to_user_key(&start)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let r = self.inner.seek_to_first();
        self.after(r, false)
    }

    fn valid(&self) -> bool {
        self.valid
    }

    fn key(&self) -> &[u8] {
        self.inner.key()
    }

    fn value(&self) -> &[u8] {
        self.inner.value()
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        let r = self.inner.next();
        self.after(r, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::internal_key;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A sorted in-memory source.
    struct VecIter {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        pos: usize,
    }

    impl VecIter {
        fn boxed(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Box<dyn EntryIter> {
            entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
            let pos = entries.len();
            Box::new(VecIter { entries, pos })
        }
    }

    impl EntryIter for VecIter {
        fn seek(&mut self, target: &[u8]) -> Result<()> {
            self.pos = self
                .entries
                .partition_point(|e| compare_internal_keys(&e.0, target) == Ordering::Less);
            Ok(())
        }
        fn seek_to_first(&mut self) -> Result<()> {
            self.pos = 0;
            Ok(())
        }
        fn valid(&self) -> bool {
            self.pos < self.entries.len()
        }
        fn key(&self) -> &[u8] {
            &self.entries[self.pos].0
        }
        fn value(&self) -> &[u8] {
            &self.entries[self.pos].1
        }
        fn next(&mut self) -> Result<()> {
            self.pos += 1;
            Ok(())
        }
    }

    fn drain(it: &mut dyn EntryIter) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next().unwrap();
        }
        out
    }

    fn put(k: &str, seq: u64, v: &str) -> (Vec<u8>, Vec<u8>) {
        (
            internal_key(k.as_bytes(), seq, ValueKind::Put),
            v.as_bytes().to_vec(),
        )
    }

    fn del(k: &str, seq: u64) -> (Vec<u8>, Vec<u8>) {
        (
            internal_key(k.as_bytes(), seq, ValueKind::Delete),
            Vec::new(),
        )
    }

    #[test]
    fn merges_in_order_and_prefers_earlier_sources() {
        let newest = VecIter::boxed(vec![put("b", 9, "b9"), put("a", 5, "new")]);
        let older = VecIter::boxed(vec![put("a", 5, "old"), put("a", 3, "a3"), del("c", 4)]);
        let empty = VecIter::boxed(vec![]);
        let mut m = MergingIter::new(vec![newest, empty, older]);
        m.seek_to_first().unwrap();
        let got = drain(&mut m);
        assert_eq!(
            got,
            vec![
                put("a", 5, "new"),
                put("a", 3, "a3"),
                put("b", 9, "b9"),
                del("c", 4)
            ]
        );
        m.seek(&internal_key(b"a", 4, ValueKind::Put)).unwrap();
        assert_eq!(m.key(), &put("a", 3, "").0[..]);
        m.seek(b"zzzzzzzzzz").unwrap();
        assert!(!m.valid());
        m.next().unwrap();
    }

    #[test]
    fn user_iter_hides_tombstones_and_newer_versions() {
        let collect = |snap: u64, end: Option<&str>, start: Option<&str>| {
            let src = VecIter::boxed(vec![
                put("a", 1, "a1"),
                put("a", 7, "a7"),
                del("b", 4),
                put("b", 2, "b2"),
                put("c", 3, "c3"),
                put("d", 1, "d1"),
            ]);
            let end = end.map(|e| e.as_bytes().to_vec());
            let mut u = UserIter::new(MergingIter::new(vec![src]), snap, end);
            match start {
                Some(s) => u.seek_to_user_key(s.as_bytes()).unwrap(),
                None => u.seek_to_first().unwrap(),
            }
            let mut out = Vec::new();
            while u.valid() {
                let k = String::from_utf8_lossy(u.user_key()).into_owned();
                out.push(format!("{k}={}", String::from_utf8_lossy(u.value())));
                u.next().unwrap();
            }
            out.join(",")
        };
        assert_eq!(collect(10, None, None), "a=a7,c=c3,d=d1");
        assert_eq!(collect(3, None, None), "a=a1,b=b2,c=c3,d=d1");
        assert_eq!(collect(0, None, None), "");
        assert_eq!(collect(10, Some("d"), None), "a=a7,c=c3");
        assert_eq!(collect(3, Some("d"), Some("b")), "b=b2,c=c3");
        assert_eq!(collect(10, None, Some("b")), "c=c3,d=d1");
    }

    #[derive(Clone, Debug)]
    struct Op {
        key: u8,
        put: bool,
        source: usize,
    }

    fn op() -> impl Strategy<Value = Op> {
        (0u8..24, prop::bool::weighted(0.75), 0usize..4).prop_map(|(key, put, source)| Op {
            key,
            put,
            source,
        })
    }

    fn ukey(k: u8) -> Vec<u8> {
        format!("k{k:02}").into_bytes()
    }

    proptest! {
        #[test]
        fn merge_and_user_iter_match_a_model(
            ops in prop::collection::vec(op(), 0..200),
            snapshot in 0u64..220,
            start in prop::option::of(0u8..26),
            end in prop::option::of(0u8..26),
        ) {
            // Entry i has sequence i + 1; sources get random subsets.
            let mut sources = vec![Vec::new(); 4];
            let mut all = Vec::new();
            for (i, o) in ops.iter().enumerate() {
                let seq = i as u64 + 1;
                let kind = if o.put { ValueKind::Put } else { ValueKind::Delete };
                let value = if o.put { format!("v{seq}").into_bytes() } else { Vec::new() };
                let e = (internal_key(&ukey(o.key), seq, kind), value);
                sources[o.source].push(e.clone());
                all.push(e);
            }
            all.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
            let boxed = || sources.iter().cloned().map(VecIter::boxed).collect::<Vec<_>>();

            let mut m = MergingIter::new(boxed());
            m.seek_to_first().unwrap();
            prop_assert_eq!(drain(&mut m), all.clone());
            if let Some(s) = start {
                let target = internal_key(&ukey(s), snapshot, ValueKind::Put);
                m.seek(&target).unwrap();
                let want: Vec<_> = all
                    .iter()
                    .filter(|e| compare_internal_keys(&e.0, &target) != Ordering::Less)
                    .cloned()
                    .collect();
                prop_assert_eq!(drain(&mut m), want);
            }

            // Model: newest version <= snapshot per user key, puts only.
            let mut model: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> = BTreeMap::new();
            for (i, o) in ops.iter().enumerate() {
                let seq = i as u64 + 1;
                if seq <= snapshot {
                    let v = o.put.then(|| format!("v{seq}").into_bytes());
                    model.insert(ukey(o.key), (seq, v));
                }
            }
            let lo = start.map(ukey).unwrap_or_default();
            let hi = end.map(ukey);
            let want: Vec<(Vec<u8>, Vec<u8>)> = model
                .into_iter()
                .filter(|(k, _)| *k >= lo && hi.as_ref().is_none_or(|h| k < h))
                .filter_map(|(k, (_, v))| v.map(|v| (k, v)))
                .collect();
            let mut u = UserIter::new(MergingIter::new(boxed()), snapshot, hi.clone());
            match start {
                Some(_) => u.seek_to_user_key(&lo).unwrap(),
                None => u.seek_to_first().unwrap(),
            }
            let mut got = Vec::new();
            while u.valid() {
                got.push((u.user_key().to_vec(), u.value().to_vec()));
                u.next().unwrap();
            }
            prop_assert_eq!(got, want);
        }
    }
}
