//! `check`: verifies that every log of a backend is complete and sound, and with
//! `read_data` that every stored object is intact. Problems are collected, not returned as
//! errors, so one run names all of them.
//!
//! The log walk reads pages and only asks whether messages exist; `read_data` then reads
//! every stored object exactly once, in the backend's cheapest order (packs block by
//! block), and checks each against what the logs expect of it (kind, H1).

use std::collections::HashSet;

use crate::id::Id;
use crate::log::{pages, read_message};
use crate::model::name::LOGS;
use crate::model::object::Object;
use crate::progress::{Progress, Silent};
use crate::store::Backend;

/// What `check` found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Logs examined.
    pub logs: usize,
    /// Entries in all logs.
    pub entries: u64,
    /// Distinct pages reachable from the logs.
    pub pages: usize,
    /// Distinct messages referenced by the logs.
    pub messages: usize,
    /// Objects decompressed and hashed (with `read_data`).
    pub objects_read: usize,
    /// Uncompressed bytes of those objects.
    pub bytes_read: u64,
    /// Stored objects no log references (replaced pages, forgotten messages).
    pub unreferenced: usize,
    /// Their uncompressed size.
    pub unreferenced_bytes: u64,
    /// One line per problem, naming the log, page, object or file.
    pub problems: Vec<String>,
    /// Harmless findings.
    pub notes: Vec<String>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every log of `b`; with `read_data`, also reads and hashes every stored object.
pub fn check(b: &dyn Backend, read_data: bool) -> Report {
    check_with_progress(b, read_data, &Silent)
}

/// [`check`], telling `progress` of its phases: the walk of the logs (in entries), then
/// with `read_data` the reading of the objects (in objects, with their bytes).
pub fn check_with_progress(b: &dyn Backend, read_data: bool, progress: &dyn Progress) -> Report {
    let r = check_phases(b, read_data, progress);
    progress.finish();
    r
}

