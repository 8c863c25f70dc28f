//! The Twirp services of 3/REMOTE-LOG, served next to the REST API
//! (`format/http-api.md`, section "Twirp"): `vac.cas.CAS` (Add/Get) and `vac.ns.NS`
//! (Update/Fetch, also answered as `vac.cas.NS`, the package the specification's text
//! names). Bodies are `application/protobuf` or `application/json` (proto3 JSON mapping);
//! errors are Twirp's `{"code", "msg"}` JSON with Twirp's status for each code.
//!
//! CAS addresses are BLAKE3-256 of exactly the bytes added, so anyone can recompute them;
//! the same bytes are visible as `GET /cas/<hex>`. The NS keeps each name's content as a
//! CAS object named by the ref `refs/spec/<name>`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::id::Id;
use crate::model::name::{self, RefName};
use crate::net::handler::{
    add_need, add_one, added_body_max, blocking, Access, ApiError, AppState, Hold, Seen, Small,
    Spool,
};
use crate::net::wire::{CAS_ADD, CAS_GET, NS_FETCH, NS_UPDATE, PROTOBUF};
use crate::store::Backend;

use crate::spec::proto::vac::{cas, ns};

/// Largest body of a Twirp read (`CAS/Get`, `NS/Fetch`): an address or a name.
pub const TWIRP_READ_BODY_MAX: u64 = 64 << 10;

/// Twirp's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The operation was cancelled.
    Canceled,
    /// An unknown error.
    Unknown,
    /// An argument is invalid whatever the state of the system.
    InvalidArgument,
    /// The body could not be decoded.
    Malformed,
    /// The operation took too long.
    DeadlineExceeded,
    /// The entity does not exist.
    NotFound,
    /// No such service or method (or a wrong method or content type).
    BadRoute,
    /// The entity already exists.
    AlreadyExists,
    /// Not allowed.
    PermissionDenied,
    /// No valid credentials.
    Unauthenticated,
    /// Out of a resource (quota, rate).
    ResourceExhausted,
    /// The system is not in the state the operation needs.
    FailedPrecondition,
    /// A concurrency conflict.
    Aborted,
    /// Beyond the valid range.
    OutOfRange,
    /// Not implemented.
    Unimplemented,
    /// A server bug.
    Internal,
    /// Temporarily unavailable; retry.
    Unavailable,
    /// Unrecoverable data loss.
    Dataloss,
}

impl Code {
    /// The code as Twirp spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::Malformed => "malformed",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::BadRoute => "bad_route",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::Dataloss => "dataloss",
        }
    }

    /// The HTTP status Twirp's specification gives the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Canceled | Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
            Code::InvalidArgument | Code::Malformed | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound | Code::BadRoute => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unknown | Code::Internal | Code::Dataloss => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A Twirp error answer.
#[derive(Debug, Clone)]
pub struct TwirpError {
    /// The code.
    pub code: Code,
    /// What went wrong and what to do.
    pub msg: String,
    /// Seconds after which the client may retry (`Retry-After`), if the server says.
    retry_after: Option<u16>,
}

impl TwirpError {
    /// An error with a code and a message.
    pub fn new(code: Code, msg: impl Into<String>) -> TwirpError {
        TwirpError {
            code,
            msg: msg.into(),
            retry_after: None,
        }
    }
}

impl From<ApiError> for TwirpError {
    fn from(e: ApiError) -> TwirpError {
        let code = match e.status {
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
            StatusCode::PRECONDITION_FAILED => Code::FailedPrecondition,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => Code::Unavailable,
            s if s.is_client_error() => Code::InvalidArgument,
            s if s.is_server_error() => Code::Internal,
            _ => Code::Unknown,
        };
        TwirpError {
            retry_after: e.retry_after,
            ..TwirpError::new(code, e.msg)
        }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code.as_str(), "msg": self.msg});
        let mut r = (
            self.code.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        r
    }
}

type TwirpResult<T> = std::result::Result<T, TwirpError>;

/// The two body encodings Twirp allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> TwirpResult<Encoding> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            PROTOBUF | "application/x-protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(TwirpError::new(
                Code::BadRoute,
                format!(
                    "unexpected Content-Type {ct:?}: send application/protobuf or application/json"
                ),
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => "application/json",
        }
    }

    fn decode<T>(self, body: &[u8], what: &str) -> TwirpResult<T>
    where
        T: prost::Message + Default + serde::de::DeserializeOwned,
    {
        match self {
            Encoding::Protobuf => T::decode(body).map_err(|e| {
                TwirpError::new(
                    Code::Malformed,
                    format!("the body is not a protobuf {what}: {e}"),
                )
            }),
            Encoding::Json => serde_json::from_slice(body).map_err(|e| {
                TwirpError::new(
                    Code::Malformed,
                    format!(
                        "the body is not a JSON {what} (proto3 JSON mapping, bytes in base64): {e}"
                    ),
                )
            }),
        }
    }

    fn encode<T: prost::Message + serde::Serialize>(self, msg: &T) -> Response {
        let body = match self {
            Encoding::Protobuf => msg.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, self.content_type())],
            body,
        )
            .into_response()
    }
}

