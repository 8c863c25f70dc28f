//! Leases and upkeep of an [`S3Backend`] (format/s3-layout.md sections 5 and 6): writer
//! leases, the exclusive upkeep lease, the timed leases a server holds for its clients,
//! and the primitives gc and repack run on, with ages from the store's clock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::backend::S3Backend;
use super::client::Cond;
use super::layout;
use super::lease::{self, Held};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::name::packs_ref;
use crate::model::name::RefName;
use crate::pack::{self, PackWriter};
use crate::store::{
    check_expected, Backend, Expected, Inventory, Layout, Leftover, Removal, TimedLeases, Upkeep,
    UpkeepGuard, WriteLease,
};

/// How often a waiting writer or upkeep looks again.
const POLL: Duration = Duration::from_millis(200);

fn pause(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(left.min(POLL).max(Duration::from_millis(5)));
}

/// The live upkeep lease of `b`, if one holds.
fn live_upkeep(b: &S3Backend) -> Result<Option<lease::Seen>> {
    Ok(lease::read(&b.client, &b.key(layout::UPKEEP))?.filter(|s| s.live()))
}

fn gc_running(b: &S3Backend, seen: &lease::Seen, hint: &str) -> Error {
    Error::Locked {
        path: b.url(layout::UPKEEP).into(),
        holder: seen.describe(),
        hint: hint.into(),
    }
}

/// Takes (or joins) this process's writer lease on `b`: a lease object created under a
/// unique name *before* looking for a running upkeep, withdrawn while one runs; waits up
/// to `wait` for it.
pub(crate) fn writer_lease(b: &S3Backend, wait: Duration) -> Result<lease::WriterShare> {
    let scope = b.lease_scope();
    if let Some(share) = lease::join_writer(&scope) {
        return Ok(share);
    }
    let key = b.key(&format!(
        "{}{}",
        layout::WRITER,
        lease::unique_writer_name()
    ));
    let start = Instant::now();
    let deadline = crate::store::lock::deadline(wait);
    let mut told = false;
    loop {
        let etag = lease::write(&b.client, &key, b.lease_ttl, &Cond::None)?.unwrap_or_default();
        let Some(seen) = live_upkeep(b)? else {
            let held = Held::start(b.client.clone(), key, etag, b.lease_ttl);
            return Ok(lease::share_writer(&scope, held));
        };
        lease::remove(&b.client, &key, &etag);
        if Instant::now() >= deadline {
            return Err(gc_running(
                b,
                &seen,
                "gc is running on this store and writers wait for it; run the command again when it is done",
            ));
        }
        if !told && start.elapsed() >= Duration::from_secs(1) {
            told = true;
            eprintln!(
                "remotelog: waiting for gc on {} to finish ({})",
                b.location(),
                seen.describe()
            );
        }
        pause(deadline);
    }
}

/// The writer leases (timed ones included) that hold now; dead ones are removed on the
/// way (only the version judged dead: one renewed meanwhile stays).
fn live_writers(b: &S3Backend) -> Result<Vec<(String, lease::Seen)>> {
    let mut keys = Vec::new();
    b.client.list(&b.key(layout::WRITER), &mut |item| {
        keys.push(item.key);
        Ok(())
    })?;
    let mut live = Vec::new();
    for key in keys {
        match lease::read(&b.client, &key)? {
            Some(seen) if seen.live() => live.push((key, seen)),
            Some(seen) => lease::remove(&b.client, &key, &seen.etag),
            None => {}
        }
    }
    Ok(live)
}

/// The exclusive upkeep lease: its object, and the heartbeat keeping it.
struct UpkeepHold {
    _held: Held,
}

