//! Profiles: how a real CAS and NS behave, as numbers (format: `docs/profiles/example.toml`).
//!
//! A profile is TOML. The built-in ones live in `src/mock/profiles/*.toml`, each with the
//! source of every figure next to it; a user's file may start from one of them with
//! `inherit = "NAME"` and change only what differs.

use serde::Deserialize;

use crate::error::{DecodeError, Error, Format, Result};
use crate::mock::dist::Dist;
use crate::mock::schedule::Schedule;

/// The built-in profiles, by name, as TOML.
pub const BUILTIN: &[(&str, &str)] = &[
    ("ideal", include_str!("profiles/ideal.toml")),
    ("ipfs", include_str!("profiles/ipfs.toml")),
    ("ipns", include_str!("profiles/ipns.toml")),
    ("swarm", include_str!("profiles/swarm.toml")),
    ("ens", include_str!("profiles/ens.toml")),
    ("s3", include_str!("profiles/s3.toml")),
    ("waku", include_str!("profiles/waku.toml")),
    ("lossy", include_str!("profiles/lossy.toml")),
];

/// Largest profile file read.
const MAX_FILE: u64 = 1 << 20;
/// Deepest chain of `inherit`.
const MAX_INHERIT: usize = 8;

/// How a remote behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its name, as tables show it.
    pub name: String,
    /// One line on what it models.
    #[serde(default)]
    pub description: String,
    /// Where the figures come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// When the service answers at all (`always`, `onoff:ON,OFF`, `bernoulli:P,EPOCH`).
    #[serde(default = "always", deserialize_with = "schedule")]
    pub availability: Schedule,
    /// Seconds a client waits before it learns that the service is unreachable.
    #[serde(default)]
    pub unavailable_after: f64,
    /// What a client sees then.
    #[serde(default = "unreachable_text")]
    pub unavailable_error: String,
    /// The content-addressed store.
    pub cas: Cas,
    /// The name system.
    pub ns: Ns,
    /// Rate limits per second (none by default).
    #[serde(default)]
    pub limits: Limits,
    /// What operations cost the one who makes them.
    #[serde(default)]
    pub cost: Cost,
}

/// One kind of request: how long it takes and how it fails.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// Seconds from request to answer.
    #[serde(default)]
    pub latency: Dist,
    /// A request that would take longer fails with a timeout after this many seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Probability that a request fails outright.
    #[serde(default)]
    pub failure: f64,
    /// What a client sees when it does.
    #[serde(default = "failure_text")]
    pub error: String,
}

/// The CAS side of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cas {
    /// The service's name in messages.
    #[serde(default = "cas_name")]
    pub service: String,
    /// Storing one object (or chunk, with `chunk`).
    #[serde(default)]
    pub put: Op,
    /// Fetching one object (or chunk).
    #[serde(default)]
    pub get: Op,
    /// Seconds after a put completes until readers other than the writer find the object.
    #[serde(default)]
    pub visibility: Dist,
    /// Seconds until a client learns an object is not there; default: the get's latency.
    /// Services with no "not found" answer (IPFS) make the client wait for its timeout.
    #[serde(default)]
    pub miss_latency: Option<f64>,
    /// Objects larger than this many bytes are refused.
    #[serde(default)]
    pub max_object: Option<u64>,
    /// Objects travel as chunks of this many bytes (plus the chunk tree's inner chunks),
    /// one round trip each; 0 = whole objects.
    #[serde(default)]
    pub chunk: u64,
    /// Chunk round trips in flight at once.
    #[serde(default = "one")]
    pub chunk_parallel: u32,
    /// The service takes many objects in one request (a remotelog pack upload), so the
    /// objects of one `put_objects` call make one round trip.
    #[serde(default)]
    pub batch: bool,
    /// Seconds after its last (re)publication that content is no longer found.
    #[serde(default)]
    pub expiry: Option<f64>,
    /// How often the writer republishes its content while online, seconds.
    #[serde(default)]
    pub republish: Option<f64>,
    /// Garbage collection of unreferenced content.
    #[serde(default)]
    pub gc: Option<Gc>,
}

