//! The storage contract (`src/store/contract.rs`), as one set of tests run on every
//! implementation: the memory model, the store directory, an HTTP remote (a served
//! directory), the mock remote with its zero-delay profile and an object store (a prefix
//! in a bucket of SeaweedFS, started once for this binary). A new backend is added by
//! one line in the `suite!` invocation at the end (and a `Subject` constructor).

use std::sync::Arc;
use std::time::Duration;

use remotelog::mock::{Mock, Profile, VirtualClock};
use remotelog::model::name::RefName;
use remotelog::net::client::HttpBackend;
use remotelog::store::config::Config;
use remotelog::store::{Backend, Expected, Removal};
use remotelog::{Error, FsStore, Id, MemStore};

mod common;

/// A backend under test, with what must live as long as it does (its directory, its
/// server) and what to check once a test is done with it.
struct Subject {
    b: Box<dyn Backend + Send + Sync>,
    _keep: Vec<Box<dyn std::any::Any>>,
    after: Option<Box<dyn FnOnce()>>,
}

impl Subject {
    fn new(b: impl Backend + Send + Sync + 'static) -> Subject {
        Subject {
            b: Box::new(b),
            _keep: Vec::new(),
            after: None,
        }
    }

    /// Runs the backend's own checks after a test.
    fn finish(mut self) {
        if let Some(after) = self.after.take() {
            after();
        }
    }
}

impl std::ops::Deref for Subject {
    type Target = dyn Backend + Send + Sync;
    fn deref(&self) -> &Self::Target {
        &*self.b
    }
}

fn mem() -> Subject {
    Subject::new(MemStore::new())
}

fn fs() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::init(&dir.path().join("store"), Config::default()).unwrap();
    let seen = store.clone();
    let mut s = Subject::new(store);
    s.after = Some(Box::new(move || {
        // Nothing the suite did left the store in a state `check` dislikes in its layout.
        let layout = seen.layout().unwrap();
        assert!(layout.problems.is_empty(), "{:?}", layout.problems);
        assert!(
            seen.leftovers().unwrap().is_empty(),
            "{:?}",
            seen.leftovers()
        );
        // The same store opened again sees the same content.
        let again = FsStore::open(seen.root()).unwrap();
        assert_eq!(again.list_objects().unwrap(), seen.list_objects().unwrap());
        assert_eq!(
            again.list_refs("logs").unwrap(),
            seen.list_refs("logs").unwrap()
        );
    }));
    s._keep.push(Box::new(dir));
    s
}

fn http() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    // An admin token, so that gc runs over HTTP too; writes need none.
    let server = common::serve(&dir.path().join("served"), |o| {
        o.admin_token = Some(ADMIN.into());
    });
    let mut s = Subject::new(HttpBackend::open(&server.url(), Some(ADMIN.into())).unwrap());
    s._keep = vec![Box::new(server), Box::new(dir)];
    s
}

const ADMIN: &str = "suite-admin-token";

fn mock() -> Subject {
    let mock = Mock::new(
        Box::new(MemStore::new()),
        Profile::builtin("ideal").unwrap(),
        7,
    );
    let clock: Arc<VirtualClock> = Arc::new(VirtualClock::new(0));
    let mut s = Subject::new(mock.handle(0, clock));
    s._keep = vec![Box::new(mock)];
    s
}

/// A fresh prefix in the bucket of this binary's SeaweedFS (`common::seaweed`).
fn s3() -> Subject {
    let server = common::seaweed();
    let store = server.backend(&server.fresh("suite"));
    let seen = server.backend(&format!(
        "s3://{}/{}",
        store.location_of().bucket,
        store.location_of().prefix
    ));
    let mut s = Subject::new(store);
    s.after = Some(Box::new(move || {
        // Nothing the suite did left a key where the layout has none, and the same store
        // opened again sees the same content.
        let layout = seen.layout().unwrap();
        assert!(layout.problems.is_empty(), "{:?}", layout.problems);
        assert!(seen.list_refs("logs").is_ok());
    }));
    s
}

fn objects(n: usize, tag: &str) -> Vec<(Id, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let bytes = format!("{tag} object {i}").into_bytes();
            (Id::of(&bytes), bytes)
        })
        .collect()
}

fn as_refs(objs: &[(Id, Vec<u8>)]) -> Vec<(Id, &[u8])> {
    objs.iter().map(|(id, b)| (*id, &b[..])).collect()
}

fn log(name: &str) -> RefName {
    RefName::log(name).unwrap()
}

fn spec(name: &str) -> RefName {
    RefName::parse(&format!("spec/{name}")).unwrap()
}

/// A complete one-entry page (its message stored first), distinct for each `n`: what a ref
/// may name on every backend, a server included (it refuses a ref to anything else).
fn target(b: &dyn Backend, n: u64) -> Id {
    let m = remotelog::Message {
        group_id: b"g".to_vec(),
        timestamp: n as i64,
        body: format!("target {n}").into_bytes(),
    };
    message(b, &m);
    page(b, None, 1, &[&m])
}

