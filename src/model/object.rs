//! Typed objects and their deterministic CBOR encoding (format/store-v1.md, section 3).
//!
//! Decoding is strict: after decoding, the object is encoded again and must give back the
//! very same bytes, so every object has exactly one encoding and therefore one id.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use sha2::{Digest, Sha256};

use crate::error::{DecodeError, Format};
use crate::id::Id;

/// The object format version written by this code.
pub const OBJECT_VERSION: u64 = 1;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An MVDS message.
    Message = 1,
    /// A mapping page of a log.
    Page = 2,
}

impl Kind {
    /// The kind's name as users see it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Page => "page",
        }
    }
}

/// An MVDS message: `{group_id, timestamp, body}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The group (channel) the message belongs to.
    pub group_id: Vec<u8>,
    /// The sender's timestamp.
    pub timestamp: i64,
    /// The payload.
    pub body: Vec<u8>,
}

impl Message {
    /// H1, the native MVDS id: SHA-256("MESSAGE_ID" ‖ group_id ‖ le64(timestamp) ‖ body).
    pub fn h1(&self) -> Id {
        let mut h = Sha256::new();
        h.update(b"MESSAGE_ID");
        h.update(&self.group_id);
        h.update(self.timestamp.to_le_bytes());
        h.update(&self.body);
        Id(h.finalize().into())
    }
}

/// One (H1, H2) pair of a mapping page, maybe with the message object embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The message's native id.
    pub h1: Id,
    /// The message object's id.
    pub h2: Id,
    /// The encoded message object, when embedded.
    pub embedded: Option<Vec<u8>>,
}

/// A mapping page: entries newest first and the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The previous (older) page; `None` on the oldest.
    pub prev: Option<Id>,
    /// Entries in the log up to and including this page.
    pub count: u64,
    /// The log's page capacity when written (0 = unbounded).
    pub capacity: u64,
    /// The log's embed-newest-K setting when written.
    pub embed: u64,
    /// Newest first, never empty.
    pub entries: Vec<Entry>,
}

/// A decoded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// See [`Message`].
    Message(Message),
    /// See [`Page`].
    Page(Page),
}

impl Object {
    /// The kind of this object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Message(_) => Kind::Message,
            Object::Page(_) => Kind::Page,
        }
    }

    /// The deterministic CBOR encoding; its BLAKE3 is the object's id.
    pub fn encode(&self) -> Vec<u8> {
        if let Object::Message(m) = self {
            return encode_message(m);
        }
        let mut e = Encoder::new(Vec::new());
        let done: Result<(), minicbor::encode::Error<std::convert::Infallible>> = (|| {
            match self {
                Object::Message(m) => {
                    e.array(5)?.u64(OBJECT_VERSION)?.u64(Kind::Message as u64)?;
                    e.bytes(&m.group_id)?.i64(m.timestamp)?.bytes(&m.body)?;
                }
                Object::Page(p) => {
                    e.array(7)?.u64(OBJECT_VERSION)?.u64(Kind::Page as u64)?;
                    match &p.prev {
                        Some(prev) => e.bytes(&prev.0)?,
                        None => e.null()?,
                    };
                    e.u64(p.count)?.u64(p.capacity)?.u64(p.embed)?;
                    e.array(p.entries.len() as u64)?;
                    for entry in &p.entries {
                        let n = if entry.embedded.is_some() { 3 } else { 2 };
                        e.array(n)?.bytes(&entry.h1.0)?.bytes(&entry.h2.0)?;
                        if let Some(obj) = &entry.embedded {
                            e.bytes(obj)?;
                        }
                    }
                }
            }
            Ok(())
        })();
        // Writing into a Vec cannot fail.
        if let Err(never) = done {
            unreachable!("CBOR encoding into memory failed: {never}")
        }
        e.into_writer()
    }

    /// Decodes `bytes`, rejecting anything that is not the one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Object, DecodeError> {
        let obj =
            decode_loose(bytes).map_err(|e| DecodeError::new(Format::Object, e.to_string()))?;
        if obj.encode() != bytes {
            return Err(DecodeError::new(
                Format::Object,
                "not in canonical encoding (or trailing bytes)",
            ));
        }
        Ok(obj)
    }

    /// Decodes `bytes` and requires the given kind.
    pub fn decode_as(bytes: &[u8], want: Kind) -> Result<Object, DecodeError> {
        let obj = Object::decode(bytes)?;
        if obj.kind() != want {
            return Err(DecodeError::new(
                Format::Object,
                format!("it is a {}, expected a {}", obj.kind().name(), want.name()),
            ));
        }
        Ok(obj)
    }
}

/// The encoding of a message object, from a borrowed message (no copy of the body
/// beyond the output itself).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(m.body.len() + m.group_id.len() + 24));
    let done: Result<(), minicbor::encode::Error<std::convert::Infallible>> = (|| {
        e.array(5)?.u64(OBJECT_VERSION)?.u64(Kind::Message as u64)?;
        e.bytes(&m.group_id)?.i64(m.timestamp)?.bytes(&m.body)?;
        Ok(())
    })();
    if let Err(never) = done {
        unreachable!("CBOR encoding into memory failed: {never}")
    }
    e.into_writer()
}

/// The kind of an encoded object from its first bytes, without decoding it
/// (`[version, kind, ...]` with both small integers: bytes 1 and 2).
pub fn peek_kind(bytes: &[u8]) -> Option<Kind> {
    match bytes.get(..3)? {
        [_, 0x01, 0x01] => Some(Kind::Message),
        [_, 0x01, 0x02] => Some(Kind::Page),
        _ => None,
    }
}

/// Decodes a message object.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    match Object::decode_as(bytes, Kind::Message)? {
        Object::Message(m) => Ok(m),
        Object::Page(_) => unreachable!("decode_as checked the kind"),
    }
}

