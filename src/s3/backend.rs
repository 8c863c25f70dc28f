//! [`S3Backend`]: the whole storage contract (`crate::store::contract`) on an S3 bucket, in the
//! layout of format/s3-layout.md: loose objects and packs as in a directory, refs moved
//! by conditional writes, pack indexes read into sparse local copies (as an HTTP remote
//! does) and blocks fetched by range, leases with expiries.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::{Client, Cond};
use super::layout::{self, Location};
use super::lease;
use crate::error::{Error, IoContext, Result};
use crate::id::{is_lower_hex, Id};
use crate::model::name::packs_ref;
use crate::model::name::RefName;
use crate::pack::{self, PackWriter};
use crate::store::batch::{BatchSink, RollingBatch};
use crate::store::config::Config;
use crate::store::dir::{parse_ref, LOOSE_MAX};
use crate::store::{
    check_expected, verify_id, Backend, Batch, Expected, Layout, PackInfo, RawBlock, TimedLeases,
    Upkeep, WriteLease,
};

/// Packs from this size up are uploaded in parts.
pub const MULTIPART_MIN: u64 = 32 << 20;
/// The size of each part of a multipart upload (memory holds one).
pub const PART_SIZE: u64 = 16 << 20;
/// Largest byte range fetched in one request.
const RANGE_MAX: u64 = 8 << 20;
/// Largest ref object read (a ref is 65 bytes).
const REF_MAX: u64 = 4096;
/// Largest config object read.
const CONFIG_MAX: u64 = 64 << 10;
/// Compare-and-swaps of one ref tried before giving up on a store that keeps answering
/// 409 or keeps moving it back and forth.
const CAS_ATTEMPTS: u32 = 16;
/// Tries at chaining a pack while other writers chain theirs.
const CHAIN_ATTEMPTS: u32 = 64;
/// Loose objects written at once by a small batch.
const PUT_THREADS: usize = 8;

type MappedPack = pack::Pack<memmap2::Mmap>;

/// A chain pack: its index in a sparse local copy (blocks are holes until fetched), and
/// which blocks have been fetched into it.
pub(crate) struct RemotePack {
    pub(crate) id: Id,
    pub(crate) size: u64,
    pub(crate) pack: Arc<MappedPack>,
    /// A handle to write fetched blocks into the copy (the pack reads through its own).
    file: std::fs::File,
    fetched: Mutex<Vec<bool>>,
}

/// The pack chain as last loaded.
#[derive(Default)]
struct Chain {
    loaded: bool,
    head: Option<Id>,
    packs: Vec<Arc<RemotePack>>,
}

