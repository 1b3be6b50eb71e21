//! CityHall's fuzz targets. The bodies live in `targets.rs`, which
//! `tests/fuzz_props.rs` also includes, so the libFuzzer targets here and
//! the proptest versions in CI check the same properties.
//!
//! ```text
//! cd tools/fuzz
//! cargo +nightly run --release --example seed_corpus   # valid inputs into corpus/<target>/
//! cargo +nightly fuzz run --fuzz-dir . wal corpus/wal -- -runs=10000000
//! ```

pub mod targets;
