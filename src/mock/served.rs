//! The mock remote behind `remotelog serve --mock PROFILE`: the served store wrapped in a
//! [`Mock`], and one [`MockHandle`] per client, so that nodes written in any language meet
//! the profile's latencies, visibility delays, stale names and refusals in real time
//! (`docs/remote-log-mocking.md`, section "serve --mock").
//!
//! Each handle's clock reads wall-clock time since the server started; a latency does not
//! sleep the thread that works the request but is owed by its answer
//! ([`crate::net::actors::delay_answer`]), which the server sleeps on tokio's timer. A
//! failed request is reported to the server ([`crate::net::actors::refused`]) so that it
//! answers with the status the service's client would see.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::mock::{Actor, Clock, Failure, Micros, Mock, MockHandle, Profile};
use crate::model::name::RefName;
use crate::net::actors::{self, Actors, MockSetup, Refusal, SharedStore};
use crate::store::{Backend, Batch, Expected, Layout, WriteLease};

/// The most clients one mock tells apart; more are refused (503) until it restarts.
pub const MAX_ACTORS: usize = 1024;

/// What `serve --mock` hands the server: given the served store, the mock of `profile`
/// over it with `seed`.
pub fn setup(profile: Profile, seed: u64) -> MockSetup {
    MockSetup(Arc::new(move |store| {
        Arc::new(Served::new(store, profile.clone(), seed)) as Arc<dyn Actors>
    }))
}

/// A mock over a served store, with a handle per client.
pub struct Served {
    mock: Arc<Mock>,
    start: Instant,
    clients: Mutex<Clients>,
}

#[derive(Default)]
struct Clients {
    by_key: HashMap<String, Arc<MockHandle>>,
    numbers: HashSet<Actor>,
}

impl Served {
    /// The mock of `profile` over `store`; `seed` makes every random choice repeat.
    pub fn new(store: SharedStore, profile: Profile, seed: u64) -> Served {
        let mock = Mock::new(Box::new(Shared(store)), profile, seed);
        mock.on_failure(Box::new(report));
        Served {
            mock,
            start: Instant::now(),
            clients: Mutex::new(Clients::default()),
        }
    }

    /// The mock (its profile, the wrapped store).
    pub fn mock(&self) -> &Arc<Mock> {
        &self.mock
    }
}

/// The actor number of a client key: from its hash, so that a named client draws the
/// same random numbers whatever the order clients arrive in (the next free number when
/// two keys collide).
fn number(key: &str, taken: &HashSet<Actor>) -> Actor {
    let h = Id::of(key.as_bytes());
    let mut n = u32::from_le_bytes([h.0[0], h.0[1], h.0[2], h.0[3]]);
    while taken.contains(&n) {
        n = n.wrapping_add(1);
    }
    n
}

impl Actors for Served {
    fn name(&self) -> String {
        self.mock.profile().name.clone()
    }

    fn view(&self, key: &str) -> Result<SharedStore> {
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = c.by_key.get(key) {
            return Ok(h.clone());
        }
        if c.by_key.len() >= MAX_ACTORS {
            return Err(Error::Invalid(format!(
                "this mock already tells {MAX_ACTORS} clients apart; restart remotelog serve --mock to start afresh"
            )));
        }
        let n = number(key, &c.numbers);
        let clock = Arc::new(ServedClock { start: self.start });
        let h = Arc::new(self.mock.handle(n, clock));
        c.numbers.insert(n);
        c.by_key.insert(key.to_string(), h.clone());
        Ok(h)
    }
}

/// Wall-clock time since the server started; a latency is owed by the answer.
struct ServedClock {
    start: Instant,
}

impl Clock for ServedClock {
    fn now(&self) -> Micros {
        self.start.elapsed().as_micros().min(u64::MAX as u128) as Micros
    }
    fn pass(&self, d: Micros) {
        actors::delay_answer(Duration::from_micros(d));
    }
}

/// Tells the server how the service refused a request. A compare-and-swap conflict and a
/// plain not-found are answered as the server always answers them.
fn report(f: Failure, e: &Error) {
    let how = match f {
        Failure::Timeout => Refusal::Timeout,
        Failure::SlowDown => Refusal::SlowDown,
        Failure::Unavailable => Refusal::Unavailable,
        Failure::Failed => Refusal::Failed,
        Failure::TooLarge => Refusal::TooLarge,
        // A service without "not found" (IPFS) lets its client wait for the timeout.
        Failure::NotFound(_) if matches!(e, Error::Remote { .. }) => Refusal::Timeout,
        Failure::NotFound(_) | Failure::Conflict => return,
    };
    if let Error::Remote { message, .. } = e {
        actors::refused(how, message);
    }
}

/// The served store, shared between the server (which checks requests against it) and
/// the mock (which stores through it).
struct Shared(SharedStore);

impl Backend for Shared {
    fn location(&self) -> String {
        self.0.location()
    }
    fn object_location(&self, id: &Id) -> String {
        self.0.object_location(id)
    }
    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        self.0.get_object(id)
    }
    fn has_object(&self, id: &Id) -> Result<bool> {
        self.0.has_object(id)
    }
    fn put_objects(&self, objects: &[(Id, &[u8])]) -> Result<usize> {
        self.0.put_objects(objects)
    }
    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        self.0.batch()
    }
    fn list_objects(&self) -> Result<Vec<Id>> {
        self.0.list_objects()
    }
    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        self.0.objects_with_prefix(prefix)
    }
    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        self.0.read_ref(name)
    }
    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        self.0.update_ref(name, expected, new)
    }
    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        self.0.list_refs(prefix)
    }
    fn write_lease_waiting(&self, wait: Duration) -> Result<WriteLease> {
        self.0.write_lease_waiting(wait)
    }
    fn layout(&self) -> Result<Layout> {
        self.0.layout()
    }
}
