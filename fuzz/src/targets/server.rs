//! The server's request decoding (`src/net/server.rs`): ids and ref names from URLs,
//! `If-Match` / `If-None-Match`, `Range`, and the `/cas/present` body.
//!
//! The first byte picks the decoder (its value modulo 5); the rest is its input:
//! 0 an id from the URL, 1 a ref name from the URL, 2 the precondition headers (the next
//! byte's bits 0 and 1 say which are present; the values are split at the first `\n`),
//! 3 a `Range` header (8 bytes of file length, little-endian, then the value), 4 a
//! `/cas/present` body.

use remotelog::model::name;
use remotelog::net::server::fuzz_entry;
use remotelog::net::wire::MAX_PRESENT_IDS;

pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 5 {
        0 => id(rest),
        1 => ref_name(rest),
        2 => preconditions(rest),
        3 => range(rest),
        _ => present(rest),
    }
}

/// 4xx answers only: a decoder never blames the server for a bad request.
fn client_error(what: &str, status: u16, msg: &str, allowed: &[u16]) {
    assert!(
        allowed.contains(&status),
        "{what}: status {status} for {msg:?}"
    );
    super::assert_one_line(what, msg);
}

fn id(rest: &[u8]) {
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match fuzz_entry::id(s) {
        Ok(id) => assert_eq!(id.to_hex(), s),
        Err((status, msg)) => client_error("id", status, &msg, &[400]),
    }
}

fn ref_name(rest: &[u8]) {
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match fuzz_entry::ref_name(s) {
        Ok((r, writable)) => {
            assert_eq!(r.as_str(), s.strip_prefix('/').unwrap_or(s));
            assert!(name::validate(r.as_str()).is_ok());
            if writable {
                let top = r.as_str().split('/').next().unwrap_or_default();
                assert!(top == "logs" || top == "spec", "{r} writable over HTTP");
                assert!(r.as_str().contains('/'));
            }
        }
        Err((status, msg)) => client_error("ref name", status, &msg, &[400]),
    }
}

fn preconditions(rest: &[u8]) {
    let Some((&flags, rest)) = rest.split_first() else {
        return;
    };
    let (a, b) = match rest.iter().position(|&c| c == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[..0]),
    };
    let if_match = (flags & 1 != 0).then_some(a);
    let if_none_match = (flags & 2 != 0).then_some(b);
    let Some(answer) = fuzz_entry::expected(if_match, if_none_match) else {
        return;
    };
    match answer {
        Ok(Some(id)) => {
            let v = if_match.expect("an expected id comes from If-Match");
            assert!(if_none_match.is_none());
            let hex = id.to_hex();
            assert!(
                v.windows(64).any(|w| w == hex.as_bytes()),
                "id not in If-Match"
            );
        }
        Ok(None) => {
            assert!(if_match.is_none());
            let v = if_none_match.expect("`must not exist` comes from If-None-Match");
            assert_eq!(v.trim_ascii(), b"*");
        }
        Err((status, msg)) => client_error("preconditions", status, &msg, &[400, 428]),
    }
}

fn range(rest: &[u8]) {
    let mut len = [0u8; 8];
    let n = rest.len().min(8);
    len[..n].copy_from_slice(&rest[..n]);
    let value = &rest[n..];
    for len in [u64::from_le_bytes(len), 0, 1, 2613, u64::MAX] {
        let Some(answer) = fuzz_entry::range(value, len) else {
            return;
        };
        match answer {
            Ok(Some((first, last))) => {
                assert!(
                    first <= last && last < len,
                    "range {first}-{last} of {len} bytes"
                );
            }
            Ok(None) => {}
            Err((status, msg)) => client_error("range", status, &msg, &[400, 416]),
        }
    }
}

fn present(body: &[u8]) {
    match fuzz_entry::present(body) {
        Ok(ids) => {
            assert!(ids.len() <= MAX_PRESENT_IDS);
            let text = std::str::from_utf8(body).expect("an accepted body is text");
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines.len(), ids.len());
            for (l, id) in lines.iter().zip(&ids) {
                assert_eq!(*l, id.to_hex());
            }
        }
        Err((status, msg)) => client_error("present", status, &msg, &[400]),
    }
}
