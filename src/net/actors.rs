//! What `remotelog serve --mock` adds to the server: each client (an *actor*) works on its
//! own view of the store, which answers as a mocked remote would answer that client
//! (`docs/remote-log-mocking.md`, section "serve --mock"). The mock itself lives above
//! this layer (`crate::mock::served`) and is handed to the server as an [`Actors`].
//!
//! A mocked request is worked out at once on the blocking pool; its latency is only
//! recorded ([`delay_answer`]) and slept afterwards on tokio's timer, after the request has
//! given back its slot, so clients waiting for slow answers never hold up others. A
//! refused request is recorded the same way ([`refused`]), so that the server answers
//! with the status the real service's client would see.
//!
//! Clients are told apart by [`ACTOR_HEADER`] if sent, else by their bearer token, else by
//! their IP address ([`actor_key`]).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;

use crate::error::{Error, Result};
use crate::id::Id;
pub use crate::net::wire::ACTOR_HEADER;
use crate::net::wire::{valid_actor, MAX_ACTOR_LEN};
use crate::store::Backend;

/// A backend a server can share among its requests.
pub type SharedStore = Arc<dyn Backend + Send + Sync>;

/// How a mocked service refuses a request, as its client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Slower than the service's timeout: answered once the timeout has passed, `504
    /// Gateway Timeout` (Twirp `deadline_exceeded`).
    Timeout,
    /// Over a rate limit: `503 Slow Down` with `Retry-After` (Twirp `unavailable`).
    SlowDown,
    /// The service cannot be reached: `502 Bad Gateway` (Twirp `unavailable`).
    Unavailable,
    /// The request failed: `502 Bad Gateway` (Twirp `unavailable`).
    Failed,
    /// An object or record over the service's size limit: `413` (Twirp
    /// `invalid_argument`).
    TooLarge,
}

/// Per-client views of the served store.
pub trait Actors: Send + Sync {
    /// What is mocked (the profile's name), for the server's messages and `/healthz`.
    fn name(&self) -> String;
    /// The store as the client `key` sees it ([`actor_key`] makes the key).
    fn view(&self, key: &str) -> Result<SharedStore>;
}

/// Builds the [`Actors`] over the served store once the server has opened it.
#[derive(Clone)]
pub struct MockSetup(pub Arc<dyn Fn(SharedStore) -> Arc<dyn Actors> + Send + Sync>);

impl std::fmt::Debug for MockSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockSetup")
    }
}

/// Who sent a request: `actor:NAME` from [`ACTOR_HEADER`], else `token:` and a hash of
/// the bearer token (clients sharing a token are one actor), else `peer:` and the IP
/// address without the port (a client opening a connection per request stays one actor).
/// A bad header is an [`Error::Invalid`] naming it (the server answers it as a bad
/// request).
pub fn actor_key(headers: &HeaderMap, peer: SocketAddr) -> Result<String> {
    if let Some(v) = headers.get(ACTOR_HEADER) {
        return match v.to_str() {
            Ok(name) if valid_actor(name) => Ok(format!("actor:{name}")),
            _ => Err(Error::Invalid(format!(
                "{ACTOR_HEADER} must be 1 to {MAX_ACTOR_LEN} letters, digits, '.', '_' or '-'"
            ))),
        };
    }
    if let Some(token) = crate::net::handler::bearer(headers) {
        // The token itself is not kept.
        return Ok(format!(
            "token:{}",
            &Id::of(token.as_bytes()).to_hex()[..16]
        ));
    }
    Ok(format!("peer:{}", peer.ip()))
}

thread_local! {
    /// The latency of the mocked calls made on this thread for the request being worked.
    static PENDING: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// The last refusal of a mocked call on this thread, and its error's text.
    static REFUSED: RefCell<Option<(Refusal, String)>> = const { RefCell::new(None) };
}

/// Delays the answer to the request worked on this thread by `d`: a mocked latency. The
/// server sleeps it once the request's work is done; outside a mocked request it does
/// nothing.
pub fn delay_answer(d: Duration) {
    PENDING.with(|p| p.set(p.get().saturating_add(d)));
}

/// Says that the error whose text is `msg`, met by the request worked on this thread, is
/// the mocked service refusing it as `how`.
pub fn refused(how: Refusal, msg: &str) {
    REFUSED.with(|r| *r.borrow_mut() = Some((how, msg.to_string())));
}

/// Starts a mocked request's work on this thread.
pub(crate) fn begin() {
    PENDING.with(|p| p.set(Duration::ZERO));
    REFUSED.with(|r| *r.borrow_mut() = None);
}

/// Ends it: the delay its answer owes.
pub(crate) fn end() -> Duration {
    REFUSED.with(|r| *r.borrow_mut() = None);
    PENDING.with(|p| p.replace(Duration::ZERO))
}

/// The refusal recorded for an error with text `msg`, if any.
pub(crate) fn refusal_of(msg: &str) -> Option<Refusal> {
    REFUSED.with(|r| match &*r.borrow() {
        Some((how, m)) if m == msg => Some(*how),
        _ => None,
    })
}

/// A mocked request in flight: its client's view and the delay its answer owes.
pub(crate) struct Request {
    view: SharedStore,
    delay: Cell<Duration>,
}

tokio::task_local! {
    static REQUEST: Request;
}

/// Runs `work` (a whole request) as a mocked request with `view`; returns its answer and
/// the delay owed before sending it.
pub(crate) async fn scope<F: std::future::Future>(
    view: SharedStore,
    work: F,
) -> (F::Output, Duration) {
    let req = Request {
        view,
        delay: Cell::new(Duration::ZERO),
    };
    REQUEST
        .scope(req, async move {
            let out = work.await;
            let delay = REQUEST.with(|r| r.delay.get());
            (out, delay)
        })
        .await
}

/// The view of the client of the mocked request this task serves; `None` when the server
/// mocks nothing.
pub(crate) fn view() -> Option<SharedStore> {
    REQUEST.try_with(|r| r.view.clone()).ok()
}

/// Adds `d` to the delay the answer of this task's mocked request owes.
pub(crate) fn owe(d: Duration) {
    let _ = REQUEST.try_with(|r| r.delay.set(r.delay.get().saturating_add(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_key_refuses_a_bad_header_as_invalid_naming_it() {
        let peer: SocketAddr = "10.0.0.7:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(actor_key(&h, peer).unwrap(), "peer:10.0.0.7");
        h.insert(ACTOR_HEADER, "alice".parse().unwrap());
        assert_eq!(actor_key(&h, peer).unwrap(), "actor:alice");
        h.insert(ACTOR_HEADER, "two words".parse().unwrap());
        let e = actor_key(&h, peer).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid(m) if m.starts_with(&format!("{ACTOR_HEADER} must be 1 to"))),
            "{e:?}"
        );
    }
}
