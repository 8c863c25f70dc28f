//! `remotelog serve`: one store over HTTP — a REST API for the CAS, the NS and packs, and
//! the Twirp services of 3/REMOTE-LOG ([`crate::twirp`]). The API is specified in
//! `format/http-api.md`; [`crate::http_client::HttpBackend`] is its client.
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

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::{is_lower_hex, Id};
use crate::name::{self, RefName};
use crate::object::decode_page;
use crate::pack::{self, Pack};
use crate::store::{FsStore, LOOSE_MAX};

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8001";
/// Default `--max-body`: the largest object a store accepts.
pub const DEFAULT_MAX_BODY: u64 = crate::store::MAX_OBJECT_SIZE;
/// Default time a request may take, upload included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of requests served at once; more wait for a slot.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Most ids one `POST /cas/present` may ask about.
pub const MAX_PRESENT_IDS: usize = 100_000;
/// The ref namespaces a client may write: native logs, and the Twirp NS.
pub const WRITABLE: [&str; 2] = [name::LOGS, SPEC];
/// Header of a 412 answer naming the ref's current value (hex, or `absent`).
pub const CURRENT_HEADER: &str = "x-remotelog-current";
/// Where the Twirp NS keeps its names: `refs/spec/<name>`.
pub const SPEC: &str = crate::name::SPEC;

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
    /// One line per request on stderr.
    pub log_requests: bool,
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
            log_requests: true,
        }
    }
}

/// Reads a token file: its content with surrounding whitespace trimmed, never empty.
pub fn read_token_file(path: &Path) -> Result<String> {
    use crate::error::IoContext;
    let text = std::fs::read_to_string(path).at(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: the token file is empty; put the token in it",
            path.display()
        )));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::Invalid(format!(
            "{}: a token is one line without spaces or control characters",
            path.display()
        )));
    }
    Ok(token.to_string())
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) store: FsStore,
    token: Option<String>,
    read_only: bool,
    private: bool,
    pub(crate) max_body: u64,
    timeout: Duration,
    slots: tokio::sync::Semaphore,
    log_requests: bool,
}

type St = State<Arc<AppState>>;

/// An error answer: a status and a one-line message saying what to do.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) msg: String,
    etag: Option<Option<Id>>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            msg: msg.into(),
            etag: None,
        }
    }

    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, msg)
    }

    /// Maps a store error: the client's fault is 4xx, the server's is 500 (and logged).
    pub(crate) fn from_store(e: Error) -> ApiError {
        match e {
            Error::ObjectMissing { id, .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                format!("object {id} is not in this store"),
            ),
            Error::InvalidName { .. } => ApiError::bad(e.to_string()),
            Error::RefConflict { actual, .. } => ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                msg: e.to_string(),
                etag: Some(actual),
            },
            Error::Locked { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is busy (a ref or pack lock is held); try again shortly",
            ),
            other => {
                eprintln!("remotelog serve: error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the server failed: {other}"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.msg),
        )
            .into_response();
        if let Some(current) = self.etag {
            // A failed compare-and-swap says what the ref holds now, so the client can
            // report it (and retry from it) without another request.
            let shown = current.map_or_else(|| "absent".to_string(), |id| id.to_hex());
            set_header(r.headers_mut(), CURRENT_HEADER, &shown);
            if let Some(id) = current {
                set_header(r.headers_mut(), header::ETAG, &etag(&id));
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"remotelog\""),
            );
        }
        r
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

fn etag(id: &Id) -> String {
    format!("\"{id}\"")
}

/// Runs store code on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> ApiResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("a server worker failed: {e}"),
        )
    })?
}

