//! CityHall's fuzz targets. The bodies live in `targets.rs`, which
//! `tests/fuzz_props.rs` also includes, so the libFuzzer targets here and
//! the proptest versions in CI check the same properties.
//!
//! ```text
//! cd tools/fuzz
//! cargo run --bin seed_corpus            # valid inputs into corpus/<target>/
//! cargo +nightly fuzz run wal -- -runs=10000000
//! ```

pub mod targets;
