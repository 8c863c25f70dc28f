//! The pack parser (`src/pack/`) and what a reader does with a pack that opens: checksum,
//! index validation, the walk by block, decompression, lookups (one, sorted, `locate`,
//! `whole_blocks`) and reads, from memory and again through positioned reads of a file
//! (the production path).

use std::io::Write;

use remotelog::id::Id;
use remotelog::pack::{self, Location, Pack};

pub fn run(data: &[u8]) {
    if data.len() >= pack::TRAILER_LEN {
        let trailer = &data[data.len() - pack::TRAILER_LEN..];
        match pack::index_span(trailer, data.len() as u64) {
            Ok((offset, len)) => {
                assert_eq!(offset + len + pack::TRAILER_LEN as u64, data.len() as u64)
            }
            Err(e) => super::assert_one_line("index_span", &e),
        }
    }
    let p = match Pack::parse(data) {
        Ok(p) => p,
        Err(e) => return super::assert_one_line("Pack::parse", &e),
    };
    let answers = read_all(&p);

    // The same pack read as production reads it: frames and index entries by pread.
    let mut f = tempfile::tempfile().expect("a temporary file");
    f.write_all(data).expect("writing the temporary file");
    let from_file = Pack::parse(data)
        .expect("parsed once, parses again")
        .read_frames_from(f)
        .expect("a complete pack file has a readable index");
    assert!(
        read_all(&from_file) == answers,
        "a pack read through its file answers differently from the same bytes in memory"
    );
}

/// Everything a reader can ask, checked against each other; the answers, to compare the
/// two ways of reading.
#[derive(PartialEq)]
struct Answers {
    checksum: bool,
    valid: bool,
    by_block: Option<Vec<Vec<(Id, Location)>>>,
    blocks: Vec<Option<Vec<u8>>>,
    reads: Vec<Option<Vec<u8>>>,
}

fn read_all<D: std::ops::Deref<Target = [u8]>>(p: &Pack<D>) -> Answers {
    let _ = (p.prev(), p.recorded_id(), p.is_empty());
    let checksum = match p.verify_checksum() {
        Ok(()) => true,
        Err(e) => {
            super::assert_one_line("verify_checksum", &e);
            false
        }
    };
    let valid = p.validate_index();
    if let Err(e) = &valid {
        super::assert_one_line("validate_index", e);
    }
    let by_block = p.objects_by_block();
    if valid.is_ok() {
        assert!(by_block.is_ok(), "a valid index fails objects_by_block");
    }
    let mut blocks = Vec::new();
    for i in 0..p.block_count() as u32 {
        let b = p.block(i);
        assert!(b.ulen <= pack::MAX_BLOCK);
        match p.decompress_block(i) {
            Ok(bytes) => {
                assert_eq!(bytes.len(), b.ulen as usize);
                blocks.push(Some(bytes.to_vec()));
            }
            Err(e) => {
                super::assert_one_line("decompress_block", &e);
                blocks.push(None);
            }
        }
    }
    assert!(p.decompress_block(p.block_count() as u32).is_err());
    let mut reads = Vec::new();
    let by_block = match by_block {
        Ok(by_block) => by_block,
        Err(e) => {
            super::assert_one_line("objects_by_block", &e);
            // A damaged entry: lookups and reads must still answer without panicking.
            for i in 0..p.len() {
                let (id, loc) = p.entry(i);
                let _ = p.lookup(&id);
                if let Err(e) = p.read(&id, loc) {
                    super::assert_one_line("read", &e);
                }
            }
            return Answers {
                checksum,
                valid: false,
                by_block: None,
                blocks,
                reads,
            };
        }
    };
    assert_eq!(by_block.len(), p.block_count());
    assert_eq!(by_block.iter().map(Vec::len).sum::<usize>(), p.len());
    for (n, objects) in by_block.iter().enumerate() {
        let ulen = u64::from(p.block(n as u32).ulen);
        let mut last = 0;
        for (id, loc) in objects {
            assert_eq!(
                loc.block as usize, n,
                "object {id} listed under the wrong block"
            );
            assert!(loc.offset >= last, "objects of block {n} not by offset");
            last = loc.offset;
            assert!(u64::from(loc.offset) + u64::from(loc.len) <= ulen);
            if valid.is_ok() {
                assert_eq!(p.lookup(id), Some(*loc), "lookup disagrees with the index");
            }
            match (p.read(id, *loc), &blocks[n]) {
                (Ok(bytes), Some(block)) => {
                    let at = loc.offset as usize;
                    assert_eq!(bytes, block[at..at + loc.len as usize]);
                    reads.push(Some(bytes));
                }
                (Err(e), None) => {
                    super::assert_one_line("read", &e);
                    reads.push(None);
                }
                (Ok(_), None) => panic!("object {id} read from a block that does not decompress"),
                (Err(e), Some(_)) => panic!("object {id} unreadable from a good block: {e}"),
            }
        }
    }
    if valid.is_ok() {
        check_lookups(p, &by_block);
    }
    Answers {
        checksum,
        valid: valid.is_ok(),
        by_block: Some(by_block),
        blocks,
        reads,
    }
}

