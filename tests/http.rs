//! The HTTP server and HTTP remotes end to end: push, pull, clone and status against
//! `remotelog serve` (in-process on an ephemeral loopback port, or the real binary), bad
//! input, tokens, read-only mode, the Twirp services, and 50 concurrent clients.
//! Every server is stopped when its test ends, also when it fails (`Running` stops on drop).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use prost::Message as _;
use remotelog::log::{self, SettingsChange};
use remotelog::net::client::HttpBackend;
use remotelog::net::server::{self, Options};
use remotelog::pack;
use remotelog::progress::Silent;
use remotelog::spec::proto::vac::{cas, ns};
use remotelog::store::config::Config;
use remotelog::store::Backend;
use remotelog::store::Expected;
use remotelog::transfer::sync::{self, Force};
use remotelog::{upkeep::check, FsStore, Id, Message};

mod common;
use common::{
    append, bin, entries, fails_env, fails_transiently_with, ok, ok_env, run, run_env, serve,
    sound, store, Counting, Rng,
};

// ---------------------------------------------------------------------------------------
// Helpers

fn remote(url: &str) -> HttpBackend {
    HttpBackend::open(url, None).unwrap()
}

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// One raw request that may legitimately be cut off by the server (an oversized body).
fn try_call(
    a: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Resp> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = match a.run(b.body(body).unwrap()) {
        Ok(r) => r,
        Err(ureq::Error::Io(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset
                || e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return None
        }
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body.into_with_config().limit(u64::MAX).read_to_vec().ok()?;
    Some(Resp {
        status,
        headers: parts.headers,
        body,
    })
}

/// One raw request; `path` is sent as it is (no normalization of `..`).
fn call(a: &ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body).unwrap();
    let resp = match a.run(req.clone()) {
        Ok(r) => r,
        // A keep-alive connection the server had already closed (it may close one after an
        // error answer): send once more on a new connection, as clients do.
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            agent().run(req).unwrap()
        }
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body
        .into_with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    Resp {
        status,
        headers: parts.headers,
        body,
    }
}

fn twirp(base: &str, method: &str, ct: &str, body: &[u8], token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("content-type", ct)];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    call(
        &agent(),
        "POST",
        &format!("{base}/twirp/{method}"),
        &h,
        body,
    )
}

const PB: &str = "application/protobuf";
const JSON: &str = "application/json";

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn twirp_error(r: &Resp, code: &str, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], code, "{v}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(r
        .headers
        .get("content-type")
        .is_some_and(|c| c.to_str().unwrap().starts_with("application/json")));
}

/// A child process killed when dropped, so a failing test never leaves a server behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The README flow and the remotes scenarios over HTTP

#[test]
fn push_clone_pull_and_status_through_the_cli() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let files: Vec<String> = (0..30)
        .map(|i| {
            let p = t.path().join(format!("m{i:02}"));
            std::fs::write(&p, format!("body {i}")).unwrap();
            p.display().to_string()
        })
        .collect();
    let mut args = vec!["append", "--group", "chat", "--timestamp", "7"];
    args.extend(files.iter().map(String::as_str));
    ok(&a, &args);
    ok(
        &a,
        &[
            "append",
            "--log",
            "team/other",
            "--group",
            "x",
            "--page-size",
            "1",
            &files[0],
        ],
    );
    // A trailing slash is dropped; the URL is kept as a URL, not made a path.
    let added = ok(&a, &["remote", "add", "origin", &format!("{url}/")]);
    assert!(
        added.contains(&url) && !added.contains(&format!("{url}/")),
        "{added}"
    );
    let list = ok(&a, &["remote", "list"]);
    assert!(list.starts_with(&format!("origin\t{url}\n")), "{list}");
    ok(&a, &["push", "--all-logs"]);
    let status = ok(&a, &["status"]);
    assert_eq!(status.matches("up to date").count(), 2, "{status}");
    let before_main = ok(&a, &["log", "--json"]);
    let before_other = ok(&a, &["log", "--log", "team/other", "--json"]);

    let c = t.path().join("c");
    ok(t.path(), &["clone", &url, c.to_str().unwrap()]);
    assert_eq!(ok(&c, &["log", "--json"]), before_main);
    assert_eq!(
        ok(&c, &["log", "--log", "team/other", "--json"]),
        before_other
    );
    assert!(ok(&c, &["remote", "list"]).starts_with(&format!("origin\t{url}\n")));
    ok(&c, &["check", "--read-data"]);

    // More appends, push, then pull: only what is new moves.
    let f = t.path().join("more");
    std::fs::write(&f, "more").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    assert!(ok(&a, &["status"]).contains("1 entries ahead"));
    ok(&a, &["push"]);
    let v: serde_json::Value =
        serde_json::from_str(ok(&c, &["pull", "--log", "main", "--json"]).trim()).unwrap();
    assert_eq!(v["outcome"], "fast-forward");
    assert_eq!(v["entries"], 1);
    assert_eq!(v["copied"]["objects"], 2, "one message and one page");
    assert_eq!(ok(&c, &["log", "--json"]), ok(&a, &["log", "--json"]));
    let again: serde_json::Value =
        serde_json::from_str(ok(&c, &["pull", "--log", "main", "--json"]).trim()).unwrap();
    assert_eq!(again["outcome"], "up-to-date");
    // The served store is sound, and so is a clone by remote name.
    ok(&t.path().join("srv"), &["check", "--read-data"]);
    let by_name = t.path().join("by-name");
    ok(&a, &["clone", "origin", by_name.to_str().unwrap()]);
    assert_eq!(ok(&by_name, &["log", "--json"]), ok(&a, &["log", "--json"]));
    srv.stop().unwrap();
}

#[test]
fn push_sends_packs_and_clone_fetches_them_whole() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let w = store(&t.path().join("w"));
    append(&w, 3000, "bulk");
    let r = remote(&srv.url());
    let first = sync::push(&w, "origin", &r, "main", Force::No, &Silent).unwrap();
    assert_eq!(first.outcome, "created");
    assert_eq!(
        first.copied.objects,
        3000 + 12,
        "3000 messages and 12 pages"
    );
    let served = FsStore::open(&t.path().join("srv")).unwrap();
    assert_eq!(served.packs().unwrap().len(), 1, "one push, one pack");
    assert_eq!(entries(&served, "main"), entries(&w, "main"));
    sound(&served);

    // A clone reads the pages one by one and the messages as whole blocks.
    let counting = Counting::bulk(&r);
    let dest = t.path().join("clone");
    let (c, _) = sync::clone(&counting, &srv.url(), &dest, None, false, &Silent).unwrap();
    assert_eq!(entries(&c, "main"), entries(&w, "main"));
    let reads = counting.read_count();
    assert!(
        reads <= 2 * 12 + 4,
        "pages only, no per-message reads: {reads}"
    );
    sound(&c);

    // Incremental: a push of 5 copies about 5 objects, a pull of them reads about as many.
    append(&w, 5, "more");
    let second = sync::push(&w, "origin", &r, "main", Force::No, &Silent).unwrap();
    assert_eq!((second.outcome, second.entries), ("fast-forward", 5));
    assert!(second.copied.objects <= 5 + 2, "{:?}", second.copied);
    let counting = Counting::bulk(&r);
    let pulled = sync::pull(&c, "origin", &counting, "main", &Silent).unwrap();
    assert_eq!(pulled.entries, 5);
    assert!(counting.read_count() <= 5 + 8);
    assert_eq!(entries(&c, "main"), entries(&w, "main"));
}

