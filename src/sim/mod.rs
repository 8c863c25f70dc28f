//! The sync simulator: writers and readers of remote logs as actors in one process, on a
//! virtual clock, against a [`Mock`] remote over the in-memory backend. Documented in
//! `docs/remote-log-mocking.md`.
//!
//! Each actor is a state machine that makes at most one request per step; the scheduler
//! runs steps in time order (ties by actor number), so requests take effect in the order
//! of the times they start, and a scenario of 48 simulated hours runs in seconds. A
//! writer keeps its log in a local store, appends with remotelog's own `log::append`, and
//! pushes like `remotelog push`: message objects, then pages oldest first, then one NS
//! update. A reader polls: NS fetch, then the new pages, then each message not embedded.
//! Every random choice comes from the scenario's seed: the same seed gives the same run.

pub mod matrix;
pub mod options;
pub mod output;

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::log::{self, Settings, SettingsChange};
use crate::mock::{
    secs, Availability, Clock, Dist, Failure, Micros, Miss, Mock, MockHandle, Profile, Rng,
    Schedule, Stats, VirtualClock,
};
use crate::model::name::RefName;
use crate::model::object::{decode_page, Entry, Message, Page};
use crate::store::{Backend, MemStore};

/// Steps one run may take before it is stopped as too large.
const MAX_STEPS: u64 = 200_000_000;
/// Messages one run may create.
pub const MAX_MESSAGES: u64 = 5_000_000;
/// Longest simulated span of a run, seconds (a year).
const MAX_SPAN: f64 = 366.0 * 86400.0;
/// Most polls (all readers) one run may make.
const MAX_POLLS: f64 = 50_000_000.0;

/// When a writer pushes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Push {
    /// After every message, as soon as it is online.
    Each,
    /// At every multiple of this many seconds, when online and something is new.
    Every(f64),
    /// Once each time it comes online, whatever gathered meanwhile.
    Online,
}

impl Push {
    /// Parses `each`, `every:SECONDS` or `online`.
    pub fn parse(text: &str) -> Result<Push> {
        let p = match text.split_once(':') {
            None if text == "each" => Push::Each,
            None if text == "online" => Push::Online,
            Some(("every", s)) => match s.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.001 => Push::Every(s),
                _ => return Err(Error::Invalid(format!("push policy {text:?}: every:SECONDS needs a number of seconds of at least 0.001"))),
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "push policy {text:?}: use each, every:SECONDS or online"
                )))
            }
        };
        Ok(p)
    }

    /// The command-line form.
    pub fn label(&self) -> String {
        match self {
            Push::Each => "each".into(),
            Push::Every(s) => format!("every:{s}"),
            Push::Online => "online".into(),
        }
    }
}

/// One simulated situation.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The remote.
    pub profile: Profile,
    /// The writers' page settings.
    pub settings: Settings,
    /// Seconds during which writers create messages.
    pub duration: f64,
    /// Seconds the run goes on after that, for the last messages to arrive.
    pub drain: f64,
    /// Writers, each with its own log.
    pub writers: u32,
    /// Mean seconds between a writer's messages.
    pub interval: f64,
    /// Exponential gaps (a Poisson process) instead of a fixed interval.
    pub poisson: bool,
    /// Message body sizes in bytes.
    pub size: Dist,
    /// When writers push.
    pub push: Push,
    /// When writers are online.
    pub writer_schedule: Schedule,
    /// Readers, each following every log.
    pub readers: u32,
    /// When readers are online.
    pub reader_schedule: Schedule,
    /// Seconds between a reader's polls while online (it also polls on coming online).
    pub poll: f64,
    /// Seconds a writer waits after a failed push before it tries again.
    pub retry: f64,
    /// The seed of every random choice.
    pub seed: u64,
}

