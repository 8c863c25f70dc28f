//! End-to-end tests of the `remotelog` binary on temporary directories.
//!
//! Ids are checked against independent computations: H1 with the `sha2` crate from the
//! formula of format/store-v1.md section 3.1, H2 with `blake3` over a CBOR encoding written
//! out by hand below and in tests/common (section 3).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;
use common::{assert_ok, bin, cbor_head, fails_with, run, run_cmd, run_stdin};

// ---------------------------------------------------------------------------------------
// Helpers

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Env {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let o = assert_ok(bin().arg("init").arg(&store).output().unwrap());
        assert!(store.join("config").is_file(), "{}", stdout(&o));
        Env { dir, store }
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&self.store, args)
    }

    fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_stdin(&self.store, args, input)
    }

    /// Writes `content` to `rel` below the temp dir (creating folders) and returns its path.
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        p
    }

    fn log_json(&self, log: &str) -> Vec<Value> {
        let o = assert_ok(self.run(&["log", "--log", log, "--json"]));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    fn logs_json(&self) -> BTreeMap<String, Value> {
        let o = assert_ok(self.run(&["logs", "--json"]));
        stdout(&o)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                (v["name"].as_str().expect("name").to_string(), v)
            })
            .collect()
    }

    fn check_ok(&self) {
        let o = assert_ok(self.run(&["check", "--read-data"]));
        assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    }
}

