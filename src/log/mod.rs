//! Named logs: appending messages in mapping pages, walking a log, finding a message
//! (format/store-v1.md, section 4). Works on any [`Backend`].

pub mod forget;

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::name::{RefName, LOGS};
use crate::model::object::{decode_message, decode_page, Entry, Message, Object, Page};
use crate::store::{verify_id, Backend};

/// Log name used when none is given.
pub const DEFAULT_LOG: &str = "main";
/// Page capacity used when neither the caller nor the head page says otherwise; see
/// format/store-v1.md, section 4.2 for why.
pub const DEFAULT_CAPACITY: u64 = 256;
/// How often an append rebuilds its pages when another writer moved the head meanwhile.
const APPEND_ATTEMPTS: usize = 16;

/// A log's page settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Most entries per page; 1 = linked list, 0 = unbounded.
    pub capacity: u64,
    /// Embed the message objects of the newest `embed` entries.
    pub embed: u64,
}

impl Settings {
    /// The page size as people read it: `unbounded` for 0, else the number.
    pub fn page_size_text(&self) -> String {
        if self.capacity == 0 {
            "unbounded".into()
        } else {
            self.capacity.to_string()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            capacity: DEFAULT_CAPACITY,
            embed: 0,
        }
    }
}

/// Settings an append may change; `None` keeps the head page's (or the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// New page capacity.
    pub capacity: Option<u64>,
    /// New embed count.
    pub embed: Option<u64>,
}

impl SettingsChange {
    fn apply(&self, base: Settings) -> Settings {
        Settings {
            capacity: self.capacity.unwrap_or(base.capacity),
            embed: self.embed.unwrap_or(base.embed),
        }
    }
}

