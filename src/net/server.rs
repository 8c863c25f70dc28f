//! `remotelog serve`: one store over HTTP — a REST API for the CAS, the NS and packs, and
//! the Twirp services of 3/REMOTE-LOG ([`crate::net::twirp`]). The API is specified in
//! `format/http-api.md`; [`crate::net::client::HttpBackend`] is its client.
//!
//! The store code is synchronous and fsyncs: every store call runs on tokio's blocking
//! pool, so slow disks never stall the event loop. A store call that has started always
//! finishes (a timeout or a dropped connection only abandons the answer), so nothing is
//! ever half-written, and on SIGTERM/SIGINT the server stops accepting and waits for the
//! requests in flight.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::id::{is_lower_hex, Id};
use crate::model::name::{self, RefName};
use crate::model::object::decode_page;
use crate::net::actors::MockSetup;
use crate::net::handler::Seen;
use crate::net::handler::{
    add_need, add_one, added_body_max, etag, lease_id, parse_id, set_header, Access, ApiError,
    ApiResult, AppState, Hold, Intake, NoBody, Small, Spool, Spooled, Store, BODY_MEMORY,
    LEASE_WAIT,
};
use crate::net::wire::PackOutcome;
use crate::pack::{self, Pack};
use crate::store::dir::{FsStore, LOOSE_MAX};
use crate::store::TimedLeases;
// Kept at their old paths for the binary and the fuzz targets.
use crate::net::wire::MAX_PRESENT_IDS;

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8001";
/// Default `--max-body`: the largest object a store accepts.
pub const DEFAULT_MAX_BODY: u64 = crate::store::dir::MAX_OBJECT_SIZE;
/// Default time a request may take, upload included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of requests served at once; more wait for a slot.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Default `--max-memory`: what the requests being processed may hold at once for the
/// bodies and blocks they work on (see [`Options::max_memory`]).
pub const DEFAULT_MAX_MEMORY: u64 = 192 << 20;
/// Longest a client may take to send a request's headers; a keep-alive connection idle
/// this long is closed too (hyper times both from the end of the previous answer).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen queue until one closes.
pub const MAX_CONNECTIONS: usize = 512;
/// Largest request head (request line and headers) a connection buffers.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Largest body of `POST /cas/present`: 100,000 ids of 64 hex digits and CR LF.
pub const PRESENT_BODY_MAX: u64 = MAX_PRESENT_IDS as u64 * 66 + 1024;
/// Largest body of a ref update (`PUT /ns/...`): an id and a newline, with room for spaces.
pub const REF_BODY_MAX: u64 = 1024;
/// Most objects (and most blocks) in one uploaded pack: twice what a writer puts in one
/// pack, since a batch may overshoot by a copied block.
pub const MAX_UPLOAD_OBJECTS: usize = 2 * pack::BATCH_MAX_OBJECTS;
/// The ref namespaces a client may write: native logs, and the Twirp NS.
pub const WRITABLE: [&str; 2] = [name::LOGS, name::SPEC];

/// How to serve a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store directory (it must exist).
    pub store: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    /// Bearer token required for writes (and reads with `private`).
    pub token: Option<String>,
    /// Refuse every write.
    pub read_only: bool,
    /// Require the token for reads too.
    pub private: bool,
    /// Largest request body accepted, in bytes.
    pub max_body: u64,
    /// Longest a request may take.
    pub timeout: Duration,
    /// Requests served at once.
    pub max_concurrency: usize,
    /// Bytes the requests being processed may hold at once for the bodies and pack
    /// blocks they work on; a request waits until its share is free.
    pub max_memory: u64,
    /// Bearer token for `POST /gc`; without one the server refuses gc over HTTP.
    pub admin_token: Option<String>,
    /// One line per request on stderr.
    pub log_requests: bool,
    /// `serve --mock`: the mocked remote each client sees instead of the store
    /// ([`crate::net::actors`]).
    pub mock: Option<MockSetup>,
}

impl Options {
    /// Defaults for serving `store`.
    pub fn new(store: &Path) -> Options {
        Options {
            store: store.to_path_buf(),
            listen: DEFAULT_LISTEN.into(),
            token: None,
            read_only: false,
            private: false,
            max_body: DEFAULT_MAX_BODY,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_memory: DEFAULT_MAX_MEMORY,
            admin_token: None,
            log_requests: true,
            mock: None,
        }
    }
}

type St = State<Arc<AppState>>;

/// The router of the whole API over a store.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/cas", post(cas_add).get(cas_list))
        .route("/cas/present", post(cas_present))
        .route("/cas/{id}", get(cas_get).head(cas_head))
        .route("/ns", get(ns_list))
        .route("/ns/{*name}", get(ns_get).put(ns_put).delete(ns_delete))
        .route("/packs", get(packs_list).post(packs_upload))
        .route("/packs/{id}", get(pack_get))
        .route("/gc", post(gc_run))
        .route("/leases", post(lease_take))
        .route("/leases/{id}", put(lease_renew).delete(lease_release))
        .route("/twirp/{*method}", any(crate::net::twirp::handle))
        .fallback(no_route)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Bounded concurrency, the request timeout and the request log, around every request.
