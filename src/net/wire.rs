//! What the HTTP server ([`crate::net::server`], [`crate::net::twirp`]) and its clients
//! ([`crate::net::client`], the Twirp import of [`crate::spec`]) must agree on, said once
//! (`format/http-api.md`): the headers of the native API, the answer to a pack upload, the
//! Twirp methods, the limits a client keeps within, and how a token file is read.
//!
//! A leaf: it depends on nothing above [`crate::error`], so both sides can use it without
//! depending on each other.

use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Header of a 412 answer to a ref update naming the ref's current value (hex, or
/// `absent`).
pub const CURRENT_HEADER: &str = "x-remotelog-current";
/// Header of a 409 answer to a ref update naming the first object its chain lacks.
pub const MISSING_HEADER: &str = "x-remotelog-missing";
/// Header of the same answer saying what that object is (`page ...`, `message ...`).
pub const MISSING_WHAT_HEADER: &str = "x-remotelog-missing-what";
/// The header naming the client lease a request is made under (http-api.md section 10).
pub const LEASE_HEADER: &str = "x-remotelog-lease";

/// The header naming the client under `remotelog serve --mock`: each actor has its own
/// view of the mocked remote (http-api.md section "serve --mock").
pub const ACTOR_HEADER: &str = "x-remotelog-actor";
/// Longest actor name [`ACTOR_HEADER`] may carry.
pub const MAX_ACTOR_LEN: usize = 64;

/// Whether `name` may name an actor: 1 to [`MAX_ACTOR_LEN`] ASCII letters, digits, `.`,
/// `_` or `-`.
pub fn valid_actor(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ACTOR_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Most ids one `POST /cas/present` may ask about.
pub const MAX_PRESENT_IDS: usize = 100_000;

/// Where the Twirp services are served: `POST /twirp/<package>.<Service>/<Method>`.
pub const TWIRP_PREFIX: &str = "/twirp/";
/// Twirp `vac.cas.CAS/Add`.
pub const CAS_ADD: &str = "vac.cas.CAS/Add";
/// Twirp `vac.cas.CAS/Get`.
pub const CAS_GET: &str = "vac.cas.CAS/Get";
/// Twirp `vac.ns.NS/Update`.
pub const NS_UPDATE: &str = "vac.ns.NS/Update";
/// Twirp `vac.ns.NS/Fetch`.
pub const NS_FETCH: &str = "vac.ns.NS/Fetch";
/// The Content-Type of protobuf bodies of Twirp requests and answers.
pub const PROTOBUF: &str = "application/protobuf";

/// What an uploaded pack added: the JSON answer to `POST /packs`.
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

/// Reads a token file: its content with surrounding whitespace trimmed, never empty.
pub fn read_token_file(path: &Path) -> Result<String> {
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