impl Page {
    /// The settings this page was written with.
    pub fn settings(&self) -> Settings {
        Settings {
            capacity: self.capacity,
            embed: self.embed,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// (H1, H2) of each appended message, in the order given.
    pub ids: Vec<(Id, Id)>,
    /// The log's new head page.
    pub head: Id,
    /// The log's length after the append.
    pub count: u64,
    /// Objects newly written (messages and pages).
    pub objects_written: usize,
}

/// Appends `messages` (oldest first) to log `log` as one atomic step.
pub fn append(
    b: &dyn Backend,
    log: &str,
    messages: &[Message],
    change: SettingsChange,
) -> Result<Appended> {
    append_iter(
        b,
        log,
        messages.iter().map(|m| Ok(Cow::Borrowed(m))),
        change,
    )
}

/// Appends messages as they come (oldest first), so reading, hashing and compressing
/// overlap and the bodies are not all held in memory. An error from the iterator aborts
/// the append with nothing visible.
pub fn append_iter<'m, I>(
    b: &dyn Backend,
    log: &str,
    messages: I,
    change: SettingsChange,
) -> Result<Appended>
where
    I: IntoIterator<Item = Result<Cow<'m, Message>>>,
{
    let refname = RefName::log(log)?;
    let _lease = b.write_lease()?;
    // The head read now tells how many of the newest encodings the pages may embed.
    let first_head = b.read_ref(&refname)?;
    let first_settings = match first_head {
        Some(id) => change.apply(read_page(b, &id)?.settings()),
        None => change.apply(Settings::default()),
    };
    // Messages and pages go into one batch (one pack for a bulk append); a retry after a
    // concurrent writer only needs new pages.
    let mut first = b.batch()?;
    let mut ids: Vec<(Id, Id)> = Vec::new();
    let mut recent: std::collections::VecDeque<(Id, Vec<u8>)> = Default::default();
    for m in messages {
        let m = m?;
        let bytes = crate::model::object::encode_message(&m);
        let h2 = Id::of(&bytes);
        first.add(h2, &bytes)?;
        ids.push((m.h1(), h2));
        if first_settings.embed > 0 {
            if recent.len() as u64 == first_settings.embed {
                recent.pop_front();
            }
            recent.push_back((h2, bytes));
        }
    }
    if ids.is_empty() {
        return Err(Error::Invalid("no messages to append".into()));
    }
    let fresh: HashMap<Id, &[u8]> = recent.iter().map(|(id, b)| (*id, &b[..])).collect();
    let mut pending = Some(first);
    let mut written = 0;

    let mut last_conflict = None;
    for _ in 0..APPEND_ATTEMPTS {
        let expected = b.read_ref(&refname)?;
        let head = match expected {
            Some(id) => Some((id, read_page(b, &id)?)),
            None => None,
        };
        let base = head
            .as_ref()
            .map_or_else(Settings::default, |(_, p)| p.settings());
        let settings = change.apply(base);
        let mut batch = match pending.take() {
            Some(batch) => batch,
            None => b.batch()?,
        };
        // Pages go into the batch as they are built, oldest first, after the messages.
        let mut last = None;
        build_pages(
            b,
            head.as_ref(),
            &ids,
            settings,
            &fresh,
            &mut |id, bytes| {
                last = Some(id);
                batch.add(id, &bytes)
            },
        )?;
        written += batch.commit()?;
        let new_head = last.ok_or_else(|| Error::Invalid("no page built".into()))?;
        let count = head.as_ref().map_or(0, |(_, p)| p.count) + ids.len() as u64;
        match b.update_ref(&refname, expected.into(), Some(new_head)) {
            Ok(()) => {
                return Ok(Appended {
                    ids,
                    head: new_head,
                    count,
                    objects_written: written,
                })
            }
            Err(e @ Error::RefConflict { .. }) => last_conflict = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_conflict.unwrap_or_else(|| Error::Invalid("append did not finish".into())))
}

/// Builds the pages of an append and hands each to `emit` as (id, encoded bytes), oldest
/// first, as soon as it is complete, so they are never all in memory.
fn build_pages(
    b: &dyn Backend,
    head: Option<&(Id, Page)>,
    new: &[(Id, Id)],
    s: Settings,
    fresh: &HashMap<Id, &[u8]>,
    emit: &mut dyn FnMut(Id, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let cap = s.capacity as usize;
    // `cur` holds (position in the log counted from the oldest, entry), oldest first.
    let (mut cur, mut prev, mut before): (Vec<(u64, Entry)>, Option<Id>, u64) = match head {
        Some((_, p)) if cap == 0 || p.entries.len() < cap => {
            let base = p.count - p.entries.len() as u64;
            let carried = p
                .entries
                .iter()
                .rev()
                .enumerate()
                .map(|(i, e)| (base + i as u64, e.clone()))
                .collect();
            (carried, p.prev, base)
        }
        Some((id, p)) => (Vec::new(), Some(*id), p.count),
        None => (Vec::new(), None, 0),
    };
    let total = before + cur.len() as u64 + new.len() as u64;
    let embed_from = total.saturating_sub(s.embed);
    let mut next_pos = before + cur.len() as u64;
    let flush = |cur: &[(u64, Entry)], prev: Option<Id>, before: u64| -> Result<(Id, Vec<u8>)> {
        let mut entries = Vec::with_capacity(cur.len());
        for (pos, e) in cur.iter().rev() {
            let embedded = if *pos >= embed_from {
                match (&e.embedded, fresh.get(&e.h2)) {
                    (Some(bytes), _) => Some(bytes.clone()),
                    (None, Some(bytes)) => Some(bytes.to_vec()),
                    (None, None) => Some(b.get_object(&e.h2)?),
                }
            } else {
                None
            };
            entries.push(Entry {
                h1: e.h1,
                h2: e.h2,
                embedded,
            });
        }
        let page = Object::Page(Page {
            prev,
            count: before + cur.len() as u64,
            capacity: s.capacity,
            embed: s.embed,
            entries,
        });
        let bytes = page.encode();
        Ok((Id::of(&bytes), bytes))
    };
    for (h1, h2) in new {
        if cap != 0 && cur.len() == cap {
            let (id, bytes) = flush(&cur, prev, before)?;
            before += cur.len() as u64;
            prev = Some(id);
            emit(id, bytes)?;
            cur.clear();
        }
        cur.push((
            next_pos,
            Entry {
                h1: *h1,
                h2: *h2,
                embedded: None,
            },
        ));
        next_pos += 1;
    }
    let (id, bytes) = flush(&cur, prev, before)?;
    emit(id, bytes)
}

/// Reads and decodes page `id`.
pub fn read_page(b: &dyn Backend, id: &Id) -> Result<Page> {
    let bytes = b.get_object(id)?;
    decode_page(&bytes).map_err(|e| Error::ObjectCorrupt {
        id: *id,
        location: b.object_location(id),
        reason: e.to_string(),
    })
}

/// Reads the message of an entry (from its embedded copy when there is one) and checks
/// both of its hashes.
pub fn read_message(b: &dyn Backend, entry: &Entry) -> Result<Message> {
    let bytes = match &entry.embedded {
        Some(bytes) => {
            verify_id(&entry.h2, bytes, || {
                format!("embedded copy of {}", entry.h2)
            })?;
            bytes.clone()
        }
        None => b.get_object(&entry.h2)?,
    };
    let corrupt = |reason: String| Error::ObjectCorrupt {
        id: entry.h2,
        location: b.object_location(&entry.h2),
        reason,
    };
    let m = decode_message(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if m.h1() != entry.h1 {
        return Err(corrupt(format!(
            "its H1 is {}, the page says {}",
            m.h1(),
            entry.h1
        )));
    }
    Ok(m)
}

/// Walks a log's pages from `head` to the oldest, checking that counts chain.
pub struct Pages<'a> {
    b: &'a dyn Backend,
    next: Option<Id>,
    expect_count: Option<u64>,
}

/// The pages of the chain starting at `head`, newest first.
pub fn pages(b: &dyn Backend, head: Option<Id>) -> Pages<'_> {
    Pages {
        b,
        next: head,
        expect_count: None,
    }
}

impl Iterator for Pages<'_> {
    type Item = Result<(Id, Page)>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.next.take()?;
        let page = match read_page(self.b, &id) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if let Some(want) = self.expect_count {
            if page.count != want {
                return Some(Err(Error::ObjectCorrupt {
                    id,
                    location: self.b.object_location(&id),
                    reason: format!(
                        "page count is {}, but the next newer page says {want} entries remain",
                        page.count
                    ),
                }));
            }
        }
        let rest = page.count - page.entries.len() as u64;
        match page.prev {
            Some(prev) if rest > 0 => {
                self.next = Some(prev);
                self.expect_count = Some(rest);
            }
            None if rest == 0 => {}
            _ => {
                return Some(Err(Error::ObjectCorrupt {
                    id,
                    location: self.b.object_location(&id),
                    reason: format!(
                        "page count {} does not fit its {} entries and {} previous page",
                        page.count,
                        page.entries.len(),
                        if page.prev.is_some() { "a" } else { "no" }
                    ),
                }))
            }
        }
        Some(Ok((id, page)))
    }
}

