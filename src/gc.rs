//! `gc` (also `scrub`): deletes what no ref reaches. Marks every object reachable from every
//! ref (all logs, and the tracking refs of a local store), then deletes unreferenced loose
//! objects and rewrites packs without their unreferenced entries. Objects younger than a
//! grace period are kept: a writer stores objects before it moves its ref, so for a while
//! its new objects look unreferenced.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::backend::Backend;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::id::Id;
use crate::lock::LockFile;
use crate::log::pages;
use crate::object::peek_kind;
use crate::progress::Progress;
use crate::repack::{self, Rewrite, COMMIT_LOCK_WAIT};
use crate::store::FsStore;

/// Default grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

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

/// Every object reachable from a ref of `b`: pages and messages of all logs and tracking
/// refs, the objects that spec names (`refs/spec/*`, written through the Twirp NS) point at
/// and, for spec-form logs, their pages and payloads (`crate::spec::mark`).
pub fn mark(b: &dyn Backend) -> Result<HashSet<Id>> {
    let mut marked = HashSet::new();
    // Spec names, with the pages and payloads of spec-form logs, and import records.
    crate::spec::mark(b, &mut marked)?;
    // A ref that cannot be read may name anything: nothing is deleted while one exists.
    let listed = |prefix: &str| {
        b.list_refs(prefix)
            .map_err(|e| Error::Invalid(format!("{e}; gc deletes nothing until then")))
    };
    let mut roots = listed(crate::name::LOGS)?;
    roots.extend(listed(crate::remote::REMOTES)?);
    for r in roots {
        let head = b.read_ref(&r)?;
        for item in pages(b, head) {
            let (id, page) = item.map_err(|e| {
                Error::Invalid(format!(
                    "ref {r} cannot be followed ({e}); gc deletes nothing from a damaged store: run `remotelog check`"
                ))
            })?;
            if !marked.insert(id) {
                break; // shared history, already marked
            }
            for e in &page.entries {
                marked.insert(e.h2);
            }
        }
    }
    Ok(marked)
}

fn age(path: &Path, now: SystemTime) -> Duration {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
}

fn disk_usage(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Collects garbage in `store`. With `dry_run` nothing changes and the result says what
/// would go.
pub fn gc(
    store: &FsStore,
    grace: Duration,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Collected> {
    let root = store.root().to_path_buf();
    let _gc_lock =
        LockFile::acquire(&root.join("gc.lock"), Duration::ZERO).map_err(|e| match e {
            Error::Locked { path, holder, .. } => Error::Locked {
                path,
                holder,
                hint: "another gc is running on this store; wait for it".into(),
            },
            other => other,
        })?;
    let packs_dir = root.join("packs");
    fsutil::create_dir_durable(&packs_dir)?;
    // No pack is committed while gc decides and rewrites: writers wait for this lock.
    let _commit = LockFile::acquire(&packs_dir.join("commit.lock"), COMMIT_LOCK_WAIT)?;
    store.reload_packs()?;
    let now = SystemTime::now();
    let mut out = Collected {
        dry_run,
        disk_before: disk_usage(&root),
        ..Collected::default()
    };
    progress.phase("marking", None);
    let marked = mark(store)?;
    out.reachable = marked.len();

    // Loose objects.
    let mut loose_garbage: Vec<(Id, PathBuf)> = Vec::new();
    let mut young: HashSet<Id> = HashSet::new();
    let mut opaque: HashSet<Id> = HashSet::new();
    for id in store.loose_objects()? {
        if marked.contains(&id) {
            continue;
        }
        let path = store.object_path(&id);
        if age(&path, now) < grace {
            young.insert(id);
        } else if store.get_object(&id).is_ok_and(|b| peek_kind(&b).is_none()) {
            opaque.insert(id);
        } else {
            loose_garbage.push((id, path));
        }
    }
    // Packed objects: a pack younger than the grace period is kept whole.
    let mut packed_garbage: std::collections::HashMap<Id, u64> = Default::default();
    let mut packs_with_garbage = 0;
    for (pid, path, _) in store.packs()? {
        let p = store.open_pack(&pid)?;
        let is_young = age(&path, now) < grace;
        let mut any = false;
        let mut unmarked: Vec<(Id, crate::pack::Location)> = (0..p.len())
            .map(|i| p.entry(i))
            .filter(|(id, _)| !marked.contains(id))
            .collect();
        // In block order, so each block is decompressed once to tell typed objects apart.
        unmarked.sort_by_key(|(_, loc)| (loc.block, loc.offset));
        for (id, loc) in unmarked {
            if is_young {
                young.insert(id);
                continue;
            }
            let typed = p
                .read(&id, loc)
                .map_err(|r| crate::pack::bad_pack(&path, r))?
                .get(..3)
                .and_then(peek_kind)
                .is_some();
            if typed {
                packed_garbage.insert(id, u64::from(loc.len));
                any = true;
            } else {
                opaque.insert(id);
            }
        }
        packs_with_garbage += usize::from(any);
    }
    // What leaves the store for good: garbage that is not also kept somewhere young.
    let mut vanishing: std::collections::BTreeMap<Id, u64> = std::collections::BTreeMap::new();
    for (id, len) in &packed_garbage {
        if !young.contains(id) {
            vanishing.insert(*id, *len);
        }
    }
    for (id, _) in &loose_garbage {
        if !young.contains(id) && !vanishing.contains_key(id) {
            let len = store.get_object(id).map_or(0, |b| b.len() as u64);
            vanishing.insert(*id, len);
        }
    }
    out.kept_young = young.len();
    out.kept_opaque = opaque.len();
    out.objects = vanishing.len();
    out.bytes = vanishing.values().sum();
    out.removed_ids = vanishing.into_keys().collect();
    out.loose_removed = loose_garbage.len();
    out.packs_rewritten = packs_with_garbage;
    let leftovers: Vec<PathBuf> = store
        .leftovers()?
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // Only temporary files: locks are cleared by their own rules.
            fsutil::is_tmp_name(&name) && age(p, now) >= grace
        })
        .chain(
            store
                .orphan_packs()?
                .into_iter()
                .filter(|p| age(p, now) >= grace),
        )
        .collect();
    out.leftovers_removed = leftovers.len();
    if dry_run {
        out.disk_after = out.disk_before;
        return Ok(out);
    }

    if !packed_garbage.is_empty() {
        let keep = |id: &Id| !packed_garbage.contains_key(id);
        repack::rewrite(
            store,
            &Rewrite {
                target: repack::DEFAULT_TARGET,
                keep: Some(&keep),
                pack_loose: false,
                lock_held: true,
            },
            progress,
        )?;
    }
    for (_, path) in &loose_garbage {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(path),
        }
    }
    for path in &leftovers {
        let _ = fs::remove_file(path);
    }
    fsutil::sync_filesystem(&root)?;
    // The spec view's index forgets the objects that are gone (format/spec-view.md).
    let removed: HashSet<Id> = out.removed_ids.iter().copied().collect();
    crate::spec::prune_index(&root, &removed)?;
    out.disk_after = disk_usage(&root);
    progress.finish();
    Ok(out)
}
