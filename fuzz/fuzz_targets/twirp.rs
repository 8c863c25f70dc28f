//! libFuzzer entry point of the `twirp` target; the body is in `src/targets/twirp.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::twirp::run(data));
