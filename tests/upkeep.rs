//! Upkeep beside writers: `gc --prune now` in a loop, on the writer's store and on the
//! remote it pushes to (a directory, or a served one), never loses what an `append` or a
//! `push` acknowledged (format/store-v1.md section 9).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

mod common;
use common::{ok, run, run_stdin, serve, text};

/// H1s of a log, read from `log --json`.
fn h1s(store: &Path) -> HashSet<String> {
    let out = ok(store, &["log", "--json"]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["h1"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The H1s an `append` printed ("H1 H2" per message).
fn printed_h1s(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Runs `gc --prune now` on `store` until `stop`, returning the failures it saw.
fn gc_loop(store: PathBuf, stop: Arc<AtomicBool>) -> thread::JoinHandle<(usize, Vec<String>)> {
    thread::spawn(move || {
        let mut runs = 0;
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if store.join("config").exists() {
                let out = run(&store, &["gc", "--prune", "now"]);
                runs += 1;
                if !out.status.success() {
                    failures.push(text(&out));
                }
            } else {
                thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        (runs, failures)
    })
}

/// A writer appends and pushes `rounds` times (every fourth append a bulk one that becomes
/// a pack) to `origin` while gc runs in a loop on its own store and on `remote_dir`.
/// Everything acknowledged must be there afterwards.
fn race(t: &Path, a: &Path, origin: &str, remote_dir: &Path, rounds: usize) {
    ok(a, &["init"]);
    ok(a, &["remote", "add", "origin", origin]);
    let stop = Arc::new(AtomicBool::new(false));
    let gcs = [
        gc_loop(a.to_path_buf(), stop.clone()),
        gc_loop(remote_dir.to_path_buf(), stop.clone()),
    ];
    let mut appended: Vec<String> = Vec::new();
    let mut pushed: usize = 0; // how many of `appended` the last acknowledged push covers
    let mut push_failures = Vec::new();
    for round in 0..rounds {
        let out = if round % 4 == 3 {
            let inbox = t.join(format!("inbox{round}"));
            std::fs::create_dir(&inbox).unwrap();
            for i in 0..80 {
                std::fs::write(
                    inbox.join(format!("{i:03}")),
                    format!("round {round} file {i}"),
                )
                .unwrap();
            }
            run(
                a,
                &["append", "--group", "g", "--dir", inbox.to_str().unwrap()],
            )
        } else {
            run_stdin(
                a,
                &["append", "--group", "g"],
                format!("round {round}").as_bytes(),
            )
        };
        assert!(out.status.success(), "append failed: {}", text(&out));
        appended.extend(printed_h1s(&out.stdout));
        let before = appended.len();
        let out = run(a, &["push", "--quiet"]);
        if out.status.success() {
            pushed = before;
        } else {
            push_failures.push(text(&out));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut gc_runs = [0; 2];
    for (k, h) in gcs.into_iter().enumerate() {
        let (runs, failures) = h.join().unwrap();
        assert!(failures.is_empty(), "gc failed: {failures:#?}");
        gc_runs[k] = runs;
    }
    assert!(
        gc_runs.iter().all(|&n| n > 0),
        "gc did not run: {gc_runs:?}"
    );
    // Writers and gc take turns: every push gets through.
    assert!(
        push_failures.is_empty(),
        "pushes failed: {push_failures:#?}"
    );

    let local = h1s(a);
    for h in &appended {
        assert!(local.contains(h), "acknowledged append {h} is gone");
    }
    ok(a, &["check", "--read-data"]);
    ok(remote_dir, &["check", "--read-data"]);
    let remote = h1s(remote_dir);
    for h in &appended[..pushed] {
        assert!(remote.contains(h), "acknowledged push of {h} is gone");
    }
    let fresh = t.join("fresh");
    let out = common::bin()
        .args(["clone", origin, fresh.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "clone failed: {}", text(&out));
    assert_eq!(h1s(&fresh), remote);
    ok(&fresh, &["check", "--read-data"]);
}

#[test]
fn gc_in_a_loop_beside_append_and_push_to_a_directory_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (a, r) = (t.path().join("a"), t.path().join("r"));
    race(t.path(), &a, r.to_str().unwrap(), &r, 32);
}

#[test]
fn gc_in_a_loop_beside_append_and_push_over_http_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (a, r) = (t.path().join("a"), t.path().join("r"));
    ok(&r, &["init"]);
    let server = serve(&r, |_| {});
    race(t.path(), &a, &server.url(), &r, 32);
}

/// Messages stored two hours ago and never named by a ref (a writer without a lease — an
/// HTTP client between its upload and its ref update — or one that crashed), and a page
/// naming them stored now: gc keeps the young page, so it must keep what the page names,
/// or a later transfer that finds the page would take its messages to be there.
#[test]
fn a_young_page_keeps_the_old_messages_it_names() {
    use remotelog::model::object::{encode_message, Entry, Object, Page};
    use remotelog::{Backend, Id};
    let t = tempfile::tempdir().unwrap();
    let s = common::store(t.path());
    let msgs = common::msgs("old", 3);
    let encoded: Vec<Vec<u8>> = msgs.iter().map(encode_message).collect();
    let ids: Vec<Id> = encoded.iter().map(|b| Id::of(b)).collect();
    let objs: Vec<(Id, &[u8])> = ids
        .iter()
        .copied()
        .zip(encoded.iter().map(|b| &b[..]))
        .collect();
    s.put_objects(&objs).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for id in &ids {
        let f = std::fs::File::options()
            .write(true)
            .open(s.object_path(id))
            .unwrap();
        f.set_modified(long_ago).unwrap();
    }
    let page = Object::Page(Page {
        prev: None,
        count: 3,
        capacity: 256,
        embed: 0,
        entries: msgs
            .iter()
            .zip(&ids)
            .rev()
            .map(|(m, h2)| Entry {
                h1: m.h1(),
                h2: *h2,
                embedded: None,
            })
            .collect(),
    })
    .encode();
    let pid = Id::of(&page);
    s.put_objects(&[(pid, &page)]).unwrap();

    let done = remotelog::upkeep::gc::gc(
        &s,
        remotelog::upkeep::gc::DEFAULT_GRACE,
        false,
        &remotelog::progress::Silent,
    )
    .unwrap();
    assert_eq!(done.objects, 0, "gc removed {:?}", done.removed_ids);
    for id in ids.iter().chain([&pid]) {
        assert!(s.has_object(id).unwrap(), "{id} was collected");
    }
    // Once the page is old too, all of it goes.
    let f = std::fs::File::options()
        .write(true)
        .open(s.object_path(&pid))
        .unwrap();
    f.set_modified(long_ago).unwrap();
    let done = remotelog::upkeep::gc::gc(
        &s,
        remotelog::upkeep::gc::DEFAULT_GRACE,
        false,
        &remotelog::progress::Silent,
    )
    .unwrap();
    assert_eq!(done.objects, 4);
}

/// An upload still arriving when gc runs on the served directory (its temporary pack is
/// in `packs/`, and no lease is held until the body is in): gc leaves the temporary file
/// alone, and the upload completes. The old gc deleted it (`--prune now`) and the upload
/// failed with a 500.
#[test]
fn gc_leaves_an_upload_in_flight_alone() {
    use remotelog::Id;
    use std::io::{Read, Write};
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("r");
    let server = serve(&r, |_| {});
    let msgs = common::msgs("in flight", 100);
    let encoded: Vec<Vec<u8>> = msgs
        .iter()
        .map(remotelog::model::object::encode_message)
        .collect();
    let mut w = remotelog::pack::PackWriter::create(t.path(), None, 3).unwrap();
    for b in &encoded {
        w.add(Id::of(b), b).unwrap();
    }
    let pack = std::fs::read(&w.finish().unwrap().tmp).unwrap();
    let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        conn,
        "POST /packs HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        pack.len()
    )
    .unwrap();
    let half = pack.len() / 2;
    conn.write_all(&pack[..half]).unwrap();
    conn.flush().unwrap();
    // Until the first bytes are on disk, gc would have nothing to delete.
    let spooling = || {
        walkdir::WalkDir::new(r.join("packs"))
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spooling() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the store"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    ok(&r, &["gc", "--prune", "now"]);
    assert!(spooling(), "gc deleted the upload's temporary pack");
    conn.write_all(&pack[half..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let s = remotelog::FsStore::open(&r).unwrap();
    for b in &encoded {
        assert!(remotelog::Backend::has_object(&s, &Id::of(b)).unwrap());
    }
}
