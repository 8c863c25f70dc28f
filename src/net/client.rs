//! An HTTP remote: [`HttpBackend`] implements [`Backend`] over the REST API of
//! `remotelog serve` (`format/http-api.md`), so push, pull, clone and status work with a
//! URL exactly as with a directory.
//!
//! Transfers are bulk: a batch is written locally as one pack and uploaded with one
//! request (split at [`PACK_SPLIT`] bytes); presence checks go in one request per page;
//! [`Backend::raw_blocks`] reads each remote pack's header, index and trailer into a sparse
//! local copy (so the pack parser and its lookups serve, at 4 bytes of memory per object)
//! and fetches the wanted blocks whole with range requests, so a clone downloads packs
//! rather than objects. One
//! keep-alive connection is reused; idempotent requests are retried with backoff when the
//! connection fails, writes that are not are never retried blindly.
//!
//! [`Transport`] is how every HTTP client here reaches its server, this one and the Twirp
//! import ([`crate::transfer::import_spec::TwirpSource`]) alike: one agent with the timeouts of
//! [`Patience`], the token, the lease header, retries and one mapping of failures to
//! errors.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, Method};

use crate::error::{Error, IoContext, RemoteFailure, Result};
use crate::id::{is_lower_hex, Id};
use crate::model::name::RefName;
use crate::pack::{self, PackWriter};
use crate::store::batch::{BatchSink, RollingBatch};
use crate::store::{verify_id, Backend, Batch, Collected, Expected, PackInfo, RawBlock};

/// Environment variable holding the bearer token sent to HTTP remotes.
pub const TOKEN_ENV: &str = "REMOTELOG_TOKEN";
/// Environment variable naming a file that holds the token (whitespace trimmed).
pub const TOKEN_FILE_ENV: &str = "REMOTELOG_TOKEN_FILE";
/// Environment variable holding the admin token that gc of an HTTP remote sends.
pub const ADMIN_TOKEN_ENV: &str = "REMOTELOG_ADMIN_TOKEN";
/// Environment variable naming a file that holds the admin token (whitespace trimmed).
pub const ADMIN_TOKEN_FILE_ENV: &str = "REMOTELOG_ADMIN_TOKEN_FILE";
/// A batch uploads its pack once it reaches this size and starts another, so no upload
/// comes near the server's default `--max-body`.
pub const PACK_SPLIT: u64 = 64 << 20;
/// Largest byte range fetched in one request by `raw_blocks`.
const RANGE_MAX: u64 = 8 << 20;
/// Attempts for an idempotent request whose connection fails.
const ATTEMPTS: u32 = 5;
/// Ids per presence request.
const PRESENT_CHUNK: usize = 10_000;
/// Objects up to this size are kept in memory once read (pages are read more than once).
const CACHE_OBJECT_MAX: usize = 1 << 20;
/// Memory the object cache may use.
const CACHE_BYTES: usize = 32 << 20;

/// Environment variable: how many seconds an HTTP client (remotes, `import-spec`) waits
/// for a server's answer or for the next bytes of it (default [`DEFAULT_WAIT`]); see
/// [`Patience`].
pub const TIMEOUT_ENV: &str = "REMOTELOG_HTTP_TIMEOUT";
/// The wait when [`TIMEOUT_ENV`] is not set: a server may work that long (a gc, a big
/// listing) before it answers.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);
/// Once a body has been arriving for its grace period, it must have averaged at least
/// this many bytes per second since (a slow link does far better; a server dripping a
/// byte now and then does not).
pub const MIN_BODY_RATE: u64 = 4 << 10;
/// The grace period of a body: this long, or the wait if shorter.
const RATE_GRACE: Duration = Duration::from_secs(60);
/// The longest any one answer may take to arrive, whatever its pace.
pub const BODY_DEADLINE: Duration = Duration::from_secs(3600);
/// The largest answer read: more than any object, range or id list a server sends.
const RESPONSE_MAX: u64 = 1 << 30;

/// The environment variable naming this client to a `remotelog serve --mock`, which gives
/// each actor its own view of the mocked remote (sent as [`crate::net::wire::ACTOR_HEADER`];
/// other servers ignore it).
pub const ACTOR_ENV: &str = "REMOTELOG_ACTOR";

/// The actor name from [`ACTOR_ENV`], if set.
fn actor_from_env() -> Result<Option<String>> {
    match std::env::var(ACTOR_ENV) {
        Err(_) => Ok(None),
        Ok(v) if crate::net::wire::valid_actor(&v) => Ok(Some(v)),
        Ok(v) => Err(Error::Invalid(format!(
            "{ACTOR_ENV}={v:?} is not an actor name: 1 to {} letters, digits, '.', '_' or '-'; fix or unset it",
            crate::net::wire::MAX_ACTOR_LEN
        ))),
    }
}

/// The longest wait [`TIMEOUT_ENV`] may give: a year.
pub const MAX_WAIT_SECS: u64 = 365 * 86_400;

/// How long an HTTP client waits for a server, so that no answer can hold it forever:
/// connecting takes at most 10 s; the answer's headers, and each read of its body, at
/// most the wait ([`TIMEOUT_ENV`]); after the first min(wait, 60 s) a body must have
/// averaged [`MIN_BODY_RATE`]; and no body takes longer than [`BODY_DEADLINE`].
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    wait: Duration,
}

/// Why reading an answer's body stopped.
pub(crate) enum BodyError {
    /// The connection failed or a read timed out.
    Io(std::io::Error),
    /// It arrives slower than [`MIN_BODY_RATE`] allows: (bytes, time).
    Slow(usize, Duration),
    /// It is longer than the limit given.
    TooBig,
}

impl Patience {
    /// The wait from [`TIMEOUT_ENV`] (whole seconds, at least 1), else [`DEFAULT_WAIT`].
    pub fn from_env() -> Result<Patience> {
        let wait = match std::env::var(TIMEOUT_ENV) {
            Err(_) => DEFAULT_WAIT,
            Ok(v) => match v.trim().parse::<u64>() {
                // Bounded: the client's deadlines are `now + wait`, which overflows.
                Ok(secs) if (1..=MAX_WAIT_SECS).contains(&secs) => Duration::from_secs(secs),
                _ => {
                    return Err(Error::Invalid(format!(
                        "{TIMEOUT_ENV}={v:?} is not a whole number of seconds from 1 to {MAX_WAIT_SECS} (a year); fix or unset it"
                    )))
                }
            },
        };
        Ok(Patience { wait })
    }

