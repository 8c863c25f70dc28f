//! 32-byte ids: object ids (BLAKE3-256, "H2") and native message ids (SHA-256, "H1").

use std::fmt;
use std::str::FromStr;

/// A 32-byte hash printed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The BLAKE3-256 of `bytes`: the id of an object whose encoding is `bytes`.
    pub fn of(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// Builds an id from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        bytes.try_into().ok().map(Id)
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdError(pub String);

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseIdError {}

impl FromStr for Id {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        if s.len() != 64 || !is_lower_hex(s) {
            return Err(ParseIdError(format!(
                "{s:?} is not an id (64 lowercase hex digits)"
            )));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| ParseIdError(e.to_string()))?;
        Ok(Id(out))
    }
}

/// True when `s` is non-empty and only lowercase hex digits.
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let id = Id::of(b"abc");
        assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        assert!("ABC".parse::<Id>().is_err());
        assert!(id.to_hex().to_uppercase().parse::<Id>().is_err());
        assert!(id.to_hex()[..63].parse::<Id>().is_err());
    }
}
