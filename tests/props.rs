//! Property tests: object encoding round trips, decoding arbitrary bytes, and page chains of
//! any size and capacity on both backends.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::prelude::*;
use remotelog::log::{self, SettingsChange, DEFAULT_CAPACITY};
use remotelog::model::object::{decode_message, decode_page, Object};
use remotelog::store::config::Config;
use remotelog::store::Backend;
use remotelog::{upkeep::check, Entry, FsStore, Id, MemStore, Message, Page};
use sha2::{Digest, Sha256};

mod common;
use common::cbor_head;

// ---------------------------------------------------------------------------------------
// An independent CBOR writer for the layouts of format/store-v1.md section 3

fn bstr(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend_from_slice(b);
}

fn int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        cbor_head(0, i as u64, out)
    } else {
        cbor_head(1, !i as u64, out)
    }
}

fn spec_message(m: &Message) -> Vec<u8> {
    let mut o = Vec::new();
    cbor_head(4, 5, &mut o);
    cbor_head(0, 1, &mut o);
    cbor_head(0, 1, &mut o);
    bstr(&m.group_id, &mut o);
    int(m.timestamp, &mut o);
    bstr(&m.body, &mut o);
    o
}

fn spec_page(p: &Page) -> Vec<u8> {
    let mut o = Vec::new();
    cbor_head(4, 7, &mut o);
    cbor_head(0, 1, &mut o);
    cbor_head(0, 2, &mut o);
    match &p.prev {
        Some(id) => bstr(&id.0, &mut o),
        None => o.push(0xf6),
    }
    cbor_head(0, p.count, &mut o);
    cbor_head(0, p.capacity, &mut o);
    cbor_head(0, p.embed, &mut o);
    cbor_head(4, p.entries.len() as u64, &mut o);
    for e in &p.entries {
        cbor_head(4, if e.embedded.is_some() { 3 } else { 2 }, &mut o);
        bstr(&e.h1.0, &mut o);
        bstr(&e.h2.0, &mut o);
        if let Some(b) = &e.embedded {
            bstr(b, &mut o);
        }
    }
    o
}

fn spec_h1(m: &Message) -> Id {
    let mut input = b"MESSAGE_ID".to_vec();
    input.extend_from_slice(&m.group_id);
    input.extend_from_slice(&m.timestamp.to_le_bytes());
    input.extend_from_slice(&m.body);
    Id(Sha256::digest(&input).into())
}

// ---------------------------------------------------------------------------------------
// Strategies

fn arb_id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

/// Integers biased towards the CBOR length boundaries.
fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..30,
        prop::sample::select(vec![
            23u64,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX
        ]),
        any::<u64>(),
    ]
}

fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        -30i64..30,
        prop::sample::select(vec![i64::MIN, i64::MAX, -24, -25, -256, -257, -65537]),
        any::<i64>(),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (vec(any::<u8>(), 0..40), arb_i64(), vec(any::<u8>(), 0..300)).prop_map(
        |(group_id, timestamp, body)| Message {
            group_id,
            timestamp,
            body,
        },
    )
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        arb_id(),
        arb_id(),
        prop::option::of(vec(any::<u8>(), 0..100)),
    )
        .prop_map(|(h1, h2, embedded)| Entry { h1, h2, embedded })
}

fn arb_page() -> impl Strategy<Value = Page> {
    (
        prop::option::of(arb_id()),
        vec(arb_entry(), 1..30),
        arb_u64(),
        arb_u64(),
        arb_u64(),
    )
        .prop_map(|(prev, entries, extra, capacity, embed)| Page {
            prev,
            count: (entries.len() as u64).saturating_add(extra),
            capacity,
            embed,
            entries,
        })
}

fn arb_object() -> impl Strategy<Value = Object> {
    prop_oneof![
        arb_message().prop_map(Object::Message),
        arb_page().prop_map(Object::Page),
    ]
}