    /// An agent with these timeouts that trusts what `trust` says for https (HTTP errors
    /// are answers, not errors).
    pub(crate) fn agent(&self, trust: &Trust) -> ureq::Agent {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(trust.roots.clone())
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(self.wait))
            .timeout_per_read(Some(self.wait))
            .timeout_recv_body(Some(BODY_DEADLINE))
            .max_idle_connections_per_host(4)
            .user_agent(format!("remotelog/{}", env!("CARGO_PKG_VERSION")))
            .build();
        ureq::Agent::new_with_config(config)
    }

    /// Reads a body whole, at most `max` bytes, refusing one that arrives too slowly:
    /// ureq bounds each read and the whole body in time, this the pace in between.
    pub(crate) fn read_body(
        &self,
        mut r: impl std::io::Read,
        max: u64,
    ) -> std::result::Result<Vec<u8>, BodyError> {
        let start = std::time::Instant::now();
        let grace = self.wait.min(RATE_GRACE);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BodyError::Io(e)),
            };
            if out.len() as u64 + n as u64 > max {
                return Err(BodyError::TooBig);
            }
            out.extend_from_slice(&buf[..n]);
            let took = start.elapsed();
            let due = took.saturating_sub(grace).as_secs_f64() * MIN_BODY_RATE as f64;
            if (out.len() as f64) < due {
                return Err(BodyError::Slow(out.len(), took));
            }
        }
    }

    /// The error for a body that arrives too slowly from `url`.
    pub(crate) fn too_slow(&self, url: &str, bytes: usize, took: Duration) -> Error {
        Error::remote(RemoteFailure::TooSlow, format!(
            "{url}: the answer arrives too slowly ({bytes} bytes in {} s; after the first {} s at least {MIN_BODY_RATE} bytes/s are needed); check the network and the server, then retry",
            took.as_secs(),
            self.wait.min(RATE_GRACE).as_secs()
        ))
    }
}

/// Environment variable naming a PEM file of the CA certificates that https clients
/// (remotes, S3 endpoints, `import-spec`) trust instead of the built-in roots.
pub const CA_FILE_ENV: &str = "REMOTELOG_CA_FILE";
/// The usual variable (OpenSSL, curl, git, Python) for the same, read after [`CA_FILE_ENV`].
pub const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE";
/// The variables naming the CA file of an https remote, first set first.
pub(crate) const HTTP_CA_VARS: &[&str] = &[CA_FILE_ENV, SSL_CERT_FILE_ENV];
/// The largest CA file read: a whole public bundle is about 200 KiB.
const CA_FILE_MAX: u64 = 16 << 20;

/// The certificates an https client trusts: Mozilla's roots, built in (so a minimal
/// container verifies AWS and public servers without a system bundle), or the CA
/// certificates of the file the first set variable of a list names. As with OpenSSL, curl
/// and the AWS CLI, such a file replaces the built-in roots rather than adding to them, so
/// setting it never widens what is trusted behind the user's back. Verification is never
/// off.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    roots: ureq::tls::RootCerts,
    /// The variable and the file the roots come from; `None`: the built-in roots.
    file: Option<(&'static str, std::path::PathBuf)>,
    /// The variables that could name a CA file, for the hint when a certificate is refused.
    vars: &'static [&'static str],
}

impl Trust {
    /// The trust of a client of `url`: for `https://`, the CA file named by the first set
    /// (non-empty) variable of `vars`, read now, else the built-in roots; for `http://`,
    /// the built-in roots without looking at the variables (a broken bundle must not break
    /// a remote that never uses it).
    pub(crate) fn for_url(url: &str, vars: &'static [&'static str]) -> Result<Trust> {
        let builtin = Trust {
            roots: ureq::tls::RootCerts::WebPki,
            file: None,
            vars,
        };
        if !url.starts_with("https://") {
            return Ok(builtin);
        }
        for var in vars {
            match std::env::var_os(var) {
                Some(p) if !p.is_empty() => {
                    let path = std::path::PathBuf::from(p);
                    let certs = read_ca_file(var, &path)?;
                    return Ok(Trust {
                        roots: ureq::tls::RootCerts::new_with_certs(&certs),
                        file: Some((var, path)),
                        vars,
                    });
                }
                _ => {}
            }
        }
        Ok(builtin)
    }

    /// The error for a request to `base` that failed in TLS, or `None` when `e` is not a
    /// TLS failure. One line naming the server, why, and what to do.
    pub(crate) fn refusal(&self, base: &str, e: &ureq::Error) -> Option<Error> {
        use rustls::CertificateError as C;
        let r = match e {
            ureq::Error::Rustls(r) => r,
            ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
            _ => return None,
        };
        let why = match r {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => "the server's TLS certificate is not issued for this host name ({r}); reach it by a name the certificate holds, or have the certificate reissued".to_string(),
            rustls::Error::InvalidCertificate(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => format!("the server's TLS certificate is out of date ({r}); renew it, or set this machine's clock right"),
            rustls::Error::InvalidCertificate(_) => {
                let by = match &self.file {
                    Some((var, path)) => format!("the CAs in {} (from {var})", path.display()),
                    None => "the built-in roots (Mozilla's)".to_string(),
                };
                format!(
                    "the server's TLS certificate is not trusted ({r}): it is not signed by {by}; if the server uses a CA of its own, name the CA's PEM file in {}",
                    match self.vars.split_last() {
                        Some((last, [])) => last.to_string(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => "SSL_CERT_FILE".to_string(),
                    }
                )
            }
            _ => format!("the TLS handshake failed ({r}); check that the server speaks https there (a plain-http server is reached with http://)"),
        };
        Some(Error::remote(
            RemoteFailure::Untrusted,
            format!("{base}: {why}"),
        ))
    }
}

/// The certificates of the PEM file `path` (named by `var`): one line naming both when it
/// cannot be read, is too big, or holds no certificate.
fn read_ca_file(var: &str, path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    use std::io::Read;
    let bad = |why: String| {
        Error::Invalid(format!(
            "{var}={}: {why}; name a PEM file of CA certificates (-----BEGIN CERTIFICATE-----), or unset {var}",
            path.display()
        ))
    };
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(CA_FILE_MAX + 1).read_to_end(&mut pem))
        .map_err(|e| bad(format!("cannot read it ({e})")))?;
    if pem.len() as u64 > CA_FILE_MAX {
        return Err(bad(format!("it is larger than {CA_FILE_MAX} bytes")));
    }
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(format!("it is not valid PEM ({e})"))),
        }
    }
    if certs.is_empty() {
        return Err(bad("it holds no certificate".to_string()));
    }
    Ok(certs)
}