/// [`target`] for `0..n`.
fn targets(b: &dyn Backend, n: u64) -> Vec<Id> {
    (0..n).map(|i| target(b, i)).collect()
}

// ---------------------------------------------------------------------------------------
// The suite

fn put_get_has(b: &dyn Backend) {
    let objs = objects(3, "a");
    for (id, _) in &objs {
        assert!(!b.has_object(id).unwrap());
    }
    assert_eq!(b.put_objects(&as_refs(&objs)).unwrap(), 3);
    for (id, bytes) in &objs {
        assert!(b.has_object(id).unwrap());
        assert_eq!(&b.get_object(id).unwrap(), bytes);
    }
    // Present objects are skipped, also within one batch.
    assert_eq!(b.put_objects(&as_refs(&objs)).unwrap(), 0);
    let more = objects(2, "b");
    let mut batch = as_refs(&more);
    batch.push(batch[0]);
    batch.push((objs[0].0, &objs[0].1[..]));
    assert_eq!(b.put_objects(&batch).unwrap(), 2);
    assert_eq!(b.put_objects(&[]).unwrap(), 0);

    // The empty object and a big one.
    let empty: &[u8] = b"";
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let batch = [(Id::of(empty), empty), (Id::of(&big), &big[..])];
    assert_eq!(b.put_objects(&batch).unwrap(), 2);
    assert_eq!(b.get_object(&Id::of(empty)).unwrap(), empty);
    assert_eq!(b.get_object(&Id::of(&big)).unwrap(), big);
}

fn large_batch(b: &dyn Backend) {
    // Larger than any per-file-fsync threshold: exercises the batched path.
    let objs = objects(300, "batch");
    assert_eq!(b.put_objects(&as_refs(&objs)).unwrap(), 300);
    for (id, bytes) in &objs {
        assert_eq!(&b.get_object(id).unwrap(), bytes);
    }
    let mut want: Vec<Id> = objs.iter().map(|(id, _)| *id).collect();
    want.sort();
    assert_eq!(b.list_objects().unwrap(), want);
    // Half old, half new.
    let mut mixed = objects(150, "batch");
    mixed.extend(objects(150, "other"));
    assert_eq!(b.put_objects(&as_refs(&mixed)).unwrap(), 150);
    assert_eq!(b.list_objects().unwrap().len(), 450);
}

fn list_and_prefix(b: &dyn Backend) {
    assert_eq!(b.list_objects().unwrap(), Vec::<Id>::new());
    let objs = objects(40, "list");
    b.put_objects(&as_refs(&objs)).unwrap();
    let mut all: Vec<Id> = objs.iter().map(|(id, _)| *id).collect();
    all.sort();
    assert_eq!(b.list_objects().unwrap(), all, "sorted, complete");

    for target in &all {
        let hex = target.to_hex();
        for len in [2, 3, 8, 20, 64] {
            let prefix = &hex[..len];
            let want: Vec<Id> = all
                .iter()
                .filter(|i| i.to_hex().starts_with(prefix))
                .copied()
                .collect();
            assert!(want.contains(target));
            assert_eq!(
                b.objects_with_prefix(prefix).unwrap(),
                want,
                "prefix {prefix}"
            );
        }
    }
    // A prefix nothing has.
    let absent = (0..=255u8)
        .map(|n| format!("{n:02x}"))
        .find(|p| !all.iter().any(|i| i.to_hex().starts_with(p.as_str())))
        .unwrap();
    assert!(b.objects_with_prefix(&absent).unwrap().is_empty());
    assert!(b
        .objects_with_prefix(&format!("{absent}00112233"))
        .unwrap()
        .is_empty());
}

fn missing_object(b: &dyn Backend) {
    let want = Id::of(b"never stored");
    match b.get_object(&want) {
        Err(Error::ObjectMissing { id, location }) => {
            assert_eq!(id, want);
            assert!(!location.is_empty());
        }
        other => panic!("expected ObjectMissing, got {other:?}"),
    }
    let msg = b.get_object(&want).unwrap_err().to_string();
    assert!(msg.contains(&want.to_hex()), "{msg}");
    assert!(!b.has_object(&want).unwrap());
    assert!(b.object_location(&want).contains(&want.to_hex()[2..]));
}

