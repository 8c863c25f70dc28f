//! libFuzzer entry point of the `names` target; the body is in `src/targets/names.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::names::run(data));
