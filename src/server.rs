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
use axum::routing::{any, get, post, put};
use axum::Router;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::backend::{Backend, TimedLeases};
use crate::error::{Error, Result};
use crate::id::{is_lower_hex, Id};
use crate::name::{self, RefName};
use crate::object::decode_page;
use crate::pack::{self, Pack};
use crate::store::{FsStore, LOOSE_MAX};

/// The store a server serves: any backend, used through the storage contract alone.
pub(crate) type Store = Arc<dyn Backend + Send + Sync>;

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
/// Default `--max-memory`: what the requests being processed may hold at once for the
/// bodies and blocks they work on (see [`Options::max_memory`]).
pub const DEFAULT_MAX_MEMORY: u64 = 192 << 20;
/// Longest a client may take to send a request's headers; a keep-alive connection idle
/// this long is closed too (hyper times both from the end of the previous answer).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that sends nothing for this long is cut off.
pub const BODY_STALL: Duration = Duration::from_secs(10);
/// After [`BODY_GRACE`], a body must have arrived at this many bytes per second on average.
pub const MIN_BODY_RATE: u64 = 1024;
/// How long a body may take before [`MIN_BODY_RATE`] applies.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen queue until one closes.
pub const MAX_CONNECTIONS: usize = 512;
/// Largest request head (request line and headers) a connection buffers.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Bodies held in memory before their request gets a slot, all requests together; a
/// body that does not fit is answered 503. Only small bodies are read into memory (ids,
/// names); objects and packs are written to a temporary file and never count here.
pub const BODY_MEMORY: u64 = 64 << 20;
/// Largest body of `POST /cas/present`: 100,000 ids of 64 hex digits and CR LF.
pub const PRESENT_BODY_MAX: u64 = MAX_PRESENT_IDS as u64 * 66 + 1024;
/// Largest body of a ref update (`PUT /ns/...`): an id and a newline, with room for spaces.
pub const REF_BODY_MAX: u64 = 1024;
/// Largest body of a Twirp read (`CAS/Get`, `NS/Fetch`): an address or a name.
pub const TWIRP_READ_BODY_MAX: u64 = 64 << 10;
/// Largest object a client may add with `POST /cas`, `CAS/Add` or `NS/Update`: the
/// largest block a pack may hold, so that every stored object can be packed and served.
pub const MAX_ADDED_OBJECT: u64 = pack::MAX_BLOCK as u64;
/// Most objects (and most blocks) in one uploaded pack: twice what a writer puts in one
/// pack, since a batch may overshoot by a copied block.
pub const MAX_UPLOAD_OBJECTS: usize = 2 * pack::BATCH_MAX_OBJECTS;
/// Header of a 409 answer to a ref update naming the first object its chain lacks.
pub const MISSING_HEADER: &str = "x-remotelog-missing";
/// Header of the same answer saying what that object is (`page ...`, `message ...`).
pub const MISSING_WHAT_HEADER: &str = "x-remotelog-missing-what";
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
    /// Bytes the requests being processed may hold at once for the bodies and pack
    /// blocks they work on; a request waits until its share is free.
    pub max_memory: u64,
    /// Bearer token for `POST /gc`; without one the server refuses gc over HTTP.
    pub admin_token: Option<String>,
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
            max_memory: DEFAULT_MAX_MEMORY,
            admin_token: None,
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
    pub(crate) store: Store,
    token: Option<String>,
    read_only: bool,
    private: bool,
    pub(crate) max_body: u64,
    timeout: Duration,
    slots: tokio::sync::Semaphore,
    /// Bytes of bodies held in memory before a slot ([`BODY_MEMORY`]).
    body_memory: Arc<tokio::sync::Semaphore>,
    /// KiB the requests holding a slot may use for their work (`--max-memory`).
    work_memory: Arc<tokio::sync::Semaphore>,
    work_memory_kib: u64,
    admin_token: Option<String>,
    log_requests: bool,
}

type St = State<Arc<AppState>>;

