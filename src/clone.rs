//! `clone`: a new store from a remote, set up so that a kill at any instant leaves either
//! no DEST or a sound store that a rerun of the same clone (or `pull`) completes, and so
//! that one broken log of the source does not cost the others (format/store-v1.md, 8.3).
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

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::name::{RefName, LOGS};
use crate::progress::Progress;
use crate::remote::{self, Remotes, ORIGIN, REMOTES};
use crate::store::{packs_ref, FsStore};
use crate::sync::{pull, LogTransfer};

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

/// What a clone did.
#[derive(Debug)]
pub struct Report {
    /// The destination, as given.
    pub dest: PathBuf,
    /// Whether DEST already held an interrupted clone of the source, which this completed.
    pub resumed: bool,
    /// The logs copied (or found complete, when resuming).
    pub done: Vec<LogTransfer>,
    /// The logs that could not be copied, with why; none of them is in DEST.
    pub failed: Vec<(String, Error)>,
    /// Whether DEST is there: false when nothing could be copied and the store this clone
    /// created was removed again (no `--keep-partial`).
    pub kept: bool,
}

/// Log names shown in a summary before "and N more".
const NAMES_SHOWN: usize = 10;

impl Report {
    /// One line saying what could not be copied and what DEST holds now; `None` when every
    /// log was copied.
    pub fn summary(&self) -> Option<String> {
        let dest = self.dest.display();
        let what = match self.failed.as_slice() {
            [] => return None,
            [(log, e)] => format!("log {log} could not be copied: {e}"),
            many => {
                let mut names: Vec<&str> = many
                    .iter()
                    .take(NAMES_SHOWN)
                    .map(|(l, _)| l.as_str())
                    .collect();
                let more = format!("and {} more", many.len().saturating_sub(NAMES_SHOWN));
                if many.len() > NAMES_SHOWN {
                    names.push(&more);
                }
                format!(
                    "{} logs could not be copied ({})",
                    many.len(),
                    names.join(", ")
                )
            }
        };
        let after = if !self.kept {
            format!("; {dest} was removed again (--keep-partial keeps what was copied)")
        } else if self.done.is_empty() {
            format!("; {dest} keeps what was copied: rerun this clone (or `remotelog --store {dest} pull`) to resume")
        } else {
            format!("; {dest} is a sound store with the other logs: once the source is repaired, rerun this clone (or `remotelog --store {dest} pull`) to copy the rest")
        };
        Some(format!(
            "cloned {} of {} logs into {dest}; {what}{after}",
            self.done.len(),
            self.done.len() + self.failed.len()
        ))
    }
}

/// The names of the logs of `b`, from its refs alone: no page is read, so a log whose pages
/// are damaged is still listed and fails on its own when it is copied.
pub fn log_names(b: &dyn Backend) -> Result<Vec<String>> {
    Ok(b.list_refs(LOGS)?
        .iter()
        .filter_map(|r| r.log_name().map(str::to_string))
        .collect())
}

/// Creates (or completes) a store at `dest` with the logs of `src` (all of them, or only
/// `only_log`), registering `src_location` as remote `origin`; every object is verified on
/// the way. A log that cannot be copied is left out and reported in [`Report::failed`]
/// while the others are copied. When no log could be copied, the store this call created
/// is removed again unless `keep_partial`; a DEST that held an interrupted clone is kept.
/// Errors: DEST is neither new, nor empty, nor an interrupted clone of `src_location`; the
/// source's logs cannot be listed; the store cannot be set up.
pub fn clone_logs(
    src: &dyn Backend,
    src_location: &str,
    dest: &Path,
    only_log: Option<&str>,
    keep_partial: bool,
    progress: &dyn Progress,
) -> Result<Report> {
    let target = target(dest, src_location)?;
    // Listed before DEST is touched: a source that cannot be listed leaves nothing behind.
    let logs = match only_log {
        Some(l) => {
            RefName::log(l)?;
            vec![l.to_string()]
        }
        None => log_names(src)?,
    };
    match target {
        Target::New => set_up_beside(dest, src_location)?,
        Target::InPlace => {
            if let Err(e) = write_skeleton(dest, src_location) {
                if !keep_partial {
                    let _ = empty_in_place(dest);
                }
                return Err(e);
            }
        }
        Target::Resume => {}
    }
    let store = FsStore::open(dest)?;
    let mut report = Report {
        dest: dest.to_path_buf(),
        resumed: target == Target::Resume,
        done: Vec::new(),
        failed: Vec::new(),
        kept: true,
    };
    for log in logs {
        match pull(&store, ORIGIN, src, &log, progress) {
            Ok(t) => report.done.push(t),
            Err(e) => {
                progress.finish();
                report.failed.push((log, e));
            }
        }
    }
    drop(store);
    if report.done.is_empty() && !report.failed.is_empty() && !keep_partial {
        match target {
            Target::New => remove_beside(dest)?,
            Target::InPlace => empty_in_place(dest)?,
            Target::Resume => return Ok(report),
        }
        report.kept = false;
    }
    Ok(report)
}

