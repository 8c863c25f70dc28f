//! Errors of the library.
//!
//! Rules: every error names the thing it is about (a path, an object id, a ref name) and,
//! where the user can act, says what to do next. The binary prints the `Display` form on one
//! line; nothing here panics on bad input.

use std::io;
use std::path::{Path, PathBuf};

use crate::id::Id;

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in remotelog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system call failed on `path`.
    #[error("{path}: {source}{}", io_hint(source))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The directory is not a store (or not one this version can read).
    #[error("{path}: {reason}")]
    NotAStore {
        /// The store directory or its config file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// `init` on a directory that already is a store.
    #[error("{0}: already a remotelog store; nothing changed")]
    AlreadyAStore(PathBuf),
    /// An object that should exist does not.
    #[error("object {id} is missing ({location})")]
    ObjectMissing {
        /// Its id.
        id: Id,
        /// Where it was looked for.
        location: String,
    },
    /// An object exists but its bytes are wrong.
    #[error("object {id} is corrupt ({location}): {reason}")]
    ObjectCorrupt {
        /// Its id.
        id: Id,
        /// Where it is.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A log, ref or remote name that is not allowed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A ref file whose content is not a valid id.
    #[error("{path}: not a valid ref ({reason}); if you know the right page id, write it there, otherwise restore this log from a remote")]
    BadRef {
        /// The ref file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A compare-and-swap on a ref found another value than the one expected.
    #[error("ref {name} moved: expected {}, found {}; another writer updated it, read it again and retry", show(expected), show(actual))]
    RefConflict {
        /// The ref.
        name: String,
        /// The value the caller expected.
        expected: Option<Id>,
        /// The value found.
        actual: Option<Id>,
    },
    /// A ref lock held by someone else.
    #[error("{path} is locked ({holder}); {hint}")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as far as known.
        holder: String,
        /// What to do.
        hint: String,
    },
    /// Nothing matches a message or object id given by the user.
    #[error("no message or object matches {0:?}; `remotelog log` lists the ids")]
    NotFound(String),
    /// Several things match a prefix.
    #[error("{prefix:?} is ambiguous: {count} ids match; give more hex digits")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// A pack file that is truncated, damaged or of an unknown version.
    #[error("pack {path}: {reason}; `remotelog check` lists every damaged pack, and a clone from another remote restores them")]
    BadPack {
        /// The pack file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file of a store that is not what its place calls for (a symbolic link, a fifo, a
    /// device) or larger than the format allows there: refused before it is read.
    #[error(
        "{path}: {reason}; move it out of the store, or restore the store from another remote"
    )]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        reason: String,
    },
    /// An entry under `refs/` that cannot be read as a ref: nobody can tell what it names,
    /// so operations that must not miss a ref (gc, clone) stop at it.
    #[error("{path}: {reason}, so it cannot be read as a ref; if it holds a log's head, make it a regular file under a valid name, otherwise move it out of the store")]
    NotARef {
        /// The entry.
        path: PathBuf,
        /// What it is.
        reason: String,
    },
    /// A ref update refused because the chain it would name is not complete in the store:
    /// uploading the log's objects again and retrying can fix it (`ObjectMissing` is for
    /// plain reads).
    #[error("{location}: ref {name} was not moved: {what} {missing} is missing there; upload the log's objects again (push does) and retry")]
    IncompleteChain {
        /// The ref.
        name: String,
        /// The first object found missing.
        missing: Id,
        /// What it is: `page ...` or `message ... of page ...`.
        what: String,
        /// The store or server.
        location: String,
    },
    /// Bad arguments or input that is not about a file.
    #[error("{0}")]
    Invalid(String),
}

fn show(id: &Option<Id>) -> String {
    id.map_or_else(|| "no ref".to_string(), |id| id.to_hex())
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull => {
            "; free some space and run the command again (nothing half-written was kept)"
        }
        io::ErrorKind::PermissionDenied => "; check the permissions (is the directory read-only?)",
        io::ErrorKind::ReadOnlyFilesystem => "; the file system is read-only",
        _ => "",
    }
}

/// Attaches a path to an `io::Result`.
pub trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] naming `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
