//! The storage contract: what every backend — a store directory ([`crate::store::dir`]), the
//! memory model below ([`MemStore`]), an HTTP remote ([`crate::net::client`]), the mock
//! remote ([`crate::mock`]), an object store to come — promises, and what the operations
//! above (log, check, forget, push, pull, clone, gc, repack, the server) may rely on. They
//! use nothing but this module; `tests/backend_suite.rs` holds every implementation to it.
//!
//! # Objects (the CAS)
//!
//! - An object is an immutable byte string named by its BLAKE3 ([`Id::of`]). It is never
//!   rewritten once stored; storing one that is present is a no-op.
//! - **Written means durable**: when [`Backend::put_objects`], [`Batch::commit`] or
//!   [`Backend::add_pack`] returns `Ok`, every object it took survives a crash or power
//!   loss of the backend. Before that, nothing is promised (an interrupted write leaves
//!   objects or nothing, never a damaged object under its id).
//! - **Verify on read**: [`Backend::get_object`] returns bytes that hash to the id, or an
//!   error naming the object ([`Error::ObjectMissing`], [`Error::ObjectCorrupt`]).
//! - **Order**: a page is stored only after the messages it lists and the page it names as
//!   `prev` (format/store-v1.md section 7). Writers hand objects messages first and pages
//!   last, oldest first; a backend keeps that order durable (a page never becomes durable
//!   before what was handed to it earlier). Readers rely on it: a transfer stops at the
//!   first page the destination has, taking everything older to be there.
//!
//! # Refs (the NS)
//!
//! - [`Backend::update_ref`] is a compare-and-swap with a stated [`Expected`] value: it
//!   moves the ref atomically with respect to every other writer of the backend, or fails
//!   with [`Error::RefConflict`] naming what the ref holds, changing nothing. Every
//!   implementation that decides itself does so with [`check_expected`] (a remote's server
//!   decides with its own store's). A ref update returns only once it is durable. An
//!   update whose answer was lost (a network) is judged by reading the ref.
//! - **A ref names only what is complete**: everything a ref names is durable before the
//!   ref moves (objects before refs). A log ref moves only to a complete chain: the writer
//!   checks it ([`crate::log::check_complete`]) unless the backend says it refuses
//!   incomplete ones itself ([`Backend::checks_chains`], a server).
//!
//! # Listing
//!
//! [`Backend::list_objects`], [`Backend::objects_with_prefix`] and [`Backend::list_refs`]
//! see everything stored (or updated) before the call started; what is stored while they
//! run may or may not be listed. A ref that cannot be read fails [`Backend::list_refs`]
//! (naming it): a caller must never act as if a ref it could not read did not exist.
//!
//! # Packs
//!
//! Backends with packs (format/pack-v1.md) keep them in one chain, newest first
//! ([`Backend::pack_chain`]); anyone may read a byte range of a chain pack
//! ([`Backend::read_pack`]). A writer stages a pack where the backend adds it cheaply
//! ([`Backend::stage_pack`], [`Backend::staging_dir`]) and adds it finished
//! ([`Backend::add_pack`]): its objects are then stored like any others. A backend without
//! packs takes a pack by storing its objects.
//!
//! # Leases
//!
//! Upkeep deletes what no ref names, while a writer stores objects before the ref naming
//! them moves. A writer therefore holds a [`WriteLease`] from before its first presence
//! check until after its last ref update: **while any write lease or live timed lease is
//! held, upkeep deletes nothing**, and upkeep holds its exclusive lease
//! ([`Upkeep::exclusive`]) for its whole run, during which no lease is granted
//! (format/store-v1.md section 9). A server holds *timed* leases for its clients across
//! requests ([`TimedLeases`]): each lapses unless renewed within its time to live. An
//! object store implements them with conditional creates and expiries; a directory with
//! `O_EXCL` files.
//!
//! # Upkeep
//!
//! gc and repack use [`Upkeep`], offered by backends whose deletions this process may make
//! ([`Backend::upkeep`]); a backend whose store runs its own (a server) offers
//! [`Backend::gc_at_store`] instead, so `gc` on any backend is one call.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::name::RefName;
use crate::pack::{self, PackWriter};

/// How long a writer waits for a running upkeep before giving up.
pub const WRITER_WAIT: Duration = Duration::from_secs(300);