/// A store in an S3 bucket under a prefix (`s3://BUCKET/PREFIX`).
pub struct S3Backend {
    pub(crate) client: Client,
    pub(crate) loc: Location,
    pub(crate) config: Config,
    pack_target: u64,
    pub(crate) lease_ttl: Duration,
    chain: Mutex<Chain>,
    /// Sparse pack copies and staged packs (removed with the backend).
    pub(crate) dir: tempfile::TempDir,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.loc.display())
            .field("endpoint", &self.client.endpoint())
            .finish()
    }
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl S3Backend {
    /// Opens the store at `loc` through `client`; with `create`, makes one there if there
    /// is none (a first push). Writers first check that the store honours conditional
    /// writes ([`super::probe`]).
    pub fn open(client: Client, loc: Location, create: bool) -> Result<S3Backend> {
        let cfg_key = loc.key(layout::CONFIG);
        let config = match client.get(&cfg_key, CONFIG_MAX)? {
            Some(a) => Self::parse_config(&client, &cfg_key, &a.body)?,
            None if create => {
                let config = Config::default();
                let a = client.put(&cfg_key, config.render().as_bytes(), &Cond::Absent)?;
                match a.status {
                    200 => config,
                    // Another writer created it first: theirs is the store's.
                    412 | 409 => match client.get(&cfg_key, CONFIG_MAX)? {
                        Some(a) => Self::parse_config(&client, &cfg_key, &a.body)?,
                        None => config,
                    },
                    _ => return Err(client.refused(&format!("PUT {}", client.url_of(&cfg_key)), &a)),
                }
            }
            None => {
                return Err(Error::NotAStore {
                    path: loc.display().into(),
                    reason: "not a remotelog store (no config object there); push to it to create one, or check the bucket and prefix".into(),
                })
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("remotelog-s3-")
            .tempdir()
            .at(&std::env::temp_dir())?;
        Ok(S3Backend {
            client,
            loc,
            config,
            pack_target: pack::BATCH_TARGET,
            lease_ttl: lease::DEFAULT_TTL,
            chain: Mutex::new(Chain::default()),
            dir,
        })
    }

    fn parse_config(client: &Client, key: &str, body: &[u8]) -> Result<Config> {
        let text = String::from_utf8(body.to_vec()).map_err(|_| Error::NotAStore {
            path: client.url_of(key).into(),
            reason: "not UTF-8 text, so not a remotelog config".into(),
        })?;
        Config::parse(&text, std::path::Path::new(&client.url_of(key)))
    }

    /// The same store with batches that start a new pack at `bytes` (compressed).
    pub fn with_pack_target(mut self, bytes: u64) -> S3Backend {
        self.pack_target = bytes.max(1);
        self
    }

    /// The same store with leases of time to live `ttl` (tests use short ones).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> S3Backend {
        self.lease_ttl = ttl;
        self
    }

    /// The location, `s3://BUCKET/PREFIX`.
    pub fn location_of(&self) -> &Location {
        &self.loc
    }

    /// The whole key of `rel`.
    pub(crate) fn key(&self, rel: &str) -> String {
        self.loc.key(rel)
    }

    /// `s3://BUCKET/PREFIX/rel`, for messages.
    pub(crate) fn url(&self, rel: &str) -> String {
        self.client.url_of(&self.key(rel))
    }

    /// What identifies this store among the leases of this process.
    pub(crate) fn lease_scope(&self) -> String {
        format!("{} {}", self.client.endpoint(), self.loc.display())
    }

    // -----------------------------------------------------------------------------------
    // Packs

    /// Re-reads the pack chain from `refs/packs` if it moved.
    pub(crate) fn reload_packs(&self) -> Result<()> {
        let mut attempts = 0;
        loop {
            let head = self.read_ref(&packs_ref())?;
            match self.load_chain(head) {
                // A gc may swap the chain and delete the old packs while we walk it.
                Err(_) if attempts < 20 && self.read_ref(&packs_ref())? != head => attempts += 1,
                other => return other,
            }
        }
    }

    fn load_chain(&self, head: Option<Id>) -> Result<()> {
        let mut chain = guard(&self.chain);
        if chain.loaded && chain.head == head {
            return Ok(());
        }
        let mut known: std::collections::HashMap<Id, Arc<RemotePack>> =
            chain.packs.drain(..).map(|p| (p.id, p)).collect();
        chain.loaded = false;
        let mut packs = Vec::new();
        let mut seen = HashSet::new();
        let mut next = head;
        while let Some(id) = next {
            if !seen.insert(id) {
                return Err(self.bad_pack(&id, "the pack chain loops"));
            }
            let p = match known.remove(&id) {
                Some(p) => p,
                None => Arc::new(self.load_pack(&id)?),
            };
            next = p.pack.prev();
            packs.push(p);
        }
        *chain = Chain {
            loaded: true,
            head,
            packs,
        };
        Ok(())
    }

    fn bad_pack(&self, id: &Id, reason: impl ToString) -> Error {
        pack::bad_pack(&self.pack_name(id), reason)
    }

    /// Pack `id` as errors name it: its URL.
    fn pack_name(&self, id: &Id) -> std::path::PathBuf {
        self.url(&layout::pack(id)).into()
    }

    /// Pack `id` as a sparse local copy: its trailer (with the pack's length), header and
    /// index at their offsets, three range requests.
    fn load_pack(&self, id: &Id) -> Result<RemotePack> {
        let key = self.key(&layout::pack(id));
        let bad = |r: String| self.bad_pack(id, r);
        let missing = || bad("is missing but the pack chain names it".into());
        let (trailer, size) = self
            .client
            .get_suffix(&key, pack::TRAILER_LEN as u64)?
            .ok_or_else(missing)?;
        let path = self.dir.path().join(format!("{id}.pack"));
        let file = pack::sparse_copy(&self.pack_name(id), &path, size, Some(trailer), |f, l| {
            self.client.get_range(&key, f, l)?.ok_or_else(missing)
        })?;
        self.install(id, &path, file, size, false)
    }

    /// Opens the local copy at `path` of pack `id` (`full`: every block is in it).
    fn install(
        &self,
        id: &Id,
        path: &std::path::Path,
        file: std::fs::File,
        size: u64,
        full: bool,
    ) -> Result<RemotePack> {
        let p = pack::open_copy(&self.pack_name(id), path, id)?;
        let blocks = p.block_count();
        Ok(RemotePack {
            id: *id,
            size,
            pack: Arc::new(p),
            file,
            fetched: Mutex::new(vec![full; blocks]),
        })
    }

    /// The packs of the chain as loaded, newest first.
    pub(crate) fn chain_packs(&self) -> Vec<Arc<RemotePack>> {
        guard(&self.chain).packs.clone()
    }

    /// Fetches the blocks `wanted` (ascending) of `rp` that are not in its copy yet,
    /// adjacent ones together in ranges of at most [`RANGE_MAX`].
    pub(crate) fn fetch_blocks(&self, rp: &RemotePack, wanted: &[u32]) -> Result<()> {
        let mut fetched = guard(&rp.fetched);
        let todo: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|n| !fetched.get(*n as usize).copied().unwrap_or(true))
            .collect();
        let key = self.key(&layout::pack(&rp.id));
        let mut i = 0;
        while i < todo.len() {
            let first = rp.pack.block(todo[i]);
            let mut j = i;
            while j + 1 < todo.len() {
                let cur = rp.pack.block(todo[j]);
                let next = rp.pack.block(todo[j + 1]);
                let end = next.offset + u64::from(next.clen);
                if next.offset != cur.offset + u64::from(cur.clen) || end - first.offset > RANGE_MAX
                {
                    break;
                }
                j += 1;
            }
            let last = rp.pack.block(todo[j]);
            let (start, stop) = (first.offset, last.offset + u64::from(last.clen));
            if stop > start {
                let bytes = self
                    .client
                    .get_range(&key, start, stop - 1)?
                    .ok_or_else(|| {
                        self.bad_pack(&rp.id, "is missing but the pack chain names it")
                    })?;
                std::os::unix::fs::FileExt::write_all_at(&rp.file, &bytes, start)
                    .at(self.dir.path())?;
            }
            for n in &todo[i..=j] {
                fetched[*n as usize] = true;
            }
            i = j + 1;
        }
        Ok(())
    }

    /// Every block of `rp` in its copy: it then reads like a local pack.
    pub(crate) fn fetch_all(&self, rp: &RemotePack) -> Result<()> {
        let all: Vec<u32> = (0..rp.pack.block_count() as u32).collect();
        self.fetch_blocks(rp, &all)
    }

    fn find_packed(&self, id: &Id) -> Option<(Arc<RemotePack>, pack::Location)> {
        let chain = guard(&self.chain);
        chain
            .packs
            .iter()
            .find_map(|p| p.pack.lookup(id).map(|loc| (p.clone(), loc)))
    }

    fn read_packed(&self, id: &Id) -> Result<Option<Vec<u8>>> {
        let Some((rp, loc)) = self.find_packed(id) else {
            return Ok(None);
        };
        let where_ = || self.url(&layout::pack(&rp.id));
        rp.pack
            .check_location(id, loc)
            .map_err(|r| self.bad_pack(&rp.id, r))?;
        self.fetch_blocks(&rp, &[loc.block])?;
        let bytes = rp
            .pack
            .read(id, loc)
            .map_err(|reason| Error::ObjectCorrupt {
                id: *id,
                location: where_(),
                reason: reason.to_string(),
            })?;
        verify_id(id, &bytes, where_)?;
        Ok(Some(bytes))
    }

    /// Uploads the finished pack at `path` as `packs/<id>.pack` (in parts past
    /// [`MULTIPART_MIN`]); a pack already there is the same bytes (its id is their hash).
    pub(crate) fn upload_pack_at(&self, id: &Id, path: &std::path::Path) -> Result<()> {
        let key = self.key(&layout::pack(id));
        let size = std::fs::metadata(path).at(path)?.len();
        if size >= MULTIPART_MIN {
            if self.client.head(&key)?.is_some_and(|m| m.size == size) {
                return Ok(());
            }
            return self.client.put_multipart(&key, path, PART_SIZE);
        }
        let bytes = std::fs::read(path).at(path)?;
        let a = self.client.put(&key, &bytes, &Cond::Absent)?;
        match a.status {
            200 | 412 | 409 => Ok(()),
            _ => Err(self
                .client
                .refused(&format!("PUT {}", self.client.url_of(&key)), &a)),
        }
    }

    /// Makes a finished pack part of the store: chained after the current head, uploaded,
    /// and `refs/packs` moved onto it by compare-and-swap. A writer that loses the race to
    /// another rechains its pack after the new head and uploads it again
    /// (format/s3-layout.md section 4); the copy it uploaded first is left off the chain
    /// for gc.
    pub fn commit_pack(&self, mut done: pack::Finished) -> Result<Id> {
        for attempt in 0..CHAIN_ATTEMPTS {
            let head = self.read_ref(&packs_ref())?;
            done.repoint(head)?;
            self.upload_pack_at(&done.id, &done.tmp)?;
            match self.update_ref(&packs_ref(), head.into(), Some(done.id)) {
                Ok(()) => {
                    let id = done.id;
                    self.keep_local_copy(done, head);
                    return Ok(id);
                }
                Err(Error::RefConflict { .. }) => {
                    // Another writer chained a pack first; back off a little, at random,
                    // so that racing writers do not keep colliding.
                    let jitter = u64::from(std::process::id() % 7) + u64::from(attempt % 5);
                    std::thread::sleep(Duration::from_millis(10 * (1 + jitter)));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::remote(crate::error::RemoteFailure::Busy, format!(
            "{}: the pack chain kept moving under other writers ({CHAIN_ATTEMPTS} tries); run the command again",
            self.url("refs/packs")
        )))
    }

    /// After chaining `done` on top of `prev`: its local file becomes the copy of the new
    /// head, every block present, so reading back what was just written costs nothing.
    fn keep_local_copy(&self, done: pack::Finished, prev: Option<Id>) {
        let id = done.id;
        let dest = self.dir.path().join(format!("{id}.pack"));
        let installed = (|| -> Result<RemotePack> {
            let size = std::fs::metadata(&done.tmp).at(&done.tmp)?.len();
            done.tmp.persist(&dest).map_err(|e| Error::Io {
                path: dest.clone(),
                source: e.error,
            })?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&dest)
                .at(&dest)?;
            self.install(&id, &dest, file, size, true)
        })();
        let mut chain = guard(&self.chain);
        match installed {
            Ok(rp) if chain.loaded && chain.head == prev => {
                chain.packs.insert(0, Arc::new(rp));
                chain.head = Some(id);
            }
            // Loaded again from the store when next needed.
            _ => chain.loaded = false,
        }
    }

    // -----------------------------------------------------------------------------------
    // Loose objects and refs

    /// Every loose object, with its age by the store's clock.
    pub(crate) fn loose_objects(&self) -> Result<Vec<(Id, Duration)>> {
        let mut out = Vec::new();
        let now = self.client.list(&self.key(layout::OBJECTS), &mut |item| {
            if let Some(id) = self.loc.relative(&item.key).and_then(layout::object_id) {
                out.push((id, item.modified));
            }
            Ok(())
        })?;
        let mut out: Vec<(Id, Duration)> = out
            .into_iter()
            .map(|(id, at)| (id, Duration::from_secs(now.saturating_sub(at))))
            .collect();
        out.sort();
        Ok(out)
    }

    fn loose_set(&self) -> Result<HashSet<Id>> {
        Ok(self
            .loose_objects()?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Writes loose objects that are not stored yet: messages and other objects first (a
    /// few at once), then pages one by one in the order given, each durable (answered)
    /// before the next, so that a page is never there without what it names.
    pub(crate) fn put_loose(&self, todo: &[(Id, &[u8])]) -> Result<usize> {
        let is_page =
            |b: &[u8]| crate::model::object::peek_kind(b) == Some(crate::model::object::Kind::Page);
        let (pages, rest): (Vec<_>, Vec<_>) = todo.iter().copied().partition(|(_, b)| is_page(b));
        let mut written = 0;
        if !rest.is_empty() {
            let per = rest.len().div_ceil(PUT_THREADS);
            let results: Vec<Result<usize>> = std::thread::scope(|s| {
                let handles: Vec<_> = rest
                    .chunks(per)
                    .map(|chunk| s.spawn(move || self.put_loose_each(chunk)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Invalid("a thread storing objects failed".into()))
                        })
                    })
                    .collect()
            });
            for r in results {
                written += r?;
            }
        }
        written += self.put_loose_each(&pages)?;
        Ok(written)
    }

    fn put_loose_each(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        let mut written = 0;
        for (id, bytes) in objects {
            let rel = layout::object(id);
            let key = self.key(&rel);
            let frame = zstd::bulk::compress(bytes, self.config.zstd_level)
                .map_err(|e| Error::Invalid(format!("cannot compress object {id}: {e}")))?;
            // Never rewritten: an object already there stays as it is.
            let a = self.client.put(&key, &frame, &Cond::Absent)?;
            match a.status {
                200 => written += 1,
                412 | 409 => {}
                _ => {
                    return Err(self
                        .client
                        .refused(&format!("PUT {}", self.client.url_of(&key)), &a))
                }
            }
        }
        Ok(written)
    }

    /// The value and version of ref `name`.
    fn read_ref_tagged(&self, name: &RefName) -> Result<Option<(Id, String)>> {
        let rel = layout::reference(name);
        let Some(a) = self.client.get(&self.key(&rel), REF_MAX)? else {
            return Ok(None);
        };
        let id = parse_ref(&a.body).map_err(|reason| Error::BadRef {
            path: self.url(&rel).into(),
            reason: reason.to_string(),
        })?;
        Ok(Some((id, a.etag().unwrap_or_default())))
    }

    /// Refuses to create ref `name` where another ref is its folder or it is another's
    /// folder (store-v1 section 4.1: `a` and `a/b` cannot both be logs).
    fn check_ref_shape(&self, name: &RefName) -> Result<()> {
        let segs: Vec<&str> = name.as_str().split('/').collect();
        for i in 2..segs.len() {
            let above = segs[..i].join("/");
            if self
                .client
                .head(&self.key(&format!("{}{above}", layout::REFS)))?
                .is_some()
            {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: format!("{above} is already a ref"),
                });
            }
        }
        let mut below = false;
        let folder = self.key(&format!("{}/", layout::reference(name)));
        let probe = self.client.list(&folder, &mut |_| {
            below = true;
            // One key is enough to know.
            Err(Error::Invalid(String::new()))
        });
        if below {
            return Err(Error::InvalidName {
                name: name.to_string(),
                reason: "it is the folder of other refs".into(),
            });
        }
        probe.map(|_| ())
    }

    /// The refs below `refs/<prefix>/`, handing `damaged` each key there that is none.
    fn walk_refs(&self, prefix: &str, damaged: &mut dyn FnMut(Error)) -> Result<Vec<RefName>> {
        crate::model::name::validate(prefix)?;
        let mut out = Vec::new();
        let base = self.key(&format!("{}{prefix}/", layout::REFS));
        self.client.list(&base, &mut |item| {
            let rel = self.loc.relative(&item.key).unwrap_or(&item.key);
            let name = rel.strip_prefix(layout::REFS).unwrap_or(rel);
            match RefName::parse(name) {
                Ok(r) => out.push(r),
                Err(e) => damaged(Error::NotARef {
                    path: self.client.url_of(&item.key).into(),
                    reason: format!("a key whose name is not a valid ref name ({e})"),
                }),
            }
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    /// Confirms this process's writer lease, if it holds one, before a ref moves.
    fn confirm_lease(&self) -> Result<()> {
        match lease::writer_of(&self.lease_scope()) {
            Some(held) => held.confirm("writer"),
            None => Ok(()),
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.loc.display()
    }

    fn object_location(&self, id: &Id) -> String {
        self.url(&layout::object(id))
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        if let Some(bytes) = self.read_packed(id)? {
            return Ok(bytes);
        }
        let key = self.key(&layout::object(id));
        let Some(a) = self.client.get(&key, crate::store::dir::max_loose_file())? else {
            // Another writer may have packed it since the chain was loaded.
            self.reload_packs()?;
            if let Some(bytes) = self.read_packed(id)? {
                return Ok(bytes);
            }
            return Err(Error::ObjectMissing {
                id: *id,
                location: self.object_location(id),
            });
        };
        let bytes =
            crate::store::dir::decompress(&a.body).map_err(|reason| Error::ObjectCorrupt {
                id: *id,
                location: self.object_location(id),
                reason,
            })?;
        verify_id(id, &bytes, || self.object_location(id))?;
        Ok(bytes)
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        if self.find_packed(id).is_some() {
            return Ok(true);
        }
        Ok(self.client.head(&self.key(&layout::object(id)))?.is_some())
    }

    fn present_objects(&self, ids: &[Id]) -> Result<HashSet<Id>> {
        let packs = self.chain_packs();
        let mapped: Vec<&MappedPack> = packs.iter().map(|p| &*p.pack).collect();
        let (found, rest) = pack::locate(&mapped, ids);
        let mut out: HashSet<Id> = found.into_iter().map(|f| f.2).collect();
        if rest.len() >= LOOSE_MAX {
            // One listing instead of a request per id.
            let loose = self.loose_set()?;
            out.extend(rest.into_iter().filter(|id| loose.contains(id)));
        } else {
            for id in rest {
                if self.client.head(&self.key(&layout::object(&id)))?.is_some() {
                    out.insert(id);
                }
            }
        }
        Ok(out)
    }

    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        if objects.len() > LOOSE_MAX {
            let mut batch = self.batch()?;
            for (id, bytes) in objects {
                batch.add(*id, bytes)?;
            }
            return batch.commit();
        }
        let mut seen = HashSet::new();
        let todo: Vec<(Id, &[u8])> = objects
            .iter()
            .filter(|(id, _)| seen.insert(*id) && self.find_packed(id).is_none())
            .copied()
            .collect();
        self.put_loose(&todo)
    }

    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(RollingBatch::new(S3Sink {
            store: self,
            loose: None,
        })))
    }

    fn raw_blocks(&self, ids: &[Id], take: &mut dyn FnMut(RawBlock) -> Result<()>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.reload_packs()?;
        let packs = self.chain_packs();
        let mapped: Vec<&MappedPack> = packs.iter().map(|p| &*p.pack).collect();
        let blocks =
            pack::whole_blocks(&mapped, ids).map_err(|(k, r)| self.bad_pack(&packs[k].id, r))?;
        // Per pack, the wanted blocks are fetched in a few large ranges, then handed on.
        let mut i = 0;
        while i < blocks.len() {
            let k = blocks[i].0;
            let mut j = i;
            while j < blocks.len() && blocks[j].0 == k {
                j += 1;
            }
            let rp = &packs[k];
            let mut wanted: Vec<u32> = blocks[i..j].iter().map(|b| b.1).collect();
            wanted.sort_unstable();
            for chunk in wanted.chunks(256) {
                self.fetch_blocks(rp, chunk)?;
            }
            for (_, n, objects) in blocks[i..j].iter().cloned() {
                let b = rp.pack.block(n);
                let frame = rp.pack.frame(n).map_err(|r| self.bad_pack(&rp.id, r))?;
                take(RawBlock {
                    frame: frame.into_owned(),
                    ulen: b.ulen,
                    checksum: b.checksum,
                    objects,
                })?;
            }
            i = j;
        }
        Ok(())
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        let mut ids: Vec<Id> = self
            .loose_objects()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.reload_packs()?;
        for p in self.chain_packs() {
            ids.extend(p.pack.ids());
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        if prefix.len() < 2 || prefix.len() > 64 || !is_lower_hex(prefix) {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        let shard = self.key(&format!("{}{}/", layout::OBJECTS, &prefix[..2]));
        self.client.list(&shard, &mut |item| {
            if let Some(id) = self.loc.relative(&item.key).and_then(layout::object_id) {
                if id.to_hex().starts_with(prefix) {
                    ids.push(id);
                }
            }
            Ok(())
        })?;
        self.reload_packs()?;
        for p in self.chain_packs() {
            ids.extend(p.pack.ids().filter(|id| id.to_hex().starts_with(prefix)));
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        Ok(self.read_ref_tagged(name)?.map(|(id, _)| id))
    }

    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        if *name != packs_ref() {
            self.confirm_lease()?;
        }
        let key = self.key(&layout::reference(name));
        let what = |m: &str| format!("{m} {}", self.client.url_of(&key));
        for attempt in 0..CAS_ATTEMPTS {
            let current = self.read_ref_tagged(name)?;
            let actual = current.as_ref().map(|c| c.0);
            check_expected(name, expected, actual)?;
            let cond = match (expected, &current) {
                // Last writer wins, as asked.
                (Expected::Any, _) => Cond::None,
                (_, None) => Cond::Absent,
                (_, Some((_, etag))) => Cond::Match(etag.clone()),
            };
            let a = match new {
                Some(id) => {
                    if current.is_none() {
                        self.check_ref_shape(name)?;
                    }
                    self.client.put(&key, format!("{id}\n").as_bytes(), &cond)?
                }
                None => match (&cond, &current) {
                    (_, None) => return Ok(()),
                    (Cond::Match(etag), _) => self.client.delete(&key, Some(etag))?,
                    _ => self.client.delete(&key, None)?,
                },
            };
            match a.status {
                200 | 204 => return Ok(()),
                // The condition failed: someone moved the ref. After a retried request
                // the winner may be our own first attempt (never an ETag computed here:
                // the ref's value says).
                412 | 404 => {
                    let actual = self.read_ref(name)?;
                    if a.retried && actual == new {
                        return Ok(());
                    }
                    if !expected.admits(actual) {
                        return check_expected(name, expected, actual);
                    }
                    // Moved and moved back (its version changed): try again.
                }
                // A conflicting write in flight (AWS): read again and retry.
                409 => {}
                _ => {
                    let m = if new.is_some() { "PUT" } else { "DELETE" };
                    return Err(self.client.refused(&what(m), &a));
                }
            }
            std::thread::sleep(Duration::from_millis(5 << attempt.min(6)));
        }
        Err(Error::remote(crate::error::RemoteFailure::Busy, format!(
            "ref {name} at {} keeps changing under concurrent updates ({CAS_ATTEMPTS} tries); run the command again",
            self.loc.display()
        )))
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        let mut first = None;
        let refs = self.walk_refs(prefix, &mut |e| {
            first.get_or_insert(e);
        })?;
        match first {
            Some(e) => Err(e),
            None => Ok(refs),
        }
    }

    fn list_refs_lenient(&self, prefix: &str) -> Result<(Vec<RefName>, Vec<String>)> {
        let mut damaged = Vec::new();
        let refs = self.walk_refs(prefix, &mut |e| damaged.push(e.to_string()))?;
        Ok((refs, damaged))
    }

    fn write_lease_waiting(&self, wait: Duration) -> Result<WriteLease> {
        let share = super::upkeep::writer_lease(self, wait)?;
        // A gc that ran since the chain was loaded may have rewritten the packs.
        self.reload_packs()?;
        Ok(WriteLease::new(share))
    }

    fn timed_leases(&self) -> Option<&dyn TimedLeases> {
        Some(self)
    }

    fn layout(&self) -> Result<Layout> {
        super::upkeep::layout(self)
    }

    fn pack_chain(&self) -> Result<Vec<PackInfo>> {
        self.reload_packs()?;
        Ok(self
            .chain_packs()
            .iter()
            .map(|p| PackInfo {
                id: p.id,
                size: p.size,
                objects: p.pack.len(),
            })
            .collect())
    }

    fn pack_location(&self, id: &Id) -> String {
        self.url(&layout::pack(id))
    }

    fn read_pack(&self, id: &Id, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send>> {
        self.reload_packs()?;
        let Some(rp) = self.chain_packs().into_iter().find(|p| p.id == *id) else {
            return Err(self.bad_pack(id, "is not on this store's pack chain"));
        };
        if offset.checked_add(len).is_none_or(|end| end > rp.size) {
            return Err(self.bad_pack(
                id,
                format!("bytes {offset}..+{len} lie beyond its {} bytes", rp.size),
            ));
        }
        let mut reader = RangeReader {
            client: self.client.clone(),
            key: self.key(&layout::pack(id)),
            next: offset,
            end: offset + len,
            piece: std::io::Cursor::new(Vec::new()),
        };
        // The first piece now, so that a refused range is an error of this call.
        reader.fetch()?;
        Ok(Box::new(reader))
    }

    fn staging_dir(&self) -> Result<PathBuf> {
        Ok(self.dir.path().to_path_buf())
    }

    fn stage_pack(&self) -> Result<PackWriter> {
        let head = self.read_ref(&packs_ref())?;
        PackWriter::create(self.dir.path(), head, self.config.zstd_level)
    }

    fn add_pack(&self, done: pack::Finished) -> Result<Option<Id>> {
        self.commit_pack(done).map(Some)
    }

    fn upkeep(&self) -> Option<&dyn Upkeep> {
        Some(self)
    }
}

/// Bytes `next..end` of a pack, fetched a piece at a time as they are read.
struct RangeReader {
    client: Client,
    key: String,
    next: u64,
    end: u64,
    piece: std::io::Cursor<Vec<u8>>,
}

impl RangeReader {
    fn fetch(&mut self) -> Result<()> {
        if self.next >= self.end {
            return Ok(());
        }
        let stop = self.end.min(self.next.saturating_add(RANGE_MAX));
        let bytes = self
            .client
            .get_range(&self.key, self.next, stop - 1)?
            .ok_or_else(|| Error::BadPack {
                path: self.client.url_of(&self.key).into(),
                reason: "is missing but the pack chain names it".into(),
            })?;
        self.next = stop;
        self.piece = std::io::Cursor::new(bytes);
        Ok(())
    }
}

impl std::io::Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.piece.read(out)?;
            if n > 0 || out.is_empty() || self.next >= self.end {
                return Ok(n);
            }
            self.fetch().map_err(std::io::Error::other)?;
        }
    }
}

