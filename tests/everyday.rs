//! Everyday use of remotes through the binary: locations that cannot go astray, `remote
//! rename|set-url|show`, `repack REMOTE`, the way out after `forget` that is not --force,
//! automatic housekeeping (`gc --auto`) and retention (`forget --older-than|--keep-last`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// Runs `remotelog --store STORE ARGS...` in directory `cwd`.
fn run_in(cwd: &Path, store: &Path, args: &[&str]) -> Output {
    let mut c = bin();
    c.current_dir(cwd).arg("--store").arg(store).args(args);
    run_cmd(c, None)
}

/// A new store at `dir/name`.
fn init(dir: &Path, name: &str) -> PathBuf {
    let s = dir.join(name);
    ok(&s, &["init"]);
    s
}

/// Appends one message with `body` (and `extra` arguments) and returns its H1.
fn append(store: &Path, body: &str, extra: &[&str]) -> String {
    let mut args = vec!["append", "--group", "g"];
    args.extend_from_slice(extra);
    let o = assert_ok(run_stdin(store, &args, body.as_bytes()));
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

/// The entries of log `main` of `store`, as its `log --json` lines.
fn entries(store: &Path) -> Vec<serde_json::Value> {
    ok(store, &["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Bytes of the files of a store's objects and packs, as `gc --auto` counts them.
fn stored_bytes(store: &Path) -> u64 {
    ["objects", "packs"]
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(store.join(d)))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn file_count(dir: &Path, ext: Option<&str>) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| ext.is_none_or(|x| e.path().extension().is_some_and(|y| y == x)))
        .count()
}

/// Regression: any string was a directory remote, so `s3://bucket/node` made a folder
/// `s3:` and pushes went into it; `ftp://x` too.
#[test]
fn locations_are_urls_of_known_schemes_or_directories_never_anything_else() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    append(&a, "one", &[]);
    for (loc, says) in [
        ("gopher://my-bucket/node", "no gopher: remotes"),
        ("ftp://x", "no ftp: remotes"),
        ("FTP://my-bucket", "no ftp: remotes"),
        ("rclone-remote:path", "./rclone-remote:path"),
        ("http://", "not a usable URL"),
        ("http://user:secret@h:1", "no credentials"),
        ("http://h:1/?x=1", "no query"),
    ] {
        let o = run_in(t.path(), &a, &["remote", "add", "x", loc]);
        fails_with(&o, &[loc, says]);
        if says.ends_with(" remotes") || says.starts_with("./") || says.starts_with("not ") {
            // Every refusal of a scheme names the kinds of location there are.
            fails_with(&o, &["store directory", "http://"]);
        }
    }
    assert!(
        !t.path().join("gopher:").exists() && !t.path().join("ftp:").exists(),
        "nothing was created"
    );
    assert_eq!(ok(&a, &["remote", "list"]), "", "nothing was recorded");

    // A relative directory is made absolute when added; `./name:x` is a directory.
    ok(&t.path().join("a"), &["remote", "list"]);
    assert_ok(run_in(t.path(), &a, &["remote", "add", "rel", "backup"]));
    assert_ok(run_in(t.path(), &a, &["remote", "add", "colon", "./b:c"]));
    let list = ok(&a, &["remote", "list"]);
    assert!(
        list.contains(&format!("rel\t{}", t.path().join("backup").display())),
        "{list}"
    );
    assert!(
        list.contains(&t.path().join("b:c").display().to_string()),
        "{list}"
    );
    assert_ok(run_in(t.path(), &a, &["push", "colon"]));
    assert!(t.path().join("b:c").join("config").is_file());
    // A URL is stored in canonical form.
    ok(&a, &["remote", "add", "web", "HTTP://Example.ORG:8080/"]);
    assert!(ok(&a, &["remote", "list"]).contains("web\thttp://example.org:8080\n"));

    // A remotes file written by hand (or by a newer remotelog) with an unknown scheme:
    // push and pull refuse it instead of creating a directory `ftp:`.
    let remotes = a.join("remotes");
    let text = std::fs::read_to_string(&remotes).unwrap();
    std::fs::write(&remotes, format!("{text}ftp = ftp://bucket/node\n")).unwrap();
    fails_with(
        &run_in(t.path(), &a, &["push", "ftp"]),
        &["ftp://bucket/node", "no ftp: remotes"],
    );
    fails_with(
        &run_in(t.path(), &a, &["pull", "ftp"]),
        &["ftp://bucket/node", "no ftp: remotes"],
    );
    let o = run_in(t.path(), &a, &["clone", "ftp://bucket/node", "dest"]);
    fails_with(&o, &["no ftp: remotes"]);
    assert!(!t.path().join("ftp:").exists() && !t.path().join("dest").exists());
}

#[test]
fn a_remote_is_renamed_moved_and_shown() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    let r = t.path().join("r");
    append(&a, "one", &[]);
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    ok(&a, &["push"]);
    let head = entries(&r)[0]["h2"].clone();
    assert!(head.is_string());

    // The tracking ref moves along: a lease push needs no fetch after the rename.
    assert_eq!(
        ok(&a, &["remote", "rename", "origin", "backup"]),
        "renamed remote origin to backup\n"
    );
    let list = ok(&a, &["remote", "list"]);
    assert!(
        list.starts_with("backup\t") && list.contains("main: 1 entries"),
        "{list}"
    );
    assert!(
        !a.join("refs/remotes/origin").exists()
            || file_count(&a.join("refs/remotes/origin"), None) == 0
    );
    let h1 = append(&a, "two", &[]);
    ok(&a, &["forget", &h1]);
    ok(&a, &["push", "backup", "--force-with-lease"]);

    let show: serde_json::Value =
        serde_json::from_str(&ok(&a, &["remote", "show", "backup", "--json"])).unwrap();
    assert_eq!(show["name"], "backup");
    assert_eq!(show["location"], r.to_str().unwrap());
    assert!(
        show["last_push"].as_u64().unwrap() > 1_700_000_000,
        "{show}"
    );
    assert!(show["last_pull"].is_null(), "{show}");
    assert!(show["unreachable"].is_null(), "{show}");
    let logs = show["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{show}");
    assert_eq!(logs[0]["log"], "main");
    assert_eq!(logs[0]["entries"], 1);
    assert_eq!(logs[0]["head"], logs[0]["tracked_head"]);
    let human = ok(&a, &["remote", "show", "backup"]);
    assert!(
        human.contains("last push: 20") && human.contains("last pull: never"),
        "{human}"
    );
    assert!(human.contains("log main: 1 entries, head "), "{human}");
    ok(&a, &["fetch", "backup"]);
    let show: serde_json::Value =
        serde_json::from_str(&ok(&a, &["remote", "show", "backup", "--json"])).unwrap();
    assert!(
        show["last_pull"].as_u64().is_some(),
        "a fetch is a pull: {show}"
    );

    // set-url: a relative location is made absolute; the new place has no log yet.
    let o = run_in(t.path(), &a, &["remote", "set-url", "backup", "elsewhere"]);
    assert_ok(o);
    let show: serde_json::Value =
        serde_json::from_str(&ok(&a, &["remote", "show", "backup", "--json"])).unwrap();
    assert_eq!(
        show["location"],
        t.path().join("elsewhere").to_str().unwrap()
    );
    assert!(
        show["unreachable"].as_str().unwrap().contains("elsewhere"),
        "{show}"
    );
    assert!(show["logs"][0]["entries"].is_null() && show["logs"][0]["tracked_entries"] == 1);
    let human = ok(&a, &["remote", "show", "backup"]);
    assert!(
        human.contains("not reachable now") && human.contains("unknown now"),
        "{human}"
    );
    fails_with(
        &run(&a, &["remote", "set-url", "backup", "ftp://x"]),
        &["no ftp: remotes"],
    );

    // Refusals name the thing.
    ok(
        &a,
        &[
            "remote",
            "add",
            "other",
            t.path().join("o").to_str().unwrap(),
        ],
    );
    fails_with(
        &run(&a, &["remote", "rename", "backup", "other"]),
        &["remote other already exists"],
    );
    fails_with(
        &run(&a, &["remote", "rename", "nope", "x"]),
        &["no remote named \"nope\""],
    );
    fails_with(&run(&a, &["remote", "rename", "backup", "a/b"]), &["a/b"]);
    fails_with(
        &run(&a, &["remote", "show", "nope"]),
        &["no remote named \"nope\""],
    );
    // A removed remote's records go with it; adding it again starts afresh.
    ok(&a, &["remote", "remove", "backup"]);
    ok(&a, &["remote", "add", "backup", r.to_str().unwrap()]);
    let show: serde_json::Value =
        serde_json::from_str(&ok(&a, &["remote", "show", "backup", "--json"])).unwrap();
    assert!(
        show["last_push"].is_null() && show["logs"][0]["tracked_head"].is_null(),
        "{show}"
    );
}