/// How long upkeep waits for the writers that hold leases to finish.
pub const UPKEEP_WAIT: Duration = Duration::from_secs(60);

/// What a ref update expects the ref to hold (gix-ref's `PreviousValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Whatever it holds, or nothing: the update always applies (last writer wins).
    Any,
    /// The ref must not exist.
    Absent,
    /// The ref must hold this value.
    Equal(Id),
}

impl From<Option<Id>> for Expected {
    /// `None` is [`Expected::Absent`], `Some(id)` is [`Expected::Equal`].
    fn from(v: Option<Id>) -> Expected {
        match v {
            Some(id) => Expected::Equal(id),
            None => Expected::Absent,
        }
    }
}

impl Expected {
    /// Whether a ref holding `actual` meets this expectation.
    pub fn admits(self, actual: Option<Id>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Equal(id) => actual == Some(id),
        }
    }

    /// The expected value as [`Error::RefConflict`] states it (`Any` never conflicts).
    pub fn value(self) -> Option<Id> {
        match self {
            Expected::Equal(id) => Some(id),
            Expected::Any | Expected::Absent => None,
        }
    }
}

/// The one compare-and-swap check of every backend: `Ok` when ref `name`, holding
/// `actual`, may be updated under `expected`, else the [`Error::RefConflict`] to return.
pub fn check_expected(name: &RefName, expected: Expected, actual: Option<Id>) -> Result<()> {
    if expected.admits(actual) {
        return Ok(());
    }
    Err(Error::RefConflict {
        name: name.to_string(),
        expected: expected.value(),
        actual,
    })
}

/// A place that holds objects and refs (see the module documentation for the contract).
pub trait Backend {
    /// Where this backend is, for messages (a path or a URL).
    fn location(&self) -> String;

    /// Where object `id` is or would be, for messages.
    fn object_location(&self, id: &Id) -> String;

    /// The encoded (uncompressed) bytes of object `id`, checked against the id.
    fn get_object(&self, id: &Id) -> Result<Vec<u8>>;

    /// Whether object `id` is present (its content is not checked).
    fn has_object(&self, id: &Id) -> Result<bool>;

    /// Which of `ids` are present; a remote backend answers in one round trip.
    fn present_objects(&self, ids: &[Id]) -> Result<std::collections::HashSet<Id>> {
        let mut out = std::collections::HashSet::new();
        for id in ids {
            if self.has_object(id)? {
                out.insert(*id);
            }
        }
        Ok(out)
    }