/// Garbage collection: every `interval` seconds, content that no name's current value
/// reaches and that was stored more than `grace` seconds ago disappears, unless its writer
/// stored it after its own last successful NS update (a writer pins what it adds until an
/// update has made it reachable: what the update leaves out, such as a replaced head
/// page, is unpinned).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gc {
    /// Seconds between collections.
    pub interval: f64,
    /// Content younger than this survives (it is pinned while a push is under way).
    #[serde(default)]
    pub grace: f64,
}

/// What an NS record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Record {
    /// The head page's id (32 bytes): remotelog's own NS, S3 keys, ENS contenthash.
    Id,
    /// The head page itself, as 3/REMOTE-LOG puts a `RemoteLog` in the record: a fetch
    /// answers the page (no CAS get for it) and its size counts against `max_record`.
    HeadPage,
}

/// How concurrent updates of one name resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantics {
    /// Strict compare-and-swap: an update stating another old value is refused.
    Cas,
    /// No compare-and-swap: the record with the highest sequence number wins (IPNS).
    HighestSeq,
    /// No compare-and-swap: the last update wins.
    Lww,
}

/// The NS side of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ns {
    /// The service's name in messages.
    #[serde(default = "ns_name")]
    pub service: String,
    /// Publishing a new value.
    #[serde(default)]
    pub update: Op,
    /// Resolving a name.
    #[serde(default)]
    pub fetch: Op,
    /// Seconds after an update completes until readers other than the writer see it.
    #[serde(default)]
    pub propagation: Dist,
    /// Seconds a reader keeps answering a name from its cache after fetching it.
    #[serde(default)]
    pub stale_ttl: f64,
    /// What the record holds.
    #[serde(default = "record_id")]
    pub record: Record,
    /// Records larger than this many bytes are refused.
    #[serde(default)]
    pub max_record: Option<u64>,
    /// Seconds after its last (re)publication that a record is no longer resolved.
    #[serde(default)]
    pub expiry: Option<f64>,
    /// How often the writer republishes its record while online, seconds.
    #[serde(default)]
    pub republish: Option<f64>,
    /// Update semantics.
    #[serde(default = "cas_semantics")]
    pub semantics: Semantics,
}

/// Requests per second per kind beyond which the service answers `answer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CAS puts per second.
    #[serde(default)]
    pub cas_put: Option<u32>,
    /// CAS gets per second.
    #[serde(default)]
    pub cas_get: Option<u32>,
    /// NS updates per second.
    #[serde(default)]
    pub ns_update: Option<u32>,
    /// NS fetches per second.
    #[serde(default)]
    pub ns_fetch: Option<u32>,
    /// What a client over the limit sees.
    #[serde(default = "slow_down")]
    pub answer: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cas_put: None,
            cas_get: None,
            ns_update: None,
            ns_fetch: None,
            answer: slow_down(),
        }
    }
}

/// Cost per request, in `unit`, counted for whoever makes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// The unit (`tx`, `USD`); empty when nothing costs.
    #[serde(default)]
    pub unit: String,
    /// Per NS update.
    #[serde(default)]
    pub ns_update: f64,
    /// Per NS fetch.
    #[serde(default)]
    pub ns_fetch: f64,
    /// Per CAS put (per chunk where chunked).
    #[serde(default)]
    pub cas_put: f64,
    /// Per CAS get (per chunk where chunked).
    #[serde(default)]
    pub cas_get: f64,
}

fn always() -> Schedule {
    Schedule::Always
}
fn one() -> u32 {
    1
}
fn record_id() -> Record {
    Record::Id
}
fn cas_semantics() -> Semantics {
    Semantics::Cas
}
fn cas_name() -> String {
    "CAS".into()
}
fn ns_name() -> String {
    "NS".into()
}
fn slow_down() -> String {
    "503 Slow Down".into()
}
fn failure_text() -> String {
    "request failed".into()
}
fn unreachable_text() -> String {
    "connection refused".into()
}

fn schedule<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Schedule, D::Error> {
    let text = String::deserialize(d)?;
    Schedule::parse(&text).map_err(serde::de::Error::custom)
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Dist, D::Error> {
        let v = toml::Value::deserialize(d)?;
        Dist::from_toml(&v, "distribution").map_err(serde::de::Error::custom)
    }
}

