//! The roles of the original sketch, played by the scripts in `examples/`: one sending node
//! and two receiving nodes around a shared directory remote. Every receiver must end with
//! the sender's log.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(common::examples().join(name));
    c.env("REMOTELOG", env!("CARGO_BIN_EXE_remotelog"));
    c
}

fn log_json(store: &Path) -> String {
    common::ok(store, &["log", "--json"])
}

#[test]
fn sender_and_two_receivers_agree() {
    let t = tempfile::tempdir().unwrap();
    let remote = t.path().join("remote");
    let sender = t.path().join("alice");
    let rounds = 5;
    let mut s = script("sender.sh")
        .args([&sender, &remote])
        .args([rounds.to_string(), "0.2".into()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let receivers: Vec<_> = ["bob", "carol"]
        .iter()
        .map(|n| {
            script("receiver.sh")
                .args([&t.path().join(n), &remote])
                .args(["8", "0.15"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    assert!(s.wait().unwrap().success(), "sender failed");
    let mut printed = String::new();
    for r in receivers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "receiver failed");
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let want = log_json(&sender);
    assert_eq!(want.lines().count(), rounds);
    for n in ["bob", "carol"] {
        // One last round, after the sender is done, catches up whatever the loop missed.
        let out = script("receiver.sh")
            .args([&t.path().join(n), &remote])
            .args(["1", "0"])
            .output()
            .unwrap();
        assert!(out.status.success());
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            log_json(&t.path().join(n)),
            want,
            "{n} differs from the sender"
        );
    }
    assert!(
        printed.contains("new "),
        "receivers printed nothing: {printed}"
    );
}

/// The same roles against `remotelog serve --mock` with a profile whose names propagate
/// late and are read stale: the receivers fall behind for a while (the scripts say when
/// the remote is not there yet), and end with the sender's log once the delays are over.
#[test]
fn sender_and_two_receivers_agree_over_serve_mock() {
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    remotelog::FsStore::init(&srv_dir, Default::default()).unwrap();
    let profile = t.path().join("late.toml");
    std::fs::write(
        &profile,
        "name = \"late\"\n[cas]\nget = { latency = 0.02 }\nvisibility = 0.5\n\
         [ns]\nfetch = { latency = 0.05 }\npropagation = 0.5\nstale_ttl = 1\n",
    )
    .unwrap();
    let srv = common::MockServer::start(&srv_dir, profile.to_str().unwrap(), 1, &[]);
    let sender = t.path().join("alice");
    let rounds = 3;
    let s = script("sender.sh")
        .args([&sender])
        .args([&srv.url, &rounds.to_string(), "0.3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let receivers: Vec<_> = ["bob", "carol"]
        .iter()
        .map(|n| {
            script("receiver.sh")
                .args([&t.path().join(n)])
                .args([&srv.url, "5", "0.3"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let out = s.wait_with_output().unwrap();
    assert!(out.status.success(), "sender failed");
    let sent = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(sent.contains("sender: published round 1"), "{sent}");
    let mut printed = String::new();
    for r in receivers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "receiver failed");
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    // Past the propagation delay and the stale TTL, one more round catches up.
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let want = log_json(&sender);
    assert_eq!(want.lines().count(), rounds);
    for n in ["bob", "carol"] {
        let out = script("receiver.sh")
            .args([&t.path().join(n)])
            .args([&srv.url, "1", "0"])
            .output()
            .unwrap();
        assert!(out.status.success());
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            log_json(&t.path().join(n)),
            want,
            "{n} differs from the sender"
        );
    }
    assert!(
        printed.contains("new "),
        "receivers printed nothing: {printed}"
    );
    let log = srv.log();
    for actor in ["actor:alice", "actor:bob", "actor:carol"] {
        assert!(log.contains(actor), "{actor} not in the request log: {log}");
    }
}
