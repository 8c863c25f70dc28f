//! Reading a hostile remote is bounded: files of a store that are not what they claim are
//! refused before they are read (a sparse 3 GB object, a link to /dev/zero).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use remotelog::log::{self, SettingsChange};
use remotelog::FsStore;

mod common;
use common::{fails_with, msgs, store, text};

/// Address space a child may use in the memory-bound tests: enough for remotelog's
/// threads and allocator arenas, far less than the 3 GB file or an endless stream that
/// reading whole would take.
const AS_LIMIT_KIB: u64 = 2 << 20;

/// `remotelog --store STORE ARGS...` under an address-space limit of [`AS_LIMIT_KIB`],
/// with `env`; returns its output and how long it ran.
fn run_limited(store: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {AS_LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_remotelog"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("REMOTELOG_STORE")
        .env_remove("REMOTELOG_TOKEN")
        .env_remove("REMOTELOG_TOKEN_FILE")
        .env_remove("REMOTELOG_HTTP_TIMEOUT")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let out = c.output().unwrap();
    (out, start.elapsed())
}

/// A store at `dir` with log "main" of 5 loose messages; returns the store and the path
/// of the object file of its newest message.
fn small_store(dir: &Path) -> (FsStore, PathBuf) {
    let s = store(dir);
    log::append(&s, "main", &msgs("m", 5), SettingsChange::default()).unwrap();
    let newest = log::entries(&s, "main").unwrap().last().unwrap().h2;
    let path = s.object_path(&newest);
    assert!(
        path.is_file(),
        "expected a loose object at {}",
        path.display()
    );
    (s, path)
}

/// Replaces the object file at `path` by hostile content: a sparse file of 3 GB, or a
/// symbolic link to /dev/zero.
fn plant(path: &Path, sparse: bool) {
    fs::remove_file(path).unwrap();
    if sparse {
        fs::File::create(path).unwrap().set_len(3 << 30).unwrap();
    } else {
        symlink("/dev/zero", path).unwrap();
    }
}

/// Clone and `check --read-data` of a store holding a hostile object file refuse it,
/// naming the file and saying what it is, quickly and within the memory limit.
fn hostile_object_is_refused(sparse: bool, says: &str) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (_, obj) = small_store(&src);
    plant(&obj, sparse);
    let shown = obj.display().to_string();

    let dest = t.path().join("dest");
    let dest_arg = dest.to_str().unwrap();
    let (o, took) = run_limited(&src, &["clone", src.to_str().unwrap(), dest_arg], &[]);
    fails_with(&o, &[&shown, says]);
    assert!(took < Duration::from_secs(20), "clone took {took:?}");
    assert!(!dest.exists(), "a failed clone leaves nothing behind");

    let (o, took) = run_limited(&src, &["check", "--read-data"], &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "check should fail:\n{all}");
    assert!(all.contains(&shown) && all.contains(says), "{all}");
    assert!(
        !all.contains("panicked") && !all.contains("memory allocation"),
        "{all}"
    );
    assert!(took < Duration::from_secs(20), "check took {took:?}");
}

#[test]
fn a_sparse_3gb_object_file_is_refused_by_size_before_it_is_read() {
    hostile_object_is_refused(true, "more than an object file may hold");
}

#[test]
fn an_object_that_is_a_link_to_dev_zero_is_refused_without_reading_it() {
    hostile_object_is_refused(false, "a symbolic link, not a regular file");
}
