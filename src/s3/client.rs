//! A small S3 client on the project's HTTP client (ureq, synchronous, the timeouts of
//! [`Patience`]): signed path-style requests, conditional writes, ranged reads,
//! ListObjectsV2 and multipart uploads. It knows keys and bytes, nothing of remotelog's
//! layout ([`super::layout`]) or contract ([`super::backend`]).
//!
//! Requests that may be sent twice are retried on a failed connection or a 5xx answer,
//! with backoff; the caller learns that a request was retried ([`Answer::retried`]),
//! because a 412 to a retried conditional write may hide its own first success.

use ureq::http::{self, HeaderMap};

use super::sigv4::{self, Signer};
use crate::error::{Error, RemoteFailure, Result};
use crate::net::client::{Patience, Retrying, Trust, CA_FILE_ENV};

/// The variables naming the CA file of an https endpoint, first set first: ours, the AWS
/// SDKs', then OpenSSL's.
const CA_VARS: &[&str] = &[CA_FILE_ENV, "AWS_CA_BUNDLE", "SSL_CERT_FILE"];
/// Attempts of a request whose connection fails or that gets a 5xx answer.
const ATTEMPTS: u32 = 5;
/// The largest answer read whole (a listing page, a range): larger ones are refused.
pub const ANSWER_MAX: u64 = 64 << 20;
/// Keys per listing page (the S3 maximum).
const LIST_PAGE: usize = 1000;

/// Where the store is and who we are there. Its `Debug` form never shows the secret.
#[derive(Clone)]
pub struct Config {
    /// The endpoint, `http[s]://HOST[:PORT]`, no trailing slash.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// The access key id.
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
    /// A session token (`AWS_SESSION_TOKEN`), sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .field("secret", &"(hidden)")
            .finish()
    }
}

/// Checks an endpoint URL and gives its canonical form and its authority (`HOST[:PORT]`,
/// as the `Host` header carries it).
pub fn normalize_endpoint(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| {
        Error::remote(RemoteFailure::BadLocation, format!(
            "{url:?} is not a usable S3 endpoint: {why} (set AWS_ENDPOINT_URL, or endpoint= in the remote's location)"
        ))
    };
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https", ":443")
    } else {
        ("http", ":80")
    };
    let Some(rest) = url.strip_prefix(&format!("{scheme}://")) else {
        return Err(bad("it must start with https:// or http://"));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#@\\".contains(c))
    {
        return Err(bad(
            "give only https://HOST[:PORT] or http://HOST[:PORT] (no path, query or credentials)",
        ));
    }
    authority
        .parse::<http::uri::Authority>()
        .map_err(|e| bad(&e.to_string()))?;
    // The Host header leaves out the scheme's own port (as ureq sends it), and SigV4 signs it.
    let host = authority.strip_suffix(default_port).unwrap_or(authority);
    Ok((format!("{scheme}://{authority}"), host.to_string()))
}

/// A request body.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    /// None.
    Empty,
    /// These bytes (their SHA-256 is signed, so the store checks they arrived intact).
    Bytes(&'a [u8]),
}

/// A condition on a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Unconditional.
    None,
    /// `If-None-Match: *`: only if the key does not exist.
    Absent,
    /// `If-Match: ETAG`: only if the key holds this version.
    Match(String),
}

/// An answer read whole.
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the request was sent more than once.
    pub retried: bool,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ETag, as the store gave it (quotes included: never computed locally).
    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(str::to_string)
    }

    /// The server's clock at the answer (`Date`), unix seconds.
    pub fn date(&self) -> Option<u64> {
        self.header("date").and_then(sigv4::parse_http_date)
    }

    /// `Last-Modified`, unix seconds.
    pub fn last_modified(&self) -> Option<u64> {
        self.header("last-modified")
            .and_then(sigv4::parse_http_date)
    }

    /// The error code and message of an S3 error body, if it has one.
    pub fn error_code(&self) -> (String, String) {
        let text = String::from_utf8_lossy(&self.body);
        (
            xml_value(&text, "Code").unwrap_or_default(),
            xml_value(&text, "Message").unwrap_or_default(),
        )
    }
}

