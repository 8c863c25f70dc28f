//! Object-storage remotes (`s3://`) where they differ from the others: the precondition
//! probe refuses a store that ignores conditional writes, several writers racing on one
//! ref lose no acknowledged push, `kill -9` during a push leaves the remote sound, a 412
//! that hides our own success is re-read, 409 is retried, and leases lapse by the store's
//! clock so that a crashed gc never blocks writers for good. Everything runs against this
//! binary's SeaweedFS (`common::seaweed`), through the real binary where the behaviour is
//! the CLI's; a tiny fake store and a proxy stand in where a real store cannot misbehave.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{bin, fails_env, ok, ok_env, run, run_env, run_stdin, text, Rng};
use remotelog::id::Id;
use remotelog::model::name::RefName;
use remotelog::s3::client::{Client, Cond};
use remotelog::s3::{layout, Location, S3Backend};
use remotelog::store::{Backend, Expected, Upkeep};

// ---------------------------------------------------------------------------------------
// HTTP in a few lines: enough to fake a store and to stand between client and store.

/// One request read off a connection: its head (request line and headers, as sent) and
/// body; `None` once the client closed the connection.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// A header of a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Writes a whole answer and closes the connection.
fn answer(mut s: TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    let _ = s.write_all(&bytes);
}

/// Serves each connection on its own thread with `handle` (which gets the stream of each
/// request with the request), on a free loopback port; returns the endpoint.
fn listen(handle: impl Fn(TcpStream, String, Vec<u8>) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                // One request per connection: every answer closes it.
                if let Some((head, body)) = read_request(&mut r) {
                    handle(s, head, body);
                }
            });
        }
    });
    endpoint
}

/// A store that keeps keys in memory and answers 200 to every PUT: it ignores
/// `If-None-Match` and `If-Match`, as some S3-compatible servers do. With `honours_absent`
/// it honours `If-None-Match: *` (412) but still ignores `If-Match`.
fn careless_store(honours_absent: bool) -> String {
    let keys: Mutex<HashMap<String, Vec<u8>>> = Mutex::default();
    listen(move |s, head, body| {
        let line = head.lines().next().unwrap_or("").to_string();
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("").to_string();
        let mut keys = keys.lock().unwrap();
        match method {
            "PUT" => {
                if honours_absent
                    && header(&head, "if-none-match") == Some("*")
                    && keys.contains_key(&path)
                {
                    return answer(s, 412, &[], b"");
                }
                keys.insert(path, body);
                answer(s, 200, &[("etag", "\"e\"".into())], b"");
            }
            "GET" | "HEAD" => match keys.get(&path) {
                Some(b) => answer(s, 200, &[("etag", "\"e\"".into())], b),
                None => answer(s, 404, &[], b""),
            },
            "DELETE" => {
                keys.remove(&path);
                answer(s, 204, &[], b"");
            }
            _ => answer(s, 400, &[], b""),
        }
    })
}

/// What a [`proxy`] does with one request.
enum Act {
    /// Passes it on and hands back the answer.
    Forward,
    /// Passes it on, then drops the connection without answering: the store acted, the
    /// client never learns it (a timeout or reset after the write).
    Lose,
    /// Answers with this status itself, passing nothing on.
    Refuse(u16),
}