fn ref_compare_and_swap(b: &dyn Backend) {
    let t = targets(b, 6);
    let id = |n: u8| t[n as usize];
    let main = log("main");
    assert_eq!(b.read_ref(&main).unwrap(), None);

    // A wrong expectation on an absent ref: conflict, nothing created.
    match b.update_ref(&main, Expected::Equal(Id([9; 32])), Some(id(1))) {
        Err(Error::RefConflict {
            name,
            expected,
            actual,
        }) => {
            assert!(name.contains("main"), "{name}");
            assert_eq!((expected, actual), (Some(Id([9; 32])), None));
        }
        other => panic!("expected RefConflict, got {other:?}"),
    }
    assert_eq!(b.read_ref(&main).unwrap(), None);

    // Create with expected None.
    b.update_ref(&main, Expected::Absent, Some(id(1))).unwrap();
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(1)));

    // Creating again conflicts and leaves the value.
    match b.update_ref(&main, Expected::Absent, Some(id(2))) {
        Err(Error::RefConflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (None, Some(id(1)))),
        other => panic!("expected RefConflict, got {other:?}"),
    }
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(1)));

    // A stale expectation conflicts and leaves the value.
    match b.update_ref(&main, Expected::Equal(id(3)), Some(id(4))) {
        Err(Error::RefConflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (Some(id(3)), Some(id(1)))),
        other => panic!("expected RefConflict, got {other:?}"),
    }
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(1)));
    let e = b
        .update_ref(&main, Expected::Equal(id(3)), None)
        .unwrap_err();
    assert!(matches!(e, Error::RefConflict { .. }), "{e:?}");
    assert_eq!(
        b.read_ref(&main).unwrap(),
        Some(id(1)),
        "a refused delete deleted"
    );

    // Move with the right expectation.
    b.update_ref(&main, Expected::Equal(id(1)), Some(id(2)))
        .unwrap();
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(2)));
    // Setting the value it already has is fine.
    b.update_ref(&main, Expected::Equal(id(2)), Some(id(2)))
        .unwrap();
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(2)));

    // Delete with new None.
    b.update_ref(&main, Expected::Equal(id(2)), None).unwrap();
    assert_eq!(b.read_ref(&main).unwrap(), None);
    let e = b
        .update_ref(&main, Expected::Equal(id(2)), None)
        .unwrap_err();
    assert!(
        matches!(e, Error::RefConflict { actual: None, .. }),
        "{e:?}"
    );

    // And it can be created again.
    b.update_ref(&main, Expected::Absent, Some(id(5))).unwrap();
    assert_eq!(b.read_ref(&main).unwrap(), Some(id(5)));
}

fn refs_are_independent_and_listed(b: &dyn Backend) {
    let t = targets(b, 6);
    let id = |n: u8| t[n as usize];
    assert!(b.list_refs("logs").unwrap().is_empty());
    let names = ["main", "team/chat", "team/dev", "z", "a.b_c-d"];
    for (i, n) in names.iter().enumerate() {
        b.update_ref(&log(n), Expected::Absent, Some(id(i as u8)))
            .unwrap();
    }
    let other = spec("origin");
    b.update_ref(&other, Expected::Absent, Some(id(5))).unwrap();

    for (i, n) in names.iter().enumerate() {
        assert_eq!(b.read_ref(&log(n)).unwrap(), Some(id(i as u8)), "{n}");
    }
    let mut want: Vec<RefName> = names.iter().map(|n| log(n)).collect();
    want.sort();
    assert_eq!(b.list_refs("logs").unwrap(), want);
    assert_eq!(b.list_refs("spec").unwrap(), vec![other.clone()]);
    assert!(b.list_refs("nothing").unwrap().is_empty());
    let logs: Vec<String> = b
        .list_refs("logs")
        .unwrap()
        .iter()
        .map(|r| r.log_name().unwrap().to_string())
        .collect();
    let mut sorted_names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted_names.sort();
    assert_eq!(logs, sorted_names);

    // A deleted ref is no longer listed; the others are untouched.
    b.update_ref(&log("team/chat"), Expected::Equal(id(1)), None)
        .unwrap();
    let listed = b.list_refs("logs").unwrap();
    assert!(!listed.contains(&log("team/chat")));
    assert_eq!(listed.len(), names.len() - 1);
    assert_eq!(b.read_ref(&log("team/dev")).unwrap(), Some(id(2)));
    assert_eq!(b.read_ref(&other).unwrap(), Some(id(5)));
}

