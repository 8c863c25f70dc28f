//! `clone` through the real binary: a kill at any instant leaves no DEST or a sound store
//! that a rerun (or `pull`) completes; a broken log of the source is named and left out
//! while the others are cloned; what a rerun resumes and what it refuses.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

use remotelog::log::{self, SettingsChange};
use remotelog::{FsStore, Id};

mod common;
use common::{bin, msgs, ok, run, serve, store, text, Rng};

/// `remotelog ARGS...` with no --store of interest (clone takes its paths as arguments).
fn cli(cwd: &Path, args: &[&str]) -> Output {
    run(&cwd.join("no-store"), args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `logs --json` of a store: every log's name, entries and head page. Equal heads mean
/// equal logs: a head page's id covers every entry and every older page.
fn logs_json(store: &Path) -> String {
    ok(store, &["logs", "--json"])
}

fn log_names(store: &Path) -> Vec<String> {
    logs_json(store)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .map(|n| n.trim_matches('"').to_string())
        .collect()
}

/// Clone siblings (`.tmp-clone-*`) in `dir`.
fn siblings(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(remotelog::store::clone_setup::TMP_PREFIX))
        .collect()
}

#[track_caller]
fn check_ok(store: &Path, context: &str) {
    let o = run(store, &["check"]);
    assert!(o.status.success(), "{context}: check failed:\n{}", text(&o));
}

/// A source of three logs and ~4,300 messages: a bulk append (packed), small appends (loose
/// files), a linked-list log (one page per entry) and another packed log.
fn kill_source(dir: &Path) {
    let src = store(dir);
    let plain = SettingsChange::default();
    log::append(&src, "main", &msgs("bulk", 3000), plain).unwrap();
    for i in 0..5 {
        log::append(&src, "main", &msgs(&format!("small{i}"), 20), plain).unwrap();
    }
    let list = SettingsChange {
        capacity: Some(1),
        embed: None,
    };
    log::append(&src, "audit", &msgs("audit", 150), list).unwrap();
    log::append(&src, "team/notes", &msgs("notes", 1000), plain).unwrap();
}

#[test]
fn kill_9_during_clone_leaves_no_dest_or_a_store_that_a_rerun_completes() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    kill_source(&src);
    let want = logs_json(&src);
    let parent = t.path().join("dests");
    std::fs::create_dir(&parent).unwrap();
    let dest = parent.join("dest");

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
    eprintln!("clone kill9: seed {seed} (set REMOTELOG_KILL9_SEED={seed} to replay)");
    let mut rng = Rng(seed);

    let clone = || {
        let mut c = bin();
        c.args(["--quiet", "clone", s(&src), s(&dest)]);
        c
    };
    // A first clone that runs to completion tells how long a whole clone takes here.
    let t0 = Instant::now();
    let o = clone().output().unwrap();
    let full = t0.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(logs_json(&dest), want);
    eprintln!("clone kill9: one clone takes {full:?}");

    const ROUNDS: usize = 20;
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        std::fs::remove_dir_all(&dest).unwrap();
        // Every fourth round clones into an existing empty directory (set up in place).
        let in_place = round % 4 == 3;
        if in_place {
            std::fs::create_dir(&dest).unwrap();
        }
        // A quarter of the kills fall in the first tenth of the clone (the setup), the
        // rest spread over all of it and a little past its end.
        let early = ROUNDS / 4;
        let base = if round < early {
            0.1 * round as f64 / early as f64
        } else {
            0.1 + 0.95 * (round - early) as f64 / (ROUNDS - early - 1) as f64
        };
        let frac = (base + (rng.unit() - 0.5) * 0.05).max(0.0);
        let delay = full.mul_f64(frac);
        let mut child = clone()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; harmless if it already exited
        let finished = child.wait().unwrap().success();
        let context = format!("round {round} (seed {seed}, killed after {delay:?})");

        let state = if !dest.exists() {
            assert!(!in_place, "{context}: the empty DEST was removed");
            "none"
        } else if !dest.join("config").exists() {
            // Only an empty DEST filled in place can be caught before its config, and
            // then it holds nothing but the beginning of the skeleton.
            assert!(in_place, "{context}: DEST exists but is not a store");
            let files = walkdir::WalkDir::new(&dest)
                .into_iter()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "remotes" && !n.starts_with(".tmp-"))
                .collect::<Vec<_>>();
            assert!(files.is_empty(), "{context}: {files:?} before the config");
            "skeleton"
        } else {
            check_ok(&dest, &context);
            "store"
        };

        // Complete it: by pull on every other store, else by the same clone command.
        let by_pull = state == "store" && round % 2 == 1;
        let o = if by_pull {
            run(&dest, &["--quiet", "pull"])
        } else {
            clone().output().unwrap()
        };
        assert!(
            o.status.success(),
            "{context}: completing failed: {}",
            text(&o)
        );
        if state == "store" && !by_pull {
            assert!(
                text(&o).contains("resuming the clone into"),
                "{context}: {}",
                text(&o)
            );
        }
        assert_eq!(logs_json(&dest), want, "{context}: not the source's logs");
        check_ok(&dest, &context);
        assert_eq!(siblings(&parent), Vec::<String>::new(), "{context}");
        outcomes.push(format!(
            "{:.0?}:{}:{state}{}",
            delay,
            if finished { "done" } else { "killed" },
            if in_place { "(in place)" } else { "" }
        ));
    }
    eprintln!("clone kill9: {}", outcomes.join(" "));
    // The last one, fully: every message readable and identical to the source's.
    for name in ["main", "audit", "team/notes"] {
        assert_eq!(
            ok(&dest, &["log", "--json", "--log", name]),
            ok(&src, &["log", "--json", "--log", name])
        );
    }
    let o = run(&dest, &["check", "--read-data"]);
    assert!(o.status.success(), "{}", text(&o));
    eprintln!("clone kill9: total {:?}", started.elapsed());
}