// ---------------------------------------------------------------------------------------
// Encoding

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn h1_matches_the_formula(m in arb_message()) {
        prop_assert_eq!(m.h1(), spec_h1(&m));
    }

    #[test]
    fn message_round_trip_and_documented_layout(m in arb_message()) {
        let obj = Object::Message(m.clone());
        let bytes = obj.encode();
        prop_assert_eq!(&bytes, &spec_message(&m));
        prop_assert_eq!(Object::decode(&bytes).unwrap(), obj.clone());
        prop_assert_eq!(decode_message(&bytes).unwrap(), m);
        prop_assert!(decode_page(&bytes).is_err());
        // Encoding is deterministic.
        prop_assert_eq!(Id::of(&obj.encode()), Id::of(&bytes));
    }

    #[test]
    fn page_round_trip_and_documented_layout(p in arb_page()) {
        let obj = Object::Page(p.clone());
        let bytes = obj.encode();
        prop_assert_eq!(&bytes, &spec_page(&p));
        prop_assert_eq!(Object::decode(&bytes).unwrap(), obj);
        prop_assert_eq!(decode_page(&bytes).unwrap(), p);
        prop_assert!(decode_message(&bytes).is_err());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..600)) {
        if let Ok(obj) = Object::decode(&bytes) {
            // Whatever is accepted is the canonical encoding of what it decodes to.
            prop_assert_eq!(obj.encode(), bytes);
        }
    }

    #[test]
    fn decode_never_panics_on_damaged_objects(
        obj in arb_object(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = obj.encode();
        let mut flipped = bytes.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= xor;
        match Object::decode(&flipped) {
            Ok(other) => {
                prop_assert_ne!(&other, &obj);
                prop_assert_eq!(other.encode(), flipped);
            }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
        // Every strict prefix and any extension is refused.
        let n = cut.index(bytes.len());
        prop_assert!(Object::decode(&bytes[..n]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Object::decode(&longer).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Page chains

/// One append: its messages and the settings it changes.
#[derive(Debug, Clone)]
struct Batch {
    messages: Vec<Message>,
    capacity: Option<u64>,
    embed: Option<u64>,
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    let msg = (0u8..4, -3i64..3, vec(any::<u8>(), 0..12)).prop_map(|(g, t, body)| Message {
        group_id: vec![g],
        timestamp: t,
        body,
    });
    (
        vec(msg, 1..20),
        prop::option::weighted(0.4, prop::sample::select(vec![0u64, 1, 2, 3, 7, 256])),
        prop::option::weighted(0.4, 0u64..5),
    )
        .prop_map(|(messages, capacity, embed)| Batch {
            messages,
            capacity,
            embed,
        })
}

/// The pages of log `name`, newest first, read one by one following `prev`.
fn walk(b: &dyn Backend, name: &str) -> Vec<(Id, Page)> {
    let mut out = Vec::new();
    let mut next = log::head(b, name).unwrap();
    while let Some(id) = next {
        let page = log::read_page(b, &id).unwrap();
        next = page.prev;
        out.push((id, page));
        assert!(out.len() < 100_000, "page chain loops");
    }
    out
}

/// Runs `batches` against `b`, checking the log after every append. Returns the head ids
/// after each append.
fn run_chain(b: &dyn Backend, batches: &[Batch]) -> Result<Vec<Id>, TestCaseError> {
    let name = "team/chat";
    // The model: (h1, h2) oldest first, and the settings in force.
    let mut model: Vec<(Id, Id)> = Vec::new();
    let mut cap = DEFAULT_CAPACITY;
    let mut embed = 0u64;
    let mut caps_seen: HashSet<u64> = HashSet::new();
    let mut old_pages: HashSet<Id> = HashSet::new();
    let mut heads = Vec::new();

    for batch in batches {
        cap = batch.capacity.unwrap_or(cap);
        embed = batch.embed.unwrap_or(embed);
        caps_seen.insert(cap);
        let change = SettingsChange {
            capacity: batch.capacity,
            embed: batch.embed,
        };
        let done = log::append(b, name, &batch.messages, change).unwrap();
        let ids: Vec<(Id, Id)> = batch
            .messages
            .iter()
            .map(|m| (spec_h1(m), Id::of(&spec_message(m))))
            .collect();
        prop_assert_eq!(&done.ids, &ids);
        model.extend(ids);
        prop_assert_eq!(done.count, model.len() as u64);
        heads.push(done.head);

        // entries: exactly everything appended, newest first.
        let got: Vec<(Id, Id)> = log::entries(b, name)
            .unwrap()
            .iter()
            .map(|e| (e.h1, e.h2))
            .collect();
        let want: Vec<(Id, Id)> = model.iter().rev().copied().collect();
        prop_assert_eq!(got, want);

        let report = check::check(b, true);
        prop_assert!(report.is_sound(), "{:?}", report.problems);
        prop_assert_eq!(report.entries, model.len() as u64);

        let chain = walk(b, name);
        prop_assert_eq!(chain[0].0, done.head);
        // Counts chain: each page's count is its entries plus the count of the older pages.
        let mut below = 0u64;
        for (_, page) in chain.iter().rev() {
            prop_assert!(!page.entries.is_empty());
            below += page.entries.len() as u64;
            prop_assert_eq!(page.count, below);
            if page.capacity > 0 {
                prop_assert!(page.entries.len() as u64 <= page.capacity);
            }
        }
        prop_assert_eq!(below, model.len() as u64);
        prop_assert!(chain.last().unwrap().1.prev.is_none());
        // The head carries the settings in force.
        prop_assert_eq!((chain[0].1.capacity, chain[0].1.embed), (cap, embed));

        // Embedding: in every page this append wrote, an entry is embedded exactly when it
        // is among the newest `embed` entries of the log; embedded bytes are the message.
        let mut pos = 0u64; // position from the newest
        for (id, page) in &chain {
            let fresh = !old_pages.contains(id);
            for e in &page.entries {
                if fresh {
                    prop_assert_eq!(
                        e.embedded.is_some(),
                        pos < embed,
                        "page {} entry at {} from the newest, embed {}",
                        id,
                        pos,
                        embed
                    );
                }
                if let Some(bytes) = &e.embedded {
                    prop_assert_eq!(Id::of(bytes), e.h2);
                    prop_assert_eq!(decode_message(bytes).unwrap().h1(), e.h1);
                }
                pos += 1;
            }
        }
        // Newest `embed` entries of the log are all in the head page when it is big enough.
        let head = &chain[0].1;
        let in_head = (head.entries.len() as u64).min(embed) as usize;
        prop_assert!(head.entries[..in_head].iter().all(|e| e.embedded.is_some()));

        // With one capacity all along, pages are full except the head.
        if caps_seen.len() == 1 {
            let n = model.len() as u64;
            if cap == 0 {
                prop_assert_eq!(chain.len(), 1);
            } else {
                prop_assert_eq!(chain.len() as u64, n.div_ceil(cap));
                for (_, page) in &chain[1..] {
                    prop_assert_eq!(page.entries.len() as u64, cap);
                }
            }
        }
        old_pages.extend(chain.iter().map(|(id, _)| *id));
    }

    // Every message is found by its H1 and H2 prefixes and reads back.
    let last = batches.last().unwrap().messages.last().unwrap();
    let (e, m) = log::find(b, &spec_h1(last).to_hex()).unwrap();
    prop_assert_eq!(&m, last);
    prop_assert_eq!(e.h2, Id::of(&spec_message(last)));
    Ok(heads)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn page_chains_on_mem_and_fs(batches in vec(arb_batch(), 1..7)) {
        let mem = MemStore::new();
        let mem_heads = run_chain(&mem, &batches)?;

        let dir = tempfile::tempdir().unwrap();
        let fs = FsStore::init(&dir.path().join("s"), Config::default()).unwrap();
        let fs_heads = run_chain(&fs, &batches)?;

        // Both backends build the very same pages.
        prop_assert_eq!(mem_heads, fs_heads);
        prop_assert_eq!(mem.list_objects().unwrap(), fs.list_objects().unwrap());
    }
}

#[test]
fn long_chains_with_each_capacity() {
    // Deterministic large cases next to the random ones: 600 messages in batches of 37.
    for cap in [0u64, 1, 2, 3, 7, 256] {
        let batches: Vec<Batch> = (0..16)
            .map(|i| Batch {
                messages: (0..37)
                    .map(|j| Message {
                        group_id: b"g".to_vec(),
                        timestamp: i,
                        body: j.to_string().into_bytes(),
                    })
                    .collect(),
                capacity: (i == 0).then_some(cap),
                embed: (i == 0).then_some(4),
            })
            .collect();
        run_chain(&MemStore::new(), &batches).unwrap_or_else(|e| panic!("capacity {cap}: {e}"));
    }
}
