//! `import-spec`: importing a log written in the 3/REMOTE-LOG wire form
//! (`format/spec-view.md` section 5) from any server of that protocol into a native log,
//! checking every address and H1, and importing only what is new on a later run.

use std::collections::{HashMap, HashSet};
#[cfg(feature = "http")]
use std::sync::{Mutex, MutexGuard};

use prost::Message as _;

#[cfg(feature = "http")]
use ureq::http::Method;

use crate::error::{Error, RemoteFailure, Result};
use crate::id::Id;
use crate::log::{self, SettingsChange};
use crate::model::name::{RefName, IMPORTS};
#[cfg(feature = "http")]
use crate::net::client::{Call, Payload, Transport};
#[cfg(feature = "http")]
use crate::net::wire::{CAS_GET, NS_FETCH, PROTOBUF, TWIRP_PREFIX};
#[cfg(feature = "http")]
use crate::spec::proto::vac::{cas, ns};
use crate::spec::{decode_payload, Pair, RemoteLog};
use crate::store::{verify_id, Backend};

#[cfg(feature = "http")]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A budget counter: a panic elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A server holding spec-form logs: the two reads a spec reader needs.
pub trait SpecSource {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// NS `Fetch(name)`: the content, `None` for Twirp `not_found`.
    fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// CAS `Get(addr)`: the content, `None` for Twirp `not_found` (not yet checked).
    fn get(&self, addr: &Id) -> Result<Option<Vec<u8>>>;
}

/// Most bytes one Twirp answer may hold: a page or a payload is far smaller, and nothing
/// larger could be stored as an object.
pub const ANSWER_MAX: u64 = crate::store::dir::MAX_OBJECT_SIZE;

/// A Twirp client of `vac.ns.NS` and `vac.cas.CAS` over plain HTTP, protobuf bodies,
/// through the same [`Transport`] as HTTP remotes (with the `http` feature).
#[cfg(feature = "http")]
pub struct TwirpSource {
    transport: Transport,
    /// The budget of all answers together, and what is left of it.
    max_total: u64,
    left: Mutex<u64>,
}

#[cfg(feature = "http")]
impl TwirpSource {
    /// A client of the server at `url` (`http://HOST:PORT[/prefix]`) that reads at most
    /// `max_total` bytes in all its answers together, counted as they arrive, and at most
    /// [`ANSWER_MAX`] in one; it waits for the server as [`crate::net::client::Patience`]
    /// says.
    pub fn new(url: &str, token: Option<String>, max_total: u64) -> Result<TwirpSource> {
        Ok(TwirpSource {
            transport: Transport::new(
                url,
                token,
                "Twirp server",
                "check the URL, and that the server runs",
            )?,
            max_total,
            left: Mutex::new(max_total),
        })
    }

    fn call(&self, method: &str, body: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let path = format!("{TWIRP_PREFIX}{method}");
        // The answer is cut off where the budget ends, so a server sending without end
        // costs at most the smaller limit in memory.
        let left = *lock(&self.left);
        let max = left.min(ANSWER_MAX);
        let too_big = |url: &str| {
            Error::remote(
                RemoteFailure::TooBig,
                if max == left {
                    format!(
                    "{url}: the answers hold more than {} bytes in all (--max-bytes); raise --max-bytes if the log is that large",
                    self.max_total
                )
                } else {
                    format!(
                    "{url}: the answer holds more than {ANSWER_MAX} bytes, the most one answer (a page or a payload) may hold"
                )
                },
            )
        };
        let call = Call {
            method: Method::POST,
            path: &path,
            payload: Payload::Bytes(&body),
            headers: &[("content-type", PROTOBUF.to_string())],
            // Both methods called here read.
            idempotent: true,
            max,
        };
        let r = self.transport.send(call, &too_big)?;
        {
            let mut left = lock(&self.left);
            *left = left.saturating_sub(r.body.len() as u64);
        }
        let (status, bytes) = (r.status, r.body);
        if status == 200 {
            return Ok(Some(bytes));
        }
        let url = format!("{}{path}", self.transport.base);
        let err: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = err.get("code").and_then(|c| c.as_str()).unwrap_or("");
        if code == "not_found" || (status == 404 && code.is_empty()) {
            return Ok(None);
        }
        let msg = err.get("msg").and_then(|m| m.as_str()).map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            String::from,
        );
        Err(Error::remote(
            RemoteFailure::Status(status),
            format!(
                "{url}: HTTP {status} {code}: {}",
                msg.chars().take(300).collect::<String>()
            ),
        ))
    }
}

