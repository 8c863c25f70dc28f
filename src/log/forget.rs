//! `forget`: removes messages from a log by rewriting the pages from the head down to the
//! oldest page that held one of them, then moving the ref by compare-and-swap. The objects
//! stay in the store until `gc` finds them unreferenced (other logs may still hold them).
//! [`retain`] does the same for a retention policy (`--older-than`, `--keep-last`).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::log::pages;
use crate::model::name::RefName;
use crate::model::object::{Entry, Object, Page};
use crate::store::{Backend, WriteLease};

/// What `forget` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Forgotten {
    /// The log.
    pub log: String,
    /// (H1, H2) of every entry removed.
    pub removed: Vec<(String, String)>,
    /// Pages written in place of the old ones.
    pub pages_written: usize,
    /// Entries left in the log.
    pub remaining: u64,
}

fn matches(id: &str, e: &Entry) -> bool {
    e.h1.to_hex().starts_with(id) || e.h2.to_hex().starts_with(id)
}

/// Log `log` under the write lease, for a rewrite: its ref, the lease, its head and its
/// pages, newest first. The unchanged older pages that the rewritten ones point at must
/// stay until the ref names them again, hence the lease.
fn locked_chain(b: &dyn Backend, log: &str) -> Result<Locked> {
    let refname = RefName::log(log)?;
    let lease = b.write_lease()?;
    let head = b.read_ref(&refname)?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no log {log:?}; `remotelog logs` lists them"
        ))
    })?;
    let chain = pages(b, Some(head)).collect::<Result<Vec<_>>>()?;
    Ok((refname, lease, head, chain))
}

/// What [`locked_chain`] gives: the ref, the lease (held until the rewrite is done), the
/// head and the pages.
type Locked = (RefName, WriteLease, Id, Vec<(Id, Page)>);

/// Removes from log `log` every message that one of `ids` (H1 or H2, or a unique prefix of
/// at least 8 hex digits) names.
pub fn forget(b: &dyn Backend, log: &str, ids: &[String]) -> Result<Forgotten> {
    let (refname, _lease, head, chain) = locked_chain(b, log)?;
    let wanted: Vec<String> = ids.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut targets: HashSet<Id> = HashSet::new();
    for id in &wanted {
        if id.len() < 8 || id.len() > 64 || !crate::id::is_lower_hex(id) {
            return Err(Error::Invalid(format!(
                "{id:?} is not an id: give 8 to 64 hex digits of an H1 or H2"
            )));
        }
        let hits: HashSet<Id> = chain
            .iter()
            .flat_map(|(_, p)| p.entries.iter())
            .filter(|e| matches(id, e))
            .map(|e| e.h2)
            .collect();
        match hits.len() {
            0 => {
                return Err(Error::Invalid(format!(
                    "no message of log {log} matches {id:?}; `remotelog log --log {log}` lists them"
                )))
            }
            1 => targets.extend(hits),
            n => {
                return Err(Error::Ambiguous {
                    prefix: id.clone(),
                    count: n,
                })
            }
        }
    }
    let drop: Vec<Vec<bool>> = chain
        .iter()
        .map(|(_, p)| p.entries.iter().map(|e| targets.contains(&e.h2)).collect())
        .collect();
    if !drop.iter().flatten().any(|d| *d) {
        return Err(Error::Invalid("nothing to forget".into()));
    }
    rewrite_without(b, log, &refname, head, &chain, &drop)
}

/// A retention policy for a log (`forget --older-than`, `--keep-last`): an entry is
/// removed when every given rule lets it go, so each rule keeps what it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the messages whose timestamp is at or after this (unix seconds).
    pub keep_since: Option<i64>,
    /// Keep the newest this many entries.
    pub keep_last: Option<u64>,
}

/// Removes from log `log` every entry that `policy` does not keep (reading each message's
/// timestamp when the policy has `keep_since`). Nothing to remove is not an error: the
/// result says so, and the log is left as it is. A policy without any rule is refused.
pub fn retain(b: &dyn Backend, log: &str, policy: Retention) -> Result<Forgotten> {
    if policy == Retention::default() {
        return Err(Error::Invalid(
            "a retention policy needs --older-than AGE or --keep-last N".into(),
        ));
    }
    let (refname, _lease, head, chain) = locked_chain(b, log)?;
    let total = chain.first().map_or(0, |(_, p)| p.count);
    let mut drop: Vec<Vec<bool>> = Vec::with_capacity(chain.len());
    for (_, page) in &chain {
        let mut marks = Vec::with_capacity(page.entries.len());
        for (i, e) in page.entries.iter().enumerate() {
            // Position from the oldest (0); entries are newest first within a page.
            let pos = page.count - 1 - i as u64;
            let kept_by_count = policy.keep_last.is_some_and(|n| total - pos <= n);
            let kept_by_age = match policy.keep_since {
                None => false,
                Some(since) if !kept_by_count => crate::log::read_message(b, e)?.timestamp >= since,
                Some(_) => true,
            };
            marks.push(!(kept_by_count || kept_by_age));
        }
        drop.push(marks);
    }
    if !drop.iter().flatten().any(|d| *d) {
        return Ok(Forgotten {
            log: log.to_string(),
            removed: Vec::new(),
            pages_written: 0,
            remaining: total,
        });
    }
    rewrite_without(b, log, &refname, head, &chain, &drop)
}

/// Writes the pages of `chain` (newest first, the log at `head`) without the entries that
/// `drop` marks (per page, per entry), from the oldest page with one down, and moves the
/// ref from `head` to the new head.
fn rewrite_without(
    b: &dyn Backend,
    log: &str,
    refname: &RefName,
    head: Id,
    chain: &[(Id, Page)],
    drop: &[Vec<bool>],
) -> Result<Forgotten> {
    let Some(last) = drop.iter().rposition(|marks| marks.iter().any(|d| *d)) else {
        return Err(Error::Invalid("nothing to forget".into()));
    };
    let oldest = &chain[last].1;
    let mut prev = oldest.prev;
    let mut count = oldest.count - oldest.entries.len() as u64;
    let mut removed = Vec::new();
    let mut new_pages: Vec<(Id, Vec<u8>)> = Vec::new();
    for ((_, page), marks) in chain[..=last].iter().zip(drop).rev() {
        let mut entries = Vec::with_capacity(page.entries.len());
        for (e, gone) in page.entries.iter().zip(marks) {
            if *gone {
                removed.push((e.h1.to_hex(), e.h2.to_hex()));
            } else {
                entries.push(e.clone());
            }
        }
        if entries.is_empty() {
            continue;
        }
        count += entries.len() as u64;
        let bytes = Object::Page(Page {
            prev,
            count,
            capacity: page.capacity,
            embed: page.embed,
            entries,
        })
        .encode();
        let id = Id::of(&bytes);
        prev = Some(id);
        new_pages.push((id, bytes));
    }
    // The chain above `prev` is the old one's untouched remainder when no page was written.
    let new_head = prev;
    let mut batch = b.batch()?;
    for (id, bytes) in &new_pages {
        batch.add(*id, bytes)?;
    }
    batch.commit()?;
    b.update_ref(refname, Some(head).into(), new_head)?;
    removed.reverse();
    Ok(Forgotten {
        log: log.to_string(),
        removed,
        pages_written: new_pages.len(),
        remaining: count,
    })
}
