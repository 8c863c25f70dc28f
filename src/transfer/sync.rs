//! Moving logs between two backends: the writer's flow (CAS first, NS second) for push and
//! the reader's flow (NS first, CAS second) for pull and clone.
//!
//! Everything here reads and writes through [`Backend`], so a directory remote and (later)
//! an HTTP remote behave alike. Objects are verified as they are read (id, kind, H1) and
//! written durably before any ref names them.

use std::collections::HashMap;
use std::time::Instant;

use crate::error::{Error, Rejection, Result};
use crate::id::Id;
use crate::log::{pages, read_message, read_page, Pages};
use crate::model::name::RefName;
use crate::model::object::{Object, Page};
use crate::progress::Progress;
use crate::store::{Backend, Batch, RawBlock};

/// How one log relates to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Same entries.
    Equal,
    /// The first has these many more entries; the second is a prefix of it.
    Ahead(u64),
    /// The second has these many more entries; the first is a prefix of it.
    Behind(u64),
    /// Neither is a prefix of the other.
    Diverged,
}

/// Walks a page chain entry by entry, newest first, remembering page starts.
struct Cursor<'a> {
    pages: Pages<'a>,
    page: Option<(Id, Page)>,
    idx: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a dyn Backend, head: Id) -> Result<Cursor<'a>> {
        let mut pages = pages(b, Some(head));
        let page = pages.next().transpose()?;
        Ok(Cursor {
            pages,
            page,
            idx: 0,
        })
    }

    /// Position (from the oldest, 0-based) of the current entry.
    fn pos(&self) -> Option<u64> {
        let (_, p) = self.page.as_ref()?;
        Some(p.count - 1 - self.idx as u64)
    }

    fn entry(&self) -> Option<&crate::model::object::Entry> {
        self.page.as_ref().map(|(_, p)| &p.entries[self.idx])
    }

    /// The current page's id when the cursor is at its newest entry.
    fn page_start(&self) -> Option<Id> {
        match &self.page {
            Some((id, _)) if self.idx == 0 => Some(*id),
            _ => None,
        }
    }

    fn advance(&mut self) -> Result<()> {
        let Some((_, p)) = &self.page else {
            return Ok(());
        };
        self.idx += 1;
        if self.idx == p.entries.len() {
            self.page = self.pages.next().transpose()?;
            self.idx = 0;
        }
        Ok(())
    }
}

fn count_of(b: &dyn Backend, head: Option<Id>) -> Result<u64> {
    match head {
        Some(id) => Ok(read_page(b, &id)?.count),
        None => Ok(0),
    }
}

/// How log `a` (in backend `ab`) relates to log `b` (in backend `bb`). Reads only the
/// entries the longer log has beyond the shorter one, plus entries down to the first page
/// both chains share.
pub fn relate(
    ab: &dyn Backend,
    a: Option<Id>,
    bb: &dyn Backend,
    b: Option<Id>,
) -> Result<Relation> {
    if a == b {
        return Ok(Relation::Equal);
    }
    let (ca, cb) = (count_of(ab, a)?, count_of(bb, b)?);
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(if ca > cb {
            Relation::Ahead(ca - cb)
        } else {
            Relation::Behind(cb - ca)
        });
    };
    let mut x = Cursor::new(ab, a)?;
    let mut y = Cursor::new(bb, b)?;
    let common = ca.min(cb);
    while x.pos().is_some_and(|p| p >= common) {
        x.advance()?;
    }
    while y.pos().is_some_and(|p| p >= common) {
        y.advance()?;
    }
    loop {
        match (x.entry(), y.entry()) {
            (None, None) => break,
            (Some(e), Some(f)) => {
                if let (Some(p), Some(q)) = (x.page_start(), y.page_start()) {
                    if p == q {
                        break;
                    }
                }
                if e.h2 != f.h2 || e.h1 != f.h1 {
                    return Ok(Relation::Diverged);
                }
            }
            _ => return Ok(Relation::Diverged),
        }
        x.advance()?;
        y.advance()?;
    }
    Ok(match ca.cmp(&cb) {
        std::cmp::Ordering::Equal => Relation::Equal,
        std::cmp::Ordering::Greater => Relation::Ahead(ca - cb),
        std::cmp::Ordering::Less => Relation::Behind(cb - ca),
    })
}