#[cfg(feature = "http")]
impl SpecSource for TwirpSource {
    fn describe(&self) -> String {
        self.transport.base.clone()
    }

    fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self.call(
            NS_FETCH,
            ns::Query {
                name: name.to_string(),
            }
            .encode_to_vec(),
        )?
        else {
            return Ok(None);
        };
        let c = ns::Content::decode(&bytes[..]).map_err(|e| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!(
                    "{}: Fetch answer is not a vac.ns.Content: {e}",
                    self.transport.base
                ),
            )
        })?;
        Ok(Some(c.data))
    }

    fn get(&self, addr: &Id) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self.call(
            CAS_GET,
            cas::Address {
                id: addr.0.to_vec(),
            }
            .encode_to_vec(),
        )?
        else {
            return Ok(None);
        };
        let c = cas::Content::decode(&bytes[..]).map_err(|e| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!(
                    "{}: Get answer is not a vac.cas.Content: {e}",
                    self.transport.base
                ),
            )
        })?;
        Ok(Some(c.data))
    }
}

/// Bounds on what one import reads, so hostile input cannot exhaust time or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pages walked.
    pub max_pages: usize,
    /// Most entries imported.
    pub max_entries: usize,
    /// Most bytes read (pages and payloads together).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pages: 100_000,
            max_entries: 10_000_000,
            // Held until the one atomic append: what a laptop survives.
            max_bytes: 1 << 30,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Messages appended to the local log.
    pub entries: usize,
    /// Pages read from the source.
    pub pages: usize,
    /// The spec address of the source's head page.
    pub spec_head: Id,
    /// The local log's head after the import (`None` when it has no entries).
    pub head: Option<Id>,
}

/// What `refs/imports/<log>` records: the source head last imported and what is needed to
/// recognise its entries in a later chain (format/spec-view.md, section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracked {
    head: Id,
    tail: Option<Id>,
    pairs: usize,
    newest: Option<Id>,
    local: Option<Id>,
}

const RECORD_MAGIC: &str = "remotelog-import 1";

impl Tracked {
    fn encode(&self, source: &str, name: &str) -> Vec<u8> {
        let opt = |o: &Option<Id>| o.map_or_else(|| "-".to_string(), |i| i.to_hex());
        format!(
            "{RECORD_MAGIC}\nsource {source}\nname {name}\nhead {}\ntail {}\npairs {}\nnewest {}\nlocal {}\n",
            self.head,
            opt(&self.tail),
            self.pairs,
            opt(&self.newest),
            opt(&self.local)
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Tracked> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != RECORD_MAGIC {
            return None;
        }
        let mut kv: HashMap<&str, &str> = HashMap::new();
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            kv.insert(k, v);
        }
        let opt = |k: &str| -> Option<Option<Id>> {
            match *kv.get(k)? {
                "-" => Some(None),
                v => v.parse().ok().map(Some),
            }
        };
        Some(Tracked {
            head: kv.get("head")?.parse().ok()?,
            tail: opt("tail")?,
            pairs: kv.get("pairs")?.parse().ok()?,
            newest: opt("newest")?,
            local: opt("local")?,
        })
    }
}

/// The ref recording what was imported into local log `log`.
pub fn import_ref(log: &str) -> Result<RefName> {
    crate::model::name::validate(log)?;
    RefName::parse(&format!("{IMPORTS}/{log}"))
}

/// The remote's spec log is not what 3/REMOTE-LOG allows: a bad answer of that remote.
fn bad(what: String) -> Error {
    Error::remote(RemoteFailure::BadAnswer, what)
}