/// Requests without a body (GET, HEAD, DELETE) take their slot here; those with one
/// take it in their handler once the body is in, and `/healthz` needs none, so neither
/// slow clients nor a busy store keep it from answering.
async fn guard(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let twirp = path.starts_with(crate::net::wire::TWIRP_PREFIX);
    let slot_here =
        matches!(method, Method::GET | Method::HEAD | Method::DELETE) && path != "/healthz";
    // Under `serve --mock`, the client's own view of the mocked remote.
    let mocked = match &st.actors {
        Some(actors) if path != "/healthz" => Some(client_view(&**actors, req.headers(), peer)),
        _ => None,
    };
    let actor = match &mocked {
        Some(Ok((_, key))) => format!(" {key}"),
        _ => String::new(),
    };
    // Waiting for a slot counts against the timeout too: a client sees one deadline.
    let work = async {
        let _slot = if slot_here {
            match st.slot().await {
                Ok(s) => Some(s),
                Err(e) => return e.into_response(),
            }
        } else {
            None
        };
        next.run(req).await
    };
    let work = async {
        match mocked {
            None => work.await,
            Some(Err(e)) if twirp => crate::net::twirp::TwirpError::from(e).into_response(),
            Some(Err(e)) => e.into_response(),
            Some(Ok((view, _))) => {
                // The answer waits out the mocked latency here, on tokio's timer, after the
                // request has given its slot back.
                let (resp, delay) = crate::net::actors::scope(view, work).await;
                tokio::time::sleep(delay).await;
                resp
            }
        }
    };
    let resp = match tokio::time::timeout(st.timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            let msg = format!(
                "the request took longer than {}s (the server's --timeout); anything it wrote completes or is invisible, so it is safe to retry",
                st.timeout.as_secs()
            );
            if twirp {
                crate::net::twirp::TwirpError::new(crate::net::twirp::Code::DeadlineExceeded, msg)
                    .into_response()
            } else {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, msg).into_response()
            }
        }
    };
    if st.log_requests {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let len = {
            use axum::body::HttpBody;
            resp.body()
                .size_hint()
                .exact()
                .map_or_else(|| "-".to_string(), |n| n.to_string())
        };
        eprintln!(
            "{}.{:03} {peer} \"{method} {path}\" {} {len} {:.1}ms{actor}",
            now.as_secs(),
            now.subsec_millis(),
            resp.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    resp
}

/// The view of the mocked remote of the client that sent `headers` from `peer`, and the
/// client's key ([`crate::net::actors::actor_key`]).
fn client_view(
    actors: &dyn crate::net::actors::Actors,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> ApiResult<(crate::net::actors::SharedStore, String)> {
    let key =
        crate::net::actors::actor_key(headers, peer).map_err(|e| ApiError::bad(e.to_string()))?;
    let view = actors
        .view(&key)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok((view, key))
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {method} {}; the API is described in format/http-api.md",
            uri.path()
        ),
    )
}