/// Regression: `gc origin` worked and `repack origin` was refused.
#[test]
fn repack_takes_a_remote_name_as_gc_does() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    let r = t.path().join("r");
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    for i in 0..3 {
        // More than a batch writes loose: each push adds a pack.
        let files: Vec<PathBuf> = (0..70)
            .map(|j| {
                let f = t.path().join(format!("m{i}-{j}"));
                std::fs::write(&f, format!("message {i} {j}")).unwrap();
                f
            })
            .collect();
        let mut args = vec!["append", "--group", "g"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        ok(&a, &args);
        ok(&a, &["push"]);
    }
    assert_eq!(file_count(&r.join("packs"), Some("pack")), 3);
    let o = ok(&a, &["repack", "origin", "--json"]);
    let rep: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(rep["packs_before"], 3, "{rep}");
    assert_eq!(file_count(&r.join("packs"), Some("pack")), 1);
    assert_eq!(file_count(&r.join("objects"), None), 0);
    ok(&r, &["check", "--read-data"]);
    assert_eq!(entries(&r).len(), 210);
    fails_with(&run(&a, &["repack", "nope"]), &["no remote named \"nope\""]);
}

/// The commands named in backticks in `text`, as argument lists without `remotelog`.
fn named_commands(text: &str) -> Vec<Vec<String>> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|c| c.strip_prefix("remotelog "))
        .map(|c| c.split_whitespace().map(String::from).collect())
        .collect()
}