/// Checks a remote URL and gives its canonical form (`http[s]://HOST[:PORT][/PREFIX]`, no
/// trailing slash).
pub fn normalize_url(url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::remote(
            RemoteFailure::BadLocation,
            format!("{url:?} is not a usable remote URL: {why}"),
        )
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(bad("it must start with http:// or https://"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("it has no host"));
    }
    if rest
        .chars()
        .any(|c| c.is_whitespace() || c == '?' || c == '#' || c == '@')
    {
        return Err(bad(
            "give only http[s]://HOST[:PORT][/PREFIX] (no spaces, query, fragment or credentials; the token comes from REMOTELOG_TOKEN)",
        ));
    }
    let trimmed = url.trim_end_matches('/');
    trimmed
        .parse::<http::Uri>()
        .map_err(|e| bad(&e.to_string()))?;
    Ok(trimmed.to_string())
}

/// The token for HTTP remotes from the environment: `REMOTELOG_TOKEN`, else the file
/// named by `REMOTELOG_TOKEN_FILE`; `None` when neither is set.
pub fn token_from_env() -> Result<Option<String>> {
    token_from(TOKEN_ENV, TOKEN_FILE_ENV)
}

/// The admin token for gc of HTTP remotes (`POST /gc`): `REMOTELOG_ADMIN_TOKEN`, else
/// the file named by `REMOTELOG_ADMIN_TOKEN_FILE`; `None` when neither is set.
pub fn admin_token_from_env() -> Result<Option<String>> {
    token_from(ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV)
}

/// A token from variable `var` (trimmed, if not empty), else from the file named by
/// `file_var`.
fn token_from(var: &str, file_var: &str) -> Result<Option<String>> {
    if let Ok(t) = std::env::var(var) {
        let t = t.trim();
        if !t.is_empty() {
            return Ok(Some(t.to_string()));
        }
    }
    match std::env::var_os(file_var) {
        Some(p) if !p.is_empty() => crate::net::wire::read_token_file(Path::new(&p)).map(Some),
        _ => Ok(None),
    }
}

/// What the server made of an uploaded pack.
struct Uploaded {
    /// Objects it did not have.
    new: usize,
    /// The pack the upload became on its chain, if it kept one.
    pack: Option<Id>,
}

/// A reply read whole.
pub(crate) struct Reply {
    /// Its status.
    pub(crate) status: u16,
    /// Its headers.
    pub(crate) headers: http::HeaderMap,
    /// Its body.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as trimmed text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// What a request sends.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// The content of this file.
    File(&'a Path),
}

/// A remote pack's sparse local copy (see [`HttpBackend::remote_pack`]).
type RemotePack = pack::Pack<memmap2::Mmap>;

/// The remote packs whose indexes were fetched, and the directory of their sparse copies
/// (removed with the backend).
#[derive(Default)]
struct RemotePacks {
    packs: HashMap<Id, std::sync::Arc<RemotePack>>,
    dir: Option<tempfile::TempDir>,
}

/// Objects read recently, oldest first out.
#[derive(Default)]
struct Cache {
    map: HashMap<Id, Vec<u8>>,
    order: VecDeque<Id>,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, id: Id, bytes: &[u8]) {
        if bytes.len() > CACHE_OBJECT_MAX || self.map.contains_key(&id) {
            return;
        }
        self.bytes += bytes.len();
        self.map.insert(id, bytes.to_vec());
        self.order.push_back(id);
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len();
            }
        }
    }
}

/// How requests reach one HTTP server, for every client here (the native API of
/// [`HttpBackend`], the Twirp import of [`crate::transfer::import_spec::TwirpSource`]): its URL, one agent
/// with the timeouts of [`Patience`], the bearer token, the lease header, retries of
/// idempotent requests, and one mapping of failures to errors. Cheap to clone (the agent
/// shares its connections), so a lease's heartbeat thread can hold one.
#[derive(Clone)]
pub(crate) struct Transport {
    /// The server's URL (`http://HOST:PORT[/PREFIX]`, no trailing slash).
    pub(crate) base: String,
    agent: ureq::Agent,
    patience: Patience,
    /// Which certificates an https server's must chain to.
    trust: Trust,
    token: Option<String>,
    /// The server lease this client holds, sent with every request.
    pub(crate) lease: std::sync::Arc<Mutex<Option<String>>>,
    /// What the server is, for errors: "remotelog server", "Twirp server".
    what: &'static str,
    /// What to do when it cannot be reached.
    hint: &'static str,
    /// Who this client is to a `serve --mock` ([`ACTOR_ENV`]), sent with every request.
    actor: Option<String>,
}

/// One request, for [`Transport::send`].
pub(crate) struct Call<'a> {
    /// The method.
    pub(crate) method: Method,
    /// The path after the base URL, with its query.
    pub(crate) path: &'a str,
    /// The body.
    pub(crate) payload: Payload<'a>,
    /// Headers beside the token and the lease.
    pub(crate) headers: &'a [(&'a str, String)],
    /// Whether the request may be sent again when its connection fails.
    pub(crate) idempotent: bool,
    /// The largest answer read.
    pub(crate) max: u64,
}

/// A store served by `remotelog serve`, reached over HTTP.
pub struct HttpBackend {
    conn: Transport,
    cache: Mutex<Cache>,
    /// Remote pack indexes already fetched: a transfer asks for blocks chunk by chunk.
    indexes: Mutex<RemotePacks>,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend")
            .field("base", &self.conn.base)
            .finish()
    }
}

pub(crate) fn is_connection_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ),
        ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// One attempt at a request: the response, or why the connection failed.
pub(crate) type Attempt = std::result::Result<http::Response<ureq::Body>, ureq::Error>;

/// How [`Retrying::send`] sends a request, shared by the remotelog client and the S3
/// client: each says its own words for an answer too big and a server out of reach.
pub(crate) struct Retrying<'a> {
    /// The timeouts the answer is read under.
    pub(crate) patience: &'a Patience,
    /// The trust that names a refused certificate.
    pub(crate) trust: &'a Trust,
    /// The server's base URL (for a refused certificate).
    pub(crate) base: &'a str,
    /// The request's URL (for a slow answer).
    pub(crate) url: &'a str,
    /// The largest answer read.
    pub(crate) max: u64,
    /// Sends at most this many times (1: the request may not be sent twice).
    pub(crate) attempts: u32,
    /// Whether a 5xx answer is also tried again.
    pub(crate) again_on_5xx: bool,
    /// The error for an answer larger than `max`, given the URL.
    pub(crate) too_big: &'a dyn Fn(&str) -> Error,
    /// The error for a connection that failed, given the last failure and the attempts.
    pub(crate) unreachable: &'a dyn Fn(&ureq::Error, u32) -> Error,
}