async fn healthz(State(st): St) -> Response {
    let body = serde_json::json!({
        "status": "ok",
        "service": "remotelog",
        "version": env!("CARGO_PKG_VERSION"),
        "read_only": st.read_only,
        "private": st.private,
        "token": st.token.is_some(),
        "max_body": st.max_body,
        "mock": st.actors.as_ref().map(|a| a.name()),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn cas_add(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let intake = Spool {
        body,
        limit: added_body_max(&st),
        what: "the largest object this server accepts (--max-body, at most 64 MiB)",
    };
    let (up, _held) = st
        .admit(&headers, Access::Write, intake, Hold::SlotAndLease)
        .await?;
    let _memory = st.reserve(add_need(up.len)).await?;
    let id = up.id();
    let written = st
        .run_seen(move |s| {
            let data = up.read_all()?;
            add_one(&s, id, &data)
        })
        .await?;
    let status = if written {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut r = text(status, format!("{id}\n"));
    set_header(r.headers_mut(), header::LOCATION, &format!("/cas/{id}"));
    Ok(r)
}

async fn cas_get(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let id = parse_id(&id)?;
    let bytes = st
        .run_seen(move |s| match s.view.get_object(&id) {
            // The spec view's addresses (format/spec-view.md) read like stored objects.
            Err(e @ Error::ObjectMissing { .. }) => {
                crate::net::twirp::spec_view_get(&*s.store, &id)?
                    .ok_or_else(|| ApiError::from_store(e))
            }
            other => other.map_err(ApiError::from_store),
        })
        .await?;
    let mut r = ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    set_header(r.headers_mut(), header::ETAG, &etag(&id));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

async fn cas_head(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let id = parse_id(&id)?;
    let present = st
        .run_seen(move |s| s.view.has_object(&id).map_err(ApiError::from_store))
        .await?;
    Ok(if present {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

#[derive(serde::Deserialize)]
struct PrefixQuery {
    prefix: Option<String>,
}

async fn cas_list(
    State(st): St,
    Query(q): Query<PrefixQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    if let Some(p) = &q.prefix {
        if p.len() < 2 || p.len() > 64 || !is_lower_hex(p) {
            return Err(ApiError::bad(format!(
                "prefix {p:?} is not 2 to 64 lowercase hex digits"
            )));
        }
    }
    let ids = st
        .run(move |store| {
            match &q.prefix {
                Some(p) => store.objects_with_prefix(p),
                None => store.list_objects(),
            }
            .map_err(ApiError::from_store)
        })
        .await?;
    let mut out = String::with_capacity(ids.len() * 65);
    for id in ids {
        out.push_str(&id.to_hex());
        out.push('\n');
    }
    Ok(text(StatusCode::OK, out))
}

/// Query of `POST /gc`.
#[derive(serde::Deserialize)]
struct GcQuery {
    /// Grace period in seconds.
    prune: u64,
    #[serde(default)]
    dry_run: bool,
}

/// Runs the library's gc on the served store: only with the admin token
/// (`--admin-token-file`), never a writer's, and never on a read-only server.
async fn gc_run(
    State(st): St,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<GcQuery>,
) -> ApiResult<Response> {
    let (_, _held) = st
        .admit(&headers, Access::Admin, NoBody, Hold::Slot)
        .await?;
    let done = st
        .run(move |store| {
            crate::upkeep::gc::gc(
                &*store,
                std::time::Duration::from_secs(q.prune),
                q.dry_run,
                &crate::progress::Silent,
            )
            .map_err(ApiError::from_store)
        })
        .await?;
    let mut body = serde_json::to_value(&done).map_err(|e| ApiError::bad(e.to_string()))?;
    body["removed_ids"] = done.removed_ids.iter().map(|i| i.to_hex()).collect();
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

/// How long a client's lease lasts without renewal (http-api.md section 10).
pub const CLIENT_LEASE_TTL: Duration = Duration::from_secs(60);

/// The most client leases a server holds at once.
const MAX_CLIENT_LEASES: usize = 256;

/// A new client lease id: 32 hex digits nobody else is handed.
fn new_lease_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{now} {} {n}", std::process::id());
    Id::of(seed.as_bytes()).to_hex()[..32].to_string()
}

/// The timed leases of the served store, or the answer that it keeps none.
fn timed_leases(store: &Store) -> ApiResult<&dyn TimedLeases> {
    store.timed_leases().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server's store keeps no client leases; write without one",
        )
    })
}

/// Takes a writer lease for a client across its requests: gc on this store waits for it
/// until it is released or expires.
async fn lease_take(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    let (_, _held) = st
        .admit(&headers, Access::Write, NoBody, Hold::Slot)
        .await?;
    let id = new_lease_id();
    let taken = id.clone();
    st.run(move |store| {
        let timed = timed_leases(&store)?;
        if timed.count().map_err(ApiError::from_store)? >= MAX_CLIENT_LEASES {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("this server holds {MAX_CLIENT_LEASES} client leases already; try again shortly"),
            ));
        }
        timed
            .take(&taken, CLIENT_LEASE_TTL, LEASE_WAIT)
            .map_err(ApiError::from_store)
    })
    .await?;
    let body = serde_json::json!({"lease": id, "ttl": CLIENT_LEASE_TTL.as_secs()});
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

async fn lease_renew(
    State(st): St,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    st.admit(&headers, Access::Write, NoBody, Hold::Nothing)
        .await?;
    let id = lease_id(&raw)?;
    let renewed = st
        .run(move |store| {
            timed_leases(&store)?
                .renew(&id, CLIENT_LEASE_TTL)
                .map_err(ApiError::from_store)
        })
        .await?;
    if renewed {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such lease: it was released or expired; what it protected may have been collected, and the next ref update says so",
        ))
    }
}

async fn lease_release(
    State(st): St,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    st.admit(&headers, Access::Write, NoBody, Hold::Nothing)
        .await?;
    let id = lease_id(&raw)?;
    st.run(move |store| {
        timed_leases(&store)?
            .release(&id)
            .map_err(ApiError::from_store)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cas_present(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let intake = Small {
        body,
        limit: PRESENT_BODY_MAX,
        what: "what POST /cas/present takes (100,000 ids)",
    };
    let (body, _held) = st.admit(&headers, Access::Read, intake, Hold::Slot).await?;
    let ids = present_ids(&body.bytes)?;
    let present = st
        .run(move |store| {
            let mut out = String::new();
            for id in ids {
                if store.has_object(&id).map_err(ApiError::from_store)? {
                    out.push_str(&id.to_hex());
                    out.push('\n');
                }
            }
            Ok(out)
        })
        .await?;
    Ok(text(StatusCode::OK, present))
}

/// A ref name from the URL: validated, so it can never leave `refs/`.
fn ref_from_url(raw: &str) -> ApiResult<RefName> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    RefName::parse(raw).map_err(|e| ApiError::bad(e.to_string()))
}

fn writable(name: &RefName) -> ApiResult<()> {
    let top = name.as_str().split('/').next().unwrap_or_default();
    if WRITABLE.contains(&top) && name.as_str().contains('/') {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "ref {name} cannot be written over HTTP: only refs below {} are",
            WRITABLE.map(|w| format!("{w}/")).join(" and ")
        ),
    ))
}

async fn ns_list(
    State(st): St,
    Query(q): Query<PrefixQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let prefix = q.prefix.unwrap_or_else(|| name::LOGS.to_string());
    name::validate(&prefix).map_err(|e| ApiError::bad(e.to_string()))?;
    let lines = st
        .run(move |store| {
            let mut out = String::new();
            for r in store.list_refs(&prefix).map_err(ApiError::from_store)? {
                if let Some(id) = store.read_ref(&r).map_err(ApiError::from_store)? {
                    out.push_str(&format!("{r} {id}\n"));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(text(StatusCode::OK, lines))
}

async fn ns_get(
    State(st): St,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let name = ref_from_url(&raw)?;
    let shown = name.clone();
    let value = st
        .run_seen(move |s| s.view.read_ref(&name).map_err(ApiError::from_store))
        .await?;
    let Some(id) = value else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("ref {shown} does not exist"),
        ));
    };
    let mut r = text(StatusCode::OK, format!("{id}\n"));
    set_header(r.headers_mut(), header::ETAG, &etag(&id));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// The value a compare-and-swap expects, from `If-Match: "<id>"` or `If-None-Match: *`.
fn expected_value(headers: &HeaderMap) -> ApiResult<Option<Id>> {
    let get = |h: header::HeaderName| {
        headers
            .get(h)
            .map(|v| {
                v.to_str()
                    .map(str::trim)
                    .map_err(|_| ApiError::bad("a precondition header is not text"))
            })
            .transpose()
    };
    match (get(header::IF_MATCH)?, get(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::bad(
            "give either If-Match (the value you read) or If-None-Match: * (the ref must not exist), not both",
        )),
        (None, Some("*")) => Ok(None),
        (None, Some(v)) => Err(ApiError::bad(format!(
            "If-None-Match {v:?} is not supported; use If-None-Match: * for a ref that must not exist yet"
        ))),
        (Some("*"), None) => Err(ApiError::bad(
            "If-Match: * is not a compare-and-swap; give the value you read, If-Match: \"<id>\"",
        )),
        (Some(v), None) => {
            let v = v.strip_prefix("W/").unwrap_or(v);
            let v = v.trim_matches('"');
            Ok(Some(parse_id(v)?))
        }
        (None, None) => Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "a ref update is a compare-and-swap: send If-Match: \"<id you read>\", or If-None-Match: * when the ref must not exist yet",
        )),
    }
}

async fn ns_put(
    State(st): St,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // The opening's steps one by one: the URL and the precondition are checked before
    // the body is read, the body before a slot is taken.
    st.authorize(&headers, Access::Write)?;
    let name = ref_from_url(&raw)?;
    writable(&name)?;
    let expected = expected_value(&headers)?;
    let intake = Small {
        body,
        limit: REF_BODY_MAX,
        what: "a ref update's body (an id)",
    };
    let body = intake.take(&st, &headers).await?;
    let new = std::str::from_utf8(&body.bytes)
        .ok()
        .map(str::trim)
        .ok_or_else(|| ApiError::bad("the body must be the new id in hex"))
        .and_then(parse_id)?;
    let _held = st.hold(&headers, Hold::SlotAndLease).await?;
    st.run_seen(move |s| {
        let store = &s.store;
        // Objects before refs: a ref never names what the store does not hold, nor a
        // chain with a page or message missing.
        let missing = |what: &str| {
            ApiError::from_store(Error::IncompleteChain {
                name: name.to_string(),
                missing: new,
                what: what.into(),
                location: store.location(),
            })
        };
        if name.log_name().is_some() {
            let bytes = store.get_object(&new).map_err(|e| match e {
                Error::ObjectMissing { .. } => missing("page (the new head)"),
                other => ApiError::from_store(other),
            })?;
            decode_page(&bytes).map_err(|r| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("object {new} is not a page ({r}); a log ref must name a page"),
                )
            })?;
            // Against the value the ref holds now (a stale If-Match is a 412 either way):
            // everything it names is complete, so the walk stops there. A mocked remote
            // judges the expected value by its own update semantics (IPNS has none).
            let current = store.read_ref(&name).map_err(ApiError::from_store)?;
            if current != expected && !s.mocked {
                return Err(ApiError::from_store(Error::RefConflict {
                    name: name.to_string(),
                    expected,
                    actual: current,
                }));
            }
            crate::log::check_complete(&**store, &name, new, current).map_err(|e| match e {
                Error::ObjectCorrupt { .. } => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the chain of page {new} is not sound: {e}; nothing changed"),
                ),
                other => ApiError::from_store(other),
            })?;
        } else if !store.has_object(&new).map_err(ApiError::from_store)? {
            return Err(missing("object"));
        }
        s.view
            .update_ref(&name, expected.into(), Some(new))
            .map_err(ApiError::from_store)
    })
    .await?;
    let mut r = text(StatusCode::OK, format!("{new}\n"));
    set_header(r.headers_mut(), header::ETAG, &etag(&new));
    Ok(r)
}

