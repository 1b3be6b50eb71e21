//! Fuzz target: see `targets::wal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::wal(data));
