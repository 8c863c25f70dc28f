//! Remotes end to end: push, pull, clone and status, through the library and through the
//! real binary. Every scenario that does not depend on the remote being a directory runs
//! twice: against a directory remote and against the same store served over HTTP.

use std::path::{Path, PathBuf};

use remotelog::error::Rejection;
use remotelog::log::{self, SettingsChange};
use remotelog::model::name::RefName;
use remotelog::net::client::HttpBackend;
use remotelog::net::server::Running;
use remotelog::progress::Silent;
use remotelog::store::Backend;
use remotelog::{transfer::sync, Error, FsStore};

mod common;
use common::{
    append, bin, entries, fails, fixtures, kill_after, msgs, ok, run, serve, sound, store, Counting,
};

/// How a test reaches its remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Dir,
    Http,
}

/// A remote store for a test: a directory, served over HTTP for `Transport::Http`.
struct TestRemote {
    dir: PathBuf,
    server: Option<Running>,
}

impl TestRemote {
    /// A remote at `dir`. A directory remote is created by the first push; an HTTP one is
    /// a store (made now unless `dir` already is one) served on a free loopback port.
    fn new(dir: &Path, tr: Transport) -> TestRemote {
        let server = (tr == Transport::Http).then(|| serve(dir, |_| {}));
        TestRemote {
            dir: dir.to_path_buf(),
            server,
        }
    }

    /// What `remote add` and `clone` are given.
    fn location(&self) -> String {
        match &self.server {
            Some(s) => s.url(),
            None => self.dir.display().to_string(),
        }
    }

    /// The remote through its transport.
    fn backend(&self) -> Box<dyn Backend> {
        match &self.server {
            Some(s) => Box::new(HttpBackend::open(&s.url(), None).unwrap()),
            None => {
                Box::new(remotelog::transfer::remote::open_dir(&self.location(), true).unwrap())
            }
        }
    }

    /// The store on disk behind the remote, to inspect or damage it.
    fn files(&self) -> FsStore {
        FsStore::open(&self.dir).unwrap()
    }
}

/// A backend for a location string, as the CLI would open it.
fn open_location(location: &str) -> Box<dyn Backend> {
    remotelog::transfer::remote::open(location, true).unwrap()
}

/// Runs each named scenario `fn name(tr: Transport)` once per transport.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn dir() {
                super::$name(super::Transport::Dir)
            }
            #[test]
            fn http() {
                super::$name(super::Transport::Http)
            }
        }
    )*};
}

both_transports!(
    push_to_two_remotes_and_clone_from_each,
    pull_after_more_appends_and_json_summary,
    pull_reads_grow_with_new_entries_not_with_the_log,
    push_copies_only_what_is_new,
    push_refuses_to_drop_remote_entries_unless_forced,
    racing_pushes_exactly_one_wins,
    clone_of_a_corrupt_remote_fails_naming_the_object_and_leaves_nothing,
    remote_created_by_the_v1_fixture_clones_and_accepts_pushes,
    a_stray_page_on_the_remote_does_not_cut_a_push_short,
);

fn append_with(s: &FsStore, n: usize, tag: &str, capacity: u64) {
    let c = SettingsChange {
        capacity: Some(capacity),
        embed: None,
    };
    log::append(s, "main", &msgs(tag, n), c).unwrap();
}

