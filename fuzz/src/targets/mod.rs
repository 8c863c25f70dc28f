//! The fuzz targets' bodies: one `run(data: &[u8])` per target, shared by the libFuzzer
//! binaries in `fuzz/fuzz_targets/` and by the plain test `tests/fuzz_corpus.rs`, which
//! runs each one over every file of `fuzz/corpus/<target>/`.
//!
//! A target panics (an `assert!`) when a decoder breaks a promise: a panic of its own, an
//! accepted input that does not encode back to itself, a lookup that disagrees with the
//! index, an error message of more than one line.

pub mod config;
pub mod names;
pub mod object;
pub mod pack;
pub mod remotes;
pub mod server;
pub mod spec;
pub mod twirp;

/// A target's body.
pub type Run = fn(&[u8]);

/// Every target by name: the name of its fuzzer binary and of its corpus directory.
pub const ALL: &[(&str, Run)] = &[
    ("config", config::run),
    ("names", names::run),
    ("object", object::run),
    ("pack", pack::run),
    ("remotes", remotes::run),
    ("server", server::run),
    ("spec", spec::run),
    ("twirp", twirp::run),
];

/// Errors are one line (the house rule: the binary prints them on one line).
pub fn assert_one_line(what: &str, msg: impl std::fmt::Display) {
    let msg = msg.to_string();
    assert!(!msg.is_empty(), "{what}: empty error message");
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "{what}: error of more than one line: {msg:?}"
    );
}
