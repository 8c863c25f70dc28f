//! The storage trait: a CAS (objects by id) and an NS (refs by name), and an in-memory
//! implementation. Everything above this layer (logs, check, remotes) works on any
//! [`Backend`]; the file-system store is in [`crate::store`].
//!
//! Contract for implementations:
//! - `get_object` returns bytes whose BLAKE3 equals the id, or an error naming the object.
//! - `put_objects` returns only when every object is durable (readable after a crash).
//! - `update_ref` is a compare-and-swap: it moves a ref from `expected` to `new` or fails
//!   with [`Error::RefConflict`], atomically with respect to other writers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::name::RefName;

/// A place that holds objects and refs.
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

    /// Compare-and-swap: sets `name` to `new` (`None` deletes it) if it holds `expected`.
    fn update_ref(&self, name: &RefName, expected: Option<Id>, new: Option<Id>) -> Result<()>;

    /// All refs below `refs/<prefix>/`, sorted. An entry there that cannot be read as a
    /// ref (a symbolic link, an invalid name) fails the listing, naming it: a caller must
    /// never act as if a ref it could not read did not exist.
    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>>;

    /// A writer's lease on this backend (format/store-v1.md section 9): while the returned
    /// value lives, upkeep deletes nothing, so the objects this writer stores or finds
    /// present stay until its ref update names them. Writers take it before their first
    /// presence check and drop it after their last ref update. Default: a backend without
    /// upkeep of its own needs none.
    fn write_lease(&self) -> Result<WriteLease> {
        Ok(WriteLease::none())
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
        let data = zstd::bulk::decompress(&self.frame, self.ulen as usize)
            .map_err(|e| Error::Invalid(format!("a copied block does not decompress: {e}")))?;
        for (id, offset, len) in &self.objects {
            let bytes = data
                .get(*offset as usize..(*offset as usize + *len as usize))
                .ok_or_else(|| {
                    Error::Invalid(format!("object {id} lies outside its copied block"))
                })?;
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

/// A backend in memory, for tests and as the model the other backends follow.
#[derive(Default)]
pub struct MemStore {
    objects: Mutex<HashMap<Id, Vec<u8>>>,
    refs: Mutex<BTreeMap<RefName, Id>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Replaces an object's bytes without any check, to simulate corruption in tests.
    pub fn corrupt_object(&self, id: &Id, bytes: Vec<u8>) {
        lock(&self.objects).insert(*id, bytes);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated (single inserts).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Backend for MemStore {
    fn location(&self) -> String {
        "memory".into()
    }

    fn object_location(&self, id: &Id) -> String {
        format!("memory:{id}")
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        let bytes = lock(&self.objects)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ObjectMissing {
                id: *id,
                location: self.object_location(id),
            })?;
        verify_id(id, &bytes, || self.object_location(id))?;
        Ok(bytes)
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        Ok(lock(&self.objects).contains_key(id))
    }

    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        let mut map = lock(&self.objects);
        let mut written = 0;
        for (id, bytes) in objects {
            if !map.contains_key(id) {
                map.insert(*id, bytes.to_vec());
                written += 1;
            }
        }
        Ok(written)
    }

    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(BufferedBatch::new(self)))
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        let mut ids: Vec<Id> = lock(&self.objects).keys().copied().collect();
        ids.sort();
        Ok(ids)
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        let mut ids: Vec<Id> = lock(&self.objects)
            .keys()
            .filter(|id| id.to_hex().starts_with(prefix))
            .copied()
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        Ok(lock(&self.refs).get(name).copied())
    }

    fn update_ref(&self, name: &RefName, expected: Option<Id>, new: Option<Id>) -> Result<()> {
        let mut refs = lock(&self.refs);
        let actual = refs.get(name).copied();
        if actual != expected {
            return Err(Error::RefConflict {
                name: name.to_string(),
                expected,
                actual,
            });
        }
        match new {
            Some(id) => refs.insert(name.clone(), id),
            None => refs.remove(name),
        };
        Ok(())
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        let want = format!("{prefix}/");
        Ok(lock(&self.refs)
            .keys()
            .filter(|r| r.as_str().starts_with(&want))
            .cloned()
            .collect())
    }
}