    /// Stores encoded objects under their ids (the caller computed `Id::of(bytes)`).
    /// Objects already present are skipped. Returns how many were written; all are durable
    /// when this returns.
    /// The default goes through [`Backend::batch`]; a backend whose batch is built on
    /// `put_objects` (see [`BufferedBatch`]) must implement this itself.
    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        let mut batch = self.batch()?;
        for (id, bytes) in objects {
            batch.add(*id, bytes)?;
        }
        batch.commit()
    }

    /// Starts a batch of objects written as one unit (a pack, where the backend has packs).
    fn batch(&self) -> Result<Box<dyn Batch + '_>>;

    /// Hands `take` each stored compressed block that holds nothing but objects among
    /// `ids`, checked against its block checksum, so a transfer copies it without
    /// recompressing. Objects not offered are for the caller to read one by one; backends
    /// without packs offer nothing.
    fn raw_blocks(&self, ids: &[Id], take: &mut dyn FnMut(RawBlock) -> Result<()>) -> Result<()> {
        let _ = (ids, take);
        Ok(())
    }

    /// Reads every stored object once, checked against its id, in the order cheapest for
    /// the backend (packs block by block), and hands each to `f` with its bytes or the
    /// error that reading it gave.
    fn scan_objects(&self, f: &mut dyn FnMut(Id, Result<Vec<u8>>)) -> Result<()> {
        for id in self.list_objects()? {
            f(id, self.get_object(&id));
        }
        Ok(())
    }

    /// Every object id present, sorted.
    fn list_objects(&self) -> Result<Vec<Id>>;

    /// The ids whose hex form starts with `prefix` (lowercase hex, at least 2 digits).
    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>>;

    /// The current value of a ref, `None` when it does not exist.
    fn read_ref(&self, name: &RefName) -> Result<Option<Id>>;

    /// Compare-and-swap: sets `name` to `new` (`None` deletes it) if it holds what
    /// `expected` says ([`check_expected`]); otherwise [`Error::RefConflict`] and nothing
    /// changes. Durable when it returns.
    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()>;

    /// All refs below `refs/<prefix>/`, sorted. An entry there that cannot be read as a
    /// ref (a symbolic link, an invalid name) fails the listing, naming it: a caller must
    /// never act as if a ref it could not read did not exist.
    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>>;

    /// Whether `update_ref` of a log refuses a chain that is not complete in this backend
    /// ([`Error::IncompleteChain`]), so that writers need not check it first (a server
    /// does; a directory or memory store moves whatever it is told to).
    fn checks_chains(&self) -> bool {
        false
    }

    /// A writer's lease on this backend (format/store-v1.md section 9): while the returned
    /// value lives, upkeep deletes nothing, so the objects this writer stores or finds
    /// present stay until its ref update names them. Writers take it before their first
    /// presence check and drop it after their last ref update. Waits up to
    /// [`WRITER_WAIT`] for a running upkeep.
    fn write_lease(&self) -> Result<WriteLease> {
        self.write_lease_waiting(WRITER_WAIT)
    }

    /// [`Backend::write_lease`], waiting up to `wait` for a running upkeep before it fails
    /// with [`Error::Locked`]. Leases of one process share: a writer holding one gets
    /// another at once. Default: a backend without upkeep of its own needs none.
    fn write_lease_waiting(&self, wait: Duration) -> Result<WriteLease> {
        let _ = wait;
        Ok(WriteLease::none())
    }

    /// The timed leases this backend holds for clients of a server, where it offers them.
    fn timed_leases(&self) -> Option<&dyn TimedLeases> {
        None
    }

    /// Like [`Backend::list_refs`], but each entry that cannot be read as a ref is named
    /// (one line each) instead of failing the listing: for `check`, which reports them all
    /// and still checks the rest.
    fn list_refs_lenient(&self, prefix: &str) -> Result<(Vec<RefName>, Vec<String>)> {
        Ok((self.list_refs(prefix)?, Vec::new()))
    }

    /// What the backend's own layout says beyond objects and refs (stray files, leftovers
    /// of crashed writers). Default: nothing.
    fn layout(&self) -> Result<Layout> {
        Ok(Layout::default())
    }

    /// The packs on this backend's chain, newest first. Default: none (no packs).
    fn pack_chain(&self) -> Result<Vec<PackInfo>> {
        Ok(Vec::new())
    }

    /// Where pack `id` is or would be, for messages.
    fn pack_location(&self, id: &Id) -> String {
        format!("{} pack {id}", self.location())
    }

    /// `len` bytes of chain pack `id` from byte `offset`, as a reader (a whole pack is
    /// never held in memory). A pack not on the chain is [`Error::BadPack`] saying so; a
    /// range beyond its end an error naming it.
    fn read_pack(&self, id: &Id, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send>> {
        let _ = (offset, len);
        Err(not_on_chain(&self.pack_location(id)))
    }

    /// A local directory where a writer stages files on their way into this backend
    /// (uploads, packs): on the store's own file system where adding is then a rename.
    /// Default: the system's temporary directory.
    fn staging_dir(&self) -> Result<PathBuf> {
        Ok(std::env::temp_dir())
    }

    /// A pack writer staged where [`Backend::add_pack`] takes it cheapest (chained after
    /// the current head where the backend has a chain).
    fn stage_pack(&self) -> Result<PackWriter> {
        PackWriter::create(
            &self.staging_dir()?,
            None,
            crate::store::config::DEFAULT_ZSTD_LEVEL,
        )
    }

    /// Adds a finished pack (its objects verified by whoever wrote or received it): its
    /// objects are stored, durably, when this returns, and the pack's staged file is gone.
    /// Returns the pack's id on this backend's chain; `None` when the backend stored the
    /// objects some other way. Default: stores the objects, messages before pages.
    fn add_pack(&self, pack: pack::Finished) -> Result<Option<Id>> {
        put_pack_objects(self, &pack)?;
        Ok(None)
    }

    /// A local directory for data derived from this backend that can be recomputed (the
    /// spec view's index); `None`: such caches live in memory only.
    fn cache_dir(&self) -> Option<PathBuf> {
        None
    }

    /// The upkeep primitives, where this process may delete from the backend itself.
    fn upkeep(&self) -> Option<&dyn Upkeep> {
        None
    }

    /// Runs gc where the store is (a server runs the library's gc on its own store) for a
    /// backend that offers no [`Upkeep`] here; `None` when it offers neither.
    fn gc_at_store(&self, grace: Duration, dry_run: bool) -> Option<Result<Collected>> {
        let _ = (grace, dry_run);
        None
    }
}

