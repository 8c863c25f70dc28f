//! `gc` (also `scrub`): deletes what no ref reaches. Marks every object reachable from every
//! ref (all logs, and the tracking refs of a local store), then deletes unreferenced loose
//! objects and rewrites packs without their unreferenced entries. Objects younger than a
//! grace period are kept: a writer stores objects before it moves its ref, so for a while
//! its new objects look unreferenced.

use std::collections::HashSet;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::log::pages;
use crate::model::object::{peek_kind, Kind};
use crate::progress::Progress;
use crate::store::{Backend, Removal, Upkeep};
use crate::upkeep::repack::{self, Rewrite};

use crate::store::Collected;

/// Temporary files younger than this are never collected, whatever the grace period
/// (store-v1 section 6): a server spools an upload to one before the request takes its
/// lease, and a few short steps write them without a lease at all.
const TMP_MIN_AGE: Duration = Duration::from_secs(3600);

/// Default grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

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
            .map_err(|e| stopped(e, |e| format!("{e}; gc deletes nothing until then")))
    };
    let mut roots = listed(crate::model::name::LOGS)?;
    roots.extend(listed(crate::model::name::REMOTES)?);
    for r in roots {
        let head = b.read_ref(&r)?;
        for item in pages(b, head) {
            let (id, page) = item.map_err(|e| {
                stopped(e, |e| format!(
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

/// Why marking stopped at `e`. A remote that failed (unreachable, too slow, refusing)
/// keeps its [`Error::Remote`] kind, so that the exit status still says whether running gc
/// again can help; anything else is what `damaged` words.
fn stopped(e: Error, damaged: impl FnOnce(Error) -> String) -> Error {
    match e {
        Error::Remote { kind, message } => Error::Remote {
            kind,
            message: format!("{message}; gc deletes nothing until then"),
        },
        other => Error::Invalid(damaged(other)),
    }
}

/// Adds to `marked` the chains of the young unreferenced pages among `young`: a page kept
/// for its age keeps the messages and older pages it names, so that no page remains
/// without them (a transfer that finds a page takes everything it names to be there).
fn protect_young_pages(store: &dyn Backend, young: &HashSet<Id>, marked: &mut HashSet<Id>) {
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
/// gc holds the store's exclusive upkeep lease ([`Upkeep::exclusive`]) for its whole run:
/// it starts once the writers that hold leases are done, and no writer starts before it
/// ends, so nothing a writer stored or relied on is deleted before its ref names it,
/// whatever the grace period. The grace period protects writers that hold no lease (HTTP
/// clients between their upload and their ref update, older versions). A backend whose
/// store runs its own upkeep (a server) runs it there ([`Backend::gc_at_store`]).
pub fn gc(
    store: &dyn Backend,
    grace: Duration,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Collected> {
    gc_waiting(store, grace, dry_run, crate::store::UPKEEP_WAIT, progress)
}

/// [`gc`], waiting up to `wait` for the writers that hold leases to finish.
pub fn gc_waiting(
    store: &dyn Backend,
    grace: Duration,
    dry_run: bool,
    wait: Duration,
    progress: &dyn Progress,
) -> Result<Collected> {
    let Some(u) = store.upkeep() else {
        return store.gc_at_store(grace, dry_run).unwrap_or_else(|| {
            Err(Error::Invalid(format!(
                "{}: this store offers no upkeep to its clients; run gc where the store is",
                store.location()
            )))
        });
    };
    let _upkeep = u.exclusive(wait)?;
    let mut out = Collected {
        dry_run,
        disk_before: u.stored_bytes()?,
        ..Collected::default()
    };
    progress.phase("marking", None);
    let mut marked = mark(store)?;
    out.reachable = marked.len();

    // Unreferenced objects younger than the grace period, and what their pages name.
    let inventory = u.inventory()?;
    let packs = inventory.packs;
    let young_packs: HashSet<Id> = packs
        .iter()
        .filter(|(_, age)| *age < grace)
        .map(|(p, _)| p.id)
        .collect();
    let mut young: HashSet<Id> = inventory
        .loose
        .iter()
        .filter(|(id, age)| !marked.contains(id) && *age < grace)
        .map(|(id, _)| *id)
        .collect();
    for pid in &young_packs {
        let p = u.open_pack(pid)?;
        young.extend(p.ids().filter(|id| !marked.contains(id)));
    }
    protect_young_pages(store, &young, &mut marked);
    out.kept_young =
        marked.len() - out.reachable + young.iter().filter(|id| !marked.contains(id)).count();

    // Loose objects: opaque blobs stay, pages go before messages (newest first).
    let mut loose_pages: Vec<(u64, Id)> = Vec::new();
    let mut loose_messages: Vec<Id> = Vec::new();
    let mut opaque: HashSet<Id> = HashSet::new();
    for (id, _) in inventory.loose {
        if marked.contains(&id) || young.contains(&id) {
            continue;
        }
        let Ok(bytes) = store.get_object(&id) else {
            // Damaged garbage: nothing can name it; `check` reports it.
            loose_messages.push(id);
            continue;
        };
        match peek_kind(&bytes) {
            None => {
                opaque.insert(id);
            }
            Some(Kind::Page) => {
                let count = crate::model::object::decode_page(&bytes).map_or(u64::MAX, |p| p.count);
                loose_pages.push((count, id));
            }
            Some(Kind::Message) => loose_messages.push(id),
        }
    }
    // Newest first: a page goes before the older page it names.
    loose_pages.sort_by_key(|p| std::cmp::Reverse(p.0));
    // Packed objects: a pack younger than the grace period is kept whole.
    let mut packed_garbage: std::collections::HashMap<Id, u64> = Default::default();
    let mut packs_with_garbage = 0;
    for (info, _) in &packs {
        if young_packs.contains(&info.id) {
            continue;
        }
        let p = u.open_pack(&info.id)?;
        let path = std::path::PathBuf::from(store.pack_location(&info.id));
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
                .map_err(|r| crate::pack::bad_pack(&path, r))?
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
    for id in loose_pages.iter().map(|(_, id)| id).chain(&loose_messages) {
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
    // Temporary files of writers that died, and pack files left off the chain.
    let leftovers = u.leftovers(grace.max(TMP_MIN_AGE))?;
    out.leftovers_removed = leftovers.len();
    if dry_run {
        out.disk_after = out.disk_before;
        return Ok(out);
    }

    // Deletion order keeps every page that remains complete, also after a crash or a
    // power loss at any point: loose pages first, newest first, each durable before the
    // next; then the packs (one atomic swap of the chain); then the loose messages.
    let page_ids: Vec<Id> = loose_pages.iter().map(|(_, id)| *id).collect();
    u.delete_loose(&page_ids, Removal::EachDurable)?;
    if !packed_garbage.is_empty() {
        let keep = |id: &Id| !packed_garbage.contains_key(id);
        repack::rewrite(
            store,
            u,
            &Rewrite {
                target: repack::DEFAULT_TARGET,
                keep: Some(&keep),
                pack_loose: false,
                lock_held: true,
            },
            progress,
        )?;
    }
    u.delete_loose(&loose_messages, Removal::AtFlush)?;
    u.remove_leftovers(&leftovers)?;
    u.flush()?;
    // The spec view's index forgets the objects that are gone (format/spec-view.md).
    let removed: HashSet<Id> = out.removed_ids.iter().copied().collect();
    crate::spec::prune_view_index(store, &removed)?;
    out.disk_after = u.stored_bytes()?;
    progress.finish();
    Ok(out)
}

/// The upkeep of `store`, or an error saying it offers none.
pub(crate) fn upkeep_of(store: &dyn Backend) -> Result<&dyn Upkeep> {
    store.upkeep().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: this store offers no upkeep to its clients; run the command where the store is",
            store.location()
        ))
    })
}
