//! What every request handler of `remotelog serve` shares, the REST API of
//! [`crate::net::server`] and the Twirp services of [`crate::net::twirp`] alike: the server's state,
//! error answers, and the opening every handler goes through ([`AppState::admit`]:
//! authorize, take in the body, take a slot and the writer lease), running store code on
//! the blocking pool ([`AppState::run`]), and the limits these steps keep.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::Error;
use crate::fsutil::StagedFile;
use crate::id::Id;
use crate::net::wire::{CURRENT_HEADER, LEASE_HEADER, MISSING_HEADER, MISSING_WHAT_HEADER};
use crate::pack;
use crate::store::{Backend, WriteLease};

/// A request body that sends nothing for this long is cut off.
pub const BODY_STALL: Duration = Duration::from_secs(10);
/// After [`BODY_GRACE`], a body must have arrived at this many bytes per second on average.
pub const MIN_BODY_RATE: u64 = 1024;
/// How long a body may take before [`MIN_BODY_RATE`] applies.
pub const BODY_GRACE: Duration = Duration::from_secs(10);

/// Bodies held in memory before their request gets a slot, all requests together; a
/// body that does not fit is answered 503. Only small bodies are read into memory (ids,
/// names); objects and packs are written to a temporary file and never count here.
pub const BODY_MEMORY: u64 = 64 << 20;

/// Largest object a client may add with `POST /cas`, `CAS/Add` or `NS/Update`: the
/// largest block a pack may hold, so that every stored object can be packed and served.
pub const MAX_ADDED_OBJECT: u64 = pack::MAX_BLOCK as u64;

/// The store a server serves: any backend, used through the storage contract alone.
pub(crate) type Store = Arc<dyn Backend + Send + Sync>;

/// The store as a request's client sees it, and the store itself.
pub(crate) struct Seen {
    /// What the client's requests go to: under `serve --mock` its handle of the mocked
    /// remote (latency, visibility, stale names, refusals), else the store.
    pub(crate) view: Store,
    /// The store: what the server checks a request against (a ref update's chain).
    pub(crate) store: Store,
    /// Whether `view` is a mock's.
    pub(crate) mocked: bool,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) token: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) private: bool,
    pub(crate) max_body: u64,
    pub(crate) timeout: Duration,
    pub(crate) slots: tokio::sync::Semaphore,
    /// Bytes of bodies held in memory before a slot ([`BODY_MEMORY`]).
    pub(crate) body_memory: Arc<tokio::sync::Semaphore>,
    /// KiB the requests holding a slot may use for their work (`--max-memory`).
    pub(crate) work_memory: Arc<tokio::sync::Semaphore>,
    pub(crate) work_memory_kib: u64,
    pub(crate) admin_token: Option<String>,
    pub(crate) log_requests: bool,
    /// Under `serve --mock`: each client's view of the store.
    pub(crate) actors: Option<Arc<dyn crate::net::actors::Actors>>,
}

/// An error answer: a status and a one-line message saying what to do.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) msg: String,
    etag: Option<Option<Id>>,
    /// The first object a refused ref update lacks, and what it is.
    missing: Option<(Id, String)>,
    /// Seconds after which the client may retry (a mocked `503 Slow Down`); small, so that
    /// the error stays small.
    pub(crate) retry_after: Option<u16>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            msg: msg.into(),
            etag: None,
            missing: None,
            retry_after: None,
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
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
                retry_after: None,
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
                retry_after: None,
            },
            // Under `serve --mock`: the mocked service refused the request.
            Error::Remote { ref message, .. }
                if crate::net::actors::refusal_of(message).is_some() =>
            {
                ApiError::refused(crate::net::actors::refusal_of(message), message)
            }
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

