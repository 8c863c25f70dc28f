//! `repack`: merges loose objects and packs into packs of a target size
//! (format/pack-v1.md, section 4). New packs are durable and chained before anything old is
//! deleted, so an interruption at any point loses nothing. `gc` uses the same rewrite with
//! a filter that drops unreferenced objects.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use crate::backend::Backend;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::id::Id;
use crate::lock::LockFile;
use crate::pack::{self, PackWriter};
use crate::progress::Progress;
use crate::store::{packs_ref, FsStore};

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
    /// The caller already holds `packs/commit.lock`.
    pub lock_held: bool,
}

/// Rewrites every object of `store` into packs of about `target` bytes.
pub fn repack(store: &FsStore, target: u64, progress: &dyn Progress) -> Result<Repacked> {
    // Repack keeps every object, but writes packs for a long time: as a writer, it holds
    // a lease, so that gc neither runs meanwhile nor takes its unfinished packs for
    // leftovers.
    let _lease = store.write_lease()?;
    let packs = store.packs()?;
    let loose = store.loose_objects()?;
    if loose.is_empty() && packs.len() <= 1 {
        return Ok(Repacked {
            packs_before: packs.len(),
            ..Repacked::default()
        });
    }
    rewrite(
        store,
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
    dir: &'a std::path::Path,
    level: i32,
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
        let next = PackWriter::create(self.dir, None, self.level)?;
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

/// Rewrites the pack chain (and optionally the loose objects) as `how` says.
pub fn rewrite(store: &FsStore, how: &Rewrite<'_>, progress: &dyn Progress) -> Result<Repacked> {
    let mut out = Repacked::default();
    let old_head = store.read_ref(&packs_ref())?;
    let old_packs = store.packs()?;
    let loose = if how.pack_loose {
        store.loose_objects()?
    } else {
        Vec::new()
    };
    out.packs_before = old_packs.len();
    out.loose_before = loose.len();
    let total: u64 = old_packs.iter().map(|p| p.2 as u64).sum::<u64>() + loose.len() as u64;
    progress.phase("rewriting packs", Some(total));
    let keep = |id: &Id| how.keep.is_none_or(|k| k(id));

    let dir = store.root().join("packs");
    fsutil::create_dir_durable(&dir)?;
    let level = store.config().zstd_level;
    let mut seen: HashSet<Id> = HashSet::new();
    let mut out_packs = Output {
        dir: &dir,
        level,
        target: how.target,
        current: PackWriter::create(&dir, None, level)?,
        finished: Vec::new(),
    };
    // Oldest pack first, so the new chain keeps roughly the age order.
    for (id, _, _) in old_packs.iter().rev() {
        let p = store.open_pack(id)?;
        let path = store.pack_path(id);
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
                    crate::backend::verify_id(&oid, &bytes, || path.display().to_string())?;
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

    // Swap the chain under the commit lock, then delete what the new chain replaces.
    let lock = if how.lock_held {
        None
    } else {
        Some(LockFile::acquire(
            &dir.join("commit.lock"),
            COMMIT_LOCK_WAIT,
        )?)
    };
    if store.read_ref(&packs_ref())? != old_head {
        return Err(Error::Invalid(
            "another writer added a pack meanwhile; nothing was changed, run the command again"
                .into(),
        ));
    }
    let mut new_head = None;
    for done in finished {
        let dest = store.pack_path(&done.id);
        new_head = Some(done.id);
        done.tmp.persist(&dest).map_err(|e| Error::Io {
            path: dest.clone(),
            source: e.error,
        })?;
    }
    fsutil::fsync_dir(&dir)?;
    store.update_ref(&packs_ref(), old_head, new_head)?;
    store.reload_packs()?;
    let keep_files: HashSet<PathBuf> = store.packs()?.into_iter().map(|p| p.1).collect();
    // Holding the lock, no other writer is between renaming a pack and chaining it, so
    // every complete pack file off the chain is garbage.
    for entry in fs::read_dir(&dir).at(&dir)? {
        let path = entry.at(&dir)?.path();
        if path.extension().is_some_and(|e| e == "pack")
            && !fsutil::is_tmp_name(&path.file_name().unwrap_or_default().to_string_lossy())
            && !keep_files.contains(&path)
        {
            fs::remove_file(&path).at(&path)?;
            out.files_removed += 1;
        }
    }
    drop(lock);
    for id in &loose {
        let path = store.object_path(id);
        match fs::remove_file(&path) {
            Ok(()) => out.files_removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&path),
        }
    }
    fsutil::sync_filesystem(store.root())?;
    progress.finish();
    Ok(out)
}
