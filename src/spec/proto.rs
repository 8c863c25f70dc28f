//! The types generated from `proto/` by `build.rs` (prost, with serde for the proto3 JSON
//! mapping that Twirp's `application/json` bodies use), and the serde helpers of that
//! mapping. A leaf: the Twirp server ([`crate::net::twirp`]) and the spec view and import
//! ([`crate::spec`]) both use these types.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

pub use generated::*;

/// serde helpers implementing the proto3 JSON mapping for the generated types (see
/// `build.rs`, which picks one per field).
pub mod json {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

    /// `bytes`: standard base64 with padding out; standard or URL-safe, padded or not, in.
    pub mod bytes {
        use super::*;

        /// Writes base64.
        pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&STANDARD.encode(v))
        }

        /// Reads base64 (`null` is empty), straight from the request body when the string
        /// has no escapes: a large content is not copied before it is decoded.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct Base64;
            impl<'de> serde::de::Visitor<'de> for Base64 {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a base64 string or null")
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
                    let engine = if s.contains(['-', '_']) {
                        &URL_SAFE
                    } else {
                        &STANDARD
                    };
                    engine
                        .decode(s.as_bytes())
                        .map_err(|e| E::custom(format!("not base64: {e}")))
                }
                fn visit_none<E: serde::de::Error>(self) -> Result<Vec<u8>, E> {
                    Ok(Vec::new())
                }
                fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<u8>, E> {
                    Ok(Vec::new())
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
                    d.deserialize_str(Base64)
                }
            }
            d.deserialize_option(Base64)
        }
    }

    /// `int64`, `sint64`, `sfixed64`: a decimal string out; a string or a number in.
    pub mod int64 {
        use super::*;

        /// Writes a decimal string.
        pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.to_string())
        }

        /// Reads a string or a number (`null` is 0).
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
            match Option::<serde_json::Value>::deserialize(d)? {
                None => Ok(0),
                Some(serde_json::Value::String(s)) => s
                    .parse()
                    .map_err(|e| D::Error::custom(format!("not an int64: {e}"))),
                Some(serde_json::Value::Number(n)) => {
                    n.as_i64().ok_or_else(|| D::Error::custom("not an int64"))
                }
                Some(other) => Err(D::Error::custom(format!("not an int64: {other}"))),
            }
        }
    }

    /// `uint64`, `fixed64`: a decimal string out; a string or a number in.
    pub mod uint64 {
        use super::*;

        /// Writes a decimal string.
        pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.to_string())
        }

        /// Reads a string or a number (`null` is 0).
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            match Option::<serde_json::Value>::deserialize(d)? {
                None => Ok(0),
                Some(serde_json::Value::String(s)) => s
                    .parse()
                    .map_err(|e| D::Error::custom(format!("not a uint64: {e}"))),
                Some(serde_json::Value::Number(n)) => {
                    n.as_u64().ok_or_else(|| D::Error::custom("not a uint64"))
                }
                Some(other) => Err(D::Error::custom(format!("not a uint64: {other}"))),
            }
        }
    }

    /// Everything serde already maps like proto3 JSON; `null` reads as the default.
    pub mod plain {
        use super::*;

        /// Writes the value as serde does.
        pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
            v.serialize(s)
        }

        /// Reads the value, `null` as its default.
        pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
        where
            T: Deserialize<'de> + Default,
            D: Deserializer<'de>,
        {
            Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
        }
    }
}
