//! The mock remote (src/mock/): each behaviour of a real CAS or NS that a profile
//! describes, seen through remotelog's own code running against a per-actor handle.

use std::sync::Arc;

use remotelog::log::{self, SettingsChange};
use remotelog::mock::{
    chunks, secs, Clock, Failure, Miss, Mock, MockHandle, Profile, VirtualClock,
};
use remotelog::model::name::RefName;
use remotelog::model::object::encode_message;
use remotelog::store::Backend;
use remotelog::store::Expected;
use remotelog::{Id, MemStore, Message};

mod common;
use common::msgs;

/// A mock of `profile` over an in-memory store, and a handle with its own clock per actor.
fn setup(
    profile: Profile,
    seed: u64,
    actors: u32,
) -> (Arc<Mock>, Vec<(MockHandle, Arc<VirtualClock>)>) {
    let mock = Mock::new(Box::new(MemStore::new()), profile, seed);
    let handles = (0..actors)
        .map(|a| {
            let clock = Arc::new(VirtualClock::new(0));
            (mock.handle(a, clock.clone()), clock)
        })
        .collect();
    (mock, handles)
}

fn profile(name: &str) -> Profile {
    Profile::builtin(name).unwrap()
}

fn custom(text: &str) -> Profile {
    Profile::from_toml(text).unwrap()
}

fn message(i: u64) -> (Id, Vec<u8>) {
    let bytes = encode_message(&Message {
        group_id: b"g".to_vec(),
        timestamp: i as i64,
        body: format!("body {i}").into_bytes(),
    });
    (Id::of(&bytes), bytes)
}

#[test]
fn cas_visibility_delay_hides_new_objects_from_other_readers_only() {
    let p = custom("name = \"late\"\n[cas]\nvisibility = 30\n[ns]\n");
    let (_, h) = setup(p, 1, 2);
    let ((w, wc), (r, rc)) = (&h[0], &h[1]);
    let (id, bytes) = message(1);
    w.put_objects(&[(id, &bytes)]).unwrap();
    assert_eq!(
        w.get_object(&id).unwrap(),
        bytes,
        "the writer sees its own object at once"
    );
    rc.set(wc.now() + secs(29.0));
    let e = r.get_object(&id).unwrap_err().to_string();
    assert!(e.contains("is missing") && e.contains(&id.to_hex()), "{e}");
    assert_eq!(
        r.last_failure(),
        Some(Failure::NotFound(Miss::NotYetVisible))
    );
    rc.set(wc.now() + secs(30.0));
    assert_eq!(r.get_object(&id).unwrap(), bytes);
}

#[test]
fn ipfs_makes_a_reader_of_unprovided_content_wait_for_its_timeout() {
    let (_, h) = setup(profile("ipfs"), 2, 2);
    let (id, bytes) = message(2);
    h[0].0.put_objects(&[(id, &bytes)]).unwrap();
    let (r, rc) = &h[1];
    let before = rc.now();
    let e = r.get_object(&id).unwrap_err().to_string();
    assert!(
        e.contains("timed out after 60 s") && e.contains("IPFS"),
        "{e}"
    );
    assert_eq!(
        rc.now() - before,
        secs(60.0),
        "the miss costs the client's timeout"
    );
}

#[test]
fn latency_advances_only_the_callers_clock() {
    let p =
        custom("name = \"slow\"\n[cas]\nget = { latency = 2.5 }\n[ns]\nfetch = { latency = 7 }\n");
    let (_, h) = setup(p, 3, 2);
    let (id, bytes) = message(3);
    h[0].0.put_objects(&[(id, &bytes)]).unwrap();
    h[1].0.get_object(&id).unwrap();
    h[1].0.read_ref(&RefName::log("x").unwrap()).unwrap();
    assert_eq!(h[1].1.now(), secs(9.5));
    assert_eq!(h[0].1.now(), 0);
    let s = h[1].0.stats();
    assert_eq!(
        (s.cas_gets, s.ns_fetches, s.bytes_down),
        (1, 1, bytes.len() as u64)
    );
}