/// Ids asked about in one presence query while checking a chain: one request on HTTP,
/// one sorted pass over each pack index on a directory.
const COMPLETE_BATCH: usize = 4096;

/// Checks that the chain from `new_head` is complete in `b` before ref `name` is moved
/// there from `old_head` (its current value): every page exists and decodes, counts
/// chain, and every message a page lists is present. Everything a ref already names is
/// complete, so the walk stops at `old_head`, or at its `prev` when an append replaced
/// the open head page (format/store-v1.md 4.3). The counts bound the walk: each page's
/// count is the next one's plus its entries, so a chain cannot loop.
///
/// The first object missing, in walk order, is [`Error::IncompleteChain`] naming what it
/// is; a page that does not decode or whose count does not chain is
/// [`Error::ObjectCorrupt`].
pub fn check_complete(
    b: &dyn Backend,
    name: &RefName,
    new_head: Id,
    old_head: Option<Id>,
) -> Result<()> {
    let stops = match old_head {
        Some(old) => [Some(old), read_page(b, &old)?.prev],
        None => [None, None],
    };
    if stops.contains(&Some(new_head)) {
        return Ok(());
    }
    let incomplete = |missing: Id, what: String| Error::IncompleteChain {
        name: name.to_string(),
        missing,
        what,
        location: b.location(),
    };
    // (message, page listing it), in walk order, not yet asked about.
    let mut pending: Vec<(Id, Id)> = Vec::new();
    let flush = |pending: &mut Vec<(Id, Id)>| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<Id> = pending.iter().map(|p| p.0).collect();
        let present = b.present_objects(&ids)?;
        if let Some((m, page)) = pending.iter().find(|p| !present.contains(&p.0)) {
            return Err(incomplete(*m, format!("message (listed by page {page})")));
        }
        pending.clear();
        Ok(())
    };
    let mut newer: Option<Id> = None;
    for item in pages(b, Some(new_head)) {
        let (id, page) = match item {
            Ok(x) => x,
            Err(Error::ObjectMissing { id, .. }) => {
                // Messages of newer pages come first in walk order.
                flush(&mut pending)?;
                let what = match newer {
                    None => "page (the new head)".to_string(),
                    Some(n) => format!("page (the prev of page {n})"),
                };
                return Err(incomplete(id, what));
            }
            Err(e) => return Err(e),
        };
        pending.extend(page.entries.iter().map(|e| (e.h2, id)));
        if pending.len() >= COMPLETE_BATCH {
            flush(&mut pending)?;
        }
        if stops.contains(&page.prev) {
            break;
        }
        newer = Some(id);
    }
    flush(&mut pending)
}