fn check_phases(b: &dyn Backend, read_data: bool, progress: &dyn Progress) -> Report {
    let mut r = Report::default();
    let mut seen_pages: HashSet<Id> = HashSet::new();
    // Every referenced message with the H1 its page gives it and where: (H2, H1, page
    // number in `page_list`, entry). A sorted vector rather than a map, and the text of a
    // place only made for a problem: a store holds millions of messages.
    let mut claims: Vec<(Id, Id, u32, u32)> = Vec::new();
    // The pages walked, with their log's number in `log_names`.
    let mut page_list: Vec<(Id, u32)> = Vec::new();
    let mut log_names: Vec<String> = Vec::new();
    let place = |log: &str, page: &Id, i: usize, h1: &Id| -> String {
        format!("log {log}: page {page} entry {i} (H1 {h1})")
    };

    match b.layout() {
        Ok(layout) => {
            r.problems.extend(layout.problems);
            r.notes.extend(layout.notes);
        }
        Err(e) => r.problems.push(e.to_string()),
    }
    // Entries that cannot be read as refs are problems (the layout may have named them
    // already); the refs that can are checked all the same.
    let refs = match b.list_refs_lenient(LOGS) {
        Ok((refs, damaged)) => {
            r.problems.extend(damaged);
            refs
        }
        Err(e) => {
            r.problems.push(e.to_string());
            Vec::new()
        }
    };
    // The entries to walk, from each head page's count (logs sharing history walk it
    // once, so the walk may end short of this).
    let total: u64 = refs
        .iter()
        .filter_map(|name| b.read_ref(name).ok().flatten())
        .filter_map(|head| crate::log::read_page(b, &head).ok())
        .map(|page| page.count)
        .fold(0, u64::saturating_add);
    progress.phase("walking the logs", Some(total));
    for refname in refs {
        let log = refname.log_name().unwrap_or(refname.as_str()).to_string();
        let head = match b.read_ref(&refname) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                r.problems.push(format!("log {log}: {e}"));
                continue;
            }
        };
        r.logs += 1;
        log_names.push(log.clone());
        let log_no = (log_names.len() - 1) as u32;
        let mut first = true;
        for item in pages(b, Some(head)) {
            let (id, page) = match item {
                Ok(x) => x,
                Err(e) => {
                    r.problems.push(format!("log {log}: {e}"));
                    break;
                }
            };
            if first {
                r.entries += page.count;
                first = false;
            }
            if !seen_pages.insert(id) {
                // Shared history already checked through another log.
                break;
            }
            if page.capacity > 0 && page.entries.len() as u64 > page.capacity {
                r.problems.push(format!(
                    "log {log}: page {id} holds {} entries, more than its capacity {}",
                    page.entries.len(),
                    page.capacity
                ));
            }
            // One presence query per page: a request on HTTP, one pass over each index
            // on a directory.
            let fresh: Vec<Id> = page.entries.iter().map(|e| e.h2).collect();
            let page_no = page_list.len() as u32;
            page_list.push((id, log_no));
            let present = match b.present_objects(&fresh) {
                Ok(p) => p,
                Err(e) => {
                    r.problems.push(format!("log {log}: page {id}: {e}"));
                    fresh.iter().copied().collect()
                }
            };
            for (i, entry) in page.entries.iter().enumerate() {
                let at = || place(&log, &id, i, &entry.h1);
                if entry.embedded.is_some() {
                    if let Err(e) = read_message(b, entry) {
                        r.problems.push(format!("{}: embedded copy: {e}", at()));
                    }
                }
                if !present.contains(&entry.h2) {
                    r.problems.push(format!(
                        "{}: message object {} is missing ({})",
                        at(),
                        entry.h2,
                        b.object_location(&entry.h2)
                    ));
                }
                claims.push((entry.h2, entry.h1, page_no, i as u32));
            }
            progress.advance(page.entries.len() as u64);
        }
    }
    // Names written through the Twirp NS point at opaque content, which must exist.
    let mut named: HashSet<Id> = HashSet::new();
    match b.list_refs_lenient(crate::model::name::SPEC) {
        Ok((refs, damaged)) => {
            r.problems.extend(damaged);
            for refname in refs {
                match b.read_ref(&refname) {
                    Ok(Some(id)) => {
                        match b.has_object(&id) {
                            Ok(true) => {}
                            Ok(false) => r.problems.push(format!(
                                "ref {refname}: names object {id}, which is missing ({})",
                                b.object_location(&id)
                            )),
                            Err(e) => r.problems.push(format!("ref {refname}: {e}")),
                        }
                        named.insert(id);
                        // A spec-form log: its pages and payloads must be there and agree.
                        let chain = crate::spec::stored_chain(b, id, read_data);
                        named.extend(chain.present);
                        for p in chain.problems {
                            r.problems.push(format!("ref {refname}: {p}"));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => r.problems.push(format!("ref {refname}: {e}")),
                }
            }
        }
        Err(e) => r.problems.push(e.to_string()),
    }
    // What `import-spec` last imported into each log: a small record object.
    let imports = match b.list_refs_lenient(crate::model::name::IMPORTS) {
        Ok((refs, damaged)) => {
            r.problems.extend(damaged);
            refs
        }
        Err(e) => {
            r.problems.push(e.to_string());
            Vec::new()
        }
    };
    for refname in imports {
        if let Ok(Some(id)) = b.read_ref(&refname) {
            if !matches!(b.has_object(&id), Ok(true)) {
                r.problems.push(format!(
                    "ref {refname}: names import record {id}, which is missing; remove the ref (the next import-spec then reads the whole source log)"
                ));
            }
            named.insert(id);
        }
    }
    r.pages = seen_pages.len();
    // A message listed twice is checked against its first listing.
    claims.sort_by_key(|c| c.0);
    claims.dedup_by_key(|c| c.0);
    claims.shrink_to_fit();
    r.messages = claims.len();
    if read_data {
        // What the logs reference; unreferenced objects come on top.
        let expected = (claims.len() + seen_pages.len() + named.len()) as u64;
        progress.phase("reading objects", Some(expected));
        let mut opaque = 0usize;
        let mut scan = |id: Id, got: crate::Result<Vec<u8>>| {
            progress.advance(1);
            let bytes = match got {
                Ok(b) => b,
                Err(e) => {
                    r.problems.push(e.to_string());
                    return;
                }
            };
            progress.bytes(bytes.len() as u64);
            r.objects_read += 1;
            r.bytes_read += bytes.len() as u64;
            let decoded = Object::decode(&bytes);
            let claim = claims
                .binary_search_by_key(&id, |c| c.0)
                .ok()
                .map(|k| claims[k]);
            if let Some((_, h1, page_no, i)) = claim {
                let (page, log_no) = page_list[page_no as usize];
                let log = log_names.get(log_no as usize).map_or("?", |s| s.as_str());
                let at = || place(log, &page, i as usize, &h1);
                match decoded {
                    Ok(Object::Message(m)) if m.h1() == h1 => {}
                    Ok(Object::Message(m)) => r.problems.push(format!(
                        "{}: object {id} is a message whose H1 is {}",
                        at(),
                        m.h1()
                    )),
                    Ok(other) => r.problems.push(format!(
                        "{}: object {id} is a {}, expected a message",
                        at(),
                        other.kind().name()
                    )),
                    Err(reason) => r.problems.push(format!("{}: object {id}: {reason}", at())),
                }
            } else if seen_pages.contains(&id) || named.contains(&id) {
                // Decoded as a page during the walk, or opaque content a spec name holds.
            } else {
                r.unreferenced += 1;
                r.unreferenced_bytes += bytes.len() as u64;
                if decoded.is_err() {
                    // Opaque bytes added through the CAS API (format/http-api.md, "Opaque
                    // blobs"): their hash was checked on read; no log says what they hold.
                    opaque += 1;
                }
            }
        };
        if let Err(e) = b.scan_objects(&mut scan) {
            r.problems.push(e.to_string());
        }
        if opaque > 0 {
            r.notes.push(format!(
                "{opaque} unreferenced object(s) are opaque blobs, not typed objects (added through POST /cas or Twirp CAS/Add); their hashes were verified"
            ));
        }
        if r.unreferenced > 0 {
            r.notes.push(format!(
                "{} stored object(s), {}, are not referenced by any log (pages replaced by later appends, forgotten messages, or objects of an interrupted write); `remotelog gc` deletes them",
                r.unreferenced,
                crate::human::size(r.unreferenced_bytes)
            ));
        }
    }
    // The same damage can be found twice (by the layout and by a listing, or by the layout
    // and by reading the data): each problem is named once.
    let mut named_once = HashSet::new();
    r.problems.retain(|p| named_once.insert(p.clone()));
    r
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::log::{append, SettingsChange};
    use crate::progress::Recording;
    use crate::store::config::Config;
    use crate::{FsStore, Message};

    /// `check --read-data` reports its walk in entries and its reading in objects and bytes.
    #[test]
    fn check_reports_entries_walked_and_bytes_read() {
        let t = tempfile::tempdir().unwrap();
        let store = FsStore::init(&t.path().join("s"), Config::default()).unwrap();
        let messages: Vec<Message> = (0..500)
            .map(|i| Message {
                group_id: b"g".to_vec(),
                timestamp: i,
                body: vec![b'x'; 100 + i as usize],
            })
            .collect();
        append(&store, "a", &messages[..300], SettingsChange::default()).unwrap();
        append(&store, "b", &messages[300..], SettingsChange::default()).unwrap();
        let rec = Recording::default();
        let report = check_with_progress(&store, true, &rec);
        assert!(report.is_sound(), "{:?}", report.problems);
        assert_eq!(
            rec.phases.lock().unwrap().as_slice(),
            &[
                ("walking the logs".to_string(), Some(500)),
                (
                    "reading objects".to_string(),
                    Some((report.messages + report.pages) as u64)
                ),
            ]
        );
        assert_eq!(
            rec.units.load(Ordering::Relaxed),
            500 + report.objects_read as u64
        );
        assert!(report.bytes_read > 500 * 100);
        assert_eq!(rec.bytes.load(Ordering::Relaxed), report.bytes_read);
        assert!(rec.finished.load(Ordering::Relaxed));
    }
}