/// Reads the spec-form log `name` from `src`, checks every address and H1, and appends
/// what is new since the last import as native log `local`, in one atomic append.
pub fn import(
    b: &dyn Backend,
    src: &dyn SpecSource,
    name: &str,
    local: &str,
    limits: &Limits,
) -> Result<Imported> {
    let source = src.describe();
    let tref = import_ref(local)?;
    // Held until the import record is named by its ref.
    let _lease = b.write_lease()?;
    let old_ref = b.read_ref(&tref)?;
    let tracked = match old_ref {
        Some(id) => Some(Tracked::decode(&b.get_object(&id)?).ok_or_else(|| {
            bad(format!(
                "ref {tref} names {id}, which is not an import record; remove the ref to import from scratch"
            ))
        })?),
        None => None,
    };
    // A source failing on the way (too much to read, too slow) fails the import where it is.
    let head_bytes = src
        .fetch(name)
        .map_err(|e| {
            bad(format!(
                "page 1 of {name:?} at {source}: {e}; nothing was imported"
            ))
        })?
        .ok_or_else(|| {
            bad(format!(
                "{source} has no name {name:?} (NS Fetch answered not_found)"
            ))
        })?;
    let spec_head = Id::of(&head_bytes);
    let mut budget = head_bytes.len() as u64;
    let over = |budget: u64, at: &str| -> Result<()> {
        if budget > limits.max_bytes {
            return Err(bad(format!(
                "{name:?} at {source}: more than {} bytes to read by {at} (--max-bytes); nothing was imported",
                limits.max_bytes
            )));
        }
        Ok(())
    };
    over(budget, "page 1")?;
    if tracked.as_ref().is_some_and(|t| t.head == spec_head) {
        return Ok(Imported {
            entries: 0,
            pages: 0,
            spec_head,
            head: log::head(b, local)?,
        });
    }

    // Walk newest → oldest, stopping where the last import ended.
    enum Stop {
        Start,
        AtHead,
        AtTail,
    }
    let mut pages: Vec<(usize, Id, Vec<Pair>)> = Vec::new();
    let mut head_page: Option<(Option<Id>, usize, Option<Id>)> = None;
    let mut visited: HashSet<Id> = HashSet::from([spec_head]);
    let (mut addr, mut bytes, mut n) = (spec_head, head_bytes, 1usize);
    let mut total = 0usize;
    let stop = loop {
        if let Some(t) = &tracked {
            if t.head == addr {
                break Stop::AtHead;
            }
            if t.tail == Some(addr) {
                break Stop::AtTail;
            }
        }
        let at = format!("page {n} ({addr}) of {name:?} at {source}");
        let rl = RemoteLog::decode(&bytes[..]).map_err(|e| {
            bad(format!(
                "{at}: not a vac.remotelog.RemoteLog: {e}; nothing was imported"
            ))
        })?;
        for (i, p) in rl.pair.iter().enumerate() {
            for (field, v) in [("remoteHash", &p.remote_hash), ("localHash", &p.local_hash)] {
                if v.len() != 32 {
                    return Err(bad(format!(
                        "{at} entry {i}: {field} is {}, expected 32 bytes; nothing was imported",
                        if v.is_empty() {
                            "missing".to_string()
                        } else {
                            format!("{} bytes", v.len())
                        }
                    )));
                }
            }
        }
        total += rl.pair.len();
        if total > limits.max_entries {
            return Err(bad(format!(
                "{name:?} at {source}: more than {} entries by page {n} (--max-entries); nothing was imported",
                limits.max_entries
            )));
        }
        let tail = if rl.tail.is_empty() {
            None
        } else {
            Some(Id::from_slice(&rl.tail).ok_or_else(|| {
                bad(format!(
                    "{at}: tail is {} bytes, expected 32; nothing was imported",
                    rl.tail.len()
                ))
            })?)
        };
        if n == 1 {
            let newest = rl.pair.first().and_then(|p| Id::from_slice(&p.remote_hash));
            head_page = Some((tail, rl.pair.len(), newest));
        }
        pages.push((n, addr, rl.pair));
        let Some(tail) = tail else { break Stop::Start };
        if !visited.insert(tail) {
            return Err(bad(format!(
                "{at}: its tail {tail} is a page already walked: the tails form a cycle; nothing was imported"
            )));
        }
        if n >= limits.max_pages {
            return Err(bad(format!(
                "{name:?} at {source}: more than {} pages (--max-pages); nothing was imported",
                limits.max_pages
            )));
        }
        let next = src
            .get(&tail)
            .map_err(|e| {
                bad(format!(
                    "page {} ({tail}) of {name:?} at {source}: {e}; nothing was imported",
                    n + 1
                ))
            })?
            .ok_or_else(|| {
            bad(format!(
                "{at}: its tail {tail} is missing (CAS Get answered not_found); nothing was imported"
            ))
        })?;
        budget += next.len() as u64;
        over(budget, &format!("page {}", n + 1))?;
        let got = Id::of(&next);
        if got != tail {
            return Err(bad(format!(
                "page {} ({tail}) of {name:?} at {source}: CAS Get returned {} bytes whose BLAKE3 is {got}, not the address asked for; nothing was imported",
                n + 1,
                next.len()
            )));
        }
        (addr, bytes, n) = (tail, next, n + 1);
    };

    // Oldest first, and without what the last import took.
    let mut region: Vec<(usize, Id, usize, Pair)> = Vec::with_capacity(total);
    for (n, addr, pairs) in pages.into_iter().rev() {
        for (i, p) in pairs.into_iter().enumerate().rev() {
            region.push((n, addr, i, p));
        }
    }
    let skip = match (&tracked, stop) {
        (None, _) | (Some(_), Stop::AtHead) => 0,
        (Some(t), Stop::AtTail) => t.pairs,
        (Some(t), Stop::Start) if t.tail.is_none() => t.pairs,
        (Some(t), Stop::Start) => {
            return Err(bad(format!(
                "{name:?} at {source} was rewritten since the last import into {local:?}: neither page {} nor {} is in its chain; import it into another log (--log), or remove ref {tref}; nothing was imported",
                t.head,
                t.tail.map_or_else(|| "-".into(), |i| i.to_hex())
            )))
        }
    };
    if let Some(t) = &tracked {
        let matches = skip == 0
            || (region.len() >= skip
                && Id::from_slice(&region[skip - 1].3.remote_hash) == t.newest);
        if !matches {
            return Err(bad(format!(
                "{name:?} at {source} no longer holds the entries imported last into {local:?} where they were; import it into another log (--log), or remove ref {tref}; nothing was imported"
            )));
        }
    }
    let mut messages = Vec::with_capacity(region.len().saturating_sub(skip));
    for (n, addr, i, p) in region.into_iter().skip(skip) {
        let at = format!("page {n} ({addr}) entry {i} of {name:?} at {source}");
        let remote = Id::from_slice(&p.remote_hash).unwrap_or(Id([0; 32]));
        let data = if p.data.is_empty() {
            let d = src
                .get(&remote)
                .map_err(|e| bad(format!("{at}: payload {remote}: {e}; nothing was imported")))?
                .ok_or_else(|| {
                bad(format!(
                    "{at}: payload {remote} is missing (CAS Get answered not_found); nothing was imported"
                ))
            })?;
            budget += d.len() as u64;
            over(budget, &at)?;
            d
        } else {
            p.data
        };
        verify_id(&remote, &data, || format!("{at}: payload"))
            .map_err(|e| bad(format!("{e}; nothing was imported")))?;
        let m =
            decode_payload(&data).map_err(|e| bad(format!("{at}: {e}; nothing was imported")))?;
        if m.h1().0[..] != p.local_hash[..] {
            return Err(bad(format!(
                "{at}: the payload's H1 is {}, localHash says {}; nothing was imported",
                m.h1(),
                hex::encode(&p.local_hash)
            )));
        }
        messages.push(m);
    }

    let mut head = log::head(b, local)?;
    // A crash between the append and the record leaves the entries appended but not
    // recorded: recognise them instead of appending them twice.
    let already = !messages.is_empty()
        && tracked.as_ref().is_some_and(|t| t.local != head)
        && newest_h1s(b, head, messages.len())?
            .is_some_and(|h| h.into_iter().eq(messages.iter().rev().map(|m| m.h1())));
    if !messages.is_empty() && !already {
        head = Some(log::append(b, local, &messages, SettingsChange::default())?.head);
    }
    let (tail, pairs, newest) = head_page.unwrap_or((None, 0, None));
    let record = Tracked {
        head: spec_head,
        tail,
        pairs,
        newest,
        local: head,
    }
    .encode(&source, name);
    let rid = Id::of(&record);
    b.put_objects(&[(rid, &record)])?;
    b.update_ref(&tref, old_ref.into(), Some(rid))?;
    Ok(Imported {
        entries: if already { 0 } else { messages.len() },
        pages: n,
        spec_head,
        head,
    })
}

/// The H1s of the newest `n` entries of the chain at `head`, newest first (`None` if
/// shorter).
fn newest_h1s(b: &dyn Backend, head: Option<Id>, n: usize) -> Result<Option<Vec<Id>>> {
    let mut out = Vec::with_capacity(n);
    for item in log::pages(b, head) {
        let (_, page) = item?;
        for e in page.entries {
            out.push(e.h1);
            if out.len() == n {
                return Ok(Some(out));
            }
        }
    }
    Ok(None)
}

/// Entry points for the fuzz targets (`fuzz/`) into this module's private decoders. Not an
/// API: they only exist so that the fuzzers and their corpus test run the real code.
#[doc(hidden)]
pub mod fuzz_entry {
    use super::Tracked;

    /// Decodes an import record (`refs/imports/*` content); when it decodes, whether
    /// encoding it again and decoding that gives the same record.
    pub fn import_record(bytes: &[u8]) -> Option<bool> {
        let t = Tracked::decode(bytes)?;
        Some(Tracked::decode(&t.encode("source", "name")).as_ref() == Some(&t))
    }
}
