//! The block cache: decoded blocks shared by every open table, bounded in
//! bytes.
//!
//! Keys are (table id, block offset); values are `Arc<Block>`, so a block
//! evicted while an iterator holds it stays alive until the iterator lets
//! go. Each block is charged its decoded size plus a fixed overhead.
//!
//! The cache is `quick_cache::sync::Cache`: sharded, lock-light, with a
//! CLOCK-Pro-style policy (close to S3-FIFO) that keeps LRU's "recently
//! used stays" behaviour but is not flushed by one long scan. Safe to use
//! from any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::metrics::{Counter, MetricsSnapshot};
use crate::sstable::block::Block;

/// Bytes charged per cached block on top of its payload.
const ENTRY_OVERHEAD_BYTES: u64 = 96;
/// Typical block size, for sizing the cache's tables.
const TYPICAL_BLOCK_BYTES: u64 = 4096;

type Key = (u64, u64);

#[derive(Clone, Debug)]
struct ByBytes;

impl Weighter<Key, Arc<Block>> for ByBytes {
    fn weight(&self, _key: &Key, block: &Arc<Block>) -> u64 {
        block.size_bytes() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

#[derive(Clone, Debug, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<Key, Arc<Block>> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), _key: Key, _block: Arc<Block>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// An LRU-like block cache bounded in bytes, shared by all tables.
pub struct BlockCache {
    cache: Cache<Key, Arc<Block>, ByBytes, DefaultHashBuilder, CountEvictions>,
    capacity_bytes: u64,
    hits: Counter,
    misses: Counter,
    evictions: Arc<AtomicU64>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("usage_bytes", &self.usage_bytes())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` of blocks (at least one
    /// typical block).
    pub fn new(capacity_bytes: u64) -> Self {
        let capacity_bytes = capacity_bytes.max(TYPICAL_BLOCK_BYTES + ENTRY_OVERHEAD_BYTES);
        let items = (capacity_bytes / TYPICAL_BLOCK_BYTES).clamp(1, 1 << 24) as usize;
        let lifecycle = CountEvictions::default();
        let evictions = Arc::clone(&lifecycle.0);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(capacity_bytes)
            .build();
        let cache = match options {
            Ok(o) => Cache::with_options(o, ByBytes, DefaultHashBuilder::default(), lifecycle),
            // Both fields are set above, so building cannot fail; fall back
            // to the plain constructor anyway rather than panic.
            Err(_) => Cache::with(
                items,
                capacity_bytes,
                ByBytes,
                DefaultHashBuilder::default(),
                lifecycle,
            ),
        };
        BlockCache {
            cache,
            capacity_bytes,
            hits: Counter::default(),
            misses: Counter::default(),
            evictions,
        }
    }

    /// The cached block at `offset` of table `table_id`, counting a hit or
    /// a miss.
    pub(crate) fn get(&self, table_id: u64, offset: u64) -> Option<Arc<Block>> {
        let found = self.cache.get(&(table_id, offset));
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    /// Caches a block.
    pub(crate) fn insert(&self, table_id: u64, offset: u64, block: Arc<Block>) {
        self.cache.insert((table_id, offset), block);
    }

    /// Drops every block of a table (after the table file is deleted).
    /// Costs a pass over the cache.
    pub fn forget_table(&self, table_id: u64) {
        self.cache.retain(|&(id, _), _| id != table_id);
    }

    /// Bytes currently charged.
    pub fn usage_bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// The bound in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Blocks currently cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no block is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.misses.get()
    }

    /// Blocks evicted to stay within the bound.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Adds `block_cache.*` metrics to a snapshot.
    pub fn report(&self, snapshot: &mut MetricsSnapshot) {
        snapshot.counter("block_cache.hits", self.hits());
        snapshot.counter("block_cache.misses", self.misses());
        snapshot.counter("block_cache.evictions", self.evictions());
        snapshot.gauge("block_cache.blocks", self.len() as f64);
        snapshot.gauge("block_cache.usage_bytes", self.usage_bytes() as f64);
        snapshot.gauge("block_cache.capacity_bytes", self.capacity_bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricValue;
    use crate::sstable::block::BlockBuilder;
    use crate::types::{internal_key, ValueKind};
    use std::path::Path;

    fn block(value_len: usize) -> Arc<Block> {
        let mut b = BlockBuilder::new(16);
        b.add(
            &internal_key(b"k", 1, ValueKind::Put),
            &vec![7u8; value_len],
        )
        .unwrap();
        let data = b.finish().to_vec();
        Arc::new(Block::decode(data, Arc::from(Path::new("t")), 0).unwrap())
    }

    #[test]
    fn bounded_in_bytes_and_counted() {
        let cache = BlockCache::new(64 * 1024);
        assert!(cache.get(1, 0).is_none());
        for i in 0..200u64 {
            cache.insert(1, i * 4096, block(4000));
            assert!(cache.usage_bytes() <= cache.capacity_bytes());
        }
        assert!(cache.evictions() > 0);
        assert!(cache.len() < 200);
        let last = 199 * 4096;
        assert!(cache.get(1, last).is_some());
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        cache.forget_table(1);
        assert!(cache.is_empty());
        let mut snap = MetricsSnapshot::default();
        cache.report(&mut snap);
        assert_eq!(snap.get("block_cache.hits"), Some(&MetricValue::Counter(1)));
        assert!(snap.get("block_cache.evictions").is_some());
    }
}