async fn ns_delete(
    State(st): St,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    st.admit(&headers, Access::Write, NoBody, Hold::Nothing)
        .await?;
    let name = ref_from_url(&raw)?;
    writable(&name)?;
    let expected = expected_value(&headers)?;
    if expected.is_none() {
        return Err(ApiError::bad("deleting needs If-Match: \"<id you read>\""));
    }
    st.run_seen(move |s| {
        s.view
            .update_ref(&name, expected.into(), None)
            .map_err(ApiError::from_store)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn packs_list(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let lines = st
        .run_seen(move |s| {
            let mut out = String::new();
            for p in s.view.pack_chain().map_err(ApiError::from_store)? {
                out.push_str(&format!("{} {} {}\n", p.id, p.size, p.objects));
            }
            Ok(out)
        })
        .await?;
    Ok(text(StatusCode::OK, lines))
}

/// A single byte range from a `Range` header, as (first, last) inclusive; `None` for the
/// whole file. Several ranges are answered with the whole file, which RFC 9110 allows.
fn byte_range(headers: &HeaderMap, len: u64) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("the range is not within the file's {len} bytes"),
        )
    };
    let Some(spec) = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return Err(ApiError::bad("only `Range: bytes=...` is supported"));
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| ApiError::bad(format!("bad range {spec:?}")))?;
    let num = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::bad(format!("bad range {spec:?}")))
    };
    let (first, last) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => {
            let n = num(b)?;
            if n == 0 || len == 0 {
                return Err(unsatisfiable());
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, true) => (num(a)?, len.saturating_sub(1)),
        (false, false) => (num(a)?, num(b)?.min(len.saturating_sub(1))),
        (true, true) => return Err(ApiError::bad(format!("bad range {spec:?}"))),
    };
    if first >= len || first > last {
        return Err(unsatisfiable());
    }
    Ok(Some((first, last)))
}

