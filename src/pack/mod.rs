//! Pack files: many objects in one file, found through a sorted index
//! (format/pack-v1.md). The parser is generic over its bytes, so production reads a
//! memory map and tests or fuzzers a `&[u8]`. Opening checks the header, trailer and block
//! table (O(blocks)); an index entry is checked when it is used, and
//! [`Pack::validate_index`] checks them all for `check` and for untrusted uploads. Every
//! block frame is checked against its checksum before it is decompressed or copied.

use crate::error::{DecodeError, Format};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::TMP_PREFIX;
use crate::id::Id;

/// First bytes of every pack.
pub const MAGIC: &[u8; 8] = b"RLOGPACK";
/// Magic in the trailer.
pub const END_MAGIC: &[u8; 8] = b"RLOGPEND";
/// The pack version this code reads and writes.
pub const VERSION: u32 = 1;
/// Header size.
pub const HEADER_LEN: usize = 48;
/// Trailer size.
pub const TRAILER_LEN: usize = 56;
const BLOCK_ENTRY: usize = 24;
const OBJECT_ENTRY: usize = 44;
/// Writers close a block once it holds this many uncompressed bytes.
pub const BLOCK_TARGET: usize = 256 << 10;
/// Size at which a batch (a push, a clone, a bulk append) closes its pack and starts the
/// next, and repack's default target: large enough for few files, small enough that a
/// writer's per-pack index stays a few MiB.
pub const BATCH_TARGET: u64 = 64 << 20;
/// Objects at which a batch closes its pack whatever its size: a writer holds about 110
/// bytes per object until the pack is finished, and tiny objects would otherwise put
/// millions in one pack.
pub const BATCH_MAX_OBJECTS: usize = 1 << 18;
/// Largest decompressed block a reader accepts.
pub const MAX_BLOCK: u32 = 64 << 20;

/// One block of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// File offset of its zstd frame.
    pub offset: u64,
    /// Compressed length.
    pub clen: u32,
    /// Decompressed length.
    pub ulen: u32,
    /// First 8 bytes of BLAKE3 of the compressed frame.
    pub checksum: [u8; 8],
}

/// Where an object is inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Block number.
    pub block: u32,
    /// Offset inside the decompressed block.
    pub offset: u32,
    /// Length of the object's bytes.
    pub len: u32,
}

/// A validated pack over some bytes.
pub struct Pack<D> {
    data: D,
    index_offset: usize,
    block_count: usize,
    object_count: usize,
    objects_at: usize,
    /// The last decompressed block, since objects are mostly read in order.
    cache: Mutex<Option<(u32, std::sync::Arc<Vec<u8>>)>>,
    /// Where block frames and looked-up index entries are read from, when not from
    /// `data`.
    file: Option<File>,
    /// The first 4 bytes of every id, in index order, read once on the first lookup.
    prefixes: std::sync::OnceLock<std::result::Result<Vec<u32>, DecodeError>>,
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&d[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[at..at + 8]);
    u64::from_le_bytes(b)
}

