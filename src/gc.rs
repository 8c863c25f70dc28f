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
use crate::lease;
use crate::lock::LockFile;
use crate::log::pages;
use crate::object::{peek_kind, Kind};
use crate::progress::Progress;
use crate::repack::{self, Rewrite, COMMIT_LOCK_WAIT};
use crate::store::FsStore;

/// Temporary files younger than this are never collected, whatever the grace period.
const TMP_MIN_AGE: Duration = Duration::from_secs(60);

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

/// Removes a file (gone already is fine).
fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Removes a file and makes the removal durable before returning.
fn remove_durably(path: &Path) -> Result<()> {
    remove(path)?;
    fsutil::fsync_dir(path.parent().unwrap_or(Path::new(".")))
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

/// Adds to `marked` the chains of the young unreferenced pages among `young`: a page kept
/// for its age keeps the messages and older pages it names, so that no page remains
/// without them (a transfer that finds a page takes everything it names to be there).
fn protect_young_pages(store: &FsStore, young: &HashSet<Id>, marked: &mut HashSet<Id>) {
    for id in young {
        if marked.contains(id) {
            continue;
        }
        for item in pages(store, Some(*id)) {
            // A chain that cannot be followed was left by a crashed writer: keep what can
            // be reached, the rest is garbage like any other.
            let Ok((pid, page)) = item else { break };
            if !marked.insert(pid) {
                break;
            }
            marked.extend(page.entries.iter().map(|e| e.h2));
        }
    }
}

/// Collects garbage in `store`. With `dry_run` nothing changes and the result says what
/// would go.
///
/// gc holds the store's exclusive upkeep lease ([`crate::lease`]) for its whole run: it
/// starts once the writers that hold leases are done, and no writer starts before it ends,
/// so nothing a writer stored or relied on is deleted before its ref names it, whatever
/// the grace period. The grace period protects writers that hold no lease (HTTP clients
/// between their upload and their ref update, older versions).
pub fn gc(
    store: &FsStore,
    grace: Duration,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Collected> {
    let root = store.root().to_path_buf();
    let _upkeep = lease::upkeep(&root, lease::UPKEEP_WAIT)?;
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
    let mut marked = mark(store)?;
    out.reachable = marked.len();

    // Unreferenced objects younger than the grace period, and what their pages name.
    let loose = store.loose_objects()?;
    let packs = store.packs()?;
    let young_packs: HashSet<Id> = packs
        .iter()
        .filter(|(_, path, _)| age(path, now) < grace)
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut young: HashSet<Id> = loose
        .iter()
        .filter(|id| !marked.contains(id) && age(&store.object_path(id), now) < grace)
        .copied()
        .collect();
    for pid in &young_packs {
        let p = store.open_pack(pid)?;
        young.extend(p.ids().filter(|id| !marked.contains(id)));
    }
    protect_young_pages(store, &young, &mut marked);
    out.kept_young =
        marked.len() - out.reachable + young.iter().filter(|id| !marked.contains(id)).count();

    // Loose objects: opaque blobs stay, pages go before messages (newest first).
    let mut loose_pages: Vec<(u64, Id, PathBuf)> = Vec::new();
    let mut loose_messages: Vec<(Id, PathBuf)> = Vec::new();
    let mut opaque: HashSet<Id> = HashSet::new();
    for id in loose {
        if marked.contains(&id) || young.contains(&id) {
            continue;
        }
        let path = store.object_path(&id);
        let Ok(bytes) = store.get_object(&id) else {
            // Damaged garbage: nothing can name it; `check` reports it.
            loose_messages.push((id, path));
            continue;
        };
        match peek_kind(&bytes) {
            None => {
                opaque.insert(id);
            }
            Some(Kind::Page) => {
                let count = crate::object::decode_page(&bytes).map_or(u64::MAX, |p| p.count);
                loose_pages.push((count, id, path));
            }
            Some(Kind::Message) => loose_messages.push((id, path)),
        }
    }
    // Newest first: a page goes before the older page it names.
    loose_pages.sort_by_key(|p| std::cmp::Reverse(p.0));
    // Packed objects: a pack younger than the grace period is kept whole.
    let mut packed_garbage: std::collections::HashMap<Id, u64> = Default::default();
    let mut packs_with_garbage = 0;
    for (pid, path, _) in &packs {
        if young_packs.contains(pid) {
            continue;
        }
        let p = store.open_pack(pid)?;
        let mut any = false;
        let mut unmarked: Vec<(Id, crate::pack::Location)> = (0..p.len())
            .map(|i| p.entry(i))
            .filter(|(id, _)| !marked.contains(id))
            .collect();
        // In block order, so each block is decompressed once to tell typed objects apart.
        unmarked.sort_by_key(|(_, loc)| (loc.block, loc.offset));
        for (id, loc) in unmarked {
            let typed = p
                .read(&id, loc)
                .map_err(|r| crate::pack::bad_pack(path, r))?
                .get(..3)
                .and_then(peek_kind)
                .is_some();
            if typed && !young.contains(&id) {
                packed_garbage.insert(id, u64::from(loc.len));
                any = true;
            } else if !typed {
                opaque.insert(id);
            }
        }
        packs_with_garbage += usize::from(any);
    }
    // What leaves the store for good: garbage that is not also kept somewhere young.
    let mut vanishing: std::collections::BTreeMap<Id, u64> =
        packed_garbage.clone().into_iter().collect();
    for (_, id, _) in &loose_pages {
        vanishing
            .entry(*id)
            .or_insert_with(|| store.get_object(id).map_or(0, |b| b.len() as u64));
    }
    for (id, _) in &loose_messages {
        vanishing
            .entry(*id)
            .or_insert_with(|| store.get_object(id).map_or(0, |b| b.len() as u64));
    }
    out.kept_opaque = opaque.len();
    out.objects = vanishing.len();
    out.bytes = vanishing.values().sum();
    out.removed_ids = vanishing.into_keys().collect();
    out.loose_removed = loose_pages.len() + loose_messages.len();
    out.packs_rewritten = packs_with_garbage;
    // Temporary files of writers that died, and pack files left off the chain. Live writers
    // hold leases (so none runs now), but a few short steps write temporary files without
    // one (lock files being taken, `remote add`): those are never older than a minute.
    let tmp_age = grace.max(TMP_MIN_AGE);
    let leftovers: Vec<PathBuf> = store
        .leftovers()?
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // Only temporary files: locks and leases are cleared by their own rules.
            fsutil::is_tmp_name(&name)
                && !p.starts_with(root.join(lease::LOCKS_DIR))
                && age(p, now) >= tmp_age
        })
        .chain(store.orphan_packs()?)
        .collect();
    out.leftovers_removed = leftovers.len();
    if dry_run {
        out.disk_after = out.disk_before;
        return Ok(out);
    }

    // Deletion order keeps every page that remains complete, also after a crash or a
    // power loss at any point: loose pages first, newest first, each durable before the
    // next; then the packs (one atomic swap of the chain); then the loose messages.
    for (_, _, path) in &loose_pages {
        remove_durably(path)?;
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
    for (_, path) in &loose_messages {
        remove(path)?;
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