/// Many threads increment a counter held in a ref by read + compare-and-swap: no update is
/// lost only if the swap is atomic.
fn concurrent_cas_loses_no_update(b: &(dyn Backend + Sync)) {
    const THREADS: u64 = 4;
    const EACH: u64 = 10;
    let r = log("counter");
    // The counter's values are distinct complete pages, stored first.
    let values = targets(b, THREADS * EACH + 1);
    let enc = |n: u64| values[n as usize];
    let dec = |i: Id| values.iter().position(|v| *v == i).unwrap() as u64;
    b.update_ref(&r, Expected::Absent, Some(enc(0))).unwrap();
    let conflicts = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut done = 0;
                while done < EACH {
                    let cur = b.read_ref(&r).unwrap().unwrap();
                    match b.update_ref(&r, Expected::Equal(cur), Some(enc(dec(cur) + 1))) {
                        Ok(()) => done += 1,
                        Err(Error::RefConflict { .. }) => {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(dec(b.read_ref(&r).unwrap().unwrap()), THREADS * EACH);
}

/// Two writers append to one log at once, in batches small (loose objects) and large (a
/// pack): each append is retried on top of the other's, so no message is lost or doubled,
/// each writer's messages keep their order, and the log checks sound.
fn concurrent_appends_lose_no_message(b: &(dyn Backend + Sync)) {
    use remotelog::log::{self, SettingsChange};
    use remotelog::Message;
    const ROUNDS: usize = 8;
    let batch = |w: usize, round: usize| -> Vec<Message> {
        let n = if round % 2 == 0 { 30 } else { 100 };
        (0..n)
            .map(|i| Message {
                group_id: b"g".to_vec(),
                timestamp: (w * 1_000_000 + round * 1000 + i) as i64,
                body: format!("writer {w} round {round} message {i}").into_bytes(),
            })
            .collect()
    };
    std::thread::scope(|s| {
        for w in 0..2 {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    log::append(b, "main", &batch(w, round), SettingsChange::default()).unwrap();
                }
            });
        }
    });
    let entries = log::entries(b, "main").unwrap();
    for w in 0..2 {
        let want: Vec<Id> = (0..ROUNDS)
            .flat_map(|r| batch(w, r))
            .map(|m| m.h1())
            .collect();
        // Entries come newest first.
        let got: Vec<Id> = entries
            .iter()
            .rev()
            .map(|e| e.h1)
            .filter(|h1| want.contains(h1))
            .collect();
        assert_eq!(got, want, "writer {w}");
    }
    assert_eq!(entries.len(), 2 * (ROUNDS / 2) * (30 + 100));
    let report = remotelog::upkeep::check::check(b, true);
    assert!(report.is_sound(), "{:?}", report.problems);
}

/// Stores a page and returns its id.
fn page(b: &dyn Backend, prev: Option<Id>, count: u64, messages: &[&remotelog::Message]) -> Id {
    let entries = messages
        .iter()
        .map(|m| remotelog::Entry {
            h1: m.h1(),
            h2: Id::of(&remotelog::model::object::encode_message(m)),
            embedded: None,
        })
        .collect();
    let bytes = remotelog::model::object::Object::Page(remotelog::Page {
        prev,
        count,
        capacity: 0,
        embed: 0,
        entries,
    })
    .encode();
    let id = Id::of(&bytes);
    b.put_objects(&[(id, &bytes)]).unwrap();
    id
}

fn message(b: &dyn Backend, m: &remotelog::Message) {
    let bytes = remotelog::model::object::encode_message(m);
    b.put_objects(&[(Id::of(&bytes), &bytes)]).unwrap();
}

fn check_complete_stops_where_the_ref_was_and_names_what_is_missing(b: &dyn Backend) {
    use remotelog::log::check_complete;
    let m = |i: i64| remotelog::Message {
        group_id: b"g".to_vec(),
        timestamp: i,
        body: format!("m{i}").into_bytes(),
    };
    let (m1, m2, m3, m4) = (m(1), m(2), m(3), m(4));
    let h2 = |m: &remotelog::Message| Id::of(&remotelog::model::object::encode_message(m));
    let name = log("main");
    // An oldest page whose message was never stored, under a complete newer page.
    let p1 = page(b, None, 1, &[&m1]);
    message(b, &m2);
    let p2 = page(b, Some(p1), 2, &[&m2]);
    let missing = |r: remotelog::Result<()>| match r {
        Err(Error::IncompleteChain {
            missing,
            what,
            name,
            ..
        }) => {
            assert_eq!(name, "logs/main");
            (missing, what)
        }
        other => panic!("expected an incomplete chain, got {other:?}"),
    };
    let (id, what) = missing(check_complete(b, &name, p2, None));
    assert_eq!(id, h2(&m1));
    assert!(
        what.contains("message") && what.contains(&p1.to_hex()),
        "{what}"
    );
    // What a ref already names counts as complete: the walk stops at the old head...
    check_complete(b, &name, p2, Some(p1)).unwrap();
    // ...and at the old head's prev when an append replaced the open head page.
    message(b, &m3);
    let p2b = page(b, Some(p1), 3, &[&m3, &m2]);
    check_complete(b, &name, p2b, Some(p2)).unwrap();
    check_complete(b, &name, p2, Some(p2)).unwrap();
    // The new head missing, a prev missing, a message of the head missing.
    let nowhere = Id::of(b"no such page");
    let (id, what) = missing(check_complete(b, &name, nowhere, Some(p2)));
    assert_eq!((id, what.as_str()), (nowhere, "page (the new head)"));
    let p3 = page(b, Some(nowhere), 5, &[&m3]);
    let (id, what) = missing(check_complete(b, &name, p3, Some(p2)));
    assert_eq!(id, nowhere);
    assert!(what.contains(&format!("prev of page {p3}")), "{what}");
    let p4 = page(b, Some(p2), 3, &[&m4]);
    let (id, what) = missing(check_complete(b, &name, p4, Some(p2)));
    assert_eq!(id, h2(&m4));
    assert!(what.contains(&p4.to_hex()), "{what}");
    message(b, &m4);
    check_complete(b, &name, p4, Some(p2)).unwrap();
    // Counts that do not chain are refused, not walked.
    let liar = page(b, Some(p2), 7, &[&m4]);
    match check_complete(b, &name, liar, None) {
        Err(Error::ObjectCorrupt { reason, .. }) => assert!(reason.contains("count"), "{reason}"),
        other => panic!("expected a corrupt chain, got {other:?}"),
    }
}

