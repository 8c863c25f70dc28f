//! Remotes: named locations a store exchanges logs with, recorded in the store's `remotes`
//! file, and the tracking refs `refs/remotes/<remote>/<log>` that remember what each remote
//! held at the last exchange (format/store-v1.md, section 8).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::model::name::REMOTES;
use crate::store::config::Config;
pub use crate::store::remotes::{
    tracking_ref, validate_name, Exchange, Exchanges, Remote, Remotes, MAGIC, ORIGIN,
};
use crate::store::Backend;
use crate::store::FsStore;

/// What a remote location names, parsed ([`parse_location`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A store directory (absolute once `remote add` has recorded it).
    Dir(PathBuf),
    /// A `remotelog serve`: its URL in canonical form (`http[s]://HOST[:PORT][/PREFIX]`).
    Http(String),
    /// An object-storage remote: `s3://BUCKET/PREFIX` in canonical form (options kept,
    /// never a secret).
    S3(String),
}

/// The kind of remote behind a URL scheme.
enum Scheme {
    /// `http://`, `https://`: a `remotelog serve` (behind a TLS proxy for https).
    Http,
    /// `s3://`: a bucket of an object store.
    S3,
}

/// The URL schemes of remote locations, said once: [`parse_location`] and every message
/// that names the schemes there are read this table. A new kind of remote adds its line.
const SCHEMES: &[(&str, Scheme)] = &[
    ("http", Scheme::Http),
    ("https", Scheme::Http),
    ("s3", Scheme::S3),
];

/// What a remote location may be, for messages.
fn kinds_there_are() -> String {
    let urls: Vec<String> = SCHEMES
        .iter()
        .map(|(name, _)| format!("{name}://"))
        .collect();
    format!(
        "a remote is a store directory (a path; a relative one is made absolute) or a URL of scheme {}",
        urls.join(", ")
    )
}

/// Parses a remote location: a URL of a known scheme (checked, in canonical form), or a
/// directory path (as given). Anything with a URL scheme remotelog does not know, such as
/// `ftp://x` or `s3:bucket`, is refused naming the schemes there are, never taken for a
/// directory (`./name:x` is the directory whose name has a colon).
pub fn parse_location(text: &str) -> Result<Location> {
    let refuse = |why: String| bad_location(text, why);
    if text.is_empty() {
        return Err(refuse(kinds_there_are()));
    }
    if text.starts_with('/') {
        return Ok(Location::Dir(PathBuf::from(text)));
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        // No scheme: a relative path.
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Ok(Location::Dir(PathBuf::from(text)))
        }
        Err(e) => {
            return Err(refuse(format!(
                "not a usable URL ({e}); {}",
                kinds_there_are()
            )))
        }
    };
    let scheme = url.scheme();
    match SCHEMES.iter().find(|(name, _)| *name == scheme) {
        Some((_, Scheme::Http)) => http_location(&url, text),
        // The object-storage parser names the location in its own errors.
        Some((_, Scheme::S3)) => s3::normalize(text).map(Location::S3),
        None => Err(refuse(format!(
            "remotelog has no {scheme}: remotes; {} (for a directory whose name has a colon, write ./{text})",
            kinds_there_are()
        ))),
    }
}

/// A location that cannot be used: `text` as given, and why.
fn bad_location(text: &str, why: String) -> Error {
    Error::remote(
        crate::error::RemoteFailure::BadLocation,
        format!("remote location {text:?}: {why}"),
    )
}