/// What a transfer moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    /// Objects written to the destination.
    pub objects: u64,
    /// Uncompressed bytes of those objects.
    pub bytes: u64,
    /// Pages read from the source.
    pub pages_read: u64,
    /// Objects read from the source (pages and messages).
    pub objects_read: u64,
    /// Compressed blocks copied whole, without recompression.
    pub blocks_copied: u64,
}

impl std::ops::AddAssign for Copied {
    fn add_assign(&mut self, o: Copied) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.pages_read += o.pages_read;
        self.objects_read += o.objects_read;
        self.blocks_copied += o.blocks_copied;
    }
}

/// Entries whose messages are copied together. A transfer holds about 300 bytes per entry
/// of one chunk, so its memory does not grow with the log; a chunk spans over a hundred
/// blocks, so few blocks straddle two chunks and lose the whole-block copy.
const CHUNK: usize = 1 << 15;

/// Bytes of walked pages a transfer keeps per entry of a chunk, to store them at its end
/// (8 MiB with the default chunk; an entry is about 70 bytes of a page); older pages are
/// read again instead.
const PAGE_BYTES_PER_CHUNK_ENTRY: usize = 256;

/// Copies every object of the chain at `head` that `dst` lacks, verifying each, and makes
/// them durable in `dst` as one batch (packs on a store). The walk stops at the first page
/// `dst` already has: everything older is there too, since a page is only ever stored
/// after its messages and its previous page (here too: pages are stored last, oldest
/// first). Messages go in chunks of [`CHUNK`] entries:
/// whole compressed blocks are copied without recompression where a block holds only
/// wanted objects, the rest object by object; either way each message is checked against
/// its id, kind and the H1 its page gives it.
pub fn copy_log(
    src: &dyn Backend,
    dst: &dyn Backend,
    head: Id,
    progress: &dyn Progress,
) -> Result<Copied> {
    copy_log_in_chunks(src, dst, head, CHUNK, Stop::AtPresentPage, progress)
}

/// Where a copy's walk down the chain stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// At the first page the destination has (store-v1 section 7: everything it names is
    /// there too).
    AtPresentPage,
    /// Only at the destination ref's current head or its `prev` (what a ref names is
    /// complete), copying whatever else is missing: for a destination whose stray pages
    /// broke the rule above, which its ref update then reported.
    AtRefHead(Option<Id>),
}

/// Moves `name` in `dst` from `expected` to `new` once the chain at `new` is complete
/// there: checked here, or by a backend that checks its ref updates itself (a server),
/// which then refuses with [`Error::IncompleteChain`].
fn move_log_ref(dst: &dyn Backend, name: &RefName, expected: Option<Id>, new: Id) -> Result<()> {
    if !dst.checks_chains() {
        crate::log::check_complete(dst, name, new, expected)?;
    }
    dst.update_ref(name, expected.into(), Some(new))
}

/// Copies the chain at `head` from `src` and moves `name` in `dst` to it; when the
/// destination finds the chain incomplete (a page it held without what that page names),
/// copies again without trusting its pages, and moves the ref then.
fn copy_and_move(
    src: &dyn Backend,
    dst: &dyn Backend,
    name: &RefName,
    expected: Option<Id>,
    head: Id,
    progress: &dyn Progress,
) -> Result<Copied> {
    let mut copied = copy_log(src, dst, head, progress)?;
    match move_log_ref(dst, name, expected, head) {
        Err(Error::IncompleteChain { .. }) => {
            let stop = Stop::AtRefHead(expected);
            copied += copy_log_in_chunks(src, dst, head, CHUNK, stop, progress)?;
            move_log_ref(dst, name, expected, head)?;
        }
        other => other?,
    }
    Ok(copied)
}

