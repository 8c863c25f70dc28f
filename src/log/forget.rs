//! `forget`: removes messages from a log by rewriting the pages from the head down to the
//! oldest page that held one of them, then moving the ref by compare-and-swap. The objects
//! stay in the store until `gc` finds them unreferenced (other logs may still hold them).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::log::pages;
use crate::model::name::RefName;
use crate::model::object::{Entry, Object, Page};
use crate::store::Backend;

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

/// Removes from log `log` every message that one of `ids` (H1 or H2, or a unique prefix of
/// at least 8 hex digits) names.
pub fn forget(b: &dyn Backend, log: &str, ids: &[String]) -> Result<Forgotten> {
    let refname = RefName::log(log)?;
    // The unchanged older pages that the rewritten ones point at must stay until the ref
    // names them again.
    let _lease = b.write_lease()?;
    let head = b.read_ref(&refname)?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no log {log:?}; `remotelog logs` lists them"
        ))
    })?;
    let mut chain: Vec<(Id, Page)> = Vec::new();
    for item in pages(b, Some(head)) {
        chain.push(item?);
    }
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
    let Some(last) = chain
        .iter()
        .rposition(|(_, p)| p.entries.iter().any(|e| targets.contains(&e.h2)))
    else {
        return Err(Error::Invalid("nothing to forget".into()));
    };
    let oldest = &chain[last].1;
    let mut prev = oldest.prev;
    let mut count = oldest.count - oldest.entries.len() as u64;
    let mut removed = Vec::new();
    let mut new_pages: Vec<(Id, Vec<u8>)> = Vec::new();
    for (_, page) in chain[..=last].iter().rev() {
        let mut entries = Vec::with_capacity(page.entries.len());
        for e in &page.entries {
            if targets.contains(&e.h2) {
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
    b.update_ref(&refname, Some(head).into(), new_head)?;
    removed.reverse();
    Ok(Forgotten {
        log: log.to_string(),
        removed,
        pages_written: new_pages.len(),
        remaining: count,
    })
}
