//! Object decoding (`src/model/object.rs`): messages and pages, strict canonical CBOR.

use remotelog::model::object::{self, Kind, Object};

pub fn run(data: &[u8]) {
    match Object::decode(data) {
        Ok(obj) => {
            // One encoding per object: what decodes encodes back to the very same bytes.
            assert_eq!(obj.encode(), data, "decode → encode changed the bytes");
            assert_eq!(object::peek_kind(data), Some(obj.kind()));
            match &obj {
                Object::Message(m) => {
                    assert_eq!(object::encode_message(m), data);
                    assert_eq!(object::decode_message(data).as_ref(), Ok(m));
                    assert!(object::decode_page(data).is_err());
                    let _ = m.h1();
                }
                Object::Page(p) => {
                    assert!(!p.entries.is_empty(), "a page without entries decoded");
                    assert!(p.count >= p.entries.len() as u64);
                    assert_eq!(object::decode_page(data).as_ref(), Ok(p));
                    assert!(object::decode_message(data).is_err());
                    // What a reader does next with an embedded message.
                    for e in &p.entries {
                        if let Some(bytes) = &e.embedded {
                            run_nested(bytes);
                        }
                    }
                }
            }
        }
        Err(e) => {
            super::assert_one_line("object decode", &e);
            assert!(object::decode_message(data).is_err());
            assert!(object::decode_page(data).is_err());
        }
    }
    for want in [Kind::Message, Kind::Page] {
        if let Err(e) = Object::decode_as(data, want) {
            super::assert_one_line("object decode_as", &e);
        }
    }
}

/// An embedded message: decoding must not panic, and what decodes is canonical.
fn run_nested(bytes: &[u8]) {
    if let Ok(m) = object::decode_message(bytes) {
        assert_eq!(object::encode_message(&m), bytes);
    }
}