/// [`copy_log`] with chunks of `chunk` entries (tests use small ones to cross many chunk
/// boundaries).
pub fn copy_log_in_chunks(
    src: &dyn Backend,
    dst: &dyn Backend,
    head: Id,
    chunk_len: usize,
    stop: Stop,
    progress: &dyn Progress,
) -> Result<Copied> {
    let stops = match stop {
        Stop::AtPresentPage => None,
        Stop::AtRefHead(None) => Some([None, None]),
        Stop::AtRefHead(Some(old)) => Some([Some(old), crate::log::read_page(dst, &old)?.prev]),
    };
    // The verifying threads live for the whole copy, so the walk of the next chunk
    // overlaps the checks of the last one.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel(2 * workers);
    let job_rx = std::sync::Mutex::new(job_rx);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (jobs, done) = (&job_rx, done_tx.clone());
            s.spawn(move || verify_blocks(jobs, done));
        }
        drop(done_tx);
        let verifier = Verifier {
            jobs: Some(job_tx),
            done: done_rx,
        };
        // An early error drops the verifier, which stops the threads before the scope
        // joins them.
        walk_and_copy(src, dst, head, chunk_len, stops, progress, verifier)
    })
}

fn walk_and_copy(
    src: &dyn Backend,
    dst: &dyn Backend,
    head: Id,
    chunk_len: usize,
    stops: Option<[Option<Id>; 2]>,
    progress: &dyn Progress,
    verifier: Verifier,
) -> Result<Copied> {
    let mut stats = Copied::default();
    // The pages walked, newest first, with their bytes while they fit the budget; they are
    // stored last (see below).
    let budget = chunk_len.max(1).saturating_mul(PAGE_BYTES_PER_CHUNK_ENTRY);
    let mut pages: Vec<(Id, Option<Vec<u8>>)> = Vec::new();
    let mut kept = 0usize;
    // (H2, H1) of the current chunk's entries, in walk order.
    let mut chunk: Vec<(Id, Id)> = Vec::with_capacity(chunk_len.min(CHUNK) + 1024);
    let head_count = count_of(src, Some(head))?;
    progress.phase("copying", Some(head_count));
    let mut batch = dst.batch()?;
    let flush = |chunk: &mut Vec<(Id, Id)>, batch: &mut dyn Batch, stats: &mut Copied| {
        copy_messages(src, dst, chunk, batch, stats, progress, &verifier)
    };
    let mut next = Some(head);
    let mut expect_count: Option<u64> = None;
    while let Some(id) = next {
        let done = match &stops {
            None => dst.has_object(&id)?,
            Some(stops) => stops.contains(&Some(id)),
        };
        if done {
            break;
        }
        let bytes = src.get_object(&id)?;
        stats.pages_read += 1;
        stats.objects_read += 1;
        let page = match Object::decode(&bytes) {
            Ok(Object::Page(p)) => p,
            Ok(other) => {
                return Err(corrupt(
                    src,
                    &id,
                    format!("it is a {}, expected a page", other.kind().name()),
                ))
            }
            Err(e) => return Err(corrupt(src, &id, e.to_string())),
        };
        if expect_count.is_some_and(|c| c != page.count) {
            return Err(corrupt(src, &id, "page count does not chain".into()));
        }
        let keep = kept + bytes.len() <= budget;
        kept += if keep { bytes.len() } else { 0 };
        pages.push((id, keep.then_some(bytes)));
        for entry in &page.entries {
            if entry.embedded.is_some() {
                // Check the embedded copy now: it travels inside the page.
                read_message(src, entry).map_err(|e| {
                    Error::Invalid(format!("page {id} entry with H1 {}: {e}", entry.h1))
                })?;
            }
            chunk.push((entry.h2, entry.h1));
        }
        let rest = page.count - page.entries.len() as u64;
        if rest > 0 && page.prev.is_none() {
            return Err(corrupt(
                src,
                &id,
                "page count says older pages exist but it has no prev".into(),
            ));
        }
        expect_count = Some(rest);
        next = if rest > 0 { page.prev } else { None };
        if chunk.len() >= chunk_len.max(1) {
            flush(&mut chunk, &mut *batch, &mut stats)?;
        }
    }
    // The walk ended at the first page, or at one the destination has.
    flush(&mut chunk, &mut *batch, &mut stats)?;
    verifier.finish(&mut *batch, &mut stats)?;
    // Pages go last, oldest first: a batch may commit several packs, and a page in the
    // destination must mean that its messages and every older page are there too — the
    // walk above stops at the first page the destination has. Pages beyond the budget
    // are read again.
    for (id, bytes) in pages.into_iter().rev() {
        let bytes = match bytes {
            Some(b) => b,
            None => {
                stats.objects_read += 1;
                src.get_object(&id)?
            }
        };
        stats.bytes += bytes.len() as u64;
        batch.add(id, &bytes)?;
    }
    stats.objects = batch.commit()? as u64;
    Ok(stats)
}

