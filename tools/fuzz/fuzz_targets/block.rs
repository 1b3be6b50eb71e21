//! Fuzz target: see `targets::block`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::block(data));