/// Sets up the trap of the issue: store `a` pushed log main to `r`, then lost its record
/// of it (the remote removed and added again: never exchanged since), and forgot a message.
fn forgotten_and_never_exchanged(t: &Path) -> PathBuf {
    let a = init(t, "a");
    let r = t.join("r");
    append(&a, "one", &[]);
    let h1 = append(&a, "two", &[]);
    append(&a, "three", &[]);
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    ok(&a, &["push"]);
    ok(&a, &["remote", "remove", "origin"]);
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    ok(&a, &["forget", &h1]);
    a
}

/// Regression: after `forget`, push to a remote never exchanged with looped: `push
/// --force-with-lease` said "pull first", `pull` said "diverged", `push` said "pull first,
/// or --force-with-lease". Now, from each of the three, doing what the messages name
/// leads to a successful push, never back to a command that failed, and never through
/// --force.
#[test]
fn after_forget_the_messages_lead_to_a_push_without_force() {
    for start in [
        vec!["push"],
        vec!["push", "--force-with-lease"],
        vec!["pull"],
    ] {
        let t = tempfile::tempdir().unwrap();
        let a = forgotten_and_never_exchanged(t.path());
        let mut next: Vec<Vec<String>> = vec![start.iter().map(|s| s.to_string()).collect()];
        let mut failed: Vec<Vec<String>> = Vec::new();
        let mut pushed = false;
        for _ in 0..6 {
            let Some(cmd) = next.first().cloned() else {
                break;
            };
            next.remove(0);
            assert!(
                !cmd.contains(&"--force".to_string()),
                "{start:?}: told to --force: {cmd:?}"
            );
            assert!(
                !failed.contains(&cmd),
                "{start:?}: sent back to {cmd:?}, which failed"
            );
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let o = run(&a, &args);
            let said = text(&o);
            if o.status.success() {
                if cmd[0] == "push" {
                    assert!(said.contains("forced"), "{said}");
                    pushed = true;
                    break;
                }
                // What a success names comes after what is still queued from before.
                next.extend(named_commands(&said));
            } else {
                fails_with(&o, &["refused"]);
                failed.push(cmd);
                next = named_commands(&said);
                assert!(
                    !next.is_empty(),
                    "{start:?}: a refusal names no way on: {said}"
                );
            }
        }
        assert!(
            pushed,
            "{start:?}: no push succeeded following the messages"
        );
        // The remote now holds the log without the forgotten message.
        let r = t.path().join("r");
        assert_eq!(entries(&r).len(), 2);
        assert_eq!(entries(&r), entries(&a));
        ok(&r, &["check", "--read-data"]);
    }
}

#[test]
fn fetch_records_the_remote_without_touching_the_local_log() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    let b = t.path().join("b");
    let r = t.path().join("r");
    append(&a, "one", &[]);
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    ok(&a, &["push"]);
    ok(
        t.path(),
        &["clone", r.to_str().unwrap(), b.to_str().unwrap()],
    );
    let show: serde_json::Value =
        serde_json::from_str(&ok(&b, &["remote", "show", "origin", "--json"])).unwrap();
    assert!(
        show["last_pull"].as_u64().is_some(),
        "a clone is a pull: {show}"
    );
    append(&b, "two", &[]);
    ok(&b, &["push"]);
    let before = entries(&a);
    let o = ok(&a, &["fetch"]);
    assert!(o.contains("main from origin: fetched"), "{o}");
    assert!(
        o.contains("origin has 1 entries more; `remotelog pull origin --log main`"),
        "{o}"
    );
    assert_eq!(entries(&a), before, "the local log is untouched");
    let status = ok(&a, &["status", "--json"]);
    assert!(status.contains("\"behind\":1"), "{status}");
    let o = ok(&a, &["fetch", "--log", "main"]);
    assert!(o.contains("main from origin: up-to-date"), "{o}");
    // A log the remote lacks clears what was recorded.
    let o = ok(&a, &["fetch", "--log", "other", "--json"]);
    assert!(o.contains("\"outcome\":\"absent\""), "{o}");
    fails_with(&run(&a, &["fetch", "nope"]), &["no remote named \"nope\""]);
}