/// Copies the messages of one chunk of entries that `dst` lacks into `batch`, and empties
/// the chunk.
fn copy_messages(
    src: &dyn Backend,
    dst: &dyn Backend,
    chunk: &mut Vec<(Id, Id)>,
    batch: &mut dyn Batch,
    stats: &mut Copied,
    progress: &dyn Progress,
    verifier: &Verifier,
) -> Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let entries = chunk.len() as u64;
    let ids: Vec<Id> = chunk.iter().map(|(h2, _)| *h2).collect();
    // One presence query per chunk: a round trip on HTTP, and on a directory at most one
    // listing per shard instead of a failed stat per message.
    let present = dst.present_objects(&ids)?;
    // Wanted messages with the H1 their page gives them; the walk's order follows the
    // source's storage order closely, which keeps its block cache warm below.
    let mut wanted: HashMap<Id, Id> = HashMap::with_capacity(chunk.len());
    let mut order: Vec<Id> = Vec::with_capacity(chunk.len());
    for (h2, h1) in chunk.drain(..) {
        if !present.contains(&h2) && wanted.insert(h2, h1).is_none() {
            order.push(h2);
        }
    }
    drop(present);
    src.raw_blocks(&order, &mut |block: RawBlock| {
        let h1s = block
            .objects
            .iter()
            .map(|(id, _, _)| wanted.remove(id).unwrap_or(Id([0; 32])))
            .collect();
        verifier.submit(block, h1s, batch, stats)
    })?;
    for id in order {
        let Some(h1) = wanted.remove(&id) else {
            continue;
        };
        let bytes = src.get_object(&id)?;
        stats.objects_read += 1;
        check_h1(&id, &bytes, h1, || src.object_location(&id))?;
        stats.bytes += bytes.len() as u64;
        batch.add(id, &bytes)?;
    }
    progress.advance(entries);
    Ok(())
}

/// A block checked by a worker, with the uncompressed bytes of its objects.
type Checked = Result<(RawBlock, u64)>;

/// Copied blocks on their way through the verifying threads. The block checksum only says
/// a frame arrived as written; a copy must not trust the writer, so every object is
/// checked (id, kind and the H1 its page gives it) before its block enters the batch — on
/// all cores, since that is most of a clone's work.
struct Verifier {
    jobs: Option<std::sync::mpsc::SyncSender<(RawBlock, Vec<Id>)>>,
    done: std::sync::mpsc::Receiver<Checked>,
}