impl<D: Deref<Target = [u8]>> Pack<D> {
    /// Validates the structure of a pack (not its checksum; see [`Pack::verify_checksum`]).
    pub fn parse(data: D) -> std::result::Result<Pack<D>, DecodeError> {
        let d: &[u8] = &data;
        let len = d.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(bad(format!(
                "{len} bytes is too short for a pack (truncated?)"
            )));
        }
        if &d[..8] != MAGIC {
            return Err(bad("not a pack (bad magic)"));
        }
        let version = u32_at(d, 8);
        if version != VERSION {
            return Err(bad(format!(
                "pack version {version} is not supported (this remotelog reads {VERSION}); upgrade remotelog"
            )));
        }
        let t = len - TRAILER_LEN;
        let (index_offset, index_len) = index_span(&d[t..], len as u64)?;
        let (index_offset, index_len) = (index_offset as usize, index_len as usize);
        let block_count = u32_at(d, index_offset) as usize;
        let after_blocks = index_offset
            + 4
            + block_count
                .checked_mul(BLOCK_ENTRY)
                .ok_or_else(|| bad("block count overflows"))?;
        if after_blocks + 8 > t {
            return Err(bad(format!(
                "index claims {block_count} blocks, more than it holds"
            )));
        }
        let object_count = u64_at(d, after_blocks) as usize;
        let objects_at = after_blocks + 8;
        let expect_len = object_count
            .checked_mul(OBJECT_ENTRY)
            .and_then(|n| n.checked_add(objects_at - index_offset))
            .ok_or_else(|| bad("object count overflows"))?;
        if expect_len != index_len {
            return Err(bad(format!(
                "index length {index_len} does not fit {block_count} blocks and {object_count} objects"
            )));
        }
        let pack = Pack {
            data,
            index_offset,
            block_count,
            object_count,
            objects_at,
            cache: Mutex::new(None),
            file: None,
            prefixes: std::sync::OnceLock::new(),
        };
        for i in 0..block_count {
            let b = pack.block(i as u32);
            let end = b.offset.checked_add(u64::from(b.clen));
            if b.offset < HEADER_LEN as u64 || end.is_none_or(|e| e > index_offset as u64) {
                return Err(bad(format!("block {i} lies outside the block area")));
            }
            if b.ulen > MAX_BLOCK {
                return Err(bad(format!(
                    "block {i} claims {} bytes decompressed",
                    b.ulen
                )));
            }
        }
        Ok(pack)
    }

    /// Checks every index entry: ids strictly ascending, each inside its block. This is
    /// O(objects), so opening a pack does not run it (a lookup checks the one entry it
    /// uses); `check` and untrusted uploads do.
    pub fn validate_index(&self) -> std::result::Result<(), DecodeError> {
        let mut last: Option<Id> = None;
        for i in 0..self.object_count {
            let (id, loc) = self.entry(i);
            if last.is_some_and(|l| l >= id) {
                return Err(bad(format!("index entry {i} is out of order")));
            }
            last = Some(id);
            self.check_location(&id, loc)?;
        }
        Ok(())
    }

    /// Checks that `loc` (the index entry of `id`) lies inside the pack.
    pub fn check_location(&self, id: &Id, loc: Location) -> std::result::Result<(), DecodeError> {
        if loc.block as usize >= self.block_count {
            return Err(bad(format!(
                "object {id} names block {} of {}",
                loc.block, self.block_count
            )));
        }
        let ulen = u64::from(self.block(loc.block).ulen);
        if u64::from(loc.offset) + u64::from(loc.len) > ulen {
            return Err(bad(format!("object {id} lies outside its block")));
        }
        Ok(())
    }

    /// Reads block frames and looked-up index entries with positioned reads of `file`
    /// (the same pack) instead of through the mapping, so a long transfer does not leave
    /// the pack resident; reads the lookup table now, so that an unreadable index is an
    /// error at open rather than objects that seem missing.
    pub fn read_frames_from(mut self, file: File) -> std::result::Result<Pack<D>, DecodeError> {
        self.file = Some(file);
        self.prefixes()?;
        Ok(self)
    }

    /// The previous pack in the chain.
    pub fn prev(&self) -> Option<Id> {
        let p = Id::from_slice(&self.data[16..48])?;
        (p.0 != [0u8; 32]).then_some(p)
    }

    /// The checksum recorded in the trailer, which is the pack's id.
    pub fn recorded_id(&self) -> Id {
        let t = self.data.len() - 32;
        Id::from_slice(&self.data[t..]).unwrap_or(Id([0; 32]))
    }

    /// Recomputes the checksum over the whole file and compares it with the trailer.
    pub fn verify_checksum(&self) -> std::result::Result<(), DecodeError> {
        let t = self.data.len() - 32;
        let actual = Id(*blake3::hash(&self.data[..t]).as_bytes());
        if actual != self.recorded_id() {
            return Err(bad(format!(
                "checksum mismatch: the file hashes to {actual}, its trailer says {}",
                self.recorded_id()
            )));
        }
        Ok(())
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.object_count
    }

    /// True when the pack holds no object.
    pub fn is_empty(&self) -> bool {
        self.object_count == 0
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.block_count
    }

    /// Block `i` (must be < block_count).
    pub fn block(&self, i: u32) -> Block {
        let at = self.index_offset + 4 + i as usize * BLOCK_ENTRY;
        let d = &self.data;
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&d[at + 16..at + 24]);
        Block {
            offset: u64_at(d, at),
            clen: u32_at(d, at + 8),
            ulen: u32_at(d, at + 12),
            checksum,
        }
    }

    /// The compressed frame of block `i` (must be < block_count), checked against its
    /// checksum.
    pub fn frame(&self, i: u32) -> std::result::Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
        let b = self.block(i);
        let frame = match &self.file {
            Some(f) => {
                let mut buf = vec![0u8; b.clen as usize];
                std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, b.offset)
                    .map_err(|e| bad(format!("block {i} cannot be read: {e}")))?;
                std::borrow::Cow::Owned(buf)
            }
            None => std::borrow::Cow::Borrowed(
                &self.data[b.offset as usize..(b.offset + u64::from(b.clen)) as usize],
            ),
        };
        if frame_checksum(&frame) != b.checksum {
            return Err(bad(format!("block {i} fails its checksum")));
        }
        Ok(frame)
    }

    /// Index entry `i` (must be < len).
    pub fn entry(&self, i: usize) -> (Id, Location) {
        let at = self.objects_at + i * OBJECT_ENTRY;
        decode_entry(&self.data[at..at + OBJECT_ENTRY])
    }

    /// The first 4 bytes of every id, as integers in index order: lookups search this
    /// table in memory (4 bytes per object) and then read only the entries whose prefix
    /// matches, so a pack read through `file` never has its index paged in whole — the
    /// index of a million objects is 44 MB, its prefixes 4 MB.
    fn prefixes(&self) -> std::result::Result<&[u32], DecodeError> {
        let table = self.prefixes.get_or_init(|| {
            let mut out = Vec::with_capacity(self.object_count);
            let mut buf = vec![0u8; OBJECT_ENTRY * 1024];
            let mut i = 0;
            while i < self.object_count {
                let n = (self.object_count - i).min(1024);
                let bytes = self.entries_bytes(i, n, &mut buf)?;
                out.extend(bytes.chunks_exact(OBJECT_ENTRY).map(prefix));
                i += n;
            }
            Ok(out)
        });
        table.as_deref().map_err(|e| e.clone())
    }

    /// The raw bytes of index entries `first..first + n`, read through `file` when there is
    /// one (into `buf`), else straight from `data`.
    fn entries_bytes<'a>(
        &'a self,
        first: usize,
        n: usize,
        buf: &'a mut Vec<u8>,
    ) -> std::result::Result<&'a [u8], DecodeError> {
        let at = self.objects_at + first * OBJECT_ENTRY;
        let len = n * OBJECT_ENTRY;
        match &self.file {
            Some(f) => {
                buf.resize(len, 0);
                std::os::unix::fs::FileExt::read_exact_at(f, &mut buf[..len], at as u64)
                    .map_err(|e| bad(format!("its index cannot be read: {e}")))?;
                Ok(&buf[..len])
            }
            None => Ok(&self.data[at..at + len]),
        }
    }

    /// Entries `i..` whose id starts like `id`, checked in full; the location of `id`.
    fn confirm(&self, prefixes: &[u32], i: usize, id: &Id) -> Option<Location> {
        let want = prefix(&id.0);
        let same = prefixes[i..].iter().take_while(|p| **p == want).count();
        if same == 0 {
            return None;
        }
        let mut buf = Vec::new();
        let bytes = self.entries_bytes(i, same, &mut buf).ok()?;
        bytes
            .chunks_exact(OBJECT_ENTRY)
            .map(decode_entry)
            .find_map(|(e, loc)| (e == *id).then_some(loc))
    }

    /// Finds an object. An index that cannot be read finds nothing; `check` reports it.
    pub fn lookup(&self, id: &Id) -> Option<Location> {
        let prefixes = self.prefixes().ok()?;
        let want = prefix(&id.0);
        let i = prefixes.partition_point(|p| *p < want);
        self.confirm(prefixes, i, id)
    }

    /// Looks up many ids, given in ascending order, and calls `found` with the position in
    /// `ids` and the location of each one present. Each search gallops on from where the
    /// previous one ended in the prefix table, so a batch costs a few steps per id.
    pub fn lookup_sorted(&self, ids: &[Id], mut found: impl FnMut(usize, Location)) {
        let Ok(prefixes) = self.prefixes() else {
            return;
        };
        let n = prefixes.len();
        let mut lo = 0usize;
        for (k, id) in ids.iter().enumerate() {
            let want = prefix(&id.0);
            let mut step = 1usize;
            let mut hi = lo;
            while hi < n && prefixes[hi] < want {
                lo = hi + 1;
                hi = hi.saturating_add(step).min(n);
                step = step.saturating_mul(2);
            }
            lo += prefixes[lo..hi.min(n)].partition_point(|p| *p < want);
            if lo >= n {
                return;
            }
            if let Some(loc) = self.confirm(prefixes, lo, id) {
                found(k, loc);
            }
        }
    }

    /// The objects of each block, blocks in file order and objects by offset: what a
    /// block-at-a-time reader (scan, copy, repack) walks.
    pub fn objects_by_block(&self) -> std::result::Result<Vec<Vec<(Id, Location)>>, DecodeError> {
        let mut by_block: Vec<Vec<(Id, Location)>> = vec![Vec::new(); self.block_count];
        for i in 0..self.object_count {
            let (id, loc) = self.entry(i);
            self.check_location(&id, loc)?;
            by_block[loc.block as usize].push((id, loc));
        }
        for objects in &mut by_block {
            objects.sort_by_key(|(_, loc)| loc.offset);
        }
        Ok(by_block)
    }

    /// All ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = Id> + '_ {
        (0..self.object_count).map(|i| self.entry(i).0)
    }

    /// Decompresses block `i`, checking its length.
    pub fn decompress_block(
        &self,
        i: u32,
    ) -> std::result::Result<std::sync::Arc<Vec<u8>>, DecodeError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, bytes)) = cache.as_ref() {
            if *n == i {
                return Ok(bytes.clone());
            }
        }
        if i as usize >= self.block_count {
            return Err(bad(format!(
                "block {i} of {} does not exist",
                self.block_count
            )));
        }
        let b = self.block(i);
        let out = zstd::bulk::decompress(&self.frame(i)?, b.ulen as usize)
            .map_err(|e| bad(format!("block {i} does not decompress: {e}")))?;
        if out.len() != b.ulen as usize {
            return Err(bad(format!(
                "block {i} decompresses to {} bytes, index says {}",
                out.len(),
                b.ulen
            )));
        }
        let out = std::sync::Arc::new(out);
        *cache = Some((i, out.clone()));
        Ok(out)
    }

    /// The bytes of object `id` at `loc` (not checked against its id: callers do that).
    pub fn read(&self, id: &Id, loc: Location) -> std::result::Result<Vec<u8>, DecodeError> {
        self.check_location(id, loc)?;
        let block = self.decompress_block(loc.block)?;
        let start = loc.offset as usize;
        Ok(block[start..start + loc.len as usize].to_vec())
    }
}

