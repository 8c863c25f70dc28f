//! Reading a hostile remote is bounded: files of a store that are not what they claim are
//! refused before they are read (a sparse 3 GB object, a link to /dev/zero), entries
//! under `refs/` that cannot be read as refs stop clone and gc and are named by check and
//! by the server, and HTTP answers that never end or drip are cut off.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remotelog::log::{self, SettingsChange};
use remotelog::store::Backend;
use remotelog::FsStore;

mod common;
use common::{fails_transiently_with, fails_with, msgs, ok, run, serve, store, text};

/// Address space a child may use in the memory-bound tests: enough for remotelog's
/// threads and allocator arenas, far less than the 3 GB file or an endless stream that
/// reading whole would take.
const AS_LIMIT_KIB: u64 = 2 << 20;

/// `remotelog --store STORE ARGS...` under an address-space limit of [`AS_LIMIT_KIB`],
/// with `env`; returns its output and how long it ran.
fn run_limited(store: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {AS_LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_remotelog"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("REMOTELOG_STORE")
        .env_remove("REMOTELOG_TOKEN")
        .env_remove("REMOTELOG_TOKEN_FILE")
        .env_remove("REMOTELOG_HTTP_TIMEOUT")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let out = c.output().unwrap();
    (out, start.elapsed())
}

/// A store at `dir` with log "main" of 5 loose messages; returns the store and the path
/// of the object file of its newest message.
fn small_store(dir: &Path) -> (FsStore, PathBuf) {
    let s = store(dir);
    log::append(&s, "main", &msgs("m", 5), SettingsChange::default()).unwrap();
    let newest = log::entries(&s, "main").unwrap().last().unwrap().h2;
    let path = s.object_path(&newest);
    assert!(
        path.is_file(),
        "expected a loose object at {}",
        path.display()
    );
    (s, path)
}

/// Replaces the object file at `path` by hostile content: a sparse file of 3 GB, or a
/// symbolic link to /dev/zero.
fn plant(path: &Path, sparse: bool) {
    fs::remove_file(path).unwrap();
    if sparse {
        fs::File::create(path).unwrap().set_len(3 << 30).unwrap();
    } else {
        symlink("/dev/zero", path).unwrap();
    }
}

/// Clone and `check --read-data` of a store holding a hostile object file refuse it,
/// naming the file and saying what it is, quickly and within the memory limit.
fn hostile_object_is_refused(sparse: bool, says: &str) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (_, obj) = small_store(&src);
    plant(&obj, sparse);
    let shown = obj.display().to_string();

    let dest = t.path().join("dest");
    let dest_arg = dest.to_str().unwrap();
    let (o, took) = run_limited(&src, &["clone", src.to_str().unwrap(), dest_arg], &[]);
    fails_with(&o, &[&shown, says]);
    assert!(took < Duration::from_secs(20), "clone took {took:?}");
    assert!(!dest.exists(), "a failed clone leaves nothing behind");

    let (o, took) = run_limited(&src, &["check", "--read-data"], &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "check should fail:\n{all}");
    assert!(all.contains(&shown) && all.contains(says), "{all}");
    assert!(
        !all.contains("panicked") && !all.contains("memory allocation"),
        "{all}"
    );
    assert!(took < Duration::from_secs(20), "check took {took:?}");
}

#[test]
fn a_sparse_3gb_object_file_is_refused_by_size_before_it_is_read() {
    hostile_object_is_refused(true, "more than an object file may hold");
}

#[test]
fn an_object_that_is_a_link_to_dev_zero_is_refused_without_reading_it() {
    hostile_object_is_refused(false, "a symbolic link, not a regular file");
}

// ---------------------------------------------------------------------------------------
// Refs that cannot be read

/// Every loose object and pack file of a store.
fn object_files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let p = e.path().to_string_lossy();
            (p.contains("/objects/") || p.ends_with(".pack")) && e.file_type().is_file()
        })
        .map(|e| e.path().to_path_buf())
        .collect();
    out.sort();
    out
}

