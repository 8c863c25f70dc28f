//! libFuzzer entry point of the `server` target; the body is in `src/targets/server.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::server::run(data));