/// The canonical form of `url`, an `http://` URL parsed from `text`, or what is wrong
/// with it (naming `text`).
fn http_location(url: &url::Url, text: &str) -> Result<Location> {
    let refuse = |why: String| bad_location(text, why);
    if url.host().is_none() {
        return Err(refuse("the URL has no host; give http://HOST:PORT".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("give no credentials in the URL; the token comes from REMOTELOG_TOKEN or REMOTELOG_TOKEN_FILE".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse(
            "give only http://HOST:PORT[/PREFIX], with no query or fragment".into(),
        ));
    }
    let canonical = url.as_str().trim_end_matches('/').to_string();
    // The client's own check (or, without the `http` feature, its refusal).
    http::normalize_url(&canonical)
        .map(Location::Http)
        .map_err(|e| refuse(e.to_string()))
}

/// True when `location` is a URL rather than a directory (of a known scheme or not).
pub fn is_url(location: &str) -> bool {
    !matches!(parse_location(location), Ok(Location::Dir(_)))
}

/// True when `location` names an object-storage remote (`s3://BUCKET/PREFIX`).
pub fn is_s3(location: &str) -> bool {
    location
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("s3://"))
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
    match parse_location(url)? {
        Location::Http(u) => Ok(u),
        Location::Dir(_) | Location::S3(_) => Err(Error::Invalid(format!(
            "{url:?} is not a URL; {}",
            kinds_there_are()
        ))),
    }
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

/// Registers remote `name` at `location`: a URL of a known scheme (normalized; an `s3://`
/// store must honour conditional writes: probed first) or a directory (made absolute);
/// anything else is refused ([`parse_location`]).
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
    if Path::new(&stored) == absolute(root)? {
        return Err(Error::Invalid(format!(
            "{stored} is this store itself; a remote must be another directory"
        )));
    }
    crate::store::remotes::add_in(root, name, &stored)
}

/// The form in which `remote add` records `location` in the `remotes` file: a URL or an
/// `s3://` location normalized (never a secret), a directory made absolute.
pub fn stored_location(location: &str) -> Result<String> {
    match parse_location(location)? {
        Location::Http(url) | Location::S3(url) => Ok(url),
        Location::Dir(dir) => Ok(absolute(&dir)?.to_string_lossy().into_owned()),
    }
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
    Exchanges::forget_in(store.root(), name)?;
    Ok(())
}

/// Renames remote `old` to `new`; its tracking refs and exchange records move along.
///
/// The new tracking refs are written first, then the `remotes` file (the step that
/// renames), then the old refs go: cut anywhere, the remote keeps what it knew under one
/// name or the other, and a leftover old ref only keeps its objects from gc.
pub fn rename(store: &FsStore, old: &str, new: &str) -> Result<Remote> {
    let remotes = Remotes::load(store)?;
    remotes.named(old)?;
    validate_name(new)?;
    if let Some(existing) = remotes.get(new) {
        return Err(Error::Invalid(format!(
            "remote {new} already exists ({}); pick another name, or remove it first with `remotelog remote remove {new}`",
            existing.location
        )));
    }
    let old_prefix = format!("{REMOTES}/{old}/");
    let moved: Vec<_> = store.list_refs(&format!("{REMOTES}/{old}"))?;
    for r in &moved {
        let Some(head) = store.read_ref(r)? else {
            continue;
        };
        let log = r.as_str().strip_prefix(&old_prefix).unwrap_or(r.as_str());
        store.update_ref(
            &tracking_ref(new, log)?,
            crate::store::Expected::Any,
            Some(head),
        )?;
    }
    let renamed = crate::store::remotes::rename_in(store.root(), old, new)?;
    for r in &moved {
        store.update_ref(r, crate::store::Expected::Any, None)?;
    }
    Exchanges::rename_in(store.root(), old, new)?;
    Ok(renamed)
}

/// Points remote `name` at `location` (parsed and stored as [`add`] does). Its tracking
/// refs stay: if the new location holds other logs, a push finds out and says what to do.
pub fn set_url(store: &FsStore, name: &str, location: &str) -> Result<Remote> {
    let stored = stored_location(location)?;
    if Path::new(&stored) == absolute(store.root())? {
        return Err(Error::Invalid(format!(
            "{stored} is this store itself; a remote must be another directory"
        )));
    }
    crate::store::remotes::set_location_in(store.root(), name, &stored)
}

/// Records that the store exchanged logs with `remote` now (shown by `remote show`).
pub fn record_exchange(store: &FsStore, remote: &str, kind: Exchange) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Exchanges::record_in(store.root(), remote, kind, now)
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

/// Opens the remote at `location`: an `HttpBackend` for an `http[s]://` URL (with the token
/// from `REMOTELOG_TOKEN` or `REMOTELOG_TOKEN_FILE`), the bucket of an `s3://` location
/// (a build without the `http` or `s3` feature refuses them), else the store directory as
/// [`open_dir`] does.
pub fn open(location: &str, create: bool) -> Result<Box<dyn Backend>> {
    match parse_location(location)? {
        Location::Http(url) => http::open(&url),
        Location::S3(loc) => s3::open(&loc, create),
        Location::Dir(_) => Ok(Box::new(open_dir(location, create)?)),
    }
}

/// Opens the remote at `location` for upkeep (`gc REMOTE`): like [`open`], but an HTTP
/// remote gets the admin token (`REMOTELOG_ADMIN_TOKEN` or `REMOTELOG_ADMIN_TOKEN_FILE`),
/// since gc deletes and a server wants its admin token for that, never a writer's.
pub fn open_for_upkeep(location: &str) -> Result<Box<dyn Backend>> {
    match parse_location(location)? {
        Location::Http(url) => http::open_admin(&url),
        Location::S3(loc) => s3::open_upkeep(&loc),
        Location::Dir(_) => Ok(Box::new(open_dir(location, false)?)),
    }
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

/// [`crate::transfer::sync::push`] of `log` to the registered remote `remote`, recording
/// the exchange for `remote show` when it succeeds.
pub fn push(
    store: &FsStore,
    remote: &Remote,
    remote_store: &dyn Backend,
    log: &str,
    force: crate::transfer::sync::Force,
    progress: &dyn crate::progress::Progress,
) -> Result<crate::transfer::sync::LogTransfer> {
    let done =
        crate::transfer::sync::push(store, &remote.name, remote_store, log, force, progress)?;
    record_exchange(store, &remote.name, Exchange::Push)?;
    Ok(done)
}

/// What taking a log from a remote does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// [`crate::transfer::sync::pull`]: fast-forward the local log.
    Pull,
    /// [`crate::transfer::sync::fetch`]: record the remote's head in the tracking ref only.
    Fetch,
}

/// `how` ([`Take`]) of `log` from the registered remote `remote`, recording the exchange
/// for `remote show` when it succeeds.
pub fn take(
    store: &FsStore,
    remote: &Remote,
    remote_store: &dyn Backend,
    log: &str,
    how: Take,
    progress: &dyn crate::progress::Progress,
) -> Result<crate::transfer::sync::LogTransfer> {
    let run = match how {
        Take::Pull => crate::transfer::sync::pull,
        Take::Fetch => crate::transfer::sync::fetch,
    };
    let done = run(store, &remote.name, remote_store, log, progress)?;
    record_exchange(store, &remote.name, Exchange::Pull)?;
    Ok(done)
}

/// Automatic housekeeping (`gc --auto`) of the remote at `location` after a push, when it
/// is a directory store that this user owns (a store someone else keeps is theirs to keep;
/// an HTTP remote keeps itself). Its own `config` says when it is due.
pub fn housekeep(
    location: &str,
    progress: &dyn crate::progress::Progress,
) -> Result<crate::upkeep::auto::Outcome> {
    use std::os::unix::fs::MetadataExt;
    let not_ours = Ok(crate::upkeep::auto::Outcome::NotDue);
    if !matches!(parse_location(location), Ok(Location::Dir(_))) {
        return not_ours;
    }
    let owner = fs::metadata(location).at(Path::new(location))?.uid();
    if owner != rustix::process::geteuid().as_raw() {
        return not_ours;
    }
    crate::upkeep::auto::gc_auto(&open_dir(location, false)?, progress)
}

/// One log in `remote show`: what the remote holds now and what it held at the last
/// exchange.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShownLog {
    /// The log.
    pub log: String,
    /// Its head page on the remote now (hex); `None` when the remote has no such log or
    /// could not be read.
    pub head: Option<String>,
    /// Its entries on the remote now.
    pub entries: Option<u64>,
    /// Its head at the last push, pull or fetch (the tracking ref), if any.
    pub tracked_head: Option<String>,
    /// Its entries then.
    pub tracked_entries: Option<u64>,
}

