//! Remotes: named locations a store exchanges logs with, recorded in the store's `remotes`
//! file, and the tracking refs `refs/remotes/<remote>/<log>` that remember what each remote
//! held at the last exchange (format/store-v1.md, section 8).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::model::name::REMOTES;
use crate::store::config::Config;
pub use crate::store::remotes::{tracking_ref, validate_name, Remote, Remotes, MAGIC, ORIGIN};
use crate::store::Backend;
use crate::store::FsStore;

/// True when `location` is a URL rather than a directory.
pub fn is_url(location: &str) -> bool {
    let l = location.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// True when `location` names an object-storage remote (`s3://BUCKET/PREFIX`).
pub fn is_s3(location: &str) -> bool {
    location.to_ascii_lowercase().starts_with("s3://")
}

/// Object-storage remotes as remotes use them.
#[cfg(feature = "s3")]
mod s3 {
    use super::*;

    /// The canonical form of an `s3://` location (options kept, never a secret).
    pub fn normalize(location: &str) -> Result<String> {
        Ok(crate::s3::Location::parse(location)?.render())
    }

    /// The remote at an `s3://` location; `write`: probed and created if need be.
    pub fn open(location: &str, write: bool) -> Result<Box<dyn Backend>> {
        Ok(Box::new(crate::s3::open(location, write)?))
    }

    /// The existing store at an `s3://` location, for upkeep: probed, never created.
    pub fn open_upkeep(location: &str) -> Result<Box<dyn Backend>> {
        Ok(Box::new(crate::s3::open_for_upkeep(location)?))
    }

    /// Checks a new remote: its store reached and its conditional writes probed.
    pub fn check_new(location: &str) -> Result<String> {
        crate::s3::check_new_remote(location)
    }
}

/// A build without object storage: every `s3://` location is refused, saying why.
#[cfg(not(feature = "s3"))]
mod s3 {
    use super::*;

    fn refused(location: &str) -> Error {
        Error::Invalid(format!(
            "{location}: this build of remotelog has no object-storage support (it was built without the `s3` feature); use a directory remote, or a build with the default features"
        ))
    }

    pub fn normalize(location: &str) -> Result<String> {
        Err(refused(location))
    }

    pub fn open(location: &str, _write: bool) -> Result<Box<dyn Backend>> {
        Err(refused(location))
    }

    pub fn open_upkeep(location: &str) -> Result<Box<dyn Backend>> {
        Err(refused(location))
    }

    pub fn check_new(location: &str) -> Result<String> {
        Err(refused(location))
    }
}

/// Checks a remote URL and gives its canonical form (`http://HOST:PORT[/PREFIX]`); a build
/// without the `http` feature refuses every URL.
pub fn normalize_url(url: &str) -> Result<String> {
    http::normalize_url(url)
}

/// The HTTP client as remotes use it.
#[cfg(feature = "http")]
mod http {
    use super::*;

    pub use crate::net::client::normalize_url;

    /// The remote at an `http://` URL, with the token from the environment.
    pub fn open(location: &str) -> Result<Box<dyn Backend>> {
        let token = crate::net::client::token_from_env()?;
        Ok(Box::new(crate::net::client::HttpBackend::open(
            location, token,
        )?))
    }

    /// The same with the admin token, for upkeep.
    pub fn open_admin(location: &str) -> Result<Box<dyn Backend>> {
        let token = crate::net::client::admin_token_from_env()?;
        Ok(Box::new(crate::net::client::HttpBackend::open(
            location, token,
        )?))
    }
}

/// A build without the HTTP client: every URL is refused, saying why.
#[cfg(not(feature = "http"))]
mod http {
    use super::*;

    fn refused(location: &str) -> Error {
        Error::Invalid(format!(
            "{location}: this build of remotelog has no HTTP support (it was built without the `http` feature); use a directory remote, or a build with the default features"
        ))
    }

    pub fn normalize_url(url: &str) -> Result<String> {
        Err(refused(url))
    }

    pub fn open(location: &str) -> Result<Box<dyn Backend>> {
        Err(refused(location))
    }

    pub fn open_admin(location: &str) -> Result<Box<dyn Backend>> {
        Err(refused(location))
    }
}

/// Registers remote `name` at `location`: an `http://` URL (kept as given, normalized), an
/// `s3://` location (whose store must honour conditional writes: probed first) or a
/// directory (made absolute).
pub fn add(store: &FsStore, name: &str, location: &Path) -> Result<Remote> {
    if let Some(l) = location.to_str().filter(|l| is_s3(l)) {
        validate_name(name)?;
        s3::check_new(l)?;
    }
    add_in(store.root(), name, location)
}

/// [`add`] in directory `root`, which need not be a store yet (see [`Remotes::load_in`]).
pub fn add_in(root: &Path, name: &str, location: &Path) -> Result<Remote> {
    let stored = stored_location(&location.to_string_lossy())?;
    if !is_url(&stored) && !is_s3(&stored) && Path::new(&stored) == absolute(root)? {
        return Err(Error::Invalid(format!(
            "{stored} is this store itself; a remote must be another directory"
        )));
    }
    crate::store::remotes::add_in(root, name, &stored)
}

/// The form in which `remote add` records `location` in the `remotes` file: a URL or an
/// `s3://` location normalized (never a secret), a directory made absolute.
pub fn stored_location(location: &str) -> Result<String> {
    if is_url(location) {
        return normalize_url(location);
    }
    if is_s3(location) {
        return s3::normalize(location);
    }
    Ok(absolute(Path::new(location))?
        .to_string_lossy()
        .into_owned())
}

/// Unregisters remote `name` and deletes its tracking refs.
pub fn remove(store: &FsStore, name: &str) -> Result<()> {
    if Remotes::load(store)?.get(name).is_none() {
        return Err(Error::Invalid(format!(
            "no remote named {name:?}; `remotelog remote list` shows them"
        )));
    }
    for r in store.list_refs(&format!("{REMOTES}/{name}"))? {
        store.update_ref(&r, crate::store::Expected::Any, None)?;
    }
    crate::store::remotes::remove_in(store.root(), name)?;
    Ok(())
}

/// The directory path as an absolute path (it need not exist).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).at(p)
}