async fn pack_get(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.admit(&headers, Access::Read, NoBody, Hold::Nothing)
        .await?;
    let id = parse_id(&id)?;
    let len = st
        .run_seen(move |s| {
            let packs = s.view.pack_chain().map_err(ApiError::from_store)?;
            packs
                .into_iter()
                .find(|p| p.id == id)
                .map(|p| p.size)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!(
                            "pack {id} is not on this store's pack chain; GET /packs lists them"
                        ),
                    )
                })
        })
        .await?;
    let range = byte_range(&headers, len)?;
    let (first, last) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { last - first + 1 };
    let reader = st
        .run_seen(move |s| {
            s.view
                .read_pack(&id, first, count)
                .map_err(ApiError::from_store)
        })
        .await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(pipe(reader), 256 << 10);
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    set_header(h, header::ETAG, &etag(&id));
    if range.is_some() {
        set_header(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {first}-{last}/{len}"),
        );
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(r)
}

/// Streams a blocking reader (a pack range from the store) into an async one: a thread of
/// the blocking pool copies it through a small pipe, so an answer holds 256 KiB at most.
fn pipe(mut reader: Box<dyn std::io::Read + Send>) -> tokio::io::DuplexStream {
    let (mut tx, rx) = tokio::io::duplex(256 << 10);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The answer ends short of its length: the client sees a cut body.
                Err(e) => {
                    eprintln!("remotelog serve: error: reading a pack: {e}");
                    return;
                }
            };
            // A client that went away closes the pipe: stop reading.
            if rt.block_on(tx.write_all(&buf[..n])).is_err() {
                return;
            }
        }
    });
    rx
}