impl ApiError {
    /// The answer a client of the mocked service gets for a refusal: a gateway's statuses
    /// for an upstream that timed out (504) or failed (502), S3's `503 Slow Down`, and
    /// 413 for what is over a size limit.
    fn refused(how: Option<crate::net::actors::Refusal>, msg: &str) -> ApiError {
        use crate::net::actors::Refusal;
        let (status, retry_after) = match how {
            Some(Refusal::Timeout) => (StatusCode::GATEWAY_TIMEOUT, None),
            Some(Refusal::SlowDown) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            Some(Refusal::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, None),
            Some(Refusal::Unavailable | Refusal::Failed) | None => (StatusCode::BAD_GATEWAY, None),
        };
        let mut e = ApiError::new(status, msg);
        e.retry_after = retry_after;
        e
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
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

pub(crate) fn etag(id: &Id) -> String {
    format!("\"{id}\"")
}

/// Runs store code on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> ApiResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(worker_failed)?
}

fn worker_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("a server worker failed: {e}"),
    )
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
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
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

pub(crate) fn stopping() -> ApiError {
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
    pub(crate) fn checksum_holds(&self) -> bool {
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
    let mut head_hash = blake3::Hasher::new();
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    let mut len = 0u64;
    // One piece is written on the blocking pool while the next arrives; the body is never
    // held whole, and a file dropped on the way (an error, a timeout) is removed.
    let mut writing =
        tokio::task::spawn_blocking(move || StagedFile::create(&store.staging_dir()?, ".upload"));
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
        let mut out = written(writing).await?;
        writing = tokio::task::spawn_blocking(move || {
            out.write_all(&data)?;
            Ok(out)
        });
    }
    let out = written(writing).await?;
    let (file, tmp) = blocking(move || {
        out.sync()?;
        Ok(out.into_parts())
    })
    .await?;
    Ok(Spooled {
        file,
        tmp,
        len,
        head_hash,
        tail,
    })
}

/// The staged file once the write in flight is done.
async fn written(w: tokio::task::JoinHandle<crate::Result<StagedFile>>) -> ApiResult<StagedFile> {
    Ok(w.await.map_err(worker_failed)??)
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
pub(crate) fn set_header(
    h: &mut HeaderMap,
    name: impl axum::http::header::IntoHeaderName,
    value: &str,
) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

pub(crate) fn parse_id(s: &str) -> ApiResult<Id> {
    s.parse::<Id>().map_err(|e| ApiError::bad(e.to_string()))
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
pub(crate) const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Takes a writer lease on the served store for one write request (store-v1 section 9):
/// gc deletes nothing while the request works, and the request waits for a running gc.
/// A request made under a client's lease ([`LEASE_HEADER`] naming a live one) needs no
/// lease of its own: the client's already holds gc off, and a gc waiting for that lease
/// must not also be waited for.
pub(crate) async fn write_lease(
    st: &AppState,
    headers: &HeaderMap,
) -> ApiResult<crate::store::WriteLease> {
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

/// Stores one object for the client of `s`: through its view under `serve --mock`, where
/// adding what is there is a request like any other (and republishes it), else as
/// [`put_one`]. True when it was new.
pub(crate) fn add_one(s: &Seen, id: Id, bytes: &[u8]) -> ApiResult<bool> {
    if !s.mocked {
        return put_one(&*s.store, id, bytes);
    }
    let written = s
        .view
        .put_objects(&[(id, bytes)])
        .map_err(ApiError::from_store)?;
    Ok(written > 0)
}

pub(crate) fn lease_id(raw: &str) -> ApiResult<String> {
    if raw.len() == 32 && crate::id::is_lower_hex(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::bad(format!(
            "{raw:?} is not a lease id (32 lowercase hex digits, as POST /leases gave)"
        )))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::from_store(e)
    }
}

// ---------------------------------------------------------------------------------------
// The opening of a handler

/// How a request's body is taken in, before the request takes a slot.
pub(crate) trait Intake {
    /// What the body becomes.
    type Taken: Send;
    /// Takes the body in.
    fn take(
        self,
        st: &AppState,
        headers: &HeaderMap,
    ) -> impl Future<Output = ApiResult<Self::Taken>> + Send;
}

/// No body is read: the request says everything in its URL and headers.
pub(crate) struct NoBody;

impl Intake for NoBody {
    type Taken = ();
    async fn take(self, _: &AppState, _: &HeaderMap) -> ApiResult<()> {
        Ok(())
    }
}

/// A small body (ids, a name) read into memory: see [`read_small`].
pub(crate) struct Small {
    /// The body.
    pub(crate) body: Body,
    /// Most bytes it may have.
    pub(crate) limit: u64,
    /// What the limit is, for the error.
    pub(crate) what: &'static str,
}

impl Intake for Small {
    type Taken = SmallBody;
    async fn take(self, st: &AppState, headers: &HeaderMap) -> ApiResult<SmallBody> {
        read_small(st, headers, self.body, self.limit, self.what).await
    }
}

/// A body (an object, a pack) written to a staged file in a directory of the store as it
/// arrives: see [`spool`].
pub(crate) struct Spool {
    /// The body.
    pub(crate) body: Body,
    /// Most bytes it may have.
    pub(crate) limit: u64,
    /// What the limit is, for the error.
    pub(crate) what: &'static str,
}

impl Intake for Spool {
    type Taken = Spooled;
    async fn take(self, st: &AppState, headers: &HeaderMap) -> ApiResult<Spooled> {
        spool(st, headers, self.body, self.limit, self.what).await
    }
}

/// What an admitted request holds while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Nothing more: a request without a body got its slot in `guard` (GET, HEAD,
    /// DELETE), or needs none.
    Nothing,
    /// A slot (`--max-concurrency`).
    Slot,
    /// A slot, then a writer lease ([`write_lease`]): gc deletes nothing meanwhile.
    SlotAndLease,
}

/// The slot and the writer lease an admitted request holds, released when dropped.
pub(crate) struct Held<'a> {
    _slot: Option<tokio::sync::SemaphorePermit<'a>>,
    _lease: Option<WriteLease>,
}

