//! Fuzz target: see `targets::protocol`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::protocol(data));
