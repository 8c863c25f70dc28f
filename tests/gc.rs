//! gc, forget and force-with-lease: what goes, what stays, and that nothing of a forgotten
//! message is left in any file.

use std::path::Path;
use std::process::{Command, Stdio};

use remotelog::log::{self, SettingsChange};
use remotelog::pack::Pack;
use remotelog::store::config::Config;
use remotelog::{upkeep::check, FsStore, Message};

mod common;
use common::{ok, run};

fn msg(i: usize, body: &str) -> Message {
    Message {
        group_id: b"g".to_vec(),
        timestamp: i as i64,
        body: body.as_bytes().to_vec(),
    }
}

fn append(s: &FsStore, log: &str, msgs: &[Message], embed: Option<u64>) {
    let c = SettingsChange {
        capacity: Some(8),
        embed,
    };
    log::append(s, log, msgs, c).unwrap();
}

/// Every byte a store holds, with compressed content expanded: loose objects decompressed,
/// every block of every pack file decompressed, other files as they are.
fn all_plain_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let raw = std::fs::read(e.path()).unwrap();
        let name = e.path().display().to_string();
        if name.ends_with(".pack") {
            let p = Pack::parse(&raw[..]).unwrap();
            for b in 0..p.block_count() {
                out.push((
                    format!("{name} block {b}"),
                    p.decompress_block(b as u32).unwrap().to_vec(),
                ));
            }
        } else if let Ok(plain) = zstd::stream::decode_all(&raw[..]) {
            out.push((name.clone(), plain));
        }
        out.push((name, raw));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn forget_push_with_lease_and_gc_leave_no_trace() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let remote = t.path().join("remote");
    let s = FsStore::init(&a, Config::default()).unwrap();
    let secret = "the secret body nobody may keep 7d1f";
    let mut msgs: Vec<Message> = (0..150)
        .map(|i| msg(i, &format!("ordinary message {i}")))
        .collect();
    msgs[40] = msg(40, secret);
    // Bulk append (a pack), then more in small steps (loose objects), some embedded.
    append(&s, "main", &msgs[..120], Some(3));
    for m in msgs[120..].chunks(10) {
        append(&s, "main", m, None);
    }
    let secret_h1 = msgs[40].h1().to_hex();
    ok(&a, &["remote", "add", "origin", remote.to_str().unwrap()]);
    ok(&a, &["push"]);
    assert!(all_plain_bytes(&remote)
        .iter()
        .any(|(_, b)| contains(b, secret.as_bytes())));

    let out = ok(&a, &["forget", &secret_h1[..12]]);
    assert!(out.contains(&secret_h1), "{out}");
    let log_now = ok(&a, &["log", "--json"]);
    assert_eq!(log_now.lines().count(), 149);
    assert!(!log_now.contains(&secret_h1));
    // By H1 it is unknown; by H2 (its object is still stored until gc) it is "in no log".
    let err = run(&a, &["cat", &secret_h1]);
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("no message"));
    let secret_h2 =
        remotelog::Id::of(&remotelog::model::object::Object::Message(msgs[40].clone()).encode());
    let err = run(&a, &["cat", &secret_h2.to_hex()]);
    assert_eq!(err.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("in no log"),
        "{err:?}"
    );

    // A plain push refuses the rewrite; with a lease it goes.
    assert_eq!(run(&a, &["push"]).status.code(), Some(1));
    ok(&a, &["push", "--force-with-lease"]);
    ok(&a, &["gc", "--prune", "now"]);
    ok(&a, &["gc", "origin", "--prune", "now"]);
    for root in [&a, &remote] {
        for (file, bytes) in all_plain_bytes(root) {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{file} still holds the secret"
            );
        }
        ok(root, &["check", "--read-data"]);
        assert_eq!(ok(root, &["log", "--json"]), log_now);
    }
}

#[test]
fn dry_run_reports_what_the_real_run_removes() {
    let t = tempfile::tempdir().unwrap();
    let s = FsStore::init(t.path(), Config::default()).unwrap();
    let msgs: Vec<Message> = (0..300).map(|i| msg(i, &format!("m{i}"))).collect();
    append(&s, "main", &msgs[..200], None);
    append(&s, "other", &msgs[200..], None);
    for i in 0..5 {
        append(&s, "main", &[msg(1000 + i, "small")], None);
    }
    // Drop log "other" entirely: its 100 messages and pages become garbage.
    let head = log::head(&s, "other").unwrap();
    use remotelog::store::Backend;
    s.update_ref(
        &remotelog::model::name::RefName::log("other").unwrap(),
        head.into(),
        None,
    )
    .unwrap();
    // Young garbage is kept by default.
    let young: serde_json::Value = serde_json::from_str(&ok(t.path(), &["gc", "--json"])).unwrap();
    assert_eq!(young["objects"], 0);
    assert!(young["kept_young"].as_u64().unwrap() >= 100);
    let dry: serde_json::Value = serde_json::from_str(&ok(
        t.path(),
        &["gc", "--prune", "now", "--dry-run", "--json"],
    ))
    .unwrap();
    let listing = ok(t.path(), &["gc", "--prune", "now", "--dry-run"]);
    assert_eq!(
        listing.matches("would remove ").count() as u64 - 1,
        dry["objects"].as_u64().unwrap()
    );
    let real: serde_json::Value =
        serde_json::from_str(&ok(t.path(), &["gc", "--prune", "now", "--json"])).unwrap();
    assert!(dry["objects"].as_u64().unwrap() >= 100, "{dry}");
    assert_eq!(dry["objects"], real["objects"]);
    assert_eq!(dry["bytes"], real["bytes"]);
    assert!(real["disk_after"].as_u64() < real["disk_before"].as_u64());
    let again: serde_json::Value =
        serde_json::from_str(&ok(t.path(), &["gc", "--prune", "now", "--json"])).unwrap();
    assert_eq!(again["objects"], 0, "a second gc finds nothing");
    let s = FsStore::open(t.path()).unwrap();
    let r = check::check(&s, true);
    assert!(r.is_sound(), "{:?}", r.problems);
    assert_eq!(r.unreferenced, 0);
    assert_eq!(log::entries(&s, "main").unwrap().len(), 205);
}