impl Verifier {
    /// Queues `block`, whose objects' pages give them `h1s`, and adds every block checked
    /// meanwhile to `batch`.
    fn submit(
        &self,
        block: RawBlock,
        h1s: Vec<Id>,
        batch: &mut dyn Batch,
        stats: &mut Copied,
    ) -> Result<()> {
        let stopped = || Error::Invalid("the verifying threads stopped".into());
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((block, h1s)).map_err(|_| stopped())?;
        while let Ok(checked) = self.done.try_recv() {
            accept(checked, batch, stats)?;
        }
        Ok(())
    }

    /// Waits for every queued block and adds them to `batch`, or returns the first error.
    fn finish(mut self, batch: &mut dyn Batch, stats: &mut Copied) -> Result<()> {
        // Closing the queue stops the workers once it is empty.
        self.jobs = None;
        let mut result = Ok(());
        for checked in self.done.iter() {
            if result.is_ok() {
                result = accept(checked, batch, stats);
            }
        }
        result
    }
}

fn accept(checked: Checked, batch: &mut dyn Batch, stats: &mut Copied) -> Result<()> {
    let (block, bytes) = checked?;
    stats.bytes += bytes;
    stats.objects_read += block.objects.len() as u64;
    stats.blocks_copied += 1;
    batch.add_raw_block(&block)
}

/// A verifying thread: checks queued blocks until the queue closes.
fn verify_blocks(
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<(RawBlock, Vec<Id>)>>,
    done: std::sync::mpsc::Sender<Checked>,
) {
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((block, h1s)) = job else { return };
        let mut h1s = h1s.into_iter();
        let mut bytes = 0u64;
        let checked = block.for_each_verified(|id, b| {
            bytes += b.len() as u64;
            let h1 = h1s.next().unwrap_or(Id([0; 32]));
            check_h1(id, b, h1, || "a copied block".into())
        });
        if done.send(checked.map(|()| (block, bytes))).is_err() {
            return;
        }
    }
}

/// Checks that `bytes` (already checked against `id`) are a message whose H1 is `h1`.
fn check_h1(id: &Id, bytes: &[u8], h1: Id, location: impl Fn() -> String) -> Result<()> {
    let bad = |reason: String| Error::ObjectCorrupt {
        id: *id,
        location: location(),
        reason,
    };
    let m = crate::model::object::decode_message(bytes).map_err(|e| bad(e.to_string()))?;
    if m.h1() != h1 {
        return Err(bad(format!("its H1 is {}, its page says {h1}", m.h1())));
    }
    Ok(())
}

fn corrupt(b: &dyn Backend, id: &Id, reason: String) -> Error {
    Error::ObjectCorrupt {
        id: *id,
        location: b.object_location(id),
        reason,
    }
}

/// The outcome of pushing or pulling one log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogTransfer {
    /// The log.
    pub log: String,
    /// The remote.
    pub remote: String,
    /// `up-to-date`, `fast-forward`, `forced`, `created`, `ahead`.
    pub outcome: &'static str,
    /// Entries the receiving side gained (or lost, when forced).
    pub entries: u64,
    /// What moved.
    pub copied: Copied,
    /// Seconds taken.
    pub elapsed: f64,
}

/// When a push may drop entries the remote has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Never: only fast-forwards.
    No,
    /// Only if the remote still holds what the tracking ref says we last saw there (for
    /// publishing a rewritten log, e.g. after `forget`, without clobbering others' work).
    WithLease,
    /// Always.
    Yes,
}