/// Where the index of a pack of `file_len` bytes is, (offset, length), from its trailer:
/// what a reader that fetches a pack by ranges reads first.
pub fn index_span(trailer: &[u8], file_len: u64) -> std::result::Result<(u64, u64), DecodeError> {
    if trailer.len() != TRAILER_LEN || &trailer[16..24] != END_MAGIC {
        return Err(bad("bad trailer magic (truncated or damaged)"));
    }
    let offset = u64_at(trailer, 0);
    let len = u64_at(trailer, 8);
    let t = file_len.checked_sub(TRAILER_LEN as u64);
    if offset < HEADER_LEN as u64 || offset.checked_add(len) != t {
        return Err(bad(
            "index position does not match the file length (truncated?)",
        ));
    }
    if len < 12 {
        return Err(bad("index too short"));
    }
    Ok((offset, len))
}

/// Writes at `path` a sparse local copy of a remote pack of `size` bytes: its header, index
/// and trailer at their offsets, read with `get_range(first, last)` (inclusive bounds), its
/// blocks left as holes for the caller to fill. `trailer` is the pack's last
/// [`TRAILER_LEN`] bytes when the caller has read them already (with the size); `name`
/// names the pack in errors. Gives a handle that reads and writes the copy; open it as a
/// pack with [`open_copy`].
pub fn sparse_copy(
    name: &Path,
    path: &Path,
    size: u64,
    trailer: Option<Vec<u8>>,
    mut get_range: impl FnMut(u64, u64) -> Result<Vec<u8>>,
) -> Result<File> {
    if size < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(bad_pack(
            name,
            format!("{size} bytes is too short for a pack"),
        ));
    }
    let tail = size - TRAILER_LEN as u64;
    // A piece of another length than asked would land the rest at the wrong offsets.
    let mut fetch = |first: u64, len: u64| -> Result<Vec<u8>> {
        let bytes = get_range(first, first + len - 1)?;
        if bytes.len() as u64 != len {
            return Err(bad_pack(
                name,
                format!(
                    "asked for {len} bytes at offset {first}, got {}",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    };
    let trailer = match trailer {
        Some(t) => t,
        None => fetch(tail, TRAILER_LEN as u64)?,
    };
    let (offset, len) = index_span(&trailer, size).map_err(|e| bad_pack(name, e))?;
    let header = fetch(0, HEADER_LEN as u64)?;
    let index = fetch(offset, len)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at(path)?;
    file.set_len(size).at(path)?;
    for (at, bytes) in [(0, &header), (offset, &index), (tail, &trailer)] {
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, at).at(path)?;
    }
    Ok(file)
}

/// Opens the local copy at `path` (whole, or sparse from [`sparse_copy`]) of pack `id`,
/// checking that its trailer says it is `id`; `name` names the pack in errors.
pub fn open_copy(name: &Path, path: &Path, id: &Id) -> Result<Pack<memmap2::Mmap>> {
    let reader = File::open(path).at(path)?;
    let p = Pack::parse(map(path)?)
        .and_then(|p| p.read_frames_from(reader))
        .map_err(|e| bad_pack(name, e))?;
    if p.recorded_id() != *id {
        return Err(bad_pack(
            name,
            format!("its trailer says it is {}", p.recorded_id()),
        ));
    }
    Ok(p)
}

/// An index entry's 44 bytes: id, block, offset, length.
fn decode_entry(e: &[u8]) -> (Id, Location) {
    let id = Id::from_slice(&e[..32]).unwrap_or(Id([0; 32]));
    let loc = Location {
        block: u32_at(e, 32),
        offset: u32_at(e, 36),
        len: u32_at(e, 40),
    };
    (id, loc)
}

/// The first 4 bytes of an id (or of an index entry, which starts with it), as the integer
/// the lookup table holds.
fn prefix(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Where `ids` are in `packs`: each id (sorted, deduplicated) in the first pack holding it,
/// as (pack position, location, id), then the ids in none. Sorted lookups take one forward
/// pass per pack, and an id found is not looked for in the packs after.
pub fn locate<D: Deref<Target = [u8]>>(
    packs: &[&Pack<D>],
    ids: &[Id],
) -> (Vec<(usize, Location, Id)>, Vec<Id>) {
    let mut rest = ids.to_vec();
    rest.sort_unstable();
    rest.dedup();
    let mut found = Vec::new();
    for (k, p) in packs.iter().enumerate() {
        let mut hits = vec![None; rest.len()];
        p.lookup_sorted(&rest, |i, loc| hits[i] = Some(loc));
        let mut hits = hits.into_iter();
        rest.retain(|id| match hits.next().flatten() {
            Some(loc) => {
                found.push((k, loc, *id));
                false
            }
            None => true,
        });
    }
    (found, rest)
}

/// A block made only of wanted objects: (position of its pack in the list, block number,
/// its objects as (id, offset, length) in block order).
pub type WholeBlock = (usize, u32, Vec<(Id, u32, u32)>);

/// The blocks of `packs` that hold nothing but objects among `ids`, each id counted in the
/// first pack holding it. Objects lie back to back in a block, so wanted objects that tile
/// a block exactly are all it holds. Lookups instead of a walk over every index keep a
/// small transfer's cost proportional to its size; sorted, they take one forward pass per
/// pack. A damaged index entry is an error with the position of its pack.
pub fn whole_blocks<D: Deref<Target = [u8]>>(
    packs: &[&Pack<D>],
    ids: &[Id],
) -> std::result::Result<Vec<WholeBlock>, (usize, DecodeError)> {
    // (pack, block, offset, length, id) of each wanted object found.
    let mut found: Vec<(usize, u32, u32, u32, Id)> = Vec::with_capacity(ids.len());
    for (k, loc, id) in locate(packs, ids).0 {
        packs[k].check_location(&id, loc).map_err(|r| (k, r))?;
        found.push((k, loc.block, loc.offset, loc.len, id));
    }
    found.sort_unstable_by_key(|f| (f.0, f.1, f.2));
    let mut out = Vec::new();
    for group in found.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (k, n) = (group[0].0, group[0].1);
        let ulen = u64::from(packs[k].block(n).ulen);
        let mut end = 0u64;
        let tiles = group.iter().all(|f| {
            let next_to = u64::from(f.2) == end;
            end = u64::from(f.2) + u64::from(f.3);
            next_to
        }) && end == ulen;
        if tiles {
            out.push((k, n, group.iter().map(|f| (f.4, f.2, f.3)).collect()));
        }
    }
    Ok(out)
}

/// A block's checksum: the first 8 bytes of BLAKE3 of its compressed frame.
pub fn frame_checksum(frame: &[u8]) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&blake3::hash(frame).as_bytes()[..8]);
    c
}