impl Retrying<'_> {
    /// Sends with `attempt` (which builds the request anew each time, an error building it
    /// ending the loop) and reads the answer whole; a failed connection, and a 5xx answer
    /// with `again_on_5xx`, is tried again with backoff while attempts remain. Gives the
    /// answer and the number of attempts it took.
    pub(crate) fn send(
        &self,
        mut attempt: impl FnMut() -> Result<Attempt>,
    ) -> Result<(Reply, u32)> {
        let mut delay = Duration::from_millis(100);
        let mut n = 1;
        loop {
            // A body that comes too slowly or is too big is the server's answer: asking
            // again would get the same.
            let result = match attempt()? {
                Err(e) => Err(e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let (parts, body) = resp.into_parts();
                    let reader = body.into_with_config().limit(u64::MAX).reader();
                    match self.patience.read_body(reader, self.max) {
                        Ok(body) => Ok(Reply {
                            status,
                            headers: parts.headers,
                            body,
                        }),
                        Err(BodyError::Slow(bytes, took)) => {
                            return Err(self.patience.too_slow(self.url, bytes, took))
                        }
                        Err(BodyError::TooBig) => return Err((self.too_big)(self.url)),
                        // ureq's own errors (a timeout) come back wrapped in io::Error.
                        Err(BodyError::Io(e)) => Err(ureq::Error::from(e)),
                    }
                }
            };
            let again = match &result {
                Ok(r) => self.again_on_5xx && r.status >= 500,
                Err(e) => is_connection_error(e),
            };
            if again && n < self.attempts {
                std::thread::sleep(delay);
                delay *= 2;
                n += 1;
                continue;
            }
            return match result {
                Ok(r) => Ok((r, n)),
                // A certificate refused now is refused again (is_connection_error says
                // no): said at once, never retried.
                Err(e) => Err(self
                    .trust
                    .refusal(self.base, &e)
                    .unwrap_or_else(|| (self.unreachable)(&e, n))),
            };
        }
    }
}

/// A writer lease held on a server across requests (http-api.md section 10): renewed by a
/// heartbeat thread every third of its time to live, released when dropped.
struct ClientLease {
    conn: Transport,
    id: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    beat: Option<std::thread::JoinHandle<()>>,
}

impl ClientLease {
    fn start(conn: Transport, id: &str, ttl: Duration) -> ClientLease {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = format!("/leases/{id}");
        let c = conn.clone();
        let every = (ttl / 3).max(Duration::from_millis(100));
        let beat = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                // A lease that is gone cannot be renewed; the ref update then says whether
                // anything it protected was collected.
                let _ = c.request(Method::PUT, &path, Payload::Empty, &[], true);
            }
        });
        *conn.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
        ClientLease {
            conn,
            id: id.to_string(),
            stop: Some(stop),
            beat: Some(beat),
        }
    }
}

impl Drop for ClientLease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.beat.take() {
            let _ = t.join();
        }
        *self.conn.lease.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Unreleased, it expires on its own.
        let path = format!("/leases/{}", self.id);
        let _ = self
            .conn
            .request(Method::DELETE, &path, Payload::Empty, &[], true);
    }
}

impl Transport {
    /// A transport to the server at `url` (checked with [`normalize_url`]) sending `token`
    /// as a bearer token; `what` names the server in errors and `hint` says what to do
    /// when it cannot be reached. The timeouts come from [`Patience::from_env`].
    pub(crate) fn new(
        url: &str,
        token: Option<String>,
        what: &'static str,
        hint: &'static str,
    ) -> Result<Transport> {
        let base = normalize_url(url)?;
        let patience = Patience::from_env()?;
        let trust = Trust::for_url(&base, HTTP_CA_VARS)?;
        let actor = actor_from_env()?;
        Ok(Transport {
            agent: patience.agent(&trust),
            base,
            patience,
            trust,
            token,
            lease: Default::default(),
            what,
            hint,
            actor,
        })
    }

    /// Sends a request whose answer may be as large as any answer of a remotelog server.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        headers: &[(&str, String)],
        idempotent: bool,
    ) -> Result<Reply> {
        let call = Call {
            method,
            path,
            payload,
            headers,
            idempotent,
            max: RESPONSE_MAX,
        };
        self.send(call, &|url| {
            Error::remote(RemoteFailure::TooBig, format!(
                "{url}: the answer is larger than {RESPONSE_MAX} bytes, more than any answer of a remotelog server; check the URL"
            ))
        })
    }

    /// Sends `call` and reads its answer whole; `too_big` is the error for an answer of
    /// more than `call.max` bytes (given the URL). An idempotent request whose connection
    /// fails is sent again, up to [`ATTEMPTS`] times with backoff.
    pub(crate) fn send(&self, call: Call<'_>, too_big: &dyn Fn(&str) -> Error) -> Result<Reply> {
        let Call {
            method,
            path,
            payload,
            headers,
            idempotent,
            max,
        } = call;
        let url = format!("{}{path}", self.base);
        let unreachable = |e: &ureq::Error, attempts: u32| {
            Error::remote(
                RemoteFailure::Unreachable,
                format!(
                    "cannot reach the {} at {} ({method} {path}: {e}{}); {}",
                    self.what,
                    self.base,
                    if attempts > 1 {
                        format!(", tried {attempts} times")
                    } else {
                        String::new()
                    },
                    self.hint
                ),
            )
        };
        let retrying = Retrying {
            patience: &self.patience,
            trust: &self.trust,
            base: &self.base,
            url: &url,
            max,
            attempts: if idempotent { ATTEMPTS } else { 1 },
            again_on_5xx: false,
            too_big,
            unreachable: &unreachable,
        };
        let (reply, _) = retrying.send(|| {
            let mut b = http::Request::builder().method(method.clone()).uri(&url);
            if let Some(t) = &self.token {
                b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if let Some(l) = &*self.lease.lock().unwrap_or_else(|p| p.into_inner()) {
                b = b.header(crate::net::wire::LEASE_HEADER, l);
            }
            if let Some(a) = &self.actor {
                b = b.header(crate::net::wire::ACTOR_HEADER, a);
            }
            for (k, v) in headers {
                b = b.header(*k, v);
            }
            let built = |e: http::Error| {
                Error::remote(
                    RemoteFailure::BadLocation,
                    format!("cannot build a request for {url}: {e}"),
                )
            };
            Ok(match payload {
                Payload::Empty => self.agent.run(b.body(()).map_err(built)?),
                Payload::Bytes(bytes) => self.agent.run(b.body(bytes).map_err(built)?),
                Payload::File(p) => {
                    let f = std::fs::File::open(p).at(p)?;
                    self.agent.run(b.body(f).map_err(built)?)
                }
            })
        })?;
        Ok(reply)
    }

    /// The error for an answer that is not what was expected.
    fn refused(&self, method: &Method, path: &str, r: &Reply) -> Error {
        let msg = r.text();
        match r.status {
            401 => Error::remote(
                RemoteFailure::Unauthorized,
                format!("{} refused the token ({method} {path}): {msg}", self.base),
            ),
            403 => Error::remote(
                RemoteFailure::Forbidden,
                format!("{} refused {method} {path}: {msg}", self.base),
            ),
            _ => Error::remote(
                RemoteFailure::Status(r.status),
                format!(
                    "{} answered {} to {method} {path}: {msg}",
                    self.base, r.status
                ),
            ),
        }
    }
}

