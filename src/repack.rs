//! `repack`: merges loose objects and packs into packs of a target size
//! (format/pack-v1.md, section 4). New packs are durable and chained before anything old is
//! deleted, so an interruption at any point loses nothing.

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
pub const DEFAULT_TARGET: u64 = 64 << 20;

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
    /// Compressed blocks copied without recompression.
    pub blocks_copied: usize,
    /// Pack files and loose objects deleted afterwards.
    pub files_removed: usize,
}

/// Rewrites every object of `store` into packs of about `target` bytes.
pub fn repack(store: &FsStore, target: u64, progress: &dyn Progress) -> Result<Repacked> {
    let mut out = Repacked::default();
    let old_head = store.read_ref(&packs_ref())?;
    let old_packs = store.packs()?;
    let loose = store.loose_objects()?;
    out.packs_before = old_packs.len();
    out.loose_before = loose.len();
    if loose.is_empty() && old_packs.len() <= 1 {
        return Ok(out);
    }
    let total: u64 = old_packs.iter().map(|p| p.2 as u64).sum::<u64>() + loose.len() as u64;
    progress.phase("repacking", Some(total));

    let dir = store.root().join("packs");
    fsutil::create_dir_durable(&dir)?;
    let level = store.config().zstd_level;
    let mut finished: Vec<pack::Finished> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::new();
    let mut writer = PackWriter::create(&dir, None, level)?;
    // Oldest pack first, so the new chain keeps roughly the age order.
    for (id, _, _) in old_packs.iter().rev() {
        let p = store.open_pack(id)?;
        let path = store.pack_path(id);
        let mut by_block: Vec<Vec<(Id, u32, u32)>> = vec![Vec::new(); p.block_count()];
        for i in 0..p.len() {
            let (oid, loc) = p.entry(i);
            by_block[loc.block as usize].push((oid, loc.offset, loc.len));
        }
        for (n, objects) in by_block.into_iter().enumerate() {
            let fresh: Vec<(Id, u32, u32)> = objects
                .into_iter()
                .filter(|o| !seen.contains(&o.0))
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let block = p.block(n as u32);
            let frame = p.block_bytes(n as u32);
            if blake3::hash(frame).as_bytes()[..8] != block.checksum {
                return Err(pack::bad_pack(
                    &path,
                    format!(
                        "block {n} fails its checksum; repack stopped before changing anything"
                    ),
                ));
            }
            seen.extend(fresh.iter().map(|o| o.0));
            writer.add_raw_block(frame, block, &fresh)?;
            out.blocks_copied += 1;
            progress.advance(fresh.len() as u64);
            if writer.size() >= target {
                let done = writer.finish()?;
                let prev = Some(done.id);
                finished.push(done);
                writer = PackWriter::create(&dir, prev, level)?;
            }
        }
    }
    for id in &loose {
        if seen.insert(*id) {
            let bytes = store.get_object(id)?;
            writer.add(*id, &bytes)?;
            if writer.size() >= target {
                let done = writer.finish()?;
                let prev = Some(done.id);
                finished.push(done);
                writer = PackWriter::create(&dir, prev, level)?;
            }
        }
        progress.advance(1);
    }
    if !writer.is_empty() || finished.is_empty() {
        finished.push(writer.finish()?);
    }
    out.objects = seen.len();
    out.packs_after = finished.len();

    // Swap the chain under the commit lock, then delete what the new chain replaces.
    let lock = LockFile::acquire(&dir.join("commit.lock"), std::time::Duration::from_secs(60))?;
    if store.read_ref(&packs_ref())? != old_head {
        return Err(Error::Invalid(
            "another writer added a pack while repack ran; nothing was changed, run repack again"
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
    let keep: HashSet<PathBuf> = store.packs()?.into_iter().map(|p| p.1).collect();
    // Holding the lock, no other writer is between renaming a pack and chaining it, so
    // every pack file off the chain is garbage.
    for entry in fs::read_dir(&dir).at(&dir)? {
        let path = entry.at(&dir)?.path();
        if path.extension().is_some_and(|e| e == "pack")
            && !fsutil::is_tmp_name(&path.file_name().unwrap_or_default().to_string_lossy())
            && !keep.contains(&path)
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
