//! A mock remote: any [`Backend`] made to behave like a real CAS and NS network, as a
//! [`Profile`] says (latency, timeouts, failures, availability, late visibility, chunking,
//! size limits, expiry and gc, NS propagation, stale cached reads and update semantics,
//! rate limits, cost). Documented in `docs/remote-log-mocking.md`.
//!
//! Shape: one shared [`Mock`] holds the wrapped backend and what the remote knows (when
//! each object and record becomes visible, to whom, until when); each actor talks to it
//! through its own [`MockHandle`], which implements [`Backend`] and carries the actor's
//! identity, its clock, its random stream, its resolver cache and its request counts. So
//! remotelog's own code (`log::append`, `log::pages`) runs unchanged against a mock.
//!
//! Time is injected: a [`VirtualClock`] per actor for the simulator (a request's latency
//! advances the actor's time; nothing sleeps) or a [`RealClock`] (latencies sleep), and a
//! request is judged at the time it starts. The mock uses only the object and ref methods
//! of [`Backend`]; it never deletes from the wrapped backend (gc and expiry hide objects).
//!
//! Errors are what a client of the real service sees: a not-found, a timeout, `503 Slow
//! Down`, a refused record, an unreachable service, or a stale value with no error at all.
//! Why (collected, expired, not yet provided) is known only to the mock, and kept in the
//! handle's [`MockHandle::last_failure`] for the simulator's accounting.

pub mod dist;
pub mod profile;
pub mod schedule;
#[cfg(feature = "server")]
pub mod served;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::error::{Error, RemoteFailure, Result};
use crate::id::Id;
use crate::model::name::RefName;
use crate::store::{check_expected, Backend, Batch, BufferedBatch, Expected, Layout, WriteLease};

pub use dist::{Dist, Rng};
pub use profile::{Profile, Record, Semantics};
pub use schedule::{Availability, Schedule};

/// Microseconds since the mock's start.
pub type Micros = u64;

/// Seconds to microseconds (negative and NaN become 0, huge values saturate).
pub fn secs(s: f64) -> Micros {
    if s.is_nan() || s <= 0.0 {
        0
    } else {
        (s * 1e6).round().min(u64::MAX as f64) as Micros
    }
}

/// Microseconds to seconds.
pub fn to_secs(m: Micros) -> f64 {
    m as f64 / 1e6
}

/// The time of one actor.
pub trait Clock: Send + Sync {
    /// Now, in microseconds since the mock started.
    fn now(&self) -> Micros;
    /// Lets `d` pass: a request's latency.
    fn pass(&self, d: Micros);
}

/// Simulated time: `pass` only advances it, so 48 hours take no time at all.
#[derive(Debug, Default)]
pub struct VirtualClock(AtomicU64);

impl VirtualClock {
    /// A clock at `t`.
    pub fn new(t: Micros) -> VirtualClock {
        VirtualClock(AtomicU64::new(t))
    }

    /// Moves the clock to `t` (the simulator does, before an actor's step).
    pub fn set(&self, t: Micros) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
    fn pass(&self, d: Micros) {
        let t = self.now().saturating_add(d);
        self.0.store(t, Ordering::SeqCst);
    }
}

/// Wall-clock time from a start; `pass` sleeps (for a mock served to real clients).
#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A clock counting from `start` (share one start among all handles of a mock).
    pub fn new(start: Instant) -> RealClock {
        RealClock { start }
    }
}

impl Clock for RealClock {
    fn now(&self) -> Micros {
        self.start.elapsed().as_micros().min(u64::MAX as u128) as Micros
    }
    fn pass(&self, d: Micros) {
        std::thread::sleep(std::time::Duration::from_micros(d));
    }
}

/// Why a request failed (what the client saw is the returned error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The service was offline (availability).
    Unavailable,
    /// Over a rate limit.
    SlowDown,
    /// A random failure (the op's failure probability).
    Failed,
    /// Slower than the op's timeout.
    Timeout,
    /// An object or record over the size limit.
    TooLarge,
    /// A compare-and-swap found another value.
    Conflict,
    /// Not found, and why.
    NotFound(Miss),
}

/// Why an object or record was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Miss {
    /// Never stored.
    Absent,
    /// Stored, but not yet visible to this reader (provide / propagation pending).
    NotYetVisible,
    /// Removed by gc (unreferenced).
    Collected,
    /// Not republished in time.
    Expired,
}

