//! `MemStore`: the storage contract kept in memory, for tests and as the model the other
//! backends follow; it backs the simulator's mock remote.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::contract::*;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::name::RefName;
use crate::pack::{self, PackWriter};

/// A backend in memory, for tests and as the model the other backends follow; it backs
/// the simulator's mock remote. "Durable" is "in memory" here: the store lives as long as
/// the value. It keeps no packs (a pack added is stored as its objects) and offers leases
/// and upkeep like a store directory, with ages from the time each object was stored.
#[derive(Default)]
pub struct MemStore {
    objects: Mutex<HashMap<Id, (Vec<u8>, Instant)>>,
    refs: Mutex<BTreeMap<RefName, Id>>,
    leases: std::sync::Arc<MemLeases>,
}

/// Leases of a [`MemStore`]: writers share, upkeep excludes them (store-v1 section 9).
#[derive(Default)]
struct MemLeases {
    state: Mutex<LeaseState>,
    changed: Condvar,
}

#[derive(Default)]
struct LeaseState {
    writers: usize,
    upkeep: bool,
    /// Timed leases and when each expires.
    timed: HashMap<String, Instant>,
}

impl LeaseState {
    fn live_timed(&mut self) -> usize {
        let now = Instant::now();
        self.timed.retain(|_, until| *until > now);
        self.timed.len()
    }
}