/// With a valid index, every way of looking up finds every object where the index says,
/// and nothing that is not there.
fn check_lookups<D: std::ops::Deref<Target = [u8]>>(p: &Pack<D>, by_block: &[Vec<(Id, Location)>]) {
    let ids: Vec<Id> = p.ids().collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids() not ascending");
    let mut expect: Vec<(Id, Location)> = by_block.iter().flatten().copied().collect();
    expect.sort_by_key(|(id, _)| *id);

    let mut found = Vec::new();
    p.lookup_sorted(&ids, |k, loc| found.push((ids[k], loc)));
    assert_eq!(found, expect, "lookup_sorted disagrees with the index");

    // Ids that are not in the pack: neighbours of every id.
    let absent: Vec<Id> = ids
        .iter()
        .flat_map(|id| [step(id, false), step(id, true)])
        .filter(|a| ids.binary_search(a).is_err())
        .collect();
    for a in &absent {
        assert_eq!(
            p.lookup(a),
            None,
            "lookup found {a}, which is not in the index"
        );
    }

    let mut asked = ids.clone();
    asked.extend(&absent);
    let (located, rest) = pack::locate(&[p], &asked);
    let mut located: Vec<(Id, Location)> = located
        .into_iter()
        .map(|(k, loc, id)| {
            assert_eq!(k, 0);
            (id, loc)
        })
        .collect();
    located.sort_by_key(|(id, _)| *id);
    assert_eq!(located, expect, "locate disagrees with the index");
    let mut absent_sorted = absent.clone();
    absent_sorted.sort();
    absent_sorted.dedup();
    assert_eq!(rest, absent_sorted, "locate lost or invented ids");

    // Asking for everything: exactly the blocks whose objects tile them are whole.
    let whole = pack::whole_blocks(&[p], &ids).expect("a valid index has no damaged entry");
    for (k, n, objects) in &whole {
        assert_eq!(*k, 0);
        let listed: Vec<(Id, u32, u32)> = by_block[*n as usize]
            .iter()
            .map(|(id, loc)| (*id, loc.offset, loc.len))
            .collect();
        assert_eq!(
            objects, &listed,
            "whole block {n} is not what the index holds"
        );
        let ulen = p.block(*n).ulen;
        let mut end = 0u32;
        for (_, offset, len) in objects {
            assert_eq!(*offset, end, "whole block {n} has a gap");
            end += len;
        }
        assert_eq!(end, ulen, "whole block {n} is not covered");
    }
}

/// The id one above (or below) `id`, wrapping.
fn step(id: &Id, up: bool) -> Id {
    let n = u128::from_be_bytes(id.0[16..].try_into().expect("16 bytes"));
    let n = if up {
        n.wrapping_add(1)
    } else {
        n.wrapping_sub(1)
    };
    let mut out = *id;
    out.0[16..].copy_from_slice(&n.to_be_bytes());
    out
}