/// The S3 store's half of its batches ([`RollingBatch`]): up to [`LOOSE_MAX`] objects
/// become loose objects, more become packs of about the pack target, each uploaded and
/// chained as soon as it is full.
struct S3Sink<'a> {
    store: &'a S3Backend,
    /// The loose objects, listed once when first needed.
    loose: Option<HashSet<Id>>,
}

impl BatchSink for S3Sink<'_> {
    fn has(&mut self, id: &Id) -> Result<bool> {
        if self.store.find_packed(id).is_some() {
            return Ok(true);
        }
        if self.loose.is_none() {
            self.loose = Some(self.store.loose_set()?);
        }
        Ok(self.loose.as_ref().is_some_and(|l| l.contains(id)))
    }

    fn pack_writer(&mut self) -> Result<PackWriter> {
        self.store.stage_pack()
    }

    fn commit_pack(&mut self, done: pack::Finished) -> Result<usize> {
        let objects = done.objects;
        self.store.commit_pack(done)?;
        Ok(objects)
    }

    fn put_loose(&mut self, objects: &[(Id, &[u8])]) -> Result<usize> {
        self.store.put_loose(objects)
    }

    fn pack_target(&self) -> u64 {
        self.store.pack_target
    }

    fn loose_max(&self) -> usize {
        LOOSE_MAX
    }
}
