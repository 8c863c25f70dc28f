//! The file-system store: `config`, loose objects under `objects/`, refs under `refs/`
//! (format/store-v1.md, sections 1–7).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::backend::{verify_id, Backend, Layout};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, is_tmp_name};
use crate::id::{is_lower_hex, Id};
use crate::lock::{self, LockFile};
use crate::name::RefName;

/// Largest object (uncompressed) a reader accepts, so a corrupt or hostile frame cannot
/// make it allocate without bound.
pub const MAX_OBJECT_SIZE: u64 = 256 << 20;

/// Batches up to this size are fsynced file by file; larger ones with one `syncfs`.
const SMALL_BATCH: usize = 8;

/// A store directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    config: Config,
}

impl FsStore {
    /// Creates a store in `root` (which may exist if it is not a store yet).
    pub fn init(root: &Path, config: Config) -> Result<FsStore> {
        let cfg_path = root.join("config");
        if cfg_path.exists() {
            return Err(Error::AlreadyAStore(root.to_path_buf()));
        }
        if root.is_file() {
            return Err(Error::NotAStore {
                path: root.to_path_buf(),
                reason: "is a file, not a directory".into(),
            });
        }
        fsutil::create_dir_durable(&root.join("objects"))?;
        fsutil::create_dir_durable(&root.join("refs").join(crate::name::LOGS))?;
        // The config goes last: its presence is what makes the directory a store.
        fsutil::write_atomic(&cfg_path, config.render().as_bytes())?;
        Ok(FsStore {
            root: root.to_path_buf(),
            config,
        })
    }

    /// Opens the store in `root`.
    pub fn open(root: &Path) -> Result<FsStore> {
        let cfg_path = root.join("config");
        let text = match fs::read_to_string(&cfg_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let reason = if root.is_dir() {
                    "not a remotelog store (no config file); create one with `remotelog init`"
                } else {
                    "no such store directory; create one with `remotelog init`, or pass --store"
                };
                return Err(Error::NotAStore {
                    path: root.to_path_buf(),
                    reason: reason.into(),
                });
            }
            Err(e) => return Err(e).at(&cfg_path),
        };
        let config = Config::parse(&text, &cfg_path)?;
        Ok(FsStore {
            root: root.to_path_buf(),
            config,
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where object `id` lives.
    pub fn object_path(&self, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    fn ref_path(&self, name: &RefName) -> PathBuf {
        self.root.join("refs").join(name.as_str())
    }

    fn compress(&self, bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
        zstd::bulk::compress(bytes, self.config.zstd_level).at(path)
    }

    /// Makes sure no ancestor of a ref is itself a ref and the ref is not a folder, so
    /// that `a` and `a/b` cannot both be logs.
    fn check_ref_shape(&self, name: &RefName) -> Result<()> {
        let refs = self.root.join("refs");
        let mut cur = refs.clone();
        let segs: Vec<&str> = name.as_str().split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            cur.push(seg);
            let last = i + 1 == segs.len();
            if !last && cur.is_file() {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: format!("{} is already a ref", segs[..=i].join("/")),
                });
            }
            if last && cur.is_dir() {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "it is the folder of other refs".into(),
                });
            }
        }
        Ok(())
    }

    /// Leftover temporary files and lock files below the store, for `check` and `gc`.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&self.root).min_depth(1) {
            let entry = entry.map_err(|e| walk_error(e, &self.root))?;
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_file() && (is_tmp_name(&name) || name.ends_with(".lock")) {
                out.push(entry.path().to_path_buf());
            }
        }
        Ok(out)
    }
}

fn walk_error(e: walkdir::Error, root: &Path) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    Error::Io {
        path,
        source: e
            .into_io_error()
            .unwrap_or_else(|| io::Error::other("file system loop")),
    }
}