async fn packs_upload(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    // Streamed to a temporary file in packs/, so a large push is never held in memory
    // and the commit is a rename; its checksum is computed on the way.
    let intake = Spool {
        body,
        limit: st.max_body,
        what: "this server's --max-body",
    };
    let (up, _held) = st
        .admit(&headers, Access::Write, intake, Hold::SlotAndLease)
        .await?;
    let upload = crate::net::handler::blocking(move || open_upload(up)).await?;
    let _memory = st.reserve(upload.need).await?;
    let outcome = st.run_seen(move |s| ingest_pack(&s, upload)).await?;
    let body = serde_json::to_string(&outcome).unwrap_or_default();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

/// An uploaded pack whose structure and checksum are checked, with what checking its
/// blocks will hold in memory.
struct Upload {
    pack: Pack<memmap2::Mmap>,
    tmp: tempfile::TempPath,
    /// Bytes ingesting it holds at most: the index entries, one compressed and one
    /// decompressed block, and for small uploads one object's compressed copy.
    need: u64,
}

fn invalid_pack(r: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("the uploaded pack is invalid: {r}; nothing was stored"),
    )
}

/// The most a zstd frame of `ulen` bytes can take compressed (zstd's `ZSTD_COMPRESSBOUND`,
/// with room for a frame header).
fn frame_bound(ulen: u64) -> u64 {
    ulen + ulen / 128 + (64 << 10)
}

/// Opens an uploaded pack: structure, checksum (hashed as it arrived, so the file is not
/// read again), and the limits that bound what validating it costs — objects and blocks
/// at most [`MAX_UPLOAD_OBJECTS`], every block at most [`pack::MAX_BLOCK`] decompressed
/// and no larger compressed than zstd can make it. Block frames are then read with
/// positioned reads, never through the mapping.
fn open_upload(up: Spooled) -> ApiResult<Upload> {
    if up.len < (pack::HEADER_LEN + pack::TRAILER_LEN) as u64 {
        return Err(invalid_pack(format!(
            "{} bytes is too short for a pack (truncated?)",
            up.len
        )));
    }
    if !up.checksum_holds() {
        // Parse first when it is not a pack at all, for a better message.
        let map = pack::map(&up.tmp).map_err(ApiError::from_store)?;
        Pack::parse(&map[..]).map_err(invalid_pack)?;
        return Err(invalid_pack(
            "checksum mismatch: the file does not hash to its trailer (truncated or damaged)",
        ));
    }
    let map = pack::map(&up.tmp).map_err(ApiError::from_store)?;
    let p = Pack::parse(map).map_err(invalid_pack)?;
    if p.len() > MAX_UPLOAD_OBJECTS || p.block_count() > MAX_UPLOAD_OBJECTS {
        return Err(invalid_pack(format!(
            "{} objects in {} blocks; one upload may hold at most {MAX_UPLOAD_OBJECTS} of each (push splits larger transfers)",
            p.len(),
            p.block_count()
        )));
    }
    let mut max_ulen = 0u64;
    let mut max_clen = 0u64;
    for i in 0..p.block_count() {
        // Pack::parse refused blocks declaring more than MAX_BLOCK decompressed.
        let b = p.block(i as u32);
        if u64::from(b.clen) > frame_bound(u64::from(b.ulen)) {
            return Err(invalid_pack(format!(
                "block {i} is {} bytes compressed, more than a zstd frame of its {} bytes can be",
                b.clen, b.ulen
            )));
        }
        max_ulen = max_ulen.max(u64::from(b.ulen));
        max_clen = max_clen.max(u64::from(b.clen));
    }
    let small = p.len() <= LOOSE_MAX;
    let index = p.len() as u64 * 64 + p.block_count() as u64 * 32;
    let need = index + max_ulen + max_clen.max(if small { frame_bound(max_ulen) } else { 0 });
    let p = p.read_frames_from(up.file).map_err(invalid_pack)?;
    Ok(Upload {
        pack: p,
        tmp: up.tmp,
        need,
    })
}

/// Decompresses block `i` of an upload into at most its declared length: a frame that
/// expands beyond it, or to less, is refused.
fn upload_block(p: &Pack<memmap2::Mmap>, i: u32) -> ApiResult<Vec<u8>> {
    let b = p.block(i);
    let frame = p.frame(i).map_err(invalid_pack)?;
    let out = zstd::bulk::decompress(&frame, b.ulen as usize).map_err(|e| {
        invalid_pack(format!(
            "block {i} does not decompress within the {} bytes it declares: {e}",
            b.ulen
        ))
    })?;
    if out.len() != b.ulen as usize {
        return Err(invalid_pack(format!(
            "block {i} decompresses to {} bytes, its index says {}",
            out.len(),
            b.ulen
        )));
    }
    Ok(out)
}