/// What `remote show NAME` tells about one remote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteShow {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub location: String,
    /// When this store last pushed to it (unix seconds), if it ever did.
    pub last_push: Option<u64>,
    /// When this store last pulled or fetched from it (unix seconds).
    pub last_pull: Option<u64>,
    /// Every log it holds now or held at the last exchange, by name.
    pub logs: Vec<ShownLog>,
    /// Why the remote could not be read, when it could not (the logs are then those of
    /// the tracking refs only).
    pub unreachable: Option<String>,
}

/// Tells about remote `name`: its location, the last push and pull, and each log it holds
/// (read from the remote: an unreachable remote is reported as such, not as a failure).
pub fn show(store: &FsStore, name: &str) -> Result<RemoteShow> {
    let r = Remotes::load(store)?.named(name)?.clone();
    let exchanges = Exchanges::load_in(store.root());
    let mut logs: std::collections::BTreeMap<String, ShownLog> = Default::default();
    let blank = |log: &str| ShownLog {
        log: log.to_string(),
        head: None,
        entries: None,
        tracked_head: None,
        tracked_entries: None,
    };
    let tracked = list(store)?
        .into_iter()
        .find(|i| i.name == name)
        .map_or_else(Vec::new, |i| i.logs);
    for t in tracked {
        let entry = logs.entry(t.log.clone()).or_insert_with(|| blank(&t.log));
        entry.tracked_head = Some(t.head);
        entry.tracked_entries = Some(t.entries);
    }
    let mut unreachable = None;
    match open(&r.location, false).and_then(|b| crate::log::list(&*b)) {
        Ok(there) => {
            for info in there {
                let entry = logs
                    .entry(info.name.clone())
                    .or_insert_with(|| blank(&info.name));
                entry.head = Some(info.head.to_hex());
                entry.entries = Some(info.count);
            }
        }
        Err(e) => unreachable = Some(e.to_string()),
    }
    Ok(RemoteShow {
        last_push: exchanges.last(name, Exchange::Push),
        last_pull: exchanges.last(name, Exchange::Pull),
        name: r.name,
        location: r.location,
        logs: logs.into_values().collect(),
        unreachable,
    })
}

