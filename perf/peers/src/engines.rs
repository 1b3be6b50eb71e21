//! [`Store`]: the five operations a workload needs, over RocksDB and over
//! fjall, each opened with the settings perf/engine-vs-peers.sh states.
//!
//! | setting        | CityHall (Options::default)   | RocksDB here                   | fjall here                 |
//! |----------------|-------------------------------|--------------------------------|----------------------------|
//! | block cache    | 256 MiB of decoded blocks     | 256 MiB LRU (`--cache-mb`)     | its default, 32 MiB        |
//! | filter         | xor filter, ~9 bits/key       | full Bloom filter, 10 bits/key | its default                |
//! | compression    | Snappy per 4 KiB block        | Snappy (RocksDB's default)     | its default, LZ4           |
//! | memtable       | 64 MiB                        | 64 MiB (RocksDB's default)     | its default                |
//! | durable write  | group synced before ack       | `WriteOptions::set_sync(true)` | insert, then `persist(SyncData)` |
//! | non-durable    | relaxed: log synced each 1 s  | WAL written, never synced      | journal written, never synced |
//!
//! Everything not named is the engine's default. Reads are issued as each
//! engine's ordinary fast path: RocksDB `get_pinned` (no copy of the
//! value), fjall `Keyspace::get` (a shared slice). Scans copy every pair
//! into owned vectors, as `cityhall::Db::scan` returns them, and read
//! `limit + 1` pairs as cityhall-loadgen's embedded session does.
//!
//! A store is shared by all threads of a run (`&self` methods; both
//! engines are internally synchronized).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, WriteOptions, DB};

use crate::cli::{Config, EngineKind};

/// RocksDB's block cache when `--cache-mb` is not given: CityHall's.
pub const ROCKSDB_CACHE_MB_DEFAULT: u64 = 256;
/// Bloom filter bits per key for RocksDB.
pub const ROCKSDB_BLOOM_BITS_PER_KEY: f64 = 10.0;

/// What one workload operation needs from an engine.
pub trait Store: Sync {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String>;
    /// The length of the value found, if any.
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String>;
    fn delete(&self, key: &[u8]) -> Result<(), String>;
    /// Up to `limit` pairs from `start` on, copied out.
    fn scan(&self, start: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String>;
    /// One line: the engine and the settings it was opened with.
    fn describe(&self) -> String;
}

/// Opens the engine `cfg` names in `cfg.db`.
pub fn open(cfg: &Config) -> Result<Box<dyn Store>, String> {
    std::fs::create_dir_all(&cfg.db)
        .map_err(|e| format!("cannot create {}: {e}", cfg.db.display()))?;
    match cfg.engine {
        EngineKind::Rocksdb => Ok(Box::new(Rocks::open(&cfg.db, cfg.sync, cfg.cache_mb)?)),
        EngineKind::Fjall => Ok(Box::new(Fjall::open(&cfg.db, cfg.sync, cfg.cache_mb)?)),
    }
}

/// RocksDB through the `rocksdb` crate (RocksDB built from source, release).
pub struct Rocks {
    db: DB,
    write: WriteOptions,
    cache_mb: u64,
    sync: bool,
}

impl Rocks {
    fn open(dir: &Path, sync: bool, cache_mb: Option<u64>) -> Result<Rocks, String> {
        let cache_mb = cache_mb.unwrap_or(ROCKSDB_CACHE_MB_DEFAULT);
        let cache = Cache::new_lru_cache((cache_mb << 20) as usize);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(ROCKSDB_BLOOM_BITS_PER_KEY, false);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(DBCompressionType::Snappy);
        opts.set_block_based_table_factory(&table);
        let db =
            DB::open(&opts, dir).map_err(|e| format!("rocksdb open {}: {e}", dir.display()))?;
        let mut write = WriteOptions::default();
        write.set_sync(sync);
        Ok(Rocks {
            db,
            write,
            cache_mb,
            sync,
        })
    }
}

impl Store for Rocks {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.db
            .put_opt(key, value, &self.write)
            .map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        self.db
            .get_pinned(key)
            .map(|v| v.map(|v| v.len()))
            .map_err(|e| e.to_string())
    }

    fn delete(&self, key: &[u8]) -> Result<(), String> {
        self.db
            .delete_opt(key, &self.write)
            .map_err(|e| e.to_string())
    }

    fn scan(&self, start: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
        let mut it = self.db.raw_iterator();
        it.seek(start);
        let mut pairs = Vec::with_capacity(limit);
        while pairs.len() < limit {
            match (it.key(), it.value()) {
                (Some(k), Some(v)) => pairs.push((k.to_vec(), v.to_vec())),
                _ => break,
            }
            it.next();
        }
        it.status().map_err(|e| e.to_string())?;
        Ok(pairs)
    }

    fn describe(&self) -> String {
        format!(
            "RocksDB (rocksdb crate, built from source with NDEBUG): defaults + {} MiB LRU block \
             cache, full Bloom filter {} bits/key, Snappy; WriteOptions sync={}",
            self.cache_mb, ROCKSDB_BLOOM_BITS_PER_KEY, self.sync
        )
    }
}

/// fjall, one keyspace in one database.
pub struct Fjall {
    db: Database,
    ks: Keyspace,
    cache_mb: Option<u64>,
    sync: bool,
}

impl Fjall {
    fn open(dir: &Path, sync: bool, cache_mb: Option<u64>) -> Result<Fjall, String> {
        let mut builder = Database::builder(dir);
        if let Some(mb) = cache_mb {
            builder = builder.cache_size(mb << 20);
        }
        let db = builder
            .open()
            .map_err(|e| format!("fjall open {}: {e}", dir.display()))?;
        let ks = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .map_err(|e| format!("fjall keyspace: {e}"))?;
        Ok(Fjall {
            db,
            ks,
            cache_mb,
            sync,
        })
    }

    /// With `--sync`: fdatasync the journal, as PersistMode::SyncData
    /// documents (the write itself already reached the OS buffers).
    fn persist(&self) -> Result<(), String> {
        if self.sync {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Store for Fjall {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.ks.insert(key, value).map_err(|e| e.to_string())?;
        self.persist()
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        self.ks
            .get(key)
            .map(|v| v.map(|v| v.len()))
            .map_err(|e| e.to_string())
    }

    fn delete(&self, key: &[u8]) -> Result<(), String> {
        self.ks.remove(key).map_err(|e| e.to_string())?;
        self.persist()
    }

    fn scan(&self, start: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
        let mut pairs = Vec::with_capacity(limit);
        for guard in self.ks.range(start..).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| e.to_string())?;
            pairs.push((k.to_vec(), v.to_vec()));
        }
        Ok(pairs)
    }

    fn describe(&self) -> String {
        let cache = match self.cache_mb {
            Some(mb) => format!("{mb} MiB block cache"),
            None => "default 32 MiB block cache".into(),
        };
        let durability = if self.sync {
            "each write followed by persist(SyncData)"
        } else {
            "journal written to the OS, never synced"
        };
        format!("fjall: defaults ({cache}, LZ4, its bloom filters); {durability}")
    }
}
