//! A full disk: the write fails with an error that says so, nothing half-written becomes
//! visible, and the store (local or remote) still passes `check`. Uses a small tmpfs, so it
//! needs root (as on CI); elsewhere it says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::run;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Incompressible bodies, `n` files of `size` bytes.
fn noise(dir: &Path, n: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = seed | 1;
    for i in 0..n {
        let body: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("{i:05}")), body).unwrap();
    }
}

fn log_lines(store: &Path) -> usize {
    let out = run(store, &["log"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.iter().filter(|b| **b == b'\n').count()
}

fn assert_sound(store: &Path) {
    let out = run(store, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "check failed after a full disk: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let leftovers = walkdir::WalkDir::new(store)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .count();
    assert_eq!(leftovers, 0, "temporary files were left behind");
}

#[test]
fn a_full_disk_refuses_the_write_and_keeps_the_store_sound() {
    let Some(fs) = Tmpfs::mount("3m") else {
        eprintln!("diskfull: skipped, cannot mount a tmpfs here (needs root)");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let store = fs.0.join("store");
    assert!(run(&store, &["init"]).status.success());
    let small = t.path().join("small");
    noise(&small, 3, 1000, 1);
    assert!(run(
        &store,
        &["append", "--group", "g", "--dir", small.to_str().unwrap()]
    )
    .status
    .success());

    // Local: a bulk append that cannot fit.
    let big = t.path().join("big");
    noise(&big, 400, 10_000, 2);
    let out = run(
        &store,
        &["append", "--group", "g", "--dir", big.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("free some space"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(log_lines(&store), 3, "all or nothing");
    assert_sound(&store);

    // Remote: a push that cannot fit leaves the remote as it was.
    let local = t.path().join("local");
    assert!(run(&local, &["init"]).status.success());
    assert!(run(
        &local,
        &["append", "--group", "g", "--dir", small.to_str().unwrap()]
    )
    .status
    .success());
    let remote = fs.0.join("remote");
    assert!(run(
        &local,
        &["remote", "add", "origin", remote.to_str().unwrap()]
    )
    .status
    .success());
    std::fs::remove_dir_all(&store).unwrap();
    assert!(run(&local, &["push"]).status.success());
    assert!(run(
        &local,
        &["append", "--group", "g", "--dir", big.to_str().unwrap()]
    )
    .status
    .success());
    let out = run(&local, &["push"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("free some space"));
    assert_eq!(log_lines(&remote), 3);
    assert_sound(&remote);
}
