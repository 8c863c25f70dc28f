//! The file-system store: `config`, loose objects under `objects/`, refs under `refs/`
//! (format/store-v1.md, sections 1–7).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, is_tmp_name};
use crate::id::{is_lower_hex, Id};
use crate::model::name::{packs_ref, RefName};
use crate::pack::{self, Pack};
use crate::store::batch::{BatchSink, RollingBatch};
use crate::store::config::Config;
use crate::store::lock::{self, LockFile};
use crate::store::{
    check_expected, verify_id, Backend, Batch, Expected, Inventory, Layout, Leftover, PackInfo,
    RawBlock, Removal, TimedLeases, Upkeep, UpkeepGuard, WriteLease,
};

/// Largest object (uncompressed) a reader accepts, so a corrupt or hostile frame cannot
/// make it allocate without bound.
pub const MAX_OBJECT_SIZE: u64 = 256 << 20;

/// Largest `config` file a reader accepts (it is a few lines).
const CONFIG_MAX: u64 = 64 << 10;
/// The file where `gc --auto` records the store's usage after it ran (store-v1 2.1).
const AUTO_GC_STATE: &str = "gc-auto-state";
/// Its first line.
const AUTO_GC_STATE_MAGIC: &str = "remotelog-gc-auto-state";

/// What a store holds on disk, as `gc --auto` weighs it ([`FsStore::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Loose object files.
    pub loose: u64,
    /// Packs on the chain.
    pub packs: u64,
    /// Bytes of both on disk.
    pub bytes: u64,
}

/// Largest ref file read: a ref is 65 bytes (format/store-v1.md, section 4); a little more
/// is read so that a damaged one is reported as such by its content.
const REF_MAX: u64 = 4096;

/// Largest loose object file a reader opens: the zstd bound of an object of
/// [`MAX_OBJECT_SIZE`] bytes, which no writer exceeds.
pub fn max_loose_file() -> u64 {
    zstd::zstd_safe::compress_bound(MAX_OBJECT_SIZE as usize) as u64
}

/// Batches up to this size are fsynced file by file; larger ones with one `syncfs`.
const SMALL_BATCH: usize = 8;

/// Batches of more objects than this go into a pack; smaller ones stay loose files.
pub const LOOSE_MAX: usize = 64;

/// Wait this long for another process committing a pack.
const PACK_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

type MappedPack = Pack<memmap2::Mmap>;

/// Loose objects, one shard directory listed at a time and remembered (by its first id
/// byte): a presence check for 100,000 ids costs at most 256 directory reads instead of
/// 100,000 failed `stat`s.
#[derive(Default)]
struct LooseListing {
    shards: std::collections::HashMap<u8, std::collections::HashSet<Id>>,
}

/// The packs on the chain, newest first, as last loaded.
#[derive(Default)]
struct PackSet {
    head: Option<Id>,
    packs: Vec<(Id, PathBuf, Arc<MappedPack>)>,
}

/// A store directory.
#[derive(Clone)]
pub struct FsStore {
    root: PathBuf,
    config: Arc<Mutex<Config>>,
    packs: Arc<Mutex<PackSet>>,
    /// Size at which a batch starts a new pack.
    pack_target: u64,
}

impl std::fmt::Debug for FsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStore").field("root", &self.root).finish()
    }
}