impl HttpBackend {
    /// Connects to the server at `url` (checking that it is a remotelog server), sending
    /// `token` as a bearer token with every request.
    pub fn open(url: &str, token: Option<String>) -> Result<HttpBackend> {
        let backend = HttpBackend {
            conn: Transport::new(
                url,
                token,
                "remotelog server",
                "is `remotelog serve` running there?",
            )?,
            cache: Mutex::new(Cache::default()),
            indexes: Mutex::new(RemotePacks::default()),
        };
        let reply = backend.request(Method::GET, "/healthz", Payload::Empty, &[], true)?;
        let health: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let is_ours = health
            .as_ref()
            .and_then(|h| h.get("service"))
            .and_then(|s| s.as_str())
            == Some("remotelog");
        if reply.status != 200 || !is_ours {
            return Err(Error::remote(RemoteFailure::NotThatServer, format!(
                "{} does not answer like a remotelog server (GET /healthz gave {}); check the URL, or start one there with `remotelog serve`",
                backend.conn.base, reply.status
            )));
        }
        Ok(backend)
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.conn.base
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        headers: &[(&str, String)],
        idempotent: bool,
    ) -> Result<Reply> {
        self.conn
            .request(method, path, payload, headers, idempotent)
    }

    fn refused(&self, method: &Method, path: &str, r: &Reply) -> Error {
        self.conn.refused(method, path, r)
    }

    fn expect_ok(
        &self,
        method: Method,
        path: &str,
        payload: Payload<'_>,
        idempotent: bool,
    ) -> Result<Reply> {
        let r = self.request(method.clone(), path, payload, &[], idempotent)?;
        if r.status / 100 != 2 {
            return Err(self.refused(&method, path, &r));
        }
        Ok(r)
    }

    fn lines(&self, path: &str) -> Result<Vec<String>> {
        let r = self.expect_ok(Method::GET, path, Payload::Empty, true)?;
        let text = String::from_utf8(r.body).map_err(|_| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!(
                    "{}{path} answered with text that is not UTF-8",
                    self.conn.base
                ),
            )
        })?;
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect())
    }

    fn parse_id_from(&self, what: &str, s: &str) -> Result<Id> {
        s.trim().parse::<Id>().map_err(|e| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!("{} sent a bad id in {what}: {e}", self.conn.base),
            )
        })
    }

    /// Uploads a finished pack; returns how many of its objects were new to the server.
    fn upload_pack(&self, path: &Path) -> Result<usize> {
        Ok(self.upload_pack_outcome(path)?.new)
    }

    /// Uploads a finished pack; returns what the server made of it: how many objects were
    /// new, and the pack it became on the server's chain (none for small uploads).
    fn upload_pack_outcome(&self, path: &Path) -> Result<Uploaded> {
        let r = self.request(
            Method::POST,
            "/packs",
            Payload::File(path),
            // The server refuses a bad token or an oversized pack before the body is sent.
            &[
                ("content-type", "application/octet-stream".into()),
                ("expect", "100-continue".into()),
            ],
            // Re-sending a pack is harmless: the server keeps only what it lacks.
            true,
        )?;
        if r.status != 200 {
            return Err(self.refused(&Method::POST, "/packs", &r));
        }
        let outcome: crate::net::wire::PackOutcome =
            serde_json::from_slice(&r.body).map_err(|e| {
                Error::remote(
                    RemoteFailure::BadAnswer,
                    format!(
                        "{} answered a pack upload with {e}: {}",
                        self.conn.base,
                        r.text()
                    ),
                )
            })?;
        let pack = match outcome.pack.as_deref() {
            Some(hex) => Some(self.parse_id_from("POST /packs", hex)?),
            None => None,
        };
        Ok(Uploaded {
            new: outcome.new,
            pack,
        })
    }

    fn get_range(&self, pack: &Id, first: u64, last: u64) -> Result<Vec<u8>> {
        let path = format!("/packs/{pack}");
        let r = self.request(
            Method::GET,
            &path,
            Payload::Empty,
            &[("range", format!("bytes={first}-{last}"))],
            true,
        )?;
        if r.status != 206 {
            return Err(self.refused(&Method::GET, &path, &r));
        }
        if r.body.len() as u64 != last - first + 1 {
            return Err(Error::remote(
                RemoteFailure::BadAnswer,
                format!(
                    "{}{path}: asked for {} bytes, got {}",
                    self.conn.base,
                    last - first + 1,
                    r.body.len()
                ),
            ));
        }
        Ok(r.body)
    }

    /// Runs gc on the server's store (`POST /gc`).
    pub fn gc(&self, grace: Duration, dry_run: bool) -> Result<Collected> {
        let path = format!("/gc?prune={}&dry_run={dry_run}", grace.as_secs());
        let r = self.expect_ok(Method::POST, &path, Payload::Empty, false)?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!("{}{path}: not a gc summary: {e}", self.conn.base),
            )
        })?;
        let mut c: Collected = serde_json::from_value(v.clone()).map_err(|e| {
            Error::remote(
                RemoteFailure::BadAnswer,
                format!("{}{path}: not a gc summary: {e}", self.conn.base),
            )
        })?;
        if let Some(ids) = v["removed_ids"].as_array() {
            for id in ids.iter().filter_map(|i| i.as_str()) {
                c.removed_ids.push(self.parse_id_from(&path, id)?);
            }
        }
        Ok(c)
    }

    /// The remote's packs, newest first: (id, size).
    pub fn packs(&self) -> Result<Vec<(Id, u64)>> {
        let mut out = Vec::new();
        for line in self.lines("/packs")? {
            let mut parts = line.split_whitespace();
            let id = self.parse_id_from("/packs", parts.next().unwrap_or(""))?;
            let size = parts
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::remote(
                        RemoteFailure::BadAnswer,
                        format!("{}/packs: bad line {line:?}", self.conn.base),
                    )
                })?;
            out.push((id, size));
        }
        Ok(out)
    }

    /// Remote pack `id` as a local sparse file: its header, index and trailer at their
    /// offsets (three range requests, once per backend), its blocks left as holes. The
    /// pack parser and lookups of [`pack`] then work on it as on a local pack, keeping
    /// 4 bytes per object in memory; block frames are fetched by range when wanted.
    fn remote_pack(&self, id: &Id, size: u64) -> Result<std::sync::Arc<RemotePack>> {
        let mut cache = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.packs.get(id) {
            return Ok(p.clone());
        }
        if cache.dir.is_none() {
            cache.dir = Some(
                tempfile::Builder::new()
                    .prefix("remotelog-packs-")
                    .tempdir()
                    .at(&std::env::temp_dir())?,
            );
        }
        let dir = cache
            .dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let path = dir.join(format!("{id}.pack"));
        let name = std::path::PathBuf::from(format!("{}/packs/{id}", self.conn.base));
        pack::sparse_copy(&name, &path, size, None, |first, last| {
            self.get_range(id, first, last)
        })?;
        let p = pack::open_copy(&name, &path, id)?;
        let p = std::sync::Arc::new(p);
        cache.packs.insert(*id, p.clone());
        Ok(p)
    }

    fn ref_path(name: &RefName) -> String {
        format!("/ns/{}", name.as_str())
    }
}

