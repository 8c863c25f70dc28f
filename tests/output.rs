//! Output for people, run through the real binary: `log`'s forms, progress that stays off a
//! pipe, --quiet and --verbose, bad values that exit 2, help with examples, completions and
//! the man page, and what `append --dir` takes and skips.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory with a store in `store/`.
struct Env {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        assert_ok(bin().arg("init").arg(&store).output().unwrap());
        Env { dir, store }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `content` to `rel` below the temp dir, creating folders.
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&self.store, args)
    }
}

// ---------------------------------------------------------------------------------------
// log

/// `log` prints the stable one-line form on a pipe (scripts read it), the human form when
/// asked (`--format human`, the default on a terminal), JSON as before, and `-n` limits
/// each.
#[test]
fn log_has_a_human_form_a_stable_plain_form_and_a_limit() {
    let env = Env::new();
    // 2023-11-14 22:13:20 UTC.
    let ts = "1700000000";
    for body in ["first message", "second\nline  two", "third"] {
        assert_ok(run_stdin(
            &env.store,
            &["append", "--group", "chat", "--timestamp", ts],
            body.as_bytes(),
        ));
    }
    assert_ok(run_stdin(
        &env.store,
        &["append", "--group", "chat", "--timestamp", ts],
        &[0xff, 0x00, 0x10],
    ));
    let json: Vec<Value> = stdout(&assert_ok(env.run(&["log", "--json"])))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Newest first: the binary body, third, second, first.
    assert_eq!(json.len(), 4);
    assert_eq!(json[1]["size"], 5);
    assert_eq!(json[2]["size"], 16);

    // Through a pipe: full ids, Unix seconds, exact sizes, as before.
    let plain = stdout(&assert_ok(env.run(&["log"])));
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 4);
    let h1 = json[1]["h1"].as_str().unwrap();
    let h2 = json[1]["h2"].as_str().unwrap();
    assert_eq!(lines[1], format!("{h1} {h2} {ts} 5 chat"));
    assert_eq!(
        stdout(&assert_ok(env.run(&["log", "--format", "plain"]))),
        plain
    );

    // For people: a short id, a local date, a size in units, the group and a preview.
    let o = assert_ok(run_env(
        &env.store,
        &["log", "--format", "human"],
        &[("TZ", "UTC")],
    ));
    let human = stdout(&o);
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 4, "{human}");
    assert!(
        lines[0].starts_with(&json[0]["h1"].as_str().unwrap()[..12]),
        "{human}"
    );
    assert!(!human.contains(h2), "the human form shows no H2:\n{human}");
    assert!(lines[1].contains("2023-11-14 22:13:20"), "{human}");
    assert!(!human.contains(ts), "{human}");
    assert!(lines[2].contains(" 16 B "), "{human}");
    assert!(lines[2].ends_with("chat      second line two"), "{human}");
    assert!(lines[3].ends_with("chat      first message"), "{human}");
    assert!(lines[0].ends_with("(binary)"), "{human}");
    // Another zone shows another local time.
    let o = assert_ok(run_env(
        &env.store,
        &["log", "--format", "human"],
        &[("TZ", "Asia/Tokyo")],
    ));
    assert!(stdout(&o).contains("2023-11-15 07:13:20"), "{}", stdout(&o));

    // -n: the newest N, in each form.
    let two = stdout(&assert_ok(env.run(&["log", "-n", "2"])));
    assert_eq!(
        two,
        plain
            .lines()
            .take(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let one = stdout(&assert_ok(env.run(&["log", "--json", "--max-count", "1"])));
    assert_eq!(one.lines().count(), 1);
    let none = stdout(&assert_ok(
        env.run(&["log", "--format", "human", "-n", "0"]),
    ));
    assert_eq!(none, "");
}

/// A body of many megabytes previews without printing it, and a timestamp outside the
/// calendar's range prints as Unix seconds instead of failing.
#[test]
fn log_human_form_is_bounded_and_takes_any_timestamp() {
    let env = Env::new();
    let big = "word ".repeat(400_000);
    assert_ok(run_stdin(
        &env.store,
        &["append", "--group", "g", "--timestamp", "1"],
        big.as_bytes(),
    ));
    assert_ok(run_stdin(
        &env.store,
        &[
            "append",
            "--group",
            "g",
            "--timestamp",
            &i64::MIN.to_string(),
        ],
        b"old",
    ));
    let o = assert_ok(env.run(&["log", "--format", "human"]));
    let text = stdout(&o);
    assert!(text.len() < 1000, "{} bytes", text.len());
    assert!(text.contains(&format!("@{}", i64::MIN)), "{text}");
    assert!(text.contains("2.0 MB"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Progress, --quiet and --verbose

/// A long run on a pipe draws no bar: stderr holds only the summary lines, no escape
/// sequences, no bar characters; with -q not even those.
#[test]
fn no_progress_bar_on_a_pipe_and_nothing_with_quiet() {
    let env = Env::new();
    for i in 0..3000 {
        env.file(
            &format!("inbox/{:02}/{i}", i % 20),
            format!("message {i}").as_bytes(),
        );
    }
    let inbox = env.path("inbox");
    let remote = env.path("remote");
    let clone = env.path("clone");
    let bar_text = |o: &Output| {
        let e = stderr(o);
        e.contains('\x1b') || e.contains("ETA") || e.contains("=>") || e.contains('\r')
    };
    let o = assert_ok(env.run(&["append", "--group", "g", "--dir", inbox.to_str().unwrap()]));
    assert!(!bar_text(&o), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3000);
    assert_ok(env.run(&["remote", "add", "origin", remote.to_str().unwrap()]));
    for args in [
        &["push"][..],
        &["check", "--read-data"],
        &["clone", remote.to_str().unwrap(), clone.to_str().unwrap()],
    ] {
        let o = assert_ok(env.run(args));
        assert!(!bar_text(&o), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }

    // -q: the ids append was asked for, and nothing else anywhere.
    let o = assert_ok(env.run(&[
        "-q",
        "append",
        "--group",
        "g",
        "--dir",
        inbox.to_str().unwrap(),
    ]));
    assert_eq!(stdout(&o).lines().count(), 3000);
    assert_eq!(stderr(&o), "");
    for args in [
        &["push", "-q"][..],
        &["check", "--read-data", "-q"],
        &["gc", "-q", "--prune", "now"],
        &["repack", "-q"],
        &[
            "remote",
            "add",
            "-q",
            "usb",
            env.path("usb").to_str().unwrap(),
        ],
        &["-q", "init"],
        &["-q", "forget", &stdout(&o)[..12]],
    ] {
        let o = assert_ok(env.run(args));
        assert_eq!(text(&o), "", "{args:?} is not quiet");
    }
    // What was asked for is still shown, and so are errors.
    let list = stdout(&assert_ok(env.run(&["-q", "remote", "list"])));
    assert!(
        list.starts_with("origin\t") && list.contains("\nusb\t"),
        "{list}"
    );
    let o = assert_ok(env.run(&["push", "-q", "--json", "--force-with-lease"]));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["remote"], "origin");
    let o = env.run(&["-q", "log", "--log", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nosuch"));
    // Without -q the summaries are there.
    assert!(stdout(&assert_ok(env.run(&["check"]))).starts_with("ok: "));
    let o = env.run(&["-q", "-v", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// -v says what each phase did (on stderr, even without a terminal), and which files
/// `append --dir` skipped.
#[test]
fn verbose_names_phases_and_skipped_files() {
    let env = Env::new();
    env.file("inbox/a", b"a");
    env.file("inbox/.hidden", b"h");
    let inbox = env.path("inbox");
    let o = assert_ok(env.run(&[
        "append",
        "-v",
        "--group",
        "g",
        "--dir",
        inbox.to_str().unwrap(),
    ]));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "skipped {} (hidden)",
            inbox.join(".hidden").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("append main: reading files: 1, 1 B in "),
        "{err}"
    );
    let remote = env.path("remote");
    assert_ok(env.run(&["remote", "add", "origin", remote.to_str().unwrap()]));
    let o = assert_ok(env.run(&["push", "--verbose"]));
    assert!(
        stderr(&o).contains("push main → origin: copying: 1, "),
        "{}",
        stderr(&o)
    );
    let o = assert_ok(env.run(&["check", "-v", "--read-data"]));
    let err = stderr(&o);
    assert!(err.contains("check: walking the logs: 1 in "), "{err}");
    assert!(err.contains("check: reading objects: 2, "), "{err}");
}

/// Sizes in summaries read as people write them.
#[test]
fn summaries_give_sizes_in_units() {
    let env = Env::new();
    env.file("inbox/a", &vec![b'x'; 1_500_000]);
    let inbox = env.path("inbox");
    let o = assert_ok(env.run(&["append", "--group", "g", "--dir", inbox.to_str().unwrap()]));
    assert!(
        stderr(&o).contains("appended 1 message (1.5 MB) from "),
        "{}",
        stderr(&o)
    );
    let remote = env.path("remote");
    assert_ok(env.run(&["remote", "add", "origin", remote.to_str().unwrap()]));
    let out = stdout(&assert_ok(env.run(&["push"])));
    assert!(out.contains(" MB copied, "), "{out}");
    assert!(!out.contains("bytes"), "{out}");
    let out = stdout(&assert_ok(env.run(&["check", "--read-data"])));
    assert!(out.contains("objects read and hashed (1.5 MB)"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Bad values

/// Every value that does not parse is a malformed command line: exit 2, one message naming
/// the option, before anything is done.
#[test]
fn every_bad_value_exits_2() {
    let env = Env::new();
    let bad: &[&[&str]] = &[
        &["append", "--group-hex", "zz"],
        &["append", "--group-hex", "abc"],
        &["append", "--group", "g", "--timestamp", "yesterday"],
        &["append", "--group", "g", "--page-size", "-1"],
        &["append", "--group", "g", "--embed", "many"],
        &["append", "--group", "g", "--dir", ".", "--exclude", "a[b"],
        &["append", "--group", "g", "--exclude", "*.tmp"],
        &["log", "-n", "ten"],
        &["log", "--format", "fancy"],
        &["log", "--format", "plain", "--json"],
        &["init", "--zstd-level", "99"],
        &["serve", "--listen", "nowhere"],
        &["serve", "--listen", "127.0.0.1:99999"],
        &["serve", "--max-body", "1GB"],
        &["gc", "--wait", "soon"],
        &["repack", "--target-size", "big"],
        &[
            "import-spec",
            "http://127.0.0.1:1",
            "x",
            "--max-pages",
            "-3",
        ],
        &["sim", "--duration", "3 weeks"],
        &["sim", "--page-sizes", "1,two"],
        &["sim", "--scenario", "nope"],
        &["sim", "--seeds", "0"],
        &["completions", "tcsh"],
        &["man", "frobnicate"],
        &["push", "--all", "origin"],
    ];
    for args in bad {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
    // Nothing was appended, simulated or created.
    assert_eq!(stdout(&assert_ok(env.run(&["logs"]))), "");
    assert!(!env.dir.path().join("sim-out").exists());
}

// ---------------------------------------------------------------------------------------
// Help, completions, the man page

/// The subcommands `remotelog CMD --help` lists under "Commands:".
fn commands(prefix: &[&str]) -> Vec<String> {
    let mut args = prefix.to_vec();
    args.push("--help");
    let o = assert_ok(bin().args(&args).output().unwrap());
    stdout(&o)
        .split("Commands:\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A description that wraps goes on further in.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every subcommand's help ends with examples of itself, none mentions the source tree,
/// and append's shows that a group is required.
#[test]
fn every_help_ends_with_examples() {
    let mut all: Vec<Vec<String>> = Vec::new();
    for c in commands(&[]) {
        let subs = commands(&[&c]);
        all.push(vec![c.clone()]);
        for s in subs {
            all.push(vec![c.clone(), s]);
        }
    }
    assert!(all.len() >= 20, "{all:?}");
    for path in all.iter().chain([&Vec::new()]) {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = assert_ok(bin().args(&args).output().unwrap());
        let help = stdout(&o);
        for tree in [
            "format/",
            "docs/",
            "README",
            "ARCHITECTURE",
            "source tree",
            "src/",
        ] {
            assert!(!help.contains(tree), "{args:?} mentions {tree}:\n{help}");
        }
        if path.is_empty() {
            continue;
        }
        let examples = help
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{args:?} has no examples:\n{help}"));
        let lines: Vec<&str> = examples.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "{args:?}");
        assert!(lines.len() <= 4, "{args:?}: {lines:?}");
        let me = format!("remotelog {}", path.join(" "));
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("  ") && l.contains("remotelog ")),
            "{args:?}: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains(&me)),
            "{args:?} has no example of {me}: {lines:?}"
        );
    }
    let o = assert_ok(bin().args(["append", "--help"]).output().unwrap());
    assert!(
        stdout(&o).contains("<--group <GROUP>|--group-hex <HEX>>"),
        "{}",
        stdout(&o)
    );
}

/// `completions SHELL` writes a script that knows the commands; `man` a roff page.
#[test]
fn completions_and_man_page_are_generated() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef remotelog"),
        ("fish", "complete -c remotelog"),
    ] {
        let o = assert_ok(bin().args(["completions", shell]).output().unwrap());
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}:\n{script}");
        for word in ["append", "clone", "group-hex", "include-hidden"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = assert_ok(bin().arg("man").output().unwrap());
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH remotelog 1"),
        "{page}"
    );
    assert!(page.contains(".TH remotelog"), "{page}");
    assert!(
        page.contains(".SH SUBCOMMANDS") || page.contains("append"),
        "{page}"
    );
    let o = assert_ok(bin().args(["man", "push"]).output().unwrap());
    let page = stdout(&o);
    assert!(page.contains(".TH remotelog-push"), "{page}");
    assert!(page.contains("force\\-with\\-lease"), "{page}");
}

// ---------------------------------------------------------------------------------------
// append --dir

fn appended_files(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["file"].as_str().unwrap().to_string()
        })
        .collect()
}

fn rel(env: &Env, files: &[String]) -> Vec<String> {
    let root = env.path("inbox");
    files
        .iter()
        .map(|f| {
            Path::new(f)
                .strip_prefix(&root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

/// `append --dir` leaves out hidden files and folders (`.git/`), empty files and symbolic
/// links, and says how many of each; --include-hidden and --exclude change what it takes,
/// and --json names the file of each message.
#[test]
fn append_dir_skips_hidden_empty_and_links_and_reports_them() {
    let env = Env::new();
    env.file("inbox/a.txt", b"a");
    env.file("inbox/b.tmp", b"b");
    env.file("inbox/sub/c.txt", b"c");
    env.file("inbox/sub/d.tmp", b"d");
    env.file("inbox/drafts/e.txt", b"e");
    env.file("inbox/.DS_Store", b"junk");
    env.file("inbox/.git/config", b"[core]");
    env.file("inbox/.git/objects/ab", b"blob");
    env.file("inbox/sub/.swp", b"swap");
    env.file("inbox/empty", b"");
    std::os::unix::fs::symlink(env.path("inbox/a.txt"), env.path("inbox/link")).unwrap();
    let inbox = env.path("inbox");
    let dir = inbox.to_str().unwrap();

    let o = assert_ok(env.run(&["append", "--group", "g", "--json", "--dir", dir]));
    assert_eq!(
        rel(&env, &appended_files(&o)),
        ["a.txt", "b.tmp", "drafts/e.txt", "sub/c.txt", "sub/d.tmp"]
    );
    let first: Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(first["size"], 1);
    assert_eq!(first["h1"].as_str().unwrap().len(), 64);
    let err = stderr(&o);
    assert_eq!(
        err.trim_end(),
        format!(
            "remotelog: appended 5 messages (5 B) from {dir} to log main; skipped 3 hidden (--include-hidden takes them), 1 symbolic link, 1 empty file"
        )
    );

    let o = assert_ok(env.run(&[
        "append",
        "--group",
        "g",
        "--json",
        "--dir",
        dir,
        "--include-hidden",
        "--exclude",
        "*.tmp",
        "--exclude",
        "drafts",
    ]));
    assert_eq!(
        rel(&env, &appended_files(&o)),
        [
            ".DS_Store",
            ".git/config",
            ".git/objects/ab",
            "a.txt",
            "sub/.swp",
            "sub/c.txt"
        ]
    );
    assert!(
        stderr(&o).contains("; skipped 3 excluded, 1 symbolic link, 1 empty file"),
        "{}",
        stderr(&o)
    );
    // A glob with a slash matches the path below DIR.
    let o = assert_ok(env.run(&[
        "append",
        "--group",
        "g",
        "--json",
        "--dir",
        dir,
        "--exclude",
        "sub/*.txt",
    ]));
    assert_eq!(
        rel(&env, &appended_files(&o)),
        ["a.txt", "b.tmp", "drafts/e.txt", "sub/d.tmp"]
    );

    // Files named on the command line and stdin are recorded too.
    let o = assert_ok(env.run(&[
        "append",
        "--group",
        "g",
        "--json",
        inbox.join("a.txt").to_str().unwrap(),
    ]));
    assert_eq!(
        appended_files(&o),
        [inbox.join("a.txt").display().to_string()]
    );
    let o = assert_ok(run_stdin(
        &env.store,
        &["append", "--group", "g", "--json"],
        b"xyz",
    ));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["file"], Value::Null);
    assert_eq!(v["size"], 3);

    // A folder with nothing left to take says why.
    env.file("only-hidden/.x", b"x");
    let o = env.run(&[
        "append",
        "--group",
        "g",
        "--dir",
        env.path("only-hidden").to_str().unwrap(),
    ]);
    fails_with(
        &o,
        &[
            "only-hidden",
            "no files to append",
            "1 hidden",
            "--include-hidden",
        ],
    );
    // Emptiness is learnt by reading: a folder of empty files appends nothing and says so.
    let before = stdout(&assert_ok(env.run(&["log", "--json"])))
        .lines()
        .count();
    env.file("only-empty/a", b"");
    env.file("only-empty/b/c", b"");
    let o = env.run(&[
        "append",
        "--group",
        "g",
        "--dir",
        env.path("only-empty").to_str().unwrap(),
    ]);
    fails_with(&o, &["only-empty", "no files to append", "2 empty files"]);
    let after = stdout(&assert_ok(env.run(&["log", "--json"])))
        .lines()
        .count();
    assert_eq!(before, after, "a failed append --dir left entries behind");
}

/// The closing hint of `demo` runs as printed, even when `remotelog` is not on PATH (after
/// `cargo run`, before `cargo install`).
#[test]
fn demo_closing_hint_runs_as_printed() {
    let t = tempfile::tempdir().unwrap();
    let o = assert_ok(
        bin()
            .arg("demo")
            .arg(t.path().join("demo"))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap(),
    );
    let out = stdout(&o);
    let hint = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("== try it yourself: "))
        .unwrap_or_else(|| panic!("no hint:\n{out}"));
    let o = std::process::Command::new("sh")
        .args(["-c", hint])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(o.status.success(), "`{hint}`: {}", text(&o));
    assert!(stdout(&o).contains("up to date"), "{}", stdout(&o));
}
