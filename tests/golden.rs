//! Golden files: `fixtures/store-v1/` is a store built from the fixed inputs below, and
//! `fixtures/store-v1.ids` lists its expected ids. Rebuilding must give the same bytes, and
//! the committed store must read back with the current code. These files change only with
//! a format version bump (format/store-v1.md); `REMOTELOG_BLESS=1 cargo test --test golden`
//! rewrites them for that purpose.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use remotelog::log::{self, SettingsChange};
use remotelog::store::config::Config;
use remotelog::{upkeep::check, FsStore, Message};

mod common;
use common::fixtures;

fn msg(group: &str, ts: i64, body: &str) -> Message {
    Message {
        group_id: group.as_bytes().to_vec(),
        timestamp: ts,
        body: body.as_bytes().to_vec(),
    }
}

fn change(capacity: Option<u64>, embed: Option<u64>) -> SettingsChange {
    SettingsChange { capacity, embed }
}

/// Builds the golden store and returns its expected-ids listing.
fn build(root: &Path) -> String {
    // A version-1 store: no packs (every append here is small enough to stay loose).
    let v1 = Config {
        format_version: 1,
        ..Config::default()
    };
    let store = FsStore::init(root, v1).unwrap();
    let mut ids = String::new();
    let mut append = |log: &str, msgs: Vec<Message>, c: SettingsChange| {
        let done = log::append(&store, log, &msgs, c).unwrap();
        for (h1, h2) in done.ids {
            ids.push_str(&format!("message {log} {h1} {h2}\n"));
        }
    };
    // Page size 3, newest 2 embedded; two appends so the open head page is rewritten.
    append(
        "main",
        (0..4)
            .map(|i| msg("chat", 1_700_000_000 + i, &format!("main {i}")))
            .collect(),
        change(Some(3), Some(2)),
    );
    append(
        "main",
        (4..8)
            .map(|i| msg("chat", 1_700_000_000 + i, &format!("main {i}")))
            .collect(),
        SettingsChange::default(),
    );
    // Linked list, binary group id, negative timestamp.
    append(
        "list",
        (0..3)
            .map(|i| Message {
                group_id: vec![0, 1, 0xfe, 0xff],
                timestamp: -5 + i,
                body: vec![i as u8; 3],
            })
            .collect(),
        change(Some(1), Some(0)),
    );
    // Unbounded ("fully replicated"), every entry embedded, appended in two steps.
    append(
        "team/replicated",
        vec![msg("team", 1, "r0"), msg("team", 2, "r1")],
        change(Some(0), Some(10)),
    );
    append(
        "team/replicated",
        vec![msg("team", 3, "")],
        SettingsChange::default(),
    );
    // The same message in two logs is stored once.
    append(
        "dup",
        vec![msg("chat", 1_700_000_000, "main 0")],
        SettingsChange::default(),
    );
    for info in log::list(&store).unwrap() {
        ids.push_str(&format!("log {} {} {}\n", info.name, info.head, info.count));
    }
    ids
}

/// Every file below `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn rebuilding_gives_the_golden_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let ids = build(&root);
    let golden = fixtures().join("store-v1");
    let golden_ids = fixtures().join("store-v1.ids");
    if std::env::var_os("REMOTELOG_BLESS").is_some() {
        let _ = fs::remove_dir_all(&golden);
        copy_tree(&root, &golden);
        fs::write(&golden_ids, &ids).unwrap();
    }
    assert_eq!(
        ids,
        fs::read_to_string(&golden_ids).unwrap(),
        "expected ids changed"
    );
    let built = tree(&root);
    let expected = tree(&golden);
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the set of files differs from the golden store"
    );
    for (path, bytes) in &built {
        assert!(
            &expected[path] == bytes,
            "{path} differs from the golden file"
        );
    }
}

#[test]
fn committed_fixture_reads_with_current_code() {
    let golden = fixtures().join("store-v1");
    let store = FsStore::open(&golden).unwrap();
    let report = check::check(&store, true);
    assert!(report.is_sound(), "{:?}", report.problems);
    let listing = fs::read_to_string(fixtures().join("store-v1.ids")).unwrap();
    let mut expected_logs = BTreeMap::new();
    let mut expected_msgs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "log" => {
                expected_logs.insert(
                    f[1].to_string(),
                    (f[2].to_string(), f[3].parse::<u64>().unwrap()),
                );
            }
            "message" => expected_msgs
                .entry(f[1].to_string())
                .or_default()
                .push((f[2].to_string(), f[3].to_string())),
            other => panic!("unknown line kind {other}"),
        }
    }
    let logs = log::list(&store).unwrap();
    assert_eq!(logs.len(), expected_logs.len());
    for info in logs {
        let (head, count) = &expected_logs[&info.name];
        assert_eq!(&info.head.to_hex(), head);
        assert_eq!(&info.count, count);
        let mut want = expected_msgs[&info.name].clone();
        want.reverse();
        let got: Vec<(String, String)> = log::entries(&store, &info.name)
            .unwrap()
            .iter()
            .map(|e| {
                let m = log::read_message(&store, e).unwrap();
                assert_eq!(m.h1(), e.h1);
                (e.h1.to_hex(), e.h2.to_hex())
            })
            .collect();
        assert_eq!(got, want, "log {}", info.name);
    }
    // Spot-check the page structure promised by the inputs.
    let list = log::pages(&store, log::head(&store, "list").unwrap()).count();
    assert_eq!(list, 3, "page size 1 gives one page per message");
    let replicated: Vec<_> = log::pages(&store, log::head(&store, "team/replicated").unwrap())
        .map(|p| p.unwrap().1)
        .collect();
    assert_eq!(replicated.len(), 1);
    assert!(replicated[0].entries.iter().all(|e| e.embedded.is_some()));
    let main: Vec<_> = log::pages(&store, log::head(&store, "main").unwrap())
        .map(|p| p.unwrap().1)
        .collect();
    assert_eq!(
        main.iter().map(|p| p.entries.len()).collect::<Vec<_>>(),
        vec![2, 3, 3]
    );
    let embedded: Vec<bool> = main[0]
        .entries
        .iter()
        .map(|e| e.embedded.is_some())
        .collect();
    assert_eq!(embedded, vec![true, true]);
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, bytes).unwrap();
    }
}