#[test]
fn ipns_refuses_the_default_256_entry_head_page_and_takes_128() {
    let (_, h) = setup(profile("ipns"), 4, 1);
    let w = &h[0].0;
    // The default page (256 entries) fills up past what a 10 KiB record holds.
    let e = log::append(w, "big", &msgs("m", 200), SettingsChange::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("IPNS refused the record for logs/big")
            && e.contains("10240")
            && e.contains("--page-size 128"),
        "{e}"
    );
    assert_eq!(w.last_failure(), Some(Failure::TooLarge));
    let small = SettingsChange {
        capacity: Some(128),
        embed: None,
    };
    let done = log::append(w, "small", &msgs("m", 200), small).unwrap();
    assert_eq!(done.count, 200);
    assert_eq!(log::entries(w, "small").unwrap().len(), 200);
}

#[test]
fn ipns_readers_see_a_stale_value_for_the_cache_ttl_and_publishes_take_minutes() {
    let (_, h) = setup(profile("ipns"), 5, 2);
    let ((w, wc), (r, rc)) = (&h[0], &h[1]);
    let change = SettingsChange {
        capacity: Some(16),
        embed: None,
    };
    let first = log::append(w, "l", &msgs("a", 3), change).unwrap();
    let published = wc.now();
    assert!(
        published >= secs(60.0),
        "a publish takes minutes, took {published} us"
    );
    let name = RefName::log("l").unwrap();
    rc.set(published);
    assert_eq!(r.read_ref(&name).unwrap(), Some(first.head));
    let fetched = rc.now();
    // The writer publishes again; the reader keeps answering from its cache for 1 h.
    wc.set(fetched);
    let second = log::append(w, "l", &msgs("b", 2), change).unwrap();
    rc.set(wc.now() + secs(60.0));
    assert_eq!(r.read_ref(&name).unwrap(), Some(first.head));
    assert!(r.last_fetch_stale());
    assert_eq!(r.stats().stale_reads, 1);
    rc.set(fetched + secs(3600.0));
    assert_eq!(r.read_ref(&name).unwrap(), Some(second.head));
    assert!(!r.last_fetch_stale());
    // The head page came with the record: no CAS get for it.
    let before = r.stats().cas_gets;
    log::read_page(r, &second.head).unwrap();
    assert_eq!(r.stats().cas_gets, before);
    assert_eq!(r.stats().record_hits, 1);
}

#[test]
fn update_semantics_cas_refuses_highest_seq_and_lww_do_not() {
    let name = RefName::log("n").unwrap();
    let (a, b) = (message(10).0, message(11).0);
    for (profile, conflict) in [("s3", true), ("ipns", false), ("ens", false)] {
        let p = Profile::from_toml(&format!(
            "inherit = \"{profile}\"\nname = \"t\"\n[ns]\nrecord = \"id\"\nupdate = {{ latency = 0 }}\n"
        ))
        .unwrap();
        let (_, h) = setup(p, 6, 2);
        h[0].0.update_ref(&name, Expected::Absent, Some(a)).unwrap();
        // The second writer states a stale expectation ("absent").
        let r = h[1].0.update_ref(&name, Expected::Absent, Some(b));
        assert_eq!(r.is_err(), conflict, "{profile}: {r:?}");
        if conflict {
            assert!(r.unwrap_err().to_string().contains("moved"));
        }
    }
}

#[test]
fn highest_sequence_number_wins_even_when_published_later() {
    let p = custom("name = \"seq\"\n[cas]\n[ns]\nsemantics = \"highest-seq\"\n");
    let (_, h) = setup(p, 7, 3);
    let name = RefName::log("n").unwrap();
    let (a1, a2, b1) = (message(1).0, message(2).0, message(3).0);
    h[0].0
        .update_ref(&name, Expected::Absent, Some(a1))
        .unwrap();
    h[0].0
        .update_ref(&name, Expected::Absent, Some(a2))
        .unwrap(); // sequence 2
    h[1].1.set(secs(10.0));
    h[1].0
        .update_ref(&name, Expected::Absent, Some(b1))
        .unwrap(); // sequence 1, published last
    h[2].1.set(secs(20.0));
    assert_eq!(h[2].0.read_ref(&name).unwrap(), Some(a2));
}