/// `Expected::Any` applies whatever the ref holds (creating, moving, deleting); `Absent`
/// and `Equal` are checked; a refused update changes nothing.
fn ref_expectations(b: &dyn Backend) {
    let t = targets(b, 3);
    let r = log("any");
    b.update_ref(&r, Expected::Any, Some(t[0])).unwrap();
    assert_eq!(b.read_ref(&r).unwrap(), Some(t[0]), "any creates");
    b.update_ref(&r, Expected::Any, Some(t[1])).unwrap();
    assert_eq!(b.read_ref(&r).unwrap(), Some(t[1]), "any moves");
    let e = b.update_ref(&r, Expected::Absent, Some(t[2])).unwrap_err();
    assert!(
        matches!(e, Error::RefConflict { expected: None, actual: Some(a), .. } if a == t[1]),
        "{e:?}"
    );
    b.update_ref(&r, Expected::Equal(t[1]), Some(t[2])).unwrap();
    b.update_ref(&r, Expected::Any, None).unwrap();
    assert_eq!(b.read_ref(&r).unwrap(), None, "any deletes");
    // Deleting what is not there, expecting anything or nothing, is no change.
    b.update_ref(&r, Expected::Any, None).unwrap();
    b.update_ref(&r, Expected::Absent, None).unwrap();
    assert_eq!(b.read_ref(&r).unwrap(), None);
    let s = spec("any");
    b.update_ref(&s, Expected::Any, Some(t[0])).unwrap();
    assert_eq!(b.read_ref(&s).unwrap(), Some(t[0]));
    assert_eq!(b.list_refs("spec").unwrap(), vec![s]);
}

/// The lenient listing of a sound store lists what the strict one does, and no damage.
fn lenient_listing(b: &dyn Backend) {
    let t = targets(b, 2);
    b.update_ref(&log("a"), Expected::Absent, Some(t[0]))
        .unwrap();
    b.update_ref(&log("b/c"), Expected::Absent, Some(t[1]))
        .unwrap();
    let (refs, damaged) = b.list_refs_lenient("logs").unwrap();
    assert_eq!(refs, b.list_refs("logs").unwrap());
    assert_eq!(refs, vec![log("a"), log("b/c")]);
    assert!(damaged.is_empty(), "{damaged:?}");
}

/// `scan_objects` hands every stored object exactly once, with its bytes; so does
/// `present_objects` answer for stored and missing ids alike.
fn scan_and_presence(b: &dyn Backend) {
    let few = objects(5, "loose");
    let many = objects(300, "packed");
    b.put_objects(&as_refs(&few)).unwrap();
    b.put_objects(&as_refs(&many)).unwrap();
    let mut seen = std::collections::HashMap::new();
    b.scan_objects(&mut |id, bytes| {
        *seen.entry(id).or_insert(0) += 1;
        let want = few.iter().chain(&many).find(|(i, _)| *i == id).unwrap();
        assert_eq!(bytes.unwrap(), want.1, "{id}");
    })
    .unwrap();
    assert_eq!(seen.len(), 305);
    assert!(seen.values().all(|n| *n == 1), "an object was handed twice");
    let mut ask: Vec<Id> = few.iter().chain(&many).map(|(id, _)| *id).collect();
    let missing = objects(3, "never");
    ask.extend(missing.iter().map(|(id, _)| *id));
    let present = b.present_objects(&ask).unwrap();
    assert_eq!(present.len(), 305);
    assert!(missing.iter().all(|(id, _)| !present.contains(id)));
}

/// Raw blocks: each offered block holds only asked-for objects, passes its checksum and
/// decompresses to objects that hash to their ids; nothing is offered twice.
fn raw_blocks(b: &dyn Backend) {
    let objs = objects(400, "raw");
    b.put_objects(&as_refs(&objs)).unwrap();
    let ids: Vec<Id> = objs.iter().map(|(id, _)| *id).collect();
    for ask in [&ids[..], &ids[..123]] {
        let mut offered = std::collections::HashSet::new();
        b.raw_blocks(ask, &mut |block| {
            assert_eq!(
                remotelog::pack::frame_checksum(&block.frame),
                block.checksum
            );
            block.for_each_verified(|id, bytes| {
                assert!(ask.contains(id), "{id} was not asked for");
                assert!(offered.insert(*id), "{id} offered twice");
                assert_eq!(objs.iter().find(|(i, _)| i == id).unwrap().1, bytes);
                Ok(())
            })
        })
        .unwrap();
        // A backend with packs offers the blocks it can (all of them when every object
        // is asked for); one without offers none.
        if b.pack_chain().unwrap().is_empty() {
            assert!(offered.is_empty());
        } else if ask.len() == ids.len() {
            assert_eq!(offered.len(), ids.len(), "a packed store held blocks back");
        }
    }
}