#[test]
fn push_refuses_non_fast_forward_unless_forced_and_pull_refuses_divergence() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let r = remote(&srv.url());
    let a = store(&t.path().join("a"));
    let b = store(&t.path().join("b"));
    append(&a, 3, "a");
    sync::push(&a, "origin", &r, "main", Force::No, &Silent).unwrap();
    append(&b, 4, "b");
    let e = sync::push(&b, "origin", &r, "main", Force::No, &Silent).unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    assert_eq!(entries(&r, "main"), entries(&a, "main"));
    let before = entries(&b, "main");
    let e = sync::pull(&b, "origin", &r, "main", &Silent).unwrap_err();
    assert!(e.to_string().contains("diverged"), "{e}");
    assert_eq!(entries(&b, "main"), before);
    let forced = sync::push(&b, "origin", &r, "main", Force::Yes, &Silent).unwrap();
    assert_eq!(forced.outcome, "forced");
    assert_eq!(entries(&r, "main"), entries(&b, "main"));
    sound(&FsStore::open(&t.path().join("srv")).unwrap());
}

#[test]
fn racing_pushes_over_http_exactly_one_wins() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let base = store(&t.path().join("base"));
    append(&base, 50, "base");
    sync::push(&base, "origin", &remote(&url), "main", Force::No, &Silent).unwrap();
    for round in 0..4 {
        let writers: Vec<FsStore> = (0..2)
            .map(|i| {
                let dest = t.path().join(format!("w{round}-{i}"));
                let (s, _) = sync::clone(&remote(&url), &url, &dest, None, false, &Silent).unwrap();
                append(&s, 20 + round, &format!("round{round} writer{i}"));
                s
            })
            .collect();
        let results: Vec<remotelog::Result<sync::LogTransfer>> = std::thread::scope(|sc| {
            let handles: Vec<_> = writers
                .iter()
                .map(|w| {
                    let r = remote(&url);
                    sc.spawn(move || sync::push(w, "origin", &r, "main", Force::No, &Silent))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let loser = 1 - winners[0];
        let msg = results[loser].as_ref().unwrap_err().to_string();
        assert!(msg.contains("refused"), "{msg}");
        let r = remote(&url);
        assert_eq!(entries(&r, "main"), entries(&writers[winners[0]], "main"));
        // The next round starts from the winner's log.
    }
    sound(&FsStore::open(&t.path().join("srv")).unwrap());
}

// ---------------------------------------------------------------------------------------
// A ref never names an incomplete chain

#[test]
fn a_ref_update_naming_a_chain_the_server_lacks_is_refused_and_clones_still_work() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("srv");
    let srv = serve(&served, |_| {});
    let url = srv.url();
    let a = t.path().join("a");
    let s = store(&a);
    append(&s, 300, "good");
    ok(&a, &["remote", "add", "origin", &url]);
    ok(&a, &["push"]);
    let good_head = log::head(&s, "main").unwrap().unwrap();

    // The issue's reproduction: one POST /cas of a page whose prev and message the server
    // does not have, then a PUT naming it.
    let unsent = Message {
        group_id: b"g".to_vec(),
        timestamp: 1,
        body: b"never uploaded".to_vec(),
    };
    let unsent_bytes = remotelog::model::object::encode_message(&unsent);
    let phantom_prev = Id::of(b"a page nobody uploaded");
    let page = remotelog::model::object::Object::Page(remotelog::Page {
        prev: Some(phantom_prev),
        count: 2,
        capacity: 256,
        embed: 0,
        entries: vec![remotelog::Entry {
            h1: unsent.h1(),
            h2: Id::of(&unsent_bytes),
            embedded: None,
        }],
    })
    .encode();
    let page_id = Id::of(&page);
    let a_ = agent();
    let posted = call(&a_, "POST", &format!("{url}/cas"), &[], &page);
    assert_eq!(posted.status, 201, "{}", posted.text());
    let put = |name: &str, cond: (&str, &str)| {
        call(
            &a_,
            "PUT",
            &format!("{url}/ns/logs/{name}"),
            &[cond],
            page_id.to_hex().as_bytes(),
        )
    };
    let r = put("evil", ("if-none-match", "*"));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.headers.get("x-remotelog-missing").unwrap(),
        Id::of(&unsent_bytes).to_hex().as_str()
    );
    assert!(
        r.text().contains("message") && r.text().contains(&page_id.to_hex()),
        "names the message and its page: {}",
        r.text()
    );
    // Moving a good log there is refused the same way.
    let good = format!("\"{good_head}\"");
    assert_eq!(put("main", ("if-match", &good)).status, 409);
    // Once the message is there, the missing prev is named.
    let m = call(&a_, "POST", &format!("{url}/cas"), &[], &unsent_bytes);
    assert_eq!(m.status, 201, "{}", m.text());
    let r = put("evil", ("if-none-match", "*"));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.headers.get("x-remotelog-missing").unwrap(),
        phantom_prev.to_hex().as_str()
    );
    assert!(r.text().contains("prev of page"), "{}", r.text());
    // The client turns the answer into an error a caller can recognise and act on.
    let client = remote(&url);
    match client.update_ref(
        &remotelog::model::name::RefName::log("evil").unwrap(),
        Expected::Absent,
        Some(page_id),
    ) {
        Err(e @ remotelog::Error::IncompleteChain { .. }) => {
            let shown = e.to_string();
            let remotelog::Error::IncompleteChain { missing, what, .. } = e else {
                unreachable!()
            };
            assert_eq!(missing, phantom_prev);
            assert!(what.contains("page"), "{what}");
            assert!(!shown.contains('\n') && shown.contains("retry"), "{shown}");
        }
        other => panic!("expected IncompleteChain, got {other:?}"),
    }

    // Nothing moved: the store is sound, and clones of it get the good log.
    let served_store = FsStore::open(&served).unwrap();
    assert_eq!(served_store.list_refs("logs").unwrap().len(), 1);
    assert_eq!(log::head(&served_store, "main").unwrap(), Some(good_head));
    sound(&served_store);
    let c = t.path().join("c");
    ok(t.path(), &["clone", &url, c.to_str().unwrap()]);
    ok(&c, &["check", "--read-data"]);
    assert_eq!(
        entries(&FsStore::open(&c).unwrap(), "main"),
        entries(&s, "main")
    );
    // And ordinary pushes still pass the check: onto a full page and into an open one.
    append(&s, 1, "more");
    ok(&a, &["push"]);
    append(&s, 300, "many more");
    ok(&a, &["push"]);
    assert_eq!(entries(&served_store, "main"), entries(&s, "main"));
}