/// Pushes log `log` of `local` to `remote_store` (registered as `remote`): copies the
/// objects the remote lacks, then moves the remote ref by compare-and-swap from the value
/// read at the start, then records it in the tracking ref.
pub fn push(
    local: &dyn Backend,
    remote: &str,
    remote_store: &dyn Backend,
    log: &str,
    force: Force,
    progress: &dyn Progress,
) -> Result<LogTransfer> {
    let start = Instant::now();
    let refname = RefName::log(log)?;
    // The remote keeps what we copy until its ref names it; the local store keeps the page
    // the tracking ref will name, which a concurrent append may replace meanwhile.
    let _local_lease = local.write_lease()?;
    let _remote_lease = remote_store.write_lease()?;
    let ours = local.read_ref(&refname)?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no log {log:?} here to push; `remotelog logs` lists them"
        ))
    })?;
    let theirs = remote_store.read_ref(&refname)?;
    if force == Force::WithLease {
        let seen = local.read_ref(&crate::transfer::remote::tracking_ref(remote, log)?)?;
        if seen != theirs {
            return Err(Error::Rejected {
                action: format!("push of log {log} to {remote}"),
                reason: Rejection::LeaseBroken {
                    expected: seen,
                    found: theirs,
                },
            });
        }
    }
    let relation = relate(local, Some(ours), remote_store, theirs)?;
    let (outcome, entries) = match relation {
        Relation::Equal => ("up-to-date", 0),
        Relation::Ahead(n) if theirs.is_none() => ("created", n),
        Relation::Ahead(n) => ("fast-forward", n),
        Relation::Behind(_) | Relation::Diverged if force == Force::No => {
            return Err(Error::Rejected {
                action: format!("push of log {log} to {remote}"),
                reason: Rejection::NotFastForward {
                    ahead_by: match relation {
                        Relation::Behind(n) => Some(n),
                        _ => None,
                    },
                },
            })
        }
        Relation::Behind(n) => ("forced", n),
        Relation::Diverged => ("forced", 0),
    };
    let mut copied = Copied::default();
    if relation != Relation::Equal {
        copied =
            copy_and_move(local, remote_store, &refname, theirs, ours, progress).map_err(|e| {
                match e {
                    Error::RefConflict { .. } => Error::Rejected {
                        action: format!("push of log {log} to {remote}"),
                        reason: Rejection::Raced,
                    },
                    other => other,
                }
            })?;
    }
    let done = LogTransfer {
        log: log.into(),
        remote: remote.into(),
        outcome,
        entries,
        copied,
        elapsed: 0.0,
    };
    finish_transfer(local, done, ours, start, progress)
}

/// Pulls log `log` from `remote_store` into `local`: fetches what is new and fast-forwards
/// the local log. A local log with entries the remote lacks is never rewound.
pub fn pull(
    local: &dyn Backend,
    remote: &str,
    remote_store: &dyn Backend,
    log: &str,
    progress: &dyn Progress,
) -> Result<LogTransfer> {
    let start = Instant::now();
    let refname = RefName::log(log)?;
    let _lease = local.write_lease()?;
    let theirs = remote_store
        .read_ref(&refname)?
        .ok_or_else(|| Error::Invalid(format!("remote {remote} has no log {log:?}")))?;
    let ours = local.read_ref(&refname)?;
    let relation = relate(local, ours, remote_store, Some(theirs))?;
    let mut copied = Copied::default();
    let (outcome, entries) = match relation {
        Relation::Equal => ("up-to-date", 0),
        Relation::Behind(n) => {
            copied = copy_and_move(remote_store, local, &refname, ours, theirs, progress)?;
            (
                if ours.is_none() {
                    "created"
                } else {
                    "fast-forward"
                },
                n,
            )
        }
        Relation::Ahead(_) => {
            // Nothing to take; remember what the remote holds.
            copied = copy_log(remote_store, local, theirs, progress)?;
            ("ahead", 0)
        }
        Relation::Diverged => {
            return Err(Error::Rejected {
                action: format!("pull of log {log} from {remote}"),
                reason: Rejection::Diverged,
            })
        }
    };
    let done = LogTransfer {
        log: log.into(),
        remote: remote.into(),
        outcome,
        entries,
        copied,
        elapsed: 0.0,
    };
    finish_transfer(local, done, theirs, start, progress)
}