impl Scenario {
    /// Checks that the run is well-formed and bounded.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if !(finite_pos(self.duration) && self.drain.is_finite() && self.drain >= 0.0) {
            return bad("the duration must be above 0 and the drain 0 or more".into());
        }
        if !finite_pos(self.interval) || !finite_pos(self.poll) || !finite_pos(self.retry) {
            return bad(
                "the message interval, poll interval and retry delay must be above 0 seconds"
                    .into(),
            );
        }
        if self.writers == 0 || self.readers == 0 || self.writers > 1000 || self.readers > 10_000 {
            return bad("give 1 to 1,000 writers and 1 to 10,000 readers".into());
        }
        let messages = self.duration / self.interval * self.writers as f64;
        if messages > MAX_MESSAGES as f64 {
            return bad(format!(
                "{messages:.0} messages: a run may create at most {MAX_MESSAGES}; shorten the duration or raise the interval"
            ));
        }
        if self.poll < 0.001 || self.interval < 0.001 {
            return bad("intervals below a millisecond are not simulated".into());
        }
        let span = self.duration + self.drain;
        if span > MAX_SPAN {
            return bad(format!(
                "{span:.0} s: a run may span at most a year of simulated time (duration and drain)"
            ));
        }
        let polls = span / self.poll * self.readers as f64;
        if polls > MAX_POLLS {
            return bad(format!(
                "{polls:.0} polls: a run may make at most {MAX_POLLS:.0}; poll less often or simulate fewer readers"
            ));
        }
        Ok(())
    }
}

/// Why a message had not reached a reader when the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The writer had not pushed it (offline, or it was not yet time).
    Unpushed,
    /// The remote refused the writer's object or record (size limit).
    Refused,
    /// Published, but not yet visible to the reader (propagation, provide).
    InFlight,
    /// The reader's NS answer came from a stale cache.
    Stale,
    /// An object the reader needed had been garbage-collected.
    Gc,
    /// An object or record had expired.
    Expiry,
    /// The remote was unreachable, timed out, failed or throttled the reader.
    Unavailable,
    /// The reader was offline since it was published.
    Offline,
}

