//! The fuzz targets (`fuzz/src/targets/`) as plain tests: each target's body runs over
//! every file of its committed corpus `fuzz/corpus/<target>/` (seeds from `fixtures/`,
//! hand-made edge cases, and every input a fuzzer found a bug with). No fuzzer is needed;
//! `fuzz/run.sh TARGET` fuzzes one target continuously (see `fuzz/README.md`).

#[path = "../fuzz/src/targets/mod.rs"]
mod targets;

mod common;

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `target` over its corpus; fails naming every input it panicked on.
fn run_corpus(target: &str) {
    let (_, run) = targets::ALL
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target of that name");
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: too few inputs", dir.display());
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "target {target} failed on {} of {} inputs: {failed:?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let mut dirs: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"))
            .expect("fuzz/corpus")
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
    dirs.sort();
    let names: Vec<&str> = targets::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(dirs, names);
}

#[test]
fn config_corpus() {
    run_corpus("config");
}

#[test]
fn names_corpus() {
    run_corpus("names");
}

#[test]
fn object_corpus() {
    run_corpus("object");
}

#[test]
fn pack_corpus() {
    run_corpus("pack");
}

#[test]
fn remotes_corpus() {
    run_corpus("remotes");
}

#[test]
fn server_corpus() {
    run_corpus("server");
}

#[test]
fn spec_corpus() {
    run_corpus("spec");
}

#[test]
fn twirp_corpus() {
    run_corpus("twirp");
}

// ---------------------------------------------------------------------------------------
// What the fuzzers found, as the CLI shows it (the inputs are in the corpus too).

/// The remotes file holds one remote per line: `remote add` with a location holding a
/// newline used to write a second line, a remote nobody added (found by the `remotes`
/// target as a location that did not survive render → parse).
#[test]
fn remote_add_refuses_a_location_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s");
    common::store(&s);
    let evil = dir.path().join("x\nevil = /tmp/evil");
    let o = common::run(&s, &["remote", "add", "backup", evil.to_str().unwrap()]);
    common::fails_with(&o, &["control character", "rename the directory"]);
    let list = common::ok(&s, &["remote", "list"]);
    assert!(!list.contains("evil"), "a remote nobody added: {list}");
    // A file with such a location (edited by hand) is refused, naming it.
    std::fs::write(s.join("remotes"), "remotelog-remotes\norigin = /x\r").unwrap();
    let o = common::run(&s, &["remote", "list"]);
    common::fails_with(&o, &["remotes", "control character"]);
}

// ---------------------------------------------------------------------------------------
// The seeds: made from `fixtures/` and by hand, checked to be in the corpus byte for byte.

/// `FUZZ_WRITE_SEEDS=1 cargo test --test fuzz_corpus` writes the seeds into the corpus.
#[test]
fn corpus_holds_the_seeds() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    let seeds = seeds();
    assert!(seeds.len() > 100);
    for (target, name, bytes) in seeds {
        let path = corpus_dir(target).join(&name);
        if write {
            std::fs::create_dir_all(corpus_dir(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let have = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("seed {}: {e}; FUZZ_WRITE_SEEDS=1 writes it", path.display())
        });
        assert!(
            have == bytes,
            "seed {} differs from what the fixtures make; FUZZ_WRITE_SEEDS=1 rewrites it",
            path.display()
        );
    }
}

type Seed = (&'static str, String, Vec<u8>);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Flips bit `bit` of byte `at`.
fn flip(bytes: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 1 << bit;
    b
}

/// A pack with its trailer checksum recomputed after an edit, so that it gets past the
/// checksum to the damage.
fn rechecksum(mut pack: Vec<u8>) -> Vec<u8> {
    let t = pack.len() - 32;
    let id = blake3::hash(&pack[..t]);
    pack[t..].copy_from_slice(id.as_bytes());
    pack
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    object_seeds(&mut out);
    pack_seeds(&mut out);
    text_seeds(&mut out);
    spec_seeds(&mut out);
    server_seeds(&mut out);
    twirp_seeds(&mut out);
    out
}

/// Every object of the golden store and the golden pack, decompressed.
fn fixture_objects() -> Vec<(remotelog::Id, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(fixtures().join("store-v1/objects")).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let bytes =
                remotelog::store::dir::decompress(&std::fs::read(e.path()).unwrap()).unwrap();
            out.push((remotelog::Id::of(&bytes), bytes));
        }
    }
    let pack = std::fs::read(fixtures().join("pack-v1.pack")).unwrap();
    let p = remotelog::pack::Pack::parse(&pack[..]).unwrap();
    for i in 0..p.len() {
        let (id, loc) = p.entry(i);
        out.push((id, p.read(&id, loc).unwrap()));
    }
    out.sort();
    out.dedup();
    out
}

