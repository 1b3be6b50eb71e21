//! CityHall's fuzz targets. The bodies live in `targets.rs`, which
//! `tests/fuzz_props.rs` also includes, so the libFuzzer targets here and
//! the proptest versions in CI check the same properties.
//!
//! ```text
//! # valid inputs of every target into tools/fuzz/corpus/<target>/
//! cargo test --test fuzz_props -- --ignored write_seed_corpus
//! cd tools/fuzz
//! cargo +nightly fuzz run --fuzz-dir . -s none wal corpus/wal -- -runs=10000000
//! ```

pub mod targets;
