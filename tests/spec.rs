//! The 3/REMOTE-LOG wire form (format/spec-view.md): native logs read through the spec
//! view entry by entry, the spec-only Python reader and writer in `examples/`, import-spec
//! (full, incremental, from our server's native view and from spec writers), and hostile
//! spec input, which must give a clear error and import nothing.

use std::collections::{HashMap, HashSet};
use std::process::Command;

use prost::Message as _;
use remotelog::log::{self, SettingsChange};
use remotelog::spec::proto::vac::{cas, mvds, ns};
use remotelog::spec::{self, Pair, RemoteLog};
use remotelog::store::config::Config;
use remotelog::store::Backend;
use remotelog::transfer::import_spec::{self, Limits, SpecSource, TwirpSource};
use remotelog::{upkeep::check, FsStore, Id, Message};

mod common;
use common::{examples, fails_with, run, run_env, serve, sound};

fn msgs(tag: &str, n: usize, from: usize) -> Vec<Message> {
    (from..from + n)
        .map(|i| Message {
            group_id: b"g".to_vec(),
            timestamp: i as i64 - 3, // some negative timestamps: ten-byte varints
            body: format!("{tag} {i} {}", "x".repeat(i % 7)).into_bytes(),
        })
        .collect()
}

fn twirp(url: &str, method: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("{url}/twirp/{method}"))
        .header("Content-Type", "application/protobuf")
        .send(&body[..])
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_vec().unwrap())
}