/// What `dest` holds, and whether a clone of `src_location` may go there: a new path, an
/// empty directory (or the beginning of a clone of the same source), or a store holding
/// nothing but an interrupted clone of the same source. Anything else is refused.
pub fn target(dest: &Path, src_location: &str) -> Result<Target> {
    let meta = match fs::metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::New),
        Err(e) => return Err(e).at(dest),
        Ok(m) => m,
    };
    let expected = stored_location(src_location)?;
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
        check_resumable(dest, &expected)?;
        return Ok(Target::Resume);
    }
    if is_clone_beginning(dest, &expected)? {
        Ok(Target::InPlace)
    } else {
        Err(refuse())
    }
}

/// The form in which `remote add` records `location` in the `remotes` file.
fn stored_location(location: &str) -> Result<String> {
    if remote::is_url(location) {
        return remote::normalize_url(location);
    }
    Ok(remote::absolute(Path::new(location))?
        .to_string_lossy()
        .into_owned())
}

/// Refuses a store that is more than an interrupted clone of `expected`: another origin,
/// other remotes, refs a clone does not write, or a log changed since it was copied.
fn check_resumable(dest: &Path, expected: &str) -> Result<()> {
    let store = FsStore::open(dest)?;
    let remotes = Remotes::load(&store)?;
    let not_a_clone = |why: String| {
        Error::Invalid(format!(
            "{}: already a remotelog store, {why}; clone into a new directory",
            dest.display()
        ))
    };
    match (remotes.get(ORIGIN), remotes.all().len()) {
        (Some(r), 1) if r.location == expected => {}
        (Some(r), _) if r.location != expected => {
            return Err(not_a_clone(format!(
                "not a clone of {expected} (its origin is {})",
                r.location
            )))
        }
        (Some(_), _) => return Err(not_a_clone("with remotes other than origin".into())),
        (None, _) => {
            return Err(not_a_clone(format!(
                "not a clone of {expected} (it has no remote {ORIGIN})"
            )))
        }
    }
    let in_use = |why: String| {
        Error::Invalid(format!(
            "{}: a clone of {expected} that {why}, so not an interrupted clone; `remotelog --store {} pull` updates it",
            dest.display(),
            dest.display()
        ))
    };
    let tracking = format!("{REMOTES}/{ORIGIN}/");
    for r in store.list_refs("")? {
        if r == packs_ref() || r.as_str().starts_with(&tracking) {
            continue;
        }
        let Some(log) = r.log_name() else {
            return Err(in_use(format!("has a ref a clone does not write ({r})")));
        };
        // A log without a tracking ref is one whose pull was cut between its two ref
        // updates; one whose tracking ref differs has moved since it was copied.
        let seen = store.read_ref(&remote::tracking_ref(ORIGIN, log)?)?;
        if seen.is_some() && seen != store.read_ref(&r)? {
            return Err(in_use(format!("has changed log {log} since it was copied")));
        }
    }
    Ok(())
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
                let ours = |r: &remote::Remote| r.name == ORIGIN && r.location == expected;
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
        remote::add_in(dir, ORIGIN, Path::new(location))?;
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
    crate::lock::hostname()
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
            && !crate::lock::process_alive(pid)
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