#[test]
fn gc_collects_a_replaced_head_page_and_keeps_what_the_head_reaches() {
    let p = custom("name = \"gc\"\n[cas]\ngc = { interval = 3600 }\n[ns]\n");
    let (_, h) = setup(p, 8, 2);
    let ((w, wc), (r, rc)) = (&h[0], &h[1]);
    let change = SettingsChange {
        capacity: Some(16),
        embed: None,
    };
    let old = log::append(w, "l", &msgs("a", 3), change).unwrap();
    wc.set(secs(10.0));
    let new = log::append(w, "l", &msgs("b", 3), change).unwrap();
    rc.set(secs(3600.0));
    let e = r.get_object(&old.head).unwrap_err().to_string();
    assert!(e.contains("is missing"), "{e}");
    assert_eq!(r.last_failure(), Some(Failure::NotFound(Miss::Collected)));
    assert_eq!(log::entries(r, "l").unwrap().len(), 6);
    assert!(r.get_object(&new.head).is_ok());
}

#[test]
fn gc_spares_what_a_writer_stored_after_its_last_successful_update() {
    // A push whose update fails for two hours: its messages, stored first, stay pinned
    // through the collections, and the update that finally succeeds does not store them
    // again (a writer does not re-upload what it stored).
    let p = custom("name = \"pin\"\n[cas]\ngc = { interval = 600 }\n[ns]\n");
    let (_, h) = setup(p, 9, 2);
    let ((w, wc), (r, rc)) = (&h[0], &h[1]);
    let change = SettingsChange {
        capacity: Some(16),
        embed: None,
    };
    let first = log::append(w, "l", &msgs("a", 1), change).unwrap();
    let local = MemStore::new();
    log::append(&local, "l", &msgs("a", 1), change).unwrap();
    let more = msgs("b", 5);
    wc.set(secs(1.0));
    for m in &more {
        let bytes = encode_message(m);
        w.put_objects(&[(Id::of(&bytes), &bytes)]).unwrap();
    }
    let done = log::append(&local, "l", &more, change).unwrap();
    wc.set(secs(7200.0));
    let page = local.get_object(&done.head).unwrap();
    w.put_objects(&[(done.head, &page)]).unwrap();
    let name = RefName::log("l").unwrap();
    w.update_ref(&name, Expected::Equal(first.head), Some(done.head))
        .unwrap();
    rc.set(secs(7300.0));
    let entries = log::entries(r, "l").unwrap();
    assert_eq!(entries.len(), 6);
    for e in &entries {
        log::read_message(r, e).unwrap();
    }
}

#[test]
fn content_expires_unless_its_writer_republishes_it() {
    let (_, h) = setup(profile("ipfs"), 10, 3);
    let (a, ab) = message(1);
    let (c, cb) = message(2);
    h[0].0.put_objects(&[(a, &ab)]).unwrap();
    h[1].0.put_objects(&[(c, &cb)]).unwrap();
    // The first writer republishes at 40 h, the second never: records last 48 h.
    h[0].1.set(secs(40.0 * 3600.0));
    assert_eq!(h[0].0.republish(), 1);
    let (r, rc) = &h[2];
    rc.set(secs(50.0 * 3600.0));
    assert!(r.get_object(&a).is_ok(), "republished at 40 h");
    assert!(r.get_object(&c).is_err());
    assert_eq!(r.last_failure(), Some(Failure::NotFound(Miss::Expired)));
    rc.set(secs(89.0 * 3600.0));
    assert!(r.get_object(&a).is_err(), "48 h after its republication");
}

