//! Object-storage remotes: `s3://BUCKET/PREFIX` on AWS S3 or any S3-compatible store
//! (SeaweedFS, MinIO, Garage, Ceph), with the guarantees of a directory remote
//! (format/s3-layout.md).
//!
//! - [`layout`]: the location and the key of everything under the prefix;
//! - [`client`]: signed requests ([`sigv4`]) on the project's HTTP client (ureq);
//! - [`backend`]: [`S3Backend`], the storage contract on a bucket;
//! - [`lease`] and [`upkeep`]: leases with expiries and heartbeats, and gc's primitives.
//!
//! Refs move by conditional writes (`If-Match` / `If-None-Match: *`), so a store that
//! ignores preconditions would turn every compare-and-swap into last-writer-wins: [`probe`]
//! refuses one, at `remote add` and at a writer's first use.

pub mod backend;
pub mod client;
pub mod layout;
pub mod lease;
pub mod sigv4;
pub mod upkeep;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

pub use backend::S3Backend;
use client::{Client, Cond};
pub use layout::{is_s3, Location};

use crate::error::{Error, Result};

/// The endpoint when neither the location nor `AWS_ENDPOINT_URL_S3` names one.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Credentials from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`), profile `AWS_PROFILE` or `default`.
fn file_credentials() -> Result<Option<(String, String, Option<String>)>> {
    let path = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => match env("HOME") {
            Some(h) => std::path::Path::new(&h).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let mut section = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if section == profile {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().to_string();
                match k.trim() {
                    "aws_access_key_id" => id = Some(v),
                    "aws_secret_access_key" => secret = Some(v),
                    "aws_session_token" => token = Some(v),
                    _ => {}
                }
            }
        }
    }
    Ok(id.zip(secret).map(|(i, s)| (i, s, token)))
}

/// The client configuration for `loc`: the endpoint and region stored with it, else
/// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and `AWS_REGION` / `AWS_DEFAULT_REGION`
/// (default `us-east-1`); credentials from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else the shared credentials file.
pub fn config_for(loc: &Location) -> Result<client::Config> {
    let endpoint = loc
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env(ENDPOINT_ENV))
        .ok_or_else(|| {
            Error::remote(crate::error::RemoteFailure::BadLocation, format!(
                "{}: no endpoint for the object store; set {ENDPOINT_ENV} (https://s3.REGION.amazonaws.com for AWS, http://HOST:PORT for a store of your own), or add ?endpoint=URL to the remote's location",
                loc.display()
            ))
        })?;
    let region = loc
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let (key_id, secret, session_token) =
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => (id, secret, env("AWS_SESSION_TOKEN")),
            _ => file_credentials()?.ok_or_else(|| {
                Error::remote(crate::error::RemoteFailure::BadLocation, format!(
                    "{}: no credentials for the object store; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to ~/.aws/credentials",
                    loc.display()
                ))
            })?,
        };
    Ok(client::Config {
        endpoint,
        region,
        key_id,
        secret,
        session_token,
    })
}

/// Checks that the store honours conditional writes, on a key of its own under the
/// prefix: a second `PUT If-None-Match: *` and a `PUT If-Match` with a wrong ETag must
/// both be refused (412, or 409) and leave the first content. A store that does not is
/// refused, naming what it did: on it, compare-and-swap of refs would be last-writer-wins.
pub fn probe(client: &Client, loc: &Location) -> Result<()> {
    let key = loc.key(&format!("{}{}", layout::PROBE, lease::unique_writer_name()));
    let refuse = |what: &str| {
        Error::remote(crate::error::RemoteFailure::NotThatServer, format!(
            "{} at {} does not honour conditional writes ({what}); remotelog refuses such a store, on which two writers could both win a compare-and-swap of a ref (last writer wins); use a store that implements If-Match and If-None-Match (AWS S3, SeaweedFS 4.48 or later, MinIO)",
            loc.display(),
            client.endpoint()
        ))
    };
    let put = |body: &[u8], cond: &Cond| -> Result<u16> {
        let a = client.put(&key, body, cond)?;
        if !matches!(a.status, 200 | 409 | 412) {
            return Err(client.refused(&format!("PUT {}", client.url_of(&key)), &a));
        }
        Ok(a.status)
    };
    let result = (|| {
        if put(b"first", &Cond::Absent)? != 200 {
            return Err(refuse(
                "a first PUT If-None-Match: * of a new key was refused",
            ));
        }
        if put(b"second", &Cond::Absent)? == 200 {
            return Err(refuse(
                "a second PUT If-None-Match: * of one key got 200 instead of 412",
            ));
        }
        let wrong = format!("\"{}\"", "0".repeat(32));
        if put(b"third", &Cond::Match(wrong))? == 200 {
            return Err(refuse(
                "a PUT If-Match with a wrong ETag got 200 instead of 412",
            ));
        }
        let kept = client.get(&key, 64)?.map(|a| a.body);
        if kept.as_deref() != Some(&b"first"[..]) {
            return Err(refuse(
                "a conditional PUT that was refused replaced the content anyway",
            ));
        }
        Ok(())
    })();
    let _ = client.remove(&key);
    result
}

/// Stores this process has probed already (by endpoint and location).
fn probed() -> std::sync::MutexGuard<'static, HashSet<String>> {
    static PROBED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    PROBED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// [`probe`], once per store and process.
pub fn probe_once(client: &Client, loc: &Location) -> Result<()> {
    let id = format!("{} {}", client.endpoint(), loc.display());
    if probed().contains(&id) {
        return Ok(());
    }
    probe(client, loc)?;
    probed().insert(id);
    Ok(())
}

/// Opens the remote at `location` (`s3://BUCKET/PREFIX[?endpoint=…&region=…]`) with
/// credentials from the usual places ([`config_for`]). `write`: the caller will write
/// (push, gc): the store's preconditions are probed first, and a store is created there
/// if there is none.
pub fn open(location: &str, write: bool) -> Result<S3Backend> {
    let loc = Location::parse(location)?;
    let client = Client::new(config_for(&loc)?, &loc.bucket)?;
    if write {
        probe_once(&client, &loc)?;
    }
    S3Backend::open(client, loc, write)
}

/// Opens the existing store at `location` for upkeep (`gc`, `repack`): its preconditions
/// probed as for a writer, but no store is made where there is none (as for a directory,
/// a mistyped prefix must fail, not become an empty store).
pub fn open_for_upkeep(location: &str) -> Result<S3Backend> {
    let loc = Location::parse(location)?;
    let client = Client::new(config_for(&loc)?, &loc.bucket)?;
    probe_once(&client, &loc)?;
    S3Backend::open(client, loc, false)
}

/// Checks a location for `remote add`: parsed, its store reached with the credentials at
/// hand and its preconditions probed. Returns the canonical form to record (never a
/// secret).
pub fn check_new_remote(location: &str) -> Result<String> {
    let loc = Location::parse(location)?;
    let client = Client::new(config_for(&loc)?, &loc.bucket)?;
    probe_once(&client, &loc)?;
    Ok(loc.render())
}