fn fetch(url: &str, name: &str) -> Vec<u8> {
    let (s, b) = twirp(
        url,
        "vac.ns.NS/Fetch",
        ns::Query { name: name.into() }.encode_to_vec(),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    ns::Content::decode(&b[..]).unwrap().data
}

/// CAS Get, checking that the bytes hash to the address asked for.
fn get(url: &str, addr: &[u8]) -> Vec<u8> {
    let (s, b) = twirp(
        url,
        "vac.cas.CAS/Get",
        cas::Address { id: addr.to_vec() }.encode_to_vec(),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let data = cas::Content::decode(&b[..]).unwrap().data;
    assert_eq!(Id::of(&data).0[..], addr[..], "Get returned other bytes");
    data
}

fn add(url: &str, data: &[u8]) -> Vec<u8> {
    let (s, b) = twirp(
        url,
        "vac.cas.CAS/Add",
        cas::Content {
            data: data.to_vec(),
        }
        .encode_to_vec(),
    );
    assert_eq!(s, 200);
    cas::Address::decode(&b[..]).unwrap().id
}

fn update(url: &str, name: &str, content: &[u8]) -> (u16, Vec<u8>) {
    twirp(
        url,
        "vac.ns.NS/Update",
        ns::NameUpdate {
            name: name.into(),
            content: content.to_vec(),
        }
        .encode_to_vec(),
    )
}

/// Reads a log through the spec view only, checking every hash: per page, the pairs
/// (newest first) with their decoded payload and embedded flag.
fn read_spec(url: &str, name: &str) -> Vec<Vec<(Id, Message, bool)>> {
    let mut page = fetch(url, name);
    let mut out = Vec::new();
    loop {
        let rl = RemoteLog::decode(&page[..]).unwrap();
        let mut entries = Vec::new();
        for p in &rl.pair {
            let payload = get(url, &p.remote_hash);
            if !p.data.is_empty() {
                assert_eq!(p.data, payload, "embedded data is the served payload");
            }
            let m = mvds::Message::decode(&payload[..]).unwrap();
            let m = Message {
                group_id: m.group_id,
                timestamp: m.timestamp,
                body: m.body,
            };
            assert_eq!(m.h1().0[..], p.local_hash[..], "H1 = localHash");
            entries.push((m.h1(), m, !p.data.is_empty()));
        }
        out.push(entries);
        if rl.tail.is_empty() {
            return out;
        }
        page = get(url, &rl.tail);
    }
}

fn native_pages(s: &dyn Backend, name: &str) -> Vec<Vec<(Id, Message, bool)>> {
    log::pages(s, log::head(s, name).unwrap())
        .map(|p| {
            let (_, page) = p.unwrap();
            page.entries
                .iter()
                .map(|e| (e.h1, log::read_message(s, e).unwrap(), e.embedded.is_some()))
                .collect()
        })
        .collect()
}

fn h1s(s: &dyn Backend, name: &str) -> Vec<Id> {
    log::entries(s, name)
        .unwrap()
        .iter()
        .map(|e| e.h1)
        .collect()
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(examples().join(script))
        .args(args)
        .output()
        .expect("python3 is needed for the spec examples")
}

fn import(
    store: &FsStore,
    url: &str,
    name: &str,
    local: &str,
    limits: &Limits,
) -> remotelog::Result<import_spec::Imported> {
    let src = TwirpSource::new(url, None, limits.max_bytes).unwrap();
    import_spec::import(store, &src, name, local, limits)
}

// ---------------------------------------------------------------------------------------

#[test]
fn native_log_reads_back_entry_by_entry_through_the_spec_view() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("srv");
    let s = FsStore::init(&dir, Config::default()).unwrap();
    let change = SettingsChange {
        capacity: Some(4),
        embed: Some(3),
    };
    // Several appends: closed pages, an open head rewritten, embedded newest entries.
    log::append(&s, "main", &msgs("a", 9, 0), change).unwrap();
    log::append(&s, "main", &msgs("a", 2, 9), SettingsChange::default()).unwrap();
    let srv = serve(&dir, |_| {});
    let url = srv.url();
    let spec_pages = read_spec(&url, "main");
    assert_eq!(spec_pages, native_pages(&s, "main"));
    assert_eq!(
        spec_pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 4, 4]
    );

    // Another append; a reader holding the old head can still read it; gc then drops the
    // replaced page, and the view of the new head is complete.
    let old_head = fetch(&url, "main");
    log::append(&s, "main", &msgs("a", 1, 11), SettingsChange::default()).unwrap();
    assert_eq!(read_spec(&url, "main"), native_pages(&s, "main"));
    let old_addr = Id::of(&old_head);
    assert_eq!(get(&url, &old_addr.0), old_head);
    // The REST API serves view addresses too.
    let rest: Vec<u8> = ureq::get(&format!("{url}/cas/{old_addr}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(rest, old_head);
    remotelog::upkeep::gc::gc(
        &s,
        std::time::Duration::ZERO,
        false,
        &remotelog::progress::Silent,
    )
    .unwrap();
    let (st, _) = twirp(
        &url,
        "vac.cas.CAS/Get",
        cas::Address {
            id: old_addr.0.to_vec(),
        }
        .encode_to_vec(),
    );
    assert_eq!(st, 404, "the replaced head's view went with the page");
    assert_eq!(read_spec(&url, "main"), native_pages(&s, "main"));
    sound(&s);

    // A fresh process (empty in-memory index) derives the same addresses: drop the cache.
    std::fs::remove_file(dir.join(spec::INDEX_FILE)).unwrap();
    let idx = spec::ViewIndex::in_memory();
    let head = log::head(&s, "main").unwrap().unwrap();
    assert_eq!(
        spec::head_view(&s, &idx, head).unwrap(),
        fetch(&url, "main")
    );
    // An unknown address is not_found, never an empty body.
    let (st, body) = twirp(
        &url,
        "vac.cas.CAS/Get",
        cas::Address { id: vec![7; 32] }.encode_to_vec(),
    );
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
    // The NS refuses to overwrite the native log, which stays as it was.
    let (st, body) = update(&url, "main", b"clobber");
    assert_eq!(st, 412);
    assert!(String::from_utf8_lossy(&body).contains("failed_precondition"));
    assert_eq!(read_spec(&url, "main"), native_pages(&s, "main"));
}

#[test]
fn python_reader_reads_a_served_native_log() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("srv");
    let s = FsStore::init(&dir, Config::default()).unwrap();
    let m = msgs("bob", 7, 0);
    let change = SettingsChange {
        capacity: Some(3),
        embed: Some(2),
    };
    log::append(&s, "main", &m, change).unwrap();
    let srv = serve(&dir, |_| {});
    let out = python("spec_reader.py", &[&srv.url(), "main"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<u8> = m
        .iter()
        .flat_map(|m| [&m.body[..], b"\n"].concat())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&want)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("7 messages in 3 pages"));
    // A name nobody wrote is an error, not an empty log.
    let out = python("spec_reader.py", &[&srv.url(), "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
}

#[test]
fn python_writer_log_is_imported_then_only_what_is_new() {
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    let srv = serve(&srv_dir, |_| {});
    let url = srv.url();
    let w = |bodies: &[&str], ts: &str| {
        let mut args = vec![&url[..], "chat", "--group", "g1", "--timestamp", ts];
        args.extend_from_slice(bodies);
        let out = python("spec_writer.py", &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    w(&["one", "two", "three", "four", "five"], "100");
    let local = t.path().join("bob");
    FsStore::init(&local, Config::default()).unwrap();
    let out = run(&local, &["import-spec", &url, "chat", "--log", "inbox"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 5 new"));
    w(&["six", "seven"], "105");
    let out = run(&local, &["import-spec", &url, "chat", "--log", "inbox"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 2 new"),
        "{out:?}"
    );
    let out = run(&local, &["import-spec", &url, "chat", "--log", "inbox"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 0 new"),
        "{out:?}"
    );
    let s = FsStore::open(&local).unwrap();
    let got: Vec<Message> = log::entries(&s, "inbox")
        .unwrap()
        .iter()
        .rev()
        .map(|e| log::read_message(&s, e).unwrap())
        .collect();
    let bodies: Vec<&[u8]> = got.iter().map(|m| &m.body[..]).collect();
    let want: [&[u8]; 7] = [b"one", b"two", b"three", b"four", b"five", b"six", b"seven"];
    assert_eq!(bodies, want);
    assert!(got.iter().enumerate().all(|(i, m)| m.timestamp
        == 100 + (i as i64 % 5) + 5 * (i as i64 / 5)
        && m.group_id == b"g1"));
    sound(&s);
    // The spec-form log on the server is kept by gc and verified by check.
    let served = FsStore::open(&srv_dir).unwrap();
    remotelog::upkeep::gc::gc(
        &served,
        std::time::Duration::ZERO,
        false,
        &remotelog::progress::Silent,
    )
    .unwrap();
    let r = check::check(&served, true);
    assert!(r.is_sound(), "{:?}", r.problems);
    assert!(
        r.notes.iter().all(|n| !n.contains("opaque")),
        "{:?}",
        r.notes
    );
    let out = python("spec_reader.py", &[&url, "chat"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one\ntwo\nthree\nfour\nfive\nsix\nseven\n"
    );
}

#[test]
fn rust_spec_writer_and_our_native_view_import_incrementally() {
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    let s = FsStore::init(&srv_dir, Config::default()).unwrap();
    let change = SettingsChange {
        capacity: Some(5),
        embed: Some(2),
    };
    log::append(&s, "main", &msgs("n", 12, 0), change).unwrap();
    let srv = serve(&srv_dir, |_| {});
    let url = srv.url();
    let local = FsStore::init(&t.path().join("local"), Config::default()).unwrap();
    let limits = Limits::default();
    // From our own native view: the open head page is rewritten by every append, so a
    // re-import recognises the old head's entries in the new one.
    assert_eq!(
        import(&local, &url, "main", "copy", &limits)
            .unwrap()
            .entries,
        12
    );
    for (n, from) in [(1, 12), (4, 13), (3, 17)] {
        log::append(&s, "main", &msgs("n", n, from), SettingsChange::default()).unwrap();
        assert_eq!(
            import(&local, &url, "main", "copy", &limits)
                .unwrap()
                .entries,
            n
        );
        assert_eq!(h1s(&local, "copy"), h1s(&s, "main"));
    }

    // A log written through Twirp by Rust code, pages chained on top.
    let mut tail = Vec::new();
    let mut all = Vec::new();
    for round in 0..3 {
        let batch = msgs("w", 4, round * 4);
        let mut pairs: Vec<Pair> = batch
            .iter()
            .map(|m| {
                let payload = spec::payload(m);
                let remote = add(&url, &payload);
                Pair {
                    remote_hash: remote,
                    local_hash: m.h1().0.to_vec(),
                    data: if m.timestamp % 2 == 0 {
                        payload
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        pairs.reverse();
        let page = RemoteLog {
            pair: pairs,
            tail: tail.clone(),
        }
        .encode_to_vec();
        tail = add(&url, &page);
        assert_eq!(update(&url, "rust", &page).0, 200);
        all.extend(batch);
        let done = import(&local, &url, "rust", "rust", &limits).unwrap();
        assert_eq!(done.entries, 4);
        let want: Vec<Id> = all.iter().rev().map(Message::h1).collect();
        assert_eq!(h1s(&local, "rust"), want);
    }
    sound(&local);
}

/// A source whose answers the test chooses (no hash checking on its side).
struct Fake {
    head: Vec<u8>,
    cas: HashMap<Id, Vec<u8>>,
}

impl SpecSource for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn fetch(&self, _: &str) -> remotelog::Result<Option<Vec<u8>>> {
        Ok(Some(self.head.clone()))
    }
    fn get(&self, addr: &Id) -> remotelog::Result<Option<Vec<u8>>> {
        Ok(self.cas.get(addr).cloned())
    }
}

#[test]
fn hostile_spec_logs_are_clear_errors_and_import_nothing() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let local = FsStore::init(&t.path().join("local"), Config::default()).unwrap();
    let limits = Limits::default();
    let m = msgs("h", 3, 0);
    let pair = |m: &Message| {
        let payload = spec::payload(m);
        Pair {
            remote_hash: add(&url, &payload),
            local_hash: m.h1().0.to_vec(),
            data: Vec::new(),
        }
    };
    let page = |pairs: Vec<Pair>, tail: Vec<u8>| RemoteLog { pair: pairs, tail }.encode_to_vec();
    // A good log imported first, so a failed re-import must leave it as it was.
    let good = page(vec![pair(&m[0])], Vec::new());
    let good_addr = add(&url, &good);
    update(&url, "good", &good);
    import(&local, &url, "good", "good", &limits).unwrap();
    let before = h1s(&local, "good");

    let mut bad_h1 = pair(&m[1]);
    bad_h1.local_hash = m[2].h1().0.to_vec();
    let mut no_remote = pair(&m[1]);
    no_remote.remote_hash.clear();
    let mut chain = good_addr.clone();
    for i in 0..12 {
        chain = add(&url, &page(vec![pair(&m[i % 3])], chain));
    }
    let cases: Vec<(&str, Vec<u8>, Limits, &str)> = vec![
        (
            "undecodable",
            b"\xff\xff\xff\xff".to_vec(),
            limits,
            "page 1",
        ),
        (
            "no-remote",
            page(vec![pair(&m[1]), no_remote], good_addr.clone()),
            limits,
            "entry 1: remoteHash is missing",
        ),
        (
            "missing-tail",
            page(vec![pair(&m[1])], vec![9; 32]),
            limits,
            "is missing",
        ),
        (
            "short-tail",
            page(vec![pair(&m[1])], vec![9; 5]),
            limits,
            "tail is 5 bytes",
        ),
        (
            "bad-h1",
            page(vec![bad_h1], good_addr.clone()),
            limits,
            "H1",
        ),
        (
            "missing-payload",
            page(
                vec![Pair {
                    remote_hash: vec![3; 32],
                    local_hash: vec![4; 32],
                    data: Vec::new(),
                }],
                Vec::new(),
            ),
            limits,
            "payload",
        ),
        (
            "long",
            get(&url, &chain),
            Limits {
                max_pages: 5,
                ..limits
            },
            "more than 5 pages",
        ),
        (
            "many",
            get(&url, &chain),
            Limits {
                max_entries: 4,
                ..limits
            },
            "more than 4 entries",
        ),
        (
            "big",
            get(&url, &chain),
            Limits {
                max_bytes: 300,
                ..limits
            },
            "more than 300 bytes",
        ),
    ];
    for (name, content, limits, want) in cases {
        for local_name in [name, "good"] {
            update(&url, name, &content);
            let e = import(&local, &url, name, local_name, &limits)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && e.contains("nothing was imported"),
                "{name}: {e}"
            );
            if name != "undecodable" && name != "missing-payload" {
                assert!(e.contains("page"), "{name}: {e}");
            }
        }
        assert!(
            log::head(&local, name).unwrap().is_none(),
            "{name}: half imported"
        );
        assert!(local
            .read_ref(&import_spec::import_ref(name).unwrap())
            .unwrap()
            .is_none());
        assert_eq!(h1s(&local, "good"), before, "{name}");
    }

    // A server that lies: a page whose tail is itself (a cycle), bytes that do not hash
    // to their address.
    let p1 = page(vec![pair(&m[0])], vec![1; 32]);
    let fake = Fake {
        head: p1.clone(),
        cas: HashMap::from([(Id([1; 32]), p1.clone())]),
    };
    let e = import_spec::import(&local, &fake, "x", "cycle", &limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("page 2") && e.contains("not the address asked for"),
        "{e}"
    );
    // The walk itself refuses a repeated tail, even before asking for it.
    let two = page(vec![pair(&m[0])], Id::of(&p1).0.to_vec());
    let fake = Fake {
        head: p1.clone(),
        cas: HashMap::from([(Id([1; 32]), two)]),
    };
    let e = import_spec::import(&local, &fake, "x", "cycle", &limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the address") || e.contains("cycle"), "{e}");
    assert!(log::head(&local, "cycle").unwrap().is_none());
    sound(&local);
    let names: HashSet<String> = log::list(&local)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, HashSet::from(["good".to_string()]));
}

#[test]
fn import_spec_reaches_its_server_through_the_transport_of_http_remotes() {
    // A private server: the import sends the token from REMOTELOG_TOKEN, as remotes do.
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    let s = FsStore::init(&srv_dir, Config::default()).unwrap();
    log::append(&s, "main", &msgs("p", 3, 0), SettingsChange::default()).unwrap();
    let srv = serve(&srv_dir, |o| {
        o.token = Some("sesame".into());
        o.private = true;
    });
    let local = t.path().join("local");
    FsStore::init(&local, Config::default()).unwrap();
    let args = ["import-spec", &srv.url(), "main", "--log", "copy"];
    let o = run(&local, &args);
    fails_with(&o, &[&srv.url(), "unauthenticated", "nothing was imported"]);
    let o = run_env(&local, &args, &[("REMOTELOG_TOKEN", "sesame")]);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported 3 new"));

    // A server that is not there: the reads are retried, then one line says where and
    // what to do, as for a remote.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = run(&local, &["import-spec", &gone, "main"]);
    fails_with(
        &o,
        &[
            &format!("cannot reach the Twirp server at {gone} (POST /twirp/vac.ns.NS/Fetch"),
            "tried 5 times",
            "check the URL",
        ],
    );

    // Its URL is checked as a remote's is.
    let o = run(&local, &["import-spec", "http://user@127.0.0.1:1", "main"]);
    fails_with(&o, &["is not a usable remote URL", "credentials"]);
}
