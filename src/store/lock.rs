//! Exclusive lock files (`O_CREAT|O_EXCL`) guarding ref updates (format/store-v1.md,
//! sections 5 and 6). A lock records its holder so that a lock left by a crashed process
//! on this host can be cleared safely; any other lock is reported, never broken.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TMP_PREFIX};

/// How long to wait for a lock held by a live process before giving up. A ref lock is held
/// for one atomic write, but on a loaded disk an fsync can take seconds.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The instant `wait` from now. A wait may come from the command line (`gc --wait`) and
/// reach past what an `Instant` holds, where `now + wait` panics: it then ends in a
/// century, which is never.
pub fn deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Most bytes of a lock file read: a holder is three short lines.
const LOCK_MAX: u64 = 4096;

/// A lock file's content (`None` when there is none), read without following a link and
/// at most [`LOCK_MAX`] bytes of it: a lock in a hostile store cannot make us read forever.
pub fn read_lock(path: &Path) -> Result<Option<String>> {
    Ok(fsutil::read_file_below(path, "a lock file", LOCK_MAX)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// A held lock; the file is removed when this is dropped.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
}

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it was taken (unix seconds).
    pub time: u64,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The lock file's content naming this holder.
    pub fn render(&self) -> String {
        format!("pid={}\nhost={}\ntime={}\n", self.pid, self.host, self.time)
    }

    /// Parses a lock file's content; `None` for empty or foreign content.
    pub fn parse(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut host = None;
        let mut time = None;
        for line in text.lines() {
            match line.split_once('=')? {
                ("pid", v) => pid = v.parse().ok(),
                ("host", v) => host = Some(v.to_string()),
                ("time", v) => time = v.parse().ok(),
                _ => {}
            }
        }
        Some(Holder {
            pid: pid?,
            host: host?,
            time: time?,
        })
    }

    /// True when the holder is a process of this host that no longer runs.
    pub fn is_provably_gone(&self) -> bool {
        self.host == hostname() && !process_alive(self.pid)
    }
}

/// What a lock file says about its holder, in words.
pub fn describe(text: &str) -> String {
    match Holder::parse(text) {
        Some(h) if h.is_provably_gone() => format!(
            "left by process {} on this host, which is no longer running",
            h.pid
        ),
        Some(h) if h.host == hostname() => {
            format!("held by running process {} on this host", h.pid)
        }
        Some(h) => format!(
            "held by process {} on host {} since unix time {}",
            h.pid, h.host, h.time
        ),
        None if text.is_empty() => "empty lock file; holder unknown".into(),
        None => "unreadable lock file; holder unknown".into(),
    }
}

impl LockFile {
    /// Takes the lock at `path`, waiting up to `wait` for a live holder to finish and
    /// clearing a lock whose holder is provably gone.
    pub fn acquire(path: &Path, wait: Duration) -> Result<LockFile> {
        let deadline = deadline(wait);
        let mut pause = Duration::from_millis(1);
        let dir = path.parent().unwrap_or(Path::new("."));
        loop {
            // The lock appears with its content in one step (a hard link of a finished
            // file fails if the lock exists, like O_EXCL), so a crash can never leave an
            // empty lock that nobody can attribute.
            let tmp = fsutil::stage(dir, Holder::me().render().as_bytes())?;
            match fs::hard_link(tmp.path(), path) {
                Ok(()) => {
                    return Ok(LockFile {
                        path: path.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(path),
            }
            drop(tmp);
            let Some(text) = read_lock(path)? else {
                continue;
            };
            if is_stale(path, &text) {
                if clear_stale(path, &text)? {
                    eprintln!(
                        "remotelog: removed stale lock {} ({})",
                        path.display(),
                        describe(&text)
                    );
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: describe(&text),
                    hint: format!(
                        "wait for it to finish; if you are sure no remotelog process is using this store, remove the lock: rm {}",
                        path.display()
                    ),
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Failing to remove is reported by the next writer as a stale lock.
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the lock or lease at `path`, holding `text`, was left by a process that can no
/// longer hold it: one of this host that is not running, or one from before the last boot.
pub fn is_stale(path: &Path, text: &str) -> bool {
    Holder::parse(text).is_some_and(|h| h.is_provably_gone()) || from_before_boot(path)
}

/// Creates a new file in `dir` named `<prefix><pid>-<n>` that records this process as its
/// holder, complete from the moment it appears (like a lock, but never contended), and
/// returns its path.
pub fn create_unique(dir: &Path, prefix: &str) -> Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{prefix}{}-{n}", std::process::id()));
        // Staged under a temporary name, so a crash can never leave it empty; leases are
        // about running processes, so no fsync: after a crash every holder is gone anyway.
        let tmp = fsutil::stage(dir, Holder::me().render().as_bytes())?;
        if tmp.persist_noclobber(&path)? {
            return Ok(path);
        }
    }
}

/// Removes a stale lock without racing another process that clears the same lock and
/// takes a fresh one: the lock is first moved aside, then its content compared with what
/// was judged stale. Returns whether the stale lock was removed by us.
pub fn clear_stale(path: &Path, judged: &str) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let aside = dir.join(format!(
        "{TMP_PREFIX}stale-lock-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    }
    let moved = read_lock(&aside).ok().flatten().unwrap_or_default();
    if moved != judged {
        // We moved someone's fresh lock: put it back if nobody took the name meanwhile.
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        return Ok(false);
    }
    fs::remove_file(&aside).at(&aside)?;
    Ok(true)
}

/// True when the file was last modified before this machine booted: no process that
/// could hold it is still running (a lock left by a power loss may even be empty).
fn from_before_boot(path: &Path) -> bool {
    let Some(boot) = boot_time() else {
        return false;
    };
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|t| t.as_secs() < boot)
}

/// When this machine booted (unix seconds), from /proc/stat.
fn boot_time() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Whether a process with this pid exists on this host.
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // EPERM: it exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn second_taker_waits_then_fails_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = LockFile::acquire(&p, DEFAULT_WAIT).unwrap();
        let e = LockFile::acquire(&p, Duration::from_millis(30)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("running process") && msg.contains("rm "),
            "{msg}"
        );
        drop(held);
        assert!(!p.exists());
        LockFile::acquire(&p, DEFAULT_WAIT).unwrap();
    }

    #[test]
    fn lock_of_dead_process_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let h = Holder {
            pid: dead_pid(),
            host: hostname(),
            time: 1,
        };
        fs::write(&p, h.render()).unwrap();
        let lock = LockFile::acquire(&p, Duration::from_millis(30)).unwrap();
        assert_eq!(
            Holder::parse(&fs::read_to_string(&p).unwrap()).unwrap().pid,
            std::process::id()
        );
        drop(lock);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn empty_lock_from_before_boot_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let f = fs::File::create(&p).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        drop(f);
        let lock = LockFile::acquire(&p, Duration::from_millis(20)).unwrap();
        drop(lock);
        assert!(!p.exists());
    }

    #[test]
    fn lock_of_other_host_is_never_broken() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let h = Holder {
            pid: dead_pid(),
            host: "elsewhere".into(),
            time: 1,
        };
        fs::write(&p, h.render()).unwrap();
        let e = LockFile::acquire(&p, Duration::from_millis(20)).unwrap_err();
        assert!(e.to_string().contains("host elsewhere"), "{e}");
        assert!(p.exists());
        fs::write(&p, "").unwrap();
        let e = LockFile::acquire(&p, Duration::from_millis(20)).unwrap_err();
        assert!(e.to_string().contains("holder unknown"), "{e}");
    }
}
