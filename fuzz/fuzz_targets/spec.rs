//! libFuzzer entry point of the `spec` target; the body is in `src/targets/spec.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::spec::run(data));