/// Decodes a page object.
pub fn decode_page(bytes: &[u8]) -> Result<Page, DecodeError> {
    match Object::decode_as(bytes, Kind::Page)? {
        Object::Page(p) => Ok(p),
        Object::Message(_) => unreachable!("decode_as checked the kind"),
    }
}

fn decode_loose(bytes: &[u8]) -> Result<Object, CborError> {
    let mut d = Decoder::new(bytes);
    let len = definite(d.array()?)?;
    let version = d.u64()?;
    if version != OBJECT_VERSION {
        return Err(CborError::Msg(format!(
            "object format version {version} is not supported (this remotelog reads version {OBJECT_VERSION}); upgrade remotelog"
        )));
    }
    let kind = d.u64()?;
    let obj = match (kind, len) {
        (1, 5) => {
            let group_id = d.bytes()?.to_vec();
            let timestamp = d.i64()?;
            let body = d.bytes()?.to_vec();
            Object::Message(Message {
                group_id,
                timestamp,
                body,
            })
        }
        (2, 7) => {
            let prev = if d.datatype()? == Type::Null {
                d.null()?;
                None
            } else {
                Some(id32(d.bytes()?, "prev")?)
            };
            let count = d.u64()?;
            let capacity = d.u64()?;
            let embed = d.u64()?;
            let n = definite(d.array()?)?;
            if n == 0 {
                return Err(CborError::Msg("page has no entries".into()));
            }
            // Each entry takes at least 67 bytes; a bigger claim is a lie, not an allocation.
            if n > (bytes.len() as u64) / 67 + 1 {
                return Err(CborError::Msg(format!(
                    "page claims {n} entries in {} bytes",
                    bytes.len()
                )));
            }
            let mut entries = Vec::with_capacity(n as usize);
            for i in 0..n {
                let m = definite(d.array()?)?;
                if m != 2 && m != 3 {
                    return Err(CborError::Msg(format!(
                        "entry {i} has {m} items, expected 2 or 3"
                    )));
                }
                let h1 = id32(d.bytes()?, "h1")?;
                let h2 = id32(d.bytes()?, "h2")?;
                let embedded = if m == 3 {
                    Some(d.bytes()?.to_vec())
                } else {
                    None
                };
                entries.push(Entry { h1, h2, embedded });
            }
            if count < entries.len() as u64 {
                return Err(CborError::Msg(format!(
                    "page count {count} is smaller than its {} entries",
                    entries.len()
                )));
            }
            Object::Page(Page {
                prev,
                count,
                capacity,
                embed,
                entries,
            })
        }
        (1 | 2, n) => return Err(CborError::Msg(format!("kind {kind} object has {n} fields"))),
        (k, _) => {
            return Err(CborError::Msg(format!(
                "unknown object kind {k} (written by a newer remotelog?)"
            )))
        }
    };
    Ok(obj)
}

#[derive(Debug)]
enum CborError {
    Cbor(minicbor::decode::Error),
    Msg(String),
}

impl std::fmt::Display for CborError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CborError::Cbor(e) => write!(f, "bad CBOR: {e}"),
            CborError::Msg(m) => f.write_str(m),
        }
    }
}

impl From<minicbor::decode::Error> for CborError {
    fn from(e: minicbor::decode::Error) -> Self {
        CborError::Cbor(e)
    }
}

fn definite(len: Option<u64>) -> Result<u64, CborError> {
    len.ok_or_else(|| CborError::Msg("indefinite-length array".into()))
}

fn id32(b: &[u8], what: &str) -> Result<Id, CborError> {
    Id::from_slice(b)
        .ok_or_else(|| CborError::Msg(format!("{what} is {} bytes, expected 32", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h1_matches_the_formula() {
        let m = Message {
            group_id: b"g".to_vec(),
            timestamp: 1,
            body: b"hi".to_vec(),
        };
        let mut input = b"MESSAGE_ID".to_vec();
        input.extend_from_slice(b"g");
        input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        input.extend_from_slice(b"hi");
        assert_eq!(m.h1().0, <[u8; 32]>::from(Sha256::digest(&input)));
    }

    #[test]
    fn message_encoding_is_the_documented_array() {
        let m = Object::Message(Message {
            group_id: vec![0xaa],
            timestamp: -1,
            body: vec![],
        });
        // [1, 1, h'aa', -1, h'']
        assert_eq!(m.encode(), vec![0x85, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40]);
    }

    #[test]
    fn rejects_non_canonical_and_trailing_bytes() {
        // 1 encoded as a one-byte-length uint (0x18 0x01) is not the shortest form.
        assert!(Object::decode(&[0x85, 0x18, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40]).is_err());
        assert!(Object::decode(&[0x85, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40, 0x00]).is_err());
        assert!(Object::decode(&[0x85, 0x01, 0x01, 0x41, 0xaa, 0x20, 0x40]).is_ok());
    }

    #[test]
    fn rejects_unknown_kind_and_version() {
        let e = Object::decode(&[0x83, 0x01, 0x09, 0x00]).unwrap_err();
        assert!(e.reason.contains("unknown object kind 9"), "{e}");
        let e = Object::decode(&[0x85, 0x02, 0x01, 0x41, 0xaa, 0x20, 0x40]).unwrap_err();
        assert!(e.reason.contains("version 2"), "{e}");
    }

    #[test]
    fn huge_entry_count_is_refused_without_allocating() {
        // [1, 2, null, 5, 0, 0, array(2^32-1 entries)]
        let bytes = [
            0x87, 0x01, 0x02, 0xf6, 0x05, 0x00, 0x00, 0x9a, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(Object::decode(&bytes)
            .unwrap_err()
            .reason
            .contains("claims"));
    }
}