/// A proxy in front of `upstream` that asks `decide` about every request (method and
/// path) and, if `date` is given, puts it in the `Date` header of every answer. The
/// request bytes go on unchanged, so their signature still holds.
fn proxy(
    upstream: &str,
    date: Option<&'static str>,
    decide: impl Fn(&str, &str) -> Act + Send + Sync + 'static,
) -> String {
    let upstream = upstream.strip_prefix("http://").unwrap().to_string();
    listen(move |mut s, head, body| {
        let line = head.lines().next().unwrap_or("").to_string();
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let act = decide(method, path);
        if let Act::Refuse(status) = act {
            return answer(s, status, &[], b"");
        }
        // One exchange per connection upstream too: the store closes it after answering.
        let mut up = TcpStream::connect(&upstream).unwrap();
        let end = head.len() - 2;
        let mut req = format!("{}connection: close\r\n\r\n", &head[..end]).into_bytes();
        req.extend_from_slice(&body);
        up.write_all(&req).unwrap();
        let mut got = Vec::new();
        up.read_to_end(&mut got).unwrap();
        if matches!(act, Act::Lose) {
            let _ = s.shutdown(std::net::Shutdown::Both);
            return;
        }
        if let Some(date) = date {
            let at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let head = String::from_utf8_lossy(&got[..at]).into_owned();
            let head: Vec<String> = head
                .split("\r\n")
                .map(|l| {
                    if l.to_ascii_lowercase().starts_with("date:") {
                        format!("Date: {date}")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let mut out = head.join("\r\n").into_bytes();
            out.extend_from_slice(&got[at..]);
            got = out;
        }
        let _ = s.write_all(&got);
    })
}

/// Appends `msg` to log `main` of the store at `dir`; its H1.
fn append_text(dir: &Path, msg: &str) -> String {
    let o = run_stdin(dir, &["append", "--group", "g"], msg.as_bytes());
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The store at `location` reached through `endpoint` (a proxy of this binary's server).
fn backend_via(location: &str, endpoint: &str) -> S3Backend {
    let mut config = common::seaweed().config();
    config.endpoint = endpoint.to_string();
    let loc = Location::parse(location).unwrap();
    S3Backend::open(Client::new(config, &loc.bucket).unwrap(), loc, true).unwrap()
}

/// A ref name.
fn refname(s: &str) -> RefName {
    RefName::parse(s).unwrap()
}

// ---------------------------------------------------------------------------------------
// The precondition probe

/// `remote add` probes the store and refuses one that answers 200 to a second
/// `If-None-Match: *` (or to a wrong `If-Match`), naming the reason; nothing is recorded.
/// A remote recorded while its endpoint was sound is probed again at its first use.
#[test]
fn a_store_that_ignores_preconditions_is_refused_at_remote_add_and_at_first_use() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    append_text(&a, "one");
    for (honours_absent, reason) in [
        (
            false,
            "a second PUT If-None-Match: * of one key got 200 instead of 412",
        ),
        (
            true,
            "a PUT If-Match with a wrong ETag got 200 instead of 412",
        ),
    ] {
        let fake = careless_store(honours_absent);
        let location = format!("s3://bucket/logs?endpoint={fake}");
        let err = fails_env(&a, &["remote", "add", "careless", &location], &server.env());
        assert!(err.contains("does not honour conditional writes"), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(err.contains("s3://bucket/logs"), "{err}");
        assert!(!ok(&a, &["remote", "list"]).contains("careless"));

        // Recorded against the real store (its endpoint from the environment), then used
        // with the environment pointing at the careless one.
        let name = format!("r{}", u8::from(honours_absent));
        let sound = server.fresh("probe");
        ok_env(&a, &["remote", "add", &name, &sound], &server.env());
        let err = fails_env(&a, &["push", &name], &[("AWS_ENDPOINT_URL", &fake)]);
        assert!(err.contains("does not honour conditional writes"), "{err}");
        assert!(err.contains(reason), "{err}");
        let p = Location::parse(&sound).unwrap();
        let real = Client::new(server.config(), &p.bucket).unwrap();
        assert!(
            real.get(&p.key("refs/logs/main"), 1024).unwrap().is_none(),
            "nothing was pushed to the sound store"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Writers racing on one ref

/// Four writers, each a loop of `clone`, `append` and `push` through the real binary, race
/// on log `main` of one s3:// remote. A push either fast-forwards (acknowledged) or is
/// refused; the remote ends holding exactly the acknowledged messages, and is sound.
#[test]
fn several_writers_pushing_to_one_s3_ref_lose_no_acknowledged_push() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let remote = server.fresh("race");
    let seed = t.path().join("seed");
    ok(&seed, &["init"]);
    append_text(&seed, "seed");
    ok_env(&seed, &["remote", "add", "origin", &remote], &server.env());
    ok(&seed, &["push"]);

    const WRITERS: usize = 4;
    const ROUNDS: usize = 4;
    let acked: Mutex<Vec<String>> = Mutex::default();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (t, remote, acked, refused) = (t.path(), &remote, &acked, &refused);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let dir = t.join(format!("w{w}-{round}"));
                    let o = bin()
                        .args(["clone", remote, dir.to_str().unwrap()])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "clone: {}", text(&o));
                    let msg = format!("writer {w} round {round}");
                    let h1 = append_text(&dir, &msg);
                    let o = run(&dir, &["push", "--quiet"]);
                    if o.status.success() {
                        acked.lock().unwrap().push(h1);
                    } else {
                        let e = text(&o);
                        assert!(e.contains("diverged") || e.contains("refused"), "{e}");
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    let refused = refused.into_inner();
    eprintln!(
        "race: {} pushes acknowledged, {refused} refused",
        acked.len()
    );
    assert_eq!(acked.len() + refused, WRITERS * ROUNDS);
    assert!(!acked.is_empty());
    let fin = t.path().join("final");
    let o = bin()
        .args(["clone", &remote, fin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let on_remote: HashSet<String> = ok(&fin, &["log", "--json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["h1"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for h in &acked {
        assert!(on_remote.contains(h), "acknowledged push of {h} is lost");
    }
    // The seed, and one message per acknowledged push: nothing else got in.
    assert_eq!(on_remote.len(), acked.len() + 1, "{refused} refused");
    ok(&fin, &["check", "--read-data", "origin"]);
}

// ---------------------------------------------------------------------------------------
// kill -9

/// `kill -9` at points spread over a push of a few thousand messages: after every kill
/// the remote passes `check --read-data` and holds either the whole log or what it held
/// before; a last push completes and a clone equals the local log.
#[test]
fn kill_9_during_a_push_to_s3_leaves_the_remote_sound() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let inbox = t.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    for i in 0..1500 {
        std::fs::write(
            inbox.join(format!("{i:05}")),
            format!("message {i} {}", "x".repeat(i % 90)),
        )
        .unwrap();
    }
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1);
    let remote = server.fresh("kill9");
    ok_env(&a, &["remote", "add", "origin", &remote], &server.env());
    let push = || {
        let mut c = bin();
        c.arg("--store").arg(&a).args(["push", "--quiet"]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let entries = |dir: &Path| -> usize { ok(dir, &["log", "--json"]).lines().count() };
    let mut remote_entries = 0;
    let mut full = Duration::ZERO;
    for round in 0..5 {
        ok(
            &a,
            &[
                "append",
                "--group",
                "g",
                "--dir",
                inbox.to_str().unwrap(),
                "--timestamp",
                &round.to_string(),
            ],
        );
        let local = entries(&a);
        if round == 0 {
            // A whole push, timed, to place the kills.
            let t0 = Instant::now();
            let o = push().output().unwrap();
            assert!(o.status.success(), "{}", text(&o));
            full = t0.elapsed();
            remote_entries = local;
            continue;
        }
        let delay = full.mul_f64(0.05 + 0.6 * rng.unit());
        let mut child = push().spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let context = format!("round {round}, killed after {delay:?} of {full:?} ({status})");
        eprintln!("kill9 on s3: {context}");
        let o = run(&a, &["check", "--read-data", "origin"]);
        assert!(o.status.success(), "{context}: {}", text(&o));
        let dest = t.path().join(format!("clone{round}"));
        let o = bin()
            .args(["clone", &remote, dest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{context}: {}", text(&o));
        let n = entries(&dest);
        assert!(
            n == remote_entries || n == local,
            "{context}: {n} entries on the remote, {remote_entries} before and {local} local"
        );
        remote_entries = n;
    }
    let o = push().output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let dest = t.path().join("last");
    let o = bin()
        .args(["clone", &remote, dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ok(&dest, &["log", "--json"]), ok(&a, &["log", "--json"]));
    ok(&a, &["check", "--read-data", "origin"]);
}

// ---------------------------------------------------------------------------------------
// Compare-and-swap when answers go missing

/// The store applies a ref's conditional PUT but its answer is lost: the client sends it
/// again, gets 412 (the ref moved: by us), re-reads the ref, finds its own value and
/// reports success instead of a conflict. Another writer's value is still a conflict.
#[test]
fn a_412_after_a_lost_answer_is_re_read_and_our_own_write_wins() {
    let server = common::seaweed();
    let location = server.fresh("lost");
    let direct = server.backend(&location);
    let name = refname("logs/main");
    let (one, two, three) = (Id::of(b"one"), Id::of(b"two"), Id::of(b"three"));
    direct
        .update_ref(&name, Expected::Absent, Some(one))
        .unwrap();

    let puts = Arc::new(Mutex::new(0usize));
    let seen = puts.clone();
    let endpoint = proxy(server.var("AWS_ENDPOINT_URL"), None, move |method, path| {
        if method == "PUT" && path.ends_with("/refs/logs/main") {
            let mut n = seen.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return Act::Lose;
            }
        }
        Act::Forward
    });
    let b = backend_via(&location, &endpoint);
    b.update_ref(&name, Expected::Equal(one), Some(two))
        .unwrap();
    assert_eq!(*puts.lock().unwrap(), 2, "the PUT was sent again");
    assert_eq!(direct.read_ref(&name).unwrap(), Some(two));

    // Lost again, and before the resend another writer moves the ref: the 412 then is
    // theirs, and the update is a conflict, not a success.
    let other = server.backend(&location);
    let puts = Arc::new(Mutex::new(0usize));
    let seen = puts.clone();
    let endpoint = proxy(server.var("AWS_ENDPOINT_URL"), None, move |method, path| {
        if method == "PUT" && path.ends_with("/refs/logs/main") {
            let mut n = seen.lock().unwrap();
            *n += 1;
            match *n {
                1 => return Act::Lose,
                2 => other
                    .update_ref(&refname("logs/main"), Expected::Any, Some(three))
                    .unwrap(),
                _ => {}
            }
        }
        Act::Forward
    });
    let b = backend_via(&location, &endpoint);
    let err = b
        .update_ref(&name, Expected::Equal(two), Some(one))
        .unwrap_err();
    assert!(
        matches!(err, remotelog::error::Error::RefConflict { .. }),
        "{err}"
    );
    assert_eq!(*puts.lock().unwrap(), 2);
    assert_eq!(direct.read_ref(&name).unwrap(), Some(three));
}

/// 409 (a conflicting write in flight, as AWS answers) means: read again and retry.
#[test]
fn a_409_is_read_again_and_retried() {
    let server = common::seaweed();
    let location = server.fresh("conflict");
    let direct = server.backend(&location);
    let name = refname("logs/main");
    let (one, two) = (Id::of(b"one"), Id::of(b"two"));
    direct
        .update_ref(&name, Expected::Absent, Some(one))
        .unwrap();
    let puts = Arc::new(Mutex::new(0usize));
    let seen = puts.clone();
    let endpoint = proxy(server.var("AWS_ENDPOINT_URL"), None, move |method, path| {
        if method == "PUT" && path.ends_with("/refs/logs/main") {
            let mut n = seen.lock().unwrap();
            *n += 1;
            if *n <= 2 {
                return Act::Refuse(409);
            }
        }
        Act::Forward
    });
    let b = backend_via(&location, &endpoint);
    b.update_ref(&name, Expected::Equal(one), Some(two))
        .unwrap();
    assert_eq!(*puts.lock().unwrap(), 3);
    assert_eq!(direct.read_ref(&name).unwrap(), Some(two));
}

// ---------------------------------------------------------------------------------------
// Leases

/// The text of a lease held by a process of another host, renewed `ttl` seconds at most.
fn foreign_lease(ttl: u64) -> String {
    format!("pid=4242\nhost=elsewhere.invalid\ntime=1\nttl={ttl}\n")
}

/// A gc that crashed leaves its upkeep lease behind (a process of another host, so it
/// cannot be seen to be gone): a push waits, saying for what, and goes through once the
/// lease lapsed by the store's clock; it is not blocked for good.
#[test]
fn a_crashed_gc_s_lease_lapses_and_the_push_goes_through() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let remote = server.fresh("crashed");
    let a = t.path().join("a");
    ok(&a, &["init"]);
    append_text(&a, "one");
    ok_env(&a, &["remote", "add", "origin", &remote], &server.env());
    ok(&a, &["push"]);
    append_text(&a, "two");
    let loc = Location::parse(&remote).unwrap();
    let client = Client::new(server.config(), &loc.bucket).unwrap();
    let key = loc.key(layout::UPKEEP);
    let put = client
        .put(&key, foreign_lease(2).as_bytes(), &Cond::Absent)
        .unwrap();
    assert_eq!(put.status, 200);
    let t0 = Instant::now();
    let o = run_env(&a, &["push"], &server.env());
    let took = t0.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("waiting for gc") && err.contains("elsewhere.invalid"),
        "{err}"
    );
    // Not before the lease lapsed (2 s, in whole seconds of the store's clock), and long
    // before the default wait of a push runs out.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert_eq!(common::entries(&server.backend(&remote), "main").len(), 2);
}

/// A running gc renews its lease by a heartbeat: with a time to live of 1 s it still keeps
/// writers out after 3 s; once it is done, they get in at once.
#[test]
fn a_running_gc_keeps_its_lease_by_heartbeat() {
    let server = common::seaweed();
    let location = server.fresh("heartbeat");
    let gc = server
        .backend(&location)
        .with_lease_ttl(Duration::from_secs(1));
    let writer = server.backend(&location);
    let guard = gc.exclusive(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let e = writer
        .write_lease_waiting(Duration::ZERO)
        .err()
        .expect("a writer is kept out while gc runs")
        .to_string();
    assert!(e.contains("gc is running"), "{e}");
    drop(guard);
    writer.write_lease_waiting(Duration::ZERO).unwrap();
}

/// A lease's age is the store's clock (`Date`) minus its `Last-Modified`, never the local
/// clock: through a proxy whose answers are dated in 2100, a gc's fresh lease has lapsed
/// and a writer gets in; straight to the store, the same lease keeps it out.
#[test]
fn lease_ages_come_from_the_store_s_clock() {
    let server = common::seaweed();
    let location = server.fresh("clock");
    let gc = server.backend(&location);
    let _guard = gc.exclusive(Duration::from_secs(5)).unwrap();
    let e = server
        .backend(&location)
        .write_lease_waiting(Duration::ZERO)
        .err()
        .expect("gc's lease holds")
        .to_string();
    assert!(e.contains("gc is running"), "{e}");
    let later = proxy(
        server.var("AWS_ENDPOINT_URL"),
        Some("Fri, 01 Jan 2100 00:00:00 GMT"),
        |_, _| Act::Forward,
    );
    backend_via(&location, &later)
        .write_lease_waiting(Duration::ZERO)
        .unwrap();
}

/// `gc NAME` and `repack NAME` on an s3:// remote with no store there fail saying so, and
/// create nothing (a typo in a prefix must not make an empty store), as on a directory.
#[test]
fn upkeep_of_an_s3_remote_with_no_store_fails_and_creates_nothing() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let nowhere = server.fresh("nowhere");
    ok_env(&a, &["remote", "add", "nowhere", &nowhere], &server.env());
    for cmd in [&["gc", "nowhere"][..], &["repack", "nowhere"]] {
        let err = fails_env(&a, cmd, &server.env());
        assert!(err.contains("not a remotelog store"), "{cmd:?}: {err}");
    }
    let loc = Location::parse(&nowhere).unwrap();
    let client = Client::new(server.config(), &loc.bucket).unwrap();
    let mut keys = Vec::new();
    client
        .list(&loc.key(""), &mut |item| {
            keys.push(item.key);
            Ok(())
        })
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
