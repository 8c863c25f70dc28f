//! The one way remotelog puts bytes on disk: temporary file in the destination directory,
//! fsync, rename into place, fsync the directory (format/store-v1.md, section 7).
//!
//! A batch of files takes the same steps, with one `syncfs(2)` for the whole batch in place
//! of an fsync per file: per-file fsync costs ~0.3 ms here, which would dominate a bulk
//! append.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, IoContext, Result};

/// Prefix of every temporary file remotelog creates; readers skip such names.
pub const TMP_PREFIX: &str = ".tmp-";

/// Whether a file name is a temporary file of an interrupted write.
pub fn is_tmp_name(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
}

/// Atomically replaces (or creates) `path` with `bytes`, durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path)?;
    let tmp = stage(dir, bytes)?;
    tmp.sync()?;
    tmp.0.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    fsync_dir(dir)
}

/// Creates `path` with `bytes` durably unless a file is already there (then it is left
/// untouched). Returns whether the file was written.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let dir = parent(path)?;
    let tmp = stage(dir, bytes)?;
    tmp.sync()?;
    let written = tmp.persist_noclobber(path)?;
    fsync_dir(dir)?;
    Ok(written)
}

/// A file written to a temporary name, not yet synced nor in place.
pub struct Staged(TempPath);

impl Staged {
    /// Where the staged file is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// fsyncs the staged file's content.
    pub fn sync(&self) -> Result<()> {
        File::open(&self.0).and_then(|f| f.sync_all()).at(&self.0)
    }

    /// Renames the file to `dest` unless `dest` exists; returns whether it was moved.
    pub fn persist_noclobber(self, dest: &Path) -> Result<bool> {
        match self.0.persist_noclobber(dest) {
            Ok(()) => Ok(true),
            // Someone wrote the same content-addressed file first; ours is dropped.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::Io {
                path: dest.to_path_buf(),
                source: e.error,
            }),
        }
    }
}

/// Writes `bytes` to a new temporary file in `dir` (no fsync). The file is removed again
/// if the `Staged` is dropped without being persisted.
pub fn stage(dir: &Path, bytes: &[u8]) -> Result<Staged> {
    let mut tmp = temp_in(dir, "")?;
    tmp.write_all(bytes).at(tmp.path())?;
    Ok(Staged(tmp.into_temp_path()))
}

/// A new, empty temporary file in `dir`, named [`TMP_PREFIX`]...`suffix`, readable by all.
fn temp_in(dir: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .suffix(suffix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .at(dir)
}

/// A file staged while its bytes arrive (an upload the server receives): created empty
/// under a temporary name, written piece by piece, made durable by [`StagedFile::sync`].
/// It is removed when dropped, or when what [`StagedFile::into_parts`] gives is dropped,
/// unless it was renamed into place first.
pub struct StagedFile {
    file: File,
    path: TempPath,
}

impl StagedFile {
    /// An empty staged file in `dir`, which is created (durably) if missing; `suffix`
    /// ends its temporary name and says what it is (`.upload`).
    pub fn create(dir: &Path, suffix: &str) -> Result<StagedFile> {
        create_dir_durable(dir)?;
        let (file, path) = temp_in(dir, suffix)?.into_parts();
        Ok(StagedFile { file, path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).at(&self.path)
    }

    /// fsyncs what was written.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().at(&self.path)
    }

    /// The open file, positioned at its end, and its name (the file is removed when the
    /// name is dropped).
    pub fn into_parts(self) -> (File, TempPath) {
        (self.file, self.path)
    }
}

/// Flushes every dirty page of the file system holding `path`, metadata included.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = File::open(path).at(path)?;
    rustix::fs::syncfs(&f).map_err(io::Error::from).at(path)
}

/// fsyncs a directory, so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Creates `dir` and its missing parents, fsyncing each parent that gained an entry.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() || d.as_os_str().is_empty() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(e).at(d),
        }
        if let Some(p) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(p)?;
        }
    }
    Ok(())
}