fn object_seeds(out: &mut Vec<Seed>) {
    use remotelog::model::object::{encode_message, peek_kind, Kind};
    let objects = fixture_objects();
    for (id, bytes) in &objects {
        out.push((
            "object",
            format!("fixture-{}", &id.to_hex()[..16]),
            bytes.clone(),
        ));
    }
    let page = &objects
        .iter()
        .filter(|(_, b)| peek_kind(b) == Some(Kind::Page))
        .max_by_key(|(_, b)| b.len())
        .unwrap()
        .1;
    let message = &objects
        .iter()
        .find(|(_, b)| peek_kind(b) == Some(Kind::Message))
        .unwrap()
        .1;
    let mut edge: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("page-truncated", page[..page.len() / 2].to_vec()),
        ("page-bitflip-count", flip(page, 40, 0)),
        ("page-bitflip-tail", flip(page, page.len() - 3, 5)),
        ("page-trailing-byte", [page.as_slice(), &[0]].concat()),
        ("message-truncated", message[..message.len() - 1].to_vec()),
        ("message-bitflip-kind", flip(message, 2, 1)),
        // 1 as a one-byte-length uint: not the shortest form.
        (
            "message-non-canonical",
            vec![0x85, 0x18, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40],
        ),
        // An indefinite-length array.
        (
            "message-indefinite",
            vec![0x9f, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40, 0xff],
        ),
        ("unknown-kind", vec![0x83, 0x01, 0x09, 0x00]),
        (
            "newer-version",
            vec![0x85, 0x02, 0x01, 0x41, 0xaa, 0x20, 0x40],
        ),
        // A page claiming 2^32-1 entries in 12 bytes.
        (
            "page-huge-count",
            vec![
                0x87, 0x01, 0x02, 0xf6, 0x05, 0x00, 0x00, 0x9a, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        // A message whose byte string claims 2^64-1 bytes.
        (
            "message-huge-bytes",
            vec![
                0x85, 0x01, 0x01, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
    ];
    edge.push((
        "message-extremes",
        encode_message(&remotelog::Message {
            group_id: vec![],
            timestamp: i64::MIN,
            body: vec![0; 300],
        }),
    ));
    for (name, bytes) in edge {
        out.push(("object", name.to_string(), bytes));
    }
}

fn pack_seeds(out: &mut Vec<Seed>) {
    use remotelog::pack::{PackWriter, HEADER_LEN, TRAILER_LEN};
    let golden = std::fs::read(fixtures().join("pack-v1.pack")).unwrap();
    let t = golden.len() - TRAILER_LEN;
    let index = u64::from_le_bytes(golden[t..t + 8].try_into().unwrap()) as usize;
    let blocks = u32::from_le_bytes(golden[index..index + 4].try_into().unwrap()) as usize;
    let block0 = index + 4;
    let objects_at = block0 + blocks * 24 + 8;
    let mut edge: Vec<(&str, Vec<u8>)> = vec![
        ("fixture-pack-v1", golden.clone()),
        ("truncated-by-one", golden[..golden.len() - 1].to_vec()),
        (
            "header-and-trailer-only",
            [&golden[..HEADER_LEN], &golden[t..]].concat(),
        ),
        ("bitflip-version", flip(&golden, 8, 1)),
        ("bitflip-first-frame", flip(&golden, HEADER_LEN + 10, 3)),
        ("bitflip-trailer-magic", flip(&golden, t + 17, 0)),
    ];
    let mut b = golden.clone();
    put_u32(&mut b, index, u32::MAX);
    edge.push(("huge-block-count", b));
    let mut b = golden.clone();
    put_u64(&mut b, objects_at - 8, u64::MAX / 2);
    edge.push(("huge-object-count", b));
    let mut b = golden.clone();
    put_u32(&mut b, block0 + 8, u32::MAX);
    edge.push(("block-clen-past-index", b));
    let mut b = golden.clone();
    put_u32(&mut b, block0 + 12, 1 << 30);
    edge.push(("block-ulen-huge", b));
    let mut b = golden.clone();
    put_u32(
        &mut b,
        block0 + 12,
        u32::from_le_bytes(golden[block0 + 12..block0 + 16].try_into().unwrap()) + 1,
    );
    edge.push(("block-ulen-lies", rechecksum(b)));
    let mut b = golden.clone();
    put_u32(&mut b, objects_at + 32, blocks as u32);
    edge.push(("entry-names-missing-block", rechecksum(b)));
    let mut b = golden.clone();
    put_u32(&mut b, objects_at + 40, u32::MAX);
    edge.push(("entry-past-its-block", rechecksum(b)));
    let mut b = golden.clone();
    let (e0, e1) = (objects_at, objects_at + 44);
    let first: Vec<u8> = b[e0..e1].to_vec();
    b.copy_within(e1..e1 + 44, e0);
    b[e1..e1 + 44].copy_from_slice(&first);
    edge.push(("entries-out-of-order", rechecksum(b)));
    let mut b = golden.clone();
    b[HEADER_LEN + 5] ^= 0x40;
    edge.push(("frame-damaged-rechecksummed", rechecksum(b)));

    // Packs as the writer makes them: pages and messages in separate blocks; empty.
    let dir = tempfile::tempdir().unwrap();
    let mut w = PackWriter::create(dir.path(), None, 3).unwrap();
    for (id, bytes) in fixture_objects().iter().take(12) {
        w.add(*id, bytes).unwrap();
    }
    let done = w.finish().unwrap();
    edge.push(("written-two-streams", std::fs::read(&done.tmp).unwrap()));
    let done = PackWriter::create(dir.path(), Some(remotelog::Id([7; 32])), 3)
        .unwrap()
        .finish()
        .unwrap();
    edge.push(("written-empty-chained", std::fs::read(&done.tmp).unwrap()));
    for (name, bytes) in edge {
        out.push(("pack", name.to_string(), bytes));
    }
}

fn text_seeds(out: &mut Vec<Seed>) {
    let config = std::fs::read(fixtures().join("store-v1/config")).unwrap();
    let configs: Vec<(&str, Vec<u8>)> = vec![
        ("fixture", config),
        (
            "default",
            remotelog::store::config::Config::default()
                .render()
                .into_bytes(),
        ),
        ("newer", b"remotelog-store\nformat-version = 3\n".to_vec()),
        (
            "version-zero",
            b"remotelog-store\nformat-version = 0\n".to_vec(),
        ),
        (
            "version-plus",
            b"remotelog-store\nformat-version = +1\nzstd-level = 22\n".to_vec(),
        ),
        (
            "zstd-out-of-range",
            b"remotelog-store\nformat-version = 1\nzstd-level = 99\n".to_vec(),
        ),
        ("no-version", b"remotelog-store\n\n  \n".to_vec()),
        (
            "unknown-key",
            b"remotelog-store\nformat-version = 1\ncolour = red\n".to_vec(),
        ),
        ("no-equals", b"remotelog-store\nformat-version 1\n".to_vec()),
        (
            "crlf",
            b"remotelog-store\r\nformat-version = 1\r\n".to_vec(),
        ),
        ("not-a-config", b"hello\n".to_vec()),
        ("empty", vec![]),
    ];
    for (name, bytes) in configs {
        out.push(("config", name.to_string(), bytes));
    }

    let mut names: Vec<(String, Vec<u8>)> = Vec::new();
    for e in walkdir::WalkDir::new(fixtures().join("store-v1/refs")).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(fixtures().join("store-v1/refs"))
                .unwrap();
            let rel = rel.to_string_lossy().replace('/', "-");
            names.push((
                format!("fixture-ref-{rel}"),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    let hex = remotelog::Id::of(b"x").to_hex();
    let long = ["a"; 100].join("/");
    for (name, text) in [
        ("ref-no-newline", hex.clone()),
        ("ref-crlf", format!("{hex}\r\n")),
        ("ref-upper", hex.to_uppercase()),
        ("ref-short", hex[..63].to_string()),
        ("log", "main".to_string()),
        ("nested", "logs/team/replicated".to_string()),
        ("dotdot", "logs/../x".to_string()),
        ("empty-segment", "a//b".to_string()),
        ("absolute", "/etc/passwd".to_string()),
        ("lock", "logs/x.lock".to_string()),
        ("hidden", ".hidden".to_string()),
        ("longest", format!("{long}a")),
        ("too-long", format!("{long}/a")),
        ("long-segment", "a".repeat(65)),
        ("unicode", "ü/ß".to_string()),
        ("backslash", "a\\b".to_string()),
        ("tracking", "origin\tteam/chat".to_string()),
        ("tracking-bad-remote", "ori/gin\tmain".to_string()),
    ] {
        names.push((name.to_string(), text.into_bytes()));
    }
    for (name, bytes) in names {
        out.push(("names", name, bytes));
    }

    let remotes: Vec<(&str, &[u8])> = vec![
        (
            "two",
            b"remotelog-remotes\norigin = /srv/remote\nbackup = http://127.0.0.1:8001\n",
        ),
        ("blank-lines", b"remotelog-remotes\n\n   \norigin = /x\n"),
        ("empty-location", b"remotelog-remotes\norigin = \n"),
        (
            "location-with-equals",
            b"remotelog-remotes\norigin = a = b\n",
        ),
        ("nested-name", b"remotelog-remotes\na/b = /x\n"),
        ("no-separator", b"remotelog-remotes\norigin=/x\n"),
        ("only-magic", b"remotelog-remotes\n"),
        ("no-magic", b"origin = /x\n"),
        ("empty", b""),
    ];
    for (name, bytes) in remotes {
        out.push(("remotes", name.to_string(), bytes.to_vec()));
    }
}

fn spec_seeds(out: &mut Vec<Seed>) {
    use prost::Message as _;
    use remotelog::spec::{self, Pair, RemoteLog};
    let m = remotelog::Message {
        group_id: b"team".to_vec(),
        timestamp: -5,
        body: b"hello".to_vec(),
    };
    let payload = spec::payload(&m);
    let pair = |data: Vec<u8>| Pair {
        remote_hash: remotelog::Id::of(&data).0.to_vec(),
        local_hash: m.h1().0.to_vec(),
        data,
    };
    let page = RemoteLog {
        pair: vec![pair(payload.clone()), pair(vec![])],
        tail: remotelog::Id::of(b"older page").0.to_vec(),
    };
    let short = RemoteLog {
        pair: vec![Pair {
            remote_hash: vec![1; 31],
            local_hash: vec![2; 32],
            data: vec![],
        }],
        tail: vec![],
    };
    let id = |s: &[u8]| remotelog::Id::of(s).to_hex();
    let record = format!(
        "remotelog-import 1\nsource http://127.0.0.1:8001\nname chat\nhead {}\ntail -\npairs 2\nnewest {}\nlocal {}\n",
        id(b"h"),
        id(b"n"),
        id(b"l")
    );
    // spec-view/index-v1 records: kind, native id, spec address, first 8 bytes of the
    // BLAKE3 of the rest.
    let view_record = |kind: u8, seed: &[u8]| {
        let mut r = vec![kind];
        r.extend_from_slice(&remotelog::Id::of(seed).0);
        r.extend_from_slice(&remotelog::Id::of(&[seed, b"spec"].concat()).0);
        let check = blake3::hash(&r);
        r.extend_from_slice(&check.as_bytes()[..8]);
        r
    };
    let index = [
        view_record(1, b"a"),
        view_record(2, b"b"),
        view_record(3, b"c"),
    ]
    .concat();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("payload", payload.clone()),
        ("payload-truncated", payload[..payload.len() - 2].to_vec()),
        ("remote-log-page", page.encode_to_vec()),
        ("remote-log-short-hash", short.encode_to_vec()),
        ("remote-log-empty", RemoteLog::default().encode_to_vec()),
        ("import-record", record.clone().into_bytes()),
        (
            "import-record-missing-key",
            record.replace("pairs 2\n", "").into_bytes(),
        ),
        (
            "import-record-bad-magic",
            record.replace("import 1", "import 2").into_bytes(),
        ),
        ("view-index", index.clone()),
        ("view-index-torn", index[..index.len() - 30].to_vec()),
        ("view-index-bitflip", flip(&index, 80, 2)),
    ];
    for (name, bytes) in seeds {
        out.push(("spec", name.to_string(), bytes));
    }
}

fn server_seeds(out: &mut Vec<Seed>) {
    let hex = remotelog::Id::of(b"x").to_hex();
    let with = |pick: &[u8], rest: &[u8]| [pick, rest].concat();
    let len = 2613u64.to_le_bytes();
    let range = |v: &str| with(&[3], &[&len[..], v.as_bytes()].concat());
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("id", with(&[0], hex.as_bytes())),
        ("id-upper", with(&[0], hex.to_uppercase().as_bytes())),
        ("id-short", with(&[0], &hex.as_bytes()[1..])),
        ("ref-log", with(&[1], b"/logs/main")),
        ("ref-spec", with(&[1], b"spec/chat")),
        ("ref-top", with(&[1], b"logs")),
        ("ref-packs", with(&[1], b"packs")),
        ("ref-escape", with(&[1], b"logs/../../config")),
        ("if-match", with(&[2, 1], format!("\"{hex}\"").as_bytes())),
        (
            "if-match-weak",
            with(&[2, 1], format!("W/\"{hex}\"").as_bytes()),
        ),
        ("if-match-star", with(&[2, 1], b"*")),
        ("if-none-match-star", with(&[2, 2], b"\n *")),
        (
            "if-none-match-other",
            with(&[2, 2], format!("\n\"{hex}\"").as_bytes()),
        ),
        (
            "both-preconditions",
            with(&[2, 3], format!("\"{hex}\"\n*").as_bytes()),
        ),
        ("no-precondition", with(&[2, 0], b"")),
        ("range", range("bytes=0-99")),
        ("range-suffix", range("bytes=-100")),
        ("range-suffix-zero", range("bytes=-0")),
        ("range-open", range("bytes=2600-")),
        ("range-backwards", range("bytes=9-1")),
        ("range-past-end", range("bytes=5000-6000")),
        ("range-several", range("bytes=0-1,5-6")),
        ("range-max", range("bytes=18446744073709551615-")),
        ("range-other-unit", range("items=1-2")),
        ("range-no-dash", range("bytes=12")),
        ("present", with(&[4], format!("{hex}\n{hex}\n").as_bytes())),
        (
            "present-spaces",
            with(&[4], format!("  \n {hex} \n\n").as_bytes()),
        ),
        ("present-not-hex", with(&[4], b"hello\n")),
        ("present-not-text", with(&[4], &[0xff, 0xfe])),
    ];
    for (name, bytes) in seeds {
        out.push(("server", name.to_string(), bytes));
    }
}

fn twirp_seeds(out: &mut Vec<Seed>) {
    use prost::Message as _;
    use remotelog::spec::proto::vac::{cas, ns};
    // First byte: message in bits 0-1, content type in bits 2-3 (see the target).
    let with = |pick: u8, rest: &[u8]| [&[pick][..], rest].concat();
    let id = remotelog::Id::of(b"x").0.to_vec();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "content-proto",
            with(
                0,
                &cas::Content {
                    data: b"hello".to_vec(),
                }
                .encode_to_vec(),
            ),
        ),
        (
            "address-proto",
            with(1, &cas::Address { id: id.clone() }.encode_to_vec()),
        ),
        (
            "update-proto",
            with(
                2,
                &ns::NameUpdate {
                    name: "chat".into(),
                    content: b"page".to_vec(),
                }
                .encode_to_vec(),
            ),
        ),
        (
            "query-x-proto",
            with(
                3 | 4,
                &ns::Query {
                    name: "chat".into(),
                }
                .encode_to_vec(),
            ),
        ),
        ("content-json", with(8, br#"{"data":"aGVsbG8="}"#)),
        ("address-json-urlsafe", with(1 | 8, br#"{"id":"-_-_AAAA"}"#)),
        (
            "update-json-null",
            with(2 | 8, br#"{"name":"chat","content":null}"#),
        ),
        (
            "query-json-unknown-field",
            with(3 | 8, br#"{"name":"chat","other":1}"#),
        ),
        ("content-json-not-base64", with(8, br#"{"data":"!!"}"#)),
        (
            "content-type-line",
            with(12, b"application/JSON; charset=utf-8\n{}"),
        ),
        ("content-type-other", with(12, b"text/plain\nhello")),
        ("route", with(0, b"vac.ns.NS/Fetch")),
        (
            "proto-truncated",
            with(1, &cas::Address { id }.encode_to_vec()[..10]),
        ),
    ];
    for (name, bytes) in seeds {
        out.push(("twirp", name.to_string(), bytes));
    }
}