fn push_to_two_remotes_and_clone_from_each(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let files: Vec<PathBuf> = (0..30)
        .map(|i| {
            let p = t.path().join(format!("m{i:02}"));
            std::fs::write(&p, format!("body {i}")).unwrap();
            p
        })
        .collect();
    let mut args = vec!["append", "--group", "chat", "--timestamp", "7"];
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    ok(&a, &args);
    ok(
        &a,
        &[
            "append",
            "--log",
            "other",
            "--group",
            "x",
            "--page-size",
            "1",
            &names[0],
        ],
    );
    let remotes = [
        TestRemote::new(&t.path().join("r1"), tr),
        TestRemote::new(&t.path().join("r2"), tr),
    ];
    let (r1, r2) = (remotes[0].location(), remotes[1].location());
    ok(&a, &["remote", "add", "origin", &r1]);
    ok(&a, &["remote", "add", "backup", &r2]);
    ok(&a, &["push", "--all", "--all-logs"]);
    let status = ok(&a, &["status"]);
    assert_eq!(status.matches("up to date").count(), 4, "{status}");
    let before_main = ok(&a, &["log", "--json"]);
    let before_other = ok(&a, &["log", "--log", "other", "--json"]);
    for (i, (remote, served)) in [&r1, &r2].iter().zip(&remotes).enumerate() {
        ok(&served.dir, &["check", "--read-data"]);
        let dest = t.path().join(format!("clone{i}"));
        ok(t.path(), &["clone", remote, dest.to_str().unwrap()]);
        assert_eq!(ok(&dest, &["log", "--json"]), before_main);
        assert_eq!(
            ok(&dest, &["log", "--log", "other", "--json"]),
            before_other
        );
        let list = ok(&dest, &["remote", "list"]);
        assert!(list.starts_with("origin\t"), "{list}");
    }
    // Restore after loss: delete the local store and clone it back by remote name.
    std::fs::remove_dir_all(&a).unwrap();
    let b = t.path().join("b");
    ok(&b, &["init"]);
    ok(&b, &["remote", "add", "backup", &r2]);
    let restored = t.path().join("restored");
    ok(&b, &["clone", "backup", restored.to_str().unwrap()]);
    assert_eq!(ok(&restored, &["log", "--json"]), before_main);
}

fn pull_after_more_appends_and_json_summary(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let (w, r) = (t.path().join("w"), t.path().join("r"));
    let served = TestRemote::new(&t.path().join("remote"), tr);
    let remote = served.location();
    ok(&w, &["init"]);
    for i in 0..3 {
        let out = bin()
            .args(["--store", w.to_str().unwrap(), "append", "--group", "g"])
            .arg("--timestamp")
            .arg(i.to_string())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("m{i}").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
    }
    ok(&w, &["remote", "add", "origin", &remote]);
    ok(&w, &["push"]);
    ok(t.path(), &["clone", &remote, r.to_str().unwrap()]);
    let f = t.path().join("more");
    std::fs::write(&f, "more").unwrap();
    ok(&w, &["append", "--group", "g", f.to_str().unwrap()]);
    assert!(ok(&w, &["status"]).contains("1 entries ahead"));
    ok(&w, &["push"]);
    let summary = ok(&r, &["pull", "--json"]);
    let v: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(v["outcome"], "fast-forward");
    assert_eq!(v["entries"], 1);
    assert_eq!(v["copied"]["objects"], 2, "one message and one page");
    assert!(v["elapsed"].as_f64().is_some());
    assert_eq!(ok(&r, &["log", "--json"]), ok(&w, &["log", "--json"]));
    let again: serde_json::Value =
        serde_json::from_str(ok(&r, &["pull", "--json"]).trim()).unwrap();
    assert_eq!(again["outcome"], "up-to-date");
}

fn pull_reads_grow_with_new_entries_not_with_the_log(tr: Transport) {
    let mut reads = Vec::new();
    // Both lengths leave the same partly filled head page, so the new pages are alike.
    for len in [200usize, 2008] {
        let t = tempfile::tempdir().unwrap();
        let w = store(&t.path().join("w"));
        let served = TestRemote::new(&t.path().join("remote"), tr);
        let remote = served.backend();
        let remote = &*remote;
        append_with(&w, len, "old", 16);
        sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
        let r = store(&t.path().join("r"));
        sync::pull(&r, "origin", remote, "main", &Silent).unwrap();
        append(&w, 10, "new");
        sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
        let counting = Counting::per_object(remote);
        let done = sync::pull(&r, "origin", &counting, "main", &Silent).unwrap();
        assert_eq!(done.entries, 10);
        assert_eq!(entries(&r, "main"), entries(&w, "main"));
        reads.push(counting.read_count());
    }
    assert_eq!(
        reads[0], reads[1],
        "reads must not depend on the log's length: {reads:?}"
    );
    assert!(
        reads[0] <= 10 + 8,
        "10 new messages and a few pages, got {}",
        reads[0]
    );
}

fn push_copies_only_what_is_new(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let w = store(&t.path().join("w"));
    let served = TestRemote::new(&t.path().join("remote"), tr);
    let remote = served.backend();
    let remote = &*remote;
    append(&w, 1000, "a");
    let first = sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
    assert_eq!(first.outcome, "created");
    append(&w, 5, "b");
    let counting = Counting::per_object(&w);
    let second = sync::push(
        &counting,
        "origin",
        remote,
        "main",
        sync::Force::No,
        &Silent,
    )
    .unwrap();
    assert_eq!(second.outcome, "fast-forward");
    assert_eq!(second.entries, 5);
    assert!(second.copied.objects <= 5 + 2, "{:?}", second.copied);
    assert!(counting.read_count() <= 5 + 6);
    assert_eq!(entries(remote, "main"), entries(&w, "main"));
    sound(&served.files());
}