impl S3Backend {
    fn client_key(&self, id: &str) -> Result<String> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(Error::Invalid(format!(
                "lease id {id:?} is not usable (1-128 characters of A-Z a-z 0-9 - _)"
            )));
        }
        Ok(self.key(&format!("{}{id}", layout::CLIENT)))
    }

    /// Every key under `rel` with its age by the store's clock.
    fn listed_ages(&self, rel: &str) -> Result<Vec<(String, u64, Duration)>> {
        let mut items = Vec::new();
        let now = self.client.list(&self.key(rel), &mut |item| {
            items.push(item);
            Ok(())
        })?;
        Ok(items
            .into_iter()
            .map(|i| {
                let age = Duration::from_secs(now.saturating_sub(i.modified));
                (i.key, i.size, age)
            })
            .collect())
    }
}

impl TimedLeases for S3Backend {
    fn take(&self, id: &str, ttl: Duration, wait: Duration) -> Result<()> {
        let key = self.client_key(id)?;
        let deadline = crate::store::lock::deadline(wait);
        loop {
            let etag = lease::write(&self.client, &key, ttl, &Cond::None)?.unwrap_or_default();
            let Some(seen) = live_upkeep(self)? else {
                return Ok(());
            };
            lease::remove(&self.client, &key, &etag);
            if Instant::now() >= deadline {
                return Err(gc_running(
                    self,
                    &seen,
                    "gc is running on this store and writers wait for it; try again when it is done",
                ));
            }
            pause(deadline);
        }
    }

    fn renew(&self, id: &str, ttl: Duration) -> Result<bool> {
        let key = self.client_key(id)?;
        match lease::read(&self.client, &key)? {
            Some(seen) if seen.live() => {
                Ok(lease::write(&self.client, &key, ttl, &Cond::Match(seen.etag))?.is_some())
            }
            _ => Ok(false),
        }
    }

    fn release(&self, id: &str) -> Result<()> {
        self.client.remove(&self.client_key(id)?)
    }

    fn join(&self, id: &str) -> Result<Option<WriteLease>> {
        let key = self.client_key(id)?;
        if !lease::read(&self.client, &key)?.is_some_and(|s| s.live()) {
            return Ok(None);
        }
        // A gc that ran since the chain was loaded may have rewritten the packs.
        self.reload_packs()?;
        Ok(Some(WriteLease::none()))
    }

    fn count(&self) -> Result<usize> {
        let mut keys = Vec::new();
        self.client.list(&self.key(layout::CLIENT), &mut |item| {
            keys.push(item.key);
            Ok(())
        })?;
        let mut n = 0;
        for key in keys {
            n += usize::from(lease::read(&self.client, &key)?.is_some_and(|s| s.live()));
        }
        Ok(n)
    }
}

impl Upkeep for S3Backend {
    fn exclusive(&self, wait: Duration) -> Result<UpkeepGuard> {
        let key = self.key(layout::UPKEEP);
        let another = |seen: Option<&lease::Seen>| {
            Error::Locked {
            path: self.url(layout::UPKEEP).into(),
            holder: seen.map_or("another process".into(), lease::Seen::describe),
            hint: "another gc is running on this store; wait for it (a crashed one's lease lapses on its own)".into(),
        }
        };
        let ttl = self.lease_ttl;
        let etag = match lease::write(&self.client, &key, ttl, &Cond::Absent)? {
            Some(etag) => etag,
            None => match lease::read(&self.client, &key)? {
                Some(seen) if seen.live() => return Err(another(Some(&seen))),
                // A lapsed lease of a gc that crashed: taken over, by one taker only.
                Some(seen) => lease::write(&self.client, &key, ttl, &Cond::Match(seen.etag))?
                    .ok_or_else(|| another(None))?,
                None => lease::write(&self.client, &key, ttl, &Cond::Absent)?
                    .ok_or_else(|| another(None))?,
            },
        };
        let held = Held::start(self.client.clone(), key, etag, ttl);
        let deadline = crate::store::lock::deadline(wait);
        loop {
            let live = live_writers(self)?;
            let Some((key, seen)) = live.first() else {
                break;
            };
            if Instant::now() >= deadline {
                return Err(Error::Locked {
                    path: self.client.url_of(key).into(),
                    holder: format!("{} writer lease(s); the first {}", live.len(), seen.describe()),
                    hint: "writers still hold leases on this store, and gc deletes nothing while a writer works; run gc again later".into(),
                });
            }
            pause(deadline);
        }
        self.reload_packs()?;
        Ok(UpkeepGuard::new(UpkeepHold { _held: held }))
    }