/// A store with log "main" and log "other", whose objects only "other" reaches, then
/// damaged by `damage` (given the store root and the content of `refs/logs/other`).
/// Returns the damaged entry, which every command must name.
fn damaged_store(root: &Path, packed: bool, damage: &dyn Fn(&Path, &[u8]) -> PathBuf) -> PathBuf {
    let s = store(root);
    let n = if packed { 100 } else { 4 };
    log::append(&s, "main", &msgs("main", n), SettingsChange::default()).unwrap();
    log::append(&s, "other", &msgs("other", n), SettingsChange::default()).unwrap();
    let other = root.join("refs/logs/other");
    let head = fs::read(&other).unwrap();
    fs::remove_file(&other).unwrap();
    damage(root, &head)
}

/// The ways an entry under `refs/` can be unreadable as a ref: (what, packed store,
/// damage).
type Damage = (&'static str, bool, Box<dyn Fn(&Path, &[u8]) -> PathBuf>);

fn damages() -> Vec<Damage> {
    vec![
        (
            "symbolic link",
            false,
            Box::new(|root: &Path, head: &[u8]| {
                let target = root.parent().unwrap().join("elsewhere");
                fs::write(&target, head).unwrap();
                let p = root.join("refs/logs/other");
                symlink(&target, &p).unwrap();
                p
            }),
        ),
        (
            "name is not valid",
            false,
            Box::new(|root: &Path, head: &[u8]| {
                let p = root.join("refs/logs/.other");
                fs::write(&p, head).unwrap();
                p
            }),
        ),
        (
            "folder whose name is not valid",
            false,
            Box::new(|root: &Path, head: &[u8]| {
                let p = root.join("refs/logs/other.lock");
                fs::create_dir(&p).unwrap();
                fs::write(p.join("inner"), head).unwrap();
                p
            }),
        ),
        (
            "a fifo",
            false,
            Box::new(|root: &Path, head: &[u8]| {
                // Its head kept where nobody reads it: the fifo is what stands for it.
                fs::write(root.parent().unwrap().join("lost-head"), head).unwrap();
                let p = root.join("refs/logs/other");
                let made = Command::new("mkfifo").arg(&p).status().unwrap();
                assert!(made.success());
                p
            }),
        ),
        (
            "a directory where the head of the pack chain belongs",
            true,
            Box::new(|root: &Path, head: &[u8]| {
                fs::write(root.join("refs/logs/other"), head).unwrap();
                let p = root.join("refs/packs");
                let chain = fs::read(&p).unwrap();
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
                fs::write(p.join("head"), chain).unwrap();
                p
            }),
        ),
    ]
}

#[test]
fn an_unreadable_ref_is_named_by_check_and_stops_clone_and_gc() {
    for (what, packed, damage) in damages() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("src");
        let bad = damaged_store(&root, packed, &*damage);
        let shown = bad.display().to_string();
        let before = object_files(&root);
        assert!(!before.is_empty());

        // check names it and fails.
        let o = run(&root, &["check"]);
        let all = text(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what}: check should fail:\n{all}"
        );
        assert!(all.contains(&shown) && all.contains(what), "{what}: {all}");
        if !packed {
            // ... and still checks the log it can read.
            assert!(all.contains("FAILED: 1 logs, 4 entries"), "{what}: {all}");
        }

        // clone reports it and leaves nothing.
        let dest = t.path().join("dest");
        let o = run(
            &root,
            &["clone", root.to_str().unwrap(), dest.to_str().unwrap()],
        );
        fails_with(&o, &[&shown]);
        assert!(
            !dest.exists(),
            "{what}: a failed clone leaves nothing behind"
        );

        // gc, of the store itself and of it as a directory remote, deletes nothing.
        let o = run(&root, &["gc", "--prune", "now"]);
        fails_with(&o, &[&shown]);
        let local = t.path().join("local");
        store(&local);
        ok(&local, &["remote", "add", "origin", root.to_str().unwrap()]);
        let o = run(&local, &["gc", "origin", "--prune", "now"]);
        fails_with(&o, &[&shown]);
        assert_eq!(object_files(&root), before, "{what}: gc deleted objects");
    }
}