// ---------------------------------------------------------------------------------------
// Bad input

fn pack_bytes(dir: &Path, objects: &[(Id, &[u8])]) -> Vec<u8> {
    let mut w = remotelog::pack::PackWriter::create(dir, None, 3).unwrap();
    for (id, b) in objects {
        w.add(*id, b).unwrap();
    }
    let done = w.finish().unwrap();
    std::fs::read(&done.tmp).unwrap()
}

#[test]
fn bad_input_gets_a_4xx_with_a_message_and_the_server_keeps_serving() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |o| o.max_body = 1 << 20);
    let url = srv.url();
    let a = agent();
    let expect = |r: Resp, status: u16, words: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.text().contains(words), "{words:?} not in {:?}", r.text());
    };
    // Ids and names.
    expect(
        call(&a, "GET", &format!("{url}/cas/xyz"), &[], b""),
        400,
        "not an id",
    );
    let missing = Id::of(b"never stored");
    expect(
        call(&a, "GET", &format!("{url}/cas/{missing}"), &[], b""),
        404,
        "not in this store",
    );
    expect(
        call(&a, "GET", &format!("{url}/cas?prefix=Z"), &[], b""),
        400,
        "hex",
    );
    for trick in [
        "/ns/logs/../config",
        "/ns/logs/..%2F..%2Fconfig",
        "/ns/..%2Fconfig",
        "/ns/logs//main",
        "/ns/logs/.hidden",
        "/ns/logs/main.lock",
        "/ns/%2Fetc%2Fpasswd",
    ] {
        let r = call(&a, "GET", &format!("{url}{trick}"), &[], b"");
        assert!(
            r.status == 400 || r.status == 404,
            "{trick}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("root:"), "{trick}");
        let r = call(
            &a,
            "PUT",
            &format!("{url}{trick}"),
            &[("if-none-match", "*")],
            missing.to_hex().as_bytes(),
        );
        assert!(
            r.status == 400 || r.status == 403 || r.status == 404,
            "{trick}: {} {}",
            r.status,
            r.text()
        );
    }
    expect(
        call(&a, "GET", &format!("{url}/nothing/here"), &[], b""),
        404,
        "http-api.md",
    );

    // Refs: compare-and-swap is mandatory, values must be stored objects of the right kind.
    let blob = call(&a, "POST", &format!("{url}/cas"), &[], b"an opaque blob");
    assert_eq!(blob.status, 201, "{}", blob.text());
    let blob_id = blob.text().trim().to_string();
    assert_eq!(blob_id, Id::of(b"an opaque blob").to_hex());
    let again = call(&a, "POST", &format!("{url}/cas"), &[], b"an opaque blob");
    assert_eq!(again.status, 200, "already there");
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/spec/x"),
            &[],
            blob_id.as_bytes(),
        ),
        428,
        "If-Match",
    );
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/spec/x"),
            &[("if-none-match", "*")],
            b"junk",
        ),
        400,
        "not an id",
    );
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/spec/x"),
            &[("if-none-match", "*")],
            missing.to_hex().as_bytes(),
        ),
        409,
        "not in this store",
    );
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/logs/x"),
            &[("if-none-match", "*")],
            blob_id.as_bytes(),
        ),
        422,
        "not a page",
    );
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/packs"),
            &[("if-none-match", "*")],
            blob_id.as_bytes(),
        ),
        403,
        "cannot be written",
    );
    let put = call(
        &a,
        "PUT",
        &format!("{url}/ns/spec/x"),
        &[("if-none-match", "*")],
        blob_id.as_bytes(),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let stale = call(
        &a,
        "PUT",
        &format!("{url}/ns/spec/x"),
        &[("if-none-match", "*")],
        blob_id.as_bytes(),
    );
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert_eq!(
        stale.headers.get("x-remotelog-current").unwrap(),
        blob_id.as_str()
    );
    let wrong = format!("\"{missing}\"");
    expect(
        call(
            &a,
            "PUT",
            &format!("{url}/ns/spec/x"),
            &[("if-match", &wrong)],
            blob_id.as_bytes(),
        ),
        412,
        "moved",
    );
    let got = call(&a, "GET", &format!("{url}/ns/spec/x"), &[], b"");
    assert_eq!((got.status, got.text().trim()), (200, blob_id.as_str()));
    assert_eq!(got.headers.get("etag").unwrap(), &format!("\"{blob_id}\""));

    // Packs: garbage, a damaged block, an object whose id is a lie, too big.
    expect(
        call(
            &a,
            "POST",
            &format!("{url}/packs"),
            &[],
            b"not a pack at all",
        ),
        422,
        "invalid",
    );
    let good = pack_bytes(t.path(), &[(Id::of(b"one"), b"one")]);
    let mut damaged = good.clone();
    damaged[pack::HEADER_LEN + 2] ^= 0xff;
    expect(
        call(&a, "POST", &format!("{url}/packs"), &[], &damaged),
        422,
        "checksum",
    );
    let liar = pack_bytes(t.path(), &[(Id::of(b"what it claims"), b"what it holds")]);
    expect(
        call(&a, "POST", &format!("{url}/packs"), &[], &liar),
        422,
        "hashes to",
    );
    expect(
        call(
            &a,
            "POST",
            &format!("{url}/packs"),
            &[],
            &good[..good.len() - 1],
        ),
        422,
        "invalid",
    );
    // Refused before the body is sent (a client that does not wait for 100 Continue
    // sees the connection close while it writes, as with any server).
    let huge = vec![7u8; (1 << 20) + 1];
    let cont = [("expect", "100-continue")];
    for path in ["cas", "packs"] {
        // Under load the client may give up waiting for 100 Continue and start sending;
        // then the server's refusal can arrive as a closed connection instead. Either way
        // nothing is stored and the server keeps serving (checked below).
        if let Some(r) = try_call(&a, "POST", &format!("{url}/{path}"), &cont, &huge) {
            expect(r, 413, "--max-body");
        }
    }
    let twirp_huge = cas::Content { data: huge.clone() }.encode_to_vec();
    let r = call(
        &a,
        "POST",
        &format!("{url}/twirp/vac.cas.CAS/Add"),
        &[("content-type", PB), cont[0]],
        &twirp_huge,
    );
    twirp_error(&r, "invalid_argument", 400);
    let served = FsStore::open(&t.path().join("srv")).unwrap();
    assert!(!served.has_object(&Id::of(b"what it holds")).unwrap());
    assert!(!served.has_object(&Id::of(b"one")).unwrap());
    let ok_pack = call(&a, "POST", &format!("{url}/packs"), &[], &good);
    assert_eq!(ok_pack.status, 200, "{}", ok_pack.text());
    assert_eq!(ok_pack.json()["new"], 1);
    assert!(served.has_object(&Id::of(b"one")).unwrap());

    // Ranges.
    let r = remote(&url);
    let w = store(&t.path().join("w"));
    append(&w, 200, "w");
    sync::push(&w, "origin", &r, "main", Force::No, &Silent).unwrap();
    let (pack_id, size) = r.packs().unwrap()[0];
    let part = call(
        &a,
        "GET",
        &format!("{url}/packs/{pack_id}"),
        &[("range", "bytes=0-7")],
        b"",
    );
    assert_eq!((part.status, &part.body[..]), (206, &b"RLOGPACK"[..]));
    let beyond = format!("bytes={size}-");
    expect(
        call(
            &a,
            "GET",
            &format!("{url}/packs/{pack_id}"),
            &[("range", &beyond)],
            b"",
        ),
        416,
        "range",
    );
    let whole = call(&a, "GET", &format!("{url}/packs/{pack_id}"), &[], b"");
    assert_eq!((whole.status, whole.body.len() as u64), (200, size));
    expect(
        call(&a, "GET", &format!("{url}/packs/{missing}"), &[], b""),
        404,
        "not on this store's pack chain",
    );

    // Still serving, and everything served is sound: the opaque blob is no problem.
    assert_eq!(
        call(&a, "GET", &format!("{url}/healthz"), &[], b"").json()["status"],
        "ok"
    );
    let report = check::check(&served, true);
    assert!(report.is_sound(), "{:?}", report.problems);
    assert!(
        report.notes.iter().any(|n| n.contains("opaque")),
        "{:?}",
        report.notes
    );
}

