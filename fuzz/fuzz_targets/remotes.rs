//! libFuzzer entry point of the `remotes` target; the body is in `src/targets/remotes.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::remotes::run(data));
