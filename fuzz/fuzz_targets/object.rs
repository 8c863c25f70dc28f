//! libFuzzer entry point of the `object` target; the body is in `src/targets/object.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remotelog_fuzz::targets::object::run(data));
