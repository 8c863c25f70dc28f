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
//! ([`crate::store::lock`]): one whose holder provably died is cleared, any other is reported,
//! never broken.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::store::lock::{self, LockFile};

/// The folder of a store holding its leases.
pub const LOCKS_DIR: &str = "locks";

/// The exclusive lease of upkeep (gc), in [`LOCKS_DIR`].
pub const UPKEEP: &str = "upkeep";

/// Prefix of the shared leases of writers, in [`LOCKS_DIR`].
pub const WRITER_PREFIX: &str = "writer-";

/// A writer's shared lease; the file is removed when the last lease this process holds on
/// the store is dropped.
#[derive(Debug)]
pub struct WriterLease {
    key: PathBuf,
}

/// The writer leases this process holds, by store: (holders, lease file). A second writer
/// of the same process shares the file instead of waiting: a writer that holds a lease
/// and starts another (import-spec appending, a server answering requests side by side)
/// would otherwise wait for a gc that waits for it.
fn held() -> &'static Mutex<HashMap<PathBuf, (usize, PathBuf)>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, (usize, PathBuf)>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

fn held_guard() -> std::sync::MutexGuard<'static, HashMap<PathBuf, (usize, PathBuf)>> {
    // The map is updated in single steps; a panic elsewhere cannot leave it half-done.
    held().lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        let mut held = held_guard();
        let Some((n, path)) = held.get_mut(&self.key) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            // A lease that cannot be removed is cleared by gc once its holder has exited.
            let _ = fs::remove_file(&*path);
            held.remove(&self.key);
        }
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
    let key = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if let Some((n, _)) = held_guard().get_mut(&key) {
        *n += 1;
        return Ok(WriterLease { key });
    }
    // Taken without the map's lock (it may wait for a gc); a thread that took one for
    // the same store meanwhile wins, and ours goes.
    let path = take_file(root, wait)?;
    let mut held = held_guard();
    match held.get_mut(&key) {
        Some((n, _)) => {
            *n += 1;
            let _ = fs::remove_file(&path);
        }
        None => {
            held.insert(key.clone(), (1, path));
        }
    }
    Ok(WriterLease { key })
}

