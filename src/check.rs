//! `check`: verifies that every log of a backend is complete and sound, and with
//! `read_data` that every stored object is intact.

use std::collections::{HashMap, HashSet};

use crate::backend::Backend;
use crate::id::Id;
use crate::log::{pages, read_message};
use crate::name::LOGS;
use crate::object::Object;

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
    /// Stored objects no log references (old heads; `gc` removes them).
    pub unreferenced: usize,
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
/// Problems are collected, not returned as errors, so one run names all of them.
pub fn check(b: &dyn Backend, read_data: bool) -> Report {
    let mut r = Report::default();
    let mut seen_pages: HashSet<Id> = HashSet::new();
    // h2 -> whether it was verified sound (read) or only found present
    let mut messages: HashMap<Id, bool> = HashMap::new();

    match b.layout() {
        Ok(layout) => {
            r.problems.extend(layout.problems);
            r.notes.extend(layout.notes);
        }
        Err(e) => r.problems.push(e.to_string()),
    }
    let refs = match b.list_refs(LOGS) {
        Ok(refs) => refs,
        Err(e) => {
            r.problems.push(e.to_string());
            Vec::new()
        }
    };
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
            for (i, entry) in page.entries.iter().enumerate() {
                let at = || format!("log {log}: page {id} entry {i} (H1 {})", entry.h1);
                if entry.embedded.is_some() {
                    if let Err(e) = read_message(b, entry) {
                        r.problems.push(format!("{}: embedded copy: {e}", at()));
                    }
                }
                let known = messages.get(&entry.h2).copied();
                if known == Some(true) || (known == Some(false) && !read_data) {
                    continue;
                }
                let stored = crate::object::Entry {
                    embedded: None,
                    ..entry.clone()
                };
                let outcome = if read_data {
                    read_message(b, &stored).map(|_| true)
                } else {
                    match b.has_object(&entry.h2) {
                        Ok(true) => Ok(false),
                        Ok(false) => Err(crate::error::Error::ObjectMissing {
                            id: entry.h2,
                            location: b.object_location(&entry.h2),
                        }),
                        Err(e) => Err(e),
                    }
                };
                match outcome {
                    Ok(verified) => {
                        messages.insert(entry.h2, verified);
                    }
                    Err(e) => {
                        r.problems.push(format!("{}: {e}", at()));
                        // Report a shared broken message once.
                        messages.insert(entry.h2, true);
                    }
                }
            }
        }
    }
    r.pages = seen_pages.len();
    r.messages = messages.len();
    if read_data {
        match b.list_objects() {
            Ok(ids) => {
                for id in ids {
                    let referenced = seen_pages.contains(&id) || messages.contains_key(&id);
                    if !referenced {
                        r.unreferenced += 1;
                    }
                    if messages.get(&id) == Some(&true) {
                        continue;
                    }
                    r.objects_read += 1;
                    match b.get_object(&id) {
                        Ok(bytes) => {
                            if let Err(reason) = Object::decode(&bytes) {
                                r.problems.push(format!(
                                    "object {id} ({}): {reason}",
                                    b.object_location(&id)
                                ));
                            }
                        }
                        Err(e) => r.problems.push(e.to_string()),
                    }
                }
                r.objects_read += messages.values().filter(|v| **v).count();
            }
            Err(e) => r.problems.push(e.to_string()),
        }
        if r.unreferenced > 0 {
            r.notes.push(format!(
                "{} stored object(s) are not referenced by any log (pages replaced by later appends, or objects of an interrupted write); they are harmless",
                r.unreferenced
            ));
        }
    }
    r
}