/// Decompresses one zstd frame, refusing output beyond [`MAX_OBJECT_SIZE`].
pub fn decompress(compressed: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let decoder = zstd::stream::read::Decoder::with_buffer(compressed)
        .map_err(|e| format!("not a zstd frame: {e}"))?;
    let mut out = Vec::new();
    decoder
        .take(MAX_OBJECT_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a valid zstd frame (truncated or damaged): {e}"))?;
    if out.len() as u64 > MAX_OBJECT_SIZE {
        return Err(format!("larger than {MAX_OBJECT_SIZE} bytes"));
    }
    Ok(out)
}

/// Parses a ref file's content: 64 hex digits and one newline.
pub fn parse_ref(text: &[u8]) -> std::result::Result<Id, String> {
    let s = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
    let hex = s.strip_suffix('\n').unwrap_or(s);
    hex.parse::<Id>().map_err(|e| e.to_string())
}

impl Backend for FsStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn object_location(&self, id: &Id) -> String {
        self.object_path(id).display().to_string()
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        let path = self.object_path(id);
        let compressed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::ObjectMissing {
                    id: *id,
                    location: path.display().to_string(),
                })
            }
            Err(e) => return Err(e).at(&path),
        };
        let bytes = decompress(&compressed).map_err(|reason| Error::ObjectCorrupt {
            id: *id,
            location: path.display().to_string(),
            reason,
        })?;
        verify_id(id, &bytes, || path.display().to_string())?;
        Ok(bytes)
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        let path = self.object_path(id);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        let mut todo = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, bytes) in objects {
            if seen.insert(*id) && !self.has_object(id)? {
                todo.push((*id, *bytes));
            }
        }
        if todo.is_empty() {
            return Ok(0);
        }
        let small = todo.len() <= SMALL_BATCH;
        let mut dirs: Vec<PathBuf> = todo
            .iter()
            .map(|(id, _)| self.object_path(id).parent().map(Path::to_path_buf))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            fsutil::create_dir_durable(d)?;
        }
        // Compress and stage on every core; compression is most of the work.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let chunk = todo.len().div_ceil(threads);
        let staged: Vec<(fsutil::Staged, PathBuf)> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || -> Result<Vec<(fsutil::Staged, PathBuf)>> {
                        let mut out = Vec::with_capacity(part.len());
                        for (id, bytes) in part {
                            let path = self.object_path(id);
                            let frame = self.compress(bytes, &path)?;
                            let dir = path.parent().unwrap_or(&self.root);
                            out.push((fsutil::stage(dir, &frame)?, path));
                        }
                        Ok(out)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(todo.len());
            for h in handles {
                match h.join() {
                    Ok(part) => all.extend(part?),
                    Err(_) => return Err(Error::Invalid("a compression thread panicked".into())),
                }
            }
            Ok(all)
        })?;
        let mut written = 0;
        if small {
            for (tmp, path) in staged {
                tmp.sync()?;
                written += usize::from(tmp.persist_noclobber(&path)?);
            }
            for d in &dirs {
                fsutil::fsync_dir(d)?;
            }
        } else {
            // Contents durable before any name appears, names durable before returning.
            fsutil::sync_filesystem(&self.root)?;
            for (tmp, path) in staged {
                written += usize::from(tmp.persist_noclobber(&path)?);
            }
            fsutil::sync_filesystem(&self.root)?;
        }
        Ok(written)
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        let objects = self.root.join("objects");
        for shard in fs::read_dir(&objects).at(&objects)? {
            let shard = shard.at(&objects)?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            if sname.len() != 2 || !is_lower_hex(&sname) || !shard.path().is_dir() {
                continue;
            }
            let spath = shard.path();
            for obj in fs::read_dir(&spath).at(&spath)? {
                let obj = obj.at(&spath)?;
                let oname = obj.file_name().to_string_lossy().into_owned();
                if let Ok(id) = format!("{sname}{oname}").parse::<Id>() {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        if prefix.len() < 2 || !is_lower_hex(prefix) {
            return Ok(Vec::new());
        }
        let spath = self.root.join("objects").join(&prefix[..2]);
        let mut ids = Vec::new();
        let rd = match fs::read_dir(&spath) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).at(&spath),
        };
        for obj in rd {
            let obj = obj.at(&spath)?;
            let full = format!("{}{}", &prefix[..2], obj.file_name().to_string_lossy());
            if full.starts_with(prefix) {
                if let Ok(id) = full.parse::<Id>() {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        let path = self.ref_path(name);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Ok(None),
            Err(e) => return Err(e).at(&path),
        };
        parse_ref(&text)
            .map(Some)
            .map_err(|reason| Error::BadRef { path, reason })
    }

    fn update_ref(&self, name: &RefName, expected: Option<Id>, new: Option<Id>) -> Result<()> {
        self.check_ref_shape(name)?;
        let path = self.ref_path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fsutil::create_dir_durable(&dir)?;
        let mut lock_name = path.clone().into_os_string();
        lock_name.push(".lock");
        let _lock = LockFile::acquire(Path::new(&lock_name), lock::DEFAULT_WAIT)?;
        let actual = self.read_ref(name)?;
        if actual != expected {
            return Err(Error::RefConflict {
                name: name.to_string(),
                expected,
                actual,
            });
        }
        match new {
            Some(id) => fsutil::write_atomic(&path, format!("{id}\n").as_bytes()),
            None => {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at(&path),
                }
                fsutil::fsync_dir(&dir)
            }
        }
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        let base = self.root.join("refs").join(prefix);
        if !base.is_dir() {
            return Ok(Vec::new());
        }
        let refs = self.root.join("refs");
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&base).min_depth(1) {
            let entry = entry.map_err(|e| walk_error(e, &base))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(&refs).unwrap_or(entry.path());
            if let Ok(name) = RefName::parse(&rel.to_string_lossy()) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn layout(&self) -> Result<Layout> {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut tmp = 0;
        for path in self.leftovers()? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if is_tmp_name(&name) {
                tmp += 1;
            } else {
                let text = fs::read_to_string(&path).unwrap_or_default();
                notes.push(format!(
                    "{}: lock {}",
                    path.display(),
                    lock::describe(&text)
                ));
            }
        }
        if tmp > 0 {
            notes.push(format!(
                "{tmp} temporary file(s) left by interrupted writes; they are never referenced and are harmless"
            ));
        }
        let objects = self.root.join("objects");
        for shard in fs::read_dir(&objects).at(&objects)? {
            let shard = shard.at(&objects)?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            let spath = shard.path();
            if is_tmp_name(&sname) {
                continue;
            }
            if sname.len() != 2 || !is_lower_hex(&sname) || !spath.is_dir() {
                problems.push(format!(
                    "{}: not an object shard directory; move it out of the store",
                    spath.display()
                ));
                continue;
            }
            for obj in fs::read_dir(&spath).at(&spath)? {
                let obj = obj.at(&spath)?;
                let oname = obj.file_name().to_string_lossy().into_owned();
                if !is_tmp_name(&oname) && format!("{sname}{oname}").parse::<Id>().is_err() {
                    problems.push(format!(
                        "{}: not an object file name; move it out of the store",
                        obj.path().display()
                    ));
                }
            }
        }
        let refs = self.root.join("refs");
        for entry in walkdir::WalkDir::new(&refs).min_depth(1) {
            let entry = entry.map_err(|e| walk_error(e, &refs))?;
            let name = entry.file_name().to_string_lossy();
            if !entry.file_type().is_file() || is_tmp_name(&name) || name.ends_with(".lock") {
                continue;
            }
            let rel = entry.path().strip_prefix(&refs).unwrap_or(entry.path());
            if let Err(e) = RefName::parse(&rel.to_string_lossy()) {
                problems.push(format!("{}: {e}", entry.path().display()));
            }
        }
        Ok(Layout { problems, notes })
    }
}