/// What a request wants to do, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl AppState {
    /// Checks read-only mode and the bearer token.
    pub(crate) fn authorize(&self, headers: &HeaderMap, access: Access) -> ApiResult<()> {
        if access == Access::Write && self.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this server is read-only (started with --read-only); it refuses writes",
            ));
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        if access == Access::Read && !self.private {
            return Ok(());
        }
        let what = if access == Access::Write {
            "writes"
        } else {
            "reads (it is --private)"
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("this server needs a token for {what}: send `Authorization: Bearer <token>` (the remotelog client reads it from REMOTELOG_TOKEN or REMOTELOG_TOKEN_FILE)"),
            )),
            Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("the token was refused for {what}; check REMOTELOG_TOKEN / REMOTELOG_TOKEN_FILE against the server's --token-file"),
            )),
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Reads a whole request body, refusing more than `--max-body` bytes.
pub(crate) async fn read_body(st: &AppState, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    if let Some(len) = content_length(headers) {
        if len > st.max_body {
            return Err(too_big(Some(len), st.max_body));
        }
    }
    match Limited::new(body, st.max_body as usize).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_big(None, st.max_body)),
        Err(e) => Err(ApiError::bad(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(crate) fn too_big(len: Option<u64>, max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body{} is larger than this server's limit of {max} bytes (--max-body)",
            len.map(|l| format!(" of {l} bytes")).unwrap_or_default()
        ),
    )
}

