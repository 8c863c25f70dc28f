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
