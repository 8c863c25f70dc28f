//! The directory side of `clone` (format/store-v1.md 8.3): DEST is set up so that a kill
//! at any instant leaves either no DEST or a sound store that a rerun of the same clone
//! (or `pull`) completes. The operation itself — listing the logs, pulling each, the
//! report, when a rerun resumes — is [`crate::transfer::clone`], written against the storage
//! contract.
//!
//! The skeleton (`remotes` naming `origin`, the folders, `config` last) is built in a
//! sibling directory and renamed onto DEST in one step; only then are the logs pulled, each
//! all-or-nothing. An existing empty DEST is filled in place instead, since renaming over
//! it would swap the directory under anyone inside it (a shell after `cd DEST`) and fails
//! outright on a mount point.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::store::config::Config;
use crate::store::remotes::{self, Remotes, ORIGIN};
use crate::store::FsStore;

/// Prefix of the sibling directory in which a clone to a new DEST is set up; the rest of
/// the name is `HOST-PID-NANOS` of the process that made it, which tells when it is stale.
pub const TMP_PREFIX: &str = ".tmp-clone-";

/// What a clone's destination holds before the clone starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing: the store is set up beside it and renamed into place.
    New,
    /// An empty directory, or one holding only the beginning of a clone of the same source
    /// (no `config` yet): the store is set up inside it, `config` last.
    InPlace,
    /// A store holding an interrupted clone of the same source: what is missing is pulled.
    Resume,
}

/// What `dest` holds, and whether a clone of the source at `expected` (in the form the
/// `remotes` file stores it) may go there: a new path, an empty directory (or the
/// beginning of a clone of the same source), or a store whose only remote is `origin` =
/// the same source (whether its refs are those of an interrupted clone is for
/// [`crate::transfer::clone::target`] to judge). Anything else is refused.
pub fn target(dest: &Path, expected: &str) -> Result<Target> {
    let meta = match fs::metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::New),
        Err(e) => return Err(e).at(dest),
        Ok(m) => m,
    };
    let refuse = || {
        Error::Invalid(format!(
            "{}: already exists and is neither an empty directory nor an interrupted clone of {expected}; clone into a new directory",
            dest.display()
        ))
    };
    if !meta.is_dir() {
        return Err(refuse());
    }
    if dest.join("config").exists() {
        check_origin(dest, expected)?;
        return Ok(Target::Resume);
    }
    if is_clone_beginning(dest, expected)? {
        Ok(Target::InPlace)
    } else {
        Err(refuse())
    }
}

/// Refuses a store that is not a clone of `expected`: another origin, or other remotes.
fn check_origin(dest: &Path, expected: &str) -> Result<()> {
    let store = FsStore::open(dest)?;
    let remotes = Remotes::load(&store)?;
    let not_a_clone = |why: String| {
        Error::Invalid(format!(
            "{}: already a remotelog store, {why}; clone into a new directory",
            dest.display()
        ))
    };
    match (remotes.get(ORIGIN), remotes.all().len()) {
        (Some(r), 1) if r.location == expected => Ok(()),
        (Some(r), _) if r.location != expected => Err(not_a_clone(format!(
            "not a clone of {expected} (its origin is {})",
            r.location
        ))),
        (Some(_), _) => Err(not_a_clone("with remotes other than origin".into())),
        (None, _) => Err(not_a_clone(format!(
            "not a clone of {expected} (it has no remote {ORIGIN})"
        ))),
    }
}

/// A DEST set up for a clone: the store, and how it was made.
pub struct Prepared {
    /// The store at DEST, which records the source as its `origin`.
    pub store: FsStore,
    dest: PathBuf,
    target: Target,
}

impl Prepared {
    /// Removes again the store this clone created (when no log could be copied): a new
    /// DEST goes whole, an emptied-in-place DEST is emptied again. A DEST that held an
    /// interrupted clone is kept. Returns whether DEST was removed or emptied.
    pub fn discard(self) -> Result<bool> {
        let Prepared {
            store,
            dest,
            target,
        } = self;
        drop(store);
        match target {
            Target::New => remove_beside(&dest)?,
            Target::InPlace => empty_in_place(&dest)?,
            Target::Resume => return Ok(false),
        }
        Ok(true)
    }
}

/// Sets DEST up as [`target`] found it may be: the skeleton beside it and renamed onto it
/// (new), the skeleton inside it (empty; removed again on failure unless `keep_partial`),
/// or nothing (an interrupted clone to resume); then opens the store there. `location` is
/// the source in the form the `remotes` file stores it.
pub fn prepare(
    dest: &Path,
    location: &str,
    target: Target,
    keep_partial: bool,
) -> Result<Prepared> {
    match target {
        Target::New => set_up_beside(dest, location)?,
        Target::InPlace => {
            if let Err(e) = write_skeleton(dest, location) {
                if !keep_partial {
                    let _ = empty_in_place(dest);
                }
                return Err(e);
            }
        }
        Target::Resume => {}
    }
    Ok(Prepared {
        store: FsStore::open(dest)?,
        dest: dest.to_path_buf(),
        target,
    })
}