pub(crate) fn not_on_chain(location: &str) -> Error {
    Error::BadPack {
        path: location.into(),
        reason: "is not on this store's pack chain".into(),
    }
}

/// Stores the objects of a finished pack through [`Backend::put_objects`], block by block,
/// messages and opaque blobs before pages (the order rule), so memory holds one block.
pub fn put_pack_objects(b: &(impl Backend + ?Sized), done: &pack::Finished) -> Result<usize> {
    let path: &std::path::Path = &done.tmp;
    let p = pack::Pack::parse(pack::map(path)?).map_err(|r| pack::bad_pack(path, r))?;
    let by_block = p.objects_by_block().map_err(|r| pack::bad_pack(path, r))?;
    let is_page =
        |b: &[u8]| crate::model::object::peek_kind(b) == Some(crate::model::object::Kind::Page);
    let mut written = 0;
    for pages in [false, true] {
        for (n, objects) in by_block.iter().enumerate() {
            if objects.is_empty() {
                continue;
            }
            let data = p
                .decompress_block(n as u32)
                .map_err(|r| pack::bad_pack(path, r))?;
            let mut todo: Vec<(Id, &[u8])> = Vec::new();
            for (id, loc) in objects {
                let bytes = data
                    .get(loc.offset as usize..(loc.offset + loc.len) as usize)
                    .ok_or_else(|| {
                        pack::bad_pack(path, format!("object {id} lies outside its block"))
                    })?;
                if is_page(bytes) == pages {
                    verify_id(id, bytes, || path.display().to_string())?;
                    todo.push((*id, bytes));
                }
            }
            written += b.put_objects(&todo)?;
        }
    }
    Ok(written)
}

/// A pack on a backend's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Its id (the checksum in its trailer).
    pub id: Id,
    /// Its size in bytes.
    pub size: u64,
    /// How many objects it holds.
    pub objects: usize,
}

/// Timed leases: writer leases a server holds for its clients across requests
/// (format/http-api.md section 10). Each holds upkeep off like a [`WriteLease`] until it is
/// released or its time to live passes without a renewal.
pub trait TimedLeases {
    /// Takes lease `id` (chosen by the caller, unique) for `ttl`, waiting up to `wait` for
    /// a running upkeep before it fails with [`Error::Locked`].
    fn take(&self, id: &str, ttl: Duration, wait: Duration) -> Result<()>;
    /// Extends lease `id` by `ttl` from now; false when it is gone (released, or expired:
    /// what it protected may have been collected).
    fn renew(&self, id: &str, ttl: Duration) -> Result<bool>;
    /// Ends lease `id` (gone already is fine).
    fn release(&self, id: &str) -> Result<()>;
    /// Works under lease `id`: when it is live, a [`WriteLease`] for one request that
    /// holds nothing more (the timed lease already holds upkeep off) after the backend
    /// refreshed what upkeep may have changed; `None` when it is gone.
    fn join(&self, id: &str) -> Result<Option<WriteLease>>;
    /// How many timed leases are held now.
    fn count(&self) -> Result<usize>;
}

/// How [`Upkeep::delete_loose`] makes its deletions durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Each deletion is durable before the next starts (pages, newest first: a page that
    /// remains after a crash still has what it names).
    EachDurable,
    /// Durable at the next [`Upkeep::flush`].
    AtFlush,
}

/// What upkeep sees of a backend: its loose objects and chain packs, with their ages as
/// the backend measures them (a file's modification time; an object store's
/// `Last-Modified`).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Objects stored outside packs, with their ages.
    pub loose: Vec<(Id, Duration)>,
    /// The chain's packs, newest first, with their ages.
    pub packs: Vec<(PackInfo, Duration)>,
    /// The chain's head (what [`Upkeep::replace_chain`] expects).
    pub head: Option<Id>,
}