/// The methods served, by the path after `/twirp/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    CasAdd,
    CasGet,
    NsUpdate,
    NsFetch,
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        CAS_ADD => Route::CasAdd,
        CAS_GET => Route::CasGet,
        NS_UPDATE | "vac.cas.NS/Update" => Route::NsUpdate,
        NS_FETCH | "vac.cas.NS/Fetch" => Route::NsFetch,
        _ => return None,
    })
}

/// Answers `POST /twirp/<package>.<Service>/<Method>`.
pub(crate) async fn handle(
    State(st): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match call(st, &path, method, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn call(
    st: Arc<AppState>,
    path: &str,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> TwirpResult<Response> {
    if method != Method::POST {
        return Err(TwirpError::new(
            Code::BadRoute,
            format!("unsupported method {method} (only POST is allowed)"),
        ));
    }
    let route = route(path).ok_or_else(|| {
        TwirpError::new(
            Code::BadRoute,
            format!("no Twirp method {path:?} here; this server has vac.cas.CAS/Add, vac.cas.CAS/Get, vac.ns.NS/Update and vac.ns.NS/Fetch"),
        )
    })?;
    let enc = Encoding::from_headers(&headers)?;
    let access = match route {
        Route::CasAdd | Route::NsUpdate => Access::Write,
        Route::CasGet | Route::NsFetch => Access::Read,
    };
    // Reads carry an address or a name, read into memory; writes carry content, written
    // to a temporary file as it arrives and read back under a slot and a share of
    // --max-memory. Either way the slot is taken once the body is in.
    let (body, _memory, _held) = match access {
        Access::Read => {
            let intake = Small {
                body,
                limit: TWIRP_READ_BODY_MAX,
                what: "what a Twirp read takes",
            };
            let (small, held) = st.admit(&headers, access, intake, Hold::Slot).await?;
            (small.bytes.to_vec(), None, held)
        }
        _ => {
            let intake = Spool {
                body,
                limit: added_body_max(&st) + (64 << 10),
                what: "the largest object this server accepts (--max-body, at most 64 MiB)",
            };
            let (up, held) = st
                .admit(&headers, access, intake, Hold::SlotAndLease)
                .await?;
            // The body and the decoded content, then the content and its compressed copy
            // (JSON bytes are decoded from the body in place, see `proto::json::bytes`).
            let memory = st.reserve(add_need(up.len)).await?;
            (blocking(move || up.read_all()).await?, Some(memory), held)
        }
    };
    let max_content = added_body_max(&st);
    let too_large = |len: usize| {
        TwirpError::new(
            Code::InvalidArgument,
            format!("the content is {len} bytes, more than the largest object this server accepts, {max_content} bytes (--max-body, at most 64 MiB)"),
        )
    };
    match route {
        Route::CasAdd => {
            let req: cas::Content = enc.decode(&body, "vac.cas.Content")?;
            drop(body);
            if req.data.len() as u64 > max_content {
                return Err(too_large(req.data.len()));
            }
            let id = st
                .run_seen(move |s| {
                    let id = Id::of(&req.data);
                    add_one(&s, id, &req.data)?;
                    Ok(id)
                })
                .await?;
            Ok(enc.encode(&cas::Address { id: id.0.to_vec() }))
        }
        Route::CasGet => {
            let req: cas::Address = enc.decode(&body, "vac.cas.Address")?;
            let id = Id::from_slice(&req.id).ok_or_else(|| {
                TwirpError::new(
                    Code::InvalidArgument,
                    format!(
                        "id is {} bytes; an address is the 32-byte BLAKE3-256 of the content",
                        req.id.len()
                    ),
                )
            })?;
            let data = st
                .run_seen(move |s| match s.view.get_object(&id) {
                    Ok(d) => Ok(d),
                    Err(Error::ObjectMissing { .. }) => match spec_view_get(&*s.store, &id)? {
                        Some(d) => Ok(d),
                        None => Err(ApiError::new(
                            StatusCode::NOT_FOUND,
                            format!("no content at address {id}"),
                        )),
                    },
                    Err(e) => Err(ApiError::from_store(e)),
                })
                .await?;
            Ok(enc.encode(&cas::Content { data }))
        }
        Route::NsUpdate => {
            let req: ns::NameUpdate = enc.decode(&body, "vac.ns.NameUpdate")?;
            drop(body);
            if req.content.len() as u64 > max_content {
                return Err(too_large(req.content.len()));
            }
            let id = st
                .run_seen(move |s| ns_update(&s, &req.name, &req.content))
                .await?;
            Ok(enc.encode(&ns::Response {
                data: id.0.to_vec(),
            }))
        }
        Route::NsFetch => {
            let req: ns::Query = enc.decode(&body, "vac.ns.Query")?;
            let data = st.run_seen(move |s| ns_fetch(&s, &req.name)).await?;
            Ok(enc.encode(&ns::Content { data }))
        }
    }
}

fn spec_ref(name: &str) -> std::result::Result<RefName, ApiError> {
    name::validate(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    RefName::parse(&format!("{}/{name}", name::SPEC))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Stores `content` in the CAS and points `spec/<name>` at it (last writer wins, as the
/// specification's Update has no expected value). Returns the content's address.
fn ns_update(s: &Seen, name: &str, content: &[u8]) -> std::result::Result<Id, ApiError> {
    let store = &*s.store;
    let r = spec_ref(name)?;
    let log =
        RefName::log(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if store
        .read_ref(&log)
        .map_err(ApiError::from_store)?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("{name:?} is a native log of this store, written by `remotelog push`; an NS Update must not overwrite it; use another name"),
        ));
    }
    let id = Id::of(content);
    add_one(s, id, content)?;
    s.view
        .update_ref(&r, crate::store::Expected::Any, Some(id))
        .map_err(ApiError::from_store)?;
    Ok(id)
}

/// What `name` points at: the content last given to Update, or for a native log its spec
/// view ([`native_view`]). Under `serve --mock` the client pays one NS fetch of the ref
/// that holds the name, and the head page comes as its mocked service serves it (inside
/// the record, or by a CAS get).
fn ns_fetch(s: &Seen, name: &str) -> std::result::Result<Vec<u8>, ApiError> {
    let store = &*s.store;
    let r = spec_ref(name)?;
    let log =
        RefName::log(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let native = s.mocked
        && store.read_ref(&r).map_err(ApiError::from_store)?.is_none()
        && store
            .read_ref(&log)
            .map_err(ApiError::from_store)?
            .is_some();
    if !native {
        if let Some(id) = s.view.read_ref(&r).map_err(ApiError::from_store)? {
            return s.view.get_object(&id).map_err(ApiError::from_store);
        }
    }
    if native || !s.mocked {
        if let Some(head) = s.view.read_ref(&log).map_err(ApiError::from_store)? {
            if s.mocked {
                s.view.get_object(&head).map_err(ApiError::from_store)?;
            }
            return native_view(store, name, head);
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no name {name:?} in this NS"),
    ))
}

/// The content Fetch returns for a native log: the `RemoteLog` of its head page in the
/// spec view (format/spec-view.md), derived from the native pages.
fn native_view(
    store: &dyn Backend,
    _log: &str,
    head: Id,
) -> std::result::Result<Vec<u8>, ApiError> {
    let idx = crate::spec::ViewIndex::for_backend(store);
    crate::spec::head_view(store, &idx, head).map_err(ApiError::from_store)
}

/// The spec-view bytes at `id` (a page or payload of a native log's view), for a CAS read
/// of an address that is not a stored object.
pub(crate) fn spec_view_get(
    store: &dyn Backend,
    id: &Id,
) -> std::result::Result<Option<Vec<u8>>, ApiError> {
    let idx = crate::spec::ViewIndex::for_backend(store);
    crate::spec::view_get(store, &idx, id).map_err(ApiError::from_store)
}

/// Entry points for the fuzz targets (`fuzz/`) into the request decoding above. Not an
/// API: they only exist so that the fuzzers and their corpus test run the real code.
#[doc(hidden)]
pub mod fuzz_entry {
    use super::*;

    /// Whether `path` (after `/twirp/`) names a method served here.
    pub fn route(path: &str) -> bool {
        super::route(path).is_some()
    }

    /// A request body decoded as the server does for a request with this `Content-Type`;
    /// `None` when the value cannot be a header value at all.
    pub fn decode<T>(content_type: &[u8], body: &[u8]) -> Option<Result<T, TwirpError>>
    where
        T: prost::Message + Default + serde::de::DeserializeOwned,
    {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_bytes(content_type).ok()?,
        );
        Some(Encoding::from_headers(&h).and_then(|enc| enc.decode(body, "request")))
    }
}