/// An error answer: a status and a one-line message saying what to do.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) msg: String,
    etag: Option<Option<Id>>,
    /// The first object a refused ref update lacks, and what it is.
    missing: Option<(Id, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            msg: msg.into(),
            etag: None,
            missing: None,
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
                missing: None,
            },
            Error::IncompleteChain {
                ref name,
                missing,
                ref what,
                ..
            } => ApiError {
                status: StatusCode::CONFLICT,
                msg: format!(
                    "ref {name} was not moved: {what} {missing} is not in this store; upload it first (POST /packs or POST /cas) and retry"
                ),
                etag: None,
                missing: Some((missing, what.clone())),
            },
            Error::Locked { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is busy (a lock is held, or gc is running); try again shortly",
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
        if let Some((id, what)) = &self.missing {
            // So that a client can tell "upload again and retry" from other conflicts.
            set_header(r.headers_mut(), MISSING_HEADER, &id.to_hex());
            set_header(r.headers_mut(), MISSING_WHAT_HEADER, what);
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
    /// `POST /gc`: only with the admin token.
    Admin,
}

/// The bearer token a request carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

impl AppState {
    /// Checks read-only mode and the bearer token.
    pub(crate) fn authorize(&self, headers: &HeaderMap, access: Access) -> ApiResult<()> {
        if access != Access::Read && self.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this server is read-only (started with --read-only); it refuses writes",
            ));
        }
        if access == Access::Admin {
            return self.authorize_admin(headers);
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
        let given = bearer(headers);
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

impl AppState {
    /// gc deletes, so it needs a token of its own: a writer's token must not be enough.
    fn authorize_admin(&self, headers: &HeaderMap) -> ApiResult<()> {
        let Some(admin) = &self.admin_token else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this server does not run gc over HTTP: start it with --admin-token-file FILE (a token other than the writers'), or run `remotelog gc` on its directory",
            ));
        };
        match bearer(headers) {
            Some(t) if constant_time_eq(t.as_bytes(), admin.as_bytes()) => Ok(()),
            Some(t)
                if self
                    .token
                    .as_ref()
                    .is_some_and(|w| constant_time_eq(t.as_bytes(), w.as_bytes())) =>
            {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the writers' token cannot run gc; send the admin token (the client reads it from REMOTELOG_ADMIN_TOKEN or REMOTELOG_ADMIN_TOKEN_FILE)",
                ))
            }
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the admin token was refused for gc; check REMOTELOG_ADMIN_TOKEN / REMOTELOG_ADMIN_TOKEN_FILE against the server's --admin-token-file",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "gc needs the admin token: send `Authorization: Bearer <admin token>` (the remotelog client reads it from REMOTELOG_ADMIN_TOKEN or REMOTELOG_ADMIN_TOKEN_FILE)",
            )),
        }
    }

    /// A slot to do the request's work in (`--max-concurrency`). Requests take it once
    /// their body is in, so slow clients never hold one.
    pub(crate) async fn slot(&self) -> ApiResult<tokio::sync::SemaphorePermit<'_>> {
        self.slots.acquire().await.map_err(|_| stopping())
    }

    /// Reserves `bytes` of `--max-memory` for the work of a request holding a slot,
    /// waiting until that much is free.
    pub(crate) async fn reserve(&self, bytes: u64) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        let kib = bytes.div_ceil(1024).max(1);
        if kib > self.work_memory_kib {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "this request needs {} MiB to be processed, more than the server's --max-memory of {} MiB",
                    bytes.div_ceil(1 << 20),
                    self.work_memory_kib / 1024
                ),
            ));
        }
        let n = u32::try_from(kib).unwrap_or(u32::MAX);
        self.work_memory
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| stopping())
    }
}

fn stopping() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is stopping; try again shortly",
    )
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Reads a request body chunk by chunk, cutting off a client that sends too slowly: no
/// pause longer than [`BODY_STALL`], and after [`BODY_GRACE`] at least [`MIN_BODY_RATE`]
/// bytes per second on average. Slow bodies hold a connection, never a slot.
struct BodyReader {
    body: Body,
    start: Instant,
    received: u64,
    limit: u64,
    what: &'static str,
}

impl BodyReader {
    /// A reader of `body` refusing more than `limit` bytes (`what` names the limit in
    /// errors); a `Content-Length` over it is refused before anything is read.
    fn new(headers: &HeaderMap, body: Body, limit: u64, what: &'static str) -> ApiResult<Self> {
        if let Some(len) = content_length(headers) {
            if len > limit {
                return Err(too_big(Some(len), limit, what));
            }
        }
        Ok(BodyReader {
            body,
            start: Instant::now(),
            received: 0,
            limit,
            what,
        })
    }

