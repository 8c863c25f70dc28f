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
