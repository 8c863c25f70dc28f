//! The Twirp request decoding (`src/net/twirp.rs`): the route, the `Content-Type`, and the
//! four request messages in protobuf and in proto3 JSON.
//!
//! The first byte picks the message (bits 0-1: `vac.cas.Content`, `vac.cas.Address`,
//! `vac.ns.NameUpdate`, `vac.ns.Query`) and the content type (bits 2-3: protobuf,
//! `application/x-protobuf`, JSON, or the next line of the input as the header); the rest
//! is the body. The body is also tried as a route.

use std::fmt::Debug;

use remotelog::net::twirp::{fuzz_entry, Code};
use remotelog::spec::proto::vac::{cas, ns};

pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if let Ok(path) = std::str::from_utf8(rest) {
        let _ = fuzz_entry::route(path);
    }
    let (content_type, body): (&[u8], &[u8]) = match (pick >> 2) & 3 {
        0 => (b"application/protobuf", rest),
        1 => (b"application/x-protobuf; charset=utf-8", rest),
        2 => (b"application/json", rest),
        _ => match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[..0]),
        },
    };
    match pick & 3 {
        0 => decode::<cas::Content>(content_type, body),
        1 => decode::<cas::Address>(content_type, body),
        2 => decode::<ns::NameUpdate>(content_type, body),
        _ => decode::<ns::Query>(content_type, body),
    }
}

/// Decodes the body; what decodes encodes (both ways) to something that decodes the same.
fn decode<T>(content_type: &[u8], body: &[u8])
where
    T: prost::Message
        + Default
        + PartialEq
        + Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let Some(answer) = fuzz_entry::decode::<T>(content_type, body) else {
        return;
    };
    match answer {
        Ok(msg) => {
            let proto = fuzz_entry::decode::<T>(b"application/protobuf", &msg.encode_to_vec())
                .expect("a valid content type")
                .expect("re-encoded protobuf decodes");
            assert_eq!(proto, msg, "protobuf round trip changed the request");
            let json = serde_json::to_vec(&msg).expect("a message serializes");
            let back = fuzz_entry::decode::<T>(b"application/json", &json)
                .expect("a valid content type")
                .expect("re-encoded JSON decodes");
            assert_eq!(back, msg, "JSON round trip changed the request");
        }
        Err(e) => {
            assert!(
                matches!(e.code, Code::Malformed | Code::BadRoute),
                "unexpected code {:?} for a body that does not decode",
                e.code
            );
            super::assert_one_line("twirp decode", &e.msg);
        }
    }
}