    /// The next chunk of data, `None` at the end.
    async fn next(&mut self) -> ApiResult<Option<Bytes>> {
        loop {
            // The rate rule holds until GRACE + received / RATE; no wait beyond STALL.
            let rate_deadline = BODY_GRACE
                + Duration::from_millis(self.received.saturating_mul(1000) / MIN_BODY_RATE);
            let wait = rate_deadline
                .saturating_sub(self.start.elapsed())
                .min(BODY_STALL);
            let frame = match tokio::time::timeout(wait, self.body.frame()).await {
                Ok(f) => f,
                Err(_) => return Err(self.too_slow()),
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            let frame = frame
                .map_err(|e| ApiError::bad(format!("could not read the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                self.received += data.len() as u64;
                if self.received > self.limit {
                    return Err(too_big(None, self.limit, self.what));
                }
                return Ok(Some(data));
            }
        }
    }

    fn too_slow(&self) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body came too slowly ({} bytes in {:.0}s): a body may not pause for {}s, and after {}s must average {} bytes/s; send it at once",
                self.received,
                self.start.elapsed().as_secs_f64(),
                BODY_STALL.as_secs(),
                BODY_GRACE.as_secs(),
                MIN_BODY_RATE
            ),
        )
    }
}

/// A small request body read into memory, with its share of [`BODY_MEMORY`].
pub(crate) struct SmallBody {
    pub(crate) bytes: Bytes,
    _memory: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Reads a small body (ids, a name) into memory: at most `limit` bytes, counted against
/// [`BODY_MEMORY`] as it arrives, so that many clients sending at once cannot exhaust the
/// server's memory (when it is spent the answer is 503, try again).
pub(crate) async fn read_small(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &'static str,
) -> ApiResult<SmallBody> {
    let mut r = BodyReader::new(headers, body, limit, what)?;
    let mut buf = Vec::new();
    let mut memory: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(chunk) = r.next().await? {
        let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let more = st.body_memory.clone().try_acquire_many_owned(n).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server is receiving too many request bodies at once ({} MiB in memory); try again shortly",
                    BODY_MEMORY >> 20
                ),
            )
        })?;
        match &mut memory {
            Some(m) => m.merge(more),
            None => memory = Some(more),
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(SmallBody {
        bytes: Bytes::from(buf),
        _memory: memory,
    })
}

/// A body written to a temporary file in the store as it arrived.
pub(crate) struct Spooled {
    /// The file, positioned at its end.
    pub(crate) file: std::fs::File,
    /// Its path; the file is removed when this is dropped.
    pub(crate) tmp: tempfile::TempPath,
    /// Its length.
    pub(crate) len: u64,
    /// BLAKE3 of every byte but the last 32 (a pack's checksum covers exactly those).
    head_hash: blake3::Hasher,
    /// The last (at most) 32 bytes.
    tail: Vec<u8>,
}

impl Spooled {
    /// BLAKE3 of the whole body: its id as a CAS object.
    pub(crate) fn id(&self) -> Id {
        let mut h = self.head_hash.clone();
        h.update(&self.tail);
        Id(*h.finalize().as_bytes())
    }

    /// Whether the last 32 bytes are BLAKE3 of the bytes before them (a pack's checksum).
    fn checksum_holds(&self) -> bool {
        self.tail.len() == 32 && self.head_hash.finalize().as_bytes()[..] == self.tail[..]
    }

    /// The whole body, read back into memory (under a slot and a memory reservation).
    pub(crate) fn read_all(&self) -> ApiResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut f = std::fs::File::open(&self.tmp).map_err(|e| io_error(e, &self.tmp))?;
        std::io::Read::read_to_end(&mut f, &mut out).map_err(|e| io_error(e, &self.tmp))?;
        Ok(out)
    }
}

fn io_error(e: std::io::Error, p: &Path) -> ApiError {
    ApiError::from_store(Error::Io {
        path: p.to_path_buf(),
        source: e,
    })
}