impl Backend for HttpBackend {
    fn write_lease_waiting(&self, wait: Duration) -> Result<crate::store::WriteLease> {
        if self
            .conn
            .lease
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            // Held already (by the caller's caller): it covers this writer too.
            return Ok(crate::store::WriteLease::none());
        }
        let start = std::time::Instant::now();
        let mut told = false;
        loop {
            let r = self.request(Method::POST, "/leases", Payload::Empty, &[], true)?;
            match r.status {
                201 => {
                    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
                        Error::remote(
                            RemoteFailure::BadAnswer,
                            format!("{}/leases: not a lease: {e}", self.conn.base),
                        )
                    })?;
                    let (Some(id), Some(ttl)) = (v["lease"].as_str(), v["ttl"].as_u64()) else {
                        return Err(Error::remote(
                            RemoteFailure::BadAnswer,
                            format!("{}/leases: not a lease: {v}", self.conn.base),
                        ));
                    };
                    let lease = ClientLease::start(self.conn.clone(), id, Duration::from_secs(ttl));
                    return Ok(crate::store::WriteLease::new(lease));
                }
                // A server from before leases: its ref updates are still checked.
                404 => return Ok(crate::store::WriteLease::none()),
                503 if start.elapsed() < wait => {
                    if !told && start.elapsed() >= Duration::from_secs(1) {
                        told = true;
                        eprintln!("remotelog: waiting for {} ({})", self.conn.base, r.text());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                _ => return Err(self.refused(&Method::POST, "/leases", &r)),
            }
        }
    }

    fn checks_chains(&self) -> bool {
        // The server checks every log ref update (http-api.md section 4).
        true
    }

    fn gc_at_store(&self, grace: Duration, dry_run: bool) -> Option<Result<Collected>> {
        // The server runs the library's gc on its own store (http-api.md section 9).
        Some(self.gc(grace, dry_run))
    }

    fn pack_chain(&self) -> Result<Vec<PackInfo>> {
        let mut out = Vec::new();
        for line in self.lines("/packs")? {
            let mut parts = line.split_whitespace();
            let id = self.parse_id_from("/packs", parts.next().unwrap_or(""))?;
            let mut num = || parts.next().and_then(|s| s.parse::<u64>().ok());
            let (Some(size), Some(objects)) = (num(), num()) else {
                return Err(Error::remote(
                    RemoteFailure::BadAnswer,
                    format!("{}/packs: bad line {line:?}", self.conn.base),
                ));
            };
            out.push(PackInfo {
                id,
                size,
                objects: usize::try_from(objects).unwrap_or(usize::MAX),
            });
        }
        Ok(out)
    }

    fn pack_location(&self, id: &Id) -> String {
        format!("{}/packs/{id}", self.conn.base)
    }

    fn read_pack(&self, id: &Id, offset: u64, len: u64) -> Result<Box<dyn std::io::Read + Send>> {
        if len == 0 {
            return Ok(Box::new(std::io::empty()));
        }
        let last = offset.checked_add(len - 1).ok_or_else(|| Error::BadPack {
            path: self.pack_location(id).into(),
            reason: format!("bytes {offset}..+{len} lie beyond any pack"),
        })?;
        // The first piece now, so that a pack or range the server refuses is an error of
        // this call; the rest as it is read, at most RANGE_MAX per request.
        let mut reader = RangeReader {
            via: HttpBackend {
                conn: self.conn.clone(),
                cache: Mutex::default(),
                indexes: Mutex::default(),
            },
            pack: *id,
            next: offset,
            last,
            piece: std::io::Cursor::new(Vec::new()),
        };
        reader.fetch()?;
        Ok(Box::new(reader))
    }

    fn add_pack(&self, pack: crate::pack::Finished) -> Result<Option<Id>> {
        Ok(self.upload_pack_outcome(&pack.tmp)?.pack)
    }

    fn location(&self) -> String {
        self.conn.base.clone()
    }

    fn object_location(&self, id: &Id) -> String {
        format!("{}/cas/{id}", self.conn.base)
    }

    fn get_object(&self, id: &Id) -> Result<Vec<u8>> {
        if let Some(b) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(id)
        {
            return Ok(b.clone());
        }
        let path = format!("/cas/{id}");
        let r = self.request(Method::GET, &path, Payload::Empty, &[], true)?;
        match r.status {
            200 => {
                verify_id(id, &r.body, || self.object_location(id))?;
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(*id, &r.body);
                Ok(r.body)
            }
            404 => Err(Error::ObjectMissing {
                id: *id,
                location: self.object_location(id),
            }),
            _ => Err(self.refused(&Method::GET, &path, &r)),
        }
    }

    fn has_object(&self, id: &Id) -> Result<bool> {
        if self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .contains_key(id)
        {
            return Ok(true);
        }
        let path = format!("/cas/{id}");
        let r = self.request(Method::HEAD, &path, Payload::Empty, &[], true)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&Method::HEAD, &path, &r)),
        }
    }

    fn present_objects(&self, ids: &[Id]) -> Result<HashSet<Id>> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(PRESENT_CHUNK) {
            let mut body = String::with_capacity(chunk.len() * 65);
            for id in chunk {
                body.push_str(&id.to_hex());
                body.push('\n');
            }
            let r = self.expect_ok(
                Method::POST,
                "/cas/present",
                Payload::Bytes(body.as_bytes()),
                true,
            )?;
            for line in String::from_utf8_lossy(&r.body).lines() {
                if !line.trim().is_empty() {
                    out.insert(self.parse_id_from("/cas/present", line)?);
                }
            }
        }
        Ok(out)
    }

    fn batch(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(RollingBatch::new(HttpSink {
            backend: self,
            dir: None,
        })))
    }

    fn raw_blocks(&self, ids: &[Id], take: &mut dyn FnMut(RawBlock) -> Result<()>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let listed = self.packs()?;
        let packs = listed
            .iter()
            .map(|(id, size)| self.remote_pack(id, *size))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&RemotePack> = packs.iter().map(|p| &**p).collect();
        let bad = |k: usize, r: String| Error::BadPack {
            path: format!("{}/packs/{}", self.conn.base, listed[k].0).into(),
            reason: r,
        };
        let blocks = pack::whole_blocks(&refs, ids).map_err(|(k, r)| bad(k, r.to_string()))?;
        // Adjacent wanted blocks of a pack are fetched together: a clone reads each pack
        // in a few large ranges.
        let mut i = 0;
        while i < blocks.len() {
            let k = blocks[i].0;
            let p = &packs[k];
            let first = p.block(blocks[i].1);
            let mut j = i;
            while j + 1 < blocks.len() && blocks[j + 1].0 == k {
                let cur = p.block(blocks[j].1);
                let next = p.block(blocks[j + 1].1);
                let end = next.offset + u64::from(next.clen);
                if next.offset != cur.offset + u64::from(cur.clen) || end - first.offset > RANGE_MAX
                {
                    break;
                }
                j += 1;
            }
            let last = p.block(blocks[j].1);
            let start = first.offset;
            let stop = last.offset + u64::from(last.clen);
            let bytes = if stop > start {
                self.get_range(&listed[k].0, start, stop - 1)?
            } else {
                Vec::new()
            };
            for (_, n, objects) in blocks[i..=j].iter().cloned() {
                let b = p.block(n);
                let at = (b.offset - start) as usize;
                let frame = &bytes[at..at + b.clen as usize];
                if pack::frame_checksum(frame) != b.checksum {
                    return Err(bad(k, format!("block {n} fails its checksum")));
                }
                // The block checksum guards against damage, not against a lying server:
                // the caller checks every object against its id before keeping it.
                take(RawBlock {
                    frame: frame.to_vec(),
                    ulen: b.ulen,
                    checksum: b.checksum,
                    objects,
                })?;
            }
            i = j + 1;
        }
        Ok(())
    }

    fn list_objects(&self) -> Result<Vec<Id>> {
        let mut ids = self
            .lines("/cas")?
            .iter()
            .map(|l| self.parse_id_from("/cas", l))
            .collect::<Result<Vec<Id>>>()?;
        ids.sort();
        Ok(ids)
    }

    fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<Id>> {
        if prefix.len() < 2 || prefix.len() > 64 || !is_lower_hex(prefix) {
            return Ok(Vec::new());
        }
        let mut ids = self
            .lines(&format!("/cas?prefix={prefix}"))?
            .iter()
            .map(|l| self.parse_id_from("/cas", l))
            .collect::<Result<Vec<Id>>>()?;
        ids.sort();
        Ok(ids)
    }

    fn read_ref(&self, name: &RefName) -> Result<Option<Id>> {
        let path = Self::ref_path(name);
        let r = self.request(Method::GET, &path, Payload::Empty, &[], true)?;
        match r.status {
            200 => Ok(Some(self.parse_id_from(&path, &r.text())?)),
            404 => Ok(None),
            _ => Err(self.refused(&Method::GET, &path, &r)),
        }
    }

    fn update_ref(&self, name: &RefName, expected: Expected, new: Option<Id>) -> Result<()> {
        // The API has no unconditional update: "any" is a compare-and-swap from what the
        // ref holds, again while others move it.
        let expected = match expected {
            Expected::Any => {
                for _ in 0..64 {
                    let current = self.read_ref(name)?;
                    match self.update_ref_from(name, current, new) {
                        Err(Error::RefConflict { .. }) => continue,
                        other => return other,
                    }
                }
                return Err(Error::remote(
                    RemoteFailure::Busy,
                    format!(
                        "ref {name} at {} keeps changing under concurrent updates; try again",
                        self.conn.base
                    ),
                ));
            }
            other => other.value(),
        };
        self.update_ref_from(name, expected, new)
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<RefName>> {
        crate::model::name::validate(prefix)?;
        let mut out = Vec::new();
        for line in self.lines(&format!("/ns?prefix={prefix}"))? {
            let name = line.split_whitespace().next().unwrap_or("");
            out.push(RefName::parse(name).map_err(|e| {
                Error::remote(
                    RemoteFailure::BadAnswer,
                    format!("{}/ns sent a bad ref name: {e}", self.conn.base),
                )
            })?);
        }
        out.sort();
        Ok(out)
    }
}

