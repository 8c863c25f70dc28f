//! Damaged stores: every kind of damage gives a clear error naming the damaged thing, and
//! `remotelog check` exits 1 naming it. Locks left behind are cleared only when their holder
//! is provably gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use remotelog::log::{self, SettingsChange};
use remotelog::store::config::Config;
use remotelog::store::Expected;
use remotelog::{FsStore, Id, Message};

mod common;
use common::{assert_ok, fails_with, run, run_stdin, text};

/// `check` (with or without --read-data) exits 1 and its output names every needle.
#[track_caller]
fn check_names(store: &Path, read_data: bool, needles: &[&str]) {
    let args: &[&str] = if read_data {
        &["check", "--read-data"]
    } else {
        &["check"]
    };
    let o = run(store, args);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "check should fail:\n{all}");
    assert!(!all.contains("panicked"), "{all}");
    for n in needles {
        assert!(
            all.contains(n),
            "check output does not mention {n:?}:\n{all}"
        );
    }
}

#[track_caller]
fn check_passes(store: &Path) -> String {
    let o = run(store, &["check", "--read-data"]);
    assert!(o.status.success(), "check should pass:\n{}", text(&o));
    text(&o)
}

fn msg(i: usize) -> Message {
    // Bodies with varied, poorly compressible bytes, so that a flipped byte in the middle
    // of the file lands in literal data.
    let mut body = format!("message number {i}: ").into_bytes();
    let mut x: u32 = 0x9e37_79b9 ^ i as u32;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body.push(x as u8);
    }
    Message {
        group_id: b"grp".to_vec(),
        timestamp: 1_000 + i as i64,
        body,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: FsStore,
    /// (H1, H2) of the messages of log "main", oldest first.
    ids: Vec<(Id, Id)>,
    /// Pages of log "main", newest first.
    pages: Vec<Id>,
}

/// A store with log "main" of 6 messages in pages of 2 (3 pages).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FsStore::init(&root, Config::default()).unwrap();
    let msgs: Vec<Message> = (0..6).map(msg).collect();
    let a = log::append(
        &store,
        "main",
        &msgs,
        SettingsChange {
            capacity: Some(2),
            embed: None,
        },
    )
    .unwrap();
    let pages: Vec<Id> = log::pages(&store, Some(a.head))
        .map(|p| p.unwrap().0)
        .collect();
    assert_eq!(pages.len(), 3);
    check_passes(&root);
    Fixture {
        _dir: dir,
        root,
        store,
        ids: a.ids,
        pages,
    }
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x55;
    write_over(path, &bytes);
}

fn truncate_half(path: &Path) {
    let bytes = fs::read(path).unwrap();
    write_over(path, &bytes[..bytes.len() / 2]);
}