/// One key of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The whole key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, unix seconds of the store's clock.
    pub modified: u64,
}

/// What a key's metadata says.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Its size.
    pub size: u64,
    /// Its ETag.
    pub etag: String,
    /// Its age by the store's clock (`Date` − `Last-Modified`), whole seconds.
    pub age: u64,
}

/// A connection to one bucket of an S3 store.
#[derive(Clone)]
pub struct Client {
    config: Config,
    /// `HOST[:PORT]`, as the `Host` header carries it.
    host: String,
    bucket: String,
    agent: ureq::Agent,
    patience: Patience,
    /// Which certificates an https endpoint's must chain to.
    trust: Trust,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// Extracts the text of the first `<tag>…</tag>` in `xml`, entities decoded.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    xml_elements(xml, tag).next().map(xml_unescape)
}

/// The contents of every `<tag>…</tag>` in `xml`, in order (S3's answers do not nest an
/// element in one of the same name).
pub fn xml_elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

/// Decodes the five XML entities and numeric character references.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// A client for `bucket` at the store `config` names; the timeouts come from
    /// [`Patience::from_env`]; an https endpoint's certificate must chain to Mozilla's
    /// roots, or to the CAs of the file `REMOTELOG_CA_FILE`, `AWS_CA_BUNDLE` or
    /// `SSL_CERT_FILE` names (the first set).
    pub fn new(config: Config, bucket: &str) -> Result<Client> {
        let (endpoint, host) = normalize_endpoint(&config.endpoint)?;
        let patience = Patience::from_env()?;
        let trust = Trust::for_url(&endpoint, CA_VARS)?;
        Ok(Client {
            config: Config { endpoint, ..config },
            host,
            bucket: bucket.to_string(),
            agent: patience.agent(&trust),
            patience,
            trust,
        })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://BUCKET/KEY`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Sends one signed request on `key` (empty: the bucket) and reads its answer whole, at
    /// most `max` bytes. `query` pairs are given unencoded; `retry`: whether it may be sent
    /// again after a failed connection or a 5xx answer.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Body<'_>,
        retry: bool,
        max: u64,
    ) -> Result<Answer> {
        let path = if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, sigv4::uri_encode(key, true))
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (sigv4::uri_encode(k, false), sigv4::uri_encode(v, false)))
            .collect();
        pairs.sort();
        let query: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let url = if query.is_empty() {
            format!("{}{path}", self.config.endpoint)
        } else {
            format!("{}{path}?{query}", self.config.endpoint)
        };
        let payload_hash = match body {
            Body::Empty => sigv4::sha256_hex(b""),
            Body::Bytes(b) => sigv4::sha256_hex(b),
        };
        let what = format!("{method} {}", self.url_of(key));
        let too_big = |_: &str| {
            Error::remote(RemoteFailure::TooBig, format!(
                "{what}: the answer is larger than {max} bytes, more than remotelog asks for; check the endpoint"
            ))
        };
        let unreachable = |e: &ureq::Error, attempts: u32| {
            Error::remote(RemoteFailure::Unreachable, format!(
                "cannot reach the object store at {} ({what}: {e}{}); check AWS_ENDPOINT_URL and that the store is running",
                self.config.endpoint,
                if attempts > 1 {
                    format!(", tried {attempts} times")
                } else {
                    String::new()
                }
            ))
        };
        let retrying = Retrying {
            patience: &self.patience,
            trust: &self.trust,
            base: &self.config.endpoint,
            url: &url,
            max,
            attempts: if retry { ATTEMPTS } else { 1 },
            again_on_5xx: true,
            too_big: &too_big,
            unreachable: &unreachable,
        };
        // Each attempt is signed anew: its date must be near the store's clock.
        let (reply, attempts) = retrying.send(|| {
            let amz_date = sigv4::amz_date(now_secs());
            let mut signed: Vec<(String, String)> = vec![
                ("host".into(), self.host.clone()),
                ("x-amz-content-sha256".into(), payload_hash.clone()),
                ("x-amz-date".into(), amz_date.clone()),
            ];
            if let Some(t) = &self.config.session_token {
                signed.push(("x-amz-security-token".into(), t.clone()));
            }
            for (k, v) in headers {
                signed.push((k.to_ascii_lowercase(), v.clone()));
            }
            let auth = Signer {
                key_id: &self.config.key_id,
                secret: &self.config.secret,
                region: &self.config.region,
            }
            .authorization(
                &sigv4::Request {
                    method,
                    path: &path,
                    query: &query,
                    headers: &signed,
                    payload_hash: &payload_hash,
                },
                &amz_date,
            );
            let mut b = http::Request::builder()
                .method(method)
                .uri(&url)
                .header("authorization", auth);
            for (k, v) in signed.iter().filter(|(k, _)| k != "host") {
                b = b.header(k.as_str(), v.as_str());
            }
            let built = |e: http::Error| Error::Invalid(format!("cannot build {what}: {e}"));
            Ok(match body {
                Body::Empty if method == "PUT" || method == "POST" => {
                    self.agent.run(b.body(&[][..]).map_err(built)?)
                }
                Body::Empty => self.agent.run(b.body(()).map_err(built)?),
                Body::Bytes(bytes) => self.agent.run(b.body(bytes).map_err(built)?),
            })
        })?;
        Ok(Answer {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
            retried: attempts > 1,
        })
    }

    /// The error for an answer that is not what `what` expected.
    pub fn refused(&self, what: &str, a: &Answer) -> Error {
        let (code, msg) = a.error_code();
        let detail = if code.is_empty() {
            String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                .trim()
                .to_string()
        } else {
            format!("{code}: {msg}")
        };
        let hint = match (a.status, code.as_str()) {
            (_, "NoSuchBucket") => format!(
                "; bucket {} does not exist at {}: create it first",
                self.bucket, self.config.endpoint
            ),
            (_, "RequestTimeTooSkewed") => "; this machine's clock is off: set it right".into(),
            // AWS answers so when the bucket lives in another region than the one signed
            // for or the endpoint's.
            (301, _) | (_, "PermanentRedirect") | (_, "AuthorizationHeaderMalformed") => format!(
                "; the bucket is in another region than {}: set AWS_REGION (or region= in the location) to its region and the endpoint to https://s3.REGION.amazonaws.com",
                self.config.region
            ),
            (403, _) | (_, "InvalidAccessKeyId") | (_, "SignatureDoesNotMatch") => {
                "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the credentials file) and the bucket's permissions".into()
            }
            (503, _) => "; the store is overloaded: run the command again later".into(),
            _ => String::new(),
        };
        let kind = match a.status {
            401 => RemoteFailure::Unauthorized,
            403 => RemoteFailure::Forbidden,
            s => RemoteFailure::Status(s),
        };
        Error::remote(
            kind,
            format!(
                "{} answered {} to {what} ({detail}){hint}",
                self.config.endpoint, a.status
            ),
        )
    }

    /// GET `key` whole (at most `max` bytes): `None` when it does not exist.
    pub fn get(&self, key: &str, max: u64) -> Result<Option<Answer>> {
        let a = self.send("GET", key, &[], &[], Body::Empty, true, max)?;
        match a.status {
            200 => Ok(Some(a)),
            404 => Ok(None),
            _ => Err(self.refused(&format!("GET {}", self.url_of(key)), &a)),
        }
    }

    /// Bytes `first..=last` of `key`, exactly; `None` when the key does not exist.
    pub fn get_range(&self, key: &str, first: u64, last: u64) -> Result<Option<Vec<u8>>> {
        let range = [("range", format!("bytes={first}-{last}"))];
        let want = last - first + 1;
        let a = self.send("GET", key, &[], &range, Body::Empty, true, want)?;
        let what = || format!("GET {} bytes {first}-{last}", self.url_of(key));
        match a.status {
            206 | 200 if a.body.len() as u64 == want => Ok(Some(a.body)),
            206 | 200 => Err(Error::remote(
                RemoteFailure::BadAnswer,
                format!(
                    "{}: asked for {want} bytes, got {}; the object is shorter than its index says",
                    what(),
                    a.body.len()
                ),
            )),
            404 => Ok(None),
            416 => Err(Error::remote(
                RemoteFailure::BadAnswer,
                format!("{}: the range lies beyond the end of the object", what()),
            )),
            _ => Err(self.refused(&what(), &a)),
        }
    }

    /// The last `n` bytes of `key` and its whole length (from `Content-Range`); `None`
    /// when it does not exist.
    pub fn get_suffix(&self, key: &str, n: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let range = [("range", format!("bytes=-{n}"))];
        let a = self.send("GET", key, &[], &range, Body::Empty, true, n)?;
        let what = || format!("GET {} (last {n} bytes)", self.url_of(key));
        match a.status {
            206 => {
                let total = a
                    .header("content-range")
                    .and_then(|r| r.rsplit('/').next())
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::remote(
                            RemoteFailure::BadAnswer,
                            format!("{}: the answer has no usable Content-Range", what()),
                        )
                    })?;
                Ok(Some((a.body, total)))
            }
            // A key shorter than the suffix comes whole.
            200 => {
                let len = a.body.len() as u64;
                Ok(Some((a.body, len)))
            }
            404 => Ok(None),
            416 => Ok(Some((Vec::new(), 0))),
            _ => Err(self.refused(&what(), &a)),
        }
    }

    /// HEAD `key`: its size, ETag and age by the store's clock; `None` when absent.
    pub fn head(&self, key: &str) -> Result<Option<Meta>> {
        let a = self.send("HEAD", key, &[], &[], Body::Empty, true, 0)?;
        match a.status {
            200 => {
                let size = a
                    .header("content-length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let age = match (a.date(), a.last_modified()) {
                    (Some(now), Some(at)) => now.saturating_sub(at),
                    _ => 0,
                };
                Ok(Some(Meta {
                    size,
                    etag: a.etag().unwrap_or_default(),
                    age,
                }))
            }
            404 => Ok(None),
            _ => Err(self.refused(&format!("HEAD {}", self.url_of(key)), &a)),
        }
    }

    /// PUT `bytes` at `key` under `cond`; the answer is the caller's to judge (200, 412,
    /// 409). Retried after a failed connection or a 5xx answer.
    pub fn put(&self, key: &str, bytes: &[u8], cond: &Cond) -> Result<Answer> {
        let headers: Vec<(&str, String)> = match cond {
            Cond::None => vec![],
            Cond::Absent => vec![("if-none-match", "*".into())],
            Cond::Match(etag) => vec![("if-match", etag.clone())],
        };
        self.send("PUT", key, &[], &headers, Body::Bytes(bytes), true, 1 << 20)
    }

    /// DELETE `key` (only if it holds `etag`, when given); the answer is the caller's.
    pub fn delete(&self, key: &str, etag: Option<&str>) -> Result<Answer> {
        let headers: Vec<(&str, String)> = etag
            .map(|e| vec![("if-match", e.to_string())])
            .unwrap_or_default();
        self.send("DELETE", key, &[], &headers, Body::Empty, true, 1 << 20)
    }

    /// DELETE `key`, absent already being fine.
    pub fn remove(&self, key: &str) -> Result<()> {
        let a = self.delete(key, None)?;
        match a.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.refused(&format!("DELETE {}", self.url_of(key)), &a)),
        }
    }

    /// Every key below `prefix`, in key order, handed to `f` page by page; returns the
    /// store's clock at the first answer (unix seconds), for ages.
    pub fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed) -> Result<()>) -> Result<u64> {
        let mut token: Option<String> = None;
        let mut now = None;
        loop {
            let mut query = vec![
                ("list-type", "2".to_string()),
                ("prefix", prefix.to_string()),
                ("max-keys", LIST_PAGE.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let a = self.send("GET", "", &query, &[], Body::Empty, true, ANSWER_MAX)?;
            let what = || format!("listing {}", self.url_of(prefix));
            if a.status != 200 {
                return Err(self.refused(&what(), &a));
            }
            now = now.or(a.date());
            let text = String::from_utf8(a.body).map_err(|_| {
                Error::remote(
                    RemoteFailure::BadAnswer,
                    format!("{}: the store answered with text that is not UTF-8", what()),
                )
            })?;
            for item in xml_elements(&text, "Contents") {
                let key = xml_value(item, "Key").unwrap_or_default();
                let modified = xml_value(item, "LastModified")
                    .and_then(|t| sigv4::parse_iso8601(&t))
                    .unwrap_or(0);
                let size = xml_value(item, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                f(Listed {
                    key,
                    size,
                    modified,
                })?;
            }
            let truncated = xml_value(&text, "IsTruncated").as_deref() == Some("true");
            let next = xml_value(&text, "NextContinuationToken").filter(|t| !t.is_empty());
            match (truncated, next) {
                (true, Some(t)) => {
                    if token.as_ref() == Some(&t) {
                        return Err(Error::remote(
                            RemoteFailure::BadAnswer,
                            format!(
                                "{}: the store gave the same continuation token twice",
                                what()
                            ),
                        ));
                    }
                    token = Some(t);
                }
                (true, None) => {
                    return Err(Error::remote(
                        RemoteFailure::BadAnswer,
                        format!(
                        "{}: the store says the listing goes on but gives no continuation token",
                        what()
                    ),
                    ))
                }
                (false, _) => break,
            }
        }
        Ok(now.unwrap_or_else(now_secs))
    }

    /// Uploads the file at `path` to `key` in parts of `part` bytes (multipart upload):
    /// memory holds one part. An upload that fails is aborted.
    pub fn put_multipart(&self, key: &str, path: &std::path::Path, part: u64) -> Result<()> {
        use crate::error::IoContext;
        let what = |w: &str| format!("{w} {}", self.url_of(key));
        let a = self.send(
            "POST",
            key,
            &[("uploads", String::new())],
            &[],
            Body::Empty,
            true,
            1 << 20,
        )?;
        if a.status != 200 {
            return Err(self.refused(&what("starting a multipart upload of"), &a));
        }
        let upload = xml_value(&String::from_utf8_lossy(&a.body), "UploadId")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::remote(
                    RemoteFailure::BadAnswer,
                    format!(
                        "{}: the store gave no UploadId",
                        what("starting a multipart upload of")
                    ),
                )
            })?;
        let result = (|| -> Result<()> {
            let mut file = std::fs::File::open(path).at(path)?;
            let mut etags = Vec::new();
            let mut buf = Vec::new();
            for n in 1u32.. {
                buf.clear();
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, part), &mut buf)
                    .at(path)?;
                if buf.is_empty() && n > 1 {
                    break;
                }
                let q = [("partNumber", n.to_string()), ("uploadId", upload.clone())];
                let a = self.send("PUT", key, &q, &[], Body::Bytes(&buf), true, 1 << 20)?;
                if a.status != 200 {
                    return Err(self.refused(&what(&format!("uploading part {n} of")), &a));
                }
                let etag = a.etag().ok_or_else(|| {
                    Error::remote(
                        RemoteFailure::BadAnswer,
                        format!(
                            "{}: the store gave no ETag for the part",
                            what(&format!("uploading part {n} of"))
                        ),
                    )
                })?;
                etags.push(etag);
                if (buf.len() as u64) < part {
                    break;
                }
            }
            let mut xml = String::from("<CompleteMultipartUpload>");
            for (i, e) in etags.iter().enumerate() {
                let e = e.replace('&', "&amp;").replace('<', "&lt;");
                xml.push_str(&format!(
                    "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                    i + 1
                ));
            }
            xml.push_str("</CompleteMultipartUpload>");
            let q = [("uploadId", upload.clone())];
            let a = self.send(
                "POST",
                key,
                &q,
                &[],
                Body::Bytes(xml.as_bytes()),
                true,
                1 << 20,
            )?;
            // A completion can fail with 200 and an error in the body.
            let body = String::from_utf8_lossy(&a.body);
            if a.status != 200 || body.contains("<Error>") {
                return Err(self.refused(&what("completing the multipart upload of"), &a));
            }
            Ok(())
        })();
        if result.is_err() {
            // Parts of an aborted upload are freed by the store; one that cannot be aborted
            // is a leftover `gc` aborts.
            let _ = self.send(
                "DELETE",
                key,
                &[("uploadId", upload)],
                &[],
                Body::Empty,
                true,
                1 << 20,
            );
        }
        result
    }

    /// Multipart uploads begun below `prefix` and never completed or aborted: (key,
    /// upload id, age in seconds by the store's clock).
    pub fn stale_uploads(&self, prefix: &str) -> Result<Vec<(String, String, u64)>> {
        let q = [("prefix", prefix.to_string()), ("uploads", String::new())];
        let a = self.send("GET", "", &q, &[], Body::Empty, true, ANSWER_MAX)?;
        if a.status != 200 {
            return Err(self.refused(
                &format!("listing the uploads of {}", self.url_of(prefix)),
                &a,
            ));
        }
        let now = a.date().unwrap_or_else(now_secs);
        let text = String::from_utf8_lossy(&a.body);
        Ok(xml_elements(&text, "Upload")
            .filter_map(|u| {
                let key = xml_value(u, "Key")?;
                let id = xml_value(u, "UploadId")?;
                let at = xml_value(u, "Initiated").and_then(|t| sigv4::parse_iso8601(&t))?;
                Some((key, id, now.saturating_sub(at)))
            })
            .collect())
    }

    /// Aborts multipart upload `upload` of `key`.
    pub fn abort_upload(&self, key: &str, upload: &str) -> Result<()> {
        let q = [("uploadId", upload.to_string())];
        let a = self.send("DELETE", key, &q, &[], Body::Empty, true, 1 << 20)?;
        match a.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.refused(&format!("aborting an upload of {}", self.url_of(key)), &a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_a_scheme_host_and_port_only() {
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:8333/").unwrap(),
            ("http://127.0.0.1:8333".into(), "127.0.0.1:8333".into())
        );
        assert_eq!(
            normalize_endpoint("http://s3.local:80").unwrap().1,
            "s3.local"
        );
        assert_eq!(
            normalize_endpoint("https://s3.eu-west-1.amazonaws.com:443/").unwrap(),
            (
                "https://s3.eu-west-1.amazonaws.com:443".into(),
                "s3.eu-west-1.amazonaws.com".into()
            )
        );
        assert_eq!(
            normalize_endpoint("https://127.0.0.1:8443").unwrap().1,
            "127.0.0.1:8443"
        );
        for bad in [
            "HTTPS://s3.amazonaws.com",
            "ftp://x",
            "https://",
            "https://h:80/path",
            "http://",
            "http://a b",
            "http://h/path",
            "http://user@h",
        ] {
            let e = normalize_endpoint(bad).unwrap_err().to_string();
            assert!(e.contains("AWS_ENDPOINT_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bucket_in_another_region_is_named_as_such() {
        let c = Config {
            endpoint: "https://s3.us-east-1.amazonaws.com".into(),
            region: "us-east-1".into(),
            key_id: "AKID".into(),
            secret: "s".into(),
            session_token: None,
        };
        let client = Client::new(c, "bucket").unwrap();
        let a = Answer {
            status: 301,
            headers: HeaderMap::new(),
            body: b"<Error><Code>PermanentRedirect</Code><Message>use the right endpoint</Message></Error>".to_vec(),
            retried: false,
        };
        let e = client.refused("GET s3://bucket/config", &a).to_string();
        assert!(
            e.contains("another region than us-east-1") && e.contains("AWS_REGION"),
            "{e}"
        );
    }

    #[test]
    fn xml_values_are_found_and_decoded() {
        let xml = "<R><Contents><Key>a&amp;b</Key><Size>3</Size></Contents>\
                   <Contents><Key>c&#47;d&#x41;</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let keys: Vec<String> = xml_elements(xml, "Contents")
            .map(|c| xml_value(c, "Key").unwrap())
            .collect();
        assert_eq!(keys, ["a&b", "c/dA"]);
        assert_eq!(xml_value(xml, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(xml_value(xml, "Nothing"), None);
        assert_eq!(xml_unescape("&bogus; & &#xZZ;"), "&bogus; & &#xZZ;");
        assert_eq!(xml_value("<Key>unclosed", "Key"), None);
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let c = Config {
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            key_id: "AKID".into(),
            secret: "very-secret".into(),
            session_token: None,
        };
        let client = Client::new(c.clone(), "bucket").unwrap();
        for shown in [format!("{c:?}"), format!("{client:?}")] {
            assert!(!shown.contains("very-secret"), "{shown}");
        }
    }
}