/// True for an empty directory, or one holding only what [`write_skeleton`] writes before
/// `config` (a `remotes` file naming `origin` = `expected`, empty store folders) and
/// temporary files.
fn is_clone_beginning(dir: &Path, expected: &str) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if fsutil::is_tmp_name(&name) {
            continue;
        }
        match name.as_str() {
            "remotes" => {
                let remotes = match Remotes::load_in(dir) {
                    Ok(r) => r,
                    Err(_) => return Ok(false),
                };
                let ours = |r: &remotes::Remote| r.name == ORIGIN && r.location == expected;
                if !remotes.all().iter().all(ours) {
                    return Ok(false);
                }
            }
            "objects" | "refs" | "packs" if path.is_dir() => {
                for inner in walkdir::WalkDir::new(&path).min_depth(1) {
                    let inner = inner.map_err(|e| {
                        let at = e.path().unwrap_or(&path).to_path_buf();
                        Error::Io {
                            path: at,
                            source: e
                                .into_io_error()
                                .unwrap_or_else(|| io::Error::other("file system loop")),
                        }
                    })?;
                    let n = inner.file_name().to_string_lossy();
                    if !inner.file_type().is_dir() && !fsutil::is_tmp_name(&n) {
                        return Ok(false);
                    }
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Writes what makes `dir` a clone of `location` before any log arrives: the `remotes`
/// file naming it `origin`, then the store folders and `config`, whose presence makes
/// `dir` a store. So `dir` never is a store without its origin (`pull` could not resume).
fn write_skeleton(dir: &Path, location: &str) -> Result<()> {
    // Already there when an earlier run was cut during the setup; `target` checked that it
    // names this source.
    if Remotes::load_in(dir)?.get(ORIGIN).is_none() {
        remotes::add_in(dir, ORIGIN, location)?;
    }
    FsStore::init(dir, Config::default())?;
    Ok(())
}

/// Sets up the skeleton in a new sibling of `dest` and renames it onto `dest` (which does
/// not exist): a kill before the rename leaves only the sibling, which a later clone into
/// the same directory removes.
fn set_up_beside(dest: &Path, location: &str) -> Result<()> {
    let parent = parent_dir(dest);
    fsutil::create_dir_durable(parent)?;
    clear_stale(parent);
    let tmp = TmpDir::create(parent)?;
    write_skeleton(&tmp.0, location)?;
    if let Err(e) = fs::rename(&tmp.0, dest) {
        // Someone made DEST meanwhile.
        if dest.exists() {
            return Err(Error::Invalid(format!(
                "{}: appeared while the clone was being set up; nothing was changed there, clone into a new directory",
                dest.display()
            )));
        }
        return Err(e).at(dest);
    }
    tmp.disarm();
    fsutil::fsync_dir(parent)
}

/// Removes the store this clone created at `dest`: renamed aside first, so that a kill
/// during the removal leaves a stale sibling rather than half a store.
fn remove_beside(dest: &Path) -> Result<()> {
    let parent = parent_dir(dest);
    let aside = TmpDir::name_in(parent);
    fs::rename(dest, &aside).at(dest)?;
    fsutil::fsync_dir(parent)?;
    fs::remove_dir_all(&aside).at(&aside)
}

/// Empties a DEST that was an empty directory before this clone: names first, then what
/// they named, then `config`, then the rest. A kill on the way leaves a sound store that
/// is an interrupted clone, or the beginning of one, which a rerun completes.
fn empty_in_place(dest: &Path) -> Result<()> {
    for sub in ["refs/logs", "refs/remotes", "refs"] {
        remove_if_there(&dest.join(sub))?;
    }
    for sub in ["packs", "objects"] {
        let dir = dest.join(sub);
        if let Ok(rd) = fs::read_dir(&dir) {
            for entry in rd {
                remove_if_there(&entry.at(&dir)?.path())?;
            }
        }
    }
    remove_if_there(&dest.join("config"))?;
    fsutil::fsync_dir(dest)?;
    for entry in fs::read_dir(dest).at(dest)? {
        remove_if_there(&entry.at(dest)?.path())?;
    }
    fsutil::fsync_dir(dest)
}

fn remove_if_there(p: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.at(p),
    }
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// This host's name as it appears in sibling names: only `[A-Za-z0-9_.]`.
fn host_tag() -> String {
    crate::store::lock::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the clone siblings in `parent` whose maker is provably gone: a process of this
/// host that no longer runs. A sibling of another host, or of a live process (or of a
/// dead one whose pid was reused), is left. Best effort: a sibling that cannot be removed
/// is harmless.
fn clear_stale(parent: &Path) {
    let Ok(rd) = fs::read_dir(parent) else {
        return;
    };
    let host = host_tag();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TMP_PREFIX) else {
            continue;
        };
        let mut parts = rest.rsplitn(3, '-');
        let (_nanos, pid, maker) = (parts.next(), parts.next(), parts.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if maker == Some(host.as_str())
            && !crate::store::lock::process_alive(pid)
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A clone sibling being set up; removed when dropped unless disarmed.
struct TmpDir(PathBuf, bool);

impl TmpDir {
    /// A fresh name for a sibling in `parent`, naming this process.
    fn name_in(parent: &Path) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        parent.join(format!(
            "{TMP_PREFIX}{}-{}-{nanos}",
            host_tag(),
            std::process::id()
        ))
    }

    fn create(parent: &Path) -> Result<TmpDir> {
        loop {
            let p = Self::name_in(parent);
            match fs::create_dir(&p) {
                Ok(()) => return Ok(TmpDir(p, true)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).at(&p),
            }
        }
    }

    fn disarm(mut self) {
        self.1 = false;
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if self.1 {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