/// Packs: a staged pack added is stored (every object readable); where the backend keeps
/// it as a pack, the chain lists it and its bytes read back by range.
fn packs_added_listed_and_read(b: &dyn Backend) {
    let objs = objects(100, "staged");
    let mut w = b.stage_pack().unwrap();
    for (id, bytes) in &objs {
        w.add(*id, bytes).unwrap();
    }
    let done = w.finish().unwrap();
    let staged = done.tmp.to_path_buf();
    let added = b.add_pack(done).unwrap();
    assert!(!staged.exists(), "the staged file stayed behind");
    for (id, bytes) in &objs {
        assert_eq!(&b.get_object(id).unwrap(), bytes);
    }
    let chain = b.pack_chain().unwrap();
    let Some(pid) = added else {
        assert!(
            chain.is_empty(),
            "a pack not kept as one is listed: {chain:?}"
        );
        let e = b.read_pack(&Id([1; 32]), 0, 8).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("not on"), "{e}");
        return;
    };
    let info = chain
        .iter()
        .find(|p| p.id == pid)
        .expect("the added pack is listed");
    assert_eq!(chain[0].id, pid, "the newest pack comes first");
    assert_eq!(info.objects, 100);
    let read = |offset: u64, len: u64| -> remotelog::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut b.read_pack(&pid, offset, len)?, &mut out).unwrap();
        Ok(out)
    };
    assert_eq!(read(0, 8).unwrap(), remotelog::pack::MAGIC);
    // A pack ends with its id (the checksum of all before it).
    assert_eq!(read(info.size - 32, 32).unwrap(), pid.0);
    assert_eq!(read(0, info.size).unwrap().len() as u64, info.size);
    assert!(
        read(info.size - 4, 8).is_err(),
        "a range past the end was read"
    );
    let e = b.read_pack(&Id([1; 32]), 0, 8).map(|_| ()).unwrap_err();
    assert!(
        e.to_string().contains(&Id([1; 32]).to_hex()),
        "an unknown pack is not named: {e}"
    );
    // A second pack goes in front of the first.
    let more = objects(100, "staged again");
    let mut w = b.stage_pack().unwrap();
    for (id, bytes) in &more {
        w.add(*id, bytes).unwrap();
    }
    let second = b.add_pack(w.finish().unwrap()).unwrap().unwrap();
    let chain: Vec<Id> = b.pack_chain().unwrap().iter().map(|p| p.id).collect();
    assert_eq!(&chain[..2], &[second, pid]);
}

/// Write leases share; where the backend offers upkeep, its exclusive lease waits for
/// them and keeps new ones out until it ends.
fn write_leases_and_upkeep_exclude_each_other(b: &dyn Backend) {
    let short = Duration::from_millis(50);
    let l1 = b.write_lease_waiting(short).unwrap();
    let l2 = b.write_lease_waiting(short).unwrap();
    let Some(u) = b.upkeep() else {
        drop((l1, l2));
        return;
    };
    assert!(matches!(u.exclusive(short), Err(Error::Locked { .. })));
    drop(l1);
    assert!(matches!(u.exclusive(short), Err(Error::Locked { .. })));
    drop(l2);
    let held = u.exclusive(short).unwrap();
    let e = b.write_lease_waiting(short).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("gc is running"), "{e}");
    let e = u.exclusive(Duration::ZERO).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("another gc"), "{e}");
    drop(held);
    drop(b.write_lease_waiting(short).unwrap());
}

/// Timed leases, where offered: held until released or expired, renewable while live,
/// and while one is live upkeep waits.
fn timed_leases(b: &dyn Backend) {
    let Some(t) = b.timed_leases() else { return };
    let short = Duration::from_millis(50);
    let minute = Duration::from_secs(60);
    t.take("a", minute, short).unwrap();
    assert_eq!(t.count().unwrap(), 1);
    assert!(t.join("a").unwrap().is_some());
    assert!(t.join("nobody").unwrap().is_none());
    assert!(t.renew("a", minute).unwrap());
    if let Some(u) = b.upkeep() {
        assert!(matches!(u.exclusive(short), Err(Error::Locked { .. })));
        // And no timed lease is granted while upkeep runs.
        t.release("a").unwrap();
        let held = u.exclusive(short).unwrap();
        let e = t.take("c", minute, short).unwrap_err();
        assert!(e.to_string().contains("gc is running"), "{e}");
        drop(held);
    }
    t.release("a").unwrap();
    assert!(
        !t.renew("a", minute).unwrap(),
        "a released lease was renewed"
    );
    assert!(t.join("a").unwrap().is_none());
    assert_eq!(t.count().unwrap(), 0);
    // One that is not renewed lapses.
    t.take("b", Duration::ZERO, short).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        !t.renew("b", minute).unwrap(),
        "an expired lease was renewed"
    );
    assert!(t.join("b").unwrap().is_none());
}