// ---------------------------------------------------------------------------------------
// Hostile bodies: sizes, slowness, lying packs

/// Sends `head` and then `chunks` as a chunked body on a new connection, and reads the
/// answer's status line and body.
fn raw_chunked(url: &str, head: &str, chunks: &[&[u8]]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req =
        format!("{head}Host: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .into_bytes();
    for c in chunks {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has read everything (a body too large).
    let _ = s.write_all(&req);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// Splits `bytes` into chunks of awkward sizes around the 32-byte tail the server keeps.
fn awkward_chunks(bytes: &[u8]) -> Vec<&[u8]> {
    let sizes = [1, 31, 32, 33, 7, 64, 5, 100, 2];
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        out.push(&bytes[at..at + n]);
        at += n;
        i += 1;
    }
    out
}

#[test]
fn each_endpoint_refuses_a_body_beyond_what_it_needs_at_once() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = agent();
    // Announced sizes are refused before anything is read, with the limit named.
    let too_big = |path: &str, len: u64, ct: &str| {
        let head =
            format!("POST {path} HTTP/1.1\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\n");
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(format!("{head}Host: x\r\n\r\n").as_bytes())
            .unwrap();
        // Nothing of the body is sent: the answer must come anyway.
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    let r = too_big("/cas/present", server::PRESENT_BODY_MAX + 1, "text/plain");
    assert!(
        r.starts_with("HTTP/1.1 413") && r.contains("100,000 ids"),
        "{r}"
    );
    let r = too_big("/twirp/vac.cas.CAS/Get", 1 << 20, PB);
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("invalid_argument"),
        "{r}"
    );
    let r = too_big("/cas", (64 << 20) + 1, "application/octet-stream");
    assert!(r.starts_with("HTTP/1.1 413") && r.contains("64 MiB"), "{r}");
    let put = call(
        &a,
        "PUT",
        &format!("{url}/ns/logs/x"),
        &[("if-none-match", "*")],
        &[b'a'; 2048],
    );
    assert_eq!(put.status, 413, "{}", put.text());
    // A body without a length is cut where it passes the limit.
    let junk = vec![b'0'; 1 << 20];
    let chunks: Vec<&[u8]> = (0..8).map(|_| &junk[..]).collect();
    let (status, answer) = raw_chunked(&url, "POST /cas/present HTTP/1.1\r\n", &chunks);
    assert_eq!(status, 413, "{answer}");
    // Bodies sent in odd pieces are stored and hashed right.
    let blob: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (status, answer) = raw_chunked(&url, "POST /cas HTTP/1.1\r\n", &awkward_chunks(&blob));
    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains(&Id::of(&blob).to_hex()), "{answer}");
    let objects: Vec<(Id, Vec<u8>)> = (0..80)
        .map(|i| {
            let b = format!("object {i} sent in pieces").into_bytes();
            (Id::of(&b), b)
        })
        .collect();
    for n in [3, 80] {
        let refs: Vec<(Id, &[u8])> = objects[..n].iter().map(|(i, b)| (*i, &b[..])).collect();
        let packed = pack_bytes(t.path(), &refs);
        let (status, answer) =
            raw_chunked(&url, "POST /packs HTTP/1.1\r\n", &awkward_chunks(&packed));
        assert_eq!(status, 200, "{n} objects: {answer}");
    }
    let served = FsStore::open(&t.path().join("srv")).unwrap();
    for (id, b) in &objects {
        assert_eq!(&served.get_object(id).unwrap(), b);
    }
    assert_eq!(
        call(&a, "GET", &format!("{url}/healthz"), &[], b"").status,
        200
    );
}