/// Validates an uploaded pack completely — structure, file checksum, every block's
/// checksum and length, every object's id — and only then adds its objects to the store:
/// as loose objects when there are few (as a local batch would), as a pack chained after
/// the store's head otherwise. One block is decompressed at a time; small uploads are
/// stored block by block straight from it, messages first and pages last (store-v1
/// section 7), so memory never holds more than one block and one object's copy. Under
/// `serve --mock` the objects are stored through the client's view (each a put where
/// the profile takes no batches); what the store holds is judged on the store itself.
fn ingest_pack(s: &Seen, up: Upload) -> ApiResult<PackOutcome> {
    let store = &*s.store;
    let Upload { pack: p, tmp, .. } = up;
    p.validate_index().map_err(invalid_pack)?;
    let by_block = p.objects_by_block().map_err(invalid_pack)?;
    let small = p.len() <= LOOSE_MAX;
    let mut new = 0;
    for (n, objects) in by_block.iter().enumerate() {
        if objects.is_empty() {
            continue;
        }
        // Checks the block's checksum first.
        let data = upload_block(&p, n as u32)?;
        for (id, loc) in objects {
            let start = loc.offset as usize;
            let bytes = &data[start..start + loc.len as usize];
            let actual = Id::of(bytes);
            if actual != *id {
                return Err(invalid_pack(format!("object {id} hashes to {actual}")));
            }
            if !store.has_object(id).map_err(ApiError::from_store)? {
                new += 1;
            }
        }
    }
    let objects = p.len();
    if new == 0 {
        return Ok(PackOutcome {
            objects,
            new,
            pack: None,
        });
    }
    if small {
        let is_page =
            |b: &[u8]| crate::model::object::peek_kind(b) == Some(crate::model::object::Kind::Page);
        for pages in [false, true] {
            for (n, objects) in by_block.iter().enumerate() {
                if objects.is_empty() {
                    continue;
                }
                let data = upload_block(&p, n as u32)?;
                let mut todo: Vec<(Id, &[u8])> = Vec::new();
                for (id, loc) in objects {
                    let start = loc.offset as usize;
                    let bytes = &data[start..start + loc.len as usize];
                    if is_page(bytes) == pages
                        && !store.has_object(id).map_err(ApiError::from_store)?
                    {
                        todo.push((*id, bytes));
                    }
                }
                s.view.put_objects(&todo).map_err(ApiError::from_store)?;
            }
        }
        return Ok(PackOutcome {
            objects,
            new,
            pack: None,
        });
    }
    let done = pack::Finished {
        id: p.recorded_id(),
        prev: p.prev(),
        objects,
        tmp,
    };
    drop(p);
    let id = s.view.add_pack(done).map_err(ApiError::from_store)?;
    Ok(PackOutcome {
        objects,
        new,
        pack: id.map(|id| id.to_hex()),
    })
}