/// Something upkeep may remove (a temporary file of a crashed writer, a pack off the
/// chain), as the backend names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover(pub String);

/// The primitives gc and repack are written against ([`Backend::upkeep`]).
pub trait Upkeep {
    /// Takes the exclusive upkeep lease: fails at once if another upkeep holds it, then
    /// waits up to `wait` for the writers holding leases (timed ones included) to finish.
    /// While the guard lives no lease is granted and no pack is added.
    fn exclusive(&self, wait: Duration) -> Result<UpkeepGuard>;
    /// The loose objects and chain packs, read fresh.
    fn inventory(&self) -> Result<Inventory>;
    /// Opens chain pack `id` for reading (structure checked).
    fn open_pack(&self, id: &Id) -> Result<std::sync::Arc<pack::Pack<memmap2::Mmap>>>;
    /// Deletes loose objects (absent already is fine); returns how many were there.
    fn delete_loose(&self, ids: &[Id], how: Removal) -> Result<usize>;
    /// A pack writer for a rewrite of the chain, chained after `prev`.
    fn rewrite_writer(&self, prev: Option<Id>) -> Result<PackWriter>;
    /// Replaces the whole chain by `packs` (each chained after the one before, the last
    /// the new head) as one compare-and-swap from `old_head` — failing with
    /// [`Error::RefConflict`] on `packs`, nothing changed, if the chain moved — then
    /// deletes the packs it replaced. `lock_held`: the
    /// caller holds [`Upkeep::exclusive`], which already keeps packs from being added.
    /// Returns how many pack files went.
    fn replace_chain(
        &self,
        old_head: Option<Id>,
        packs: Vec<pack::Finished>,
        lock_held: bool,
    ) -> Result<usize>;
    /// Temporary files older than `age` and packs off the chain.
    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>>;
    /// Removes leftovers (best effort: one that cannot be removed stays harmless).
    fn remove_leftovers(&self, which: &[Leftover]) -> Result<usize>;
    /// Bytes the backend uses, for the report.
    fn stored_bytes(&self) -> Result<u64>;
    /// Makes every deletion so far durable.
    fn flush(&self) -> Result<()>;
    /// The zstd level for rewritten packs.
    fn zstd_level(&self) -> i32;
    /// Whether the backend keeps packs at all (repack has nothing to do otherwise).
    fn keeps_packs(&self) -> bool {
        true
    }
}

/// The exclusive upkeep lease, released when dropped ([`Upkeep::exclusive`]).
pub struct UpkeepGuard {
    _guard: Box<dyn std::any::Any + Send>,
}

impl UpkeepGuard {
    /// A guard kept alive by `guard` (whose `Drop` releases it).
    pub fn new(guard: impl std::any::Any + Send) -> UpkeepGuard {
        UpkeepGuard {
            _guard: Box::new(guard),
        }
    }
}

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Collected {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Objects reachable from the refs.
    pub reachable: usize,
    /// Unreferenced objects removed.
    pub objects: usize,
    /// Their uncompressed size.
    pub bytes: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_young: usize,
    /// Unreferenced opaque blobs kept (bytes added through the CAS API that are not typed
    /// objects: their references cannot be followed yet, so gc never deletes them).
    pub kept_opaque: usize,
    /// Loose object files removed.
    pub loose_removed: usize,
    /// Packs rewritten without their unreferenced entries.
    pub packs_rewritten: usize,
    /// Leftover files removed (temporary files, pack files off the chain).
    pub leftovers_removed: usize,
    /// Bytes on disk before and after.
    pub disk_before: u64,
    /// Bytes on disk after.
    pub disk_after: u64,
    /// The ids removed (listed by `--dry-run`).
    #[serde(skip)]
    pub removed_ids: Vec<Id>,
}

/// A writer's hold on a backend, released when dropped ([`Backend::write_lease`]).
pub struct WriteLease {
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

impl WriteLease {
    /// A lease that holds nothing, for backends that need none.
    pub fn none() -> WriteLease {
        WriteLease { _guard: None }
    }