#[test]
fn a_slow_body_holds_no_slot() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |o| o.max_concurrency = 1);
    let url = srv.url();
    // A body that has not arrived yet, on the only slot's server.
    let mut slow = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    slow.write_all(b"POST /cas/present HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let quick = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(3)))
            .build(),
    );
    for path in ["/healthz", "/ns", "/packs"] {
        let r = quick.get(&format!("{url}{path}")).call();
        assert!(
            r.as_ref().is_ok_and(|r| r.status() == 200),
            "{path} waited behind a slow body: {r:?}"
        );
    }
    // The slow body, once complete, is answered as usual.
    let id = Id::of(b"x").to_hex();
    slow.write_all(format!("{id}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(&mut slow, 1024), &mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The bytes of a pack of one object whose block declares `ulen` bytes decompressed and
/// whose object claims `len` bytes, checksum redone: a pack that lies about sizes.
fn lying_pack(dir: &Path, object: &[u8], ulen: u32, len: u32) -> Vec<u8> {
    let mut p = pack_bytes(dir, &[(Id::of(object), object)]);
    let t = p.len() - pack::TRAILER_LEN;
    let index = u64::from_le_bytes(p[t..t + 8].try_into().unwrap()) as usize;
    // One block entry (24 bytes after the count), then the object count and one entry
    // (id, block, offset, length).
    p[index + 16..index + 20].copy_from_slice(&ulen.to_le_bytes());
    p[index + 76..index + 80].copy_from_slice(&len.to_le_bytes());
    let end = p.len() - 32;
    let sum = *blake3::hash(&p[..end]).as_bytes();
    p[end..].copy_from_slice(&sum);
    p
}

#[test]
fn pack_blocks_that_lie_about_their_size_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = agent();
    let post = |body: &[u8]| call(&a, "POST", &format!("{url}/packs"), &[], body);
    let expect = |body: &[u8], words: &str| {
        let r = post(body);
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(r.text().contains(words), "{words:?} not in {}", r.text());
    };
    // A frame that expands beyond the length its block declares (what is allocated):
    // 1 MiB of zeros declared as 1 KiB.
    let zeros = vec![0u8; 1 << 20];
    expect(
        &lying_pack(t.path(), &zeros, 1024, 1000),
        "does not decompress within the 1024 bytes it declares",
    );
    // A block declaring more than a block may hold.
    expect(
        &lying_pack(t.path(), &zeros, pack::MAX_BLOCK + 1, 1000),
        "bytes decompressed",
    );
    // A frame larger than zstd could make the length it declares.
    let mut rng = Rng(7);
    let noise: Vec<u8> = (0..200_000).map(|_| rng.next() as u8).collect();
    expect(
        &lying_pack(t.path(), &noise, 1024, 1000),
        "more than a zstd frame of its 1024 bytes can be",
    );
    let served = FsStore::open(&t.path().join("srv")).unwrap();
    assert!(served.loose_objects().unwrap().is_empty());
    assert!(served.packs().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Tokens, read-only, private

#[test]
fn writes_need_the_token_reads_do_not_unless_private() {
    let t = tempfile::tempdir().unwrap();
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "  s3cret-token\n\n").unwrap();
    let token = server::read_token_file(&token_file).unwrap();
    assert_eq!(token, "s3cret-token");
    let srv = serve(&t.path().join("srv"), |o| o.token = Some(token.clone()));
    let url = srv.url();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let f = t.path().join("m");
    std::fs::write(&f, "hello").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    ok(&a, &["remote", "add", "origin", &url]);
    let err = fails_env(&a, &["push"], &[]);
    assert!(err.contains("401") || err.contains("token"), "{err}");
    assert!(err.contains("REMOTELOG_TOKEN"), "says what to do: {err}");
    let err = fails_env(&a, &["push"], &[("REMOTELOG_TOKEN", "wrong")]);
    assert!(err.contains("refused"), "{err}");
    assert!(FsStore::open(&t.path().join("srv"))
        .unwrap()
        .list_objects()
        .unwrap()
        .is_empty());
    ok_env(
        &a,
        &["push"],
        &[("REMOTELOG_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    // Reads are open.
    let c = t.path().join("c");
    ok(t.path(), &["clone", &url, c.to_str().unwrap()]);
    assert_eq!(ok(&c, &["log", "--json"]), ok(&a, &["log", "--json"]));
    // Raw and Twirp writes say 401 / unauthenticated.
    let r = call(&agent(), "POST", &format!("{url}/cas"), &[], b"x");
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());
    let add = cas::Content {
        data: b"x".to_vec(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Add", PB, &add, None),
        "unauthenticated",
        401,
    );
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Add", PB, &add, Some("nope")),
        "unauthenticated",
        401,
    );
    assert_eq!(
        twirp(&url, "vac.cas.CAS/Add", PB, &add, Some(&token)).status,
        200
    );
    srv.stop().unwrap();

    // --private: reads need it too.
    let srv = serve(&t.path().join("srv"), |o| {
        o.token = Some(token.clone());
        o.private = true;
    });
    let url = srv.url();
    let err = fails_env(
        t.path(),
        &["clone", &url, t.path().join("d").to_str().unwrap()],
        &[],
    );
    assert!(err.contains("token"), "{err}");
    assert!(!t.path().join("d").exists());
    let get = cas::Address {
        id: Id::of(b"x").0.to_vec(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Get", PB, &get, None),
        "unauthenticated",
        401,
    );
    assert_eq!(
        call(&agent(), "GET", &format!("{url}/healthz"), &[], b"").status,
        200
    );
    ok_env(
        t.path(),
        &["clone", &url, t.path().join("d").to_str().unwrap()],
        &[("REMOTELOG_TOKEN", &token)],
    );
    // --private without a token cannot start.
    let mut o = Options::new(&t.path().join("srv"));
    o.listen = "127.0.0.1:0".into();
    o.private = true;
    assert!(server::start(o).is_err());
}

#[test]
fn read_only_server_refuses_writes_with_403() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("srv");
    let w = store(&t.path().join("w"));
    append(&w, 10, "w");
    {
        let srv = serve(&dir, |_| {});
        sync::push(
            &w,
            "origin",
            &remote(&srv.url()),
            "main",
            Force::No,
            &Silent,
        )
        .unwrap();
    }
    let srv = serve(&dir, |o| o.read_only = true);
    let url = srv.url();
    append(&w, 1, "more");
    let e = sync::push(&w, "origin", &remote(&url), "main", Force::No, &Silent).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let r = call(&agent(), "POST", &format!("{url}/cas"), &[], b"x");
    assert_eq!(r.status, 403);
    let upd = ns::NameUpdate {
        name: "n".into(),
        content: b"c".to_vec(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.ns.NS/Update", PB, &upd, None),
        "permission_denied",
        403,
    );
    // Reads work.
    let (c, _) = sync::clone(
        &remote(&url),
        &url,
        &t.path().join("c"),
        None,
        false,
        &Silent,
    )
    .unwrap();
    assert_eq!(entries(&c, "main").len(), 10);
}

#[test]
fn server_down_or_not_remotelog_gives_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let f = t.path().join("m");
    std::fs::write(&f, "m").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    ok(&a, &["remote", "add", "origin", &url]);
    srv.stop().unwrap();
    // A server that is down may be up later: the transient status, 75.
    fails_transiently_with(&run(&a, &["push"]), &["cannot reach", "remotelog serve"]);
    let err = fails_env(
        &a,
        &["remote", "add", "tls", "https://example.invalid"],
        &[],
    );
    assert!(err.contains("https"), "{err}");
    // Something that is not a remotelog server: a plain TCP listener answering junk.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let junk = std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    let e = HttpBackend::open(&format!("http://127.0.0.1:{port}"), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not answer like a remotelog server"),
        "{e}"
    );
    junk.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Twirp

#[test]
fn twirp_cas_and_ns_in_both_encodings() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let data = b"\x00\x01 spec bytes \xff".to_vec();
    let addr = Id::of(&data);

    // CAS Add/Get, protobuf.
    let r = twirp(
        &url,
        "vac.cas.CAS/Add",
        PB,
        &cas::Content { data: data.clone() }.encode_to_vec(),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers.get("content-type").unwrap(), PB);
    let a = cas::Address::decode(&r.body[..]).unwrap();
    assert_eq!(
        a.id,
        addr.0.to_vec(),
        "the address is BLAKE3-256 of the bytes"
    );
    let r = twirp(&url, "vac.cas.CAS/Get", PB, &a.encode_to_vec(), None);
    assert_eq!(cas::Content::decode(&r.body[..]).unwrap().data, data);
    // The same bytes over REST.
    let rest = call(&agent(), "GET", &format!("{url}/cas/{addr}"), &[], b"");
    assert_eq!(rest.body, data);

    // JSON: bytes in base64 (URL-safe and unpadded accepted too).
    let body = serde_json::json!({"data": b64(b"json data")}).to_string();
    let r = twirp(&url, "vac.cas.CAS/Add", JSON, body.as_bytes(), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(JSON));
    assert_eq!(r.json()["id"], b64(&Id::of(b"json data").0));
    let urlsafe = b64(&Id::of(b"json data").0)
        .replace('+', "-")
        .replace('/', "_")
        .replace('=', "");
    let r = twirp(
        &url,
        "vac.cas.CAS/Get",
        JSON,
        serde_json::json!({"id": urlsafe}).to_string().as_bytes(),
        None,
    );
    assert_eq!(r.json()["data"], b64(b"json data"));
    let r = twirp(
        &url,
        "vac.cas.CAS/Get",
        "application/json; charset=utf-8",
        serde_json::json!({"id": b64(&addr.0)})
            .to_string()
            .as_bytes(),
        None,
    );
    assert_eq!(r.json()["data"], b64(&data));
    // Empty content is content too; defaults are written out.
    let r = twirp(&url, "vac.cas.CAS/Add", JSON, b"{}", None);
    assert_eq!(r.json()["id"], b64(&Id::of(b"").0));
    let r = twirp(
        &url,
        "vac.cas.CAS/Get",
        JSON,
        serde_json::json!({"id": b64(&Id::of(b"").0)})
            .to_string()
            .as_bytes(),
        None,
    );
    assert_eq!(r.json(), serde_json::json!({"data": ""}));

    // Errors.
    let unknown = cas::Address {
        id: Id::of(b"never added").0.to_vec(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Get", PB, &unknown, None),
        "not_found",
        404,
    );
    let unknown_json = serde_json::json!({"id": b64(&Id::of(b"never added").0)}).to_string();
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Get", JSON, unknown_json.as_bytes(), None),
        "not_found",
        404,
    );
    let short = cas::Address { id: vec![1, 2, 3] }.encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Get", PB, &short, None),
        "invalid_argument",
        400,
    );
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Nope", PB, b"", None),
        "bad_route",
        404,
    );
    twirp_error(
        &twirp(&url, "vac.other.CAS/Add", PB, b"", None),
        "bad_route",
        404,
    );
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Add", "text/plain", b"", None),
        "bad_route",
        404,
    );
    let get = call(
        &agent(),
        "GET",
        &format!("{url}/twirp/vac.cas.CAS/Get"),
        &[],
        b"",
    );
    twirp_error(&get, "bad_route", 404);
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Add", PB, b"\xff\xff\xff\xff", None),
        "malformed",
        400,
    );
    twirp_error(
        &twirp(&url, "vac.cas.CAS/Add", JSON, b"{not json", None),
        "malformed",
        400,
    );
    twirp_error(
        &twirp(
            &url,
            "vac.cas.CAS/Add",
            JSON,
            br#"{"data": "!!not base64!!"}"#,
            None,
        ),
        "malformed",
        400,
    );

    // NS Update/Fetch under both package names.
    for (i, pkg) in ["vac.ns.NS", "vac.cas.NS"].iter().enumerate() {
        let name = format!("spec-log-{i}");
        let content = format!("head of {name}").into_bytes();
        let upd = ns::NameUpdate {
            name: name.clone(),
            content: content.clone(),
        }
        .encode_to_vec();
        let r = twirp(&url, &format!("{pkg}/Update"), PB, &upd, None);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            ns::Response::decode(&r.body[..]).unwrap().data,
            Id::of(&content).0.to_vec()
        );
        let q = ns::Query { name: name.clone() }.encode_to_vec();
        let r = twirp(&url, &format!("{pkg}/Fetch"), PB, &q, None);
        assert_eq!(ns::Content::decode(&r.body[..]).unwrap().data, content);
        // JSON, and a later Update wins.
        let upd = serde_json::json!({"name": name, "content": b64(b"newer")}).to_string();
        let r = twirp(&url, &format!("{pkg}/Update"), JSON, upd.as_bytes(), None);
        assert_eq!(r.json()["data"], b64(&Id::of(b"newer").0));
        let q = serde_json::json!({"name": name}).to_string();
        let r = twirp(&url, &format!("{pkg}/Fetch"), JSON, q.as_bytes(), None);
        assert_eq!(r.json()["data"], b64(b"newer"));
    }
    let q = ns::Query {
        name: "nobody".into(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.ns.NS/Fetch", PB, &q, None),
        "not_found",
        404,
    );
    let bad = ns::Query {
        name: "../config".into(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.ns.NS/Fetch", PB, &bad, None),
        "invalid_argument",
        400,
    );
    // A native log's name cannot be overwritten through the NS.
    let w = store(&t.path().join("w"));
    append(&w, 3, "w");
    sync::push(&w, "origin", &remote(&url), "main", Force::No, &Silent).unwrap();
    let upd = ns::NameUpdate {
        name: "main".into(),
        content: b"clobber".to_vec(),
    }
    .encode_to_vec();
    twirp_error(
        &twirp(&url, "vac.ns.NS/Update", PB, &upd, None),
        "failed_precondition",
        412,
    );
    assert_eq!(entries(&remote(&url), "main"), entries(&w, "main"));
    let served = FsStore::open(&t.path().join("srv")).unwrap();
    sound(&served);
}

// ---------------------------------------------------------------------------------------
// Load

const COUNTERS: usize = 5;

#[test]
fn fifty_clients_two_hundred_requests_no_lost_update() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let a = agent();
    // Each counter is a ref under spec/ naming a blob "counter K = N".
    for k in 0..COUNTERS {
        let blob = format!("counter {k} = 0");
        assert!(call(&a, "POST", &format!("{url}/cas"), &[], blob.as_bytes()).status / 100 == 2);
        let id = Id::of(blob.as_bytes()).to_hex();
        let r = call(
            &a,
            "PUT",
            &format!("{url}/ns/spec/counter-{k}"),
            &[("if-none-match", "*")],
            id.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let start = std::time::Instant::now();
    let per_client: Vec<([u64; COUNTERS], u64)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..50u64)
            .map(|c| {
                let url = url.clone();
                sc.spawn(move || client(c, &url))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    let mut wins = [0u64; COUNTERS];
    let mut conflicts = 0;
    for (w, c) in &per_client {
        for k in 0..COUNTERS {
            wins[k] += w[k];
        }
        conflicts += c;
    }
    for (k, won) in wins.iter().enumerate() {
        let id = call(&a, "GET", &format!("{url}/ns/spec/counter-{k}"), &[], b"").text();
        let blob = call(&a, "GET", &format!("{url}/cas/{}", id.trim()), &[], b"").text();
        assert_eq!(
            blob,
            format!("counter {k} = {won}"),
            "every successful compare-and-swap counts"
        );
    }
    assert!(wins.iter().sum::<u64>() > 0);
    eprintln!(
        "10000 requests from 50 clients in {:.1}s: {} increments, {conflicts} expected 412s",
        elapsed.as_secs_f64(),
        wins.iter().sum::<u64>()
    );
}

/// One client: 200 requests mixing CAS adds and gets with read-modify-write increments of
/// the counters (GET ref, GET blob, POST blob, PUT If-Match). Returns the increments that
/// won per counter and the 412s seen; any other failure panics.
fn client(c: u64, url: &str) -> ([u64; COUNTERS], u64) {
    let a = agent();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c + 1).wrapping_mul(0x1234_5678_9abc_def1));
    let mut added: Vec<Vec<u8>> = Vec::new();
    let mut wins = [0u64; COUNTERS];
    let mut conflicts = 0;
    let mut sent = 0;
    let mut i = 0;
    while sent < 200 {
        i += 1;
        match rng.next() % 4 {
            0 | 1 if sent + 4 <= 200 => {
                let k = (rng.next() % COUNTERS as u64) as usize;
                let r = call(&a, "GET", &format!("{url}/ns/spec/counter-{k}"), &[], b"");
                assert_eq!(r.status, 200, "client {c}: {}", r.text());
                let id = r.text().trim().to_string();
                let r = call(&a, "GET", &format!("{url}/cas/{id}"), &[], b"");
                assert_eq!(r.status, 200, "client {c}: {}", r.text());
                let n: u64 = r
                    .text()
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("client {c}: bad counter {}", r.text()));
                let next = format!("counter {k} = {}", n + 1);
                let r = call(&a, "POST", &format!("{url}/cas"), &[], next.as_bytes());
                assert!(
                    r.status == 200 || r.status == 201,
                    "client {c}: {}",
                    r.text()
                );
                let new_id = r.text().trim().to_string();
                assert_eq!(new_id, Id::of(next.as_bytes()).to_hex());
                let cond = format!("\"{id}\"");
                let r = call(
                    &a,
                    "PUT",
                    &format!("{url}/ns/spec/counter-{k}"),
                    &[("if-match", &cond)],
                    new_id.as_bytes(),
                );
                match r.status {
                    200 => wins[k] += 1,
                    412 => conflicts += 1,
                    s => panic!("client {c}: PUT gave {s}: {}", r.text()),
                }
                sent += 4;
            }
            2 if !added.is_empty() => {
                let blob = &added[(rng.next() % added.len() as u64) as usize];
                let r = call(&a, "GET", &format!("{url}/cas/{}", Id::of(blob)), &[], b"");
                assert_eq!(r.status, 200, "client {c}: {}", r.text());
                assert_eq!(&r.body, blob);
                sent += 1;
            }
            _ => {
                let blob = format!(
                    "client {c} blob {i} {}",
                    "z".repeat((rng.next() % 300) as usize)
                )
                .into_bytes();
                let r = call(&a, "POST", &format!("{url}/cas"), &[], &blob);
                assert!(
                    r.status == 200 || r.status == 201,
                    "client {c}: {}",
                    r.text()
                );
                assert_eq!(r.text().trim(), Id::of(&blob).to_hex());
                added.push(blob);
                sent += 1;
            }
        }
    }
    (wins, conflicts)
}