#[test]
fn a_server_does_not_hide_an_unreadable_ref_from_its_clients() {
    for (what, packed, damage) in damages().into_iter().take(3) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("src");
        let bad = damaged_store(&root, packed, &*damage);
        let name = bad.file_name().unwrap().to_string_lossy().into_owned();
        let srv = serve(&root, |_| {});
        let url = &srv.url();

        // The listing is an error naming the entry, not a list without it.
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut resp = agent.get(format!("{url}/ns?prefix=logs")).call().unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        assert_eq!(status, 500, "{what}: {body}");
        assert!(
            body.contains(&format!("refs/logs/{name}")),
            "{what}: {body}"
        );

        // So a clone over HTTP fails naming it too.
        let dest = t.path().join("dest");
        let o = run(&root, &["clone", url, dest.to_str().unwrap()]);
        fails_with(&o, &[&format!("refs/logs/{name}")]);
        let remote = remotelog::net::client::HttpBackend::open(url, None).unwrap();
        assert!(remote.list_refs("logs").is_err(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// HTTP servers that never finish an answer

/// A hostile HTTP server on a loopback port: it reads each request's head and lets
/// `respond` answer on the connection until `respond` returns. Stops with the value.
struct Hostile {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    fn start(respond: fn(&mut TcpStream, &AtomicBool)) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let (Ok(mut c), stopped) = (conn, stopped.clone()) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 1 << 16 {
                        match c.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    respond(&mut c, &stopped);
                });
            }
        });
        Hostile { url, stop }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// Headers that promise a megabyte, then one byte a second.
fn drip(c: &mut TcpStream, stop: &AtomicBool) {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n";
    if c.write_all(head.as_bytes()).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) && c.write_all(b" ").is_ok() {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A Twirp answer without a length that never ends, as fast as the client reads.
fn endless(c: &mut TcpStream, stop: &AtomicBool) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/protobuf\r\nconnection: close\r\n\r\n";
    if c.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) && c.write_all(&chunk).is_ok() {}
}

/// Runs `remotelog --store STORE ARGS...` with `env`; kills it and fails the test if it
/// has not finished after `limit`. Returns its output and how long it ran.
fn run_bounded(
    store: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Output, Duration) {
    let mut c = common::bin();
    c.arg("--store")
        .arg(store)
        .args(args)
        .env_remove(remotelog::net::client::TIMEOUT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("remotelog {args:?} still waits after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    (child.wait_with_output().unwrap(), took)
}

#[test]
fn a_remote_that_drips_its_answer_is_given_up_within_the_bound() {
    let srv = Hostile::start(drip);
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    // A wait of 2 s: after 2 s of a body, 4 KiB/s are due; this one brings 1 byte/s
    // (and never waits a whole 2 s for it, so only the pace can catch it).
    let env = [(remotelog::net::client::TIMEOUT_ENV, "2")];
    let args = ["clone", srv.url.as_str(), dest.to_str().unwrap()];
    let (o, took) = run_bounded(t.path(), &args, &env, Duration::from_secs(30));
    // Too slow is worth a retry later: exit 75.
    fails_transiently_with(&o, &[&format!("{}/healthz", srv.url), "too slowly"]);
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    assert!(!dest.exists());
}

#[test]
fn a_twirp_server_that_drips_its_answer_is_given_up_within_the_bound() {
    let srv = Hostile::start(drip);
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    store(&s);
    let env = [(remotelog::net::client::TIMEOUT_ENV, "2")];
    let (o, took) = run_bounded(
        &s,
        &["import-spec", &srv.url, "chat"],
        &env,
        Duration::from_secs(30),
    );
    fails_with(
        &o,
        &[&format!("{}/twirp/vac.ns.NS/Fetch", srv.url), "too slowly"],
    );
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
}

#[test]
fn an_endless_twirp_answer_is_cut_off_at_the_limit_in_bounded_memory() {
    let srv = Hostile::start(endless);
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    store(&s);
    // With the default limits, one answer stops at 256 MiB, well inside the address
    // space the import may use.
    let (o, took) = run_limited(&s, &["import-spec", &srv.url, "chat"], &[]);
    fails_with(
        &o,
        &[
            &srv.url,
            "more than 268435456 bytes",
            "nothing was imported",
        ],
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // --max-bytes counts what arrives: the answer stops where the budget ends.
    let (o, _) = run_limited(
        &s,
        &["import-spec", &srv.url, "chat", "--max-bytes", "100000"],
        &[],
    );
    fails_with(
        &o,
        &["more than 100000 bytes in all (--max-bytes)", "page 1"],
    );
}
