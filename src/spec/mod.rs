//! The 3/REMOTE-LOG wire form of logs (`format/spec-view.md`): the spec view a server
//! derives for each native log (a chain of `RemoteLog` pages whose payloads are
//! `vac.mvds.Message`s, every one addressed by the BLAKE3-256 of its bytes), the persistent
//! index that maps those addresses back to native objects, the walk of spec-form logs
//! written by third parties (for `gc` and `check`). `import-spec` is a transfer
//! ([`crate::transfer::import_spec`]).
//!
//! Nothing of the view is stored in the CAS: pages and payloads are re-encoded from the
//! native objects on demand, and `spec-view/index-v1` only remembers which native object
//! each spec address stands for (73 bytes per page and per message), so a message's bytes
//! are never stored twice.

pub mod proto;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use prost::Message as _;

use crate::error::{DecodeError, Error, Format, Result};
use crate::id::Id;
use crate::log::{self, read_message, read_page};
use crate::model::name::{IMPORTS, LOGS, SPEC};
use crate::model::object::{decode_message, Message, Page};
use crate::spec::proto::vac::{mvds, remotelog};
use crate::store::Backend;

pub use remotelog::remote_log::Pair;
pub use remotelog::RemoteLog;

/// The index file, relative to the store root.
pub const INDEX_FILE: &str = "spec-view/index-v1";
/// Size of one index record: kind, native id, spec address, check.
pub const RECORD_LEN: usize = 1 + 32 + 32 + 8;
const KIND_MESSAGE: u8 = 1;
const KIND_PAGE: u8 = 2;

// ---------------------------------------------------------------------------------------
// Encodings

/// The `vac.mvds.Message` encoding of a message (canonical proto3: fields in order,
/// defaults omitted), the bytes the spec view serves and addresses.
pub fn payload(m: &Message) -> Vec<u8> {
    mvds::Message {
        group_id: m.group_id.clone(),
        timestamp: m.timestamp,
        body: m.body.clone(),
    }
    .encode_to_vec()
}

/// Decodes a `vac.mvds.Message`.
pub fn decode_payload(bytes: &[u8]) -> std::result::Result<Message, DecodeError> {
    let m = mvds::Message::decode(bytes)
        .map_err(|e| DecodeError::new(Format::Spec, format!("not a vac.mvds.Message: {e}")))?;
    Ok(Message {
        group_id: m.group_id,
        timestamp: m.timestamp,
        body: m.body,
    })
}

/// A spec-form page when `bytes` decodes as a `RemoteLog` that has pairs or a tail and
/// whose hashes are all 32 bytes; `None` for any other content a spec name may hold.
pub fn as_remote_log(bytes: &[u8]) -> Option<RemoteLog> {
    let rl = RemoteLog::decode(bytes).ok()?;
    let sized = |b: &[u8]| b.len() == 32;
    let plausible = (!rl.pair.is_empty() || !rl.tail.is_empty())
        && (rl.tail.is_empty() || sized(&rl.tail))
        && rl
            .pair
            .iter()
            .all(|p| sized(&p.remote_hash) && sized(&p.local_hash));
    plausible.then_some(rl)
}

// ---------------------------------------------------------------------------------------
// The view index

#[derive(Default)]
struct Maps {
    loaded: bool,
    /// Spec address → (kind, native id).
    by_spec: HashMap<Id, (u8, Id)>,
    /// Native id → spec address.
    by_native: HashMap<Id, Id>,
}

impl Maps {
    fn insert(&mut self, kind: u8, native: Id, spec: Id) {
        self.by_spec.insert(spec, (kind, native));
        self.by_native.insert(native, spec);
    }
}

/// Which native object each spec address of a store's view stands for, in memory and in
/// `spec-view/index-v1` (a cache: deleting it only costs recomputation).
pub struct ViewIndex {
    path: Option<PathBuf>,
    maps: Mutex<Maps>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<ViewIndex>>> {
    static REG: OnceLock<Mutex<HashMap<PathBuf, Arc<ViewIndex>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn record_bytes(kind: u8, native: &Id, spec: &Id) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[0] = kind;
    r[1..33].copy_from_slice(&native.0);
    r[33..65].copy_from_slice(&spec.0);
    let check = blake3::hash(&r[..65]);
    r[65..].copy_from_slice(&check.as_bytes()[..8]);
    r
}

fn parse_record(r: &[u8]) -> Option<(u8, Id, Id)> {
    let check = blake3::hash(&r[..65]);
    if r[65..] != check.as_bytes()[..8] || !matches!(r[0], KIND_MESSAGE | KIND_PAGE) {
        return None;
    }
    Some((
        r[0],
        Id::from_slice(&r[1..33])?,
        Id::from_slice(&r[33..65])?,
    ))
}

impl ViewIndex {
    /// The index of the store at `root`, shared by every user in this process.
    pub fn for_store(root: &Path) -> Arc<ViewIndex> {
        lock(registry())
            .entry(root.to_path_buf())
            .or_insert_with(|| {
                Arc::new(ViewIndex {
                    path: Some(root.join(INDEX_FILE)),
                    maps: Mutex::default(),
                })
            })
            .clone()
    }