/// Records what the remote now holds in the tracking ref and closes the progress report.
fn finish_transfer(
    local: &dyn Backend,
    mut done: LogTransfer,
    remote_head: Id,
    start: Instant,
    progress: &dyn Progress,
) -> Result<LogTransfer> {
    set_tracking(local, &done.remote, &done.log, remote_head)?;
    progress.finish();
    done.elapsed = start.elapsed().as_secs_f64();
    Ok(done)
}

/// Records in `local` that `remote` holds `head` for `log`.
pub fn set_tracking(local: &dyn Backend, remote: &str, log: &str, head: Id) -> Result<()> {
    let r = crate::transfer::remote::tracking_ref(remote, log)?;
    if local.read_ref(&r)? == Some(head) {
        return Ok(());
    }
    // Whoever recorded last saw the remote last: no expectation to state.
    local.update_ref(&r, crate::store::Expected::Any, Some(head))
}

/// Creates a store at `dest` with the logs of `src` (all of them, or only `only_log`),
/// registering `src_location` as remote `origin`, or completes an interrupted clone there.
/// Every object is verified on the way. When a log cannot be copied this is an error
/// naming it, after the other logs were copied ([`crate::transfer::clone::clone_logs`] reports them
/// one by one); when no log could be, nothing is left at `dest` that this call created
/// unless `keep_partial`.
pub fn clone(
    src: &dyn Backend,
    src_location: &str,
    dest: &std::path::Path,
    only_log: Option<&str>,
    keep_partial: bool,
    progress: &dyn Progress,
) -> Result<(crate::store::FsStore, Vec<LogTransfer>)> {
    let report = crate::transfer::clone::clone_logs(
        src,
        src_location,
        dest,
        only_log,
        keep_partial,
        progress,
    )?;
    if let Some(summary) = report.summary() {
        return Err(Error::Invalid(summary));
    }
    Ok((crate::store::FsStore::open(dest)?, report.done))
}

/// What `status` says about one log and one remote, from the tracking refs (no remote is
/// contacted).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The log.
    pub log: String,
    /// The remote.
    pub remote: String,
    /// Local entries.
    pub local: u64,
    /// Entries the remote had at the last exchange (`None`: never exchanged).
    pub remote_entries: Option<u64>,
    /// Entries the local log has beyond the remote's.
    pub ahead: u64,
    /// Entries the remote had beyond the local log.
    pub behind: u64,
    /// Neither is a prefix of the other.
    pub diverged: bool,
}

/// Compares each local log (and each log known from tracking refs) with what each remote
/// held at the last exchange.
pub fn status(
    local: &dyn Backend,
    remotes: &[crate::transfer::remote::Remote],
) -> Result<Vec<Status>> {
    let mut logs: Vec<String> = crate::log::list(local)?
        .into_iter()
        .map(|i| i.name)
        .collect();
    for r in remotes {
        let prefix = format!("{}/{}/", crate::model::name::REMOTES, r.name);
        for t in local.list_refs(&format!("{}/{}", crate::model::name::REMOTES, r.name))? {
            if let Some(l) = t.as_str().strip_prefix(&prefix) {
                logs.push(l.to_string());
            }
        }
    }
    logs.sort();
    logs.dedup();
    let mut out = Vec::new();
    for log in &logs {
        let ours = local.read_ref(&RefName::log(log)?)?;
        for r in remotes {
            let theirs = local.read_ref(&crate::transfer::remote::tracking_ref(&r.name, log)?)?;
            let rel = relate(local, ours, local, theirs)?;
            let (ahead, behind, diverged) = match rel {
                Relation::Equal => (0, 0, false),
                Relation::Ahead(n) => (n, 0, false),
                Relation::Behind(n) => (0, n, false),
                Relation::Diverged => (0, 0, true),
            };
            out.push(Status {
                log: log.clone(),
                remote: r.name.clone(),
                local: count_of(local, ours)?,
                remote_entries: match theirs {
                    Some(_) => Some(count_of(local, theirs)?),
                    None => None,
                },
                ahead,
                behind,
                diverged,
            });
        }
    }
    Ok(out)
}
