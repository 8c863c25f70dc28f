//! Leases: how writers and upkeep share a store directory (format/store-v1.md, section 9).
//!
//! A writer stores objects before the ref that names them moves, so for a while its new
//! objects, and the objects it found present and did not write again, look unreferenced.
//! gc must not delete them, whatever its grace period. The rule: a writer holds a *shared*
//! lease on the store from before its first presence check until after its ref update;
//! gc holds the *exclusive* lease for its whole run. The exclusive lease is taken only
//! when no shared one is held, and no shared one is taken while it is held.
//!
//! Both sides announce themselves before they look at the other (a writer creates its
//! lease file, then checks for the exclusive one; gc creates the exclusive lease, then
//! lists the shared ones), so on one file system at least one of two racing parties sees
//! the other. A writer that sees gc withdraws its lease and waits; gc that sees writers
//! waits for them to finish. Lease files record their holder like lock files
//! ([`crate::lock`]): one whose holder provably died is cleared, any other is reported,
//! never broken.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::lock::{self, LockFile};

/// The folder of a store holding its leases.
pub const LOCKS_DIR: &str = "locks";

/// The exclusive lease of upkeep (gc), in [`LOCKS_DIR`].
pub const UPKEEP: &str = "upkeep";

/// Prefix of the shared leases of writers, in [`LOCKS_DIR`].
pub const WRITER_PREFIX: &str = "writer-";

/// How long a writer waits for a running gc before giving up.
pub const WRITER_WAIT: Duration = Duration::from_secs(300);

/// How long gc waits for the writers that hold leases to finish.
pub const UPKEEP_WAIT: Duration = Duration::from_secs(60);

/// A writer's shared lease; the file is removed when this is dropped.
#[derive(Debug)]
pub struct WriterLease {
    path: PathBuf,
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        // A lease that cannot be removed is cleared by gc once its holder has exited.
        let _ = fs::remove_file(&self.path);
    }
}

/// The exclusive lease of upkeep; released when dropped.
#[derive(Debug)]
pub struct UpkeepLease {
    _lock: LockFile,
}

fn locks_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join(LOCKS_DIR);
    fsutil::create_dir_durable(&dir)?;
    Ok(dir)
}

/// What to say about the holder of the exclusive lease at `path`, or `None` when there is
/// no such lease (or it was left by a process that is gone, and has been cleared).
fn live_upkeep(path: &Path) -> Result<Option<String>> {
    let Some(text) = lock::read_lock(path)? else {
        return Ok(None);
    };
    if lock::is_stale(path, &text) {
        lock::clear_stale(path, &text)?;
        return Ok(None);
    }
    Ok(Some(lock::describe(&text)))
}

/// Takes a shared writer lease on the store at `root`, waiting up to `wait` for a running
/// gc to finish.
pub fn writer(root: &Path, wait: Duration) -> Result<WriterLease> {
    let dir = locks_dir(root)?;
    let upkeep = dir.join(UPKEEP);
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let path = lock::create_unique(&dir, WRITER_PREFIX)?;
        let lease = WriterLease { path };
        let Some(holder) = live_upkeep(&upkeep)? else {
            return Ok(lease);
        };
        drop(lease);
        if Instant::now() >= deadline {
            return Err(Error::Locked {
                path: upkeep,
                holder,
                hint: "gc is running on this store and writers wait for it; run the command again when it is done".into(),
            });
        }
        if !told && wait >= Duration::from_secs(1) {
            told = true;
            eprintln!(
                "remotelog: waiting for gc on {} to finish ({holder})",
                root.display()
            );
        }
        // Short polls: gc runs may follow each other closely, and a writer must get in
        // between two of them.
        thread::sleep(Duration::from_millis(2));
    }
}

/// The writer leases present in `dir` whose holders may still run, clearing the others.
fn live_writers(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut live = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(WRITER_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Some(text) = lock::read_lock(&path)? else {
            continue;
        };
        if lock::is_stale(&path, &text) {
            lock::clear_stale(&path, &text)?;
        } else {
            live.push((path, lock::describe(&text)));
        }
    }
    Ok(live)
}

/// Takes the exclusive upkeep lease on the store at `root`: fails at once if another
/// upkeep holds it, then waits up to `wait` for the writers holding leases to finish.
pub fn upkeep(root: &Path, wait: Duration) -> Result<UpkeepLease> {
    let dir = locks_dir(root)?;
    let path = dir.join(UPKEEP);
    let lock = LockFile::acquire(&path, Duration::ZERO).map_err(|e| match e {
        Error::Locked { path, holder, .. } => Error::Locked {
            path,
            holder,
            hint: "another gc is running on this store; wait for it".into(),
        },
        other => other,
    })?;
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        let live = live_writers(&dir)?;
        let Some((first, holder)) = live.first() else {
            return Ok(UpkeepLease { _lock: lock });
        };
        if Instant::now() >= deadline {
            return Err(Error::Locked {
                path: first.clone(),
                holder: holder.clone(),
                hint: format!(
                    "{} writer(s) still hold leases on this store after {}s, and gc deletes nothing while a writer works; run gc again later (a lease left by a process on another host is removed with: rm {})",
                    live.len(),
                    wait.as_secs(),
                    first.display()
                ),
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_share_and_upkeep_excludes_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w1 = writer(root, Duration::ZERO).unwrap();
        let w2 = writer(root, Duration::ZERO).unwrap();
        // gc waits for both writers, then gives up naming one.
        let e = upkeep(root, Duration::from_millis(30)).unwrap_err();
        assert!(e.to_string().contains("2 writer(s)"), "{e}");
        drop((w1, w2));
        let gc = upkeep(root, Duration::ZERO).unwrap();
        // A writer cannot start while gc runs, and says why.
        let e = writer(root, Duration::from_millis(30)).unwrap_err();
        assert!(e.to_string().contains("gc is running"), "{e}");
        // Nor can a second gc.
        let e = upkeep(root, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("another gc"), "{e}");
        drop(gc);
        writer(root, Duration::ZERO).unwrap();
        // Only the upkeep lease's directory remains, empty.
        assert_eq!(fs::read_dir(root.join(LOCKS_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn a_writer_waits_for_gc_to_finish() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let gc = upkeep(&root, Duration::ZERO).unwrap();
        let r = root.clone();
        let t = thread::spawn(move || writer(&r, Duration::from_secs(10)).map(drop));
        thread::sleep(Duration::from_millis(50));
        drop(gc);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn gc_waits_for_a_writer_to_finish() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let w = writer(&root, Duration::ZERO).unwrap();
        let r = root.clone();
        let t = thread::spawn(move || upkeep(&r, Duration::from_secs(10)).map(drop));
        thread::sleep(Duration::from_millis(50));
        drop(w);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn leases_of_dead_processes_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let locks = root.join(LOCKS_DIR);
        fs::create_dir(&locks).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = format!("pid={dead}\nhost={}\ntime=1\n", lock::hostname());
        fs::write(locks.join(format!("{WRITER_PREFIX}x")), &stale).unwrap();
        fs::write(locks.join(UPKEEP), &stale).unwrap();
        // The dead gc does not block a writer, the dead writer does not block gc.
        drop(writer(root, Duration::ZERO).unwrap());
        drop(upkeep(root, Duration::ZERO).unwrap());
        assert_eq!(fs::read_dir(&locks).unwrap().count(), 0);
    }
}
