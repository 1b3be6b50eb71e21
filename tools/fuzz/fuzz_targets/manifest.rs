//! Fuzz target: see `targets::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::manifest(data));