    /// A lease kept alive by `guard` (whose `Drop` releases it).
    pub fn new(guard: impl std::any::Any + Send) -> WriteLease {
        WriteLease {
            _guard: Some(Box::new(guard)),
        }
    }
}

/// Findings about a backend's layout, for `check`.
#[derive(Debug, Default, Clone)]
pub struct Layout {
    /// Things that make the store unsound (stray files where objects or refs belong).
    pub problems: Vec<String>,
    /// Harmless leftovers worth mentioning (temporary files, locks of crashed writers).
    pub notes: Vec<String>,
}

/// Objects written together. Nothing is guaranteed to be stored before `commit` returns;
/// everything is durable after it.
pub trait Batch {
    /// Adds an encoded object with its id (`Id::of(bytes)`); duplicates are skipped.
    fn add(&mut self, id: Id, bytes: &[u8]) -> Result<()>;
    /// Adds a compressed block copied whole from another store.
    fn add_raw_block(&mut self, block: &RawBlock) -> Result<()>;
    /// Makes everything added durable; returns how many objects were new.
    fn commit(self: Box<Self>) -> Result<usize>;
}

/// A zstd frame holding whole objects, as found in a pack.
#[derive(Debug, Clone)]
pub struct RawBlock {
    /// The compressed frame.
    pub frame: Vec<u8>,
    /// Its decompressed length.
    pub ulen: u32,
    /// Its checksum (see [`crate::pack::frame_checksum`]), already checked by the source.
    pub checksum: [u8; 8],
    /// The objects in it: (id, offset, length) in the decompressed bytes.
    pub objects: Vec<(Id, u32, u32)>,
}

impl RawBlock {
    /// Its entry for a pack's block table (the offset is the writer's to set).
    pub fn entry(&self) -> crate::pack::Block {
        crate::pack::Block {
            offset: 0,
            clen: self.frame.len() as u32,
            ulen: self.ulen,
            checksum: self.checksum,
        }
    }

    /// Decompresses the block, checks every object against its id and hands each to `f`
    /// with its bytes, in block order.
    pub fn for_each_verified(&self, mut f: impl FnMut(&Id, &[u8]) -> Result<()>) -> Result<()> {
        let bad = |reason: String| Error::Decode {
            what: "a copied block".into(),
            source: crate::error::DecodeError::new(crate::error::Format::Pack, reason),
        };
        let data = zstd::bulk::decompress(&self.frame, self.ulen as usize)
            .map_err(|e| bad(format!("does not decompress: {e}")))?;
        for (id, offset, len) in &self.objects {
            let bytes = data
                .get(*offset as usize..(*offset as usize).saturating_add(*len as usize))
                .ok_or_else(|| bad(format!("object {id} lies outside it")))?;
            verify_id(id, bytes, || "a copied block".into())?;
            f(id, bytes)?;
        }
        Ok(())
    }
}

/// A batch that collects objects in memory and stores them with `put_objects` at commit;
/// for backends without a streaming format of their own.
pub struct BufferedBatch<'a> {
    backend: &'a dyn Backend,
    objects: Vec<(Id, Vec<u8>)>,
}

impl<'a> BufferedBatch<'a> {
    /// An empty batch for `backend`.
    pub fn new(backend: &'a dyn Backend) -> BufferedBatch<'a> {
        BufferedBatch {
            backend,
            objects: Vec::new(),
        }
    }
}

impl Batch for BufferedBatch<'_> {
    fn add(&mut self, id: Id, bytes: &[u8]) -> Result<()> {
        self.objects.push((id, bytes.to_vec()));
        Ok(())
    }

    fn add_raw_block(&mut self, block: &RawBlock) -> Result<()> {
        block.for_each_verified(|id, bytes| {
            self.objects.push((*id, bytes.to_vec()));
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> Result<usize> {
        let refs: Vec<(Id, &[u8])> = self.objects.iter().map(|(id, b)| (*id, &b[..])).collect();
        self.backend.put_objects(&refs)
    }
}

/// Checks that `bytes` hash to `id`.
pub fn verify_id(id: &Id, bytes: &[u8], location: impl FnOnce() -> String) -> Result<()> {
    let actual = Id::of(bytes);
    if &actual != id {
        return Err(Error::ObjectCorrupt {
            id: *id,
            location: location(),
            reason: format!("its content hashes to {actual}"),
        });
    }
    Ok(())
}