/// H1 = SHA-256("MESSAGE_ID" ‖ group ‖ le64(ts) ‖ body), computed independently.
fn h1(group: &[u8], ts: i64, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"MESSAGE_ID");
    h.update(group);
    h.update(ts.to_le_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// H2 = BLAKE3 of `[1, 1, group: bstr, ts: int, body: bstr]`, encoded here by hand.
fn h2(group: &[u8], ts: i64, body: &[u8]) -> String {
    let mut o = Vec::new();
    cbor_head(4, 5, &mut o);
    cbor_head(0, 1, &mut o);
    cbor_head(0, 1, &mut o);
    cbor_head(2, group.len() as u64, &mut o);
    o.extend_from_slice(group);
    if ts >= 0 {
        cbor_head(0, ts as u64, &mut o);
    } else {
        cbor_head(1, !ts as u64, &mut o);
    }
    cbor_head(2, body.len() as u64, &mut o);
    o.extend_from_slice(body);
    blake3::hash(&o).to_hex().to_string()
}

/// Parses `append` output: one `H1 H2` line per message.
fn id_lines(o: &Output) -> Vec<(String, String)> {
    stdout(o)
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 2, "not `H1 H2`: {l:?}");
            for p in &parts {
                assert!(
                    p.len() == 64
                        && p.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "not 64 lowercase hex digits: {p:?}"
                );
            }
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

/// Every file below `dir` with its content and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let md = e.metadata().unwrap();
            let content = if md.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.path().to_path_buf(), (content, md.modified().unwrap()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// init

#[test]
fn init_creates_a_store_and_a_second_init_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let o = assert_ok(bin().arg("init").arg(&store).output().unwrap());
    assert!(
        stdout(&o).contains(&store.display().to_string()),
        "{}",
        stdout(&o)
    );
    let config = fs::read_to_string(store.join("config")).unwrap();
    assert!(config.starts_with("remotelog-store\n"), "{config}");
    let version = config
        .lines()
        .find_map(|l| l.strip_prefix("format-version = "))
        .and_then(|v| v.parse::<u32>().ok());
    assert!(version.is_some_and(|v| v >= 1), "{config}");
    assert!(store.join("objects").is_dir());
    assert!(store.join("refs").is_dir());

    // Give the store some content, so "changes nothing" covers objects and refs too.
    assert_ok(run_stdin(
        &store,
        &["append", "--group", "g", "--timestamp", "1"],
        b"x",
    ));
    let before = snapshot(&store);
    for o in [
        bin().arg("init").arg(&store).output().unwrap(),
        bin()
            .arg("--store")
            .arg(&store)
            .arg("init")
            .output()
            .unwrap(),
        bin()
            .arg("init")
            .arg(&store)
            .args(["--zstd-level", "19"])
            .output()
            .unwrap(),
    ] {
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(text.contains("already"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        assert_eq!(snapshot(&store), before, "second init changed the store");
    }
}

#[test]
fn init_with_global_store_option_env_and_default_dir() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    assert_ok(bin().arg("--store").arg(&a).arg("init").output().unwrap());
    assert!(a.join("config").is_file());

    let b = dir.path().join("b");
    assert_ok(
        bin()
            .env("REMOTELOG_STORE", &b)
            .arg("init")
            .output()
            .unwrap(),
    );
    assert!(b.join("config").is_file());
    // The env var selects the store for other commands too.
    assert_ok(run_cmd(
        {
            let mut c = bin();
            c.env("REMOTELOG_STORE", &b)
                .args(["append", "--group", "g", "--timestamp", "5"]);
            c
        },
        Some(b"via env"),
    ));
    let o = assert_ok(
        bin()
            .env("REMOTELOG_STORE", &b)
            .args(["cat", &h1(b"g", 5, b"via env")])
            .output()
            .unwrap(),
    );
    assert_eq!(o.stdout, b"via env");

    let cwd = dir.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    assert_ok(bin().current_dir(&cwd).arg("init").output().unwrap());
    assert!(cwd.join(".remotelog").join("config").is_file());
}

#[test]
fn init_on_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    fs::write(&f, "x").unwrap();
    let o = bin().arg("init").arg(&f).output().unwrap();
    fails_with(&o, &["file"]);
}

// ---------------------------------------------------------------------------------------
// append

#[test]
fn append_files_prints_h1_h2_matching_the_formulas() {
    let env = Env::new();
    let bodies: [&[u8]; 3] = [b"first", b"", b"\x00\xff binary \n body"];
    let files: Vec<PathBuf> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| env.file(&format!("in/{i}"), b))
        .collect();
    let mut args = vec!["append", "--group", "chat", "--timestamp", "1700000000"];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let o = assert_ok(env.run(&args));
    let ids = id_lines(&o);
    assert_eq!(ids.len(), 3);
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(
            ids[i].0,
            h1(b"chat", 1_700_000_000, body),
            "H1 of message {i}"
        );
        assert_eq!(
            ids[i].1,
            h2(b"chat", 1_700_000_000, body),
            "H2 of message {i}"
        );
    }
    // The last file is the newest: `log` lists them in reverse.
    let log = env.log_json("main");
    let got: Vec<(&str, &str)> = log
        .iter()
        .map(|v| (v["h1"].as_str().unwrap(), v["h2"].as_str().unwrap()))
        .collect();
    let want: Vec<(&str, &str)> = ids
        .iter()
        .rev()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(got, want);
    env.check_ok();
}

#[test]
fn append_negative_timestamp_and_group_hex() {
    let env = Env::new();
    let group = [0x00u8, 0xde, 0xad, 0xbe, 0xef, 0xff];
    let o = assert_ok(env.run_stdin(
        &[
            "append",
            "--group-hex",
            "00deadbeefff",
            "--timestamp",
            "-42",
        ],
        b"neg",
    ));
    let ids = id_lines(&o);
    assert_eq!(
        ids,
        vec![(h1(&group, -42, b"neg"), h2(&group, -42, b"neg"))]
    );
    let log = env.log_json("main");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["group"], "00deadbeefff");
    assert_eq!(log[0]["timestamp"], -42);
    assert_eq!(log[0]["size"], 3);

    // Extreme timestamps survive the round trip too.
    for ts in [i64::MIN, i64::MAX, 0] {
        let t = ts.to_string();
        let o = assert_ok(env.run_stdin(&["append", "--group", "x", "--timestamp", &t], b"edge"));
        assert_eq!(
            id_lines(&o),
            vec![(h1(b"x", ts, b"edge"), h2(b"x", ts, b"edge"))]
        );
        assert_eq!(env.log_json("main")[0]["timestamp"], ts);
    }
}

