//! Fuzz target: see `targets::table`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cityhall_fuzz::targets::table(data));