#[test]
fn shared_message_survives_until_its_last_log_forgets_it() {
    let t = tempfile::tempdir().unwrap();
    let s = FsStore::init(t.path(), Config::default()).unwrap();
    let shared = msg(1, "shared between two logs");
    append(&s, "a", &[shared.clone(), msg(2, "only a")], None);
    append(&s, "b", &[shared.clone(), msg(3, "only b")], None);
    let h1 = shared.h1().to_hex();
    ok(t.path(), &["forget", "--log", "a", &h1]);
    ok(t.path(), &["gc", "--prune", "now"]);
    assert_eq!(ok(t.path(), &["cat", &h1]), "shared between two logs");
    ok(t.path(), &["forget", "--log", "b", &h1]);
    ok(t.path(), &["gc", "--prune", "now"]);
    let out = run(t.path(), &["cat", &h1]);
    assert_eq!(out.status.code(), Some(1));
    ok(t.path(), &["check", "--read-data"]);
}

#[test]
fn lease_refuses_when_the_remote_moved() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, remote) = (t.path().join("a"), t.path().join("b"), t.path().join("r"));
    let sa = FsStore::init(&a, Config::default()).unwrap();
    append(&sa, "main", &[msg(1, "one"), msg(2, "two")], None);
    ok(&a, &["remote", "add", "origin", remote.to_str().unwrap()]);
    ok(&a, &["push"]);
    ok(
        t.path(),
        &["clone", remote.to_str().unwrap(), b.to_str().unwrap()],
    );
    let sb = FsStore::open(&b).unwrap();
    append(&sb, "main", &[msg(3, "three")], None);
    ok(&b, &["push"]);
    // a rewrites its log without having seen b's push: the lease protects b's entry.
    let h1 = msg(1, "one").h1().to_hex();
    ok(&a, &["forget", &h1]);
    let out = run(&a, &["push", "--force-with-lease"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer what we last saw"));
    assert_eq!(ok(&remote, &["log"]).lines().count(), 3);
}

#[test]
fn gc_beside_a_pushing_writer_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (a, remote) = (t.path().join("a"), t.path().join("r"));
    ok(&a, &["init"]);
    ok(&a, &["remote", "add", "origin", remote.to_str().unwrap()]);
    let inbox = t.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    for i in 0..100 {
        std::fs::write(inbox.join(format!("{i:03}")), format!("bulk {i}")).unwrap();
    }
    // The writer: append (a batch big enough to be a pack, or a single message) and push,
    // in a loop, as another process.
    let script = format!(
        "set -e; for i in $(seq 1 12); do \
           if [ $((i % 3)) = 0 ]; then {bin} --store {a} append --group g --timestamp $i --dir {inbox} >/dev/null; \
           else echo msg$i | {bin} --store {a} append --group g --timestamp $i >/dev/null; fi; \
           {bin} --store {a} push --quiet >/dev/null; done",
        bin = env!("CARGO_BIN_EXE_remotelog"),
        a = a.display(),
        inbox = inbox.display()
    );
    let mut writer = Command::new("bash")
        .args(["-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gcs = 0;
    while writer.try_wait().unwrap().is_none() {
        if remote.join("config").exists() {
            // Default grace: the writer's fresh objects are young and must survive.
            let out = run(&remote, &["gc"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            gcs += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = writer.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "writer failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(gcs > 0, "gc never ran");
    ok(&remote, &["gc"]);
    ok(&remote, &["check", "--read-data"]);
    assert_eq!(ok(&remote, &["log", "--json"]), ok(&a, &["log", "--json"]));
    assert_eq!(ok(&remote, &["log"]).lines().count(), 4 * 100 + 8);
}

/// Replacing the pack chain from a head it no longer has is a lost compare-and-swap, like
/// a ref's: `RefConflict`, which the exit status reports as worth running again.
#[test]
fn a_chain_replaced_from_a_stale_head_is_a_ref_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::init(&dir.path().join("s"), Config::default()).unwrap();
    use remotelog::store::Backend;
    let u = s.upkeep().unwrap();
    let stale = remotelog::Id([7; 32]);
    let e = u.replace_chain(Some(stale), Vec::new(), false).unwrap_err();
    assert!(
        matches!(&e, remotelog::Error::RefConflict { name, expected: Some(x), actual: None }
            if name == "packs" && *x == stale),
        "{e:?}"
    );
    assert!(e.is_transient(), "{e}");
}