/// Maps a pack file into memory.
///
/// This is the crate's only `unsafe` code. SAFETY: pack files are written under a
/// temporary name and renamed into place complete; remotelog never writes to a file after
/// renaming it, and deletes packs only by unlinking (the mapping stays valid). Another
/// program truncating the file while it is mapped could fault the process; stores are not
/// to be edited by hand.
pub fn map(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).at(path)?;
    map_file(&f, path)
}

/// Maps an opened pack file (a store opens it without following links); `path` is for
/// errors. The SAFETY argument of [`map`] holds.
#[allow(unsafe_code)]
pub fn map_file(f: &File, path: &Path) -> Result<memmap2::Mmap> {
    unsafe { memmap2::Mmap::map(f) }.at(path)
}

/// Which stream an object goes to inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Meta,
    Data,
}

/// The objects of one block being written: (id, offset, length).
type BlockObjects = Vec<(Id, u32, u32)>;

/// A pack being written to a temporary file.
pub struct PackWriter {
    file: File,
    tmp: tempfile::TempPath,
    hasher: blake3::Hasher,
    written: u64,
    prev: Option<Id>,
    /// The prev written in the header (set_prev may change `prev` later).
    header_prev: Option<Id>,
    blocks: Vec<Block>,
    entries: Vec<(Id, Location)>,
    pending: [Vec<u8>; 2],
    pending_objs: [BlockObjects; 2],
    /// Compresses closed blocks on background threads while objects keep coming.
    pool: Pool,
    /// Blocks sent to the pool and not yet written, by sequence number: (length, objects).
    inflight: std::collections::BTreeMap<u64, (u32, BlockObjects)>,
    /// Compressed blocks that came back ahead of their turn.
    ready: std::collections::BTreeMap<u64, io::Result<Vec<u8>>>,
    next_seq: u64,
    next_write: u64,
    seen: std::collections::HashSet<Id>,
}