impl Profile {
    /// A built-in profile, or a TOML file when `spec` names no built-in one.
    pub fn load(spec: &str) -> Result<Profile> {
        if BUILTIN.iter().any(|(n, _)| *n == spec) {
            return Profile::builtin(spec);
        }
        let path = std::path::Path::new(spec);
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "no profile {spec:?}: give a built-in one ({}) or a TOML file (see docs/profiles/example.toml)",
                names().join(", ")
            )));
        }
        use crate::error::IoContext;
        let len = std::fs::metadata(path).at(path)?.len();
        if len > MAX_FILE {
            return Err(Error::Invalid(format!(
                "{}: a profile of {len} bytes is too large (at most 1 MiB)",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).at(path)?;
        Profile::from_toml(&text).map_err(|source| Error::Decode {
            what: path.display().to_string(),
            source,
        })
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile> {
        let text = builtin_text(name)?;
        Profile::from_toml(text).map_err(|source| Error::Decode {
            what: format!("built-in profile {name}"),
            source,
        })
    }

    /// Parses a profile, following `inherit` through the built-in profiles.
    pub fn from_toml(text: &str) -> std::result::Result<Profile, DecodeError> {
        let table = merged(text, 0)?;
        let profile: Profile = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e))?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks the numbers a TOML parser cannot.
    pub fn validate(&self) -> std::result::Result<(), DecodeError> {
        let bad = |reason: String| DecodeError::new(Format::Profile, reason);
        let ops = [
            ("cas.put", &self.cas.put),
            ("cas.get", &self.cas.get),
            ("ns.update", &self.ns.update),
            ("ns.fetch", &self.ns.fetch),
        ];
        for (what, op) in ops {
            if !(0.0..=1.0).contains(&op.failure) {
                return Err(bad(format!("{what}.failure must be between 0 and 1")));
            }
            if op.timeout.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
                return Err(bad(format!(
                    "{what}.timeout must be a number of seconds above 0"
                )));
            }
        }
        let positive = [
            ("cas.expiry", self.cas.expiry),
            ("cas.republish", self.cas.republish),
            ("ns.expiry", self.ns.expiry),
            ("ns.republish", self.ns.republish),
            ("cas.gc.interval", self.cas.gc.as_ref().map(|g| g.interval)),
            (
                "cas.miss_latency",
                self.cas.miss_latency.filter(|x| *x != 0.0),
            ),
        ];
        for (what, v) in positive {
            if v.is_some_and(|x| !(x.is_finite() && x > 0.0)) {
                return Err(bad(format!("{what} must be a number of seconds above 0")));
            }
        }
        let nonneg = [
            ("unavailable_after", self.unavailable_after),
            ("ns.stale_ttl", self.ns.stale_ttl),
            (
                "cas.gc.grace",
                self.cas.gc.as_ref().map_or(0.0, |g| g.grace),
            ),
        ];
        for (what, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(format!("{what} must be 0 or more seconds")));
            }
        }
        if self.cas.chunk != 0 && self.cas.chunk < 64 {
            return Err(bad(
                "cas.chunk must be 0 (whole objects) or at least 64 bytes".into(),
            ));
        }
        if self.cas.chunk_parallel == 0 {
            return Err(bad("cas.chunk_parallel must be at least 1".into()));
        }
        if self.name.is_empty() || self.name.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(bad("name must be one word (no spaces or commas)".into()));
        }
        Ok(())
    }

    /// How many (H1, H2) entries without embedded messages fit in one record, when the
    /// record holds the head page and has a size limit.
    pub fn entries_per_record(&self) -> Option<u64> {
        match (self.ns.record, self.ns.max_record) {
            (Record::HeadPage, Some(max)) => Some(max.saturating_sub(PAGE_OVERHEAD) / ENTRY_BYTES),
            _ => None,
        }
    }
}

/// Bytes of a page entry without an embedded message: a 2-item array and two 32-byte
/// strings with their headers (format/store-v1.md section 3.2).
pub const ENTRY_BYTES: u64 = 1 + 2 * (2 + 32);
/// Bytes of a page around its entries at most: array header, version, kind, prev (34),
/// count, capacity and embed (9 each at most) and the entries' array header (9).
pub const PAGE_OVERHEAD: u64 = 1 + 1 + 1 + 34 + 9 + 9 + 9 + 9;