impl HttpBackend {
    /// A compare-and-swap of `name` from `expected` (`None`: must not exist) to `new`.
    fn update_ref_from(&self, name: &RefName, expected: Option<Id>, new: Option<Id>) -> Result<()> {
        let path = Self::ref_path(name);
        let mut headers = Vec::new();
        match expected {
            Some(id) => headers.push(("if-match", format!("\"{id}\""))),
            None => headers.push(("if-none-match", "*".to_string())),
        }
        let r = match new {
            Some(id) => {
                let body = format!("{id}\n");
                // Not retried: a compare-and-swap whose answer was lost must be judged by
                // reading the ref again, which the caller does.
                self.request(
                    Method::PUT,
                    &path,
                    Payload::Bytes(body.as_bytes()),
                    &headers,
                    false,
                )?
            }
            None => {
                if expected.is_none() {
                    let actual = self.read_ref(name)?;
                    return match actual {
                        None => Ok(()),
                        Some(_) => Err(Error::RefConflict {
                            name: name.to_string(),
                            expected,
                            actual,
                        }),
                    };
                }
                self.request(Method::DELETE, &path, Payload::Empty, &headers, false)?
            }
        };
        match r.status {
            200 | 204 => Ok(()),
            412 => {
                let current = r
                    .headers
                    .get(crate::net::wire::CURRENT_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let actual = if current == "absent" {
                    None
                } else {
                    Some(self.parse_id_from(crate::net::wire::CURRENT_HEADER, current)?)
                };
                Err(Error::RefConflict {
                    name: name.to_string(),
                    expected,
                    actual,
                })
            }
            // The server lacks part of the chain: the caller can upload and retry.
            409 if r.headers.contains_key(crate::net::wire::MISSING_HEADER) => {
                let header = |h: &str| {
                    r.headers
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let missing = self.parse_id_from(
                    crate::net::wire::MISSING_HEADER,
                    &header(crate::net::wire::MISSING_HEADER),
                )?;
                let what = header(crate::net::wire::MISSING_WHAT_HEADER);
                Err(Error::IncompleteChain {
                    name: name.to_string(),
                    missing,
                    what: if what.is_empty() {
                        "object".into()
                    } else {
                        what
                    },
                    location: self.conn.base.clone(),
                })
            }
            _ => Err(self.refused(&r_method(new), &path, &r)),
        }
    }
}

/// Bytes `next..=last` of a remote pack, fetched a piece at a time as they are read
/// ([`Backend::read_pack`]), so a whole pack is never held in memory.
struct RangeReader {
    via: HttpBackend,
    pack: Id,
    next: u64,
    last: u64,
    piece: std::io::Cursor<Vec<u8>>,
}

impl RangeReader {
    /// Fetches the next piece, if any is left.
    fn fetch(&mut self) -> Result<()> {
        if self.next > self.last {
            return Ok(());
        }
        let end = self.last.min(self.next.saturating_add(RANGE_MAX - 1));
        let bytes = self.via.get_range(&self.pack, self.next, end)?;
        self.next = end + 1;
        self.piece = std::io::Cursor::new(bytes);
        Ok(())
    }
}

impl std::io::Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.piece.read(out)?;
            if n > 0 || out.is_empty() || self.next > self.last {
                return Ok(n);
            }
            self.fetch().map_err(std::io::Error::other)?;
        }
    }
}