/// Opens `root/rel` for reading when it is a regular file of at most `max` bytes, refusing
/// anything else before a byte of it is read. No component below `root` is followed if it
/// is a symbolic link (`root` itself may be one): each directory is opened relative to the
/// one before with `O_NOFOLLOW`, so a link swapped in meanwhile is refused too. A fifo is
/// opened without blocking and refused, like a device or a socket. `what` names the file
/// in the error ("an object file"). `Ok(None)`: nothing is there (a missing component, or
/// a directory or plain file where a directory or file should be: the caller's "absent").
pub fn open_below(root: &Path, rel: &Path, what: &str, max: u64) -> Result<Option<(File, u64)>> {
    use rustix::fs::{openat, AtFlags, FileType, Mode, OFlags, CWD};
    use rustix::io::Errno;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut here = root.to_path_buf();
    let mut dir = match openat(CWD, root, dir_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(io::Error::from(e)).at(root),
    };
    let mut names: Vec<&std::ffi::OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => names.push(n),
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: not a path below {}",
                    rel.display(),
                    root.display()
                )))
            }
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Ok(None);
    };
    // What a name that could not be opened is, without following it.
    let refuse_link =
        |dir: &rustix::fd::OwnedFd, name: &std::ffi::OsStr, at: &Path| match rustix::fs::statat(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Err(not_regular(at, "a symbolic link"))
            }
            _ => Ok(None),
        };
    for name in dirs {
        here.push(name);
        dir = match openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::NOTDIR | Errno::LOOP) => return refuse_link(&dir, name, &here),
            Err(e) => return Err(io::Error::from(e)).at(&here),
        };
    }
    here.push(last);
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match openat(&dir, *last, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(Errno::LOOP) => return refuse_link(&dir, last, &here),
        Err(Errno::NXIO) => return Err(not_regular(&here, "a socket")),
        Err(e) => return Err(io::Error::from(e)).at(&here),
    };
    let st = rustix::fs::fstat(&fd).map_err(io::Error::from).at(&here)?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => return Ok(None),
        FileType::Fifo => Some("a fifo"),
        FileType::CharacterDevice | FileType::BlockDevice => Some("a device"),
        FileType::Socket => Some("a socket"),
        _ => Some("not a regular file"),
    };
    if let Some(kind) = kind {
        return Err(not_regular(&here, kind));
    }
    let len = u64::try_from(st.st_size).unwrap_or(0);
    if len > max {
        return Err(Error::BadFile {
            path: here,
            reason: format!("{len} bytes, more than {what} may hold ({max} bytes)"),
        });
    }
    Ok(Some((File::from(fd), len)))
}

/// Reads `root/rel` whole, opened as [`open_below`] does: at most `max` bytes, also if
/// the file grows while it is read.
pub fn read_below(root: &Path, rel: &Path, what: &str, max: u64) -> Result<Option<Vec<u8>>> {
    let Some((f, len)) = open_below(root, rel, what, max)? else {
        return Ok(None);
    };
    let path = root.join(rel);
    read_capped(f, len, &path, what, max).map(Some)
}

/// Reads a small file of the store whose directory is trusted (a lock file): at most
/// `max` bytes, not through a symbolic link, never blocking on a fifo.
pub fn read_file_below(path: &Path, what: &str, max: u64) -> Result<Option<Vec<u8>>> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => return Ok(None),
    };
    read_below(dir, Path::new(name), what, max)
}

fn read_capped(f: File, len: u64, path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(len.min(max) as usize);
    f.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .at(path)?;
    if out.len() as u64 > max {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("more than {what} may hold ({max} bytes)"),
        });
    }
    Ok(out)
}

/// The error for an entry of a store that is `kind` ("a symbolic link") where a regular
/// file belongs.
pub fn not_regular(path: &Path, kind: &str) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("{kind}, not a regular file (remotelog reads no other kind in a store)"),
    }
}

fn parent(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(write_new(&p, b"one").unwrap());
        assert!(!write_new(&p, b"two").unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_dir_durable_makes_nested_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c");
        create_dir_durable(&p).unwrap();
        assert!(p.is_dir());
        create_dir_durable(&p).unwrap();
    }

    #[test]
    fn a_staged_file_fills_piece_by_piece_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("packs");
        let mut f = StagedFile::create(&uploads, ".upload").unwrap();
        let name = f.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(is_tmp_name(&name) && name.ends_with(".upload"), "{name}");
        f.write_all(b"one ").unwrap();
        f.write_all(b"two").unwrap();
        f.sync().unwrap();
        let (file, path) = f.into_parts();
        assert_eq!(fs::read(&path).unwrap(), b"one two");
        assert_eq!(file.metadata().unwrap().len(), 7);
        drop(path);
        assert_eq!(fs::read_dir(&uploads).unwrap().count(), 0);
        // Dropped before it is complete (a failed upload), it leaves nothing either.
        let mut f = StagedFile::create(&uploads, ".upload").unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read_dir(&uploads).unwrap().count(), 0);
    }
}