/// The names of the built-in profiles.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

fn builtin_text(name: &str) -> Result<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no built-in profile {name:?}; the built-in ones are {}",
                names().join(", ")
            ))
        })
}

/// A TOML error as a profile's decode error, on one line.
fn bad(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(Format::Profile, e.to_string().trim().replace('\n', " "))
}

/// Parses `text` and lays it over the profile it inherits from, if any.
fn merged(text: &str, depth: usize) -> std::result::Result<toml::Table, DecodeError> {
    let mut table: toml::Table = toml::from_str(text).map_err(bad)?;
    let Some(parent) = table.remove("inherit") else {
        return Ok(table);
    };
    let parent = parent
        .as_str()
        .ok_or_else(|| bad("inherit must be the name of a built-in profile"))?
        .to_string();
    if depth >= MAX_INHERIT {
        return Err(bad(format!(
            "inherit goes deeper than {MAX_INHERIT} profiles"
        )));
    }
    let base_text = builtin_text(&parent).map_err(bad)?;
    let mut base = merged(base_text, depth + 1)?;
    // The child's figures come on top of the parent's: both lists of sources hold.
    let mut sources = Vec::new();
    for s in [base.remove("sources"), table.remove("sources")]
        .into_iter()
        .flatten()
    {
        if let toml::Value::Array(a) = s {
            sources.extend(a);
        }
    }
    base.remove("description");
    overlay(&mut base, table);
    if !sources.is_empty() {
        base.insert("sources".into(), toml::Value::Array(sources));
    }
    Ok(base)
}

/// Deep-merges `top` into `base`: tables merge key by key, anything else replaces.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) if !is_dist(b) => overlay(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A quantile table replaces another whole; merging p50 of one into p90 of another would
/// make a distribution neither source gave.
fn is_dist(t: &toml::Table) -> bool {
    t.keys()
        .any(|k| k.starts_with('p') && k[1..].parse::<f64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_names_itself() {
        for (name, _) in BUILTIN {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn inherit_overrides_only_what_it_says() {
        let p =
            Profile::from_toml("inherit = \"ipns\"\nname = \"ipns5m\"\n[ns]\nstale_ttl = 300\n")
                .unwrap();
        let base = Profile::builtin("ipns").unwrap();
        assert_eq!(p.ns.stale_ttl, 300.0);
        assert_eq!(p.ns.max_record, base.ns.max_record);
        assert_eq!(p.ns.fetch.latency, base.ns.fetch.latency);
        assert_eq!(p.cas.visibility, base.cas.visibility);
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        let e = Profile::from_toml("name = \"x\"\n[cas]\nput = { latency = { p50 = 1 } }\n[ns]\n")
            .unwrap_err();
        assert!(e.reason.contains("at least two quantiles"), "{e}");
        let e = Profile::from_toml("name = \"x\"\nspeed = 3\n[cas]\n[ns]\n").unwrap_err();
        assert!(e.reason.contains("speed"), "{e}");
        let e = Profile::from_toml("inherit = \"nope\"\n").unwrap_err();
        assert!(e.reason.contains("no built-in profile"), "{e}");
        let e =
            Profile::from_toml("name = \"x\"\n[cas]\nget = { failure = 2 }\n[ns]\n").unwrap_err();
        assert!(e.reason.contains("cas.get.failure"), "{e}");
        assert_eq!(e.format, Format::Profile);
    }

    #[test]
    fn a_bad_profile_file_is_a_decode_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "inherit = \"s3\"\nname = \"x\"\n[cas]\nchunk = 3\n").unwrap();
        let e = Profile::load(path.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Decode { what, source: DecodeError { format: Format::Profile, .. } }
                    if *what == path.display().to_string()
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cas.chunk must be 0 (whole objects) or at least 64 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn ipns_record_holds_about_146_pairs() {
        let n = Profile::builtin("ipns")
            .unwrap()
            .entries_per_record()
            .unwrap();
        assert!((140..=148).contains(&n), "{n}");
    }
}