/// gc through the contract: unreferenced objects go (none younger than the grace period),
/// the log stays whole. A backend offering no upkeep here says so.
fn gc_keeps_logs_and_removes_garbage(b: &dyn Backend) {
    use remotelog::log::{self, SettingsChange};
    let msgs = common::msgs("kept", 150);
    log::append(b, "main", &msgs, SettingsChange::default()).unwrap();
    let before = log::entries(b, "main").unwrap();
    let garbage = remotelog::model::object::encode_message(&remotelog::Message {
        group_id: b"g".to_vec(),
        timestamp: 1,
        body: b"nobody names me".to_vec(),
    });
    let gid = Id::of(&garbage);
    b.put_objects(&[(gid, &garbage)]).unwrap();
    let silent = remotelog::progress::Silent;
    // Young garbage stays.
    match remotelog::upkeep::gc::gc(b, Duration::from_secs(3600), false, &silent) {
        Err(e) if b.upkeep().is_none() && e.to_string().contains("offers no upkeep") => return,
        other => {
            let c = other.unwrap();
            assert_eq!(c.objects, 0);
            assert!(c.kept_young >= 1);
        }
    }
    assert!(b.has_object(&gid).unwrap());
    let dry = remotelog::upkeep::gc::gc(b, Duration::ZERO, true, &silent).unwrap();
    assert_eq!(dry.removed_ids, vec![gid]);
    assert!(b.has_object(&gid).unwrap(), "a dry run deleted");
    let c = remotelog::upkeep::gc::gc(b, Duration::ZERO, false, &silent).unwrap();
    assert_eq!((c.objects, c.reachable), (1, before.len() + 1), "{c:?}");
    assert!(!b.has_object(&gid).unwrap());
    assert_eq!(log::entries(b, "main").unwrap(), before);
    let report = remotelog::upkeep::check::check(b, true);
    assert!(report.is_sound(), "{:?}", report.problems);
}

/// The upkeep primitives, where offered: the inventory lists what is stored with fresh
/// ages, deletions remove, the chain is replaced only from its current head, and repack
/// leaves every object readable.
fn upkeep_primitives(b: &dyn Backend) {
    let Some(u) = b.upkeep() else { return };
    let objs = objects(10, "inventory");
    b.put_objects(&as_refs(&objs)).unwrap();
    let inv = u.inventory().unwrap();
    for (id, _) in &objs {
        let age = inv.loose.iter().find(|(i, _)| i == id).expect("listed").1;
        assert!(age < Duration::from_secs(600), "{age:?}");
    }
    assert!(u.stored_bytes().unwrap() > 0);
    let gone: Vec<Id> = objs[..3].iter().map(|(id, _)| *id).collect();
    assert_eq!(u.delete_loose(&gone, Removal::EachDurable).unwrap(), 3);
    assert_eq!(u.delete_loose(&gone, Removal::AtFlush).unwrap(), 0);
    u.flush().unwrap();
    for id in &gone {
        assert!(!b.has_object(id).unwrap());
    }
    // A replacement from a head the chain does not have changes nothing, and is a lost
    // compare-and-swap of `packs` (worth running again), on every backend.
    let wrong = Some(Id([7; 32]));
    let e = u.replace_chain(wrong, Vec::new(), false).unwrap_err();
    assert!(
        matches!(&e, remotelog::Error::RefConflict { name, expected, .. }
            if name == "packs" && *expected == wrong),
        "{e:?}"
    );
    assert_eq!(u.inventory().unwrap().head, inv.head);
    let many = objects(200, "repacked");
    b.put_objects(&as_refs(&many)).unwrap();
    remotelog::upkeep::repack::repack(b, 1 << 20, &remotelog::progress::Silent).unwrap();
    for (id, bytes) in objs[3..].iter().chain(&many) {
        assert_eq!(&b.get_object(id).unwrap(), bytes);
    }
    if u.keeps_packs() {
        let inv = u.inventory().unwrap();
        assert!(inv.loose.is_empty(), "repack left loose objects");
        assert_eq!(inv.packs.len(), 1);
        assert_eq!(u.leftovers(Duration::ZERO).unwrap(), Vec::new());
    }
}

