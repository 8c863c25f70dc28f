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

    /// Stores encoded objects under their ids (the caller computed `Id::of(bytes)`).
    /// Objects already present are skipped. Returns how many were written; all are durable
    /// when this returns.
    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize>;

    /// Every object id present, sorted.
    fn list_objects(&self) -> Result<Vec<Id>>;

    /// The ids whose hex form starts with `prefix` (lowercase hex, at least 2 digits).
    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>>;

    /// The current value of a ref, `None` when it does not exist.
    fn read_ref(&self, name: &RefName) -> Result<Option<Id>>;

    /// Compare-and-swap: sets `name` to `new` (`None` deletes it) if it holds `expected`.
    fn update_ref(&self, name: &RefName, expected: Option<Id>, new: Option<Id>) -> Result<()>;

    /// All refs below `refs/<prefix>/`, sorted.
    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>>;

    /// What the backend's own layout says beyond objects and refs (stray files, leftovers
    /// of crashed writers). Default: nothing.
    fn layout(&self) -> Result<Layout> {
        Ok(Layout::default())
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
