//! Packs: golden bytes, index lookups, damage detection, repack safety, mixed remotes.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use remotelog::log::{self, SettingsChange};
use remotelog::model::object::Object;
use remotelog::pack::{Pack, PackWriter};
use remotelog::progress::Silent;
use remotelog::store::config::Config;
use remotelog::store::Backend;
use remotelog::store::Expected;
use remotelog::{transfer::sync, upkeep::check, FsStore, Id, Message};

mod common;
use common::{bin, fixtures, kill_after, run};

fn msg(i: usize, tag: &str) -> Message {
    Message {
        group_id: b"g".to_vec(),
        timestamp: i as i64,
        body: format!("{tag} {i} {}", "lorem ipsum ".repeat(i % 40)).into_bytes(),
    }
}

fn encoded(n: usize, tag: &str) -> Vec<(Id, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let b = Object::Message(msg(i, tag)).encode();
            (Id::of(&b), b)
        })
        .collect()
}

fn write_pack(dir: &Path, objects: &[(Id, Vec<u8>)]) -> (Id, Vec<u8>) {
    let mut w = PackWriter::create(dir, None, 3).unwrap();
    for (id, b) in objects {
        w.add(*id, b).unwrap();
    }
    let done = w.finish().unwrap();
    let bytes = std::fs::read(&done.tmp).unwrap();
    (done.id, bytes)
}

#[test]
fn golden_pack_rebuilds_byte_for_byte() {
    // Every object of the golden v1 store, in id order, packed with level 3.
    let store = FsStore::open(&fixtures().join("store-v1")).unwrap();
    let objects: Vec<(Id, Vec<u8>)> = store
        .list_objects()
        .unwrap()
        .into_iter()
        .map(|id| (id, store.get_object(&id).unwrap()))
        .collect();
    let t = tempfile::tempdir().unwrap();
    let (id, bytes) = write_pack(t.path(), &objects);
    let golden = fixtures().join("pack-v1.pack");
    if std::env::var_os("REMOTELOG_BLESS").is_some() {
        std::fs::write(&golden, &bytes).unwrap();
        std::fs::write(fixtures().join("pack-v1.id"), format!("{id}\n")).unwrap();
    }
    let want_id = std::fs::read_to_string(fixtures().join("pack-v1.id")).unwrap();
    assert_eq!(format!("{id}\n"), want_id, "pack id changed");
    assert!(
        std::fs::read(&golden).unwrap() == bytes,
        "pack bytes changed"
    );
    // And the committed pack reads with the current code.
    let committed = std::fs::read(&golden).unwrap();
    let p = Pack::parse(&committed[..]).unwrap();
    p.verify_checksum().unwrap();
    assert_eq!(p.len(), objects.len());
    for (oid, b) in &objects {
        assert_eq!(&p.read(oid, p.lookup(oid).unwrap()).unwrap(), b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_id_is_found_and_no_other(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..300),
        absent in prop::collection::vec(any::<[u8; 32]>(), 0..20),
    ) {
        let objects: Vec<(Id, Vec<u8>)> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let b = Object::Message(Message { group_id: vec![], timestamp: i as i64, body }).encode();
                (Id::of(&b), b)
            })
            .collect();
        let t = tempfile::tempdir().unwrap();
        let (id, bytes) = write_pack(t.path(), &objects);
        let p = Pack::parse(&bytes[..]).unwrap();
        prop_assert_eq!(p.recorded_id(), id);
        let distinct: BTreeMap<Id, &Vec<u8>> = objects.iter().map(|(i, b)| (*i, b)).collect();
        prop_assert_eq!(p.len(), distinct.len());
        prop_assert_eq!(p.ids().collect::<Vec<_>>(), distinct.keys().copied().collect::<Vec<_>>());
        for (oid, b) in &distinct {
            let loc = p.lookup(oid).unwrap();
            prop_assert_eq!(&&p.read(oid, loc).unwrap(), b);
        }
        for a in &absent {
            let a = Id(*a);
            if !distinct.contains_key(&a) {
                prop_assert!(p.lookup(&a).is_none());
            }
        }
        // The batched lookup finds exactly what single lookups find.
        let mut queries: Vec<Id> = distinct.keys().copied().step_by(2).collect();
        queries.extend(absent.iter().map(|a| Id(*a)));
        queries.sort();
        let mut batched = Vec::new();
        p.lookup_sorted(&queries, |i, loc| batched.push((queries[i], loc)));
        let single: Vec<_> = queries
            .iter()
            .filter_map(|q| p.lookup(q).map(|loc| (*q, loc)))
            .collect();
        prop_assert_eq!(batched, single);
    }
}