/// The packs of a snapshot, for the functions of [`pack`] that take several.
fn as_packs(packs: &[(Id, PathBuf, Arc<MappedPack>)]) -> Vec<&MappedPack> {
    packs.iter().map(|(_, _, p)| &**p).collect()
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FsStore {
    /// Creates a store in `root` (which may exist if it is not a store yet).
    pub fn init(root: &Path, config: Config) -> Result<FsStore> {
        let cfg_path = root.join("config");
        if cfg_path.exists() {
            return Err(Error::AlreadyAStore(root.to_path_buf()));
        }
        if root.is_file() {
            return Err(Error::NotAStore {
                path: root.to_path_buf(),
                reason: "is a file, not a directory".into(),
            });
        }
        fsutil::create_dir_durable(&root.join("objects"))?;
        fsutil::create_dir_durable(&root.join("refs").join(crate::model::name::LOGS))?;
        // The config goes last: its presence is what makes the directory a store.
        fsutil::write_atomic(&cfg_path, config.render().as_bytes())?;
        Ok(FsStore::new(root, config))
    }

    fn new(root: &Path, config: Config) -> FsStore {
        FsStore {
            root: root.to_path_buf(),
            config: Arc::new(Mutex::new(config)),
            packs: Arc::new(Mutex::new(PackSet::default())),
            pack_target: pack::BATCH_TARGET,
        }
    }

    /// The same store with batches that start a new pack at `bytes` (compressed) instead of
    /// [`pack::BATCH_TARGET`].
    pub fn with_pack_target(mut self, bytes: u64) -> FsStore {
        self.pack_target = bytes.max(1);
        self
    }

    /// Takes a writer lease ([`Backend::write_lease`]), waiting up to `wait` for a running
    /// gc, and then reloads the pack chain: a gc that ran since it was loaded may have
    /// rewritten the packs, and presence answered from the old ones would be wrong.
    pub fn lease(&self, wait: std::time::Duration) -> Result<crate::store::WriteLease> {
        let lease = crate::store::lease::writer(&self.root, wait)?;
        self.reload_packs()?;
        Ok(crate::store::WriteLease::new(lease))
    }

    /// Opens the store in `root`.
    pub fn open(root: &Path) -> Result<FsStore> {
        let cfg_path = root.join("config");
        let text = match fsutil::read_below(root, Path::new("config"), "a config file", CONFIG_MAX)
        {
            Ok(Some(t)) => String::from_utf8(t).map_err(|_| Error::NotAStore {
                path: cfg_path.clone(),
                reason: "not UTF-8 text, so not a remotelog config".into(),
            })?,
            Ok(None) => {
                let reason = if root.is_dir() {
                    "not a remotelog store (no config file); create one with `remotelog init`"
                } else {
                    "no such store directory; create one with `remotelog init`, or pass --store"
                };
                return Err(Error::NotAStore {
                    path: root.to_path_buf(),
                    reason: reason.into(),
                });
            }
            Err(e) => return Err(e),
        };
        let config = Config::parse(&text, &cfg_path)?;
        let store = FsStore::new(root, config);
        store.reload_packs()?;
        Ok(store)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's settings.
    pub fn config(&self) -> Config {
        guard(&self.config).clone()
    }

    fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    /// Where pack `id` lives.
    pub fn pack_path(&self, id: &Id) -> PathBuf {
        self.packs_dir().join(format!("{id}.pack"))
    }

    /// Opens and validates pack `id` (structure only; the checksum is checked by `check`).
    pub fn open_pack(&self, id: &Id) -> Result<MappedPack> {
        let path = self.pack_path(id);
        let rel = Path::new("packs").join(format!("{id}.pack"));
        let Some((file, _)) = fsutil::open_below(&self.root, &rel, "a pack", u64::MAX)? else {
            return Err(pack::bad_pack(
                &path,
                "is missing but the pack chain names it",
            ));
        };
        let map = pack::map_file(&file, &path)?;
        let p = Pack::parse(map)
            .and_then(|p| p.read_frames_from(file))
            .map_err(|r| pack::bad_pack(&path, r))?;
        if p.recorded_id() != *id {
            return Err(pack::bad_pack(
                &path,
                format!("its trailer says it is {}", p.recorded_id()),
            ));
        }
        Ok(p)
    }

    /// Re-reads the pack chain from `refs/packs` if it moved.
    pub fn reload_packs(&self) -> Result<()> {
        // A repack or gc may swap the chain and delete the old packs while we walk it:
        // a pack gone missing under a ref that moved is read again from the new head.
        let mut attempts = 0;
        loop {
            let head = self.read_ref(&packs_ref())?;
            match self.load_chain(head) {
                Err(_) if attempts < 20 && self.read_ref(&packs_ref())? != head => attempts += 1,
                other => return other,
            }
        }
    }

    fn load_chain(&self, head: Option<Id>) -> Result<()> {
        let mut set = guard(&self.packs);
        if set.head == head && (head.is_none() || !set.packs.is_empty()) {
            return Ok(());
        }
        let mut known: std::collections::HashMap<Id, (PathBuf, Arc<MappedPack>)> = set
            .packs
            .drain(..)
            .map(|(id, path, p)| (id, (path, p)))
            .collect();
        let mut packs = Vec::new();
        let mut next = head;
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = next {
            if !seen.insert(id) {
                return Err(pack::bad_pack(&self.pack_path(&id), "the pack chain loops"));
            }
            let (path, p) = match known.remove(&id) {
                Some(x) => x,
                None => (self.pack_path(&id), Arc::new(self.open_pack(&id)?)),
            };
            next = p.prev();
            packs.push((id, path, p));
        }
        *set = PackSet { head, packs };
        Ok(())
    }

    fn packs_snapshot(&self) -> Vec<(Id, PathBuf, Arc<MappedPack>)> {
        guard(&self.packs).packs.clone()
    }

    fn find_packed(&self, id: &Id) -> Option<(PathBuf, Arc<MappedPack>, pack::Location)> {
        let set = guard(&self.packs);
        set.packs
            .iter()
            .find_map(|(_, path, p)| p.lookup(id).map(|loc| (path.clone(), p.clone(), loc)))
    }

    fn read_packed(&self, id: &Id) -> Result<Option<Vec<u8>>> {
        let Some((path, p, loc)) = self.find_packed(id) else {
            return Ok(None);
        };
        let bytes = p.read(id, loc).map_err(|reason| Error::ObjectCorrupt {
            id: *id,
            location: path.display().to_string(),
            reason: reason.to_string(),
        })?;
        verify_id(id, &bytes, || path.display().to_string())?;
        Ok(Some(bytes))
    }

    /// Makes a finished pack part of the store: chains it after the current head (under
    /// the pack commit lock), renames it into place and moves `refs/packs`.
    pub fn commit_pack(&self, mut done: pack::Finished) -> Result<Id> {
        let dir = self.packs_dir();
        let _lock = LockFile::acquire(&dir.join("commit.lock"), PACK_LOCK_WAIT)?;
        let head = self.read_ref(&packs_ref())?;
        done.repoint(head)?;
        self.require_version(2)?;
        let dest = self.pack_path(&done.id);
        let id = done.id;
        if !dest.exists() {
            done.tmp.persist(&dest).map_err(|e| Error::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        }
        fsutil::fsync_dir(&dir)?;
        self.update_ref(&packs_ref(), head.into(), Some(id))?;
        self.reload_packs()?;
        Ok(id)
    }

    /// Raises the store's format version (never lowers it), before writing what needs it.
    fn require_version(&self, v: u32) -> Result<()> {
        let mut cfg = guard(&self.config);
        if cfg.format_version >= v {
            return Ok(());
        }
        let mut new = cfg.clone();
        new.format_version = v;
        fsutil::write_atomic(&self.root.join("config"), new.render().as_bytes())?;
        *cfg = new;
        Ok(())
    }

    /// Starts a pack in this store, chained after the current head.
    pub fn pack_writer(&self) -> Result<pack::PackWriter> {
        let dir = self.packs_dir();
        fsutil::create_dir_durable(&dir)?;
        let head = self.read_ref(&packs_ref())?;
        pack::PackWriter::create(&dir, head, self.config().zstd_level)
    }

    /// The packs on the chain, newest first: (id, path, objects).
    pub fn packs(&self) -> Result<Vec<(Id, PathBuf, usize)>> {
        self.reload_packs()?;
        Ok(self
            .packs_snapshot()
            .into_iter()
            .map(|(id, path, p)| (id, path, p.len()))
            .collect())
    }

    /// Checks every pack on the chain (structure and checksum) and notes pack files that
    /// are not on it.
    fn pack_layout(&self, problems: &mut Vec<String>, notes: &mut Vec<String>) -> Result<()> {
        let mut chained = std::collections::HashSet::new();
        let mut next = match self.read_ref(&packs_ref()) {
            Ok(h) => h,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        while let Some(id) = next {
            if !chained.insert(id) {
                problems.push(format!("the pack chain loops at {id}"));
                break;
            }
            match self.open_pack(&id) {
                Ok(p) => {
                    // Both checks, so that a damaged index is named as such even when the
                    // checksum already fails.
                    for r in [p.verify_checksum(), p.validate_index()]
                        .into_iter()
                        .filter_map(|c| c.err())
                    {
                        problems.push(pack::bad_pack(&self.pack_path(&id), r).to_string());
                    }
                    next = p.prev();
                }
                Err(e) => {
                    problems.push(e.to_string());
                    break;
                }
            }
        }
        let dir = self.packs_dir();
        if let Err(e) = no_link(&dir) {
            problems.push(e.to_string());
            return Ok(());
        }
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).at(&dir),
        };
        let mut orphans = 0;
        for entry in rd {
            let entry = entry.at(&dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_tmp_name(&name) || name == "commit.lock" {
                continue;
            }
            let kind = entry.file_type().at(&entry.path())?;
            match name
                .strip_suffix(".pack")
                .and_then(|h| h.parse::<Id>().ok())
            {
                // A chained pack that is no regular file was named when it was opened.
                Some(id) if chained.contains(&id) => {}
                Some(_) if !kind.is_file() => {
                    problems.push(fsutil::not_regular(&entry.path(), file_kind(&kind)).to_string())
                }
                Some(_) => orphans += 1,
                None => problems.push(format!(
                    "{}: not a pack file name; move it out of the store",
                    entry.path().display()
                )),
            }
        }
        if orphans > 0 {
            notes.push(format!(
                "{orphans} pack file(s) in {} are not on the pack chain (left by an interrupted write or a repack); they are ignored and harmless",
                dir.display()
            ));
        }
        Ok(())
    }

    /// Whether `id` is stored, answering loose lookups from `cache`.
    fn has_object_listed(&self, cache: &mut LooseListing, id: &Id) -> Result<bool> {
        Ok(self.find_packed(id).is_some() || self.loose_listed(cache, id)?)
    }

    /// Whether `id` is a loose object, answering from `cache`.
    fn loose_listed(&self, cache: &mut LooseListing, id: &Id) -> Result<bool> {
        let first = id.0[0];
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.shards.entry(first) {
            let shard = format!("{first:02x}");
            let dir = self.root.join("objects").join(&shard);
            let mut ids = std::collections::HashSet::new();
            if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::BadFile {
                    path: dir,
                    reason: "a symbolic link, not an object shard directory".into(),
                });
            }
            match fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.at(&dir)?;
                        let name = e.file_name();
                        // Temporary files and strays do not parse as ids.
                        if let Some(id) = name
                            .to_str()
                            .and_then(|n| format!("{shard}{n}").parse().ok())
                        {
                            let t = e.file_type().at(&e.path())?;
                            if !t.is_file() && !t.is_dir() {
                                return Err(fsutil::not_regular(&e.path(), file_kind(&t)));
                            }
                            if t.is_file() {
                                ids.insert(id);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&dir),
            }
            slot.insert(ids);
        }
        Ok(cache.shards.get(&first).is_some_and(|ids| ids.contains(id)))
    }

    /// Complete pack files in `packs/` that are not on the chain.
    pub fn orphan_packs(&self) -> Result<Vec<PathBuf>> {
        let dir = self.packs_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at(&dir),
        };
        let chained: std::collections::HashSet<PathBuf> =
            self.packs()?.into_iter().map(|p| p.1).collect();
        let mut out = Vec::new();
        for entry in rd {
            let path = entry.at(&dir)?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".pack") && !is_tmp_name(&name) && !chained.contains(&path) {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The `gc --auto` settings of the store's `config` (read afresh: a user may have
    /// edited them since the store was opened).
    pub fn auto_gc(&self) -> Result<crate::store::config::AutoGc> {
        let bytes =
            fsutil::read_below(&self.root, Path::new("config"), "a config file", CONFIG_MAX)?
                .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        // A key that does not parse made open fail; the defaults stand in otherwise.
        Ok(crate::store::config::AutoGc::from_config_text(&text))
    }

    /// How many loose objects and chain packs the store holds and their bytes on disk:
    /// what `gc --auto` weighs, read without opening any object.
    pub fn usage(&self) -> Result<Usage> {
        let mut u = Usage::default();
        self.each_loose(|_, obj| {
            if !is_tmp_name(&obj.file_name().to_string_lossy()) {
                u.loose += 1;
                u.bytes += obj.metadata().map_or(0, |m| m.len());
            }
        })?;
        for (_, path, _) in self.packs()? {
            u.packs += 1;
            u.bytes += fs::metadata(&path).map_or(0, |m| m.len());
        }
        Ok(u)
    }

    /// The [`Usage`] recorded after the last automatic housekeeping (the file
    /// `gc-auto-state`, store-v1 section 2.1); `None` when there is none yet, or it
    /// cannot be read.
    pub fn last_auto_gc(&self) -> Option<Usage> {
        let Ok(Some(bytes)) = fsutil::read_below(
            &self.root,
            Path::new(AUTO_GC_STATE),
            "a gc-auto-state file",
            CONFIG_MAX,
        ) else {
            return None;
        };
        let mut u = Usage::default();
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        if lines.next() != Some(AUTO_GC_STATE_MAGIC) {
            return None;
        }
        for line in lines {
            let Some((k, v)) = line.split_once(" = ") else {
                continue;
            };
            let Ok(n) = v.trim().parse::<u64>() else {
                continue;
            };
            match k.trim() {
                "loose" => u.loose = n,
                "packs" => u.packs = n,
                "bytes" => u.bytes = n,
                _ => {}
            }
        }
        Some(u)
    }

    /// Records `u` as the store's usage after an automatic housekeeping.
    pub fn record_auto_gc(&self, u: &Usage) -> Result<()> {
        fsutil::write_atomic(
            &self.root.join(AUTO_GC_STATE),
            format!(
                "{AUTO_GC_STATE_MAGIC}\nloose = {}\npacks = {}\nbytes = {}\n",
                u.loose, u.packs, u.bytes
            )
            .as_bytes(),
        )
    }

    /// The ids of the loose objects (not those in packs).
    pub fn loose_objects(&self) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        self.each_loose(|sname, obj| {
            let oname = obj.file_name().to_string_lossy().into_owned();
            if let Ok(id) = format!("{sname}{oname}").parse::<Id>() {
                ids.push(id);
            }
        })?;
        ids.sort();
        Ok(ids)
    }

    /// Calls `f` with each entry of each shard directory of `objects/` and the shard's
    /// name; what is not a shard is passed over (`check` names it).
    fn each_loose(&self, mut f: impl FnMut(&str, fs::DirEntry)) -> Result<()> {
        let objects = self.root.join("objects");
        no_link(&objects)?;
        for shard in fs::read_dir(&objects).at(&objects)? {
            let shard = shard.at(&objects)?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            // A shard that is a link is not followed (`check` names it).
            let is_dir = shard.file_type().is_ok_and(|t| t.is_dir());
            if sname.len() != 2 || !is_lower_hex(&sname) || !is_dir {
                continue;
            }
            let spath = shard.path();
            for obj in fs::read_dir(&spath).at(&spath)? {
                f(&sname, obj.at(&spath)?);
            }
        }
        Ok(())
    }

    /// Writes loose objects (the caller filtered out those present).
    pub(crate) fn put_loose(&self, todo: &[(Id, &[u8])]) -> Result<usize> {
        // Pages become durable after everything else and one by one, in the order given
        // (oldest first from every writer): a reader that finds a page takes its messages
        // and older pages to be there too, also after a power loss.
        let is_page =
            |b: &[u8]| crate::model::object::peek_kind(b) == Some(crate::model::object::Kind::Page);
        let (pages, rest): (Vec<_>, Vec<_>) = todo.iter().copied().partition(|(_, b)| is_page(b));
        let mut written = self.put_loose_group(&rest)?;
        for page in &pages {
            written += self.put_loose_group(std::slice::from_ref(page))?;
        }
        Ok(written)
    }

    /// Writes loose objects durably: contents, then names, then directories.
    fn put_loose_group(&self, todo: &[(Id, &[u8])]) -> Result<usize> {
        if todo.is_empty() {
            return Ok(0);
        }
        let small = todo.len() <= SMALL_BATCH;
        let mut dirs: Vec<PathBuf> = todo
            .iter()
            .map(|(id, _)| self.object_path(id).parent().map(Path::to_path_buf))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            fsutil::create_dir_durable(d)?;
        }
        let level = self.config().zstd_level;
        let mut staged = Vec::with_capacity(todo.len());
        for (id, bytes) in todo {
            let path = self.object_path(id);
            let frame = zstd::bulk::compress(bytes, level).at(&path)?;
            let dir = path.parent().unwrap_or(&self.root);
            staged.push((fsutil::stage(dir, &frame)?, path));
        }
        let mut written = 0;
        if small {
            for (tmp, path) in staged {
                tmp.sync()?;
                written += usize::from(tmp.persist_noclobber(&path)?);
            }
            for d in &dirs {
                fsutil::fsync_dir(d)?;
            }
        } else {
            // Contents durable before any name appears, names durable before returning.
            fsutil::sync_filesystem(&self.root)?;
            for (tmp, path) in staged {
                written += usize::from(tmp.persist_noclobber(&path)?);
            }
            fsutil::sync_filesystem(&self.root)?;
        }
        Ok(written)
    }

    /// Where object `id` lives.
    pub fn object_path(&self, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    fn ref_path(&self, name: &RefName) -> PathBuf {
        self.root.join("refs").join(name.as_str())
    }

    /// Makes sure no ancestor of a ref is itself a ref and the ref is not a folder, so
    /// that `a` and `a/b` cannot both be logs.
    fn check_ref_shape(&self, name: &RefName) -> Result<()> {
        let refs = self.root.join("refs");
        let mut cur = refs.clone();
        let segs: Vec<&str> = name.as_str().split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            cur.push(seg);
            let last = i + 1 == segs.len();
            if !last && cur.is_file() {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: format!("{} is already a ref", segs[..=i].join("/")),
                });
            }
            if last && cur.is_dir() {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "it is the folder of other refs".into(),
                });
            }
        }
        Ok(())
    }

    /// The refs below `refs/<prefix>/`, sorted, handing `damaged` each entry there that
    /// is none (format/store-v1.md, section 4): a symbolic link, fifo or device, a name
    /// that is not valid, a folder of such a name, a top-level folder that is not a
    /// directory. Temporary files and `*.lock` files are skipped.
    fn walk_refs(&self, prefix: &str, damaged: &mut dyn FnMut(Error)) -> Result<Vec<RefName>> {
        if !prefix.is_empty() {
            crate::model::name::validate(prefix)?;
        }
        let refs = self.root.join("refs");
        let base = refs.join(prefix);
        // The folders leading to `base`: none may be a link; a top-level one (`logs`,
        // `remotes`, ...) must be a directory, while below it a ref file simply has no
        // refs under it.
        let mut at = self.root.clone();
        let steps: Vec<&str> = std::iter::once("refs")
            .chain(prefix.split('/').filter(|s| !s.is_empty()))
            .collect();
        for (i, step) in steps.iter().enumerate() {
            at.push(step);
            let m = match fs::symlink_metadata(&at) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e).at(&at),
            };
            if m.is_dir() {
                continue;
            }
            if m.is_file() && i >= 2 {
                return Ok(Vec::new());
            }
            damaged(Error::NotARef {
                path: at,
                reason: format!(
                    "{} where a folder of refs belongs",
                    file_kind(&m.file_type())
                ),
            });
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut walk = walkdir::WalkDir::new(&base).min_depth(1).into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| walk_error(e, &base))?;
            let name = entry.file_name().to_string_lossy();
            let t = entry.file_type();
            if is_tmp_name(&name) || (t.is_file() && name.ends_with(".lock")) {
                if t.is_dir() {
                    walk.skip_current_dir();
                }
                continue;
            }
            let rel = entry.path().strip_prefix(&refs).unwrap_or(entry.path());
            let parsed = RefName::parse(&rel.to_string_lossy());
            let reason = match (&parsed, t.is_file(), t.is_dir()) {
                (Ok(_), false, true) => continue, // a folder of refs
                (Ok(name), true, _) => {
                    out.push(name.clone());
                    continue;
                }
                (Err(e), _, true) => format!("a folder whose name is not valid ({})", reason_of(e)),
                (Err(e), true, _) => format!("a file whose name is not valid ({})", reason_of(e)),
                (_, false, false) => format!("{}, not a ref file", file_kind(&t)),
            };
            if t.is_dir() {
                walk.skip_current_dir();
            }
            damaged(Error::NotARef {
                path: entry.path().to_path_buf(),
                reason,
            });
        }
        out.sort();
        Ok(out)
    }

    /// Leftover temporary files and lock files below the store, for `check` and `gc`.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&self.root).min_depth(1) {
            let entry = entry.map_err(|e| walk_error(e, &self.root))?;
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_file() && (is_tmp_name(&name) || name.ends_with(".lock")) {
                out.push(entry.path().to_path_buf());
            }
        }
        Ok(out)
    }
}