    /// The index of backend `b`: the one kept in its [`Backend::cache_dir`], shared by
    /// every user in this process; for a backend without one, a new index in memory (a
    /// location does not tell two such backends apart, and a wrong cache would be worse
    /// than none).
    pub fn for_backend(b: &dyn Backend) -> Arc<ViewIndex> {
        match b.cache_dir() {
            Some(dir) => ViewIndex::for_store(&dir),
            None => Arc::new(ViewIndex::in_memory()),
        }
    }

    /// An index kept only in memory (for backends without a directory).
    pub fn in_memory() -> ViewIndex {
        ViewIndex {
            path: None,
            maps: Mutex::default(),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        let mut m = lock(&self.maps);
        if !m.loaded {
            m.loaded = true;
            // Read record by record, never through a link: the file is a cache, so
            // anything unreadable is recomputed later rather than an error.
            let root = self
                .path
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::parent);
            let opened = root.map(|root| {
                crate::fsutil::open_below(root, Path::new(INDEX_FILE), "the index", u64::MAX)
            });
            if let Some(Ok(Some((f, _)))) = opened {
                let mut f = std::io::BufReader::new(f);
                let mut r = [0u8; RECORD_LEN];
                while f.read_exact(&mut r).is_ok() {
                    // Records failing their check (a torn write after a crash) are skipped.
                    if let Some((kind, native, spec)) = parse_record(&r) {
                        m.insert(kind, native, spec);
                    }
                }
            }
        }
        m
    }

    /// Appends records to the file. Failure is not fatal: the view is recomputed later.
    fn persist(&self, records: &[[u8; RECORD_LEN]]) {
        let Some(path) = &self.path else { return };
        if records.is_empty() {
            return;
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            // Never appended to through a link (it could point out of the store).
            let mut f = std::os::unix::fs::OpenOptionsExt::custom_flags(
                fs::OpenOptions::new().create(true).append(true),
                rustix::fs::OFlags::NOFOLLOW.bits() as i32,
            )
            .open(path)?;
            // A crash may have left a partial record; realign so later records parse.
            let len = f.metadata()?.len();
            let torn = len % RECORD_LEN as u64;
            let mut buf = vec![
                0u8;
                if torn == 0 {
                    0
                } else {
                    RECORD_LEN - torn as usize
                }
            ];
            for r in records {
                buf.extend_from_slice(r);
            }
            // One write with O_APPEND: concurrent appenders do not interleave records.
            f.write_all(&buf)
        };
        if let Err(e) = write() {
            eprintln!(
                "remotelog: cannot write {} ({e}); the spec view will be recomputed",
                path.display()
            );
        }
    }

    /// Drops every record whose native object is in `removed` (called by `gc`).
    pub fn prune(&self, removed: &HashSet<Id>) -> Result<()> {
        let mut m = self.maps();
        m.by_spec.retain(|_, (_, native)| !removed.contains(native));
        m.by_native.retain(|native, _| !removed.contains(native));
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !path.exists() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(m.by_spec.len() * RECORD_LEN);
        for (spec, (kind, native)) in &m.by_spec {
            out.extend_from_slice(&record_bytes(*kind, native, spec));
        }
        crate::fsutil::write_atomic(path, &out)
    }

    /// How many spec addresses the index knows.
    pub fn len(&self) -> usize {
        self.maps().by_spec.len()
    }

    /// True when the index knows no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the records of removed objects from the view index of backend `b` (gc).
pub fn prune_view_index(b: &dyn Backend, removed: &HashSet<Id>) -> Result<()> {
    ViewIndex::for_backend(b).prune(removed)
}

// ---------------------------------------------------------------------------------------
// Deriving the view

struct Builder<'a> {
    b: &'a dyn Backend,
    m: MutexGuard<'a, Maps>,
    new: Vec<[u8; RECORD_LEN]>,
}

impl Builder<'_> {
    fn remember(&mut self, kind: u8, native: Id, spec: Id) {
        self.m.insert(kind, native, spec);
        self.new.push(record_bytes(kind, &native, &spec));
    }