/// Where `clone SRC` copies from: a URL (normalized), or a directory that exists (made
/// absolute), is used as it is; otherwise SRC must name a remote of the store at `store`.
pub fn resolve_source(store: &Path, src: &str) -> Result<String> {
    // A URL of a known scheme, or a refusal of one remotelog does not know.
    if let Location::Http(url) | Location::S3(url) = parse_location(src)? {
        return Ok(url);
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
    if !matches!(parse_location(location), Ok(Location::Dir(_))) {
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

    // Without the `http` feature every http:// location is refused (`without_http`).
    #[cfg(feature = "http")]
    #[test]
    fn a_bad_http_url_is_a_bad_location_naming_it() {
        for (text, why) in [
            ("http://user:pw@h:1", "give no credentials in the URL"),
            ("http://h:1/?q=1", "give only http://HOST:PORT[/PREFIX]"),
        ] {
            let e = parse_location(text).unwrap_err();
            assert!(
                matches!(&e, Error::Remote { kind: crate::error::RemoteFailure::BadLocation, message }
                    if message.starts_with(&format!("remote location {text:?}: {why}"))),
                "{e:?}"
            );
        }
        assert!(matches!(
            parse_location("http://h:1/p/"),
            Ok(Location::Http(u)) if u == "http://h:1/p"
        ));
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

    #[cfg(feature = "http")]
    #[test]
    fn locations_parse_to_a_canonical_url_or_a_directory() {
        let url = |t: &str| match parse_location(t).unwrap() {
            Location::Http(u) => u,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(url("http://H:1/"), "http://h:1");
        assert_eq!(url("http://h:80/p/"), "http://h/p");
        assert_eq!(url("http://[::1]:8080"), "http://[::1]:8080");
        let dir = |t: &str| parse_location(t).unwrap() == Location::Dir(PathBuf::from(t));
        assert!(dir("/abs/s3://x") && dir("rel/dir") && dir("./a:b") && dir("1:x"));
        assert_eq!(url("https://H:443/p/"), "https://h/p");
        #[cfg(feature = "s3")]
        assert!(matches!(
            parse_location("S3://bucket/node").unwrap(),
            Location::S3(_)
        ));
        // The object-storage parser names the location in its own words.
        assert!(parse_location("s3:b").is_err());
        for bad in ["", "file:///tmp/x", "ftp://x", "http://"] {
            let e = parse_location(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("remote location {bad:?}: ")), "{e}");
        }
        assert!(is_url("s3://b") && is_url("http://h") && !is_url("/x"));
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