// ---------------------------------------------------------------------------------------
// The binary: serve as a child process, request log, graceful stop

#[test]
fn serve_binary_logs_each_request_and_stops_cleanly_on_sigterm() {
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    ok(&srv_dir, &["init"]);
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "tok\n").unwrap();
    let child = bin()
        .args([
            "--store",
            srv_dir.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--token-file")
        .arg(&token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut lines = BufReader::new(guard.0.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains("serving") && first.contains("token required for writes"),
        "{first}"
    );
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let a = t.path().join("a");
    ok(&a, &["init"]);
    let f = t.path().join("m");
    std::fs::write(&f, "m").unwrap();
    ok(&a, &["append", "--group", "g", f.to_str().unwrap()]);
    ok(&a, &["remote", "add", "origin", &url]);
    ok_env(&a, &["push"], &[("REMOTELOG_TOKEN", "tok")]);
    let status = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let exit = guard.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("\"GET /healthz\" 200")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("\"PUT /ns/logs/main\" 200")),
        "{rest:?}"
    );
    assert!(rest.iter().any(|l| l.contains("stopping")), "{rest:?}");
    ok(&srv_dir, &["check", "--read-data"]);
    // A second server on a busy port says so.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = l.local_addr().unwrap().to_string();
    let err = fails_env(&srv_dir, &["serve", "--listen", &busy], &[]);
    assert!(err.contains("cannot listen"), "{err}");
    let err = fails_env(
        &t.path().join("nothing"),
        &["serve", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert!(err.contains("remotelog init"), "{err}");
}

#[test]
fn gc_on_an_http_remote_runs_on_the_server_and_keeps_spec_names_and_blobs() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    let srv = serve(&served, |o| o.admin_token = Some("adm1n".into()));
    let url = srv.url();
    let a = t.path().join("a");
    let s = FsStore::init(&a, Config::default()).unwrap();
    let msgs: Vec<Message> = (0..5)
        .map(|i| Message {
            group_id: b"g".to_vec(),
            timestamp: i,
            body: format!("gc over http {i}").into_bytes(),
        })
        .collect();
    log::append(&s, "main", &msgs, SettingsChange::default()).unwrap();
    ok(&a, &["remote", "add", "origin", &url]);
    ok(&a, &["push"]);
    // A spec name and a bare CAS blob, both written through Twirp.
    let blob = b"opaque bytes a spec writer added".to_vec();
    let add = cas::Content { data: blob.clone() }.encode_to_vec();
    assert_eq!(twirp(&url, "vac.cas.CAS/Add", PB, &add, None).status, 200);
    let named = b"content behind a spec name".to_vec();
    let upd = ns::NameUpdate {
        name: "bob".into(),
        content: named.clone(),
    }
    .encode_to_vec();
    assert_eq!(twirp(&url, "vac.ns.NS/Update", PB, &upd, None).status, 200);
    // Forget one message and publish the rewrite, so the remote has typed garbage.
    ok(&a, &["forget", &msgs[2].h1().to_hex()]);
    ok(&a, &["push", "--force-with-lease"]);
    let admin = [("REMOTELOG_ADMIN_TOKEN", "adm1n")];
    let dry: serde_json::Value = serde_json::from_str(&ok_env(
        &a,
        &["gc", "origin", "--prune", "now", "--dry-run", "--json"],
        &admin,
    ))
    .unwrap();
    let real: serde_json::Value = serde_json::from_str(&ok_env(
        &a,
        &["gc", "origin", "--prune", "now", "--json"],
        &admin,
    ))
    .unwrap();
    assert!(real["objects"].as_u64().unwrap() >= 2, "{real}");
    assert_eq!(dry["objects"], real["objects"]);
    assert!(real["kept_opaque"].as_u64().unwrap() >= 1, "{real}");
    let remote = HttpBackend::open(&url, None).unwrap();
    assert_eq!(remote.get_object(&Id::of(&blob)).unwrap(), blob);
    assert_eq!(remote.get_object(&Id::of(&named)).unwrap(), named);
    assert_eq!(log::entries(&remote, "main").unwrap().len(), 4);
    let store = FsStore::open(&served).unwrap();
    let r = check::check(&store, true);
    assert!(r.is_sound(), "{:?}", r.problems);
    assert_eq!(
        r.unreferenced, 1,
        "only the bare blob is unreferenced (the spec name holds the other)"
    );
}

#[test]
fn gc_over_http_needs_the_admin_token_and_never_a_writers() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    let srv = serve(&served, |o| {
        o.token = Some("writer".into());
        o.admin_token = Some("admin".into());
    });
    let a = t.path().join("a");
    let s = store(&a);
    append(&s, 3, "gc");
    ok(&a, &["remote", "add", "origin", &srv.url()]);
    ok_env(&a, &["push"], &[("REMOTELOG_TOKEN", "writer")]);
    // Garbage the gc could delete: a message no log lists.
    let garbage = remotelog::model::object::encode_message(&common::msgs("unlisted", 1)[0]);
    let blob = call(
        &agent(),
        "POST",
        &format!("{}/cas", srv.url()),
        &[("authorization", "Bearer writer")],
        &garbage,
    );
    assert_eq!(blob.status, 201, "{}", blob.text());
    let gc = ["gc", "origin", "--prune", "now", "--json"];
    // The writers' token, from either variable, is refused: it must not delete.
    let err = fails_env(&a, &gc, &[("REMOTELOG_TOKEN", "writer")]);
    assert!(err.contains("401") || err.contains("admin token"), "{err}");
    let err = fails_env(&a, &gc, &[("REMOTELOG_ADMIN_TOKEN", "writer")]);
    assert!(err.contains("writers' token cannot run gc"), "{err}");
    let err = fails_env(&a, &gc, &[("REMOTELOG_ADMIN_TOKEN", "guess")]);
    assert!(err.contains("admin token was refused"), "{err}");
    let raw = call(
        &agent(),
        "POST",
        &format!("{}/gc?prune=0", srv.url()),
        &[("authorization", "Bearer writer")],
        b"",
    );
    assert_eq!(raw.status, 403, "{}", raw.text());
    assert!(FsStore::open(&served)
        .unwrap()
        .has_object(&Id::of(&garbage))
        .unwrap());
    // The admin token, also from a file, runs the library's gc.
    let f = t.path().join("admin");
    std::fs::write(&f, "admin\n").unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok_env(
        &a,
        &gc,
        &[("REMOTELOG_ADMIN_TOKEN_FILE", f.to_str().unwrap())],
    ))
    .unwrap();
    assert_eq!(out["objects"], 1, "{out}");
    let served_store = FsStore::open(&served).unwrap();
    assert!(!served_store.has_object(&Id::of(&garbage)).unwrap());
    sound(&served_store);
    assert_eq!(entries(&served_store, "main").len(), 3);

    // Without --admin-token-file the endpoint is closed, whatever the token.
    let plain = serve(&t.path().join("plain"), |o| o.token = Some("writer".into()));
    for auth in ["Bearer writer", "Bearer admin"] {
        let r = call(
            &agent(),
            "POST",
            &format!("{}/gc?prune=0", plain.url()),
            &[("authorization", auth)],
            b"",
        );
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("--admin-token-file"), "{}", r.text());
    }
    // And the two tokens may not be the same.
    let mut o = Options::new(&served);
    o.listen = "127.0.0.1:0".into();
    o.token = Some("same".into());
    o.admin_token = Some("same".into());
    let err = server::start(o).err().unwrap().to_string();
    assert!(err.contains("must differ"), "{err}");
}

