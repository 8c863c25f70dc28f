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
    /// A push or pull refused because of what the other side holds; nothing was changed.
    /// The kind says what the user can do about it.
    #[error("{action} refused: {reason}; {next}")]
    Rejected {
        /// What was refused: `push of log main to origin`.
        action: String,
        /// Why.
        reason: Rejection,
        /// What gets past it: the commands to run, never the one that led here.
        next: String,
    },
    /// A remote (a server, an object store, or a mocked service, `crate::mock`) could not be
    /// reached, refused the request, or answered with something that is not its protocol.
    #[error("{message}")]
    Remote {
        /// What kind of failure: decides whether trying again can help.
        kind: RemoteFailure,
        /// The whole message, naming the remote's URL and the request.
        message: String,
    },
    /// Bytes that do not decode as the format their place calls for, outside a store (a
    /// store's objects and packs have [`Error::ObjectCorrupt`] and [`Error::BadPack`]).
    #[error("{what}: {source}")]
    Decode {
        /// The thing that was read: a file, a URL, a record.
        what: String,
        /// The format and what is wrong.
        source: DecodeError,
    },
    /// Bad arguments or input that is not about a file.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An [`Error::Remote`] of `kind`.
    pub fn remote(kind: RemoteFailure, message: impl Into<String>) -> Error {
        Error::Remote {
            kind,
            message: message.into(),
        }
    }

    /// Whether running the same command again later may succeed: a remote that is
    /// unreachable, slow, overloaded or busy, a ref another writer moved (the command
    /// reads it again). The binary's exit status (75,
    /// "try again") is decided by this.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Remote { kind, .. } => kind.is_transient(),
            Error::RefConflict { .. } => true,
            // A lock may be held by a live process or left by a crashed one on another
            // host, which only a person can clear: its message says how, so it is not
            // reported as worth a blind retry.
            // A push that lost a race needs a pull first: running it again unchanged
            // would be refused as not a fast-forward.
            _ => false,
        }
    }
}

/// Why a push or pull was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A push that is not a fast-forward: the remote has entries the local log lacks.
    #[error("{}", ahead_by.map_or_else(|| "the logs have diverged (each has entries the other lacks, as after `forget`), which no pull can merge".to_string(), |n| format!("the remote has {n} entries this log lacks")))]
    NotFastForward {
        /// How many entries the remote is ahead by when it is simply ahead; `None` when
        /// the two logs have diverged.
        ahead_by: Option<u64>,
    },
    /// `--force-with-lease`: the remote no longer holds what the tracking ref says we last
    /// saw there.
    #[error(
        "{}",
        match expected {
            None => format!("--force-with-lease needs to know what the remote holds, and this store never pushed, pulled or fetched this log there (it holds {})", show_log(found)),
            Some(_) => format!("the remote log is no longer what we last saw there (expected {}, found {}): another writer pushed", show_log(expected), show_log(found)),
        }
    )]
    LeaseBroken {
        /// What the tracking ref recorded.
        expected: Option<Id>,
        /// What the remote holds.
        found: Option<Id>,
    },
    /// Another writer moved the remote log while we pushed (the compare-and-swap lost).
    #[error("another writer moved the remote log while we pushed; nothing was lost")]
    Raced,
    /// A pull whose local and remote logs each have entries the other lacks.
    #[error("the local log and the remote's have diverged (each has entries the other lacks, as after `forget`); the local log was left as it is")]
    Diverged,
}

/// What kind of failure a remote gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteFailure {
    /// No connection, or it broke (after the retries an idempotent request gets).
    Unreachable,
    /// The answer came too slowly.
    TooSlow,
    /// The answer was larger than any answer of the protocol.
    TooBig,
    /// The credentials were refused (HTTP 401).
    Unauthorized,
    /// The credentials are good but not allowed this (HTTP 403).
    Forbidden,
    /// Any other unexpected HTTP status.
    Status(u16),
    /// The answer does not follow the protocol (a bad id, a bad line, a bad JSON body).
    BadAnswer,
    /// The URL does not lead to a server of the expected kind.
    NotThatServer,
    /// The location itself cannot be used (a scheme not built in, a malformed URL).
    BadLocation,
    /// TLS failed: the server's certificate was refused (not trusted, not for its name,
    /// out of date) or it speaks no TLS. Trying again does not help; a CA file may.
    Untrusted,
    /// A value kept changing under concurrent updates beyond the retries.
    Busy,
}

impl RemoteFailure {
    /// Whether trying again later may help.
    pub fn is_transient(self) -> bool {
        match self {
            RemoteFailure::Unreachable | RemoteFailure::TooSlow | RemoteFailure::Busy => true,
            // Overloaded, or a gateway in front of a server that is down; a plain 500 is
            // the server failing on what it holds, which waiting does not mend.
            RemoteFailure::Status(s) => matches!(s, 408 | 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Bytes that do not decode as `format`, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// The format they should be in.
    pub format: Format,
    /// What is wrong, in words.
    pub reason: String,
}

impl DecodeError {
    /// A decode error of `format`.
    pub fn new(format: Format, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            format,
            reason: reason.into(),
        }
    }
}

/// The formats remotelog decodes (each specified in `format/` or `docs/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A message or page object (`format/store-v1.md`).
    Object,
    /// A ref file's content.
    Ref,
    /// A pack file (`format/pack-v1.md`).
    Pack,
    /// A 3/REMOTE-LOG payload or page (`format/spec-view.md`).
    Spec,
    /// A mock profile's TOML (`docs/profiles/example.toml`, `docs/remote-log-mocking.md`).
    Profile,
}

fn show_log(id: &Option<Id>) -> String {
    id.map_or("no log".into(), |i| i.to_hex())
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