fn r_method(new: Option<Id>) -> Method {
    if new.is_some() {
        Method::PUT
    } else {
        Method::DELETE
    }
}

/// An HTTP remote's half of its batches ([`RollingBatch`]): every object goes into a pack
/// written locally, uploaded whenever it reaches [`PACK_SPLIT`] bytes and at commit; the
/// server keeps what it lacks, so the batch asks it nothing before.
struct HttpSink<'a> {
    backend: &'a HttpBackend,
    /// Where packs are written before upload, made at the first.
    dir: Option<tempfile::TempDir>,
}

impl BatchSink for HttpSink<'_> {
    fn has(&mut self, _id: &Id) -> Result<bool> {
        Ok(false)
    }

    fn pack_writer(&mut self) -> Result<PackWriter> {
        let dir = match &self.dir {
            Some(d) => d.path().to_path_buf(),
            None => {
                let tmp = std::env::temp_dir();
                let d = tempfile::Builder::new()
                    .prefix("remotelog-upload-")
                    .tempdir()
                    .at(&tmp)?;
                self.dir.insert(d).path().to_path_buf()
            }
        };
        PackWriter::create(&dir, None, crate::store::config::DEFAULT_ZSTD_LEVEL)
    }

    fn commit_pack(&mut self, done: pack::Finished) -> Result<usize> {
        self.backend.upload_pack(&done.tmp)
    }

    fn put_loose(&mut self, objects: &[(Id, &[u8])]) -> Result<usize> {
        // Never reached with objects: loose_max is 0, so the batch packs everything.
        debug_assert!(objects.is_empty());
        Ok(0)
    }

    fn pack_target(&self) -> u64 {
        PACK_SPLIT
    }

    fn loose_max(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// A loopback server answering each connection with the next of `answers` (status,
    /// body), then closing it; gives its URL.
    fn serve(answers: Vec<(u16, &'static str)>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut c, _)) = l.accept() else { return };
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    /// Sends GET `url` through [`Retrying`]: the answer and attempts, or the error.
    fn get(url: &str, attempts: u32, again_on_5xx: bool, max: u64) -> Result<(Reply, u32)> {
        let patience = Patience {
            wait: Duration::from_secs(10),
        };
        let trust = Trust::for_url(url, &[]).unwrap();
        let agent = patience.agent(&trust);
        let retrying = Retrying {
            patience: &patience,
            trust: &trust,
            base: url,
            url,
            max,
            attempts,
            again_on_5xx,
            too_big: &|u| Error::Invalid(format!("too big: {u}")),
            unreachable: &|e, n| Error::Invalid(format!("unreachable after {n}: {e}")),
        };
        retrying.send(|| Ok(agent.get(url).call()))
    }

    /// The error of `r`, as text; an answer is a failure of the test.
    fn error_of(r: Result<(Reply, u32)>) -> String {
        match r {
            Ok((r, n)) => panic!("answered {} after {n} attempts", r.status),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn retrying_sends_again_on_5xx_only_when_asked() {
        let url = serve(vec![(503, "busy"), (502, "busy"), (200, "ok")]);
        let (r, n) = get(&url, 5, true, 100).unwrap();
        assert_eq!((r.status, &r.body[..], n), (200, &b"ok"[..], 3));

        let url = serve(vec![(503, "busy")]);
        let (r, n) = get(&url, 5, false, 100).unwrap();
        assert_eq!((r.status, &r.body[..], n), (503, &b"busy"[..], 1));

        // Out of attempts, the last 5xx is the answer.
        let url = serve(vec![(503, "one"), (503, "two")]);
        let (r, n) = get(&url, 2, true, 100).unwrap();
        assert_eq!((r.status, &r.body[..], n), (503, &b"two"[..], 2));
    }

    #[test]
    fn retrying_gives_the_callers_errors() {
        // An answer too big is not asked for again.
        let url = serve(vec![(200, "0123456789")]);
        let e = error_of(get(&url, 5, true, 4));
        assert_eq!(e, format!("too big: {url}"));

        // A port nobody listens on: tried as often as allowed, then out of reach.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let e = error_of(get(&url, 2, false, 100));
        assert!(e.starts_with("unreachable after 2: "), "{e}");
        let e = error_of(get(&url, 1, false, 100));
        assert!(e.starts_with("unreachable after 1: "), "{e}");

        // An error building the request ends the loop at once.
        let mut calls = 0;
        let patience = Patience {
            wait: Duration::from_secs(1),
        };
        let trust = Trust::for_url(&url, &[]).unwrap();
        let r = Retrying {
            patience: &patience,
            trust: &trust,
            base: &url,
            url: &url,
            max: 1,
            attempts: 5,
            again_on_5xx: true,
            too_big: &|_| Error::Invalid("too big".into()),
            unreachable: &|_, _| Error::Invalid("unreachable".into()),
        }
        .send(|| {
            calls += 1;
            Err(Error::Invalid("cannot build".into()))
        });
        assert_eq!(
            (r.err().map(|e| e.to_string()), calls),
            (Some("cannot build".into()), 1)
        );
    }
}