    /// The `RemoteLog` of a native page whose `prev` is already indexed.
    fn page_view(&mut self, page: &Page) -> Result<Vec<u8>> {
        let mut pair = Vec::with_capacity(page.entries.len());
        for e in &page.entries {
            let known = self.m.by_native.get(&e.h2).copied();
            // Embedded payloads are in the page; others are read only when not indexed.
            let (addr, data) = match (known, &e.embedded) {
                (Some(a), None) => (a, Vec::new()),
                _ => {
                    let msg = read_message(self.b, e)?;
                    let bytes = payload(&msg);
                    let a = Id::of(&bytes);
                    if known.is_none() {
                        self.remember(KIND_MESSAGE, e.h2, a);
                    }
                    (
                        a,
                        if e.embedded.is_some() {
                            bytes
                        } else {
                            Vec::new()
                        },
                    )
                }
            };
            pair.push(Pair {
                remote_hash: addr.0.to_vec(),
                local_hash: e.h1.0.to_vec(),
                data,
            });
        }
        let tail = match page.prev {
            None => Vec::new(),
            Some(p) => match self.m.by_native.get(&p) {
                Some(a) => a.0.to_vec(),
                None => {
                    return Err(Error::Invalid(format!(
                        "spec view: page {p} is not indexed before its successor"
                    )))
                }
            },
        };
        Ok(RemoteLog { pair, tail }.encode_to_vec())
    }

    /// Indexes the chain ending at native page `head` (stopping at the first page already
    /// indexed) and returns the view of `head`.
    fn chain(&mut self, head: Id) -> Result<Vec<u8>> {
        let mut todo = Vec::new();
        for item in log::pages(self.b, Some(head)) {
            let (id, page) = item?;
            if self.m.by_native.contains_key(&id) {
                if todo.is_empty() {
                    // `head` itself is indexed; its view is re-derived from the index.
                    return self.page_view(&page);
                }
                break;
            }
            todo.push((id, page));
        }
        let mut last = Vec::new();
        for (id, page) in todo.iter().rev() {
            last = self.page_view(page)?;
            let addr = Id::of(&last);
            self.remember(KIND_PAGE, *id, addr);
        }
        Ok(last)
    }
}