/// The head of log `log`, if it has entries.
pub fn head(b: &dyn Backend, log: &str) -> Result<Option<Id>> {
    b.read_ref(&RefName::log(log)?)
}

/// The head of log `log`, or an error naming the store when it has no such log.
pub fn existing_head(b: &dyn Backend, log: &str) -> Result<Id> {
    head(b, log)?.ok_or_else(|| {
        Error::Invalid(format!(
            "no log named {log:?} in {}; `remotelog logs` lists them",
            b.location()
        ))
    })
}

/// Every entry of log `log`, newest first.
pub fn entries(b: &dyn Backend, log: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for page in pages(b, head(b, log)?) {
        out.extend(page?.1.entries);
    }
    Ok(out)
}

/// A log and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    /// Its name.
    pub name: String,
    /// Its head page.
    pub head: Id,
    /// How many entries it has.
    pub count: u64,
    /// The settings of its head page.
    pub settings: Settings,
}

/// The logs of a store, sorted by name.
pub fn list(b: &dyn Backend) -> Result<Vec<LogInfo>> {
    let mut out = Vec::new();
    for r in b.list_refs(LOGS)? {
        let Some(name) = r.log_name() else { continue };
        let Some(head) = b.read_ref(&r)? else {
            continue;
        };
        let page = read_page(b, &head)?;
        out.push(LogInfo {
            name: name.to_string(),
            head,
            count: page.count,
            settings: page.settings(),
        });
    }
    Ok(out)
}

/// Finds the message whose H1 or H2 starts with `prefix` (at least 8 hex digits) in any log,
/// and returns it with its entry.
pub fn find(b: &dyn Backend, prefix: &str) -> Result<(Entry, Message)> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 8 || prefix.len() > 64 || !crate::id::is_lower_hex(&prefix) {
        return Err(Error::Invalid(format!(
            "{prefix:?} is not an id: give 8 to 64 hex digits of an H1 or H2"
        )));
    }
    let mut hits: HashMap<Id, Entry> = HashMap::new();
    for info in list(b)? {
        for e in entries(b, &info.name)? {
            if e.h1.to_hex().starts_with(&prefix) || e.h2.to_hex().starts_with(&prefix) {
                hits.entry(e.h2).or_insert(e);
            }
        }
    }
    if hits.is_empty() {
        // Say why a stored message is not shown: it is in no log any more.
        for id in b.objects_with_prefix(&prefix)? {
            if let Ok(bytes) = b.get_object(&id) {
                if decode_message(&bytes).is_ok() {
                    return Err(Error::Invalid(format!(
                        "message {id} is in no log (it was forgotten, or left by an interrupted append); `remotelog gc` deletes it"
                    )));
                }
            }
        }
    }
    match hits.len() {
        0 => Err(Error::NotFound(prefix)),
        1 => {
            let entry = hits.into_values().next().ok_or(Error::NotFound(prefix))?;
            let m = read_message(b, &entry)?;
            Ok((entry, m))
        }
        count => Err(Error::Ambiguous { prefix, count }),
    }
}