impl MemLeases {
    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        lock(&self.state)
    }

    /// Waits until `ready` holds or `wait` passes; true when it holds.
    fn wait_until(&self, wait: Duration, mut ready: impl FnMut(&mut LeaseState) -> bool) -> bool {
        let deadline = crate::store::lock::deadline(wait);
        let mut st = self.state();
        loop {
            if ready(&mut st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Timed leases expire without a notification: look again now and then.
            let step = (deadline - now).min(Duration::from_millis(20));
            st = self
                .changed
                .wait_timeout(st, step)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn busy(hint: &str) -> Error {
        Error::Locked {
            path: PathBuf::from("memory/locks/upkeep"),
            holder: "gc in this process".into(),
            hint: hint.into(),
        }
    }
}

/// A writer's share of a [`MemStore`]'s leases.
struct MemWriter(std::sync::Arc<MemLeases>);

impl Drop for MemWriter {
    fn drop(&mut self) {
        self.0.state().writers -= 1;
        self.0.changed.notify_all();
    }
}

/// The exclusive lease of a [`MemStore`]'s upkeep.
struct MemUpkeep(std::sync::Arc<MemLeases>);

impl Drop for MemUpkeep {
    fn drop(&mut self) {
        self.0.state().upkeep = false;
        self.0.changed.notify_all();
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Replaces an object's bytes without any check, to simulate corruption in tests.
    pub fn corrupt_object(&self, id: &Id, bytes: Vec<u8>) {
        lock(&self.objects).insert(*id, (bytes, Instant::now()));
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
            .map(|(b, _)| b.clone())
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
        let now = Instant::now();
        for (id, bytes) in objects {
            if !map.contains_key(id) {
                map.insert(*id, (bytes.to_vec(), now));
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

    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        let mut refs = lock(&self.refs);
        check_expected(name, expected, refs.get(name).copied())?;
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

    fn write_lease_waiting(&self, wait: Duration) -> Result<WriteLease> {
        let leases = &self.leases;
        // A writer joins the others at once (leases of one process share); otherwise it
        // waits for a running upkeep to end.
        // Checked and counted under one lock, so upkeep cannot start in between.
        let joined = leases.wait_until(wait, |st| {
            let free = st.writers > 0 || !st.upkeep;
            st.writers += usize::from(free);
            free
        });
        if !joined {
            return Err(MemLeases::busy(
                "gc is running on this store and writers wait for it; run the command again when it is done",
            ));
        }
        Ok(WriteLease::new(MemWriter(leases.clone())))
    }

    fn timed_leases(&self) -> Option<&dyn TimedLeases> {
        Some(self)
    }

    fn upkeep(&self) -> Option<&dyn Upkeep> {
        Some(self)
    }
}

impl TimedLeases for MemStore {
    fn take(&self, id: &str, ttl: Duration, wait: Duration) -> Result<()> {
        let taken = self.leases.wait_until(wait, |st| {
            if !st.upkeep {
                st.timed.insert(id.to_string(), Instant::now() + ttl);
            }
            !st.upkeep
        });
        if !taken {
            return Err(MemLeases::busy(
                "gc is running on this store and writers wait for it; try again when it is done",
            ));
        }
        Ok(())
    }

    fn renew(&self, id: &str, ttl: Duration) -> Result<bool> {
        let mut st = self.leases.state();
        st.live_timed();
        Ok(match st.timed.get_mut(id) {
            Some(until) => {
                *until = Instant::now() + ttl;
                true
            }
            None => false,
        })
    }

    fn release(&self, id: &str) -> Result<()> {
        self.leases.state().timed.remove(id);
        self.leases.changed.notify_all();
        Ok(())
    }

    fn join(&self, id: &str) -> Result<Option<WriteLease>> {
        let mut st = self.leases.state();
        st.live_timed();
        Ok(st.timed.contains_key(id).then(WriteLease::none))
    }

    fn count(&self) -> Result<usize> {
        Ok(self.leases.state().live_timed())
    }
}

impl Upkeep for MemStore {
    fn exclusive(&self, wait: Duration) -> Result<UpkeepGuard> {
        {
            let mut st = self.leases.state();
            if st.upkeep {
                return Err(MemLeases::busy(
                    "another gc is running on this store; wait for it",
                ));
            }
            st.upkeep = true;
        }
        let guard = MemUpkeep(self.leases.clone());
        if !self
            .leases
            .wait_until(wait, |st| st.writers == 0 && st.live_timed() == 0)
        {
            return Err(MemLeases::busy(
                "writers still hold leases on this store, and gc deletes nothing while a writer works; run gc again later",
            ));
        }
        Ok(UpkeepGuard::new(guard))
    }

    fn inventory(&self) -> Result<Inventory> {
        let mut loose: Vec<(Id, Duration)> = lock(&self.objects)
            .iter()
            .map(|(id, (_, at))| (*id, at.elapsed()))
            .collect();
        loose.sort();
        Ok(Inventory {
            loose,
            packs: Vec::new(),
            head: None,
        })
    }

    fn open_pack(&self, id: &Id) -> Result<std::sync::Arc<pack::Pack<memmap2::Mmap>>> {
        Err(not_on_chain(&self.pack_location(id)))
    }

    fn delete_loose(&self, ids: &[Id], _how: Removal) -> Result<usize> {
        let mut map = lock(&self.objects);
        Ok(ids.iter().filter(|id| map.remove(id).is_some()).count())
    }

    fn rewrite_writer(&self, prev: Option<Id>) -> Result<PackWriter> {
        PackWriter::create(&self.staging_dir()?, prev, self.zstd_level())
    }

    fn replace_chain(
        &self,
        old_head: Option<Id>,
        packs: Vec<pack::Finished>,
        _lock_held: bool,
    ) -> Result<usize> {
        // No chain to replace: the only chain this store has is the empty one.
        check_expected(
            &crate::model::name::packs_ref(),
            Expected::from(old_head),
            None,
        )?;
        if !packs.is_empty() {
            return Err(Error::Invalid(
                "a memory store keeps no packs; its objects are stored one by one".into(),
            ));
        }
        Ok(0)
    }

    fn leftovers(&self, _age: Duration) -> Result<Vec<Leftover>> {
        Ok(Vec::new())
    }

    fn remove_leftovers(&self, _which: &[Leftover]) -> Result<usize> {
        Ok(0)
    }

    fn stored_bytes(&self) -> Result<u64> {
        Ok(lock(&self.objects)
            .values()
            .map(|(b, _)| b.len() as u64)
            .sum())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn zstd_level(&self) -> i32 {
        crate::store::config::DEFAULT_ZSTD_LEVEL
    }

    fn keeps_packs(&self) -> bool {
        false
    }
}