/// True for an empty directory, or one holding only what an interrupted `init` leaves
/// (the empty skeleton folders and temporary files), which is safe to initialise over.
fn is_empty_or_unfinished_init(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::fsutil::is_tmp_name(&name) {
            continue;
        }
        if !matches!(name.as_str(), "objects" | "refs" | "packs") || !entry.path().is_dir() {
            return Ok(false);
        }
        for inner in walkdir::WalkDir::new(entry.path()).min_depth(1) {
            let inner = inner.map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
            let n = inner.file_name().to_string_lossy();
            if inner.file_type().is_file() && !crate::fsutil::is_tmp_name(&n) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Opens the remote at `location`: an `HttpBackend` for an `http://` URL (with the token
/// from `REMOTELOG_TOKEN` or `REMOTELOG_TOKEN_FILE`; refused by a build without the `http`
/// feature), else the store directory as [`open_dir`] does.
pub fn open(location: &str, create: bool) -> Result<Box<dyn Backend>> {
    if is_url(location) {
        return http::open(location);
    }
    if is_s3(location) {
        return s3::open(location, create);
    }
    Ok(Box::new(open_dir(location, create)?))
}

/// Opens the remote at `location` for upkeep (`gc REMOTE`): like [`open`], but an HTTP
/// remote gets the admin token (`REMOTELOG_ADMIN_TOKEN` or `REMOTELOG_ADMIN_TOKEN_FILE`),
/// since gc deletes and a server wants its admin token for that, never a writer's.
pub fn open_for_upkeep(location: &str) -> Result<Box<dyn Backend>> {
    if is_url(location) {
        return http::open_admin(location);
    }
    if is_s3(location) {
        return s3::open_upkeep(location);
    }
    Ok(Box::new(open_dir(location, false)?))
}

/// Opens the store at a remote directory; `create` makes an empty store there if there is
/// none yet (a push to a new directory).
pub fn open_dir(location: &str, create: bool) -> Result<FsStore> {
    let dir = Path::new(location);
    match FsStore::open(dir) {
        Err(Error::NotAStore { .. }) if create && !dir.join("config").exists() => {
            if dir.is_dir() && !is_empty_or_unfinished_init(dir)? {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                    reason: "exists, is not empty and is not a remotelog store; give an empty or new directory".into(),
                });
            }
            FsStore::init(dir, Config::default())
        }
        other => other,
    }
}

/// A remote and what it held of each log at the last push or pull (`remote list`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteInfo {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub location: String,
    /// One per tracking ref, by log name.
    pub logs: Vec<TrackedLog>,
}

