//! CityHall: a crash-proof key-value and time-series store.
//!
//! The engine is a log-structured merge tree; [`Db`] is its entry point.

pub mod agent;
pub mod batch;
pub mod check;
pub mod client;
pub mod compaction;
pub mod db;
pub mod error;
pub mod io;
pub mod iter;
pub mod manifest;
pub mod memtable;
pub mod merge;
pub mod metrics;
pub mod options;
pub mod protocol;
pub mod server;
pub mod sstable;
pub mod ts;
pub mod types;
pub mod varint;
pub mod wal;

pub use batch::WriteBatch;
pub use db::{Db, Snapshot, WriteFuture};
pub use error::{Error, Result};
pub use options::{Durability, Options};