/// Sets a header whose value we built ourselves (ids, paths, ranges: always valid ASCII).
fn set_header(h: &mut HeaderMap, name: impl axum::http::header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn parse_id(s: &str) -> ApiResult<Id> {
    s.parse::<Id>().map_err(|e| ApiError::bad(e.to_string()))
}

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
        .route("/twirp/{*method}", any(crate::twirp::handle))
        .fallback(no_route)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Bounded concurrency, the request timeout and the request log, around every request.
async fn guard(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let twirp = path.starts_with("/twirp/");
    // Waiting for a slot counts against the timeout too: a client sees one deadline.
    let work = async {
        let _slot = st.slots.acquire().await;
        next.run(req).await
    };
    let resp = match tokio::time::timeout(st.timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            let msg = format!(
                "the request took longer than {}s (the server's --timeout); anything it wrote completes or is invisible, so it is safe to retry",
                st.timeout.as_secs()
            );
            if twirp {
                crate::twirp::TwirpError::new(crate::twirp::Code::DeadlineExceeded, msg)
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
            "{}.{:03} {peer} \"{method} {path}\" {} {len} {:.1}ms",
            now.as_secs(),
            now.subsec_millis(),
            resp.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    resp
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
    st.authorize(&headers, Access::Write)?;
    let data = read_body(&st, &headers, body).await?;
    let id = Id::of(&data);
    let store = st.store.clone();
    let written = blocking(move || {
        store
            .put_objects(&[(id, &data[..])])
            .map_err(ApiError::from_store)
    })
    .await?;
    let status = if written > 0 {
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
    st.authorize(&headers, Access::Read)?;
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let bytes = blocking(move || match store.get_object(&id) {
        // The spec view's addresses (format/spec-view.md) read like stored objects.
        Err(e @ Error::ObjectMissing { .. }) => {
            crate::twirp::spec_view_get(&store, &id)?.ok_or_else(|| ApiError::from_store(e))
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
    st.authorize(&headers, Access::Read)?;
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let present = blocking(move || store.has_object(&id).map_err(ApiError::from_store)).await?;
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
    st.authorize(&headers, Access::Read)?;
    if let Some(p) = &q.prefix {
        if p.len() < 2 || p.len() > 64 || !is_lower_hex(p) {
            return Err(ApiError::bad(format!(
                "prefix {p:?} is not 2 to 64 lowercase hex digits"
            )));
        }
    }
    let store = st.store.clone();
    let ids = blocking(move || {
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

/// Runs gc on the served store (a write: it needs the token, and is refused when read-only).
async fn gc_run(
    State(st): St,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<GcQuery>,
) -> ApiResult<Response> {
    st.authorize(&headers, Access::Write)?;
    let store = st.store.clone();
    let done = blocking(move || {
        crate::gc::gc(
            &store,
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

async fn cas_present(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    st.authorize(&headers, Access::Read)?;
    let body = read_body(&st, &headers, body).await?;
    let ids = present_ids(&body)?;
    let store = st.store.clone();
    let present = blocking(move || {
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
    st.authorize(&headers, Access::Read)?;
    let prefix = q.prefix.unwrap_or_else(|| name::LOGS.to_string());
    name::validate(&prefix).map_err(|e| ApiError::bad(e.to_string()))?;
    let store = st.store.clone();
    let lines = blocking(move || {
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
    st.authorize(&headers, Access::Read)?;
    let name = ref_from_url(&raw)?;
    let store = st.store.clone();
    let shown = name.clone();
    let value = blocking(move || store.read_ref(&name).map_err(ApiError::from_store)).await?;
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
    st.authorize(&headers, Access::Write)?;
    let name = ref_from_url(&raw)?;
    writable(&name)?;
    let expected = expected_value(&headers)?;
    let body = read_body(&st, &headers, body).await?;
    let new = std::str::from_utf8(&body)
        .ok()
        .map(str::trim)
        .ok_or_else(|| ApiError::bad("the body must be the new id in hex"))
        .and_then(parse_id)?;
    let store = st.store.clone();
    blocking(move || {
        // Objects before refs: a ref never names what the store does not hold.
        if name.log_name().is_some() {
            let bytes = store.get_object(&new).map_err(|e| match e {
                Error::ObjectMissing { .. } => ApiError::new(
                    StatusCode::CONFLICT,
                    format!("object {new} is not in this store; upload the log's objects first (POST /packs or POST /cas)"),
                ),
                other => ApiError::from_store(other),
            })?;
            decode_page(&bytes).map_err(|r| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("object {new} is not a page ({r}); a log ref must name a page"),
                )
            })?;
        } else if !store.has_object(&new).map_err(ApiError::from_store)? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("object {new} is not in this store; POST it to /cas first"),
            ));
        }
        store
            .update_ref(&name, expected, Some(new))
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
    st.authorize(&headers, Access::Write)?;
    let name = ref_from_url(&raw)?;
    writable(&name)?;
    let expected = expected_value(&headers)?;
    if expected.is_none() {
        return Err(ApiError::bad("deleting needs If-Match: \"<id you read>\""));
    }
    let store = st.store.clone();
    blocking(move || {
        store
            .update_ref(&name, expected, None)
            .map_err(ApiError::from_store)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn packs_list(State(st): St, headers: HeaderMap) -> ApiResult<Response> {
    st.authorize(&headers, Access::Read)?;
    let store = st.store.clone();
    let lines = blocking(move || {
        let mut out = String::new();
        for (id, path, objects) in store.packs().map_err(ApiError::from_store)? {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            out.push_str(&format!("{id} {size} {objects}\n"));
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
    st.authorize(&headers, Access::Read)?;
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let path = blocking(move || {
        let packs = store.packs().map_err(ApiError::from_store)?;
        packs
            .into_iter()
            .find(|p| p.0 == id)
            .map(|p| p.1)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("pack {id} is not on this store's pack chain; GET /packs lists them"),
                )
            })
    })
    .await?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::from_store(Error::Io {
            path: path.clone(),
            source: e,
        })
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|e| {
            ApiError::from_store(Error::Io {
                path: path.clone(),
                source: e,
            })
        })?
        .len();
    let range = byte_range(&headers, len)?;
    let (first, last) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { last - first + 1 };
    file.seek(std::io::SeekFrom::Start(first))
        .await
        .map_err(|e| {
            ApiError::from_store(Error::Io {
                path: path.clone(),
                source: e,
            })
        })?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 256 << 10);
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

/// What an uploaded pack added.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PackOutcome {
    /// Objects in the upload.
    pub objects: usize,
    /// Of those, how many the store did not have.
    pub new: usize,
    /// The pack it became (`None`: small uploads become loose objects, and uploads with
    /// nothing new are dropped).
    pub pack: Option<String>,
}

async fn packs_upload(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    st.authorize(&headers, Access::Write)?;
    if let Some(len) = content_length(&headers) {
        if len > st.max_body {
            return Err(too_big(Some(len), st.max_body));
        }
    }
    let store = st.store.clone();
    // Streamed to a temporary file in packs/, so a large push is never held in memory
    // and the commit is a rename.
    let (file, tmp) = blocking(move || {
        let dir = store.root().join("packs");
        crate::fsutil::create_dir_durable(&dir).map_err(ApiError::from_store)?;
        let named = tempfile::Builder::new()
            .prefix(crate::fsutil::TMP_PREFIX)
            .suffix(".pack")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|e| {
                ApiError::from_store(Error::Io {
                    path: dir.clone(),
                    source: e,
                })
            })?;
        Ok(named.into_parts())
    })
    .await?;
    let io_err = |e: std::io::Error, p: &Path| {
        ApiError::from_store(Error::Io {
            path: p.to_path_buf(),
            source: e,
        })
    };
    let mut file = tokio::fs::File::from_std(file);
    let mut body = body;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad(format!("could not read the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > st.max_body {
                return Err(too_big(None, st.max_body));
            }
            file.write_all(&data).await.map_err(|e| io_err(e, &tmp))?;
        }
    }
    file.flush().await.map_err(|e| io_err(e, &tmp))?;
    file.sync_all().await.map_err(|e| io_err(e, &tmp))?;
    drop(file);
    let store = st.store.clone();
    let outcome = blocking(move || ingest_pack(&store, tmp)).await?;
    let body = serde_json::to_string(&outcome).unwrap_or_default();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

/// Validates an uploaded pack completely — structure, file checksum, every block's
/// checksum, every object's id — and only then adds its objects to the store: as loose
/// objects when there are few (as a local batch would), as a pack chained after the
/// store's head otherwise.
fn ingest_pack(store: &FsStore, tmp: tempfile::TempPath) -> ApiResult<PackOutcome> {
    let invalid = |r: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the uploaded pack is invalid: {r}; nothing was stored"),
        )
    };
    let map = pack::map(&tmp).map_err(ApiError::from_store)?;
    let p = Pack::parse(&map[..]).map_err(invalid)?;
    p.verify_checksum().map_err(invalid)?;
    p.validate_index().map_err(invalid)?;
    let by_block = p.objects_by_block().map_err(invalid)?;
    let small = p.len() <= LOOSE_MAX;
    let mut loose: Vec<(Id, Vec<u8>)> = Vec::new();
    let mut new = 0;
    for (n, objects) in by_block.iter().enumerate() {
        // decompress_block checks the block's checksum first.
        let data = p.decompress_block(n as u32).map_err(invalid)?;
        for (id, loc) in objects {
            let start = loc.offset as usize;
            let bytes = &data[start..start + loc.len as usize];
            let actual = Id::of(bytes);
            if actual != *id {
                return Err(invalid(format!("object {id} hashes to {actual}")));
            }
            if !store.has_object(id).map_err(ApiError::from_store)? {
                new += 1;
            }
            if small {
                loose.push((*id, bytes.to_vec()));
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
        let refs: Vec<(Id, &[u8])> = loose.iter().map(|(id, b)| (*id, &b[..])).collect();
        store.put_objects(&refs).map_err(ApiError::from_store)?;
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
    drop(map);
    let id = store.commit_pack(done).map_err(ApiError::from_store)?;
    Ok(PackOutcome {
        objects,
        new,
        pack: Some(id.to_hex()),
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
    let store = FsStore::open(&opts.store)?;
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
        log_requests: opts.log_requests,
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

async fn serve_until(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::Invalid(format!("cannot listen: {e}")))?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| Error::Invalid(format!("the server failed: {e}")))
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
