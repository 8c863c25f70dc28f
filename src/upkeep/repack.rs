//! `repack`: merges loose objects and packs into packs of a target size
//! (format/pack-v1.md, section 4). New packs are durable and chained before anything old is
//! deleted, so an interruption at any point loses nothing. `gc` uses the same rewrite with
//! a filter that drops unreferenced objects.

use std::collections::HashSet;

use crate::error::Result;
use crate::id::Id;
use crate::pack::{self, PackWriter};
use crate::progress::Progress;
use crate::store::{Backend, Removal, Upkeep};

/// Default size at which repack starts a new pack.
pub const DEFAULT_TARGET: u64 = pack::BATCH_TARGET;

/// How long a writer waits for the pack commit lock (repack and gc hold it while they swap
/// the chain; gc holds it for its whole run).
pub const COMMIT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What a repack did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Repacked {
    /// Packs on the chain before.
    pub packs_before: usize,
    /// Loose objects before.
    pub loose_before: usize,
    /// Packs written.
    pub packs_after: usize,
    /// Objects in the new packs.
    pub objects: usize,
    /// Objects left out by the filter.
    pub dropped: usize,
    /// Uncompressed bytes of the objects left out.
    pub dropped_bytes: u64,
    /// Compressed blocks copied without recompression.
    pub blocks_copied: usize,
    /// Pack files and loose objects deleted afterwards.
    pub files_removed: usize,
}

/// How to rewrite the pack chain.
pub struct Rewrite<'a> {
    /// Start a new pack at this size.
    pub target: u64,
    /// Objects for which this is false are left out (gc). `None` keeps everything.
    pub keep: Option<&'a dyn Fn(&Id) -> bool>,
    /// Also move the loose objects into the new packs (and delete their files).
    pub pack_loose: bool,
    /// The caller holds the exclusive upkeep lease ([`Upkeep::exclusive`]), which keeps
    /// packs from being added meanwhile.
    pub lock_held: bool,
}

/// Rewrites every object of `store` into packs of about `target` bytes.
pub fn repack(store: &dyn Backend, target: u64, progress: &dyn Progress) -> Result<Repacked> {
    repack_waiting(store, target, crate::store::WRITER_WAIT, progress)
}

/// [`repack`], waiting up to `wait` for a running gc before it fails with
/// [`crate::error::Error::Locked`].
pub fn repack_waiting(
    store: &dyn Backend,
    target: u64,
    wait: std::time::Duration,
    progress: &dyn Progress,
) -> Result<Repacked> {
    let u = crate::upkeep::gc::upkeep_of(store)?;
    // Repack keeps every object, but writes packs for a long time: as a writer, it holds
    // a lease, so that gc neither runs meanwhile nor takes its unfinished packs for
    // leftovers.
    let _lease = store.write_lease_waiting(wait)?;
    let inventory = u.inventory()?;
    let (packs, loose) = (inventory.packs.len(), inventory.loose.len());
    if !u.keeps_packs() || (loose == 0 && packs <= 1) {
        return Ok(Repacked {
            packs_before: packs,
            ..Repacked::default()
        });
    }
    rewrite(
        store,
        u,
        &Rewrite {
            target,
            keep: None,
            pack_loose: true,
            lock_held: false,
        },
        progress,
    )
}

/// The packs a rewrite produces, each chained after the one before.
struct Output<'a> {
    upkeep: &'a dyn Upkeep,
    target: u64,
    current: PackWriter,
    finished: Vec<pack::Finished>,
}

impl Output<'_> {
    /// Finishes the current pack once it reached the target size and starts the next.
    fn rotate_if_full(&mut self) -> Result<()> {
        if self.current.size() < self.target {
            return Ok(());
        }
        let next = self.upkeep.rewrite_writer(None)?;
        let done = std::mem::replace(&mut self.current, next).finish()?;
        self.current.set_prev(Some(done.id));
        self.finished.push(done);
        Ok(())
    }

    fn finish(self) -> Result<Vec<pack::Finished>> {
        let mut finished = self.finished;
        if !self.current.is_empty() {
            finished.push(self.current.finish()?);
        }
        Ok(finished)
    }
}