impl AppState {
    /// The opening of every handler, in this order (so that slow clients never hold a
    /// slot, and refusals come before any work): authorize `access`; take the body in as
    /// `intake` says; take what `hold` says. A handler that checks its URL before the
    /// body, or its body before the slot, takes the same steps one by one
    /// ([`AppState::authorize`], [`Intake::take`], [`AppState::hold`]).
    pub(crate) async fn admit<I: Intake>(
        &self,
        headers: &HeaderMap,
        access: Access,
        intake: I,
        hold: Hold,
    ) -> ApiResult<(I::Taken, Held<'_>)> {
        self.authorize(headers, access)?;
        let taken = intake.take(self, headers).await?;
        let held = self.hold(headers, hold).await?;
        Ok((taken, held))
    }

    /// Takes a slot and, for [`Hold::SlotAndLease`], the writer lease.
    pub(crate) async fn hold(&self, headers: &HeaderMap, hold: Hold) -> ApiResult<Held<'_>> {
        let slot = match hold {
            Hold::Nothing => None,
            Hold::Slot | Hold::SlotAndLease => Some(self.slot().await?),
        };
        let lease = match hold {
            Hold::SlotAndLease => Some(write_lease(self, headers).await?),
            _ => None,
        };
        Ok(Held {
            _slot: slot,
            _lease: lease,
        })
    }

    /// Runs `work` on the blocking pool with the requesting client's view of the store and
    /// the store itself ([`Seen`]). Under `serve --mock` the latency of the view's calls is
    /// owed by the answer (the server's guard sleeps it after the slot is given back).
    pub(crate) async fn run_seen<T, F>(&self, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Seen) -> ApiResult<T> + Send + 'static,
    {
        let store = self.store.clone();
        let Some(view) = crate::net::actors::view() else {
            return blocking(move || {
                work(Seen {
                    view: store.clone(),
                    store,
                    mocked: false,
                })
            })
            .await;
        };
        let (out, delay) = blocking(move || {
            crate::net::actors::begin();
            let out = work(Seen {
                view,
                store,
                mocked: true,
            });
            Ok((out, crate::net::actors::end()))
        })
        .await?;
        crate::net::actors::owe(delay);
        out
    }

    /// Runs `work` on the served store on the blocking pool; store errors (`?` on a
    /// [`crate::Result`]) become answers through [`ApiError::from_store`].
    pub(crate) async fn run<T, F>(&self, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> ApiResult<T> + Send + 'static,
    {
        let store = self.store.clone();
        blocking(move || work(store)).await
    }
}