#[test]
fn append_dir_takes_files_in_sorted_path_order() {
    let env = Env::new();
    // Created out of order, nested, with an empty sub-folder.
    let layout: [(&str, &[u8]); 5] = [
        ("inbox/c", b"C"),
        ("inbox/a", b"A"),
        ("inbox/b/2", b"B2"),
        ("inbox/b/1", b"B1"),
        ("inbox/0", b"ZERO"),
    ];
    for (rel, body) in layout {
        env.file(rel, body);
    }
    fs::create_dir_all(env.dir.path().join("inbox/empty")).unwrap();
    let inbox = env.dir.path().join("inbox");
    let o = assert_ok(env.run(&[
        "append",
        "--group",
        "g",
        "--timestamp",
        "7",
        "--dir",
        inbox.to_str().unwrap(),
    ]));
    let ids = id_lines(&o);
    let order: [&[u8]; 5] = [b"ZERO", b"A", b"B1", b"B2", b"C"];
    let want: Vec<(String, String)> = order
        .iter()
        .map(|b| (h1(b"g", 7, b), h2(b"g", 7, b)))
        .collect();
    assert_eq!(ids, want, "appended in sorted path order");
    // Newest first: C is the newest.
    let log = env.log_json("main");
    let sizes: Vec<u64> = log.iter().map(|v| v["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![1, 2, 2, 1, 4]);
    assert_eq!(log[0]["h1"].as_str().unwrap(), h1(b"g", 7, b"C"));
    assert_eq!(log[4]["h1"].as_str().unwrap(), h1(b"g", 7, b"ZERO"));
    env.check_ok();
}

#[test]
fn append_from_stdin() {
    let env = Env::new();
    let body = b"hello from stdin\n\x00\x01";
    let o = assert_ok(env.run_stdin(&["append", "--group", "room", "--timestamp", "99"], body));
    assert_eq!(
        id_lines(&o),
        vec![(h1(b"room", 99, body), h2(b"room", 99, body))]
    );
    let o = assert_ok(env.run(&["cat", &h1(b"room", 99, body)]));
    assert_eq!(o.stdout, body);
}

#[test]
fn append_without_timestamp_uses_now() {
    let env = Env::new();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_ok(env.run_stdin(&["append", "--group", "g"], b"now"));
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts = env.log_json("main")[0]["timestamp"].as_i64().unwrap();
    assert!(before <= ts && ts <= after, "{before} <= {ts} <= {after}");
}

#[test]
fn append_with_an_unreadable_file_appends_nothing() {
    let env = Env::new();
    assert_ok(env.run_stdin(&["append", "--group", "g", "--timestamp", "1"], b"one"));
    let good = env.file("good", b"good");
    let missing = env.dir.path().join("no-such-file");
    let o = env.run(&[
        "append",
        "--group",
        "g",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    fails_with(&o, &["no-such-file"]);
    assert_eq!(
        env.log_json("main").len(),
        1,
        "a failed append changed the log"
    );
}

#[test]
fn appends_accumulate_and_logs_lists_counts() {
    let env = Env::new();
    for i in 0..3 {
        assert_ok(env.run_stdin(
            &["append", "--group", "g", "--timestamp", &i.to_string()],
            format!("main {i}").as_bytes(),
        ));
    }
    for i in 0..2 {
        assert_ok(env.run_stdin(
            &[
                "append",
                "--log",
                "team/chat",
                "--group",
                "g",
                "--timestamp",
                &i.to_string(),
            ],
            format!("chat {i}").as_bytes(),
        ));
    }
    let o = assert_ok(env.run(&["logs"]));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let main = lines.iter().find(|l| l.starts_with("main")).expect(&text);
    let chat = lines
        .iter()
        .find(|l| l.starts_with("team/chat"))
        .expect(&text);
    assert!(main.contains('3'), "{main}");
    assert!(chat.contains('2'), "{chat}");

    let logs = env.logs_json();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs["main"]["entries"], 3);
    assert_eq!(logs["team/chat"]["entries"], 2);
    assert_eq!(env.log_json("main").len(), 3);
    assert_eq!(env.log_json("team/chat").len(), 2);
    env.check_ok();
}

#[test]
fn logs_of_an_empty_store_is_empty() {
    let env = Env::new();
    let o = assert_ok(env.run(&["logs"]));
    assert_eq!(stdout(&o).trim(), "");
    let o = assert_ok(env.run(&["check"]));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
}

// ---------------------------------------------------------------------------------------
// log, cat

#[test]
fn log_json_has_the_documented_fields() {
    let env = Env::new();
    let a = env.file("a", &[7u8; 300]);
    assert_ok(env.run(&[
        "append",
        "--group",
        "grp",
        "--timestamp",
        "12345",
        a.to_str().unwrap(),
    ]));
    let log = env.log_json("main");
    assert_eq!(log.len(), 1);
    let v = &log[0];
    assert_eq!(v["h1"].as_str().unwrap(), h1(b"grp", 12345, &[7u8; 300]));
    assert_eq!(v["h2"].as_str().unwrap(), h2(b"grp", 12345, &[7u8; 300]));
    assert_eq!(v["group"].as_str().unwrap(), hex::encode(b"grp"));
    assert_eq!(v["timestamp"].as_i64().unwrap(), 12345);
    assert_eq!(v["size"].as_u64().unwrap(), 300);

    // The plain form names both ids on one line per entry.
    let o = assert_ok(env.run(&["log"]));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains(v["h1"].as_str().unwrap()) && text.contains(v["h2"].as_str().unwrap()));
}

#[test]
fn cat_by_h1_h2_and_prefix() {
    let env = Env::new();
    let bodies: [&[u8]; 3] = [b"alpha", b"beta \xff\x00", b"gamma"];
    for (i, b) in bodies.iter().enumerate() {
        assert_ok(env.run_stdin(
            &["append", "--group", "g", "--timestamp", &i.to_string()],
            b,
        ));
    }
    for (i, b) in bodies.iter().enumerate() {
        let a = h1(b"g", i as i64, b);
        let z = h2(b"g", i as i64, b);
        for id in [
            &a[..],
            &z[..],
            &a[..8],
            &z[..8],
            &a[..20],
            &a.to_uppercase()[..],
        ] {
            let o = env.run(&["cat", id]);
            if id.bytes().any(|c| c.is_ascii_uppercase()) {
                // Upper-case hex is optional; if accepted it must be the same message.
                if o.status.success() {
                    assert_eq!(o.stdout, *b);
                }
                continue;
            }
            let o = assert_ok(o);
            assert_eq!(o.stdout, *b, "cat {id}");
        }
    }
}

#[test]
fn cat_finds_messages_in_any_log() {
    let env = Env::new();
    assert_ok(env.run_stdin(
        &["append", "--log", "x/y", "--group", "g", "--timestamp", "3"],
        b"deep",
    ));
    let o = assert_ok(env.run(&["cat", &h1(b"g", 3, b"deep")[..10]]));
    assert_eq!(o.stdout, b"deep");
}

// ---------------------------------------------------------------------------------------
// Errors: exit 1, one line on stderr naming the thing

#[test]
fn missing_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    for args in [
        &["log"][..],
        &["logs"],
        &["check"],
        &["cat", "0123456789abcdef"],
    ] {
        let o = run(&nowhere, args);
        fails_with(&o, &["nowhere"]);
    }
    let o = run_stdin(&nowhere, &["append", "--group", "g"], b"x");
    fails_with(&o, &["nowhere"]);
    assert!(
        !nowhere.exists(),
        "a failing command created the store directory"
    );

    // A directory that exists but is not a store.
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let o = run(&plain, &["log"]);
    fails_with(&o, &["plain"]);
    assert_eq!(fs::read_dir(&plain).unwrap().count(), 0);
}

#[test]
fn bad_log_names_are_refused() {
    let env = Env::new();
    for name in [
        "..",
        "../escape",
        "a/../b",
        "/abs",
        "a//b",
        ".hidden",
        "x.lock",
        "sp ace",
    ] {
        let o = env.run_stdin(&["append", "--log", name, "--group", "g"], b"x");
        fails_with(&o, &[name]);
        let o = env.run(&["log", "--log", name]);
        fails_with(&o, &[name]);
    }
    assert!(!env.dir.path().join("escape").exists());
    assert!(!env.store.join("escape").exists());
    let o = assert_ok(env.run(&["logs"]));
    assert_eq!(stdout(&o).trim(), "", "a refused name created a log");
}

#[test]
fn unknown_log_and_unknown_id_are_named() {
    let env = Env::new();
    assert_ok(env.run_stdin(&["append", "--group", "g", "--timestamp", "1"], b"x"));
    let o = env.run(&["log", "--log", "nosuchlog"]);
    fails_with(&o, &["nosuchlog"]);
    let o = env.run(&["cat", "0123456789abcdef"]);
    fails_with(&o, &["0123456789abcdef"]);
    let full = "ab".repeat(32);
    let o = env.run(&["cat", &full]);
    fails_with(&o, &[&full]);
    // Too short or not hex: refused, naming what was given.
    let o = env.run(&["cat", "abc"]);
    fails_with(&o, &["abc"]);
    let o = env.run(&["cat", "not-hex-at-all"]);
    fails_with(&o, &["not-hex-at-all"]);
}

#[test]
fn group_hex_that_is_not_hex_is_refused() {
    let env = Env::new();
    // A malformed command line: exit 2, naming the option and the value.
    for bad in ["zz", "abc", "0x12"] {
        let o = env.run_stdin(&["append", "--group-hex", bad, "--timestamp", "1"], b"x");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--group-hex") && stderr(&o).contains(bad));
    }
    let o = assert_ok(env.run(&["logs"]));
    assert_eq!(stdout(&o).trim(), "");
}

#[test]
fn missing_dir_for_append_is_named() {
    let env = Env::new();
    let nodir = env.dir.path().join("nodir");
    let o = env.run(&["append", "--group", "g", "--dir", nodir.to_str().unwrap()]);
    fails_with(&o, &["nodir"]);
    let empty = env.dir.path().join("emptydir");
    fs::create_dir(&empty).unwrap();
    let o = env.run(&["append", "--group", "g", "--dir", empty.to_str().unwrap()]);
    fails_with(&o, &["emptydir"]);
}

/// Regression: `append --dir` on a missing directory said "not a directory".
#[test]
fn append_dir_says_a_missing_directory_does_not_exist() {
    let env = Env::new();
    let nodir = env.dir.path().join("nodir");
    let o = env.run(&["append", "--group", "g", "--dir", nodir.to_str().unwrap()]);
    fails_with(&o, &["nodir", "no such directory"]);
    assert!(!stderr(&o).contains("not a directory"), "{}", stderr(&o));
    // A file is still "not a directory".
    let file = env.file("a-file", b"x");
    let o = env.run(&["append", "--group", "g", "--dir", file.to_str().unwrap()]);
    fails_with(&o, &["a-file", "not a directory"]);
}

/// Regression: an I/O error printed its cause twice (`f: No such file or directory (os
/// error 2): No such file or directory (os error 2)`).
#[test]
fn io_errors_print_their_cause_once() {
    let env = Env::new();
    let missing = env.dir.path().join("nosuchfile");
    let o = env.run(&["append", "--group", "g", missing.to_str().unwrap()]);
    fails_with(&o, &["nosuchfile", "os error 2"]);
    assert_eq!(stderr(&o).matches("os error").count(), 1, "{}", stderr(&o));
    // The same through a store path.
    let o = run(&env.dir.path().join("store/config/x"), &["logs"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).matches("os error").count() <= 1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn malformed_command_lines_exit_2() {
    let env = Env::new();
    for args in [
        &["append"][..],                                    // no group
        &["append", "--group", "a", "--group-hex", "00"],   // both groups
        &["append", "--group", "a", "--timestamp", "soon"], // not a number
        &["frobnicate"],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}

// ---------------------------------------------------------------------------------------
// check

#[test]
fn check_passes_on_a_sound_store() {
    let env = Env::new();
    for (log, n) in [("main", 5), ("other", 12)] {
        for i in 0..n {
            env.file(
                &format!("{log}/{i:03}"),
                format!("{log} message {i}").as_bytes(),
            );
        }
        let d = env.dir.path().join(log);
        assert_ok(env.run(&[
            "append",
            "--log",
            log,
            "--group",
            "g",
            "--page-size",
            "4",
            "--embed",
            "2",
            "--dir",
            d.to_str().unwrap(),
        ]));
    }
    let o = assert_ok(env.run(&["check"]));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    let o = assert_ok(env.run(&["check", "--read-data"]));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    let o = assert_ok(env.run(&["check", "--json"]));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["logs"], 2);
    assert_eq!(v["entries"], 17);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

// ---------------------------------------------------------------------------------------
// --help

#[test]
fn every_help_exits_0_and_mentions_its_options() {
    let cases: [(&[&str], &[&str]); 9] = [
        (
            &["--help"],
            &["--store", "init", "append", "log", "cat", "logs", "check"],
        ),
        (&["help"], &["init", "append"]),
        (&["init", "--help"], &["--zstd-level", "DIR"]),
        (
            &["append", "--help"],
            &[
                "--log",
                "--group",
                "--group-hex",
                "--timestamp",
                "--dir",
                "--page-size",
                "--embed",
                "FILE",
            ],
        ),
        (&["log", "--help"], &["--log", "--json"]),
        (&["cat", "--help"], &["ID", "H1", "H2"]),
        (&["logs", "--help"], &["--json"]),
        (&["check", "--help"], &["--read-data"]),
        (&["demo", "--help"], &["demo"]),
    ];
    for (args, needles) in cases {
        let o = bin().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?} exit {:?}", o.status);
        let text = stdout(&o);
        for n in needles {
            assert!(
                text.contains(n),
                "`remotelog {}` does not mention {n}:\n{text}",
                args.join(" ")
            );
        }
        // Every subcommand's help also says where the store is.
        if args.len() == 2 {
            assert!(text.contains("--store"), "{args:?}:\n{text}");
        }
    }
    let o = bin().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------------------
// Page settings

#[test]
fn page_size_and_embed_show_in_logs_json_and_persist() {
    let env = Env::new();
    let append = |log: &str, extra: &[&str], body: &str| {
        let mut args = vec!["append", "--log", log, "--group", "g", "--timestamp", "1"];
        args.extend_from_slice(extra);
        assert_ok(env.run_stdin(&args, body.as_bytes()));
    };
    append("linked", &["--page-size", "1"], "l1");
    append("linked", &[], "l2");
    append("linked", &[], "l3");
    append("full", &["--page-size", "0", "--embed", "3"], "f1");
    for i in 2..=5 {
        append("full", &[], &format!("f{i}"));
    }
    append("dflt", &[], "d1");

    let logs = env.logs_json();
    assert_eq!(logs["linked"]["page_size"], 1);
    assert_eq!(logs["linked"]["embed"], 0);
    assert_eq!(logs["linked"]["entries"], 3);
    assert_eq!(logs["full"]["page_size"], 0);
    assert_eq!(logs["full"]["embed"], 3);
    assert_eq!(logs["full"]["entries"], 5);
    assert_eq!(
        logs["dflt"]["page_size"], 256,
        "documented default capacity"
    );
    assert_eq!(logs["dflt"]["embed"], 0);
    for v in logs.values() {
        let head = v["head"].as_str().expect("head");
        assert_eq!(head.len(), 64);
    }

    // Embedding shows in `log --json` when the field is there: newest 3 of "full".
    let full = env.log_json("full");
    if full[0].get("embedded").is_some() {
        let emb: Vec<bool> = full
            .iter()
            .map(|v| v["embedded"].as_bool().unwrap())
            .collect();
        assert_eq!(emb, vec![true, true, true, false, false]);
    }

    // Changing the settings affects the pages written from then on.
    append("linked", &["--page-size", "3", "--embed", "1"], "l4");
    append("full", &["--page-size", "2", "--embed", "0"], "f6");
    let logs = env.logs_json();
    assert_eq!(
        (
            logs["linked"]["page_size"].as_u64(),
            logs["linked"]["embed"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        (
            logs["full"]["page_size"].as_u64(),
            logs["full"]["embed"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(logs["linked"]["entries"], 4);
    assert_eq!(logs["full"]["entries"], 6);
    let linked: Vec<u64> = env
        .log_json("linked")
        .iter()
        .map(|v| v["size"].as_u64().unwrap())
        .collect();
    assert_eq!(linked.len(), 4);
    env.check_ok();
}

#[test]
fn page_size_1_writes_one_page_per_message() {
    let env = Env::new();
    for i in 0..4 {
        env.file(&format!("d/{i}"), format!("m{i}").as_bytes());
    }
    let d = env.dir.path().join("d");
    assert_ok(env.run(&[
        "append",
        "--group",
        "g",
        "--timestamp",
        "1",
        "--page-size",
        "1",
        "--dir",
        d.to_str().unwrap(),
    ]));
    let o = assert_ok(env.run(&["check", "--json"]));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["pages"], 4, "{v}");
    assert_eq!(v["messages"], 4, "{v}");
    // 4 message objects + 4 page objects, nothing else.
    let objects = walkdir::WalkDir::new(env.store.join("objects"))
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count();
    assert_eq!(objects, 8);
}

/// Every push adds a pack to a directory remote; past 16 the push names the repack that
/// merges them, and after it the hint is gone.
#[test]
fn push_suggests_a_repack_once_a_remote_has_many_packs() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let r = t.path().join("r");
    let store = common::store(&s);
    assert_ok(run(&s, &["remote", "add", "origin", r.to_str().unwrap()]));
    let hint = "merges them into a few large ones";
    for round in 0..17 {
        // More than 64 objects per push, so each push is a pack, not loose objects.
        common::append(&store, 70, &format!("round {round}"));
        let out = assert_ok(run(&s, &["push"]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains(hint), round == 16, "round {round}: {err}");
    }
    assert!(String::from_utf8_lossy(&assert_ok(run(&s, &["push"])).stderr).contains(hint));
    assert_ok(run(&r, &["repack"]));
    common::append(&store, 70, "after repack");
    let out = assert_ok(run(&s, &["push"]));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(hint));
    assert!(
        String::from_utf8_lossy(&assert_ok(run(&r, &["check"])).stdout).contains("ok"),
        "the remote passes check"
    );
}

/// `demo` prints each step of its scenario, and leaves three sound stores behind.
#[test]
fn demo_prints_its_steps_and_leaves_sound_stores() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let o = assert_ok(bin().arg("demo").arg(&dir).output().unwrap());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let node = dir.join("node");
    assert_eq!(
        lines[0],
        format!("== created a store in {}", node.display())
    );
    assert!(lines[1].starts_with(
        "== appended 10 messages to log main (page size 4, newest 2 embedded); head page "
    ));
    assert!(lines[2].starts_with("== appended 1 message to log audit (page size 1); head page "));
    assert_eq!(
        lines[3..6],
        [
            "== logs:",
            "   audit    1 entries",
            "   main     10 entries"
        ]
    );
    assert_eq!(lines[6], "== log main, newest first (H1 H2 body):");
    assert!(lines[7].ends_with(" message 9: hello from the demo  [embedded]"));
    assert!(lines[16].ends_with(" message 0: hello from the demo"));
    let backup = dir.join("backup");
    assert_eq!(
        lines[17],
        format!(
            "== pushed log audit to directory remote {} (created: 2 objects)",
            backup.display()
        )
    );
    assert_eq!(
        lines[19],
        format!(
            "== cloned the remote into {}: logs identical to the original: yes",
            dir.join("restored").display()
        )
    );
    assert_eq!(
        lines[20..23],
        [
            "== check --read-data node: ok (15 objects read and hashed)",
            "== check --read-data backup: ok (15 objects read and hashed)",
            "== check --read-data restored: ok (15 objects read and hashed)",
        ]
    );
    // The hint names this binary as it can be run (tests/output.rs runs it).
    assert_eq!(lines.len(), 24);
    assert!(
        lines[23].starts_with("== try it yourself: ")
            && lines[23].ends_with(&format!(" --store {} status", node.display())),
        "{}",
        lines[23]
    );
    for store in ["node", "backup", "restored"] {
        assert_ok(run(&dir.join(store), &["check", "--read-data"]));
    }
}

/// Regression: `demo` printed with `println!`, so a closed stdout (`remotelog demo | head
/// -1`) made it panic (exit 101). It now stops quietly, as every command does.
#[test]
fn demo_into_a_closed_pipe_stops_without_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("demo")
        .arg(t.path().join("demo"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the demo has written anything.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success() && !stderr(&o).contains("panicked"),
        "{:?}: {}",
        o.status,
        stderr(&o)
    );
}

/// `remote list` shows each remote and, from its tracking refs, what it held of each log.
#[test]
fn remote_list_shows_what_each_remote_held_at_the_last_exchange() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let r = t.path().join("r");
    let store = common::store(&s);
    common::append(&store, 3, "one");
    assert_ok(run(&s, &["remote", "add", "origin", r.to_str().unwrap()]));
    assert_ok(run(&s, &["remote", "add", "other", "http://127.0.0.1:9"]));
    assert_ok(run(&s, &["push"]));
    let head = remotelog::log::head(&store, "main")
        .unwrap()
        .unwrap()
        .to_hex();
    assert_eq!(
        stdout(&assert_ok(run(&s, &["remote", "list"]))),
        format!(
            "origin\t{}\n\tmain: 3 entries at last exchange (head {})\nother\thttp://127.0.0.1:9\n",
            r.display(),
            &head[..12]
        )
    );
}

/// `log` of a log the store does not have names the log and the store; `logs` shows page
/// size 0 as unbounded.
#[test]
fn a_missing_log_is_named_and_page_size_0_reads_unbounded() {
    let env = Env::new();
    let o = env.run(&["log", "--log", "nope"]);
    fails_with(&o, &["no log named"]);
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "remotelog: error: no log named \"nope\" in {}; `remotelog logs` lists them",
            env.store.display()
        )
    );
    assert_ok(env.run_stdin(
        &["append", "--group", "g", "--log", "all", "--page-size", "0"],
        b"x",
    ));
    assert_eq!(
        stdout(&assert_ok(env.run(&["logs"]))),
        "all\t1 entries\tpage size unbounded\tembed 0\n"
    );
}

/// Regression: `gc --prune` multiplied the number by its unit unchecked, so an age of
/// 999999999999999999d panicked (exit 101); now it keeps everything, as a huge age does.
#[test]
fn gc_with_an_enormous_prune_age_keeps_everything_and_does_not_panic() {
    let env = Env::new();
    assert_ok(env.run_stdin(&["append", "--group", "g"], b"kept"));
    let h1 = env.log_json("main")[0]["h1"].as_str().unwrap().to_string();
    assert_ok(env.run(&["forget", &h1]));
    let o = assert_ok(env.run(&["gc", "--prune", "999999999999999999d", "--json"]));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["objects"], 0, "{v}");
    assert!(v["kept_young"].as_u64().unwrap() > 0, "{v}");
}

/// Regression: `repack --target-size` in MiB was shifted into bytes unchecked, so 2^44 MiB
/// wrapped to 0 bytes and every object got a pack of its own; now it is the largest size.
#[test]
fn repack_with_an_enormous_target_size_makes_one_pack() {
    let env = Env::new();
    for body in ["a", "b", "c"] {
        assert_ok(env.run_stdin(&["append", "--group", "g"], body.as_bytes()));
    }
    let o = assert_ok(env.run(&["repack", "--target-size", "17592186044416", "--json"]));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (v["objects"].as_u64(), v["packs_after"].as_u64()),
        (Some(6), Some(1)),
        "{v}"
    );
    assert_ok(env.run(&["check", "--read-data"]));
}