/// Creates a writer lease file once no gc runs (see [`writer`]).
fn take_file(root: &Path, wait: Duration) -> Result<PathBuf> {
    let dir = locks_dir(root)?;
    let upkeep = dir.join(UPKEEP);
    let start = Instant::now();
    let deadline = lock::deadline(wait);
    let mut told = false;
    loop {
        let path = lock::create_unique(&dir, WRITER_PREFIX)?;
        let Some(holder) = live_upkeep(&upkeep)? else {
            return Ok(path);
        };
        let _ = fs::remove_file(&path);
        if Instant::now() >= deadline {
            return Err(Error::Locked {
                path: upkeep,
                holder,
                hint: "gc is running on this store and writers wait for it; run the command again when it is done".into(),
            });
        }
        if !told && start.elapsed() >= Duration::from_secs(1) {
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

/// Prefix of the leases a server holds for its clients across requests (`http-api.md`
/// section 10), in [`LOCKS_DIR`]; they carry an expiry and are renewed by the client.
pub const CLIENT_PREFIX: &str = "writer-client-";

/// The expiry line of a client lease: unix seconds after which the lease is void.
const EXPIRES: &str = "expires=";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a lease's text names an expiry that has passed.
fn expired(text: &str) -> bool {
    text.lines()
        .find_map(|l| l.strip_prefix(EXPIRES))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|t| unix_now() > t)
}

fn client_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{CLIENT_PREFIX}{id}"))
}

fn client_text(ttl: Duration) -> String {
    format!(
        "{}{EXPIRES}{}\n",
        lock::Holder::me().render(),
        unix_now() + ttl.as_secs()
    )
}

/// Takes a writer lease named `id` on behalf of a client of this process, valid for `ttl`
/// unless renewed ([`renew_client`]) and until released ([`release_client`]); waits up to
/// `wait` for a running gc like [`writer`].
pub fn client_writer(root: &Path, id: &str, ttl: Duration, wait: Duration) -> Result<()> {
    let dir = locks_dir(root)?;
    let upkeep = dir.join(UPKEEP);
    let path = client_path(&dir, id);
    let deadline = lock::deadline(wait);
    loop {
        fsutil::write_atomic(&path, client_text(ttl).as_bytes())?;
        let Some(holder) = live_upkeep(&upkeep)? else {
            return Ok(());
        };
        release_client(root, id)?;
        if Instant::now() >= deadline {
            return Err(Error::Locked {
                path: upkeep,
                holder,
                hint:
                    "gc is running on this store and writers wait for it; try again when it is done"
                        .into(),
            });
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Extends client lease `id` by `ttl` from now; false when it is gone (released, or
/// expired and cleared by gc: the objects its client relied on may be gone too).
pub fn renew_client(root: &Path, id: &str, ttl: Duration) -> Result<bool> {
    let path = client_path(&root.join(LOCKS_DIR), id);
    match lock::read_lock(&path)? {
        Some(text) if !expired(&text) => {
            fsutil::write_atomic(&path, client_text(ttl).as_bytes())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Whether client lease `id` is held and not expired.
pub fn client_live(root: &Path, id: &str) -> Result<bool> {
    let path = client_path(&root.join(LOCKS_DIR), id);
    Ok(lock::read_lock(&path)?.is_some_and(|t| !expired(&t)))
}

/// Ends client lease `id` (gone already is fine).
pub fn release_client(root: &Path, id: &str) -> Result<()> {
    let path = client_path(&root.join(LOCKS_DIR), id);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(&path),
    }
}

/// How many client leases the store holds now.
pub fn client_count(root: &Path) -> Result<usize> {
    let dir = root.join(LOCKS_DIR);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).at(&dir),
    };
    let mut n = 0;
    for entry in rd {
        let entry = entry.at(&dir)?;
        n += usize::from(
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(CLIENT_PREFIX),
        );
    }
    Ok(n)
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
        if lock::is_stale(&path, &text) || expired(&text) {
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
    let deadline = lock::deadline(wait);
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
        // gc waits for the writers (of one process: one lease file), then gives up.
        let e = upkeep(root, Duration::from_millis(30)).unwrap_err();
        assert!(e.to_string().contains("1 writer(s)"), "{e}");
        drop(w1);
        let e = upkeep(root, Duration::from_millis(30)).unwrap_err();
        assert!(e.to_string().contains("1 writer(s)"), "{e}");
        drop(w2);
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
    fn client_leases_hold_gc_until_released_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        client_writer(root, "a", Duration::from_secs(60), Duration::ZERO).unwrap();
        assert_eq!(client_count(root).unwrap(), 1);
        let e = upkeep(root, Duration::from_millis(30)).unwrap_err();
        assert!(e.to_string().contains("1 writer(s)"), "{e}");
        assert!(renew_client(root, "a", Duration::from_secs(60)).unwrap());
        release_client(root, "a").unwrap();
        assert!(!renew_client(root, "a", Duration::from_secs(60)).unwrap());
        drop(upkeep(root, Duration::ZERO).unwrap());
        // A lease its client stopped renewing is void once it expires.
        client_writer(root, "b", Duration::ZERO, Duration::ZERO).unwrap();
        thread::sleep(Duration::from_millis(1100));
        assert!(!renew_client(root, "b", Duration::from_secs(60)).unwrap());
        drop(upkeep(root, Duration::ZERO).unwrap());
        assert_eq!(client_count(root).unwrap(), 0);
        // And a client cannot take one while gc runs.
        let gc = upkeep(root, Duration::ZERO).unwrap();
        let e = client_writer(
            root,
            "c",
            Duration::from_secs(60),
            Duration::from_millis(20),
        )
        .unwrap_err();
        assert!(e.to_string().contains("gc is running"), "{e}");
        assert_eq!(client_count(root).unwrap(), 0);
        drop(gc);
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