/// A server started with [`start`]; dropping it stops it.
pub struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets the requests in flight finish, and waits for the end.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::Invalid("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn prepare(opts: &Options) -> Result<(std::net::TcpListener, Arc<AppState>)> {
    if opts.private && opts.token.is_none() {
        return Err(Error::Invalid(
            "--private needs --token-file: without a token nobody could read".into(),
        ));
    }
    if opts.max_concurrency == 0 {
        return Err(Error::Invalid(
            "--max-concurrency must be at least 1".into(),
        ));
    }
    // A connection carries one request at a time, so more slots than connections serve
    // nothing; an unbounded count would overflow the runtime's thread count.
    if opts.max_concurrency > MAX_CONNECTIONS {
        return Err(Error::Invalid(format!(
            "--max-concurrency {} is more than the {MAX_CONNECTIONS} connections served at once; give 1 to {MAX_CONNECTIONS}",
            opts.max_concurrency
        )));
    }
    if opts.max_memory < 1 << 20 {
        return Err(Error::Invalid(
            "--max-memory must be at least 1 (MiB)".into(),
        ));
    }
    if opts.admin_token.is_some() && opts.admin_token == opts.token {
        return Err(Error::Invalid(
            "the admin token (--admin-token-file) must differ from the writers' token (--token-file): a writer must not be able to delete".into(),
        ));
    }
    let store: Store = Arc::new(FsStore::open(&opts.store)?);
    let actors = opts.mock.as_ref().map(|m| (m.0)(store.clone()));
    let listener = std::net::TcpListener::bind(&opts.listen).map_err(|e| {
        Error::Invalid(format!(
            "cannot listen on {}: {e}; pick another --listen address (port 0 picks a free port)",
            opts.listen
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", opts.listen)))?;
    let state = Arc::new(AppState {
        store,
        token: opts.token.clone(),
        read_only: opts.read_only,
        private: opts.private,
        max_body: opts.max_body,
        timeout: opts.timeout,
        slots: tokio::sync::Semaphore::new(opts.max_concurrency),
        body_memory: Arc::new(tokio::sync::Semaphore::new(BODY_MEMORY as usize)),
        work_memory: Arc::new(tokio::sync::Semaphore::new(
            (opts.max_memory / 1024).min(u32::MAX as u64) as usize,
        )),
        work_memory_kib: (opts.max_memory / 1024).min(u32::MAX as u64),
        admin_token: opts.admin_token.clone(),
        log_requests: opts.log_requests,
        actors,
    });
    Ok((listener, state))
}

fn runtime(opts: &Options) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(opts.max_concurrency + 4)
        .thread_name("remotelog-serve")
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the server's runtime: {e}")))
}

/// Accepts connections (at most [`MAX_CONNECTIONS`] at once) and serves each with hyper's
/// HTTP/1.1: request heads must arrive within [`HEADER_TIMEOUT`] and fit in
/// [`MAX_HEAD_BYTES`], and a keep-alive connection idle that long is closed, so no
/// connection pins a task or memory for long without sending. When `stop` resolves,
/// stops accepting, lets every connection finish its request in flight, and returns.
async fn serve_until(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::Invalid(format!("cannot listen: {e}")))?;
    let app = router(state);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // Dropping `shutdown_tx` tells the connections to finish; each holds a `done_rx` until
    // it is closed, so `done_tx.closed()` waits for all of them.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(());
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    eprintln!("remotelog serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut shutdown = shutdown_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    tower_service::Service::call(&mut app, req.map(Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
            drop(permit);
        });
    }
    drop(listener);
    drop(shutdown_tx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Starts a server on its own thread and returns once it accepts connections.
pub fn start(opts: Options) -> Result<Running> {
    let (listener, state) = prepare(&opts)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot listen: {e}")))?;
    let rt = runtime(&opts)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("remotelog-serve".into())
        .spawn(move || {
            rt.block_on(serve_until(listener, state, async {
                let _ = rx.await;
            }))
        })
        .map_err(|e| Error::Invalid(format!("cannot start the server thread: {e}")))?;
    Ok(Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and returns.
/// `ready` is told the address once the server accepts connections.
pub fn run(opts: Options, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let (listener, state) = prepare(&opts)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot listen: {e}")))?;
    let rt = runtime(&opts)?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| Error::Invalid(format!("cannot watch SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| Error::Invalid(format!("cannot watch SIGINT: {e}")))?;
        ready(addr);
        serve_until(listener, state, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            eprintln!("remotelog serve: stopping; finishing the requests in flight");
        })
        .await
    })
}

/// The ids of a `POST /cas/present` body: hex ids, one per line.
fn present_ids(body: &[u8]) -> ApiResult<Vec<Id>> {
    let text_body = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad("the body must be ids in hex, one per line"))?;
    let ids = text_body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_id(l.trim()))
        .collect::<ApiResult<Vec<Id>>>()?;
    if ids.len() > MAX_PRESENT_IDS {
        return Err(ApiError::bad(format!(
            "{} ids in one request; ask about at most {MAX_PRESENT_IDS} at a time",
            ids.len()
        )));
    }
    Ok(ids)
}

/// Entry points for the fuzz targets (`fuzz/`) into the request decoding above, on raw
/// bytes, with errors as (HTTP status, message). Not an API: they only exist so that the
/// fuzzers and their corpus test run the real code.
#[doc(hidden)]
pub mod fuzz_entry {
    use super::*;

    /// A decoded value, or the error answer's (status, message).
    pub type Answer<T> = std::result::Result<T, (u16, String)>;

    fn answer<T>(r: ApiResult<T>) -> Answer<T> {
        r.map_err(|e| (e.status.as_u16(), e.msg))
    }

    /// A header map holding the values given; `None` when one cannot be a header value.
    fn headers(values: &[(header::HeaderName, Option<&[u8]>)]) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        for (name, v) in values {
            if let Some(v) = v {
                h.insert(name.clone(), HeaderValue::from_bytes(v).ok()?);
            }
        }
        Some(h)
    }

    /// An object id from a URL segment (`/cas/{id}`, `/packs/{id}`).
    pub fn id(s: &str) -> Answer<Id> {
        answer(parse_id(s))
    }

    /// A ref name from the URL (`/ns/{*name}`), and whether it may be written over HTTP.
    pub fn ref_name(raw: &str) -> Answer<(RefName, bool)> {
        let name = answer(ref_from_url(raw))?;
        let w = writable(&name).is_ok();
        Ok((name, w))
    }

    /// The compare-and-swap expectation of `If-Match` / `If-None-Match`.
    pub fn expected(
        if_match: Option<&[u8]>,
        if_none_match: Option<&[u8]>,
    ) -> Option<Answer<Option<Id>>> {
        let h = headers(&[
            (header::IF_MATCH, if_match),
            (header::IF_NONE_MATCH, if_none_match),
        ])?;
        Some(answer(expected_value(&h)))
    }

    /// The byte range of a `Range` header over a file of `len` bytes.
    pub fn range(value: &[u8], len: u64) -> Option<Answer<Option<(u64, u64)>>> {
        let h = headers(&[(header::RANGE, Some(value))])?;
        Some(answer(byte_range(&h, len)))
    }

    /// The ids of a `POST /cas/present` body.
    pub fn present(body: &[u8]) -> Answer<Vec<Id>> {
        answer(present_ids(body))
    }
}