impl Failure {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Unavailable => "unavailable",
            Failure::SlowDown => "slow-down",
            Failure::Failed => "failed",
            Failure::Timeout => "timeout",
            Failure::TooLarge => "too-large",
            Failure::Conflict => "conflict",
            Failure::NotFound(Miss::Absent) => "absent",
            Failure::NotFound(Miss::NotYetVisible) => "not-yet-visible",
            Failure::NotFound(Miss::Collected) => "collected",
            Failure::NotFound(Miss::Expired) => "expired",
        }
    }
}

/// What one handle did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// CAS put requests (objects).
    pub cas_puts: u64,
    /// CAS get requests (objects; presence checks included).
    pub cas_gets: u64,
    /// CAS round trips: chunks where the profile chunks, else one per request.
    pub cas_round_trips: u64,
    /// NS update requests.
    pub ns_updates: u64,
    /// NS fetches that went to the service.
    pub ns_fetches: u64,
    /// NS fetches answered from the reader's own cache.
    pub ns_cache_hits: u64,
    /// Cache answers that were older than what the service had visible.
    pub stale_reads: u64,
    /// Gets of the head page answered from the NS record it came in.
    pub record_hits: u64,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Cost in the profile's unit.
    pub cost: f64,
    /// Objects and records republished.
    pub republished: u64,
    /// Failed requests by kind.
    pub failures: BTreeMap<Failure, u64>,
}

impl Stats {
    /// Adds another handle's counts.
    pub fn add(&mut self, o: &Stats) {
        self.cas_puts += o.cas_puts;
        self.cas_gets += o.cas_gets;
        self.cas_round_trips += o.cas_round_trips;
        self.ns_updates += o.ns_updates;
        self.ns_fetches += o.ns_fetches;
        self.ns_cache_hits += o.ns_cache_hits;
        self.stale_reads += o.stale_reads;
        self.record_hits += o.record_hits;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.cost += o.cost;
        self.republished += o.republished;
        for (k, v) in &o.failures {
            *self.failures.entry(*k).or_default() += v;
        }
    }

    /// Requests that went to the service.
    pub fn requests(&self) -> u64 {
        self.cas_puts + self.cas_gets + self.ns_updates + self.ns_fetches
    }
}

/// An actor's number: who wrote an object or a record, who reads.
pub type Actor = u32;

#[derive(Debug, Clone)]
struct ObjMeta {
    owner: Actor,
    /// When the owner's put completed: from then on the owner finds it.
    owner_at: Micros,
    /// When everyone else finds it.
    visible_at: Micros,
    /// Last (re)publication, for expiry.
    refreshed: Micros,
    size: u64,
    collected: Option<Micros>,
}

#[derive(Debug, Clone)]
struct Version {
    value: Option<Id>,
    seq: u64,
    owner: Actor,
    owner_at: Micros,
    visible_at: Micros,
    refreshed: Micros,
    size: u64,
}