impl Cause {
    /// Every cause, in table order.
    pub const ALL: [Cause; 8] = [
        Cause::Unpushed,
        Cause::Refused,
        Cause::InFlight,
        Cause::Stale,
        Cause::Gc,
        Cause::Expiry,
        Cause::Unavailable,
        Cause::Offline,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Unpushed => "unpushed",
            Cause::Refused => "refused",
            Cause::InFlight => "in_flight",
            Cause::Stale => "stale",
            Cause::Gc => "gc",
            Cause::Expiry => "expiry",
            Cause::Unavailable => "unavailable",
            Cause::Offline => "offline",
        }
    }

    fn of(f: Failure) -> Cause {
        match f {
            Failure::NotFound(Miss::Collected) => Cause::Gc,
            Failure::NotFound(Miss::Expired) => Cause::Expiry,
            Failure::NotFound(_) => Cause::InFlight,
            Failure::TooLarge | Failure::Conflict => Cause::Refused,
            Failure::Unavailable | Failure::Timeout | Failure::SlowDown | Failure::Failed => {
                Cause::Unavailable
            }
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Messages created (all writers).
    pub messages: u64,
    /// Their body bytes.
    pub payload_bytes: u64,
    /// (reader, message) deliveries.
    pub delivered: u64,
    /// Body bytes delivered (summed over readers).
    pub delivered_bytes: u64,
    /// Per delivery: from the message's creation to the reader having it.
    pub latencies: Vec<Micros>,
    /// Per reader session that started behind: from coming online to having everything
    /// published before then.
    pub catchups: Vec<Micros>,
    /// Sessions that ended before catching up.
    pub catchup_incomplete: u64,
    /// What the readers' handles did.
    pub readers: Stats,
    /// What the writers' handles did.
    pub writers: Stats,
    /// (reader, message) pairs missing at the end, by cause.
    pub missing: BTreeMap<Cause, u64>,
    /// Scheduler steps taken.
    pub steps: u64,
}

impl RunResult {
    /// Bytes moved by everyone per body byte delivered.
    pub fn bandwidth(&self) -> f64 {
        let moved = self.readers.bytes_up
            + self.readers.bytes_down
            + self.writers.bytes_up
            + self.writers.bytes_down;
        if self.delivered_bytes == 0 {
            f64::NAN
        } else {
            moved as f64 / self.delivered_bytes as f64
        }
    }
}

/// What writers tell readers (for measuring only: actors learn nothing through it).
#[derive(Default)]
struct World {
    /// Per writer, per position: creation time and body size.
    created: Vec<Vec<(Micros, u32)>>,
    /// Per writer: (time the NS update completed, log length), in order.
    commits: Vec<Vec<(Micros, u64)>>,
    /// Decoded pages by id, shared so that each page is decoded once per run.
    pages: HashMap<Id, Rc<Page>>,
    result: RunResult,
}

impl World {
    fn committed_at(&self, w: usize, t: Micros) -> u64 {
        let c = &self.commits[w];
        let i = c.partition_point(|(at, _)| *at <= t);
        if i == 0 {
            0
        } else {
            c[i - 1].1
        }
    }

    fn commit_time(&self, w: usize, pos: u64) -> Option<Micros> {
        self.commits[w]
            .iter()
            .find(|(_, n)| *n > pos)
            .map(|(t, _)| *t)
    }
}

struct PushJob {
    queue: VecDeque<(Id, Vec<u8>)>,
    head: Id,
    count: u64,
}

struct Writer {
    idx: usize,
    refname: RefName,
    handle: MockHandle,
    clock: Arc<VirtualClock>,
    rng: Rng,
    local: MemStore,
    online: Availability,
    next_arrival: Micros,
    created: u64,
    pending: Vec<Message>,
    local_head: Option<Id>,
    local_count: u64,
    remote_head: Option<Id>,
    remote_count: u64,
    pushed: HashSet<Id>,
    job: Option<PushJob>,
    retry_at: Micros,
    next_tick: Micros,
    session_done_until: Micros,
    next_republish: Micros,
    last_failure: Option<Failure>,
}

#[derive(Default)]
struct Follow {
    walked: u64,
    walked_head: Option<Id>,
    pending: VecDeque<(u64, Entry)>,
    delivered: u64,
    last_cause: Option<Failure>,
    stale: bool,
    polled_at: Micros,
}

enum Phase {
    Fetch,
    Walk {
        head: Id,
        next: Id,
        collected: Vec<(u64, Entry)>,
    },
    Get,
}

struct Reader {
    /// Pages this reader has fetched: pages never change, so a walk that failed halfway
    /// resumes without fetching them again.
    fetched: HashSet<Id>,
    handle: MockHandle,
    clock: Arc<VirtualClock>,
    online: Availability,
    follows: Vec<Follow>,
    poll: Option<(usize, Phase)>,
    next_poll: Micros,
    session_end: Micros,
    catchup: Option<(Micros, Vec<u64>)>,
}

enum Actor {
    Writer(Box<Writer>),
    Reader(Box<Reader>),
}

/// Runs one scenario.
pub fn run(s: &Scenario) -> Result<RunResult> {
    s.validate()?;
    let mock = Mock::new(Box::new(MemStore::new()), s.profile.clone(), s.seed);
    let end_appends = secs(s.duration);
    let end = end_appends.saturating_add(secs(s.drain));
    let mut world = World {
        created: vec![Vec::new(); s.writers as usize],
        commits: vec![Vec::new(); s.writers as usize],
        ..World::default()
    };
    let mut actors = Vec::new();
    for w in 0..s.writers {
        let clock = Arc::new(VirtualClock::new(0));
        let mut rng = Rng::derive(s.seed, &[1, w as u64]);
        let first = gap(s, &mut rng) / 2;
        actors.push(Actor::Writer(Box::new(Writer {
            idx: w as usize,
            refname: RefName::log(&format!("w{w}"))?,
            handle: mock.handle(w, clock.clone()),
            clock,
            rng,
            local: MemStore::new(),
            online: Availability::new(s.writer_schedule.clone(), s.seed, &[2, w as u64]),
            next_arrival: first,
            created: 0,
            pending: Vec::new(),
            local_head: None,
            local_count: 0,
            remote_head: None,
            remote_count: 0,
            pushed: HashSet::new(),
            job: None,
            retry_at: 0,
            next_tick: 0,
            session_done_until: 0,
            next_republish: 0,
            last_failure: None,
        })));
    }
    for r in 0..s.readers {
        let clock = Arc::new(VirtualClock::new(0));
        let id = s.writers + r;
        actors.push(Actor::Reader(Box::new(Reader {
            fetched: HashSet::new(),
            handle: mock.handle(id, clock.clone()),
            clock,
            online: Availability::new(s.reader_schedule.clone(), s.seed, &[3, r as u64]),
            follows: (0..s.writers).map(|_| Follow::default()).collect(),
            poll: None,
            next_poll: 0,
            session_end: 0,
            catchup: None,
        })));
    }
    let mut queue: BinaryHeap<std::cmp::Reverse<(Micros, usize)>> = (0..actors.len())
        .map(|i| std::cmp::Reverse((0, i)))
        .collect();
    let mut steps = 0u64;
    while let Some(std::cmp::Reverse((t, i))) = queue.pop() {
        if t > end {
            break;
        }
        steps += 1;
        if steps > MAX_STEPS {
            return Err(Error::Invalid(format!(
                "the simulation took more than {MAX_STEPS} steps; shorten the scenario"
            )));
        }
        let next = match &mut actors[i] {
            Actor::Writer(w) => w.step(t, end_appends, s, &mut world),
            Actor::Reader(r) => r.step(t, s, &mut world),
        };
        if let Some(n) = next {
            queue.push(std::cmp::Reverse((n.max(t), i)));
        }
    }
    // Accounting at the end.
    let mut result = std::mem::take(&mut world.result);
    result.steps = steps;
    for a in &actors {
        match a {
            Actor::Writer(w) => {
                result.writers.add(&w.handle.stats());
                result.messages += w.created;
            }
            Actor::Reader(r) => {
                result.readers.add(&r.handle.stats());
                if r.catchup.is_some() {
                    result.catchup_incomplete += 1;
                }
            }
        }
    }
    result.payload_bytes = world
        .created
        .iter()
        .flatten()
        .map(|(_, size)| *size as u64)
        .sum();
    for a in &actors {
        let Actor::Reader(r) = a else { continue };
        for (w, f) in r.follows.iter().enumerate() {
            let created = world.created[w].len() as u64;
            let committed = world.commits[w].last().map_or(0, |c| c.1);
            let writer_cause = match &actors[w] {
                Actor::Writer(wr) => match wr.last_failure {
                    Some(Failure::TooLarge) => Cause::Refused,
                    Some(f) if Cause::of(f) == Cause::Unavailable => Cause::Unavailable,
                    _ => Cause::Unpushed,
                },
                Actor::Reader(_) => Cause::Unpushed,
            };
            for pos in f.delivered..created {
                let cause = if pos >= committed {
                    writer_cause
                } else if f.stale {
                    Cause::Stale
                } else if let Some(c) = f.last_cause {
                    Cause::of(c)
                } else if world.commit_time(w, pos).is_some_and(|t| f.polled_at < t) {
                    Cause::Offline
                } else {
                    Cause::InFlight
                };
                *result.missing.entry(cause).or_default() += 1;
            }
        }
    }
    Ok(result)
}

/// The time to the next message, in microseconds (at least 1).
fn gap(s: &Scenario, rng: &mut Rng) -> Micros {
    let g = if s.poisson {
        rng.exponential(s.interval)
    } else {
        s.interval
    };
    secs(g).max(1)
}

impl Writer {
    fn step(
        &mut self,
        t: Micros,
        end_appends: Micros,
        s: &Scenario,
        world: &mut World,
    ) -> Option<Micros> {
        self.clock.set(t);
        while self.next_arrival <= t && self.next_arrival < end_appends {
            let at = self.next_arrival;
            let size = s
                .size
                .sample(&mut self.rng)
                .clamp(16.0, 16.0 * 1024.0 * 1024.0) as usize;
            let mut body = vec![b'x'; size];
            body[..8].copy_from_slice(&self.created.to_le_bytes());
            body[8..12].copy_from_slice(&(self.idx as u32).to_le_bytes());
            self.pending.push(Message {
                group_id: b"sim".to_vec(),
                timestamp: at as i64,
                body,
            });
            world.created[self.idx].push((at, size as u32));
            self.created += 1;
            self.next_arrival = at.saturating_add(gap(s, &mut self.rng));
        }
        let online = self.online.online(t);
        if online && t >= self.next_republish {
            let every = [s.profile.cas.republish, s.profile.ns.republish]
                .into_iter()
                .flatten()
                .fold(f64::INFINITY, f64::min);
            if every.is_finite() {
                if self.next_republish > 0 {
                    self.handle.republish();
                }
                self.next_republish = t.saturating_add(secs(every).max(1));
            } else {
                self.next_republish = Micros::MAX;
            }
        }
        if let Some(mut job) = self.job.take() {
            if !online {
                // Gone offline in the middle: what was stored stays; the update waits.
                self.last_failure = None;
            } else {
                self.push_step(&mut job, world, s.retry, s.profile.cas.batch);
                if self.last_failure.is_none()
                    && (!job.queue.is_empty() || self.remote_head != Some(job.head))
                {
                    self.job = Some(job);
                }
                return Some(self.clock.now());
            }
        }
        let work = !self.pending.is_empty() || self.local_count > self.remote_count;
        if online && work && t >= self.retry_at {
            let due = match s.push {
                Push::Each => true,
                Push::Every(every) => {
                    let due = t >= self.next_tick;
                    if due {
                        let e = secs(every).max(1);
                        self.next_tick = (t / e + 1).saturating_mul(e);
                    }
                    due
                }
                Push::Online => t >= self.session_done_until,
            };
            if due {
                match self.start_push(s) {
                    Ok(job) => {
                        self.job = Some(job);
                        return Some(t);
                    }
                    Err(_) => return None,
                }
            }
        }
        // Sleep until something can happen.
        let mut next = if self.next_arrival < end_appends {
            self.next_arrival
        } else {
            Micros::MAX
        };
        if work {
            let when = if !online {
                self.online.next_online(t).unwrap_or(Micros::MAX)
            } else {
                match s.push {
                    Push::Each => self.retry_at,
                    Push::Every(_) => self.retry_at.max(self.next_tick),
                    Push::Online if t >= self.session_done_until => self.retry_at,
                    Push::Online => {
                        let until = self.online.online_until(t);
                        self.online.next_online(until).unwrap_or(Micros::MAX)
                    }
                }
            };
            next = next.min(when.max(t + 1));
        }
        if self.next_republish != Micros::MAX {
            let when = if online {
                self.next_republish
            } else {
                self.online.next_online(t).unwrap_or(Micros::MAX)
            };
            next = next.min(when.max(t + 1));
        }
        (next != Micros::MAX).then_some(next)
    }

    /// Appends what is pending to the local log and lists the objects the remote lacks:
    /// messages, then pages oldest first.
    fn start_push(&mut self, s: &Scenario) -> Result<PushJob> {
        if !self.pending.is_empty() {
            let change = SettingsChange {
                capacity: Some(s.settings.capacity),
                embed: Some(s.settings.embed),
            };
            let done = log::append(&self.local, "log", &self.pending, change)?;
            self.pending.clear();
            self.local_head = Some(done.head);
            self.local_count = done.count;
        }
        let head = self
            .local_head
            .ok_or_else(|| Error::Invalid("nothing to push".into()))?;
        let mut pages = Vec::new();
        let mut messages = Vec::new();
        for page in log::pages(&self.local, Some(head)) {
            let (id, page) = page?;
            if self.pushed.contains(&id) {
                break;
            }
            for e in &page.entries {
                if !self.pushed.contains(&e.h2) {
                    messages.push(e.h2);
                }
            }
            pages.push(id);
        }
        let mut queue = VecDeque::new();
        let mut seen = HashSet::new();
        for id in messages.iter().rev().chain(pages.iter().rev()) {
            if seen.insert(*id) {
                queue.push_back((*id, self.local.get_object(id)?));
            }
        }
        Ok(PushJob {
            queue,
            head,
            count: self.local_count,
        })
    }

    /// One request of a push: the next object, or the NS update when all are stored.
    fn push_step(&mut self, job: &mut PushJob, world: &mut World, retry: f64, batch: bool) {
        self.handle.clear_failure();
        let outcome = if batch && !job.queue.is_empty() {
            // One upload of everything (a pack), as to a remotelog server.
            let objects: Vec<(Id, &[u8])> = job.queue.iter().map(|(id, b)| (*id, &b[..])).collect();
            let r = self.handle.put_objects(&objects);
            if r.is_ok() {
                self.pushed.extend(job.queue.drain(..).map(|(id, _)| id));
            }
            r.map(|_| ())
        } else if let Some((id, bytes)) = job.queue.front() {
            let r = self.handle.put_objects(&[(*id, bytes)]);
            if r.is_ok() {
                self.pushed.insert(*id);
                job.queue.pop_front();
            }
            r.map(|_| ())
        } else {
            let r = self
                .handle
                .update_ref(&self.refname, self.remote_head.into(), Some(job.head));
            if r.is_ok() {
                self.remote_head = Some(job.head);
                self.remote_count = job.count;
                world.commits[self.idx].push((self.clock.now(), job.count));
                self.session_done_until = self.online.online_until(self.clock.now());
            }
            r
        };
        match outcome {
            Ok(()) => self.last_failure = None,
            Err(_) => {
                self.last_failure = Some(self.handle.last_failure().unwrap_or(Failure::Failed));
                self.retry_at = self.clock.now().saturating_add(secs(retry));
            }
        }
    }
}

impl Reader {
    fn step(&mut self, t: Micros, s: &Scenario, world: &mut World) -> Option<Micros> {
        self.clock.set(t);
        if !self.online.online(t) {
            self.poll = None;
            if self.catchup.take().is_some() {
                world.result.catchup_incomplete += 1;
            }
            return self.online.next_online(t);
        }
        if t >= self.session_end {
            // A new online session: start measuring its catch-up.
            if self.catchup.take().is_some() {
                world.result.catchup_incomplete += 1;
            }
            self.session_end = self.online.online_until(t);
            let targets: Vec<u64> = (0..self.follows.len())
                .map(|w| world.committed_at(w, t))
                .collect();
            if self
                .follows
                .iter()
                .zip(&targets)
                .any(|(f, n)| f.delivered < *n)
            {
                self.catchup = Some((t, targets));
            }
            self.poll = None;
            self.next_poll = t;
        }
        if self.poll.is_none() && t >= self.next_poll {
            self.poll = Some((0, Phase::Fetch));
            self.next_poll = t.saturating_add(secs(s.poll).max(1));
        }
        while let Some((w, phase)) = self.poll.take() {
            match self.poll_step(w, phase, world) {
                // A request was made: continue when it is answered.
                (Some(next), true) => {
                    self.poll = Some(next);
                    self.check_catchup(world);
                    return Some(self.clock.now());
                }
                (Some(next), false) => self.poll = Some(next),
                (None, made) => {
                    self.poll = (w + 1 < self.follows.len()).then_some((w + 1, Phase::Fetch));
                    if made {
                        self.check_catchup(world);
                        return Some(self.clock.now());
                    }
                }
            }
        }
        self.check_catchup(world);
        Some(self.next_poll.max(t + 1))
    }

    fn check_catchup(&mut self, world: &mut World) {
        if let Some((start, targets)) = &self.catchup {
            if self
                .follows
                .iter()
                .zip(targets)
                .all(|(f, n)| f.delivered >= *n)
            {
                world.result.catchups.push(self.clock.now() - start);
                self.catchup = None;
            }
        }
    }

    fn deliver(&mut self, w: usize, pos: u64, world: &mut World) {
        let f = &mut self.follows[w];
        if pos != f.delivered {
            return;
        }
        f.delivered += 1;
        let (created, size) = world.created[w][pos as usize];
        world
            .result
            .latencies
            .push(self.clock.now().saturating_sub(created));
        world.result.delivered += 1;
        world.result.delivered_bytes += size as u64;
    }

    /// One phase of following log `w`; returns the next phase (`None`: this log is done
    /// for this poll) and whether a request was made.
    fn poll_step(
        &mut self,
        w: usize,
        phase: Phase,
        world: &mut World,
    ) -> (Option<(usize, Phase)>, bool) {
        let refname = match RefName::log(&format!("w{w}")) {
            Ok(r) => r,
            Err(_) => return (None, false),
        };
        match phase {
            Phase::Fetch => {
                self.handle.clear_failure();
                let f = &mut self.follows[w];
                f.last_cause = None;
                f.polled_at = self.clock.now();
                match self.handle.read_ref(&refname) {
                    Ok(Some(head)) => {
                        let f = &mut self.follows[w];
                        f.stale = self.handle.last_fetch_stale();
                        if f.walked_head == Some(head) {
                            (Some((w, Phase::Get)), true)
                        } else {
                            (
                                Some((
                                    w,
                                    Phase::Walk {
                                        head,
                                        next: head,
                                        collected: Vec::new(),
                                    },
                                )),
                                true,
                            )
                        }
                    }
                    Ok(None) => {
                        let f = &mut self.follows[w];
                        f.stale = false;
                        f.last_cause = self.handle.last_failure();
                        (None, true)
                    }
                    Err(_) => {
                        self.follows[w].last_cause = self.handle.last_failure();
                        (None, true)
                    }
                }
            }
            Phase::Walk {
                head,
                next,
                mut collected,
            } => {
                let cached = self.fetched.contains(&next);
                let bytes = if cached {
                    Vec::new()
                } else {
                    match self.handle.get_object(&next) {
                        Ok(b) => b,
                        Err(_) => {
                            self.follows[w].last_cause = self.handle.last_failure();
                            return (None, true);
                        }
                    }
                };
                let made = !cached;
                self.fetched.insert(next);
                let page = match world.pages.get(&next) {
                    Some(p) => p.clone(),
                    None => match decode_page(&bytes) {
                        Ok(p) => {
                            let p = Rc::new(p);
                            world.pages.insert(next, p.clone());
                            p
                        }
                        Err(_) => return (None, made),
                    },
                };
                let f = &mut self.follows[w];
                if collected.is_empty() && page.count <= f.walked {
                    // An older head than one already walked (a stale answer).
                    return (Some((w, Phase::Get)), made);
                }
                let len = page.entries.len() as u64;
                for (i, e) in page.entries.iter().enumerate() {
                    let pos = page.count - 1 - i as u64;
                    if pos >= f.walked {
                        collected.push((pos, e.clone()));
                    }
                }
                match page.prev {
                    Some(prev) if page.count - len > f.walked => (
                        Some((
                            w,
                            Phase::Walk {
                                head,
                                next: prev,
                                collected,
                            },
                        )),
                        made,
                    ),
                    _ => {
                        if collected.is_empty() {
                            return (Some((w, Phase::Get)), made);
                        }
                        collected.sort_by_key(|(pos, _)| *pos);
                        f.walked = collected.last().map_or(f.walked, |(p, _)| p + 1);
                        f.walked_head = Some(head);
                        f.pending.extend(collected);
                        (Some((w, Phase::Get)), made)
                    }
                }
            }
            Phase::Get => {
                // Embedded messages come without a request.
                while let Some((pos, e)) = self.follows[w].pending.front() {
                    if e.embedded.is_none() {
                        break;
                    }
                    let pos = *pos;
                    self.follows[w].pending.pop_front();
                    self.deliver(w, pos, world);
                }
                let Some((pos, e)) = self.follows[w].pending.front().cloned() else {
                    return (None, false);
                };
                self.handle.clear_failure();
                match self.handle.get_object(&e.h2) {
                    Ok(_) => {
                        self.follows[w].pending.pop_front();
                        self.deliver(w, pos, world);
                        (Some((w, Phase::Get)), true)
                    }
                    Err(_) => {
                        self.follows[w].last_cause = self.handle.last_failure();
                        (None, true)
                    }
                }
            }
        }
    }
}

/// What [`run_options`] did.
#[derive(Debug, Clone)]
pub struct Done {
    /// Runs made.
    pub runs: usize,
    /// Cells.
    pub cells: usize,
    /// Seeds per cell.
    pub seeds: usize,
    /// Files written.
    pub files: Vec<std::path::PathBuf>,
}

/// `remotelog sim`: builds the matrix, runs it on `jobs` threads, writes the output.
pub fn run_options(opts: &options::SimOptions, jobs: usize, plots: bool) -> Result<Done> {
    let m = opts.matrix()?;
    let cells = m.run(jobs)?;
    let written = output::write_all(&cells, &opts.out_dir(), plots)?;
    Ok(Done {
        runs: m.runs(),
        cells: cells.len(),
        seeds: m.seeds.len(),
        files: written.files,
    })
}
