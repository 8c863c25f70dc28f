//! The store survives `kill -9` during a large append: after every kill `check` passes and
//! the log holds either all of that call's messages or none of them.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{bin, run, text, Rng};

const FILES: usize = 3000;

/// Entries of log "main" according to `remotelog logs --json` (0 when there is no log).
fn count(store: &Path) -> u64 {
    let o = run(store, &["logs", "--json"]);
    assert!(o.status.success(), "logs failed: {}", text(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == "main")
        .map_or(0, |v| v["entries"].as_u64().unwrap())
}

#[track_caller]
fn check(store: &Path, args: &[&str], context: &str) {
    let o = run(store, args);
    assert!(
        o.status.success(),
        "{context}: `remotelog {}` failed:\n{}",
        args.join(" "),
        text(&o)
    );
}

#[test]
fn store_survives_kill_9_during_append() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = bin().arg("init").arg(&store).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // ~3000 small files of word-like text, in a few sub-folders.
    let inbox = dir.path().join("inbox");
    let words = [
        "mvds", "sync", "group", "node", "peer", "ack", "offer", "request", "log",
    ];
    for i in 0..FILES {
        let sub = inbox.join(format!("{:02}", i % 16));
        if i < 16 {
            fs::create_dir_all(&sub).unwrap();
        }
        let n = 20 + (i * 37) % 60;
        let body: Vec<&str> = (0..n)
            .map(|j| words[(i * 7 + j * 3) % words.len()])
            .collect();
        fs::write(
            sub.join(format!("{i:05}.txt")),
            format!("{i}: {}", body.join(" ")),
        )
        .unwrap();
    }
    let inbox_arg = inbox.to_str().unwrap().to_string();

    let seed = std::env::var("REMOTELOG_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill9: seed {seed} (set REMOTELOG_KILL9_SEED={seed} to replay)");
    let mut rng = Rng(seed);

    let spawn = |ts: usize| {
        bin()
            .arg("--store")
            .arg(&store)
            .args(["append", "--group", "kill9", "--timestamp", &ts.to_string()])
            .args(["--dir", &inbox_arg])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // A first append that runs to completion tells how long a whole append takes here.
    let t0 = Instant::now();
    let o = spawn(0).wait_with_output().unwrap();
    let full = t0.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    let mut expected = FILES as u64;
    assert_eq!(count(&store), expected);
    check(&store, &["check"], "after the first append");
    eprintln!("kill9: one append of {FILES} messages takes {full:?}");

    // Kill points spread over the whole append (as fractions of its duration, with jitter),
    // from right after the start to past the end so that some appends complete.
    const KILLS: usize = 12;
    let mut outcomes = Vec::new();
    for iter in 0..KILLS {
        let ts = iter + 1;
        let base = 1.2 * iter as f64 / (KILLS - 1) as f64;
        let frac = (base + (rng.unit() - 0.5) * 0.1).max(0.0);
        let delay = full.mul_f64(frac);
        let mut child = spawn(ts);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; harmless if it already exited
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let context = format!("iteration {iter} (seed {seed}, killed after {delay:?})");
        if status.success() {
            assert!(
                !err.contains("panicked") && !err.contains("error"),
                "{context}: {err}"
            );
        }

        check(&store, &["check"], &context);
        let now = count(&store);
        assert!(
            now == expected || now == expected + FILES as u64,
            "{context}: log has {now} entries, expected {expected} or {}",
            expected + FILES as u64
        );
        if status.success() {
            assert_eq!(
                now,
                expected + FILES as u64,
                "{context}: completed but not visible"
            );
        }
        let outcome = if now == expected { "none" } else { "all" };
        outcomes.push(format!(
            "{delay:?}:{}:{outcome}",
            if status.success() { "done" } else { "killed" }
        ));
        expected = now;
    }
    eprintln!("kill9: {}", outcomes.join(" "));

    // One more append after all that works, clearing any lock a kill left behind.
    let o = spawn(100).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    expected += FILES as u64;
    assert_eq!(count(&store), expected);
    assert!(
        !walkdir::WalkDir::new(store.join("refs"))
            .into_iter()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".lock")),
        "a lock is left after a successful append"
    );
    check(&store, &["check", "--read-data"], "at the end");
    // Every message in the log is readable and counted once.
    let o = run(&store, &["log"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        o.stdout.iter().filter(|b| **b == b'\n').count() as u64,
        expected
    );
    eprintln!("kill9: total {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the kill test is far too slow"
    );
}