/// Appends `n` messages to `a` and pushes each (the sender pattern), returning the
/// largest sizes the remote and the local store reached.
fn sender(a: &Path, rounds: usize) -> (u64, u64) {
    let r = a.parent().unwrap().join("r");
    let (mut remote_max, mut local_max) = (0, 0);
    for i in 0..rounds {
        append(a, &format!("message {i}"), &[]);
        let o = assert_ok(run(a, &["push"]));
        assert!(String::from_utf8_lossy(&o.stdout).contains("main to origin: "));
        remote_max = remote_max.max(stored_bytes(&r));
        local_max = local_max.max(stored_bytes(a));
    }
    (remote_max, local_max)
}

/// Sets the `gc-auto*` settings of the store at `s`.
fn configure(s: &Path, lines: &str) {
    let config = s.join("config");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}{lines}")).unwrap();
}

/// Regression: the sender pattern (append one, push, repeat) left a remote 73 times its
/// live size: nothing collected. With housekeeping, the remote and the local store stay
/// within a bound of their live bytes, and nothing acknowledged is lost.
#[test]
fn gc_auto_keeps_the_sender_pattern_bounded_and_loses_nothing() {
    const ROUNDS: usize = 30;
    let settings = "gc-auto-prune = now\ngc-auto-bytes = 4096\n";
    let run_with = |auto: bool| {
        let t = tempfile::tempdir().unwrap();
        let a = init(t.path(), "a");
        let r = t.path().join("r");
        ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
        append(&a, "first", &[]);
        ok(&a, &["push"]);
        let tuning = if auto {
            settings.to_string()
        } else {
            "gc-auto = 0\n".to_string()
        };
        configure(&a, &tuning);
        configure(&r, &tuning);
        let (remote_max, local_max) = sender(&a, ROUNDS);
        (t, remote_max, local_max)
    };
    let (t, remote_max, local_max) = run_with(true);
    let (a, r) = (t.path().join("a"), t.path().join("r"));
    // Nothing acknowledged is lost: every message is in both, every object sound.
    assert_eq!(entries(&r).len(), ROUNDS + 1);
    assert_eq!(entries(&r), entries(&a));
    ok(&r, &["check", "--read-data"]);
    ok(&a, &["check", "--read-data"]);
    // Live bytes: what a full collection and repack leave.
    let live = |s: &Path| {
        let copy = t.path().join("copy");
        let _ = std::fs::remove_dir_all(&copy);
        ok(
            t.path(),
            &["clone", s.to_str().unwrap(), copy.to_str().unwrap()],
        );
        ok(&copy, &["gc", "--prune", "now"]);
        ok(&copy, &["repack"]);
        stored_bytes(&copy)
    };
    let (live_r, live_a) = (live(&r), live(&a));
    let bound = |live: u64| 2 * live + 8 * 1024;
    assert!(
        remote_max <= bound(live_r),
        "remote reached {remote_max} bytes with {live_r} live"
    );
    assert!(
        local_max <= bound(live_a),
        "local store reached {local_max} bytes with {live_a} live"
    );
    // The same rounds without housekeeping pass that bound: the test measures something.
    let (_t, unkept, _) = run_with(false);
    assert!(
        unkept > bound(live_r),
        "without gc --auto: {unkept} bytes, live {live_r}"
    );
}