#[test]
fn s3_answers_slow_down_past_3500_writes_per_second() {
    let p = Profile::from_toml("inherit = \"s3\"\nname = \"s3z\"\n[cas]\nput = { latency = 0 }\n")
        .unwrap();
    let (_, h) = setup(p, 11, 1);
    let w = &h[0].0;
    let mut refused = None;
    for i in 0..3600u64 {
        let (id, bytes) = message(i);
        if let Err(e) = w.put_objects(&[(id, &bytes)]) {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (i, e) = refused.expect("no 503");
    assert_eq!(i, 3500);
    assert!(
        e.contains("503 Slow Down") && e.contains("3500 requests per second"),
        "{e}"
    );
    // The next second takes writes again.
    h[0].1.set(secs(1.0));
    let (id, bytes) = message(9999);
    assert!(w.put_objects(&[(id, &bytes)]).is_ok());
}

#[test]
fn swarm_feed_reads_time_out_at_10_s_and_objects_are_many_chunks() {
    let (mock, h) = setup(profile("swarm"), 12, 1);
    let (r, rc) = &h[0];
    let name = RefName::log("x").unwrap();
    let mut timeouts = 0;
    for _ in 0..400 {
        let before = rc.now();
        if let Err(e) = r.read_ref(&name) {
            assert!(e.to_string().contains("timed out after 10 s"), "{e}");
            assert_eq!(rc.now() - before, secs(10.0));
            timeouts += 1;
        }
    }
    // p50 2 s, p90 20 s: about 18% of reads exceed 10 s.
    assert!((40..110).contains(&timeouts), "{timeouts} timeouts in 400");
    assert_eq!(chunks(100_000, 4096), 25 + 1);
    assert_eq!(chunks(10, 4096), 1);
    let bytes = vec![7u8; 100_000];
    let id = Id::of(&bytes);
    mock.inner().put_objects(&[(id, &bytes)]).unwrap();
    let before = r.stats().cas_round_trips;
    let _ = r.get_object(&id);
    assert_eq!(r.stats().cas_round_trips - before, 26);
}

#[test]
fn a_lossy_peer_answers_one_request_in_ten() {
    let (_, h) = setup(profile("lossy"), 13, 1);
    let (r, rc) = &h[0];
    let name = RefName::log("x").unwrap();
    let mut down = 0;
    for i in 0..2000u64 {
        rc.set(secs(5.0) * i);
        if let Err(e) = r.read_ref(&name) {
            assert!(e.to_string().contains("connection timed out"), "{e}");
            down += 1;
        }
    }
    assert!(
        (1700..1900).contains(&down),
        "{down} of 2000 requests failed"
    );
}

#[test]
fn the_same_seed_gives_the_same_latencies() {
    let run = |seed| {
        let (_, h) = setup(profile("ipns"), seed, 1);
        let name = RefName::log("x").unwrap();
        (0..50)
            .map(|i| {
                h[0].1.set(secs(7200.0) * i);
                let _ = h[0].0.read_ref(&name);
                h[0].1.now()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn the_documented_example_profile_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles/example.toml");
    let p = Profile::load(path.to_str().unwrap()).unwrap();
    assert_eq!(p.name, "ipns-5m");
    assert_eq!(p.ns.stale_ttl, 300.0);
    assert_eq!(p.ns.max_record, Some(10240));
    assert!(
        p.sources.iter().any(|s| s.contains("RFM17")),
        "inherited sources: {:?}",
        p.sources
    );
    // The quick IPNS of the `serve --mock` session keeps IPNS's record and semantics.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles/ipns-fast.toml");
    let p = Profile::load(path.to_str().unwrap()).unwrap();
    assert_eq!(p.name, "ipns-fast");
    assert_eq!(p.ns.stale_ttl, 10.0);
    assert_eq!(p.ns.max_record, Some(10240));
    assert_eq!(p.ns.semantics, remotelog::mock::Semantics::HighestSeq);
}

#[test]
fn every_profile_reproduces_its_input_quantiles_within_10_percent() {
    // Sampled through the mock, as a client sees it: the time a request takes.
    for name in remotelog::mock::profile::names() {
        let p = profile(name);
        let dists = [
            ("cas.get.latency", &p.cas.get.latency, p.cas.get.timeout),
            ("cas.put.latency", &p.cas.put.latency, p.cas.put.timeout),
            ("ns.fetch.latency", &p.ns.fetch.latency, p.ns.fetch.timeout),
            (
                "ns.update.latency",
                &p.ns.update.latency,
                p.ns.update.timeout,
            ),
            ("cas.visibility", &p.cas.visibility, None),
            ("ns.propagation", &p.ns.propagation, None),
        ];
        for (what, dist, timeout) in dists {
            let mut rng = remotelog::mock::Rng::derive(99, &[name.len() as u64]);
            let mut xs: Vec<f64> = (0..20_000).map(|_| dist.sample(&mut rng)).collect();
            xs.sort_by(f64::total_cmp);
            for (q, want) in dist.points() {
                if timeout.is_some_and(|t| want > t) {
                    continue;
                }
                let got = xs[((q * xs.len() as f64) as usize).min(xs.len() - 1)];
                assert!(
                    (got - want).abs() <= 0.1 * want,
                    "{name} {what}: p{} is {got}, the profile says {want}",
                    q * 100.0
                );
            }
        }
    }
}

#[test]
fn request_latencies_through_the_mock_match_the_profile() {
    // CAS gets of a visible, single-chunk object: each request's time is one sample.
    for name in ["ipfs", "s3", "waku", "lossy"] {
        let p = custom(&format!(
            "inherit = \"{name}\"\nname = \"{name}\"\navailability = \"always\"\n[cas]\nvisibility = 0\nget = {{ failure = 0 }}\n"
        ));
        let want = Profile::builtin(name).unwrap().cas.get.latency;
        let (_, h) = setup(p, 14, 1);
        let (id, bytes) = message(1);
        h[0].0.put_objects(&[(id, &bytes)]).unwrap();
        let mut xs = Vec::new();
        for _ in 0..5000 {
            let before = h[0].1.now();
            if h[0].0.get_object(&id).is_ok() {
                xs.push((h[0].1.now() - before) as f64 / 1e6);
            }
        }
        xs.sort_by(f64::total_cmp);
        for (q, v) in want.points() {
            let got = xs[(q * xs.len() as f64) as usize];
            assert!(
                (got - v).abs() <= 0.1 * v,
                "{name}: p{} {got} vs {v}",
                q * 100.0
            );
        }
    }
}

#[test]
fn a_batch_profile_takes_a_push_in_one_request_others_one_per_object() {
    let objects: Vec<(Id, Vec<u8>)> = (0..5).map(message).collect();
    let refs: Vec<(Id, &[u8])> = objects.iter().map(|(id, b)| (*id, &b[..])).collect();
    for (name, requests) in [("ideal", 1), ("s3", 5)] {
        let (_, h) = setup(profile(name), 15, 1);
        assert_eq!(h[0].0.put_objects(&refs).unwrap(), 5, "{name}");
        assert_eq!(h[0].0.stats().cas_puts, requests, "{name}");
        assert_eq!(
            h[0].0.put_objects(&refs).unwrap(),
            0,
            "{name}: stored already"
        );
    }
}

/// `remotelog serve --mock`: the mock over HTTP, run as the real binary, for clients in any
/// language (here the Python spec reader and writer of `examples/` and raw requests).
mod serve_mock {
    use std::path::Path;
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use prost::Message as _;
    use remotelog::log::{self, SettingsChange};
    use remotelog::model::name::RefName;
    use remotelog::spec::proto::vac::ns;
    use remotelog::spec::{Pair, RemoteLog};
    use remotelog::store::config::Config;
    use remotelog::store::Backend;
    use remotelog::{FsStore, Id};

    use super::common::{self, examples, msgs, MockServer};

    struct Resp {
        status: u16,
        headers: ureq::http::HeaderMap,
        body: String,
    }

    fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let a = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut b = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = a
            .run(b.body(body).unwrap())
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = body.into_with_config().read_to_string().unwrap();
        Resp {
            status,
            headers: parts.headers,
            body,
        }
    }

    fn python(script: &str, args: &[&str]) -> Output {
        Command::new("python3")
            .arg(examples().join(script))
            .args(args)
            .output()
            .expect("python3 is needed for the spec examples")
    }

    fn write_profile(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// The done-when check of issue 15: the Python spec reader, against `serve --mock`
    /// with an IPNS-like profile (fast, to run in seconds), sees slow NS fetches, and
    /// within the resolver cache's TTL a stale head with no error.
    #[test]
    fn the_python_spec_reader_sees_stale_and_slow_ns_fetches() {
        const LATENCY: f64 = 1.0;
        const TTL: f64 = 6.0;
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("srv");
        FsStore::init(&store, Config::default()).unwrap();
        let profile = write_profile(
            t.path(),
            "fast-ipns",
            &format!(
                "name = \"fast-ipns\"\n[cas]\nservice = \"IPFS\"\n[ns]\nservice = \"IPNS\"\n\
                 fetch = {{ latency = {LATENCY} }}\nstale_ttl = {TTL}\nrecord = \"head-page\"\n\
                 max_record = 10240\nsemantics = \"highest-seq\"\n"
            ),
        );
        let srv = MockServer::start(&store, &profile, 1, &[]);
        let url = srv.url.clone();
        let write = |body: &str, ts: &str| {
            let out = python(
                "spec_writer.py",
                &[&url, "chat", "--actor", "alice", "--timestamp", ts, body],
            );
            assert!(out.status.success(), "{}", common::text(&out));
        };
        // What a reader printed, and how long its NS Fetch took (seconds).
        let read = |actor: &str| -> (String, f64) {
            let out = python(
                "spec_reader.py",
                &[&url, "chat", "--actor", actor, "--timing"],
            );
            assert!(out.status.success(), "{}", common::text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            let took = err
                .split("NS Fetch(chat) took ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no timing in {err}"));
            (String::from_utf8_lossy(&out.stdout).into_owned(), took)
        };
        write("one", "100");
        let (seen, slow) = read("bob");
        assert_eq!(seen, "one\n");
        assert!(
            slow >= LATENCY * 0.9,
            "a fetch that goes to the resolver takes the profile's latency: {slow} s"
        );
        let cached_since = Instant::now();
        write("two", "101");
        let (seen, stale) = read("bob");
        assert!(
            cached_since.elapsed().as_secs_f64() < TTL,
            "this machine took longer than the stale TTL between two reads"
        );
        assert_eq!(
            seen, "one\n",
            "within the TTL the reader's cache answers the old head, with no error"
        );
        assert!(
            stale < slow,
            "a cached answer comes at once ({stale} s), not after the resolver's {slow} s"
        );
        // The writer sees its own update at once.
        let (seen, _) = read("alice");
        assert_eq!(seen, "one\ntwo\n");
        // Once the TTL has passed, the reader resolves again: the new head, slowly.
        let wait = Duration::from_secs_f64(TTL + 0.5).saturating_sub(cached_since.elapsed());
        std::thread::sleep(wait);
        let (seen, slow_again) = read("bob");
        assert_eq!(seen, "one\ntwo\n");
        assert!(slow_again >= LATENCY * 0.9, "{slow_again} s");
        let log = srv.log();
        assert!(
            log.contains("actor:alice") && log.contains("actor:bob"),
            "the request log names the actors: {log}"
        );
    }

    /// IPNS records hold at most 10 KiB: a head page of 256 entries (200 of them filled)
    /// is refused over HTTP as IPNS would refuse it, through the REST API and Twirp alike,
    /// and the name does not move.
    #[test]
    fn ipns_refuses_a_256_entry_head_page_over_http() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        let s = FsStore::init(&dir, Config::default()).unwrap();
        let change = SettingsChange {
            capacity: Some(256),
            embed: Some(0),
        };
        log::append(&s, "staging", &msgs("m", 200), change).unwrap();
        let head = s
            .read_ref(&RefName::log("staging").unwrap())
            .unwrap()
            .unwrap();
        let srv = MockServer::start(&dir, "ipns", 1, &[]);
        let r = call(
            "PUT",
            &format!("{}/ns/logs/main", srv.url),
            &[("if-none-match", "*"), ("x-remotelog-actor", "alice")],
            format!("{head}\n").as_bytes(),
        );
        assert_eq!(r.status, 413, "{}", r.body);
        for needle in [
            "IPNS refused the record for logs/main: ",
            "bytes is over its limit of 10240 bytes (mock profile ipns)",
            "a head page of at most 147 entries without embedded messages fits: use --page-size 128 or less",
        ] {
            assert!(r.body.contains(needle), "{needle:?} not in {}", r.body);
        }
        assert_eq!(r.body.lines().count(), 1);
        assert_eq!(s.read_ref(&RefName::log("main").unwrap()).unwrap(), None);

        // The same through Twirp: a RemoteLog of 200 pairs as the record of "chat".
        let page = RemoteLog {
            pair: (0..200u8)
                .map(|i| Pair {
                    remote_hash: Id::of(&[i]).0.to_vec(),
                    local_hash: Id::of(&[i, i]).0.to_vec(),
                    data: Vec::new(),
                })
                .collect(),
            tail: Vec::new(),
        };
        let update = ns::NameUpdate {
            name: "chat".into(),
            content: page.encode_to_vec(),
        };
        let r = call(
            "POST",
            &format!("{}/twirp/vac.ns.NS/Update", srv.url),
            &[
                ("content-type", "application/protobuf"),
                ("x-remotelog-actor", "alice"),
            ],
            &update.encode_to_vec(),
        );
        assert_eq!(r.status, 400, "{}", r.body);
        let e: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(e["code"], "invalid_argument");
        let msg = e["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("IPNS refused the record for spec/chat: ")
                && msg.contains("over its limit of 10240 bytes (mock profile ipns)"),
            "{msg}"
        );
        assert_eq!(
            s.read_ref(&RefName::parse("spec/chat").unwrap()).unwrap(),
            None
        );
    }

    /// One client's sequence of outcomes under a seed: CAS gets of an object, each failing
    /// with probability 1/2; `others_first` has another client make requests first.
    fn outcomes(dir: &Path, profile: &str, id: &Id, seed: u64, others_first: bool) -> Vec<u16> {
        let srv = MockServer::start(dir, profile, seed, &[]);
        let get = |actor: &str| {
            call(
                "GET",
                &format!("{}/cas/{id}", srv.url),
                &[("x-remotelog-actor", actor)],
                b"",
            )
            .status
        };
        if others_first {
            for _ in 0..5 {
                get("someone-else");
            }
        }
        (0..24).map(|_| get("reader")).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_outcomes_over_http() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        let s = FsStore::init(&dir, Config::default()).unwrap();
        let id = Id::of(b"x");
        s.put_objects(&[(id, b"x")]).unwrap();
        let profile = write_profile(
            t.path(),
            "coin",
            "name = \"coin\"\n[cas]\nget = { latency = 0.001, failure = 0.5, error = \"503 Service Unavailable\" }\n[ns]\n",
        );
        let first = outcomes(&dir, &profile, &id, 7, false);
        assert!(
            first.contains(&200) && first.contains(&502),
            "failures answer 502 among successes: {first:?}"
        );
        assert_eq!(
            outcomes(&dir, &profile, &id, 7, true),
            first,
            "the same seed repeats a client's outcomes, whoever else comes first"
        );
        assert_ne!(outcomes(&dir, &profile, &id, 8, false), first);
    }

    /// Timeouts are answered when the profile's timeout has passed (504, Twirp
    /// `deadline_exceeded`), rate limits with `503 Slow Down` and `Retry-After`; clients
    /// waiting for slow answers hold no slot, so others are served meanwhile.
    #[test]
    fn timeouts_and_slow_down_are_answered_as_the_service_would_without_stalling_others() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        FsStore::init(&dir, Config::default()).unwrap();
        let profile = write_profile(
            t.path(),
            "strained",
            "name = \"strained\"\n[cas]\n[ns]\nservice = \"IPNS\"\nfetch = { latency = 30, timeout = 2 }\n[limits]\ncas_put = 1\n",
        );
        let srv = MockServer::start(&dir, &profile, 1, &["--max-concurrency", "1"]);
        let slow: Vec<_> = (0..3)
            .map(|i| {
                let url = format!("{}/ns/logs/main", srv.url);
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let r = call("GET", &url, &[("x-remotelog-actor", &format!("r{i}"))], b"");
                    (r, start.elapsed())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let r = call("POST", &format!("{}/cas", srv.url), &[], b"first");
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "a quick request waited {:?} behind slow ones",
            start.elapsed()
        );
        for h in slow {
            let (r, took) = h.join().unwrap();
            assert_eq!(r.status, 504, "{}", r.body);
            assert!(r
                .body
                .contains("IPNS fetch of name logs/main timed out after 2 s"));
            assert!(
                took >= Duration::from_millis(1900),
                "answered after {took:?}"
            );
        }
        let r = call(
            "POST",
            &format!("{}/twirp/vac.ns.NS/Fetch", srv.url),
            &[("content-type", "application/json")],
            br#"{"name":"main"}"#,
        );
        let e: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(e["code"], "deadline_exceeded", "{}", r.body);

        // Three puts in under a second against a limit of one per second.
        let answers: Vec<Resp> = (0..3)
            .map(|i| {
                call(
                    "POST",
                    &format!("{}/cas", srv.url),
                    &[],
                    format!("more {i}").as_bytes(),
                )
            })
            .collect();
        let slowed = answers
            .iter()
            .find(|r| r.status == 503)
            .expect("one put is over the limit");
        assert!(slowed.body.contains("503 Slow Down"), "{}", slowed.body);
        assert_eq!(slowed.headers.get("retry-after").unwrap(), "1");

        // A client named badly is told so.
        let r = call(
            "GET",
            &format!("{}/ns/logs/main", srv.url),
            &[("x-remotelog-actor", "no spaces")],
            b"",
        );
        assert_eq!(r.status, 400);
        assert!(r.body.contains("x-remotelog-actor must be"), "{}", r.body);
    }

    #[test]
    fn a_profile_that_does_not_load_is_a_bad_command_line() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("srv");
        FsStore::init(&dir, Config::default()).unwrap();
        let bad = write_profile(t.path(), "bad", "name = \"bad\"\nspeed = 3\n[cas]\n[ns]\n");
        for (profile, needle) in [
            ("nope", "no profile \"nope\": give a built-in one"),
            (&bad[..], "speed"),
        ] {
            let out = common::run(
                &dir,
                &["serve", "--listen", "127.0.0.1:0", "--mock", profile],
            );
            assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.starts_with("remotelog: error: --mock ") && err.contains(needle),
                "{err}"
            );
        }
    }

    #[test]
    fn the_client_refuses_an_actor_name_the_header_cannot_carry() {
        let t = tempfile::tempdir().unwrap();
        let mut c = common::bin();
        c.args(["clone", "http://127.0.0.1:9"])
            .arg(t.path().join("dest"))
            .env("REMOTELOG_ACTOR", "no spaces");
        let out = common::run_cmd(c, None);
        assert_eq!(out.status.code(), Some(1), "{}", common::text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("REMOTELOG_ACTOR=\"no spaces\" is not an actor name"),
            "{}",
            common::text(&out)
        );
    }
}

/// A mocked service's refusals are a remote's answers (`Error::Remote`, with the kind its
/// real client would see), and gc marking through one keeps that kind: a CAS whose gets
/// all fail is worth a retry, not a "damaged store" to check.
#[test]
fn mock_refusals_are_remote_failures_and_gc_keeps_their_kind() {
    use remotelog::error::{Error, RemoteFailure};
    let inner = MemStore::new();
    log::append(&inner, "main", &msgs("gc", 3), SettingsChange::default()).unwrap();
    let p = custom("name = \"flaky\"\n[cas]\nget = { failure = 1 }\n[ns]\n");
    let mock = Mock::new(Box::new(inner), p, 1);
    let h = mock.handle(0, Arc::new(VirtualClock::new(0)));
    let head = h
        .read_ref(&RefName::parse("logs/main").unwrap())
        .unwrap()
        .unwrap();
    let e = h.get_object(&head).unwrap_err();
    assert!(
        matches!(&e, Error::Remote { kind: RemoteFailure::Status(502), message }
            if message.contains("(mock profile flaky); retry")),
        "{e:?}"
    );
    let e = remotelog::upkeep::gc::mark(&h).unwrap_err();
    assert!(
        matches!(&e, Error::Remote { kind: RemoteFailure::Status(502), message }
            if message.ends_with("; gc deletes nothing until then")),
        "{e:?}"
    );
    assert!(e.is_transient(), "{e}");
}