/// The remote already holds the page a push will name, but not its messages (a writer's
/// objects collected between its upload and its ref update, or a client that stored only
/// a page). The push stops its walk at that page, the ref update finds the chain
/// incomplete (the server says so; for a directory the push checks), and the push copies
/// again without trusting the page. The remote never names an incomplete chain.
fn a_stray_page_on_the_remote_does_not_cut_a_push_short(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let w = store(&t.path().join("w"));
    let served = TestRemote::new(&t.path().join("remote"), tr);
    let remote = served.backend();
    let remote = &*remote;
    append(&w, 20, "a");
    sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
    append(&w, 300, "b");
    let head = log::head(&w, "main").unwrap().unwrap();
    // Only the new head page, without the messages it lists or the page before it.
    let page = w.get_object(&head).unwrap();
    remote.put_objects(&[(head, &page[..])]).unwrap();
    let done = sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
    assert_eq!(done.outcome, "fast-forward");
    assert_eq!(entries(remote, "main"), entries(&w, "main"));
    sound(&served.files());
}

fn push_refuses_to_drop_remote_entries_unless_forced(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let a = store(&t.path().join("a"));
    let b = store(&t.path().join("b"));
    let served = TestRemote::new(&t.path().join("remote"), tr);
    let remote = served.backend();
    let remote = &*remote;
    append(&a, 3, "a");
    sync::push(&a, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
    append(&b, 4, "b");
    let e = sync::push(&b, "origin", remote, "main", sync::Force::No, &Silent).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(entries(remote, "main"), entries(&a, "main"));
    // Pull into b refuses too, and leaves b alone.
    let before = entries(&b, "main");
    let e = sync::pull(&b, "origin", remote, "main", &Silent).unwrap_err();
    assert!(e.to_string().contains("diverged"), "{e}");
    assert_eq!(entries(&b, "main"), before);
    let forced = sync::push(&b, "origin", remote, "main", sync::Force::Yes, &Silent).unwrap();
    assert_eq!(forced.outcome, "forced");
    assert_eq!(entries(remote, "main"), entries(&b, "main"));
    sound(&served.files());
}

fn racing_pushes_exactly_one_wins(tr: Transport) {
    for round in 0..5 {
        let t = tempfile::tempdir().unwrap();
        let base = store(&t.path().join("base"));
        append(&base, 50, "base");
        let served = TestRemote::new(&t.path().join("remote"), tr);
        let remote = served.backend();
        let remote = &*remote;
        sync::push(&base, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
        let writers: Vec<FsStore> = (0..2)
            .map(|i| {
                let dest = t.path().join(format!("w{i}"));
                let (s, _) =
                    sync::clone(remote, &served.location(), &dest, None, false, &Silent).unwrap();
                append(&s, 20 + round, &format!("writer{i}"));
                s
            })
            .collect();
        let results: Vec<remotelog::Result<sync::LogTransfer>> = std::thread::scope(|sc| {
            let handles: Vec<_> = writers
                .iter()
                .map(|w| {
                    let location = served.location();
                    sc.spawn(move || {
                        // Each racer has its own connection (or store handle).
                        let remote = open_location(&location);
                        sync::push(w, "origin", &*remote, "main", sync::Force::No, &Silent)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let loser = 1 - winners[0];
        let msg = results[loser].as_ref().unwrap_err().to_string();
        assert!(msg.contains("refused"), "{msg}");
        assert_eq!(
            entries(remote, "main"),
            entries(&writers[winners[0]], "main")
        );
        assert_eq!(
            entries(&writers[loser], "main").len(),
            70 + round,
            "loser keeps its log"
        );
        sound(&served.files());
    }
}

fn clone_of_a_corrupt_remote_fails_naming_the_object_and_leaves_nothing(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let w = store(&t.path().join("w"));
    let served = TestRemote::new(&t.path().join("remote"), tr);
    let remote = served.backend();
    let remote = &*remote;
    let location = served.location();
    append(&w, 20, "a");
    sync::push(&w, "origin", remote, "main", sync::Force::No, &Silent).unwrap();
    let victim = log::entries(remote, "main").unwrap()[7].h2;
    let path = served.files().object_path(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let dest = t.path().join("dest");
    let err = fails(t.path(), &["clone", &location, dest.to_str().unwrap()]);
    assert!(err.contains(&victim.to_hex()), "{err}");
    assert!(err.lines().count() == 1, "one line: {err}");
    assert!(!dest.exists(), "no half-made clone is left");
    let err = fails(
        t.path(),
        &["clone", "--keep-partial", &location, dest.to_str().unwrap()],
    );
    assert!(err.contains(&victim.to_hex()));
    assert!(dest.join("config").exists(), "--keep-partial keeps it");
    // The library names it too.
    let r = store(&t.path().join("lib"));
    match sync::pull(&r, "origin", remote, "main", &Silent) {
        Err(e) => assert!(e.to_string().contains(&victim.to_hex()), "{e}"),
        Ok(_) => panic!("pull of a corrupt remote succeeded"),
    }
    assert_eq!(r.read_ref(&RefName::log("main").unwrap()).unwrap(), None);
}

fn remote_created_by_the_v1_fixture_clones_and_accepts_pushes(tr: Transport) {
    let t = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("store-v1");
    let remote_dir = t.path().join("remote");
    for entry in walkdir::WalkDir::new(&fixture) {
        let entry = entry.unwrap();
        let dest = remote_dir.join(entry.path().strip_prefix(&fixture).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    let served = TestRemote::new(&remote_dir, tr);
    let remote = served.backend();
    let remote = &*remote;
    let dest = t.path().join("clone");
    let (local, done) =
        sync::clone(remote, &served.location(), &dest, None, false, &Silent).unwrap();
    assert_eq!(done.len(), 4);
    for info in log::list(remote).unwrap() {
        assert_eq!(entries(&local, &info.name), entries(remote, &info.name));
    }
    log::append(
        &local,
        "team/replicated",
        &msgs("new", 2),
        SettingsChange::default(),
    )
    .unwrap();
    let pushed = sync::push(
        &local,
        "origin",
        remote,
        "team/replicated",
        sync::Force::No,
        &Silent,
    )
    .unwrap();
    assert_eq!(pushed.entries, 2);
    sound(&served.files());
    sound(&local);
}

#[test]
fn bad_remotes_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let err = fails(&a, &["push"]);
    assert!(err.contains("no remotes"), "{err}");
    let missing = t.path().join("missing").display().to_string();
    ok(&a, &["remote", "add", "origin", &missing]);
    let err = fails(&a, &["pull"]);
    assert!(
        err.contains("missing") && err.contains("no such store"),
        "{err}"
    );
    let err = fails(&a, &["remote", "add", "origin", &missing]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&a, &["remote", "add", "../x", &missing]);
    assert!(err.contains("invalid name"), "{err}");
    // A non-empty directory that is not a store is not overwritten by a push.
    let junk = t.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("keep.txt"), "mine").unwrap();
    ok(&a, &["remote", "add", "junk", junk.to_str().unwrap()]);
    let f = t.path().join("m");
    std::fs::write(&f, "m").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    let err = fails(&a, &["push", "junk"]);
    assert!(err.contains("not a remotelog store"), "{err}");
    assert_eq!(
        std::fs::read_to_string(junk.join("keep.txt")).unwrap(),
        "mine"
    );
    // A store of a newer format version is refused.
    let newer = t.path().join("newer");
    ok(&newer, &["init"]);
    let cfg = newer.join("config");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("format-version = 2", "format-version = 9");
    std::fs::write(&cfg, text).unwrap();
    let err = fails(
        t.path(),
        &[
            "clone",
            newer.to_str().unwrap(),
            t.path().join("c").to_str().unwrap(),
        ],
    );
    assert!(err.contains("upgrade remotelog"), "{err}");
    // Removing a remote drops its tracking refs.
    ok(&a, &["remote", "remove", "junk"]);
    let err = fails(&a, &["remote", "remove", "junk"]);
    assert!(err.contains("no remote named"), "{err}");
}

#[test]
fn kill_9_during_push_leaves_the_remote_sound_and_push_completes() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let s = store(&a);
    log::append(&s, "main", &msgs("bulk", 4000), SettingsChange::default()).unwrap();
    let remote = t.path().join("remote").display().to_string();
    ok(&a, &["remote", "add", "origin", &remote]);
    let want = ok(&a, &["log", "--json"]);
    for (i, delay_ms) in [5u64, 20, 40, 80, 150, 300].iter().enumerate() {
        if i % 2 == 0 {
            let _ = std::fs::remove_dir_all(&remote);
        }
        kill_after(
            bin().args(["--store", a.to_str().unwrap(), "push", "--quiet"]),
            std::time::Duration::from_millis(*delay_ms),
        );
        if Path::new(&remote).join("config").exists() {
            let out = run(Path::new(&remote), &["check", "--read-data"]);
            assert!(
                out.status.success(),
                "after kill at {delay_ms} ms: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let r = FsStore::open(Path::new(&remote)).unwrap();
            let n = entries(&r, "main").len();
            assert!(
                n == 0 || n == 4000,
                "the remote log is all or nothing, got {n}"
            );
        }
        ok(&a, &["push", "--quiet"]);
        assert_eq!(ok(Path::new(&remote), &["log", "--json"]), want);
    }
}

#[test]
fn library_errors_are_typed() {
    let t = tempfile::tempdir().unwrap();
    let a = store(&t.path().join("a"));
    let remote = store(&t.path().join("r"));
    match sync::push(&a, "origin", &remote, "main", sync::Force::No, &Silent) {
        Err(Error::Invalid(m)) => assert!(m.contains("no log"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Refusals carry their kind, so callers decide by type, not by matching words.
    let b = store(&t.path().join("b"));
    append(&a, 3, "a");
    sync::push(&a, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    sync::pull(&b, "origin", &remote, "main", &Silent).unwrap();
    append(&a, 2, "a2");
    sync::push(&a, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    let rejection = |r: remotelog::Result<sync::LogTransfer>| match r {
        Err(e @ Error::Rejected { .. }) => {
            assert!(!e.is_transient(), "{e}");
            match e {
                Error::Rejected { reason, .. } => reason,
                _ => unreachable!(),
            }
        }
        other => panic!("expected a rejection, got {other:?}"),
    };
    // b is 2 entries behind: a plain push is not a fast-forward.
    append(&b, 1, "b");
    assert_eq!(
        rejection(sync::push(
            &b,
            "origin",
            &remote,
            "main",
            sync::Force::No,
            &Silent
        )),
        Rejection::NotFastForward { ahead_by: None }
    );
    // The tracking ref says what b last saw; the remote has moved since: the lease broke.
    let seen = b
        .read_ref(&remotelog::transfer::remote::tracking_ref("origin", "main").unwrap())
        .unwrap();
    let now = remote.read_ref(&RefName::log("main").unwrap()).unwrap();
    assert_eq!(
        rejection(sync::push(
            &b,
            "origin",
            &remote,
            "main",
            sync::Force::WithLease,
            &Silent
        )),
        Rejection::LeaseBroken {
            expected: seen,
            found: now
        }
    );
    assert_eq!(
        rejection(sync::pull(&b, "origin", &remote, "main", &Silent)),
        Rejection::Diverged
    );
    // A log that is only behind: the remote is ahead by a count.
    let c = store(&t.path().join("c"));
    sync::pull(&c, "origin", &remote, "main", &Silent).unwrap();
    append(&a, 4, "a3");
    sync::push(&a, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    assert_eq!(
        rejection(sync::push(
            &c,
            "origin",
            &remote,
            "main",
            sync::Force::No,
            &Silent
        )),
        Rejection::NotFastForward { ahead_by: Some(4) }
    );
}

#[test]
fn an_unreachable_remote_exits_75_so_scripts_can_retry() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let f = t.path().join("m");
    std::fs::write(&f, "m").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    ok(&a, &["remote", "add", "origin", &url]);
    ok(&a, &["push"]);
    srv.stop().unwrap();
    let out = run(&a, &["push"]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
    // A refusal the user must act on is not transient: 1.
    let b = t.path().join("b");
    ok(&b, &["init"]);
    let r = t.path().join("r");
    ok(&r, &["init"]);
    for (s, tag) in [(&a, "a"), (&b, "b")] {
        std::fs::write(&f, tag).unwrap();
        ok(s, &["append", "--group", "g", f.to_str().unwrap()]);
        ok(s, &["remote", "add", "dir", r.to_str().unwrap()]);
    }
    ok(&a, &["push", "dir"]);
    let out = run(&b, &["push", "dir"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