#[test]
fn truncation_and_bit_flips_are_detected_never_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let objects = encoded(400, "flip");
    let (_, bytes) = write_pack(t.path(), &objects);
    // Every truncation is refused at open.
    for len in (0..bytes.len())
        .step_by(97)
        .chain(bytes.len() - 60..bytes.len())
    {
        assert!(
            Pack::parse(&bytes[..len]).is_err(),
            "truncated to {len} accepted"
        );
    }
    // Every flipped bit is caught: by the structure check, the checksum, or the object ids.
    let mut rng = 0x9e3779b97f4a7c15u64;
    for _ in 0..300 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pos = (rng % bytes.len() as u64) as usize;
        let mut bad = bytes.clone();
        bad[pos] ^= 1 << (rng % 8);
        let Ok(p) = Pack::parse(&bad[..]) else {
            continue;
        };
        assert!(
            p.verify_checksum().is_err(),
            "flip at {pos} passed the checksum"
        );
        // Reading every object either fails or yields bytes that fail their id check
        // only where the flip landed; never a panic.
        for (oid, _) in &objects {
            if let Some(loc) = p.lookup(oid) {
                let _ = p.read(oid, loc).map(|b| Id::of(&b) == *oid);
            }
        }
    }
}

#[test]
fn check_names_a_damaged_pack() {
    let t = tempfile::tempdir().unwrap();
    let s = FsStore::init(t.path(), Config::default()).unwrap();
    let msgs: Vec<Message> = (0..500).map(|i| msg(i, "c")).collect();
    log::append(&s, "main", &msgs, SettingsChange::default()).unwrap();
    let packs = s.packs().unwrap();
    assert_eq!(packs.len(), 1, "a bulk append is one pack");
    let path = &packs[0].1;
    let mut bytes = std::fs::read(path).unwrap();
    let pristine = bytes.clone();
    bytes[1000] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
    let out = run(t.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&path.display().to_string()) && stdout.contains("checksum"),
        "{stdout}"
    );
    // An index entry naming a block that does not exist: named as such, not only as a
    // checksum mismatch.
    let mut bad = pristine;
    let t_off = bad.len() - 56;
    let index_offset = u64::from_le_bytes(bad[t_off..t_off + 8].try_into().unwrap()) as usize;
    let blocks = u32::from_le_bytes(bad[index_offset..index_offset + 4].try_into().unwrap());
    let entry = index_offset + 4 + 24 * blocks as usize + 8 + 44 * 7;
    bad[entry + 32..entry + 36].copy_from_slice(&999_999u32.to_le_bytes());
    std::fs::write(path, &bad).unwrap();
    let out = run(t.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("names block 999999"), "{stdout}");
    // Truncated: opening the store names the pack.
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(t.path(), &["log"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn clone_of_a_remote_mixing_loose_objects_and_several_packs() {
    let t = tempfile::tempdir().unwrap();
    let w = FsStore::init(&t.path().join("w"), Config::default()).unwrap();
    let remote_dir = t.path().join("remote");
    let remote = FsStore::init(&remote_dir, Config::default()).unwrap();
    let mut n = 0;
    // Bulk pushes make packs, small ones loose objects, on the remote.
    for (round, size) in [300usize, 3, 200, 1, 150, 2].iter().enumerate() {
        let msgs: Vec<Message> = (n..n + size).map(|i| msg(i, "mix")).collect();
        n += size;
        log::append(&w, "main", &msgs, SettingsChange::default()).unwrap();
        sync::push(&w, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
        let _ = round;
    }
    assert!(remote.packs().unwrap().len() >= 3);
    assert!(!remote.loose_objects().unwrap().is_empty());
    let dest = t.path().join("clone");
    let (c, _) = sync::clone(
        &remote,
        remote_dir.to_str().unwrap(),
        &dest,
        None,
        false,
        &Silent,
    )
    .unwrap();
    assert_eq!(
        log::entries(&c, "main").unwrap(),
        log::entries(&w, "main").unwrap()
    );
    assert!(check::check(&c, true).is_sound());
    assert_eq!(c.packs().unwrap().len(), 1, "a clone writes one pack");
}

#[test]
fn kill_9_during_repack_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    let s = FsStore::init(&dir, Config::default()).unwrap();
    let mut n = 0;
    for size in [2000usize, 5, 1500, 3, 1000] {
        let msgs: Vec<Message> = (n..n + size).map(|i| msg(i, "rk")).collect();
        n += size;
        log::append(&s, "main", &msgs, SettingsChange::default()).unwrap();
    }
    let want: Vec<_> = log::entries(&s, "main").unwrap();
    for delay in [1u64, 5, 15, 30, 60, 120, 250] {
        kill_after(
            bin()
                .arg("--store")
                .arg(&dir)
                .args(["repack", "--quiet", "--target-size", "1"]),
            std::time::Duration::from_millis(delay),
        );
        let out = run(&dir, &["check", "--read-data"]);
        assert!(
            out.status.success(),
            "after kill at {delay} ms: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let s = FsStore::open(&dir).unwrap();
        assert_eq!(log::entries(&s, "main").unwrap(), want);
        // Add a little between rounds so there is always something to repack.
        log::append(
            &s,
            "other",
            &[msg(delay as usize, "between")],
            SettingsChange::default(),
        )
        .unwrap();
    }
    let out = run(&dir, &["repack", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packs_after"], 1);
    let s = FsStore::open(&dir).unwrap();
    assert!(s.loose_objects().unwrap().is_empty());
    assert_eq!(log::entries(&s, "main").unwrap(), want);
    assert!(check::check(&s, true).is_sound());
}

/// Regression: whole-block copies once trusted the block checksum alone, so a pack whose
/// index lied about which bytes are which object was cloned without complaint.
#[test]
fn clone_verifies_objects_inside_blocks_copied_whole() {
    let t = tempfile::tempdir().unwrap();
    let w = FsStore::init(&t.path().join("w"), Config::default()).unwrap();
    let remote_dir = t.path().join("remote");
    let remote = FsStore::init(&remote_dir, Config::default()).unwrap();
    let msgs: Vec<Message> = (0..100).map(|i| msg(i, "tamper")).collect();
    log::append(&w, "main", &msgs, SettingsChange::default()).unwrap();
    sync::push(&w, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    let (old_id, path, _) = remote.packs().unwrap().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    // Swap the locations of the first two index entries that share a block, then make
    // the file consistent again: new trailer checksum, new name, refs/packs moved.
    let p = Pack::parse(&bytes[..]).unwrap();
    let by_block = p.objects_by_block().unwrap();
    let victims = by_block.iter().find(|b| b.len() >= 2).unwrap();
    let (a, b) = (victims[0].0, victims[1].0);
    let pos = |id: &Id| (0..p.len()).find(|i| p.entry(*i).0 == *id).unwrap();
    let t_off = bytes.len() - 56;
    let index_offset = u64::from_le_bytes(bytes[t_off..t_off + 8].try_into().unwrap()) as usize;
    let objects_at = index_offset + 4 + 24 * p.block_count() + 8;
    let (ia, ib) = (
        objects_at + 44 * pos(&a) + 32,
        objects_at + 44 * pos(&b) + 32,
    );
    drop(p);
    for k in 0..12 {
        bytes.swap(ia + k, ib + k);
    }
    let n = bytes.len();
    let sum = *blake3::hash(&bytes[..n - 32]).as_bytes();
    bytes[n - 32..].copy_from_slice(&sum);
    let new_id = Id(sum);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(remote.pack_path(&new_id), &bytes).unwrap();
    let packs_ref = remotelog::model::name::RefName::parse("packs").unwrap();
    remote
        .update_ref(&packs_ref, Expected::Equal(old_id), Some(new_id))
        .unwrap();

    let out = run(&remote_dir, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "check must see the lie");
    let dest = t.path().join("clone");
    let out = bin()
        .args([
            "clone",
            remote_dir.to_str().unwrap(),
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "clone must refuse");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&a.to_hex()) || err.contains(&b.to_hex()),
        "{err}"
    );
    assert!(!dest.exists());
}

fn big_msg(i: usize, tag: &str) -> Message {
    let mut m = msg(i, tag);
    // Distinct, poorly compressible bodies of ~2 KB fill blocks quickly.
    let mut x = (i as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15);
    for _ in 0..250 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.body.extend_from_slice(&x.to_le_bytes());
    }
    m
}

/// A batch bigger than its store's pack target becomes several packs, each committed as it
/// fills; a copy in chunks much smaller than a block (so blocks straddle chunks) still
/// delivers every message, whole blocks where it can.
#[test]
fn batches_roll_over_into_packs_and_chunked_copies_are_complete() {
    let t = tempfile::tempdir().unwrap();
    let w = FsStore::init(&t.path().join("w"), Config::default()).unwrap();
    let msgs: Vec<Message> = (0..1500).map(|i| big_msg(i, "roll")).collect();
    log::append(&w, "main", &msgs, SettingsChange::default()).unwrap();
    let remote = FsStore::init(&t.path().join("remote"), Config::default())
        .unwrap()
        .with_pack_target(128 << 10);
    let pushed = sync::push(&w, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    let packs = remote.packs().unwrap();
    // A writer counts bytes not yet compressed at a third, so a pack of these
    // incompressible messages closes by 384 KiB of them at the latest, however slow the
    // compressor threads: at least 8 packs for ~3.4 MB.
    assert!(
        packs.len() >= 5,
        "{} packs for ~3.4 MB at 128 KiB",
        packs.len()
    );
    assert_eq!(
        packs.iter().map(|p| p.2 as u64).sum::<u64>(),
        pushed.copied.objects,
        "every object is in exactly one pack"
    );
    assert!(check::check(&remote, true).is_sound());
    assert_eq!(
        log::entries(&remote, "main").unwrap(),
        log::entries(&w, "main").unwrap()
    );
    assert_packs_in_safe_order(&remote);

    for chunk in [1, 7, 100, 10_000] {
        let dst = FsStore::init(&t.path().join(format!("d{chunk}")), Config::default()).unwrap();
        let head = remote
            .read_ref(&remotelog::model::name::RefName::log("main").unwrap())
            .unwrap()
            .unwrap();
        let c = sync::copy_log_in_chunks(
            &remote,
            &dst,
            head,
            chunk,
            sync::Stop::AtPresentPage,
            &Silent,
        )
        .unwrap();
        assert_eq!(c.objects, pushed.copied.objects, "chunk {chunk}");
        // Messages are read once; pages once, or twice where they exceed what a small
        // chunk keeps in memory until the end.
        assert!(
            c.objects_read >= c.objects && c.objects_read <= c.objects + c.pages_read,
            "chunk {chunk}: {c:?}"
        );
        assert_eq!(
            c.objects_read > c.objects,
            chunk <= 100,
            "chunk {chunk}: {c:?}"
        );
        if chunk >= 100 {
            assert!(c.blocks_copied > 0, "chunk {chunk}: no block copied whole");
        }
        dst.update_ref(
            &remotelog::model::name::RefName::log("main").unwrap(),
            Expected::Absent,
            Some(head),
        )
        .unwrap();
        assert!(check::check(&dst, true).is_sound(), "chunk {chunk}");
        assert_eq!(
            log::entries(&dst, "main").unwrap(),
            log::entries(&w, "main").unwrap()
        );
    }
}

/// An incremental push finds the new objects through index lookups and copies the blocks
/// that hold only them whole, reading nothing twice.
#[test]
fn incremental_push_copies_new_blocks_whole() {
    let t = tempfile::tempdir().unwrap();
    let w = FsStore::init(&t.path().join("w"), Config::default()).unwrap();
    let remote = FsStore::init(&t.path().join("remote"), Config::default()).unwrap();
    let first: Vec<Message> = (0..1000).map(|i| big_msg(i, "inc")).collect();
    log::append(&w, "main", &first, SettingsChange::default()).unwrap();
    sync::push(&w, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    let more: Vec<Message> = (1000..2000).map(|i| big_msg(i, "inc")).collect();
    log::append(&w, "main", &more, SettingsChange::default()).unwrap();
    let r = sync::push(&w, "origin", &remote, "main", sync::Force::No, &Silent).unwrap();
    let c = r.copied;
    // ~2 MB of new messages: several 256 KiB blocks, all of them new.
    assert!(c.blocks_copied >= 4, "{c:?}");
    assert_eq!(c.objects_read, c.objects, "{c:?}");
    assert_eq!(c.objects, 1000 + c.pages_read, "{c:?}");
    assert_eq!(
        log::entries(&remote, "main").unwrap(),
        log::entries(&w, "main").unwrap()
    );
    assert!(check::check(&remote, true).is_sound());
}

/// Opening a pack checks its block table only; a damaged index entry is caught when it is
/// used (an error, never a panic) and by the full index check that `check` runs.
#[test]
fn index_entries_are_checked_when_used_and_by_check() {
    let t = tempfile::tempdir().unwrap();
    let objects = encoded(50, "idx");
    let (_, bytes) = write_pack(t.path(), &objects);
    let p = Pack::parse(&bytes[..]).unwrap();
    p.validate_index().unwrap();
    let objects_at = {
        let t_off = bytes.len() - 56;
        let index_offset = u64::from_le_bytes(bytes[t_off..t_off + 8].try_into().unwrap());
        index_offset as usize + 4 + 24 * p.block_count() + 8
    };
    let (victim, _) = p.entry(3);
    drop(p);

    // Entry 3 names a block that does not exist.
    let mut bad = bytes.clone();
    bad[objects_at + 44 * 3 + 32..objects_at + 44 * 3 + 36].copy_from_slice(&99u32.to_le_bytes());
    let p = Pack::parse(&bad[..]).expect("opening does not read every entry");
    let loc = p.lookup(&victim).unwrap();
    let e = p.read(&victim, loc).unwrap_err();
    assert!(e.reason.contains("block 99"), "{e}");
    let e = p.validate_index().unwrap_err();
    assert!(e.reason.contains(&victim.to_hex()), "{e}");
    assert!(p.objects_by_block().is_err());

    // Entries 3 and 4 swapped: out of order.
    let mut bad = bytes.clone();
    for k in 0..44 {
        bad.swap(objects_at + 44 * 3 + k, objects_at + 44 * 4 + k);
    }
    let p = Pack::parse(&bad[..]).unwrap();
    let e = p.validate_index().unwrap_err();
    assert!(e.reason.contains("out of order"), "{e}");
}

/// Lookups search a table of 4-byte id prefixes and confirm in the index: ids that share
/// a prefix (1 in 4 billion for two hashes, so this test writes a pack by hand) are told
/// apart, and an absent id with a present prefix is not found.
#[test]
fn lookups_tell_apart_ids_sharing_a_prefix() {
    let id = |prefix: u32, tail: u8| {
        let mut b = [tail; 32];
        b[..4].copy_from_slice(&prefix.to_be_bytes());
        Id(b)
    };
    let ids = [
        id(1, 1),
        id(7, 1),
        id(7, 2),
        id(7, 9),
        id(8, 0),
        id(u32::MAX, 5),
    ];
    let data = vec![0x5au8; 10 * ids.len()];
    let frame = zstd::bulk::compress(&data, 3).unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(b"RLOGPACK");
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&[0u8; 32]);
    f.extend_from_slice(&frame);
    let index_offset = f.len() as u64;
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&48u64.to_le_bytes());
    f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(&blake3::hash(&frame).as_bytes()[..8]);
    f.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for (k, i) in ids.iter().enumerate() {
        f.extend_from_slice(&i.0);
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(10 * k as u32).to_le_bytes());
        f.extend_from_slice(&10u32.to_le_bytes());
    }
    let index_len = f.len() as u64 - index_offset;
    f.extend_from_slice(&index_offset.to_le_bytes());
    f.extend_from_slice(&index_len.to_le_bytes());
    f.extend_from_slice(b"RLOGPEND");
    let sum = *blake3::hash(&f).as_bytes();
    f.extend_from_slice(&sum);

    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("hand.pack");
    std::fs::write(&path, &f).unwrap();
    // Both ways of reading: from bytes, and the store's way (entries read from the file).
    let from_bytes = Pack::parse(&f[..]).unwrap();
    let from_file = Pack::parse(&f[..])
        .unwrap()
        .read_frames_from(std::fs::File::open(&path).unwrap())
        .unwrap();
    // An index that cannot be read is an error when the pack is opened, not objects that
    // seem missing later (here: a file opened for writing only).
    let write_only = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let e = Pack::parse(&f[..])
        .unwrap()
        .read_frames_from(write_only)
        .err()
        .unwrap();
    assert!(e.reason.contains("index cannot be read"), "{e}");
    for p in [&from_bytes, &from_file] {
        p.verify_checksum().unwrap();
        p.validate_index().unwrap();
        for (k, i) in ids.iter().enumerate() {
            assert_eq!(p.lookup(i).map(|l| l.offset), Some(10 * k as u32), "{i}");
        }
        let absent = [
            id(0, 0),
            id(7, 0),
            id(7, 5),
            id(7, 10),
            id(9, 9),
            id(u32::MAX, 6),
        ];
        for a in &absent {
            assert!(p.lookup(a).is_none(), "{a}");
        }
        let mut all: Vec<Id> = ids.iter().chain(absent.iter()).copied().collect();
        all.sort();
        let mut hits = Vec::new();
        p.lookup_sorted(&all, |k, loc| hits.push((all[k], loc.offset)));
        let want: Vec<(Id, u32)> = ids
            .iter()
            .enumerate()
            .map(|(k, i)| (*i, 10 * k as u32))
            .collect();
        assert_eq!(hits, want);
    }
}

/// Asserts that every page in each pack of `store` has its messages and its previous page
/// in the same pack or an older one: what makes a transfer that stops at the first page the
/// destination has (after a crash between two packs of one batch) correct.
fn assert_packs_in_safe_order(store: &FsStore) {
    let mut older: std::collections::HashSet<Id> = Default::default();
    let mut pages = 0;
    for (_, path, _) in store.packs().unwrap().into_iter().rev() {
        let bytes = std::fs::read(&path).unwrap();
        let p = Pack::parse(&bytes[..]).unwrap();
        let here: std::collections::HashSet<Id> = p.ids().collect();
        for id in &here {
            let loc = p.lookup(id).unwrap();
            if let Ok(Object::Page(page)) = Object::decode(&p.read(id, loc).unwrap()) {
                pages += 1;
                let known = |x: &Id| here.contains(x) || older.contains(x);
                for e in &page.entries {
                    assert!(
                        known(&e.h2),
                        "page {id} in {path:?} before message {}",
                        e.h2
                    );
                }
                if let Some(prev) = page.prev {
                    assert!(known(&prev), "page {id} in {path:?} before its prev {prev}");
                }
            }
        }
        older.extend(here);
    }
    assert!(pages > 0);
}

/// A transfer that fails half way, after its batch committed some packs (as a crash between
/// two packs would), leaves nothing that misleads the next one: the retry stops only at a
/// page whose messages and older pages are all there, so the log it delivers is complete.
#[test]
fn a_transfer_cut_between_packs_is_completed_by_the_next() {
    let t = tempfile::tempdir().unwrap();
    let w = FsStore::init(&t.path().join("w"), Config::default()).unwrap();
    let msgs: Vec<Message> = (0..1500).map(|i| big_msg(i, "cut")).collect();
    log::append(&w, "main", &msgs, SettingsChange::default()).unwrap();
    let main = remotelog::model::name::RefName::log("main").unwrap();
    let head = w.read_ref(&main).unwrap().unwrap();
    for cut in [300u64, 700, 1400] {
        let dst = FsStore::init(&t.path().join(format!("d{cut}")), Config::default())
            .unwrap()
            .with_pack_target(128 << 10);
        let failing = common::Counting::failing_after(&w, cut);
        assert!(sync::copy_log(&failing, &dst, head, &Silent).is_err());
        assert!(
            !dst.packs().unwrap().is_empty(),
            "cut at {cut}: packs were committed before the failure"
        );
        sync::copy_log(&w, &dst, head, &Silent).unwrap();
        dst.update_ref(&main, Expected::Absent, Some(head)).unwrap();
        assert!(check::check(&dst, true).is_sound(), "cut at {cut}");
        assert_eq!(
            log::entries(&dst, "main").unwrap(),
            log::entries(&w, "main").unwrap(),
            "cut at {cut}"
        );
    }
}

/// A copied block whose bytes do not decode is a pack decode error naming the block, not
/// plain bad input.
#[test]
fn a_copied_block_that_does_not_decompress_is_a_pack_decode_error() {
    use remotelog::error::{DecodeError, Error, Format};
    let block = remotelog::store::RawBlock {
        frame: b"not a zstd frame".to_vec(),
        ulen: 64,
        checksum: [0; 8],
        objects: Vec::new(),
    };
    let e = block.for_each_verified(|_, _| Ok(())).unwrap_err();
    assert!(
        matches!(&e, Error::Decode { what, source: DecodeError { format: Format::Pack, .. } }
            if what == "a copied block"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("a copied block: does not decompress"),
        "{e}"
    );
}

/// Bytes `first..=last` of `bytes`, clamped to its end as a short answer would be.
fn range_of(bytes: &[u8], first: u64, last: u64) -> Vec<u8> {
    let end = (last.saturating_add(1) as usize).min(bytes.len());
    bytes.get(first as usize..end).unwrap_or_default().to_vec()
}

#[test]
fn sparse_copy_fetches_header_index_and_trailer_only() {
    let t = tempfile::tempdir().unwrap();
    let objects = encoded(50, "sparse");
    let (id, bytes) = write_pack(t.path(), &objects);
    let size = bytes.len() as u64;
    let name = Path::new("http://remote/packs/p");
    let mut asked = Vec::new();
    let path = t.path().join("copy.pack");
    remotelog::pack::sparse_copy(name, &path, size, None, |first, last| {
        asked.push((first, last));
        Ok(range_of(&bytes, first, last))
    })
    .unwrap();
    // Trailer, header, index: the blocks are not fetched.
    let tail = size - remotelog::pack::TRAILER_LEN as u64;
    let (offset, len) = remotelog::pack::index_span(&bytes[tail as usize..], size).unwrap();
    let header = (0, remotelog::pack::HEADER_LEN as u64 - 1);
    assert_eq!(
        asked,
        [(tail, size - 1), header, (offset, offset + len - 1)]
    );
    assert!(
        offset > remotelog::pack::HEADER_LEN as u64,
        "a pack with no block"
    );
    let copy = remotelog::pack::open_copy(name, &path, &id).unwrap();
    let whole = Pack::parse(bytes.clone()).unwrap();
    let want: std::collections::BTreeSet<Id> = objects.iter().map(|(id, _)| *id).collect();
    assert_eq!(copy.ids().collect::<std::collections::BTreeSet<_>>(), want);
    for (oid, _) in &objects {
        assert_eq!(copy.lookup(oid), whole.lookup(oid));
    }
    // A trailer read already (with the size) is not asked for again.
    let trailer = bytes[bytes.len() - remotelog::pack::TRAILER_LEN..].to_vec();
    let mut asked = 0;
    remotelog::pack::sparse_copy(name, &path, size, Some(trailer), |first, last| {
        asked += 1;
        Ok(range_of(&bytes, first, last))
    })
    .unwrap();
    assert_eq!(asked, 2);
    assert_eq!(
        remotelog::pack::open_copy(name, &path, &id).unwrap().len(),
        50
    );
}

#[test]
fn sparse_copy_of_a_lying_remote_is_an_error_naming_the_pack() {
    use remotelog::pack::{open_copy, sparse_copy, TRAILER_LEN};
    let t = tempfile::tempdir().unwrap();
    let (id, bytes) = write_pack(t.path(), &encoded(20, "liar"));
    let size = bytes.len() as u64;
    let tail = size - TRAILER_LEN as u64;
    let name = Path::new("s3://bucket/log/packs/p");
    let path = t.path().join("copy.pack");
    let names_the_pack = |what: &str, r: remotelog::Result<()>| match r {
        Err(e @ remotelog::Error::BadPack { .. }) => {
            assert!(
                e.to_string().contains(name.to_str().unwrap()),
                "{what}: {e}"
            );
        }
        Err(e) => panic!("{what}: not a bad pack: {e}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    // A trailer one byte short.
    let r = sparse_copy(name, &path, size, None, |f, l| {
        let mut b = range_of(&bytes, f, l);
        if f == tail {
            b.pop();
        }
        Ok(b)
    });
    names_the_pack("short trailer", r.map(drop));
    // A trailer given with the size, one byte short.
    let short = bytes[bytes.len() - TRAILER_LEN + 1..].to_vec();
    let r = sparse_copy(name, &path, size, Some(short), |f, l| {
        Ok(range_of(&bytes, f, l))
    });
    names_the_pack("short given trailer", r.map(drop));
    // An index span that lies: starts inside the header, or runs past the trailer.
    for (offset, len) in [(8u64, tail - 8), (64, tail), (u64::MAX, 2)] {
        let r = sparse_copy(name, &path, size, None, |f, l| {
            let mut b = range_of(&bytes, f, l);
            if f == tail && b.len() == TRAILER_LEN {
                b[..8].copy_from_slice(&offset.to_le_bytes());
                b[8..16].copy_from_slice(&len.to_le_bytes());
            }
            Ok(b)
        });
        names_the_pack(&format!("index span {offset}+{len}"), r.map(drop));
    }
    // A size larger than the object: every range past its end comes back short.
    let r = sparse_copy(name, &path, size + 1000, None, |f, l| {
        Ok(range_of(&bytes, f, l))
    });
    names_the_pack("size past the end", r.map(drop));
    // A remote that ignores ranges and sends the whole pack.
    let r = sparse_copy(name, &path, size, None, |_, _| Ok(bytes.clone()));
    names_the_pack("whole answer to a range", r.map(drop));
    // Too short to be a pack at all: nothing is asked.
    let r = sparse_copy(
        name,
        &path,
        10,
        None,
        |_, _| -> remotelog::Result<Vec<u8>> { panic!("asked for a range of a 10-byte pack") },
    );
    names_the_pack("10 bytes", r.map(drop));
    // A copy whose trailer names another pack.
    sparse_copy(name, &path, size, None, |f, l| Ok(range_of(&bytes, f, l))).unwrap();
    names_the_pack("another id", open_copy(name, &path, &Id([7; 32])).map(drop));
    assert!(open_copy(name, &path, &id).is_ok());
}