/// A source with logs `a` (packed), `b` and `c` (loose), and the id of one of `b`'s message
/// objects, a loose file.
fn three_logs(dir: &Path) -> (FsStore, Id) {
    let src = store(dir);
    let plain = SettingsChange::default();
    log::append(&src, "a", &msgs("a", 300), plain).unwrap();
    log::append(&src, "b", &msgs("b", 12), plain).unwrap();
    log::append(&src, "c", &msgs("c", 12), plain).unwrap();
    let victim = log::entries(&src, "b").unwrap()[5].h2;
    assert!(src.object_path(&victim).exists(), "b's messages are loose");
    (src, victim)
}

/// Clones a source whose log `b` lacks a message, through `location`.
fn broken_log_is_named_and_left_out(location: &str, src: &FsStore, victim: Id, t: &Path) {
    let hidden = t.join("hidden-object");
    std::fs::rename(src.object_path(&victim), &hidden).unwrap();
    let dest = t.join("dest");
    let o = cli(t, &["clone", location, s(&dest)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line for one broken log: {err}");
    assert!(err.contains("log b could not be copied"), "{err}");
    assert!(err.contains(&victim.to_hex()), "names the object: {err}");
    assert!(err.contains("cloned 2 of 3 logs"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The sound logs are there and complete, the broken one is absent.
    check_ok(&dest, "after a clone with a broken log");
    assert_eq!(log_names(&dest), ["a", "c"]);
    let want: Vec<String> = logs_json(src.root())
        .lines()
        .filter(|l| !l.contains("\"name\":\"b\""))
        .map(String::from)
        .collect();
    assert_eq!(logs_json(&dest).lines().collect::<Vec<_>>(), want);

    // --json says the same, one line per log.
    let dest2 = t.join("dest2");
    let o = cli(t, &["clone", "--json", location, s(&dest2)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let failed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0]["log"], "b");
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains(&victim.to_hex()));
    assert_eq!(log_names(&dest2), ["a", "c"]);

    // Once the source is repaired, the same clone completes DEST.
    std::fs::rename(&hidden, src.object_path(&victim)).unwrap();
    let o = cli(t, &["clone", location, s(&dest)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming the clone into"), "{}", text(&o));
    assert_eq!(logs_json(&dest), logs_json(src.root()));
    check_ok(&dest, "after the repaired source was cloned");
}

#[test]
fn clone_with_a_broken_log_copies_the_others_from_a_directory() {
    let t = tempfile::tempdir().unwrap();
    let (src, victim) = three_logs(&t.path().join("src"));
    broken_log_is_named_and_left_out(s(src.root()), &src, victim, t.path());
}

#[test]
fn clone_with_a_broken_log_copies_the_others_over_http() {
    let t = tempfile::tempdir().unwrap();
    let (src, victim) = three_logs(&t.path().join("src"));
    let server = serve(src.root(), |_| {});
    broken_log_is_named_and_left_out(&server.url(), &src, victim, t.path());
}

#[test]
fn clone_with_several_broken_logs_names_each_and_removes_dest_if_none_copied() {
    let t = tempfile::tempdir().unwrap();
    let (src, victim) = three_logs(&t.path().join("src"));
    std::fs::remove_file(src.object_path(&victim)).unwrap();
    let c_page = log::head(&src, "c").unwrap().unwrap();
    std::fs::remove_file(src.object_path(&c_page)).unwrap();
    let dest = t.path().join("dest");
    let o = cli(t.path(), &["clone", s(src.root()), s(&dest)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "a line per broken log and a summary: {err}");
    assert!(lines[0].contains("log b could not be copied") && lines[0].contains(&victim.to_hex()));
    assert!(lines[1].contains("log c could not be copied") && lines[1].contains(&c_page.to_hex()));
    assert!(
        lines[2].contains("cloned 1 of 3 logs")
            && lines[2].contains("2 logs could not be copied (b, c)")
    );
    assert_eq!(log_names(&dest), ["a"]);
    check_ok(&dest, "with two logs left out");

    // Nothing copied: the new DEST is removed again, unless --keep-partial.
    let only_b = t.path().join("only-b");
    let o = cli(
        t.path(),
        &["clone", "--log", "b", s(src.root()), s(&only_b)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cloned 0 of 1 logs"), "{}", text(&o));
    assert!(!only_b.exists(), "nothing copied, nothing kept");
    let o = cli(
        t.path(),
        &[
            "clone",
            "--keep-partial",
            "--log",
            "b",
            s(src.root()),
            s(&only_b),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    check_ok(&only_b, "kept by --keep-partial");
    assert_eq!(log_names(&only_b), Vec::<String>::new());
    assert!(text(&o).contains("rerun this clone"), "{}", text(&o));
}

#[test]
fn a_rerun_resumes_only_an_interrupted_clone_of_the_same_source() {
    let t = tempfile::tempdir().unwrap();
    let (src, _) = three_logs(&t.path().join("src"));
    let other = t.path().join("other");
    store(&other);
    let dest = t.path().join("dest");
    ok(t.path(), &["clone", s(src.root()), s(&dest)]);

    // Another source: refused, nothing changed.
    let o = cli(t.path(), &["clone", s(&other), s(&dest)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("its origin is"), "{}", text(&o));
    // A clone whose log moved on: refused, pull is the tool.
    let f = t.path().join("m");
    std::fs::write(&f, "mine").unwrap();
    ok(&dest, &["append", "--log", "a", "--group", "g", s(&f)]);
    let before = logs_json(&dest);
    let o = cli(t.path(), &["clone", s(src.root()), s(&dest)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("has changed log a") && text(&o).contains("pull"),
        "{}",
        text(&o)
    );
    assert_eq!(logs_json(&dest), before);
    // A directory with other files: refused and untouched.
    let junk = t.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("keep.txt"), "mine").unwrap();
    let o = cli(t.path(), &["clone", s(src.root()), s(&junk)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("clone into a new directory"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&junk).unwrap().count(), 1);

    // An existing empty directory is filled in place (same inode).
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&empty).unwrap());
    ok(t.path(), &["clone", s(src.root()), s(&empty)]);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&empty).unwrap()),
        ino
    );
    assert_eq!(logs_json(&empty), logs_json(src.root()));
    // The beginning of an in-place setup cut before its config is completed by a rerun.
    let begun = t.path().join("begun");
    std::fs::create_dir_all(begun.join("objects")).unwrap();
    std::fs::copy(empty.join("remotes"), begun.join("remotes")).unwrap();
    ok(t.path(), &["clone", s(src.root()), s(&begun)]);
    assert_eq!(logs_json(&begun), logs_json(src.root()));
}

#[test]
fn stale_clone_siblings_are_cleared_and_live_ones_kept() {
    let t = tempfile::tempdir().unwrap();
    let (src, _) = three_logs(&t.path().join("src"));
    let host: String = remotelog::store::lock::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let prefix = remotelog::store::clone_setup::TMP_PREFIX;
    let stale: PathBuf = t.path().join(format!("{prefix}{host}-{dead}-1"));
    let live = t
        .path()
        .join(format!("{prefix}{host}-{}-2", std::process::id()));
    let foreign = t.path().join(format!("{prefix}elsewhere-{dead}-3"));
    for d in [&stale, &live, &foreign] {
        std::fs::create_dir_all(d.join("objects")).unwrap();
        std::fs::write(d.join("config"), "x").unwrap();
    }
    ok(
        t.path(),
        &["clone", s(src.root()), s(&t.path().join("dest"))],
    );
    assert!(!stale.exists(), "the sibling of a dead process is removed");
    assert!(live.exists(), "a live process's sibling is kept");
    assert!(foreign.exists(), "another host's sibling is kept");
    // And the clone itself leaves none.
    let mut left = siblings(t.path());
    left.sort();
    let mut want = vec![
        live.file_name().unwrap().to_string_lossy().into_owned(),
        foreign.file_name().unwrap().to_string_lossy().into_owned(),
    ];
    want.sort();
    assert_eq!(left, want);
}