impl Version {
    fn visible_to(&self, actor: Actor, t: Micros) -> bool {
        if self.owner == actor {
            self.owner_at <= t
        } else {
            self.visible_at <= t
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum OpKind {
    CasPut,
    CasGet,
    NsUpdate,
    NsFetch,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::CasPut => "put",
            OpKind::CasGet => "get",
            OpKind::NsUpdate => "update",
            OpKind::NsFetch => "fetch",
        }
    }
}

struct State {
    objects: HashMap<Id, ObjMeta>,
    /// Versions of each name in commit order.
    names: BTreeMap<RefName, Vec<Version>>,
    availability: Availability,
    next_gc: Micros,
    /// Per writer: when its last successful NS update started. What it stored since is
    /// pinned (a push in flight, or one whose update failed and will be retried).
    last_commit: HashMap<Actor, Micros>,
    /// Per op kind: (second, requests in it), for rate limits.
    windows: [(u64, u32); 4],
}

/// A remote as a profile says it behaves, around a real backend. Share it with
/// `Arc` and give each actor a [`MockHandle`].
pub struct Mock {
    inner: Box<dyn Backend + Send + Sync>,
    profile: Profile,
    seed: u64,
    state: Mutex<State>,
    /// Told of every failed request, on the thread that made it ([`Mock::on_failure`]).
    observer: std::sync::OnceLock<Observer>,
}

/// What [`Mock::on_failure`] calls: why a request failed, and the error its client got.
pub type Observer = Box<dyn Fn(Failure, &Error) + Send + Sync>;

/// Most versions of a name kept once older ones can no longer win.
const KEEP_VERSIONS: usize = 4;

impl Mock {
    /// Wraps `inner`; `seed` makes every random choice repeat.
    pub fn new(inner: Box<dyn Backend + Send + Sync>, profile: Profile, seed: u64) -> Arc<Mock> {
        let availability = Availability::new(profile.availability.clone(), seed, &[0xa7a1]);
        let next_gc = profile
            .cas
            .gc
            .as_ref()
            .map_or(Micros::MAX, |g| secs(g.interval));
        Arc::new(Mock {
            inner,
            profile,
            seed,
            state: Mutex::new(State {
                objects: HashMap::new(),
                names: BTreeMap::new(),
                availability,
                next_gc,
                last_commit: HashMap::new(),
                windows: [(u64::MAX, 0); 4],
            }),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Calls `f` with every failed request's cause and error, on the thread that made the
    /// request (`serve --mock` turns them into HTTP answers). Only the first call counts.
    pub fn on_failure(&self, f: Observer) {
        let _ = self.observer.set(f);
    }

    /// The profile followed.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The wrapped backend, as it is (no latency, no visibility rules).
    pub fn inner(&self) -> &dyn Backend {
        &*self.inner
    }

    /// A handle for actor `actor` whose time is `clock`.
    pub fn handle(self: &Arc<Self>, actor: Actor, clock: Arc<dyn Clock>) -> MockHandle {
        MockHandle {
            mock: self.clone(),
            actor,
            clock,
            local: Mutex::new(Local {
                rng: Rng::derive(self.seed, &[0x4ac7, actor as u64]),
                cache: BTreeMap::new(),
                record: None,
                seqs: BTreeMap::new(),
                stats: Stats::default(),
                last: None,
                last_stale: false,
            }),
        }
    }

    /// Whether the service is up at `t`.
    pub fn available(&self, t: Micros) -> bool {
        lock(&self.state).availability.online(t)
    }

    fn location(&self) -> String {
        format!("mock {} of {}", self.profile.name, self.inner.location())
    }

    /// Runs the collections due by `t`: marks from every name's newest value.
    fn collect(&self, st: &mut State, t: Micros) {
        let Some(gc) = &self.profile.cas.gc else {
            return;
        };
        let interval = secs(gc.interval).max(1);
        let grace = secs(gc.grace);
        while st.next_gc <= t {
            let at = st.next_gc;
            st.next_gc = at.saturating_add(interval);
            let mut marked: HashSet<Id> = HashSet::new();
            let mut complete = true;
            for versions in st.names.values() {
                let Some(head) = versions.last().and_then(|v| v.value) else {
                    continue;
                };
                for page in crate::log::pages(&*self.inner, Some(head)) {
                    match page {
                        Ok((id, page)) => {
                            if !marked.insert(id) {
                                break;
                            }
                            marked.extend(page.entries.iter().map(|e| e.h2));
                        }
                        Err(_) => {
                            // An unreadable chain must not make its objects look unreferenced.
                            complete = false;
                            break;
                        }
                    }
                }
            }
            if !complete {
                continue;
            }
            let last_commit = &st.last_commit;
            for (id, meta) in st.objects.iter_mut() {
                let pinned = last_commit
                    .get(&meta.owner)
                    .is_none_or(|c| meta.owner_at > *c);
                if meta.collected.is_none()
                    && !pinned
                    && meta.owner_at.saturating_add(grace) <= at
                    && !marked.contains(id)
                {
                    meta.collected = Some(at);
                }
            }
        }
    }
}

struct Local {
    rng: Rng,
    /// The reader's resolver cache: name → (value, record size, valid until).
    cache: BTreeMap<RefName, (Option<Id>, u64, Micros)>,
    /// The head page that came with the last NS answer, when records hold head pages.
    record: Option<Id>,
    /// The last sequence number this actor published per name.
    seqs: BTreeMap<RefName, u64>,
    stats: Stats,
    last: Option<Failure>,
    last_stale: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment or insert.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One actor's view of a [`Mock`]: a [`Backend`] whose answers depend on who asks and when.
pub struct MockHandle {
    mock: Arc<Mock>,
    actor: Actor,
    clock: Arc<dyn Clock>,
    local: Mutex<Local>,
}

/// A request's result and how long it took.
type Outcome<T> = (Result<T>, Micros);

impl MockHandle {
    /// The actor this handle speaks for.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// What this handle did so far.
    pub fn stats(&self) -> Stats {
        lock(&self.local).stats.clone()
    }

    /// Why the last failed request failed (cleared by [`MockHandle::clear_failure`]).
    pub fn last_failure(&self) -> Option<Failure> {
        lock(&self.local).last
    }

    /// Forgets the last failure.
    pub fn clear_failure(&self) {
        lock(&self.local).last = None;
    }

    /// Whether the last NS answer came from the cache while the service had a newer value.
    pub fn last_fetch_stale(&self) -> bool {
        lock(&self.local).last_stale
    }

    /// Republishes what this actor stored and published (IPFS provider records, IPNS
    /// records): their expiry starts again now. Returns how many were refreshed.
    pub fn republish(&self) -> u64 {
        let t = self.clock.now();
        let mut local = lock(&self.local);
        let mut st = lock(&self.mock.state);
        let mut n = 0;
        if self.mock.profile.cas.expiry.is_some() {
            for meta in st.objects.values_mut() {
                if meta.owner == self.actor && meta.collected.is_none() {
                    meta.refreshed = t;
                    n += 1;
                }
            }
        }
        if self.mock.profile.ns.expiry.is_some() {
            for versions in st.names.values_mut() {
                if let Some(v) = versions.iter_mut().rev().find(|v| v.owner == self.actor) {
                    v.refreshed = t;
                    n += 1;
                }
            }
        }
        local.stats.republished += n;
        n
    }

    fn service(&self, ns: bool) -> &str {
        if ns {
            &self.mock.profile.ns.service
        } else {
            &self.mock.profile.cas.service
        }
    }

    fn op(&self, kind: OpKind) -> &profile::Op {
        let p = &self.mock.profile;
        match kind {
            OpKind::CasPut => &p.cas.put,
            OpKind::CasGet => &p.cas.get,
            OpKind::NsUpdate => &p.ns.update,
            OpKind::NsFetch => &p.ns.fetch,
        }
    }

    fn fail<T>(&self, local: &mut Local, f: Failure, e: Error, latency: Micros) -> Outcome<T> {
        if let Some(observe) = self.mock.observer.get() {
            observe(f, &e);
        }
        local.last = Some(f);
        *local.stats.failures.entry(f).or_default() += 1;
        (Err(e), latency)
    }

    /// Availability, rate limit and random failure, in that order; `Some` when the
    /// request fails here.
    fn gate<T>(
        &self,
        local: &mut Local,
        st: &mut State,
        kind: OpKind,
        t: Micros,
        what: &str,
    ) -> Option<Outcome<T>> {
        let p = &self.mock.profile;
        let ns = matches!(kind, OpKind::NsUpdate | OpKind::NsFetch);
        let service = self.service(ns);
        let op = self.op(kind);
        if !st.availability.online(t) {
            let e = Error::remote(
                RemoteFailure::Unreachable,
                format!(
                "{service} {} of {what}: {} (mock profile {}: the service is offline now); retry later",
                kind.name(),
                p.unavailable_error,
                p.name
            ),
            );
            return Some(self.fail(local, Failure::Unavailable, e, secs(p.unavailable_after)));
        }
        let limit = match kind {
            OpKind::CasPut => p.limits.cas_put,
            OpKind::CasGet => p.limits.cas_get,
            OpKind::NsUpdate => p.limits.ns_update,
            OpKind::NsFetch => p.limits.ns_fetch,
        };
        if let Some(limit) = limit {
            let w = &mut st.windows[kind as usize];
            let second = t / 1_000_000;
            if w.0 != second {
                *w = (second, 0);
            }
            if w.1 >= limit {
                let e = Error::remote(
                    RemoteFailure::Status(503),
                    format!(
                    "{service} answered {} to the {} of {what}: over {limit} requests per second (mock profile {}); back off and retry",
                    p.limits.answer,
                    kind.name(),
                    p.name
                ),
                );
                let lat = secs(op.latency.sample(&mut local.rng));
                return Some(self.fail(local, Failure::SlowDown, e, lat));
            }
            w.1 += 1;
        }
        if local.rng.chance(op.failure) {
            let e = Error::remote(
                RemoteFailure::Status(502),
                format!(
                    "{service} {} of {what} failed: {} (mock profile {}); retry",
                    kind.name(),
                    op.error,
                    p.name
                ),
            );
            let lat = secs(op.latency.sample(&mut local.rng));
            return Some(self.fail(local, Failure::Failed, e, lat));
        }
        None
    }

    /// Samples the latency of a request moving `size` bytes: one round trip, or the chunks'
    /// round trips `chunk_parallel` at a time. `Err` carries the time until the timeout.
    fn latency(
        &self,
        local: &mut Local,
        kind: OpKind,
        size: u64,
    ) -> (std::result::Result<Micros, Micros>, u64) {
        let op = self.op(kind);
        let cas = &self.mock.profile.cas;
        let timeout = op.timeout.map(secs);
        let n = match kind {
            OpKind::CasPut | OpKind::CasGet => chunks(size, cas.chunk),
            _ => 1,
        };
        let parallel = cas.chunk_parallel.max(1) as u64;
        let mut total: Micros = 0;
        let mut left = n;
        while left > 0 {
            let wave = left.min(parallel);
            left -= wave;
            let mut slowest = 0;
            for _ in 0..wave {
                slowest = slowest.max(secs(op.latency.sample(&mut local.rng)));
            }
            if let Some(limit) = timeout {
                if slowest > limit {
                    return (Err(total.saturating_add(limit)), n);
                }
            }
            total = total.saturating_add(slowest);
        }
        (Ok(total), n)
    }

    fn timeout<T>(&self, local: &mut Local, kind: OpKind, what: &str, after: Micros) -> Outcome<T> {
        let ns = matches!(kind, OpKind::NsUpdate | OpKind::NsFetch);
        let limit = self.op(kind).timeout.unwrap_or(0.0);
        let e = Error::remote(
            RemoteFailure::TooSlow,
            format!(
                "{} {} of {what} timed out after {limit} s (mock profile {}); retry",
                self.service(ns),
                kind.name(),
                self.mock.profile.name
            ),
        );
        self.fail(local, Failure::Timeout, e, after)
    }

    /// Whether an object is there for this actor at `t`, and if not, why.
    fn object_state(
        &self,
        st: &State,
        id: &Id,
        t: Micros,
    ) -> Result<std::result::Result<u64, Miss>> {
        let cas = &self.mock.profile.cas;
        match st.objects.get(id) {
            // Stored before the mock was put in front: visible to all. Its size decides
            // how many chunks it takes.
            None => match self.mock.inner.get_object(id) {
                Ok(bytes) => Ok(Ok(bytes.len() as u64)),
                Err(crate::Error::ObjectMissing { .. }) => Ok(Err(Miss::Absent)),
                Err(e) => Err(e),
            },
            Some(m) => {
                if m.collected.is_some_and(|c| c <= t) {
                    return Ok(Err(Miss::Collected));
                }
                if cas
                    .expiry
                    .is_some_and(|e| t > m.refreshed.saturating_add(secs(e)))
                {
                    return Ok(Err(Miss::Expired));
                }
                let from = if m.owner == self.actor {
                    m.owner_at
                } else {
                    m.visible_at
                };
                if t < from {
                    return Ok(Err(Miss::NotYetVisible));
                }
                Ok(Ok(m.size))
            }
        }
    }

    fn get(&self, id: &Id, want_bytes: bool) -> Outcome<Option<Vec<u8>>> {
        let t = self.clock.now();
        let mut local = lock(&self.local);
        let mut st = lock(&self.mock.state);
        self.mock.collect(&mut st, t);
        if want_bytes
            && self.mock.profile.ns.record == Record::HeadPage
            && local.record == Some(*id)
        {
            // The page came inside the NS record: no CAS request.
            local.stats.record_hits += 1;
            return (self.mock.inner.get_object(id).map(Some), 0);
        }
        let what = format!("object {id}");
        if let Some(out) = self.gate(&mut local, &mut st, OpKind::CasGet, t, &what) {
            return out;
        }
        let state = match self.object_state(&st, id, t) {
            Ok(s) => s,
            Err(e) => return (Err(e), 0),
        };
        let size = *state.as_ref().unwrap_or(&0);
        let (lat, n) = self.latency(&mut local, OpKind::CasGet, size);
        local.stats.cas_gets += 1;
        local.stats.cas_round_trips += n;
        local.stats.cost += self.mock.profile.cost.cas_get * n as f64;
        let lat = match lat {
            Ok(l) => l,
            Err(after) => return self.timeout(&mut local, OpKind::CasGet, &what, after),
        };
        match state {
            Err(miss) => {
                if !want_bytes {
                    return (Ok(None), lat);
                }
                let after = self.mock.profile.cas.miss_latency.map_or(lat, secs);
                if miss != Miss::Absent && self.mock.profile.cas.miss_latency.is_some() {
                    // A client of a service without "not found" waits for its timeout.
                    let e = Error::remote(
                        RemoteFailure::TooSlow,
                        format!(
                        "{} get of {what} timed out after {} s: no provider found (mock profile {})",
                        self.service(false),
                        to_secs(after),
                        self.mock.profile.name
                    ),
                    );
                    return self.fail(&mut local, Failure::NotFound(miss), e, after);
                }
                let e = Error::ObjectMissing {
                    id: *id,
                    location: format!("{} via {}", self.service(false), self.mock.location()),
                };
                self.fail(&mut local, Failure::NotFound(miss), e, after)
            }
            Ok(_) if !want_bytes => (Ok(Some(Vec::new())), lat),
            Ok(_) => match self.mock.inner.get_object(id) {
                Ok(bytes) => {
                    local.stats.bytes_down += bytes.len() as u64;
                    (Ok(Some(bytes)), lat)
                }
                Err(e) => (Err(e), lat),
            },
        }
    }

    /// One put request carrying `objects` (one object, or a batch where the profile
    /// takes batches); returns how many were new.
    fn put(&self, objects: &[(Id, &[u8])]) -> Outcome<usize> {
        let t = self.clock.now();
        let mut local = lock(&self.local);
        let mut st = lock(&self.mock.state);
        self.mock.collect(&mut st, t);
        let what = match objects {
            [(id, _)] => format!("object {id}"),
            _ => format!("{} objects", objects.len()),
        };
        if let Some(out) = self.gate(&mut local, &mut st, OpKind::CasPut, t, &what) {
            return out;
        }
        let p = &self.mock.profile;
        let size: u64 = objects.iter().map(|(_, b)| b.len() as u64).sum();
        if let Some(max) = p.cas.max_object {
            if let Some((id, b)) = objects.iter().find(|(_, b)| b.len() as u64 > max) {
                let e = Error::remote(
                    RemoteFailure::Status(413),
                    format!(
                    "{} refused to store object {id}: {} bytes is over its limit of {max} bytes (mock profile {}); use smaller pages or embed fewer messages",
                    p.cas.service,
                    b.len(),
                    p.name
                ),
                );
                return self.fail(&mut local, Failure::TooLarge, e, 0);
            }
        }
        let (lat, n) = self.latency(&mut local, OpKind::CasPut, size);
        local.stats.cas_puts += 1;
        local.stats.cas_round_trips += n;
        local.stats.cost += p.cost.cas_put * n as f64;
        let lat = match lat {
            Ok(l) => l,
            Err(after) => return self.timeout(&mut local, OpKind::CasPut, &what, after),
        };
        if let Err(e) = self.mock.inner.put_objects(objects) {
            return (Err(e), lat);
        }
        local.stats.bytes_up += size;
        let done = t.saturating_add(lat);
        let mut new = 0;
        for (id, bytes) in objects {
            let visible = done.saturating_add(secs(p.cas.visibility.sample(&mut local.rng)));
            if self.stored(&mut st, id, bytes.len() as u64, done, visible) {
                new += 1;
            }
        }
        (Ok(new), lat)
    }

    /// Records that this actor stored `id` at `done`; true when it is new to the mock.
    fn stored(&self, st: &mut State, id: &Id, size: u64, done: Micros, visible: Micros) -> bool {
        let fresh = ObjMeta {
            owner: self.actor,
            owner_at: done,
            visible_at: visible,
            refreshed: done,
            size,
            collected: None,
        };
        match st.objects.get_mut(id) {
            // Stored again: a republication; a collected object comes back.
            Some(m) if m.collected.is_none() => {
                m.refreshed = done;
                false
            }
            Some(m) => {
                *m = fresh;
                true
            }
            None => {
                st.objects.insert(*id, fresh);
                true
            }
        }
    }

    /// The value of `name` this actor sees at `t` by the update semantics, with its
    /// record size; `Err` when there is none (never published, or expired).
    fn winner(
        &self,
        st: &State,
        name: &RefName,
        t: Micros,
    ) -> Result<std::result::Result<(Option<Id>, u64), Miss>> {
        let p = &self.mock.profile;
        let Some(versions) = st.names.get(name) else {
            // Published before the mock was put in front: visible to all.
            return Ok(match self.mock.inner.read_ref(name)? {
                Some(id) => Ok((Some(id), 32)),
                None => Err(Miss::Absent),
            });
        };
        let visible = versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.visible_to(self.actor, t));
        let best = match p.ns.semantics {
            Semantics::HighestSeq => visible.max_by_key(|(i, v)| (v.seq, *i)),
            Semantics::Cas | Semantics::Lww => visible.last(),
        };
        let Some((_, v)) = best else {
            return Ok(Err(if versions.is_empty() {
                Miss::Absent
            } else {
                Miss::NotYetVisible
            }));
        };
        if p.ns
            .expiry
            .is_some_and(|e| t > v.refreshed.saturating_add(secs(e)))
        {
            return Ok(Err(Miss::Expired));
        }
        Ok(Ok((v.value, v.size)))
    }

    fn fetch(&self, name: &RefName) -> Outcome<Option<Id>> {
        let t = self.clock.now();
        let mut local = lock(&self.local);
        let mut st = lock(&self.mock.state);
        self.mock.collect(&mut st, t);
        let p = &self.mock.profile;
        let head_page = p.ns.record == Record::HeadPage;
        if let Some((value, _, until)) = local.cache.get(name).copied() {
            if t < until {
                local.stats.ns_cache_hits += 1;
                let truth = self
                    .winner(&st, name, t)
                    .ok()
                    .and_then(|w| w.ok())
                    .map(|w| w.0);
                let stale = truth.is_some() && truth != Some(value);
                local.last_stale = stale;
                if stale {
                    local.stats.stale_reads += 1;
                }
                if head_page {
                    local.record = value;
                }
                return (Ok(value), 0);
            }
        }
        local.last_stale = false;
        let what = format!("name {name}");
        if let Some(out) = self.gate(&mut local, &mut st, OpKind::NsFetch, t, &what) {
            return out;
        }
        let (lat, _) = self.latency(&mut local, OpKind::NsFetch, 0);
        local.stats.ns_fetches += 1;
        local.stats.cost += p.cost.ns_fetch;
        let lat = match lat {
            Ok(l) => l,
            Err(after) => return self.timeout(&mut local, OpKind::NsFetch, &what, after),
        };
        let (value, size) = match self.winner(&st, name, t) {
            Err(e) => return (Err(e), lat),
            Ok(Ok(w)) => w,
            Ok(Err(miss)) => {
                // A client sees "no such name"; the reason stays with the mock.
                local.last = Some(Failure::NotFound(miss));
                *local
                    .stats
                    .failures
                    .entry(Failure::NotFound(miss))
                    .or_default() += 1;
                (None, 0)
            }
        };
        local.stats.bytes_down += size;
        if p.ns.stale_ttl > 0.0 && value.is_some() {
            let until = t.saturating_add(lat).saturating_add(secs(p.ns.stale_ttl));
            local.cache.insert(name.clone(), (value, size, until));
        }
        if head_page {
            local.record = value;
        }
        (Ok(value), lat)
    }

    fn update(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Outcome<()> {
        let t = self.clock.now();
        let mut local = lock(&self.local);
        let mut st = lock(&self.mock.state);
        self.mock.collect(&mut st, t);
        let p = &self.mock.profile;
        let what = format!("name {name}");
        if let Some(out) = self.gate(&mut local, &mut st, OpKind::NsUpdate, t, &what) {
            return out;
        }
        let size = match (p.ns.record, new) {
            (Record::HeadPage, Some(id)) => match st.objects.get(&id) {
                Some(m) => m.size,
                None => match self.mock.inner.get_object(&id) {
                    Ok(b) => b.len() as u64,
                    Err(e) => return (Err(e), 0),
                },
            },
            _ => 32,
        };
        if let Some(max) = p.ns.max_record.filter(|m| size > *m) {
            let fit = p.entries_per_record().unwrap_or(0);
            let e = Error::remote(
                RemoteFailure::Status(413),
                format!(
                "{} refused the record for {name}: {size} bytes is over its limit of {max} bytes (mock profile {}); a head page of at most {fit} entries without embedded messages fits: use --page-size {} or less",
                p.ns.service,
                p.name,
                largest_round(fit)
            ),
            );
            return self.fail(&mut local, Failure::TooLarge, e, 0);
        }
        let (lat, _) = self.latency(&mut local, OpKind::NsUpdate, size);
        local.stats.ns_updates += 1;
        local.stats.cost += p.cost.ns_update;
        let lat = match lat {
            Ok(l) => l,
            Err(after) => return self.timeout(&mut local, OpKind::NsUpdate, &what, after),
        };
        let committed = match st.names.get(name).and_then(|v| v.last()) {
            Some(v) => v.value,
            None => match self.mock.inner.read_ref(name) {
                Ok(v) => v,
                Err(e) => return (Err(e), lat),
            },
        };
        if p.ns.semantics == Semantics::Cas {
            if let Err(e) = check_expected(name, expected, committed) {
                return self.fail(&mut local, Failure::Conflict, e, lat);
            }
        }
        // The wrapped backend holds the newest committed value, whatever readers see.
        if let Err(e) = self.mock.inner.update_ref(name, committed.into(), new) {
            return (Err(e), lat);
        }
        let seq = match p.ns.semantics {
            // A publisher numbers from what it published itself: IPNS has no shared
            // counter, so two publishers of one name can overwrite each other.
            Semantics::HighestSeq => local.seqs.get(name).copied().unwrap_or(0) + 1,
            _ => 0,
        };
        local.seqs.insert(name.clone(), seq);
        local.stats.bytes_up += size;
        let done = t.saturating_add(lat);
        let visible = done.saturating_add(secs(p.ns.propagation.sample(&mut local.rng)));
        st.last_commit.insert(self.actor, t);
        let versions = st.names.entry(name.clone()).or_default();
        versions.push(Version {
            value: new,
            seq,
            owner: self.actor,
            owner_at: done,
            visible_at: visible,
            refreshed: done,
            size,
        });
        prune(versions, p.ns.semantics, t);
        // The writer's own cache follows its own update.
        local.cache.remove(name);
        (Ok(()), lat)
    }

    fn finish<T>(&self, (res, lat): Outcome<T>) -> Result<T> {
        self.clock.pass(lat);
        res
    }
}

/// Drops versions that can no longer win for anyone at or after `t`: those older than
/// the newest version everyone sees (by sequence number under highest-seq).
fn prune(versions: &mut Vec<Version>, sem: Semantics, t: Micros) {
    if versions.len() <= KEEP_VERSIONS {
        return;
    }
    let Some(i) = versions
        .iter()
        .rposition(|v| v.visible_at <= t && v.owner_at <= t)
    else {
        return;
    };
    let anchor = versions[i].seq;
    let mut k = 0;
    versions.retain(|v| {
        k += 1;
        k > i || (sem == Semantics::HighestSeq && v.seq > anchor)
    });
}

/// The number of round trips for an object of `size` bytes in chunks of `chunk` bytes:
/// the data chunks plus the inner chunks of a tree of references (32 bytes each).
pub fn chunks(size: u64, chunk: u64) -> u64 {
    if chunk == 0 {
        return 1;
    }
    let branching = (chunk / 32).max(2);
    let mut level = size.div_ceil(chunk).max(1);
    let mut total = level;
    while level > 1 {
        level = level.div_ceil(branching);
        total += level;
    }
    total
}

/// The largest of the matrix's page sizes (1, 16, 128, 256) at most `n`, for advice.
fn largest_round(n: u64) -> u64 {
    [256, 128, 16, 1].into_iter().find(|s| *s <= n).unwrap_or(1)
}

impl Backend for MockHandle {
    fn location(&self) -> String {
        self.mock.location()
    }

    fn object_location(&self, id: &Id) -> String {
        format!("{} object {id}", self.mock.location())
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        let out = self.get(id, true);
        self.finish(out).map(|b| b.unwrap_or_default())
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        let out = self.get(id, false);
        self.finish(out).map(|b| b.is_some())
    }

    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        if self.mock.profile.cas.batch {
            if objects.is_empty() {
                return Ok(0);
            }
            let out = self.put(objects);
            return self.finish(out);
        }
        let mut written = 0;
        for object in objects {
            let out = self.put(std::slice::from_ref(object));
            written += self.finish(out)?;
        }
        Ok(written)
    }

    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(BufferedBatch::new(self)))
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        self.mock.inner.list_objects()
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        self.mock.inner.objects_with_prefix(prefix)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        let out = self.fetch(name);
        self.finish(out)
    }

    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        let out = self.update(name, expected, new);
        self.finish(out)
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        self.mock.inner.list_refs(prefix)
    }

    fn write_lease_waiting(&self, wait: std::time::Duration) -> Result<WriteLease> {
        self.mock.inner.write_lease_waiting(wait)
    }

    fn layout(&self) -> Result<Layout> {
        self.mock.inner.layout()
    }
}
