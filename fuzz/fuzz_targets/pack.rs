//! libFuzzer entry point of the `pack` target; the body is in `src/targets/pack.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::pack::run(data));