impl PackWriter {
    /// Starts a pack in directory `dir` chained after `prev`.
    pub fn create(dir: &Path, prev: Option<Id>, level: i32) -> Result<PackWriter> {
        let named = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .suffix(".pack")
            // Readers of a shared remote need not be its writer.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)
            .at(dir)?;
        let (file, tmp) = named.into_parts();
        let mut w = PackWriter {
            file,
            tmp,
            hasher: blake3::Hasher::new(),
            written: 0,
            prev,
            header_prev: prev,
            blocks: Vec::new(),
            entries: Vec::new(),
            pending: [Vec::new(), Vec::new()],
            pending_objs: [Vec::new(), Vec::new()],
            pool: Pool::new(level),
            inflight: Default::default(),
            ready: Default::default(),
            next_seq: 0,
            next_write: 0,
            seen: Default::default(),
        };
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&prev.map_or([0u8; 32], |p| p.0));
        w.write(&header)?;
        Ok(w)
    }

    /// Whether object `id` was added.
    pub fn contains(&self, id: &Id) -> bool {
        self.seen.contains(id)
    }

    /// Number of distinct objects added so far.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The prev this pack is chained after.
    pub fn prev(&self) -> Option<Id> {
        self.prev
    }

    /// Chains the pack after `prev` instead (the header is rewritten at `finish`).
    pub fn set_prev(&mut self, prev: Option<Id>) {
        self.prev = prev;
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).at(&self.tmp)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds an object (its encoded bytes, id = BLAKE3 of them). Duplicates are skipped.
    pub fn add(&mut self, id: Id, bytes: &[u8]) -> Result<()> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        let stream =
            if crate::model::object::peek_kind(bytes) == Some(crate::model::object::Kind::Page) {
                Stream::Meta
            } else {
                Stream::Data
            };
        let s = stream as usize;
        let offset = self.pending[s].len() as u32;
        self.pending[s].extend_from_slice(bytes);
        self.pending_objs[s].push((id, offset, bytes.len() as u32));
        if self.pending[s].len() >= BLOCK_TARGET {
            self.close_block(s)?;
        }
        Ok(())
    }

    fn close_block(&mut self, s: usize) -> Result<()> {
        if self.pending[s].is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.pending[s]);
        let objs = std::mem::take(&mut self.pending_objs[s]);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.insert(seq, (data.len() as u32, objs));
        self.pool.submit(seq, data);
        self.write_ready(false)?;
        // Bound the memory held by blocks waiting for a compressor.
        while self.next_seq - self.next_write > 2 * self.pool.threads() as u64 {
            self.write_ready(true)?;
        }
        Ok(())
    }

    /// Writes compressed blocks that are next in order; with `wait`, waits for at least
    /// one more to come back first.
    fn write_ready(&mut self, wait: bool) -> Result<()> {
        if wait && self.next_write < self.next_seq {
            let (seq, frame) = self.pool.receive()?;
            self.ready.insert(seq, frame);
        }
        while let Some((seq, frame)) = self.pool.try_receive() {
            self.ready.insert(seq, frame);
        }
        while let Some(frame) = self.ready.remove(&self.next_write) {
            let (ulen, objs) = self
                .inflight
                .remove(&self.next_write)
                .ok_or_else(|| Error::Invalid("pack writer lost track of a block".into()))?;
            self.next_write += 1;
            let frame = frame.at(&self.tmp)?;
            let n = self.blocks.len() as u32;
            self.blocks.push(Block {
                offset: self.written,
                clen: frame.len() as u32,
                ulen,
                checksum: frame_checksum(&frame),
            });
            self.write(&frame)?;
            for (id, offset, len) in objs {
                self.entries.push((
                    id,
                    Location {
                        block: n,
                        offset,
                        len,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Waits for every block sent to the pool and writes them all.
    fn flush_queue(&mut self) -> Result<()> {
        while self.next_write < self.next_seq {
            self.write_ready(true)?;
        }
        Ok(())
    }

    /// Adds an already compressed block from another pack (checked against its checksum)
    /// with the objects it holds, without recompressing it.
    pub fn add_raw_block(
        &mut self,
        frame: &[u8],
        block: Block,
        objects: &[(Id, u32, u32)],
    ) -> Result<()> {
        self.flush_queue()?;
        let n = self.blocks.len() as u32;
        self.blocks.push(Block {
            offset: self.written,
            ..block
        });
        self.write(frame)?;
        for (id, offset, len) in objects {
            if self.seen.insert(*id) {
                self.entries.push((
                    *id,
                    Location {
                        block: n,
                        offset: *offset,
                        len: *len,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Size of the pack so far: bytes written, plus a third of the bytes not compressed
    /// yet (open blocks and blocks at the compressor threads). Counting the latter keeps
    /// where a batch splits its packs from depending on how fast the threads run.
    pub fn size(&self) -> u64 {
        let open: u64 = self.pending.iter().map(|p| p.len() as u64).sum();
        let queued: u64 = self.inflight.values().map(|(len, _)| u64::from(*len)).sum();
        self.written + (open + queued) / 3
    }

    /// Writes the index and trailer and fsyncs the file. The pack is not in any store yet.
    pub fn finish(mut self) -> Result<Finished> {
        let wanted_prev = self.prev;
        self.close_block(0)?;
        self.close_block(1)?;
        self.flush_queue()?;
        self.entries.sort_unstable_by_key(|e| e.0);
        let index_offset = self.written;
        // The index goes out in pieces, after the dedup set is freed: a pack's finish is
        // the peak of a transfer's memory.
        self.seen = Default::default();
        let index_len = 12 + self.blocks.len() * BLOCK_ENTRY + self.entries.len() * OBJECT_ENTRY;
        let mut index = Vec::with_capacity(64 << 10);
        index.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for b in &self.blocks {
            index.extend_from_slice(&b.offset.to_le_bytes());
            index.extend_from_slice(&b.clen.to_le_bytes());
            index.extend_from_slice(&b.ulen.to_le_bytes());
            index.extend_from_slice(&b.checksum);
        }
        index.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        let entries = std::mem::take(&mut self.entries);
        for (id, loc) in &entries {
            if index.len() >= 64 << 10 {
                self.write(&index)?;
                index.clear();
            }
            index.extend_from_slice(&id.0);
            index.extend_from_slice(&loc.block.to_le_bytes());
            index.extend_from_slice(&loc.offset.to_le_bytes());
            index.extend_from_slice(&loc.len.to_le_bytes());
        }
        self.write(&index)?;
        let mut trailer = Vec::with_capacity(24);
        trailer.extend_from_slice(&index_offset.to_le_bytes());
        trailer.extend_from_slice(&(index_len as u64).to_le_bytes());
        trailer.extend_from_slice(END_MAGIC);
        self.write(&trailer)?;
        let id = Id(*self.hasher.finalize().as_bytes());
        self.file.write_all(&id.0).at(&self.tmp)?;
        self.file.sync_all().at(&self.tmp)?;
        let mut done = Finished {
            tmp: self.tmp,
            id,
            prev: self.header_prev,
            objects: entries.len(),
        };
        done.repoint(wanted_prev)?;
        Ok(done)
    }
}

/// A job for a compressor thread: (sequence number, block bytes).
type Job = (u64, Vec<u8>);
/// A compressed block coming back: (sequence number, frame).
type Frame = (u64, io::Result<Vec<u8>>);

/// Long-lived compressor threads, each reusing one zstd context, fed through a channel:
/// the caller keeps reading and hashing while blocks compress on the other cores.
struct Pool {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    done: std::sync::mpsc::Receiver<Frame>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(level: i32) -> Pool {
        let (jobs, job_rx) = std::sync::mpsc::channel::<Job>();
        let (done_tx, done) = std::sync::mpsc::channel::<Frame>();
        let job_rx = std::sync::Arc::new(Mutex::new(job_rx));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let handles = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                std::thread::spawn(move || {
                    let mut ctx = zstd::bulk::Compressor::new(level);
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((seq, data)) = job else { return };
                        let frame = match &mut ctx {
                            Ok(c) => c.compress(&data),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        };
                        if tx.send((seq, frame)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            done,
            handles,
        }
    }

    fn threads(&self) -> usize {
        self.handles.len()
    }

    fn submit(&self, seq: u64, data: Vec<u8>) {
        if let Some(j) = &self.jobs {
            // A send fails only if every worker died; receive() reports that.
            let _ = j.send((seq, data));
        }
    }

    fn receive(&self) -> Result<Frame> {
        self.done
            .recv()
            .map_err(|_| Error::Invalid("the compression threads stopped".into()))
    }

    fn try_receive(&self) -> Option<Frame> {
        self.done.try_recv().ok()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A complete, fsynced pack under a temporary name.
pub struct Finished {
    /// The temporary file (removed if dropped).
    pub tmp: tempfile::TempPath,
    /// Its id (checksum).
    pub id: Id,
    /// The pack it is chained after.
    pub prev: Option<Id>,
    /// Objects in it.
    pub objects: usize,
}

impl Finished {
    /// Rechains the pack after `prev`: rewrites the header field and the checksum.
    pub fn repoint(&mut self, prev: Option<Id>) -> Result<()> {
        if prev == self.prev {
            return Ok(());
        }
        let path: PathBuf = self.tmp.to_path_buf();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        f.seek(SeekFrom::Start(16)).at(&path)?;
        f.write_all(&prev.map_or([0u8; 32], |p| p.0)).at(&path)?;
        let len = f.metadata().at(&path)?.len();
        f.seek(SeekFrom::Start(0)).at(&path)?;
        let mut hasher = blake3::Hasher::new();
        let mut body = (&mut f).take(len - 32);
        io::copy(&mut body, &mut hasher).at(&path)?;
        let id = Id(*hasher.finalize().as_bytes());
        f.seek(SeekFrom::Start(len - 32)).at(&path)?;
        f.write_all(&id.0).at(&path)?;
        f.sync_all().at(&path)?;
        self.id = id;
        self.prev = prev;
        Ok(())
    }
}

/// Turns a pack parse error into an error naming the file.
pub fn bad_pack(path: &Path, reason: impl ToString) -> Error {
    Error::BadPack {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A decode error of the pack format.
fn bad(reason: impl Into<String>) -> DecodeError {
    DecodeError::new(Format::Pack, reason)
}
