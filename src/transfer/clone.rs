//! `clone`: a new store from a remote, set up so that a kill at any instant leaves either
//! no DEST or a sound store that a rerun of the same clone (or `pull`) completes, and so
//! that one broken log of the source does not cost the others (format/store-v1.md, 8.3).
//!
//! The operation — listing the source's logs, pulling each on its own, the report, when
//! a rerun resumes — is written against the storage contract; setting DEST up (a skeleton
//! renamed into place, `config` last) and removing it again belong to the directory
//! implementation ([`crate::store::clone_setup`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::name::packs_ref;
use crate::model::name::REMOTES;
use crate::model::name::{RefName, LOGS};
use crate::progress::Progress;
use crate::store::dir::FsStore;
use crate::store::Backend;
use crate::transfer::remote::{self, ORIGIN};
use crate::transfer::sync::{pull, LogTransfer};

use crate::store::clone_setup::Target;

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
    let stored = remote::stored_location(src_location)?;
    let prepared = crate::store::clone_setup::prepare(dest, &stored, target, keep_partial)?;
    let (done, failed) = pull_each(&prepared.store, src, logs, progress);
    if !done.is_empty() {
        // For `remote show`: a clone is the first pull from origin.
        remote::record_exchange(&prepared.store, ORIGIN, remote::Exchange::Pull)?;
    }
    let mut report = Report {
        dest: dest.to_path_buf(),
        resumed: target == Target::Resume,
        done,
        failed,
        kept: true,
    };
    if report.done.is_empty() && !report.failed.is_empty() && !keep_partial {
        report.kept = !prepared.discard()?;
    }
    Ok(report)
}

/// What `dest` holds, and whether a clone of `src_location` may go there: a new path, an
/// empty directory (or the beginning of a clone of the same source), or a store holding
/// nothing but an interrupted clone of the same source. Anything else is refused.
pub fn target(dest: &Path, src_location: &str) -> Result<Target> {
    let expected = remote::stored_location(src_location)?;
    let target = crate::store::clone_setup::target(dest, &expected)?;
    if target == Target::Resume {
        check_resumable(
            &FsStore::open(dest)?,
            &dest.display().to_string(),
            &expected,
        )?;
    }
    Ok(target)
}

/// Refuses a store `dst` (at `dest`, for messages) that is more than an interrupted clone
/// of `expected`: refs a clone does not write, or a log changed since it was copied.
pub fn check_resumable(dst: &dyn Backend, dest: &str, expected: &str) -> Result<()> {
    let in_use = |why: String| {
        Error::Invalid(format!(
            "{dest}: a clone of {expected} that {why}, so not an interrupted clone; `remotelog --store {dest} pull` updates it"
        ))
    };
    let tracking = format!("{REMOTES}/{ORIGIN}/");
    for r in dst.list_refs("")? {
        if r == packs_ref() || r.as_str().starts_with(&tracking) {
            continue;
        }
        let Some(log) = r.log_name() else {
            return Err(in_use(format!("has a ref a clone does not write ({r})")));
        };
        // A log without a tracking ref is one whose pull was cut between its two ref
        // updates; one whose tracking ref differs has moved since it was copied.
        let seen = dst.read_ref(&remote::tracking_ref(ORIGIN, log)?)?;
        if seen.is_some() && seen != dst.read_ref(&r)? {
            return Err(in_use(format!("has changed log {log} since it was copied")));
        }
    }
    Ok(())
}

/// Pulls each of `logs` from `src` into `dst` (whose remote `origin` is `src`), each on
/// its own: returns the logs copied and those that could not be, with why.
pub fn pull_each(
    dst: &dyn Backend,
    src: &dyn Backend,
    logs: Vec<String>,
    progress: &dyn Progress,
) -> (Vec<LogTransfer>, Vec<(String, Error)>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for log in logs {
        match pull(dst, ORIGIN, src, &log, progress) {
            Ok(t) => done.push(t),
            Err(e) => {
                progress.finish();
                failed.push((log, e));
            }
        }
    }
    (done, failed)
}