fn with_builder<T>(
    b: &dyn Backend,
    idx: &ViewIndex,
    f: impl FnOnce(&mut Builder<'_>) -> Result<T>,
) -> Result<T> {
    let mut bl = Builder {
        b,
        m: idx.maps(),
        new: Vec::new(),
    };
    let out = f(&mut bl);
    // What was computed is right even when a later step failed: keep it.
    idx.persist(&bl.new);
    out
}

/// The `RemoteLog` bytes of native page `head` (what NS `Fetch` answers for a native log).
pub fn head_view(b: &dyn Backend, idx: &ViewIndex, head: Id) -> Result<Vec<u8>> {
    with_builder(b, idx, |bl| bl.chain(head))
}

/// The bytes at spec address `addr` of the view of `b`'s native logs: a `RemoteLog` page or
/// a `vac.mvds.Message`, whose BLAKE3 is `addr`; `None` when the view has no such address.
pub fn view_get(b: &dyn Backend, idx: &ViewIndex, addr: &Id) -> Result<Option<Vec<u8>>> {
    with_builder(b, idx, |bl| {
        let mut hit = bl.m.by_spec.get(addr).copied();
        if hit.is_none() {
            // Not indexed (a new head, or a dropped index): index every current head. When
            // every head is indexed already this is a read of each log ref.
            for r in b.list_refs(LOGS)? {
                if let Some(head) = b.read_ref(&r)? {
                    if !bl.m.by_native.contains_key(&head) {
                        bl.chain(head)?;
                    }
                }
            }
            hit = bl.m.by_spec.get(addr).copied();
        }
        let Some((kind, native)) = hit else {
            return Ok(None);
        };
        let bytes = match kind {
            KIND_MESSAGE => match b.get_object(&native) {
                Ok(obj) => {
                    let m = decode_message(&obj).map_err(|e| Error::ObjectCorrupt {
                        id: native,
                        location: b.object_location(&native),
                        reason: e.to_string(),
                    })?;
                    payload(&m)
                }
                Err(Error::ObjectMissing { .. }) => return Ok(None),
                Err(e) => return Err(e),
            },
            _ => match read_page(b, &native) {
                Ok(page) => {
                    if let Some(prev) = page.prev {
                        if !bl.m.by_native.contains_key(&prev) {
                            bl.chain(prev)?;
                        }
                    }
                    bl.page_view(&page)?
                }
                Err(Error::ObjectMissing { .. }) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        // The index is a cache; only bytes that hash to the address are ever served.
        Ok((Id::of(&bytes) == *addr).then_some(bytes))
    })
}

// ---------------------------------------------------------------------------------------
// Spec-form logs in a store (written by third parties through Update/Add)

/// What a spec-form log stored in a backend references.
#[derive(Debug, Default)]
pub struct SpecChain {
    /// The pages (head content included) and payloads present in the backend.
    pub present: Vec<Id>,
    /// Pages walked.
    pub pages: usize,
    /// Pairs seen.
    pub pairs: usize,
    /// What is missing or inconsistent, naming the page and entry.
    pub problems: Vec<String>,
}

/// Most pages of a stored spec-form log `gc` and `check` follow.
pub const MAX_STORED_PAGES: usize = 10_000_000;

/// Walks the spec-form log whose head content is object `head` (the target of a
/// `refs/spec/*` ref). Content that is not a `RemoteLog` is opaque and ends the walk
/// quietly. With `verify`, payloads are read and their H1 compared with `localHash`.
pub fn stored_chain(b: &dyn Backend, head: Id, verify: bool) -> SpecChain {
    let mut out = SpecChain::default();
    let mut visited = HashSet::new();
    let mut next = Some(head);
    let mut n = 0usize;
    while let Some(id) = next.take() {
        n += 1;
        if !visited.insert(id) || n > MAX_STORED_PAGES {
            out.problems.push(format!(
                "page {n} ({id}): the tails loop or run on too long"
            ));
            break;
        }
        let bytes = match b.get_object(&id) {
            Ok(bytes) => bytes,
            Err(e) => {
                // A missing head is the ref's problem, which `check` reports itself.
                if n > 1 {
                    out.problems.push(format!("page {n} ({id}): {e}"));
                }
                break;
            }
        };
        out.present.push(id);
        let Some(rl) = as_remote_log(&bytes) else {
            if n > 1 {
                out.problems
                    .push(format!("page {n} ({id}): not a vac.remotelog.RemoteLog"));
            }
            break;
        };
        out.pages += 1;
        for (i, p) in rl.pair.iter().enumerate() {
            out.pairs += 1;
            let at = || format!("page {n} ({id}) entry {i}");
            let Some(addr) = Id::from_slice(&p.remote_hash) else {
                continue; // as_remote_log checked the sizes
            };
            if !p.data.is_empty() && Id::of(&p.data) != addr {
                out.problems.push(format!(
                    "{}: embedded data does not hash to remoteHash {addr}",
                    at()
                ));
            }
            let got = if verify {
                b.get_object(&addr).map(Some)
            } else {
                b.has_object(&addr).map(|h| h.then(Vec::new))
            };
            match got {
                Ok(Some(bytes)) => {
                    out.present.push(addr);
                    if verify {
                        match decode_payload(&bytes) {
                            Ok(m) if m.h1().0[..] == p.local_hash[..] => {}
                            Ok(m) => out.problems.push(format!(
                                "{}: payload {addr} has H1 {}, localHash says {}",
                                at(),
                                m.h1(),
                                hex::encode(&p.local_hash)
                            )),
                            Err(e) => out.problems.push(format!("{}: payload {addr}: {e}", at())),
                        }
                    }
                }
                Ok(None) => out
                    .problems
                    .push(format!("{}: payload {addr} is not in this store", at())),
                Err(e) => out.problems.push(format!("{}: {e}", at())),
            }
        }
        next = Id::from_slice(&rl.tail);
    }
    out
}

/// Ids `gc` must keep for spec names: what each `refs/spec/*` spec-form log and each
/// `refs/imports/*` record reaches.
pub fn mark(b: &dyn Backend, marked: &mut HashSet<Id>) -> Result<()> {
    for r in b.list_refs(IMPORTS)? {
        if let Some(id) = b.read_ref(&r)? {
            marked.insert(id);
        }
    }
    for r in b.list_refs(SPEC)? {
        if let Some(id) = b.read_ref(&r)? {
            marked.insert(id);
            marked.extend(stored_chain(b, id, false).present);
        }
    }
    Ok(())
}

/// Entry points for the fuzz targets (`fuzz/`) into this module's private decoders. Not an
/// API: they only exist so that the fuzzers and their corpus test run the real code.
#[doc(hidden)]
pub mod fuzz_entry {
    use super::{parse_record, record_bytes, RECORD_LEN};

    /// Reads `bytes` as `spec-view/index-v1` does: for each record that passes its check,
    /// its position and its encoding again.
    pub fn view_records(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
        bytes
            .chunks_exact(RECORD_LEN)
            .enumerate()
            .filter_map(|(i, r)| {
                let (kind, native, spec) = parse_record(r)?;
                Some((i, record_bytes(kind, &native, &spec).to_vec()))
            })
            .collect()
    }
}