#[test]
fn gc_auto_is_skipped_while_another_upkeep_runs_and_can_be_turned_off() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    configure(&a, "gc-auto = 1\ngc-auto-prune = now\n");
    // The first write records the store as it is, and collects nothing: a store's first
    // large write is not followed by a gc that has nothing to find.
    let o = assert_ok(run_stdin(&a, &["append", "--group", "g"], b"one"));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    assert!(a.join("gc-auto-state").is_file());
    assert_eq!(file_count(&a.join("objects"), None), 2);
    // The next append passes gc-auto = 1: housekeeping ran and said so on stderr.
    let o = assert_ok(run_stdin(&a, &["append", "--group", "g"], b"two"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("housekeeping of the store ("), "{err}");
    assert_eq!(
        file_count(&a.join("objects"), None),
        0,
        "loose objects were packed"
    );
    // Another writer works on the store (this test process holds a lease): the append
    // succeeds, and housekeeping, after a short wait, leaves it for a later write.
    std::fs::create_dir_all(a.join("locks")).unwrap();
    let lease = a.join(format!("locks/writer-{}-0", std::process::id()));
    std::fs::write(
        &lease,
        format!(
            "pid={}\nhost={}\ntime=0\n",
            std::process::id(),
            remotelog::store::lock::hostname()
        ),
    )
    .unwrap();
    append(&a, "three", &[]);
    let o = assert_ok(run_stdin(&a, &["append", "--group", "g"], b"four"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("housekeeping"));
    assert!(
        file_count(&a.join("objects"), None) >= 4,
        "nothing was collected"
    );
    std::fs::remove_file(&lease).unwrap();
    // -q: it runs without a word.
    let o = assert_ok(run_stdin(&a, &["-q", "append", "--group", "g"], b"five"));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    assert_eq!(file_count(&a.join("objects"), None), 0);
    configure(&a, "gc-auto = 0\n");
    append(&a, "six", &[]);
    append(&a, "seven", &[]);
    assert!(
        file_count(&a.join("objects"), None) >= 4,
        "off: nothing collected"
    );
    assert_eq!(entries(&a).len(), 7);
    ok(&a, &["check", "--read-data"]);
    // A bad setting is refused naming it.
    configure(&a, "gc-auto-prune = soon\n");
    fails_with(&run(&a, &["logs"]), &["gc-auto-prune", "soon"]);
}

/// The day this many days ago, as unix seconds.
fn days_ago(d: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now - d * 86400).to_string()
}

#[test]
fn retention_forgets_by_age_and_count_then_push_and_gc_free_the_remote() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    let r = t.path().join("r");
    for (body, age) in [
        ("old-1", 90),
        ("old-2", 60),
        ("new-1", 10),
        ("old-3", 45),
        ("new-2", 1),
    ] {
        append(&a, body, &["--timestamp", &days_ago(age)]);
    }
    ok(&a, &["remote", "add", "origin", r.to_str().unwrap()]);
    ok(&a, &["push"]);
    let bodies = |s: &Path| -> Vec<String> {
        entries(s)
            .iter()
            .map(|e| ok(s, &["cat", e["h1"].as_str().unwrap()]))
            .collect()
    };
    // Nothing older than a year: nothing to do, and that is no error.
    let o = ok(&a, &["forget", "--older-than", "1y"]);
    assert!(o.contains("nothing to remove; all 5 entries kept"), "{o}");
    // Older than 30 days, except the newest 3 (old-3 is among them).
    let o = ok(
        &a,
        &[
            "forget",
            "--older-than",
            "30d",
            "--keep-last",
            "3",
            "--json",
        ],
    );
    let f: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(f["removed"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(bodies(&a), ["new-2", "old-3", "new-1"]);
    ok(&a, &["forget", "--older-than", "4w"]);
    assert_eq!(bodies(&a), ["new-2", "new-1"]);
    ok(&a, &["forget", "--keep-last", "1"]);
    assert_eq!(bodies(&a), ["new-2"]);
    ok(&a, &["check", "--read-data"]);
    // Then as today: push --force-with-lease and gc, here and there.
    ok(&a, &["push", "--force-with-lease"]);
    assert_eq!(bodies(&r), ["new-2"]);
    let before = stored_bytes(&r);
    ok(&a, &["gc", "origin", "--prune", "now"]);
    assert!(stored_bytes(&r) < before);
    ok(&r, &["check", "--read-data"]);
    // Bad values are a malformed command line.
    for bad in [
        &["forget", "--older-than", "soon"][..],
        &["forget", "--keep-last", "0"],
        &["forget", "--keep-last", "2", "abcdef12"],
        &["forget"],
    ] {
        assert_eq!(run(&a, bad).status.code(), Some(2), "{bad:?}");
    }
}

/// Regression: `gc --prune 1w` failed with exit status 1; a bad age is a malformed
/// command line (2).
#[test]
fn gc_prune_takes_humantime_ages_and_a_bad_one_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let a = init(t.path(), "a");
    append(&a, "one", &[]);
    for age in ["1w", "2d 3h", "90", "now", "999999999999999999d"] {
        ok(&a, &["gc", "--prune", age]);
    }
    let o = run(&a, &["gc", "--prune", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("soon"));
}
