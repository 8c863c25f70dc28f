//! The `remotes` file of a store directory and the tracking refs of remotes
//! (format/store-v1.md section 8): which remote is where, and what each held at the last
//! exchange. How a location opens is the transfer layer's ([`crate::transfer::remote`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::name::{self, RefName, REMOTES};
use crate::store::FsStore;

/// First line of the `remotes` file.
pub const MAGIC: &str = "remotelog-remotes";
/// The remote `clone` registers, and push/pull use by default.
pub const ORIGIN: &str = "origin";

/// A named remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Its name (one name segment).
    pub name: String,
    /// Where it is: an absolute directory path or an `http://` URL.
    pub location: String,
}

/// Checks a remote name: a single name segment.
pub fn validate_name(name: &str) -> Result<()> {
    name::validate(name)?;
    if name.contains('/') {
        return Err(Error::InvalidName {
            name: name.into(),
            reason: "a remote name is a single segment (no `/`)".into(),
        });
    }
    Ok(())
}

/// The tracking ref of `log` on `remote`.
pub fn tracking_ref(remote: &str, log: &str) -> Result<RefName> {
    validate_name(remote)?;
    name::validate(log)?;
    RefName::parse(&format!("{REMOTES}/{remote}/{log}"))
}

/// The remotes registered in a store.
#[derive(Debug, Clone, Default)]
pub struct Remotes {
    list: Vec<Remote>,
}

impl Remotes {
    fn path(root: &Path) -> PathBuf {
        root.join("remotes")
    }

    /// Reads the store's `remotes` file (none yet means no remotes).
    pub fn load(store: &FsStore) -> Result<Remotes> {
        Self::load_in(store.root())
    }

