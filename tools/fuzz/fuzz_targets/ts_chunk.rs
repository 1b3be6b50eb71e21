//! Fuzz target: see `targets::ts_chunk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::ts_chunk(data));
