//! The contract of the `Backend` trait, as one set of tests run on every implementation
//! (the in-memory model and the file-system store).

use remotelog::backend::Backend;
use remotelog::backend::Expected;
use remotelog::config::Config;
use remotelog::name::RefName;
use remotelog::{Error, FsStore, Id, MemStore};

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

fn id(n: u8) -> Id {
    Id([n; 32])
}

fn log(name: &str) -> RefName {
    RefName::log(name).unwrap()
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
    let main = log("main");
    assert_eq!(b.read_ref(&main).unwrap(), None);

    // A wrong expectation on an absent ref: conflict, nothing created.
    match b.update_ref(&main, Expected::Equal(id(9)), Some(id(1))) {
        Err(Error::RefConflict {
            name,
            expected,
            actual,
        }) => {
            assert!(name.contains("main"), "{name}");
            assert_eq!((expected, actual), (Some(id(9)), None));
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
    assert!(b.list_refs("logs").unwrap().is_empty());
    let names = ["main", "team/chat", "team/dev", "z", "a.b_c-d"];
    for (i, n) in names.iter().enumerate() {
        b.update_ref(&log(n), Expected::Absent, Some(id(i as u8)))
            .unwrap();
    }
    let other = RefName::parse("remotes/origin").unwrap();
    b.update_ref(&other, Expected::Absent, Some(id(99)))
        .unwrap();

    for (i, n) in names.iter().enumerate() {
        assert_eq!(b.read_ref(&log(n)).unwrap(), Some(id(i as u8)), "{n}");
    }
    let mut want: Vec<RefName> = names.iter().map(|n| log(n)).collect();
    want.sort();
    assert_eq!(b.list_refs("logs").unwrap(), want);
    assert_eq!(b.list_refs("remotes").unwrap(), vec![other.clone()]);
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
    assert_eq!(b.read_ref(&other).unwrap(), Some(id(99)));
}

/// Many threads increment a counter held in a ref by read + compare-and-swap: no update is
/// lost only if the swap is atomic.
fn concurrent_cas_loses_no_update(b: &(dyn Backend + Sync)) {
    const THREADS: u64 = 4;
    const EACH: u64 = 10;
    let r = log("counter");
    let enc = |n: u64| {
        let mut a = [0u8; 32];
        a[..8].copy_from_slice(&n.to_le_bytes());
        Id(a)
    };
    let dec = |i: Id| u64::from_le_bytes(i.0[..8].try_into().unwrap());
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
    let report = remotelog::check::check(b, true);
    assert!(report.is_sound(), "{:?}", report.problems);
}

/// Stores a page and returns its id.
fn page(b: &dyn Backend, prev: Option<Id>, count: u64, messages: &[&remotelog::Message]) -> Id {
    let entries = messages
        .iter()
        .map(|m| remotelog::Entry {
            h1: m.h1(),
            h2: Id::of(&remotelog::object::encode_message(m)),
            embedded: None,
        })
        .collect();
    let bytes = remotelog::object::Object::Page(remotelog::Page {
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
    let bytes = remotelog::object::encode_message(m);
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
    let h2 = |m: &remotelog::Message| Id::of(&remotelog::object::encode_message(m));
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

// ---------------------------------------------------------------------------------------
// Running it on each backend

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod mem {
            use super::*;
            $(
                #[test]
                fn $test() {
                    super::$test(&MemStore::new());
                }
            )*
        }
        mod fs {
            use super::*;
            $(
                #[test]
                fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = FsStore::init(&dir.path().join("store"), Config::default()).unwrap();
                    super::$test(&store);
                    // Nothing the suite did left the store in a state `check` dislikes
                    // (refs here point at made-up ids, so only the layout is examined).
                    let layout = store.layout().unwrap();
                    assert!(layout.problems.is_empty(), "{:?}", layout.problems);
                    assert!(store.leftovers().unwrap().is_empty(), "{:?}", store.leftovers());
                    // The same store opened again sees the same content.
                    let again = FsStore::open(store.root()).unwrap();
                    assert_eq!(again.list_objects().unwrap(), store.list_objects().unwrap());
                    assert_eq!(again.list_refs("logs").unwrap(), store.list_refs("logs").unwrap());
                }
            )*
        }
    };
}

suite!(
    put_get_has,
    large_batch,
    list_and_prefix,
    missing_object,
    ref_compare_and_swap,
    refs_are_independent_and_listed,
    concurrent_cas_loses_no_update,
    concurrent_appends_lose_no_message,
    check_complete_stops_where_the_ref_was_and_names_what_is_missing,
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