/// A client lease (http-api.md section 10): a writer's token takes it, gc waits for it,
/// a request made under it needs no lease of its own, and it ends when released.
#[test]
fn client_leases_hold_gc_off_until_released() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    let srv = serve(&served, |o| o.token = Some("writer".into()));
    let url = srv.url();
    let a = agent();
    let auth = [("authorization", "Bearer writer")];
    let r = call(&a, "POST", &format!("{url}/leases"), &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = call(&a, "POST", &format!("{url}/leases"), &auth, b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let id = v["lease"].as_str().unwrap().to_string();
    assert_eq!(v["ttl"], 60);
    // gc on the served directory waits for the lease, then refuses naming it.
    let out = run_env(&served, &["gc", "--prune", "now", "--wait", "1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still hold leases"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Writes under the lease go through while that gc is waiting.
    let body = b"an opaque blob under a lease";
    let mut h = auth.to_vec();
    h.push(("x-remotelog-lease", &id));
    let r = call(&a, "POST", &format!("{url}/cas"), &h, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(&a, "PUT", &format!("{url}/leases/{id}"), &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&a, "PUT", &format!("{url}/leases/not-a-lease"), &auth, b"");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(&a, "DELETE", &format!("{url}/leases/{id}"), &auth, b"");
    assert_eq!(r.status, 204, "{}", r.text());
    let r = call(&a, "PUT", &format!("{url}/leases/{id}"), &auth, b"");
    assert_eq!(r.status, 404, "{}", r.text());
    ok(&served, &["gc", "--prune", "now"]);
}