/// Rewrites the pack chain of `store` (and optionally its loose objects) as `how` says,
/// through its upkeep `u`.
pub fn rewrite(
    store: &dyn Backend,
    u: &dyn Upkeep,
    how: &Rewrite<'_>,
    progress: &dyn Progress,
) -> Result<Repacked> {
    let mut out = Repacked::default();
    let inventory = u.inventory()?;
    let old_head = inventory.head;
    let old_packs: Vec<_> = inventory.packs.into_iter().map(|(p, _)| p).collect();
    let loose: Vec<Id> = if how.pack_loose {
        inventory.loose.into_iter().map(|(id, _)| id).collect()
    } else {
        Vec::new()
    };
    out.packs_before = old_packs.len();
    out.loose_before = loose.len();
    let total: u64 = old_packs.iter().map(|p| p.objects as u64).sum::<u64>() + loose.len() as u64;
    progress.phase("rewriting packs", Some(total));
    let keep = |id: &Id| how.keep.is_none_or(|k| k(id));

    let mut seen: HashSet<Id> = HashSet::new();
    let mut out_packs = Output {
        upkeep: u,
        target: how.target,
        current: u.rewrite_writer(None)?,
        finished: Vec::new(),
    };
    // Oldest pack first, so the new chain keeps roughly the age order.
    for info in old_packs.iter().rev() {
        let p = u.open_pack(&info.id)?;
        let path = std::path::PathBuf::from(store.pack_location(&info.id));
        let by_block = p.objects_by_block().map_err(|r| pack::bad_pack(&path, r))?;
        for (n, objects) in by_block.into_iter().enumerate() {
            let total_in_block = objects.len();
            let mut fresh = Vec::with_capacity(total_in_block);
            for (oid, loc) in objects {
                let o = (oid, loc.offset, loc.len);
                if seen.contains(&o.0) {
                    continue;
                }
                if keep(&o.0) {
                    fresh.push(o);
                } else {
                    seen.insert(o.0);
                    out.dropped += 1;
                    out.dropped_bytes += u64::from(o.2);
                }
            }
            progress.advance(total_in_block as u64);
            if fresh.is_empty() {
                continue;
            }
            let block = p.block(n as u32);
            let frame = p.frame(n as u32).map_err(|r| {
                pack::bad_pack(&path, format!("{r}; stopped before changing anything"))
            })?;
            seen.extend(fresh.iter().map(|o| o.0));
            let writer = &mut out_packs.current;
            if fresh.len() == total_in_block {
                writer.add_raw_block(&frame, block, &fresh)?;
                out.blocks_copied += 1;
            } else {
                // Some objects go: recompress the rest, so the dropped bytes are gone from
                // every file, not just from the index.
                for (oid, offset, len) in fresh {
                    let bytes = p
                        .read(
                            &oid,
                            pack::Location {
                                block: n as u32,
                                offset,
                                len,
                            },
                        )
                        .map_err(|r| pack::bad_pack(&path, r))?;
                    crate::store::verify_id(&oid, &bytes, || path.display().to_string())?;
                    writer.add(oid, &bytes)?;
                }
            }
            out_packs.rotate_if_full()?;
        }
    }
    for id in &loose {
        if seen.insert(*id) && keep(id) {
            let bytes = store.get_object(id)?;
            out_packs.current.add(*id, &bytes)?;
            out_packs.rotate_if_full()?;
        }
        progress.advance(1);
    }
    let finished = out_packs.finish()?;
    out.objects = seen.len() - out.dropped;
    out.packs_after = finished.len();

    // Swap the chain (one compare-and-swap from the old head), which deletes the packs it
    // replaces, then delete the loose objects now packed.
    out.files_removed += u.replace_chain(old_head, finished, how.lock_held)?;
    out.files_removed += u.delete_loose(&loose, Removal::AtFlush)?;
    u.flush()?;
    progress.finish();
    Ok(out)
}