/// Object files are read-only on some systems; replace the file.
fn write_over(path: &Path, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    fs::write(path, bytes).unwrap();
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------

#[test]
fn flipped_byte_in_a_message_object() {
    let f = fixture();
    let (h1, h2) = f.ids[3];
    let path = f.store.object_path(&h2);
    flip_middle_byte(&path);
    let (id, file) = (h2.to_hex(), p(&path));
    check_names(&f.root, true, &[&id, &file]);
    fails_with(&run(&f.root, &["cat", &h1.to_hex()]), &[&id, &file]);
    fails_with(&run(&f.root, &["log"]), &[&id]);
    // The others are still readable.
    let o = assert_ok(run(&f.root, &["cat", &f.ids[2].0.to_hex()]));
    assert_eq!(o.stdout, msg(2).body);
}

#[test]
fn flipped_byte_in_a_page_object() {
    let f = fixture();
    let page = f.pages[1];
    let path = f.store.object_path(&page);
    flip_middle_byte(&path);
    let (id, file) = (page.to_hex(), p(&path));
    // Pages are read by a plain check, not only with --read-data.
    check_names(&f.root, false, &[&id, &file]);
    check_names(&f.root, true, &[&id, &file]);
    fails_with(&run(&f.root, &["log"]), &[&id, &file]);
}

#[test]
fn truncated_message_object() {
    let f = fixture();
    let (h1, h2) = f.ids[0];
    let path = f.store.object_path(&h2);
    truncate_half(&path);
    let (id, file) = (h2.to_hex(), p(&path));
    check_names(&f.root, true, &[&id, &file]);
    fails_with(&run(&f.root, &["cat", &h1.to_hex()]), &[&id, &file]);
}

#[test]
fn truncated_page_object() {
    let f = fixture();
    let page = f.pages[0];
    let path = f.store.object_path(&page);
    truncate_half(&path);
    let (id, file) = (page.to_hex(), p(&path));
    check_names(&f.root, false, &[&id, &file]);
    fails_with(&run(&f.root, &["log"]), &[&id, &file]);
    fails_with(&run(&f.root, &["logs"]), &[&id]);
}

#[test]
fn empty_object_file() {
    let f = fixture();
    let page = f.pages[2];
    let path = f.store.object_path(&page);
    write_over(&path, b"");
    check_names(&f.root, false, &[&page.to_hex(), &p(&path)]);
}

#[test]
fn ref_pointing_at_a_message_object() {
    let f = fixture();
    let (_, h2) = f.ids[5];
    let refpath = f.root.join("refs/logs/main");
    fs::write(&refpath, format!("{h2}\n")).unwrap();
    let id = h2.to_hex();
    check_names(&f.root, false, &[&id, "message", "page"]);
    fails_with(&run(&f.root, &["log"]), &[&id, "message"]);
    // Appending on top of it is refused too, and leaves the ref alone.
    let o = run(&f.root, &["append", "--group", "g"]);
    fails_with(&o, &[&id]);
    assert_eq!(fs::read_to_string(&refpath).unwrap(), format!("{h2}\n"));
}

#[test]
fn page_prev_pointing_at_a_message_object_is_found_by_check() {
    // A page in the middle of a chain whose `prev` is a message, written with the library
    // so that every object is intact and only the kind is wrong.
    let f = fixture();
    let (_, h2) = f.ids[0];
    let page = remotelog::Page {
        prev: Some(h2),
        count: 2,
        capacity: 2,
        embed: 0,
        entries: vec![remotelog::Entry {
            h1: f.ids[1].0,
            h2: f.ids[1].1,
            embedded: None,
        }],
    };
    let bytes = remotelog::model::object::Object::Page(page).encode();
    let pid = Id::of(&bytes);
    use remotelog::Backend;
    f.store.put_objects(&[(pid, &bytes)]).unwrap();
    f.store
        .update_ref(
            &remotelog::model::name::RefName::log("bad").unwrap(),
            Expected::Absent,
            Some(pid),
        )
        .unwrap();
    check_names(&f.root, false, &["bad", &h2.to_hex(), "message"]);
}

#[test]
fn page_pointing_at_a_missing_message() {
    let f = fixture();
    let (h1, h2) = f.ids[4];
    let path = f.store.object_path(&h2);
    fs::remove_file(&path).unwrap();
    let id = h2.to_hex();
    check_names(&f.root, false, &[&id, "missing"]);
    check_names(&f.root, true, &[&id, "missing"]);
    fails_with(&run(&f.root, &["cat", &h1.to_hex()]), &[&id, "missing"]);
    fails_with(&run(&f.root, &["log"]), &[&id]);
}

#[test]
fn missing_page_in_the_chain() {
    let f = fixture();
    let page = f.pages[2];
    fs::remove_file(f.store.object_path(&page)).unwrap();
    check_names(&f.root, false, &[&page.to_hex(), "missing"]);
    fails_with(&run(&f.root, &["log"]), &[&page.to_hex()]);
}

#[test]
fn garbage_in_a_ref_file() {
    for garbage in [
        &b"hello world\n"[..],
        b"",
        &[0xff, 0xfe, 0x00],
        b"0123456789abcdef\n",
    ] {
        let f = fixture();
        let refpath = f.root.join("refs/logs/main");
        fs::write(&refpath, garbage).unwrap();
        let file = p(&refpath);
        check_names(&f.root, false, &[&file]);
        fails_with(&run(&f.root, &["log"]), &[&file]);
        fails_with(&run(&f.root, &["logs"]), &[&file]);
        let o = run(&f.root, &["append", "--group", "g"]);
        fails_with(&o, &[&file]);
        assert_eq!(
            fs::read(&refpath).unwrap(),
            garbage,
            "the bad ref was rewritten"
        );
    }
}

#[test]
fn ref_with_upper_case_hex_is_refused() {
    let f = fixture();
    let refpath = f.root.join("refs/logs/main");
    fs::write(
        &refpath,
        format!("{}\n", f.pages[0].to_hex().to_uppercase()),
    )
    .unwrap();
    check_names(&f.root, false, &[&p(&refpath)]);
}

#[test]
fn stray_file_among_objects_is_named() {
    let f = fixture();
    let stray = f.root.join("objects/zz");
    fs::write(&stray, b"?").unwrap();
    check_names(&f.root, false, &[&p(&stray)]);
}

#[test]
fn newer_format_version_is_refused() {
    let f = fixture();
    let cfg = f.root.join("config");
    let text = fs::read_to_string(&cfg).unwrap();
    // One more than the newest version this remotelog knows.
    let newer = remotelog::store::config::FORMAT_VERSION + 1;
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("format-version") {
                format!("format-version = {newer}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(edited, text, "no format-version line in {text}");
    fs::write(&cfg, edited).unwrap();
    for args in [
        &["log"][..],
        &["logs"],
        &["check"],
        &["cat", &f.ids[0].0.to_hex()],
    ] {
        fails_with(&run(&f.root, args), &["upgrade"]);
    }
    let o = run(&f.root, &["append", "--group", "g"]);
    fails_with(&o, &["upgrade"]);
    assert_eq!(
        log::entries(&f.store, "main").unwrap().len(),
        6,
        "a refused append changed the log"
    );
}

// ---------------------------------------------------------------------------------------
// Locks

fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn this_host() -> String {
    let h = remotelog::store::lock::hostname();
    // Cross-check with the kernel's own idea of the host name where available.
    if let Ok(k) = fs::read_to_string("/proc/sys/kernel/hostname") {
        assert_eq!(h, k.trim());
    }
    h
}

fn lock_text(pid: u32, host: &str) -> String {
    format!("pid={pid}\nhost={host}\ntime=1700000000\n")
}

fn append_stdin(root: &Path, body: &[u8]) -> Output {
    run_stdin(root, &["append", "--group", "g", "--timestamp", "5"], body)
}

#[test]
fn stale_lock_of_a_dead_process_is_cleared_with_a_note() {
    let f = fixture();
    let lock = f.root.join("refs/logs/main.lock");
    let pid = dead_pid();
    fs::write(&lock, lock_text(pid, &this_host())).unwrap();

    // A lock is not damage: check passes and mentions it.
    let out = check_passes(&f.root);
    assert!(
        out.contains(&p(&lock)),
        "check does not mention the lock:\n{out}"
    );

    let o = append_stdin(&f.root, b"after crash");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "append failed: {}", text(&o));
    assert!(err.contains(&p(&lock)), "no note naming the lock: {err}");
    assert!(
        err.contains(&pid.to_string()),
        "note does not name the dead pid: {err}"
    );
    assert!(!lock.exists(), "the stale lock is still there");
    assert_eq!(log::entries(&f.store, "main").unwrap().len(), 7);
    let out = check_passes(&f.root);
    assert!(!out.contains(".lock"), "{out}");
    // No leftovers of the clearing either.
    let left: Vec<_> = fs::read_dir(f.root.join("refs/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("main")]);
}

#[track_caller]
fn held_lock_is_reported_not_broken(content: String, needles: &[&str]) {
    let f = fixture();
    let lock = f.root.join("refs/logs/main.lock");
    fs::write(&lock, &content).unwrap();
    let head = fs::read(f.root.join("refs/logs/main")).unwrap();
    let o = append_stdin(&f.root, b"blocked");
    let mut all = vec![p(&lock), format!("rm {}", p(&lock))];
    all.extend(needles.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    fails_with(&o, &all);
    assert_eq!(
        fs::read_to_string(&lock).unwrap(),
        content,
        "lock was touched"
    );
    assert_eq!(
        fs::read(f.root.join("refs/logs/main")).unwrap(),
        head,
        "ref moved"
    );
    assert_eq!(log::entries(&f.store, "main").unwrap().len(), 6);
    // The store itself is sound; check mentions the lock.
    let out = check_passes(&f.root);
    assert!(out.contains(&p(&lock)), "{out}");
}

#[test]
fn lock_of_a_live_process_is_not_broken() {
    // This test process is alive and on this host.
    let me = std::process::id();
    held_lock_is_reported_not_broken(lock_text(me, &this_host()), &[&me.to_string()]);
}

#[test]
fn lock_of_another_host_is_not_broken() {
    held_lock_is_reported_not_broken(
        lock_text(dead_pid(), "some-other-host.example"),
        &["some-other-host.example"],
    );
}

#[test]
fn unreadable_lock_is_not_broken() {
    held_lock_is_reported_not_broken("garbage without holder".to_string(), &[]);
}

/// A page that claims the wrong H1 for a message it lists: only reading the message can
/// tell, so `check --read-data` names the page entry and both H1s; a plain `check` does
/// not read messages and passes.
#[test]
fn a_page_claiming_the_wrong_h1_is_named_by_read_data() {
    use remotelog::model::object::{Entry, Object, Page};
    use remotelog::store::Backend;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("s");
    let s = FsStore::init(&root, Config::default()).unwrap();
    let m = Message {
        group_id: b"g".to_vec(),
        timestamp: 7,
        body: b"the real body".to_vec(),
    };
    let bytes = Object::Message(m.clone()).encode();
    let h2 = Id::of(&bytes);
    let wrong = Id([0x11; 32]);
    let page = Object::Page(Page {
        prev: None,
        count: 1,
        capacity: 256,
        embed: 0,
        entries: vec![Entry {
            h1: wrong,
            h2,
            embedded: None,
        }],
    })
    .encode();
    let pid = Id::of(&page);
    s.put_objects(&[(h2, &bytes), (pid, &page)]).unwrap();
    s.update_ref(
        &remotelog::model::name::RefName::log("main").unwrap(),
        Expected::Absent,
        Some(pid),
    )
    .unwrap();
    assert_ok(run(&root, &["check"]));
    check_names(
        &root,
        true,
        &[
            &format!("page {pid} entry 0"),
            &format!("H1 {wrong}"),
            &format!("whose H1 is {}", m.h1()),
        ],
    );
}