/// A backend that checks chains refuses a log ref to an incomplete one, naming what is
/// missing; one that does not moves the ref as told (its writers check first).
fn chain_checks(b: &dyn Backend) {
    let m = remotelog::Message {
        group_id: b"g".to_vec(),
        timestamp: 1,
        body: b"never stored".to_vec(),
    };
    let p = page(b, None, 1, &[&m]);
    let h2 = Id::of(&remotelog::model::object::encode_message(&m));
    let r = log("incomplete");
    let found = remotelog::log::check_complete(b, &r, p, None);
    assert!(matches!(found, Err(Error::IncompleteChain { missing, .. }) if missing == h2));
    let moved = b.update_ref(&r, Expected::Absent, Some(p));
    if b.checks_chains() {
        match moved {
            Err(Error::IncompleteChain { missing, .. }) => assert_eq!(missing, h2),
            other => panic!("expected an incomplete chain, got {other:?}"),
        }
        assert_eq!(b.read_ref(&r).unwrap(), None);
    } else {
        moved.unwrap();
        assert_eq!(b.read_ref(&r).unwrap(), Some(p));
    }
}

// ---------------------------------------------------------------------------------------
// Running it on each backend

/// The tests of the suite, each run on one backend (a module named after it).
macro_rules! on {
    ($backend:ident: $($test:ident),*) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    let subject = super::$backend();
                    super::$test(&*subject);
                    subject.finish();
                }
            )*
        }
    };
}

/// Every test on every backend: a new backend is one more name in the first list (and a
/// function of that name making its `Subject`).
macro_rules! suite {
    ([$($backend:ident),*], $tests:tt) => {
        $( suite!(@one $backend, $tests); )*
    };
    (@one $backend:ident, [$($test:ident),* $(,)?]) => {
        on!($backend: $($test),*);
    };
}

suite!(
    [mem, fs, http, mock, s3],
    [
        put_get_has,
        large_batch,
        list_and_prefix,
        missing_object,
        ref_compare_and_swap,
        ref_expectations,
        refs_are_independent_and_listed,
        lenient_listing,
        concurrent_cas_loses_no_update,
        concurrent_appends_lose_no_message,
        check_complete_stops_where_the_ref_was_and_names_what_is_missing,
        scan_and_presence,
        raw_blocks,
        packs_added_listed_and_read,
        write_leases_and_upkeep_exclude_each_other,
        timed_leases,
        gc_keeps_logs_and_removes_garbage,
        upkeep_primitives,
        chain_checks,
    ]
);

#[test]
fn fs_store_detects_damaged_object_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::init(&dir.path().join("store"), Config::default()).unwrap();
    let objs = objects(2, "dmg");
    store.put_objects(&as_refs(&objs)).unwrap();
    // Replace object 0's file with object 1's (a valid frame of the wrong content).
    let (a, b) = (objs[0].0, objs[1].0);
    std::fs::remove_file(store.object_path(&a)).unwrap();
    std::fs::copy(store.object_path(&b), store.object_path(&a)).unwrap();
    match store.get_object(&a) {
        Err(Error::ObjectCorrupt { id, location, .. }) => {
            assert_eq!(id, a);
            assert!(location.contains(&a.to_hex()[2..]), "{location}");
        }
        other => panic!("expected ObjectCorrupt, got {other:?}"),
    }
    // has_object does not read content.
    assert!(store.has_object(&a).unwrap());
    assert_eq!(store.get_object(&b).unwrap(), objs[1].1);
}

#[test]
fn mem_store_detects_damaged_objects() {
    let m = MemStore::new();
    let objs = objects(1, "dmg");
    m.put_objects(&as_refs(&objs)).unwrap();
    m.corrupt_object(&objs[0].0, b"something else".to_vec());
    assert!(matches!(
        m.get_object(&objs[0].0),
        Err(Error::ObjectCorrupt { .. })
    ));
}

/// A range longer than one request's (8 MiB) reads whole and exact over HTTP, piece by
/// piece, as the pack file on the served directory holds it.
#[test]
fn http_reads_a_long_range_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let store = FsStore::init(&root, Config::default()).unwrap();
    // Incompressible objects of 64 KiB, 10 MiB in all, in one pack.
    let mut rng = common::Rng(0x9e37_79b9_7f4a_7c15);
    let objs: Vec<(Id, Vec<u8>)> = (0..160)
        .map(|_| {
            let bytes: Vec<u8> = (0..8192).flat_map(|_| rng.next().to_le_bytes()).collect();
            (Id::of(&bytes), bytes)
        })
        .collect();
    store.put_objects(&as_refs(&objs)).unwrap();
    let info = store.pack_chain().unwrap().remove(0);
    assert!(info.size > 8 << 20, "{info:?}");
    let server = common::serve(&root, |_| {});
    let b = HttpBackend::open(&server.url(), None).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut b.read_pack(&info.id, 0, info.size).unwrap(), &mut got)
        .unwrap();
    let want = std::fs::read(store.pack_path(&info.id)).unwrap();
    assert!(got == want, "the pack read over HTTP differs from the file");
    // And a range across a piece boundary.
    let mut mid = Vec::new();
    let at = (8 << 20) - 5;
    std::io::Read::read_to_end(&mut b.read_pack(&info.id, at, 10).unwrap(), &mut mid).unwrap();
    assert_eq!(mid, want[at as usize..at as usize + 10]);
}
