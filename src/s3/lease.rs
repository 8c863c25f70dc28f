//! Leases on object storage (format/s3-layout.md section 5): a lease is an object under
//! `locks/` created with `If-None-Match: *` (or taken over from an expired holder with
//! `If-Match`), holding its holder and time to live, and renewed by a heartbeat that
//! rewrites it with `If-Match` its last ETag. Its age comes from the store's clock
//! (`Date` − `Last-Modified` of one answer), never the local one: a lease is dead once its
//! age exceeds its time to live, or at once when its holder is a process of this host that
//! no longer runs. So a crashed gc or writer blocks the others for one time to live at
//! most, never for good.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::client::{Client, Cond};
use crate::error::{Error, Result};
use crate::store::lock::{self, Holder};

/// The time to live of the leases this process takes, unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The largest lease object read.
const LEASE_MAX: u64 = 4096;

/// A lease object as read: its text, version, age and time to live.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its text (holder and `ttl=`).
    pub text: String,
    /// Its ETag.
    pub etag: String,
    /// Its age by the store's clock, whole seconds.
    pub age: u64,
    /// Its time to live, whole seconds.
    pub ttl: u64,
}

impl Seen {
    /// Whether it still holds: not older than its time to live, and not left by a process
    /// of this host that is gone.
    pub fn live(&self) -> bool {
        let gone = Holder::parse(&self.text).is_some_and(|h| h.is_provably_gone());
        !gone && self.age <= self.ttl
    }

    /// Who holds it and for how long yet, in words.
    pub fn describe(&self) -> String {
        format!(
            "{}; it lapses {} s after its last renewal unless renewed (renewed {} s ago)",
            lock::describe(&self.text),
            self.ttl,
            self.age
        )
    }
}

/// The text of a lease held by this process for `ttl`.
pub fn text(ttl: Duration) -> String {
    format!("{}ttl={}\n", Holder::me().render(), ttl.as_secs())
}

/// Reads the lease at `key`; `None` when there is none.
pub fn read(client: &Client, key: &str) -> Result<Option<Seen>> {
    let Some(a) = client.get(key, LEASE_MAX)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&a.body).into_owned();
    let age = match (a.date(), a.last_modified()) {
        (Some(now), Some(at)) => now.saturating_sub(at),
        _ => 0,
    };
    // A lease without a readable time to live is given the default one.
    let ttl = text
        .lines()
        .find_map(|l| l.strip_prefix("ttl="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_TTL.as_secs());
    Ok(Some(Seen {
        text,
        etag: a.etag().unwrap_or_default(),
        age,
        ttl,
    }))
}

/// Writes a lease at `key` under `cond`: its new ETag, or `None` when the condition failed.
pub fn write(client: &Client, key: &str, ttl: Duration, cond: &Cond) -> Result<Option<String>> {
    let a = client.put(key, text(ttl).as_bytes(), cond)?;
    match a.status {
        200 => Ok(Some(a.etag().unwrap_or_default())),
        412 | 409 => Ok(None),
        _ => Err(client.refused(&format!("PUT {}", client.url_of(key)), &a)),
    }
}

/// Renews the lease at `key` that this process wrote as version `etag`: its new version,
/// or `None` when it is gone, lapsed or no longer ours (what it protected may be gone).
pub fn renew(client: &Client, key: &str, etag: &str, ttl: Duration) -> Result<Option<String>> {
    match read(client, key)? {
        Some(seen) if seen.etag == etag && seen.age <= seen.ttl => {
            write(client, key, ttl, &Cond::Match(etag.to_string()))
        }
        _ => Ok(None),
    }
}

/// Removes the lease at `key` if it still is version `etag`.
pub fn remove(client: &Client, key: &str, etag: &str) {
    // Best effort: a lease left behind lapses on its own.
    let _ = client.delete(key, Some(etag));
}

/// A lease this process holds, renewed by a heartbeat thread every third of its time to
/// live; dropped, it is removed.
pub struct Held {
    state: Arc<State>,
    stop: Option<Sender<()>>,
    beat: Option<std::thread::JoinHandle<()>>,
}