/// What a remote held of one log at the last exchange, from its tracking ref.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackedLog {
    /// The log.
    pub log: String,
    /// Its entries then.
    pub entries: u64,
    /// Its head page then (hex).
    pub head: String,
}

/// Every remote of the store with its tracking refs, read locally (no remote is
/// contacted).
pub fn list(store: &FsStore) -> Result<Vec<RemoteInfo>> {
    let mut out = Vec::new();
    for r in Remotes::load(store)?.all() {
        let prefix = format!("{REMOTES}/{}", r.name);
        let mut logs = Vec::new();
        for t in store.list_refs(&prefix)? {
            let Some(head) = store.read_ref(&t)? else {
                continue;
            };
            let entries = crate::log::read_page(store, &head)?.count;
            let log = t
                .as_str()
                .strip_prefix(&format!("{prefix}/"))
                .unwrap_or(t.as_str());
            logs.push(TrackedLog {
                log: log.to_string(),
                entries,
                head: head.to_hex(),
            });
        }
        out.push(RemoteInfo {
            name: r.name.clone(),
            location: r.location.clone(),
            logs,
        });
    }
    Ok(out)
}

/// Where `clone SRC` copies from: a URL (normalized), or a directory that exists (made
/// absolute), is used as it is; otherwise SRC must name a remote of the store at `store`.
pub fn resolve_source(store: &Path, src: &str) -> Result<String> {
    if is_url(src) {
        return normalize_url(src);
    }
    if is_s3(src) {
        return s3::normalize(src);
    }
    let p = Path::new(src);
    if p.exists() {
        return Ok(absolute(p)?.to_string_lossy().into_owned());
    }
    if validate_name(src).is_ok() {
        if let Ok(local) = FsStore::open(store) {
            if let Some(r) = Remotes::load(&local)?.get(src) {
                return Ok(r.location.clone());
            }
        }
    }
    Err(Error::Invalid(format!(
        "{src}: no such directory, and not the name of a remote of {}",
        store.display()
    )))
}

/// Packs a directory remote may gather before a push suggests a repack: every push adds one.
pub const PACKS_BEFORE_HINT: usize = 16;

