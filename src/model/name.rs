//! Names of logs and refs, validated so that a name can never escape the store
//! (format/store-v1.md, section 4.1).

use std::fmt;

use crate::error::{Error, Result};

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// Checks a log (or remote) name: `/`-separated segments of `[A-Za-z0-9._-]`, none empty,
/// none starting with `.`, none ending in `.lock`.
pub fn validate(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 200 bytes");
    }
    if name.starts_with('/') {
        return bad("absolute paths are not names");
    }
    for seg in name.split('/') {
        if seg.is_empty() {
            return bad("empty segment (`//` or a trailing `/`)");
        }
        if seg.len() > MAX_SEGMENT_LEN {
            return bad("a segment is longer than 64 bytes");
        }
        if seg.starts_with('.') {
            return bad("a segment starts with `.` (`..`, `.` and hidden names are not allowed)");
        }
        if seg.ends_with(".lock") {
            return bad("a segment ends with `.lock`");
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return bad(&format!(
                "character {c:?} is not allowed (use A-Z a-z 0-9 . _ - and / between segments)"
            ));
        }
    }
    Ok(())
}

/// A ref's path below `refs/`, e.g. `logs/main`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName(String);

// The ref namespaces, all of them (format/store-v1.md section 4): every use of a
// namespace names one of these.

/// The folder below `refs/` holding the heads of logs.
pub const LOGS: &str = "logs";

/// The folder below `refs/` holding names written through the 3/REMOTE-LOG NS service.
pub const SPEC: &str = "spec";

/// The folder below `refs/` holding tracking refs: `remotes/<remote>/<log>`.
pub const REMOTES: &str = "remotes";

/// The folder below `refs/` holding what `import-spec` last imported into each log.
pub const IMPORTS: &str = "imports";

/// The ref naming the newest pack of the store's pack chain.
pub const PACKS: &str = "packs";

/// [`PACKS`] as a ref name.
pub fn packs_ref() -> RefName {
    RefName::parse(PACKS).unwrap_or_else(|_| unreachable!("\"packs\" is a valid name"))
}

impl RefName {
    /// The head ref of log `name`, after validating the name.
    pub fn log(name: &str) -> Result<RefName> {
        validate(name)?;
        Ok(RefName(format!("{LOGS}/{name}")))
    }

    /// A ref below `refs/` given as a full path (`logs/main`), validated.
    pub fn parse(path: &str) -> Result<RefName> {
        validate(path)?;
        Ok(RefName(path.to_string()))
    }

    /// The path below `refs/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The log name, when this is a log head.
    pub fn log_name(&self) -> Option<&str> {
        self.0.strip_prefix(LOGS)?.strip_prefix('/')
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_nested_names() {
        for ok in ["main", "team/chat", "a.b_c-d", "x/y/z", "v1.2"] {
            validate(ok).unwrap();
        }
    }

    #[test]
    fn refuses_escapes_and_oddities() {
        for bad in [
            "", "..", "../x", "a/../b", "/abs", "a//b", "a/", ".hidden", "a/.b", "x.lock",
            "sp ace", "nul\0", "ü", "a\\b",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate(&"a".repeat(65)).is_err());
        assert!(validate(&["a"; 101].join("/")).is_err());
    }

    #[test]
    fn log_ref_round_trip() {
        let r = RefName::log("team/chat").unwrap();
        assert_eq!(r.as_str(), "logs/team/chat");
        assert_eq!(r.log_name(), Some("team/chat"));
    }
}