/// Refuses a directory of the store that is a symbolic link: nothing is read through it.
fn no_link(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::BadFile {
            path: dir.to_path_buf(),
            reason: "a symbolic link where a directory of the store belongs (never followed)"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// Why a name is invalid, without the name (the path is in the message already).
fn reason_of(e: &Error) -> String {
    match e {
        Error::InvalidName { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// What a non-regular entry is, for messages.
fn file_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a regular file"
    }
}

fn walk_error(e: walkdir::Error, root: &Path) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    Error::Io {
        path,
        source: e
            .into_io_error()
            .unwrap_or_else(|| io::Error::other("file system loop")),
    }
}

/// Decompresses one zstd frame, refusing output beyond [`MAX_OBJECT_SIZE`].
pub fn decompress(compressed: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let declared = declared_size(compressed)?;
    let decoder = zstd::stream::read::Decoder::with_buffer(compressed)
        .map_err(|e| format!("not a zstd frame: {e}"))?;
    decode_capped(decoder, declared)
}

/// Decompresses a loose object file as it reads it, so memory follows the output, which
/// is refused beyond [`MAX_OBJECT_SIZE`] whatever the frame declares.
fn decompress_file(f: fs::File) -> std::result::Result<Vec<u8>, String> {
    // The frame header is at most 18 bytes; the content size it declares is checked
    // before anything is allocated.
    let mut head = [0u8; 18];
    let mut got = 0;
    while got < head.len() {
        match std::os::unix::fs::FileExt::read_at(&f, &mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot be read: {e}")),
        }
    }
    let declared = declared_size(&head[..got])?;
    let decoder =
        zstd::stream::read::Decoder::new(f).map_err(|e| format!("not a zstd frame: {e}"))?;
    decode_capped(decoder, declared)
}

/// The content size a zstd frame header declares, refused beyond [`MAX_OBJECT_SIZE`].
fn declared_size(head: &[u8]) -> std::result::Result<Option<u64>, String> {
    match zstd::zstd_safe::get_frame_content_size(head) {
        Ok(Some(n)) if n > MAX_OBJECT_SIZE => Err(format!(
            "its zstd frame declares {n} bytes, more than an object may hold ({MAX_OBJECT_SIZE})"
        )),
        Ok(n) => Ok(n),
        Err(_) => Err("not a zstd frame (bad header)".into()),
    }
}

fn decode_capped(
    decoder: impl Read,
    declared: Option<u64>,
) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
    decoder
        .take(MAX_OBJECT_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a valid zstd frame (truncated or damaged): {e}"))?;
    if out.len() as u64 > MAX_OBJECT_SIZE {
        return Err(format!("larger than {MAX_OBJECT_SIZE} bytes"));
    }
    Ok(out)
}

/// Parses a ref file's content: 64 hex digits and one newline.
pub fn parse_ref(text: &[u8]) -> std::result::Result<Id, crate::error::DecodeError> {
    use crate::error::{DecodeError, Format};
    let s =
        std::str::from_utf8(text).map_err(|_| DecodeError::new(Format::Ref, "not UTF-8 text"))?;
    let hex = s.strip_suffix('\n').unwrap_or(s);
    hex.parse::<Id>()
        .map_err(|e| DecodeError::new(Format::Ref, e.to_string()))
}

impl Backend for FsStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn object_location(&self, id: &Id) -> String {
        self.object_path(id).display().to_string()
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        if let Some(bytes) = self.read_packed(id)? {
            return Ok(bytes);
        }
        let path = self.object_path(id);
        let rel = path.strip_prefix(&self.root).unwrap_or(&path);
        let file = match fsutil::open_below(&self.root, rel, "an object file", max_loose_file()) {
            Ok(Some((f, _))) => f,
            Ok(None) => {
                // Another process may have packed it since we loaded the chain.
                self.reload_packs()?;
                if let Some(bytes) = self.read_packed(id)? {
                    return Ok(bytes);
                }
                return Err(Error::ObjectMissing {
                    id: *id,
                    location: path.display().to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        let bytes = decompress_file(file).map_err(|reason| Error::ObjectCorrupt {
            id: *id,
            location: path.display().to_string(),
            reason,
        })?;
        verify_id(id, &bytes, || path.display().to_string())?;
        Ok(bytes)
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        if self.find_packed(id).is_some() {
            return Ok(true);
        }
        let path = self.object_path(id);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() || m.is_dir() => Ok(m.is_file()),
            // A link, fifo or device where an object belongs is never taken for one.
            Ok(m) => Err(fsutil::not_regular(&path, file_kind(&m.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    fn present_objects(&self, ids: &[Id]) -> Result<std::collections::HashSet<Id>> {
        if ids.len() < 256 {
            let mut out = std::collections::HashSet::new();
            for id in ids {
                if self.has_object(id)? {
                    out.insert(*id);
                }
            }
            return Ok(out);
        }
        // Many ids: sorted, they are looked up in each index in one forward pass, and
        // listing a loose shard pays off once several may fall in it.
        let packs = self.packs_snapshot();
        let mapped = as_packs(&packs);
        let (found, rest) = pack::locate(&mapped, ids);
        let mut out: std::collections::HashSet<Id> = found.into_iter().map(|f| f.2).collect();
        let mut cache = LooseListing::default();
        let list = rest.len() >= 256;
        for id in rest {
            let here = if list {
                self.loose_listed(&mut cache, &id)?
            } else {
                self.has_object(&id)?
            };
            if here {
                out.insert(id);
            }
        }
        Ok(out)
    }

    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(RollingBatch::new(FsSink {
            store: self,
            listing: LooseListing::default(),
        })))
    }

    fn raw_blocks(&self, ids: &[Id], take: &mut dyn FnMut(RawBlock) -> Result<()>) -> Result<()> {
        self.reload_packs()?;
        let packs = self.packs_snapshot();
        let mapped = as_packs(&packs);
        let blocks =
            pack::whole_blocks(&mapped, ids).map_err(|(k, r)| pack::bad_pack(&packs[k].1, r))?;
        for (k, n, objects) in blocks {
            let (_, path, p) = &packs[k];
            let b = p.block(n);
            let frame = p.frame(n).map_err(|r| pack::bad_pack(path, r))?;
            take(RawBlock {
                frame: frame.into_owned(),
                ulen: b.ulen,
                checksum: b.checksum,
                objects,
            })?;
        }
        Ok(())
    }

    fn scan_objects(&self, f: &mut dyn FnMut(Id, Result<Vec<u8>>)) -> Result<()> {
        self.reload_packs()?;
        let packs = self.packs_snapshot();
        // An object in several places is reported from the newest pack holding it: the ids
        // of each pack (and the loose ones) are matched against the newer packs' indexes,
        // so memory follows one pack, not the store.
        let mapped = as_packs(&packs);
        let also_newer = |k: usize, ids: &[Id]| -> std::collections::HashSet<Id> {
            pack::locate(&mapped[..k], ids)
                .0
                .into_iter()
                .map(|f| f.2)
                .collect()
        };
        for (k, (_, path, p)) in packs.iter().enumerate() {
            let dup = also_newer(k, &p.ids().collect::<Vec<_>>());
            let by_block = p.objects_by_block().map_err(|r| pack::bad_pack(path, r))?;
            for (n, objects) in by_block.into_iter().enumerate() {
                if objects.is_empty() {
                    continue;
                }
                let location = || format!("{} block {n}", path.display());
                match p.decompress_block(n as u32) {
                    Ok(data) => {
                        for (id, loc) in objects {
                            if dup.contains(&id) {
                                continue;
                            }
                            let bytes =
                                data[loc.offset as usize..(loc.offset + loc.len) as usize].to_vec();
                            let checked = verify_id(&id, &bytes, location).map(|()| bytes);
                            f(id, checked);
                        }
                    }
                    Err(reason) => {
                        for (id, _) in objects {
                            if !dup.contains(&id) {
                                f(
                                    id,
                                    Err(Error::ObjectCorrupt {
                                        id,
                                        location: location(),
                                        reason: reason.to_string(),
                                    }),
                                );
                            }
                        }
                    }
                }
            }
        }
        let loose = self.loose_objects()?;
        let dup = also_newer(packs.len(), &loose);
        for id in loose {
            if !dup.contains(&id) {
                f(id, self.get_object(&id));
            }
        }
        Ok(())
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        let mut ids = self.loose_objects()?;
        self.reload_packs()?;
        for (_, _, p) in self.packs_snapshot() {
            ids.extend(p.ids());
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        if prefix.len() < 2 || !is_lower_hex(prefix) {
            return Ok(Vec::new());
        }
        let spath = self.root.join("objects").join(&prefix[..2]);
        let mut ids: Vec<Id> = Vec::new();
        self.reload_packs()?;
        for (_, _, p) in self.packs_snapshot() {
            ids.extend(p.ids().filter(|id| id.to_hex().starts_with(prefix)));
        }
        let rd = match fs::read_dir(&spath) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ids.sort();
                ids.dedup();
                return Ok(ids);
            }
            Err(e) => return Err(e).at(&spath),
        };
        for obj in rd {
            let obj = obj.at(&spath)?;
            let full = format!("{}{}", &prefix[..2], obj.file_name().to_string_lossy());
            if full.starts_with(prefix) {
                if let Ok(id) = full.parse::<Id>() {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        let path = self.ref_path(name);
        let rel = Path::new("refs").join(name.as_str());
        // A folder of other refs reads as no ref, except where the pack chain's head
        // belongs: taking it for "no packs" would make gc delete every pack.
        let Some(text) = fsutil::read_below(&self.root, &rel, "a ref file", REF_MAX)? else {
            if *name == packs_ref() && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                return Err(Error::NotARef {
                    path,
                    reason: "a directory where the head of the pack chain belongs".into(),
                });
            }
            return Ok(None);
        };
        parse_ref(&text).map(Some).map_err(|reason| Error::BadRef {
            path,
            reason: reason.to_string(),
        })
    }

    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        self.check_ref_shape(name)?;
        let path = self.ref_path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fsutil::create_dir_durable(&dir)?;
        let mut lock_name = path.clone().into_os_string();
        lock_name.push(".lock");
        let _lock = LockFile::acquire(Path::new(&lock_name), lock::DEFAULT_WAIT)?;
        check_expected(name, expected, self.read_ref(name)?)?;
        match new {
            Some(id) => fsutil::write_atomic(&path, format!("{id}\n").as_bytes()),
            None => {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at(&path),
                }
                fsutil::fsync_dir(&dir)
            }
        }
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        let mut first = None;
        let refs = self.walk_refs(prefix, &mut |e| {
            first.get_or_insert(e);
        })?;
        // A reader must never take a store for one without the refs it cannot read (gc
        // would delete what they name): the first such entry fails the listing.
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

    fn write_lease_waiting(&self, wait: std::time::Duration) -> Result<WriteLease> {
        self.lease(wait)
    }

    fn timed_leases(&self) -> Option<&dyn TimedLeases> {
        Some(self)
    }

    fn upkeep(&self) -> Option<&dyn Upkeep> {
        Some(self)
    }

    fn cache_dir(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        if objects.len() > LOOSE_MAX {
            let mut batch = self.batch()?;
            for (id, bytes) in objects {
                batch.add(*id, bytes)?;
            }
            return batch.commit();
        }
        // Few objects become loose files straight away, as a batch would make them, without
        // the batch's copy of their bytes (a server stores uploads this way).
        let mut seen = std::collections::HashSet::new();
        let mut todo = Vec::with_capacity(objects.len());
        for (id, bytes) in objects {
            if seen.insert(*id) && !self.has_object(id)? {
                todo.push((*id, *bytes));
            }
        }
        self.put_loose(&todo)
    }

    fn pack_chain(&self) -> Result<Vec<PackInfo>> {
        self.reload_packs()?;
        let mut out = Vec::new();
        for (id, path, p) in self.packs_snapshot() {
            let size = fs::symlink_metadata(&path).at(&path)?.len();
            out.push(PackInfo {
                id,
                size,
                objects: p.len(),
            });
        }
        Ok(out)
    }

    fn pack_location(&self, id: &Id) -> String {
        self.pack_path(id).display().to_string()
    }

    fn read_pack(&self, id: &Id, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        self.reload_packs()?;
        let path = self.pack_path(id);
        if !self.packs_snapshot().iter().any(|(p, _, _)| p == id) {
            return Err(pack::bad_pack(&path, "is not on this store's pack chain"));
        }
        let rel = Path::new("packs").join(format!("{id}.pack"));
        let Some((file, size)) = fsutil::open_below(&self.root, &rel, "a pack", u64::MAX)? else {
            return Err(pack::bad_pack(
                &path,
                "is missing but the pack chain names it",
            ));
        };
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(pack::bad_pack(
                &path,
                format!("bytes {offset}..+{len} lie beyond its {size} bytes"),
            ));
        }
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset)).at(&path)?;
        Ok(Box::new(file.take(len)))
    }

    fn staging_dir(&self) -> Result<PathBuf> {
        let dir = self.packs_dir();
        fsutil::create_dir_durable(&dir)?;
        Ok(dir)
    }

    fn stage_pack(&self) -> Result<pack::PackWriter> {
        self.pack_writer()
    }

    fn add_pack(&self, done: pack::Finished) -> Result<Option<Id>> {
        self.commit_pack(done).map(Some)
    }

    fn layout(&self) -> Result<Layout> {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut tmp = 0;
        for path in self.leftovers()? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if is_tmp_name(&name) {
                tmp += 1;
            } else {
                let text = lock::read_lock(&path).ok().flatten().unwrap_or_default();
                notes.push(format!(
                    "{}: lock {}",
                    path.display(),
                    lock::describe(&text)
                ));
            }
        }
        if tmp > 0 {
            notes.push(format!(
                "{tmp} temporary file(s) left by interrupted writes; they are never referenced and are harmless"
            ));
        }
        let objects = self.root.join("objects");
        let shards = match no_link(&objects) {
            Ok(()) => fs::read_dir(&objects).at(&objects)?.collect(),
            Err(e) => {
                problems.push(e.to_string());
                Vec::new()
            }
        };
        for shard in shards {
            let shard = shard.at(&objects)?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            let spath = shard.path();
            if is_tmp_name(&sname) {
                continue;
            }
            let stype = shard.file_type().at(&spath)?;
            if sname.len() != 2 || !is_lower_hex(&sname) || !stype.is_dir() {
                let what = if stype.is_symlink() {
                    " (a symbolic link, which is never followed)"
                } else {
                    ""
                };
                problems.push(format!(
                    "{}: not an object shard directory{what}; move it out of the store",
                    spath.display()
                ));
                continue;
            }
            for obj in fs::read_dir(&spath).at(&spath)? {
                let obj = obj.at(&spath)?;
                let oname = obj.file_name().to_string_lossy().into_owned();
                if is_tmp_name(&oname) {
                    continue;
                }
                if format!("{sname}{oname}").parse::<Id>().is_err() {
                    problems.push(format!(
                        "{}: not an object file name; move it out of the store",
                        obj.path().display()
                    ));
                    continue;
                }
                let otype = obj.file_type().at(&obj.path())?;
                if !otype.is_file() {
                    problems.push(fsutil::not_regular(&obj.path(), file_kind(&otype)).to_string());
                }
            }
        }
        self.pack_layout(&mut problems, &mut notes)?;
        self.walk_refs("", &mut |e| problems.push(e.to_string()))?;
        Ok(Layout { problems, notes })
    }
}

/// The directory's half of its batches ([`RollingBatch`]): up to [`LOOSE_MAX`] objects
/// become loose files, more become packs of about [`FsStore::with_pack_target`] bytes,
/// each committed as soon as it is written; objects already committed are found through
/// the store's indexes.
struct FsSink<'a> {
    store: &'a FsStore,
    listing: LooseListing,
}

impl BatchSink for FsSink<'_> {
    fn has(&mut self, id: &Id) -> Result<bool> {
        self.store.has_object_listed(&mut self.listing, id)
    }

    fn pack_writer(&mut self) -> Result<pack::PackWriter> {
        self.store.pack_writer()
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

/// The timed leases of a served directory: `locks/writer-client-<id>` files carrying
/// their expiry ([`crate::store::lease`]).
impl TimedLeases for FsStore {
    fn take(&self, id: &str, ttl: std::time::Duration, wait: std::time::Duration) -> Result<()> {
        crate::store::lease::client_writer(&self.root, id, ttl, wait)
    }

    fn renew(&self, id: &str, ttl: std::time::Duration) -> Result<bool> {
        crate::store::lease::renew_client(&self.root, id, ttl)
    }

    fn release(&self, id: &str) -> Result<()> {
        crate::store::lease::release_client(&self.root, id)
    }

    fn join(&self, id: &str) -> Result<Option<WriteLease>> {
        if !crate::store::lease::client_live(&self.root, id)? {
            return Ok(None);
        }
        // As when taking a lease: a gc that ran since the chain was loaded may have
        // rewritten the packs, and presence answered from the old ones would be wrong.
        self.reload_packs()?;
        Ok(Some(WriteLease::none()))
    }

    fn count(&self) -> Result<usize> {
        crate::store::lease::client_count(&self.root)
    }
}

/// How old the file at `path` is by its modification time (zero when unknown: young).
fn file_age(path: &Path, now: std::time::SystemTime) -> std::time::Duration {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}

/// Removes a file (gone already is fine).
fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at(path),
    }
}

/// Upkeep of a store directory: the upkeep lease in `locks/` and `packs/commit.lock`,
/// ages from modification times, deletions with `unlink` made durable by fsync.
impl Upkeep for FsStore {
    fn exclusive(&self, wait: std::time::Duration) -> Result<UpkeepGuard> {
        let upkeep = crate::store::lease::upkeep(&self.root, wait)?;
        let dir = self.packs_dir();
        fsutil::create_dir_durable(&dir)?;
        // No pack is committed while upkeep decides and rewrites: writers wait for this.
        let commit = LockFile::acquire(&dir.join("commit.lock"), PACK_LOCK_WAIT)?;
        self.reload_packs()?;
        Ok(UpkeepGuard::new((upkeep, commit)))
    }

    fn inventory(&self) -> Result<Inventory> {
        let now = std::time::SystemTime::now();
        let head = self.read_ref(&packs_ref())?;
        let loose = self
            .loose_objects()?
            .into_iter()
            .map(|id| (id, file_age(&self.object_path(&id), now)))
            .collect();
        let packs = self
            .pack_chain()?
            .into_iter()
            .map(|p| {
                let age = file_age(&self.pack_path(&p.id), now);
                (p, age)
            })
            .collect();
        Ok(Inventory { loose, packs, head })
    }

    fn open_pack(&self, id: &Id) -> Result<Arc<MappedPack>> {
        if let Some((_, _, p)) = self.packs_snapshot().into_iter().find(|(p, _, _)| p == id) {
            return Ok(p);
        }
        FsStore::open_pack(self, id).map(Arc::new)
    }

    fn delete_loose(&self, ids: &[Id], how: Removal) -> Result<usize> {
        let mut removed = 0;
        for id in ids {
            let path = self.object_path(id);
            removed += usize::from(remove_file(&path)?);
            if how == Removal::EachDurable {
                fsutil::fsync_dir(path.parent().unwrap_or(&self.root))?;
            }
        }
        Ok(removed)
    }

    fn rewrite_writer(&self, prev: Option<Id>) -> Result<pack::PackWriter> {
        pack::PackWriter::create(&self.staging_dir()?, prev, self.config().zstd_level)
    }

    fn replace_chain(
        &self,
        old_head: Option<Id>,
        packs: Vec<pack::Finished>,
        lock_held: bool,
    ) -> Result<usize> {
        let dir = self.staging_dir()?;
        let lock = if lock_held {
            None
        } else {
            Some(LockFile::acquire(&dir.join("commit.lock"), PACK_LOCK_WAIT)?)
        };
        // A lost compare-and-swap, like a ref's: running the command again reads the new
        // chain (and the exit status says so).
        check_expected(
            &packs_ref(),
            Expected::from(old_head),
            self.read_ref(&packs_ref())?,
        )?;
        let mut new_head = None;
        for done in packs {
            let dest = self.pack_path(&done.id);
            new_head = Some(done.id);
            done.tmp.persist(&dest).map_err(|e| Error::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        }
        fsutil::fsync_dir(&dir)?;
        self.update_ref(&packs_ref(), old_head.into(), new_head)?;
        self.reload_packs()?;
        // Holding the lock, no other writer is between renaming a pack and chaining it, so
        // every complete pack file off the chain is garbage.
        let mut removed = 0;
        for path in self.orphan_packs()? {
            removed += usize::from(remove_file(&path)?);
        }
        drop(lock);
        Ok(removed)
    }

    fn leftovers(&self, age: std::time::Duration) -> Result<Vec<Leftover>> {
        let now = std::time::SystemTime::now();
        let locks = self.root.join(crate::store::lease::LOCKS_DIR);
        let mut out: Vec<Leftover> = FsStore::leftovers(self)?
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                // Only temporary files: locks and leases are cleared by their own rules.
                is_tmp_name(&name) && !p.starts_with(&locks) && file_age(p, now) >= age
            })
            .map(|p| Leftover(p.display().to_string()))
            .collect();
        out.extend(
            self.orphan_packs()?
                .into_iter()
                .map(|p| Leftover(p.display().to_string())),
        );
        Ok(out)
    }

    fn remove_leftovers(&self, which: &[Leftover]) -> Result<usize> {
        let mut removed = 0;
        for Leftover(path) in which {
            let path = Path::new(path);
            // Only what `leftovers` named: files below this store.
            if path.starts_with(&self.root) && fs::remove_file(path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stored_bytes(&self) -> Result<u64> {
        Ok(walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum())
    }

    fn flush(&self) -> Result<()> {
        fsutil::sync_filesystem(&self.root)
    }

    fn zstd_level(&self) -> i32 {
        self.config().zstd_level
    }
}