/// How many packs the directory remote at `location` holds, when that is more than
/// [`PACKS_BEFORE_HINT`] and a `repack` there would merge them; `None` otherwise, and for
/// an HTTP remote or a directory that cannot be read.
pub fn packs_to_merge(location: &str) -> Option<usize> {
    if is_url(location) || is_s3(location) {
        return None;
    }
    let packs = FsStore::open(Path::new(location))
        .and_then(|s| s.packs())
        .ok()?;
    (packs.len() > PACKS_BEFORE_HINT).then_some(packs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{self, SettingsChange};
    use crate::model::object::Message;

    fn store(dir: &Path) -> FsStore {
        FsStore::init(dir, Config::default()).unwrap()
    }

    #[test]
    fn push_targets_are_all_the_named_or_the_default_remote_and_never_none() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir.path().join("s"));
        let names = |t: Vec<Remote>| t.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let none = Remotes::load(&s).unwrap();
        for all in [true, false] {
            let e = none.targets(&[], all).unwrap_err().to_string();
            assert!(e.contains("this store has no remotes"), "{e}");
        }
        add(&s, "a", &dir.path().join("a")).unwrap();
        add(&s, "b", &dir.path().join("b")).unwrap();
        let two = Remotes::load(&s).unwrap();
        assert_eq!(names(two.targets(&[], true).unwrap()), ["a", "b"]);
        assert_eq!(names(two.targets(&["b".into()], false).unwrap()), ["b"]);
        let e = two.targets(&["c".into()], false).unwrap_err().to_string();
        assert!(e.contains("no remote named \"c\""), "{e}");
        let e = two.targets(&[], false).unwrap_err().to_string();
        assert!(e.contains("none is called origin"), "{e}");
        add(&s, ORIGIN, &dir.path().join("o")).unwrap();
        let three = Remotes::load(&s).unwrap();
        assert_eq!(names(three.targets(&[], false).unwrap()), [ORIGIN]);
    }

    #[test]
    fn list_reads_each_remote_s_tracking_refs() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir.path().join("s"));
        let msg = Message {
            group_id: b"g".to_vec(),
            timestamp: 1,
            body: b"one".to_vec(),
        };
        let done = log::append(&s, "chat", &[msg], SettingsChange::default()).unwrap();
        add(&s, "a", &dir.path().join("a")).unwrap();
        add(&s, "b", &dir.path().join("b")).unwrap();
        let t = tracking_ref("b", "chat").unwrap();
        s.update_ref(&t, None.into(), Some(done.head)).unwrap();
        let list = list(&s).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].name.as_str(), list[0].logs.len()), ("a", 0));
        assert_eq!(list[1].location, dir.path().join("b").to_string_lossy());
        assert_eq!(
            list[1].logs,
            [TrackedLog {
                log: "chat".into(),
                entries: 1,
                head: done.head.to_hex(),
            }]
        );
    }

    #[test]
    fn a_clone_source_is_a_url_a_directory_or_a_remote_s_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let s = store(&root);
        let there = dir.path().join("there");
        fs::create_dir(&there).unwrap();
        add(&s, "far", &dir.path().join("far")).unwrap();
        // A URL goes through normalize_url, whatever this build makes of it.
        let text = |r: Result<String>| r.map_err(|e| e.to_string());
        let url = "http://h:1/";
        assert_eq!(text(resolve_source(&root, url)), text(normalize_url(url)));
        assert_eq!(
            resolve_source(&root, &there.to_string_lossy()).unwrap(),
            there.to_string_lossy()
        );
        assert_eq!(
            resolve_source(&root, "far").unwrap(),
            dir.path().join("far").to_string_lossy()
        );
        let e = resolve_source(&root, "near").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "near: no such directory, and not the name of a remote of {}",
                root.display()
            )
        );
    }

    /// The count past the limit is tested through the binary (tests/cli.rs, a push per
    /// pack); here, the cases where nothing is suggested.
    #[test]
    fn no_repack_is_suggested_for_few_packs_a_url_or_no_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        store(&root);
        assert_eq!(packs_to_merge(&root.to_string_lossy()), None);
        assert_eq!(packs_to_merge("http://h:1"), None);
        let none = dir.path().join("none");
        assert_eq!(packs_to_merge(&none.to_string_lossy()), None);
    }
}

/// Run by `.ci/run` as `cargo test --no-default-features --lib remote::`.
#[cfg(all(test, not(feature = "http")))]
mod without_http {
    use super::*;

    #[test]
    fn http_remotes_are_refused_saying_why_and_nothing_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::init(&dir.path().join("s"), Config::default()).unwrap();
        let no_http = |e: Error| {
            let text = e.to_string();
            assert!(
                text.contains("http://127.0.0.1:9") && text.contains("no HTTP support"),
                "{text}"
            );
        };
        no_http(open("http://127.0.0.1:9", false).err().unwrap());
        no_http(add(&store, "web", Path::new("http://127.0.0.1:9")).unwrap_err());
        assert!(Remotes::load(&store).unwrap().all().is_empty());
        // So are object-storage remotes in a build without the `s3` feature.
        let e = add(&store, "bucket", Path::new("s3://bucket/p")).unwrap_err();
        assert!(e.to_string().contains("no object-storage support"), "{e}");
        assert!(open("s3://bucket/p", true).is_err());
        assert!(Remotes::load(&store).unwrap().all().is_empty());
        // Directory remotes work as ever.
        let other = dir.path().join("other");
        add(&store, "disk", &other).unwrap();
        assert!(open(&other.to_string_lossy(), true).is_ok());
    }
}