/// Writes a body of at most `limit` bytes to a temporary file in the store's staging
/// directory ([`Backend::staging_dir`]), so that objects and packs are never held in
/// memory while they arrive and a pack is added by a rename; hashes it on the way. The
/// file is durable when this returns.
pub(crate) async fn spool(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &'static str,
) -> ApiResult<Spooled> {
    let mut r = BodyReader::new(headers, body, limit, what)?;
    let store = st.store.clone();
    let (file, tmp) = blocking(move || {
        let dir = store.staging_dir().map_err(ApiError::from_store)?;
        let named = tempfile::Builder::new()
            .prefix(crate::fsutil::TMP_PREFIX)
            .suffix(".upload")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(|e| io_error(e, &dir))?;
        Ok(named.into_parts())
    })
    .await?;
    let mut out = tokio::fs::File::from_std(file);
    let mut head_hash = blake3::Hasher::new();
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut len = 0u64;
    while let Some(data) = r.next().await? {
        len += data.len() as u64;
        // Hash all but the last 32 bytes seen so far.
        if data.len() >= 32 {
            head_hash.update(&tail);
            head_hash.update(&data[..data.len() - 32]);
            tail.clear();
            tail.extend_from_slice(&data[data.len() - 32..]);
        } else {
            tail.extend_from_slice(&data);
            let cut = tail.len().saturating_sub(32);
            head_hash.update(&tail[..cut]);
            tail.drain(..cut);
        }
        out.write_all(&data).await.map_err(|e| io_error(e, &tmp))?;
    }
    out.flush().await.map_err(|e| io_error(e, &tmp))?;
    out.sync_all().await.map_err(|e| io_error(e, &tmp))?;
    Ok(Spooled {
        file: out.into_std().await,
        tmp,
        len,
        head_hash,
        tail,
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(crate) fn too_big(len: Option<u64>, max: u64, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body{} is larger than {what}, {max} bytes",
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
        .route("/leases", post(lease_take))
        .route("/leases/{id}", put(lease_renew).delete(lease_release))
        .route("/twirp/{*method}", any(crate::twirp::handle))
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
    let twirp = path.starts_with("/twirp/");
    let slot_here =
        matches!(method, Method::GET | Method::HEAD | Method::DELETE) && path != "/healthz";
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

/// The most bytes `POST /cas`, `CAS/Add` and `NS/Update` bodies may have.
pub(crate) fn added_body_max(st: &AppState) -> u64 {
    st.max_body.min(MAX_ADDED_OBJECT)
}

/// What `--max-memory` a request adding an object of `len` bytes reserves: the bytes and
/// their compressed copy (at most about as large).
pub(crate) fn add_need(len: u64) -> u64 {
    2 * len + (1 << 20)
}

/// How long a write request waits for a gc running on the store before it is answered
/// `503` (the client may retry).
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Takes a writer lease on the served store for one write request (store-v1 section 9):
/// gc deletes nothing while the request works, and the request waits for a running gc.
/// A request made under a client's lease ([`LEASE_HEADER`] naming a live one) needs no
/// lease of its own: the client's already holds gc off, and a gc waiting for that lease
/// must not also be waited for.
pub(crate) async fn write_lease(
    st: &AppState,
    headers: &HeaderMap,
) -> ApiResult<crate::backend::WriteLease> {
    let client = headers
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| lease_id(v.trim()).ok());
    let store = st.store.clone();
    blocking(move || {
        if let (Some(id), Some(timed)) = (client, store.timed_leases()) {
            if let Some(lease) = timed.join(&id).map_err(ApiError::from_store)? {
                return Ok(lease);
            }
        }
        store
            .write_lease_waiting(LEASE_WAIT)
            .map_err(ApiError::from_store)
    })
    .await
}

/// The header naming the client lease a request is made under.
pub const LEASE_HEADER: &str = "x-remotelog-lease";

/// Stores one object unless present; true when it was written.
pub(crate) fn put_one(store: &dyn Backend, id: Id, bytes: &[u8]) -> ApiResult<bool> {
    if store.has_object(&id).map_err(ApiError::from_store)? {
        return Ok(false);
    }
    let written = store
        .put_objects(&[(id, bytes)])
        .map_err(ApiError::from_store)?;
    Ok(written > 0)
}

async fn cas_add(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    st.authorize(&headers, Access::Write)?;
    let max = added_body_max(&st);
    let up = spool(
        &st,
        &headers,
        body,
        max,
        "the largest object this server accepts (--max-body, at most 64 MiB)",
    )
    .await?;
    let _slot = st.slot().await?;
    let _lease = write_lease(&st, &headers).await?;
    let _memory = st.reserve(add_need(up.len)).await?;
    let id = up.id();
    let store = st.store.clone();
    let written = blocking(move || {
        let data = up.read_all()?;
        put_one(&*store, id, &data)
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
    st.authorize(&headers, Access::Read)?;
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let bytes = blocking(move || match store.get_object(&id) {
        // The spec view's addresses (format/spec-view.md) read like stored objects.
        Err(e @ Error::ObjectMissing { .. }) => {
            crate::twirp::spec_view_get(&*store, &id)?.ok_or_else(|| ApiError::from_store(e))
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

/// Runs the library's gc on the served store: only with the admin token
/// (`--admin-token-file`), never a writer's, and never on a read-only server.
async fn gc_run(
    State(st): St,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<GcQuery>,
) -> ApiResult<Response> {
    st.authorize(&headers, Access::Admin)?;
    let _slot = st.slot().await?;
    let store = st.store.clone();
    let done = blocking(move || {
        crate::gc::gc(
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

fn lease_id(raw: &str) -> ApiResult<String> {
    if raw.len() == 32 && crate::id::is_lower_hex(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad(format!(
            "{raw:?} is not a lease id (32 lowercase hex digits, as POST /leases gave)"
        )))
    }
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
    st.authorize(&headers, Access::Write)?;
    let _slot = st.slot().await?;
    let store = st.store.clone();
    let id = new_lease_id();
    let taken = id.clone();
    blocking(move || {
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
    st.authorize(&headers, Access::Write)?;
    let id = lease_id(&raw)?;
    let store = st.store.clone();
    let renewed = blocking(move || {
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
    st.authorize(&headers, Access::Write)?;
    let id = lease_id(&raw)?;
    let store = st.store.clone();
    blocking(move || {
        timed_leases(&store)?
            .release(&id)
            .map_err(ApiError::from_store)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cas_present(State(st): St, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    st.authorize(&headers, Access::Read)?;
    let body = read_small(
        &st,
        &headers,
        body,
        PRESENT_BODY_MAX,
        "what POST /cas/present takes (100,000 ids)",
    )
    .await?;
    let _slot = st.slot().await?;
    let ids = present_ids(&body.bytes)?;
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
    let body = read_small(
        &st,
        &headers,
        body,
        REF_BODY_MAX,
        "a ref update's body (an id)",
    )
    .await?;
    let new = std::str::from_utf8(&body.bytes)
        .ok()
        .map(str::trim)
        .ok_or_else(|| ApiError::bad("the body must be the new id in hex"))
        .and_then(parse_id)?;
    let _slot = st.slot().await?;
    let _lease = write_lease(&st, &headers).await?;
    let store = st.store.clone();
    blocking(move || {
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
            // everything it names is complete, so the walk stops there.
            let current = store.read_ref(&name).map_err(ApiError::from_store)?;
            if current != expected {
                return Err(ApiError::from_store(Error::RefConflict {
                    name: name.to_string(),
                    expected,
                    actual: current,
                }));
            }
            crate::log::check_complete(&*store, &name, new, current).map_err(|e| match e {
                Error::ObjectCorrupt { .. } => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the chain of page {new} is not sound: {e}; nothing changed"),
                ),
                other => ApiError::from_store(other),
            })?;
        } else if !store.has_object(&new).map_err(ApiError::from_store)? {
            return Err(missing("object"));
        }
        store
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
            .update_ref(&name, expected.into(), None)
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
        for p in store.pack_chain().map_err(ApiError::from_store)? {
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
    st.authorize(&headers, Access::Read)?;
    let id = parse_id(&id)?;
    let store = st.store.clone();
    let len = blocking(move || {
        let packs = store.pack_chain().map_err(ApiError::from_store)?;
        packs
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.size)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("pack {id} is not on this store's pack chain; GET /packs lists them"),
                )
            })
    })
    .await?;
    let range = byte_range(&headers, len)?;
    let (first, last) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { last - first + 1 };
    let store = st.store.clone();
    let reader = blocking(move || {
        store
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
    // Streamed to a temporary file in packs/, so a large push is never held in memory
    // and the commit is a rename; its checksum is computed on the way.
    let up = spool(&st, &headers, body, st.max_body, "this server's --max-body").await?;
    let _slot = st.slot().await?;
    let _lease = write_lease(&st, &headers).await?;
    let upload = blocking(move || open_upload(up)).await?;
    let _memory = st.reserve(upload.need).await?;
    let store = st.store.clone();
    let outcome = blocking(move || ingest_pack(&*store, upload)).await?;
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

fn invalid_pack(r: String) -> ApiError {
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
            "checksum mismatch: the file does not hash to its trailer (truncated or damaged)"
                .into(),
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
/// section 7), so memory never holds more than one block and one object's copy.
fn ingest_pack(store: &dyn Backend, up: Upload) -> ApiResult<PackOutcome> {
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
        let is_page = |b: &[u8]| crate::object::peek_kind(b) == Some(crate::object::Kind::Page);
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
                store.put_objects(&todo).map_err(ApiError::from_store)?;
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
    let id = store.add_pack(done).map_err(ApiError::from_store)?;
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