    /// Reads the `remotes` file in directory `root`, which need not be a store yet (a
    /// clone writes it before the `config` that makes the directory a store).
    pub fn load_in(root: &Path) -> Result<Remotes> {
        let path = Self::path(root);
        // A few lines per remote; read without following a link.
        let bytes = fsutil::read_below(root, Path::new("remotes"), "a remotes file", 1 << 20)?;
        let Some(bytes) = bytes else {
            return Ok(Remotes::default());
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::NotAStore {
            path: path.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        Remotes::parse(&text, &path)
    }

    /// Parses the text of a `remotes` file; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Remotes> {
        let bad = |reason: String| Error::NotAStore {
            path: path.to_path_buf(),
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(format!("first line is not {MAGIC:?}")));
        }
        let mut list = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (n, loc) = line
                .split_once(" = ")
                .ok_or_else(|| bad(format!("line {line:?} is not `name = location`")))?;
            validate_name(n).map_err(|e| bad(e.to_string()))?;
            if loc.chars().any(char::is_control) {
                return Err(bad(format!(
                    "line {line:?} has a control character in its location; edit the file"
                )));
            }
            list.push(Remote {
                name: n.to_string(),
                location: loc.to_string(),
            });
        }
        Ok(Remotes { list })
    }

    /// Replaces the `remotes` file of directory `root` with these remotes, durably.
    pub fn save(&self, root: &Path) -> Result<()> {
        fsutil::write_atomic(&Self::path(root), self.render().as_bytes())
    }

    /// The text of the `remotes` file listing these remotes.
    pub fn render(&self) -> String {
        let mut text = format!("{MAGIC}\n");
        for r in &self.list {
            text.push_str(&format!("{} = {}\n", r.name, r.location));
        }
        text
    }

    /// All remotes, in the order they were added.
    pub fn all(&self) -> &[Remote] {
        &self.list
    }

    /// The remote called `name`.
    pub fn get(&self, name: &str) -> Option<&Remote> {
        self.list.iter().find(|r| r.name == name)
    }

    /// The remote called `name`, or an error that says how to list them.
    pub fn named(&self, name: &str) -> Result<&Remote> {
        self.get(name).ok_or_else(|| no_remote(name))
    }

    /// Remote `name` to change, or the same error as [`Remotes::named`].
    fn named_mut(&mut self, name: &str) -> Result<&mut Remote> {
        self.list
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| no_remote(name))
    }

    /// The remote used when none is named: `origin`, or the only one.
    pub fn default_remote(&self) -> Result<&Remote> {
        if let Some(r) = self.get(ORIGIN) {
            return Ok(r);
        }
        match self.list.as_slice() {
            [only] => Ok(only),
            [] => Err(Error::Invalid(
                "this store has no remotes; add one with `remotelog remote add NAME DIR` (or NAME http://HOST:PORT)".into(),
            )),
            _ => Err(Error::Invalid(format!(
                "this store has several remotes and none is called {ORIGIN}; name one ({})",
                self.list
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The remotes a push goes to: every one with `all`, else those `names` names, else
    /// the [default](Remotes::default_remote) one; never none.
    pub fn targets(&self, names: &[String], all: bool) -> Result<Vec<Remote>> {
        let targets = if all {
            self.list.clone()
        } else if names.is_empty() {
            vec![self.default_remote()?.clone()]
        } else {
            names
                .iter()
                .map(|n| self.named(n).cloned())
                .collect::<Result<_>>()?
        };
        if targets.is_empty() {
            return Err(Error::Invalid(
                "this store has no remotes; add one with `remotelog remote add NAME DIR`".into(),
            ));
        }
        Ok(targets)
    }
}

/// Adds remote `name` at `location` (in the form it is stored: an absolute directory path
/// or a normalized URL) to the `remotes` file of directory `root`, which need not be a
/// store yet (a clone writes it before `config`).
pub fn add_in(root: &Path, name: &str, location: &str) -> Result<Remote> {
    validate_name(name)?;
    let mut remotes = Remotes::load_in(root)?;
    if let Some(existing) = remotes.get(name) {
        return Err(Error::Invalid(format!(
            "remote {name} already exists ({}); remove it first with `remotelog remote remove {name}`",
            existing.location
        )));
    }
    // The file holds one remote per line: a newline in a location would add a line.
    storable(location)?;
    let remote = Remote {
        name: name.to_string(),
        location: location.to_string(),
    };
    remotes.list.push(remote.clone());
    remotes.save(root)?;
    Ok(remote)
}

/// Removes remote `name` from the `remotes` file of directory `root`; false when there
/// was none.
pub fn remove_in(root: &Path, name: &str) -> Result<bool> {
    let mut remotes = Remotes::load_in(root)?;
    let before = remotes.list.len();
    remotes.list.retain(|r| r.name != name);
    if remotes.list.len() == before {
        return Ok(false);
    }
    remotes.save(root)?;
    Ok(true)
}

/// Renames remote `old` to `new` in the `remotes` file of directory `root`, keeping its
/// place in the list.
pub fn rename_in(root: &Path, old: &str, new: &str) -> Result<Remote> {
    validate_name(new)?;
    let mut remotes = Remotes::load_in(root)?;
    if let Some(existing) = remotes.get(new) {
        return Err(Error::Invalid(format!(
            "remote {new} already exists ({}); pick another name, or remove it first with `remotelog remote remove {new}`",
            existing.location
        )));
    }
    let r = remotes.named_mut(old)?;
    r.name = new.to_string();
    let renamed = r.clone();
    remotes.save(root)?;
    Ok(renamed)
}

/// Gives remote `name` of the `remotes` file of directory `root` the new `location` (in
/// its stored form, as [`add_in`] takes it).
pub fn set_location_in(root: &Path, name: &str, location: &str) -> Result<Remote> {
    storable(location)?;
    let mut remotes = Remotes::load_in(root)?;
    let r = remotes.named_mut(name)?;
    r.location = location.to_string();
    let changed = r.clone();
    remotes.save(root)?;
    Ok(changed)
}

/// First line of the `remote-exchanges` file.
pub const EXCHANGES_MAGIC: &str = "remotelog-remote-exchanges";

/// A kind of exchange with a remote, as the `remote-exchanges` file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A push to it.
    Push,
    /// A pull or fetch from it.
    Pull,
}

impl Exchange {
    fn key(self) -> &'static str {
        match self {
            Exchange::Push => "push",
            Exchange::Pull => "pull",
        }
    }
}

/// When the store last exchanged logs with each remote (format/store-v1.md section 8):
/// the optional file `remote-exchanges`, lines `NAME push|pull = UNIX-SECONDS`. It is
/// information for people (`remote show`), never a reason to refuse anything, so a file
/// that cannot be read counts as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchanges {
    // (remote, kind key, seconds), in file order.
    lines: Vec<(String, String, u64)>,
}

impl Exchanges {
    const FILE: &'static str = "remote-exchanges";

    /// Reads the file of directory `root`; missing or unreadable means none recorded.
    pub fn load_in(root: &Path) -> Exchanges {
        let Ok(Some(bytes)) = fsutil::read_below(
            root,
            Path::new(Self::FILE),
            "a remote-exchanges file",
            1 << 20,
        ) else {
            return Exchanges::default();
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        if lines.next() != Some(EXCHANGES_MAGIC) {
            return Exchanges::default();
        }
        let lines = lines
            .filter_map(|l| {
                let (left, secs) = l.split_once(" = ")?;
                let (name, kind) = left.split_once(' ')?;
                Some((
                    name.to_string(),
                    kind.to_string(),
                    secs.trim().parse().ok()?,
                ))
            })
            .collect();
        Exchanges { lines }
    }

    /// When the last exchange of `kind` with `remote` was, in unix seconds.
    pub fn last(&self, remote: &str, kind: Exchange) -> Option<u64> {
        self.lines
            .iter()
            .find(|(n, k, _)| n == remote && k == kind.key())
            .map(|(_, _, s)| *s)
    }

    fn render(&self) -> String {
        let mut text = format!("{EXCHANGES_MAGIC}\n");
        for (n, k, s) in &self.lines {
            text.push_str(&format!("{n} {k} = {s}\n"));
        }
        text
    }

    /// Rewrites the file of `root` after `change`.
    fn update(root: &Path, change: impl FnOnce(&mut Vec<(String, String, u64)>)) -> Result<()> {
        let mut x = Exchanges::load_in(root);
        let before = x.clone();
        change(&mut x.lines);
        if x == before {
            return Ok(());
        }
        fsutil::write_atomic(&root.join(Self::FILE), x.render().as_bytes())
    }

    /// Records in directory `root` an exchange of `kind` with `remote` at `secs`.
    pub fn record_in(root: &Path, remote: &str, kind: Exchange, secs: u64) -> Result<()> {
        validate_name(remote)?;
        Self::update(root, |lines| {
            match lines
                .iter_mut()
                .find(|(n, k, _)| n == remote && k == kind.key())
            {
                Some(line) => line.2 = secs,
                None => lines.push((remote.to_string(), kind.key().to_string(), secs)),
            }
        })
    }

    /// Moves the records of `old` to `new` (`remote rename`).
    pub fn rename_in(root: &Path, old: &str, new: &str) -> Result<()> {
        Self::update(root, |lines| {
            lines.retain(|(n, _, _)| n != new);
            for line in lines.iter_mut().filter(|(n, _, _)| n == old) {
                line.0 = new.to_string();
            }
        })
    }

    /// Drops the records of `remote` (`remote remove`).
    pub fn forget_in(root: &Path, remote: &str) -> Result<()> {
        Self::update(root, |lines| lines.retain(|(n, _, _)| n != remote))
    }
}

fn no_remote(name: &str) -> Error {
    Error::Invalid(format!(
        "no remote named {name:?}; `remotelog remote list` shows them"
    ))
}

/// Refuses a location the line-based `remotes` file cannot hold.
fn storable(location: &str) -> Result<()> {
    match location.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::Invalid(format!(
            "location {location:?} has the control character {c:?}, which the remotes file cannot hold; rename the directory"
        ))),
        None => Ok(()),
    }
}
