//! Where things are in a bucket (format/s3-layout.md): the `s3://BUCKET/PREFIX` location
//! with the options stored with it, and the key of every object, pack, ref and lease
//! under the prefix — the directory layout of format/store-v1.md, key for file.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::name::RefName;

/// The scheme of object-storage remotes.
pub const SCHEME: &str = "s3://";

/// The store's settings object (store-v1 section 2, same text).
pub const CONFIG: &str = "config";
/// The folder of leases.
pub const LOCKS: &str = "locks/";
/// The exclusive lease of upkeep.
pub const UPKEEP: &str = "locks/upkeep";
/// Prefix of writer leases (the timed leases of a server's clients share it).
pub const WRITER: &str = "locks/writer-";
/// Prefix of the timed leases a server holds for its clients.
pub const CLIENT: &str = "locks/writer-client-";
/// Prefix of the precondition probe's keys.
pub const PROBE: &str = "locks/probe-";
/// The folder of loose objects.
pub const OBJECTS: &str = "objects/";
/// The folder of packs.
pub const PACKS: &str = "packs/";
/// The folder of refs.
pub const REFS: &str = "refs/";

/// An `s3://BUCKET/PREFIX` location with its stored options (`?endpoint=…&region=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// The endpoint stored with the remote (else `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// The region stored with the remote (else `AWS_REGION`).
    pub region: Option<String>,
}

/// True when `location` names an object-storage remote.
pub fn is_s3(location: &str) -> bool {
    location.to_ascii_lowercase().starts_with(SCHEME)
}

fn valid_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    (3..=63).contains(&b.len())
        && bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[b.len() - 1].is_ascii_alphanumeric()
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]`.
    pub fn parse(text: &str) -> Result<Location> {
        let bad = |why: &str| {
            Error::remote(
                crate::error::RemoteFailure::BadLocation,
                format!(
                "{text:?} is not a usable object-storage location: {why}; write s3://BUCKET/PREFIX"
            ),
            )
        };
        if !is_s3(text) {
            return Err(bad("it must start with s3://"));
        }
        let rest = &text[SCHEME.len()..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (bucket, prefix) = match path.split_once('/') {
            Some((b, p)) => (b, p.trim_end_matches('/')),
            None => (path, ""),
        };
        if !valid_bucket(bucket) {
            return Err(bad(&format!(
                "bucket {bucket:?} is not a valid bucket name (3-63 characters: a-z 0-9 . -)"
            )));
        }
        if !prefix.is_empty() && (prefix.len() > 512 || !prefix.split('/').all(valid_segment)) {
            return Err(bad(&format!(
                "prefix {prefix:?} must be segments of A-Z a-z 0-9 . _ - joined by /"
            )));
        }
        let mut loc = Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            region: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == ' ' || c == '&') {
                return Err(bad(&format!("option {k:?} has no usable value")));
            }
            match k {
                "endpoint" => {
                    super::client::normalize_endpoint(v)?;
                    loc.endpoint = Some(v.trim_end_matches('/').to_string());
                }
                "region" => {
                    if !v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                        return Err(bad(&format!("region {v:?} is not a region name")));
                    }
                    loc.region = Some(v.to_string());
                }
                k if k.contains("secret") || k.contains("key") || k.contains("token") => {
                    return Err(bad(
                        "credentials are never stored with a remote; give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS credentials file",
                    ))
                }
                other => {
                    return Err(bad(&format!(
                        "unknown option {other:?} (known: endpoint, region)"
                    )))
                }
            }
        }
        Ok(loc)
    }

    /// The canonical text: what the `remotes` file records.
    pub fn render(&self) -> String {
        let mut s = format!("{SCHEME}{}", self.bucket);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        let mut opts = Vec::new();
        if let Some(e) = &self.endpoint {
            opts.push(format!("endpoint={e}"));
        }
        if let Some(r) = &self.region {
            opts.push(format!("region={r}"));
        }
        if !opts.is_empty() {
            s.push('?');
            s.push_str(&opts.join("&"));
        }
        s
    }

    /// `s3://BUCKET/PREFIX` without the options, for messages.
    pub fn display(&self) -> String {
        if self.prefix.is_empty() {
            format!("{SCHEME}{}", self.bucket)
        } else {
            format!("{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }

    /// The whole key of `rel` (a key of this layout) under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// The key relative to the prefix, for a whole key listed below it.
    pub fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(&self.prefix)?.strip_prefix('/')
        }
    }
}

/// The relative key of loose object `id`.
pub fn object(id: &Id) -> String {
    let hex = id.to_hex();
    format!("{OBJECTS}{}/{}", &hex[..2], &hex[2..])
}

/// The object a relative key under `objects/` names, if it names one.
pub fn object_id(rel: &str) -> Option<Id> {
    let rest = rel.strip_prefix(OBJECTS)?;
    let (shard, tail) = rest.split_once('/')?;
    if shard.len() != 2 {
        return None;
    }
    format!("{shard}{tail}").parse().ok()
}

/// The relative key of pack `id`.
pub fn pack(id: &Id) -> String {
    format!("{PACKS}{id}.pack")
}

/// The pack a relative key under `packs/` names, if it names one.
pub fn pack_id(rel: &str) -> Option<Id> {
    rel.strip_prefix(PACKS)?.strip_suffix(".pack")?.parse().ok()
}

/// The relative key of ref `name`.
pub fn reference(name: &RefName) -> String {
    format!("{REFS}{}", name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_render_and_refuse() {
        let l = Location::parse(
            "s3://my-bucket/node/a?endpoint=http://127.0.0.1:8333&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(l.bucket, "my-bucket");
        assert_eq!(l.prefix, "node/a");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(Location::parse(&l.render()).unwrap(), l);
        assert_eq!(l.display(), "s3://my-bucket/node/a");
        assert_eq!(l.key("config"), "node/a/config");
        assert_eq!(l.relative("node/a/refs/logs/x"), Some("refs/logs/x"));
        assert_eq!(l.relative("node/ab/refs"), None);
        let bare = Location::parse("s3://bkt/").unwrap();
        assert_eq!(
            (bare.prefix.as_str(), bare.key("config")),
            ("", "config".to_string())
        );
        assert_eq!(bare.render(), "s3://bkt");
        for bad in [
            "s3://",
            "s3://ab/x",
            "s3://Upper/x",
            "s3://bkt/a//b",
            "s3://bkt/a/../b",
            "s3://bkt/a b",
            "s3://bkt/x?secret=1",
            "s3://bkt/x?color=red",
            "s3://bkt/x?endpoint=ftp://h",
            "s3://bkt/x?region=",
            "http://bkt/x",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        let e = Location::parse("s3://bkt/x?aws_secret_access_key=s").unwrap_err();
        assert!(e.to_string().contains("never stored"), "{e}");
    }

    #[test]
    fn keys_name_what_they_hold() {
        let id = Id::of(b"x");
        assert_eq!(object_id(&object(&id)), Some(id));
        assert_eq!(pack_id(&pack(&id)), Some(id));
        assert_eq!(object_id("objects/zz/nothex"), None);
        assert_eq!(pack_id("packs/abc.pack"), None);
        let r = RefName::log("team/chat").unwrap();
        assert_eq!(reference(&r), "refs/logs/team/chat");
    }
}