struct State {
    client: Client,
    key: String,
    ttl: Duration,
    etag: Mutex<String>,
    lost: AtomicBool,
}

impl State {
    fn renew(&self) -> bool {
        let mut etag = self.etag.lock().unwrap_or_else(|p| p.into_inner());
        if self.lost.load(Ordering::SeqCst) {
            return false;
        }
        match renew(&self.client, &self.key, &etag, self.ttl) {
            Ok(Some(new)) => {
                *etag = new;
                true
            }
            Ok(None) => {
                self.lost.store(true, Ordering::SeqCst);
                false
            }
            // The store could not be reached: the next beat tries again; the lease lapses
            // on its own if none gets through.
            Err(_) => true,
        }
    }
}

impl Held {
    /// Starts the heartbeat of the lease at `key`, written as version `etag`.
    pub fn start(client: Client, key: String, etag: String, ttl: Duration) -> Held {
        let state = Arc::new(State {
            client,
            key,
            ttl,
            etag: Mutex::new(etag),
            lost: AtomicBool::new(false),
        });
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = (ttl / 3).max(Duration::from_millis(200));
        let s = state.clone();
        let beat = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if !s.renew() {
                    break;
                }
            }
        });
        Held {
            state,
            stop: Some(stop),
            beat: Some(beat),
        }
    }

    /// Renews the lease now: `Ok` while it holds, an error naming it once it lapsed (what
    /// it protected may have been collected since).
    pub fn confirm(&self, what: &str) -> Result<()> {
        if self.state.renew() {
            return Ok(());
        }
        Err(Error::remote(crate::error::RemoteFailure::Busy, format!(
            "{}: this {what}'s lease lapsed (it was not renewed within {} s) and upkeep may have run since; nothing was changed, run the command again",
            self.state.client.url_of(&self.state.key),
            self.state.ttl.as_secs()
        )))
    }

    /// Whether the heartbeat found the lease gone.
    pub fn lost(&self) -> bool {
        self.state.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.beat.take() {
            let _ = t.join();
        }
        let etag = self
            .state
            .etag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        remove(&self.state.client, &self.state.key, &etag);
    }
}

/// The writer leases this process holds, by store (`s3://BUCKET/PREFIX` at an endpoint):
/// writers of one process share one lease object, as on a directory.
type Shared = HashMap<String, (usize, Arc<Held>)>;

fn shared() -> std::sync::MutexGuard<'static, Shared> {
    static HELD: OnceLock<Mutex<Shared>> = OnceLock::new();
    HELD.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A share of this process's writer lease on one store; the last one dropped removes it.
pub struct WriterShare {
    store: String,
}

impl Drop for WriterShare {
    fn drop(&mut self) {
        let mut map = shared();
        let done = match map.get_mut(&self.store) {
            Some((n, _)) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if done {
            // Dropped outside the map's lock: removing the object is a request.
            let gone = map.remove(&self.store);
            drop(map);
            drop(gone);
        }
    }
}

/// Joins the writer lease this process holds on `store`, if it holds one.
pub fn join_writer(store: &str) -> Option<WriterShare> {
    let mut map = shared();
    let (n, _) = map.get_mut(store)?;
    *n += 1;
    Some(WriterShare {
        store: store.to_string(),
    })
}

/// Records `held` as this process's writer lease on `store` (or joins the one another
/// thread recorded meanwhile, dropping `held`).
pub fn share_writer(store: &str, held: Held) -> WriterShare {
    let mut map = shared();
    match map.get_mut(store) {
        Some((n, _)) => {
            *n += 1;
            drop(map);
            drop(held);
        }
        None => {
            map.insert(store.to_string(), (1, Arc::new(held)));
        }
    }
    WriterShare {
        store: store.to_string(),
    }
}

/// This process's writer lease on `store`, while it holds one.
pub fn writer_of(store: &str) -> Option<Arc<Held>> {
    shared().get(store).map(|(_, h)| h.clone())
}

/// A unique name for a writer lease of this process.
pub fn unique_writer_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let host: String = lock::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{n}-{nanos}", std::process::id())
}