    fn inventory(&self) -> Result<Inventory> {
        let loose = self.loose_objects()?;
        self.reload_packs()?;
        let ages: HashMap<Id, Duration> = self
            .listed_ages(layout::PACKS)?
            .into_iter()
            .filter_map(|(key, _, age)| {
                let id = self.loc.relative(&key).and_then(layout::pack_id)?;
                Some((id, age))
            })
            .collect();
        let head = self.read_ref(&packs_ref())?;
        let packs = self
            .pack_chain()?
            .into_iter()
            .map(|p| {
                let age = ages.get(&p.id).copied().unwrap_or_default();
                (p, age)
            })
            .collect();
        Ok(Inventory { loose, packs, head })
    }

    fn open_pack(&self, id: &Id) -> Result<std::sync::Arc<pack::Pack<memmap2::Mmap>>> {
        self.reload_packs()?;
        let Some(rp) = self.chain_packs().into_iter().find(|p| p.id == *id) else {
            return Err(Error::BadPack {
                path: self.pack_location(id).into(),
                reason: "is not on this store's pack chain".into(),
            });
        };
        // Upkeep reads whole packs: every block into the local copy first.
        self.fetch_all(&rp)?;
        Ok(rp.pack.clone())
    }

    fn delete_loose(&self, ids: &[Id], _how: Removal) -> Result<usize> {
        // A deletion is durable when the store answers it, so each one is.
        let present: HashSet<Id> = self
            .loose_objects()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut removed = 0;
        for id in ids.iter().filter(|id| present.contains(id)) {
            self.client.remove(&self.key(&layout::object(id)))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn rewrite_writer(&self, prev: Option<Id>) -> Result<PackWriter> {
        PackWriter::create(self.dir.path(), prev, self.config.zstd_level)
    }

    fn replace_chain(
        &self,
        old_head: Option<Id>,
        packs: Vec<pack::Finished>,
        _lock_held: bool,
    ) -> Result<usize> {
        // A lost compare-and-swap, like the directory store's: running the command again
        // reads the new chain (and the exit status says so).
        check_expected(
            &packs_ref(),
            Expected::from(old_head),
            self.read_ref(&packs_ref())?,
        )?;
        self.reload_packs()?;
        let old: Vec<Id> = self.chain_packs().iter().map(|p| p.id).collect();
        let mut new_head = None;
        let mut new_ids = HashSet::new();
        for done in &packs {
            self.upload_pack_at(&done.id, &done.tmp)?;
            new_head = Some(done.id);
            new_ids.insert(done.id);
        }
        // The swap is one compare-and-swap of refs/packs: it fails, changing nothing, if a
        // writer chained a pack meanwhile (the new packs are then left off the chain).
        self.update_ref(&packs_ref(), Expected::from(old_head), new_head)?;
        self.reload_packs()?;
        let mut removed = 0;
        for id in old.iter().filter(|id| !new_ids.contains(id)) {
            self.client.remove(&self.key(&layout::pack(id)))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn leftovers(&self, age: Duration) -> Result<Vec<Leftover>> {
        self.reload_packs()?;
        let chained: HashSet<Id> = self.chain_packs().iter().map(|p| p.id).collect();
        let mut out: Vec<Leftover> = self
            .listed_ages(layout::PACKS)?
            .into_iter()
            .filter(|(key, _, a)| {
                let id = self.loc.relative(key).and_then(layout::pack_id);
                *a >= age && id.is_none_or(|id| !chained.contains(&id))
            })
            .map(|(key, _, _)| Leftover(self.client.url_of(&key)))
            .collect();
        for (key, upload, a) in self.client.stale_uploads(&self.key(""))? {
            if Duration::from_secs(a) >= age {
                out.push(Leftover(format!(
                    "{}?uploadId={upload}",
                    self.client.url_of(&key)
                )));
            }
        }
        Ok(out)
    }

    fn remove_leftovers(&self, which: &[Leftover]) -> Result<usize> {
        let base = self.client.url_of("");
        let mut removed = 0;
        for Leftover(url) in which {
            let Some(rest) = url.strip_prefix(&base) else {
                continue;
            };
            // Only what `leftovers` named: below this store's prefix.
            let (key, upload) = match rest.split_once("?uploadId=") {
                Some((k, u)) => (k, Some(u)),
                None => (rest, None),
            };
            if self.loc.relative(key).is_none() {
                continue;
            }
            let done = match upload {
                Some(u) => self.client.abort_upload(key, u),
                None => self.client.remove(key),
            };
            removed += usize::from(done.is_ok());
        }
        Ok(removed)
    }

    fn stored_bytes(&self) -> Result<u64> {
        Ok(self.listed_ages("")?.iter().map(|(_, size, _)| size).sum())
    }

    fn flush(&self) -> Result<()> {
        // Every write and deletion was durable when the store answered it.
        Ok(())
    }

    fn zstd_level(&self) -> i32 {
        self.config.zstd_level
    }
}

/// What `check` learns of the keys under the prefix (store-v1 section 1 and 4 for a
/// bucket): keys the layout has no place for are problems; packs off the chain, leases and
/// unfinished uploads are notes.
pub(crate) fn layout(b: &S3Backend) -> Result<Layout> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if let Err(e) = b.reload_packs() {
        problems.push(e.to_string());
    }
    let chained: HashSet<Id> = b.chain_packs().iter().map(|p| p.id).collect();
    for p in b.chain_packs() {
        if let Err(r) = p.pack.validate_index() {
            problems.push(
                Error::BadPack {
                    path: b.pack_location(&p.id).into(),
                    reason: r.to_string(),
                }
                .to_string(),
            );
        }
    }
    let mut orphans = 0;
    let mut leases = Vec::new();
    b.client.list(&b.key(""), &mut |item| {
        let url = b.client.url_of(&item.key);
        let Some(rel) = b.loc.relative(&item.key) else {
            return Ok(());
        };
        let stray = |what: &str| format!("{url}: {what}; move it out of the store's prefix");
        if rel == layout::CONFIG {
        } else if rel.starts_with(layout::OBJECTS) {
            if layout::object_id(rel).is_none() {
                problems.push(stray("not an object key"));
            }
        } else if rel.starts_with(layout::PACKS) {
            match layout::pack_id(rel) {
                Some(id) if chained.contains(&id) => {}
                Some(_) => orphans += 1,
                None => problems.push(stray("not a pack key")),
            }
        } else if let Some(name) = rel.strip_prefix(layout::REFS) {
            if let Err(e) = RefName::parse(name) {
                problems.push(
                    Error::NotARef {
                        path: url.into(),
                        reason: format!("a key whose name is not a valid ref name ({e})"),
                    }
                    .to_string(),
                );
            }
        } else if rel.starts_with(layout::LOCKS) {
            leases.push(item.key);
        } else {
            problems.push(stray("not a key of a remotelog store"));
        }
        Ok(())
    })?;
    for key in leases {
        if let Some(seen) = lease::read(&b.client, &key)? {
            let state = if seen.live() { "lease" } else { "lapsed lease" };
            notes.push(format!(
                "{}: {state} {}",
                b.client.url_of(&key),
                seen.describe()
            ));
        }
    }
    if orphans > 0 {
        notes.push(format!(
            "{orphans} pack(s) in {} are not on the pack chain (left by a writer that lost a race, an interrupted write or a repack); they are ignored, and gc removes them once older than its grace period",
            b.url(layout::PACKS)
        ));
    }
    let uploads = b.client.stale_uploads(&b.key(""))?;
    if !uploads.is_empty() {
        notes.push(format!(
            "{} unfinished multipart upload(s) below {}; gc aborts them once older than its grace period",
            uploads.len(),
            b.location()
        ));
    }
    Ok(Layout { problems, notes })
}
