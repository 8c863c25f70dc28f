//! libFuzzer entry point of the `config` target; the body is in `src/targets/config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::config::run(data));
