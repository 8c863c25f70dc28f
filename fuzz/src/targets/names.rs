//! Ref files and names: `store::parse_ref` (a ref file's content), `name::validate` and
//! `RefName` (log and ref names), remote names and the refs built from them
//! (`src/store.rs`, `src/name.rs`, `src/remote.rs`, `src/spec.rs`).

use std::path::{Component, Path};

use remotelog::model::name::{self, RefName};
use remotelog::store::dir as store;
use remotelog::transfer::remote;

pub fn run(data: &[u8]) {
    ref_file(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    names(text);
    // Two names at once (remote and log of a tracking ref), split at the first tab.
    if let Some((a, b)) = text.split_once('\t') {
        if let Ok(r) = remote::tracking_ref(a, b) {
            assert!(remote::validate_name(a).is_ok() && name::validate(b).is_ok());
            assert_eq!(r.as_str(), format!("remotes/{a}/{b}"));
            stays_below_refs(r.as_str());
        }
    }
}

fn ref_file(data: &[u8]) {
    match store::parse_ref(data) {
        Ok(id) => {
            let hex = id.to_hex();
            assert!(
                data == hex.as_bytes() || data == format!("{hex}\n").as_bytes(),
                "parse_ref accepted something other than the id and a newline"
            );
        }
        Err(e) => super::assert_one_line("parse_ref", &e),
    }
}

fn names(text: &str) {
    match name::validate(text) {
        Ok(()) => {
            assert!(!text.is_empty() && text.len() <= name::MAX_NAME_LEN);
            stays_below_refs(text);
            let r = RefName::parse(text).expect("a valid name is a valid ref");
            assert_eq!(r.as_str(), text);
            let log = RefName::log(text).expect("a valid name is a log name");
            assert_eq!(log.log_name(), Some(text));
            stays_below_refs(log.as_str());
            // The ref path as a whole is a name too, so a long log name has no import
            // ref (nor tracking refs): refused with an error, never a ref outside refs/.
            match remotelog::transfer::import_spec::import_ref(text) {
                Ok(r) => stays_below_refs(r.as_str()),
                Err(e) => {
                    assert!(text.len() + "imports/".len() > name::MAX_NAME_LEN, "{e}");
                    super::assert_one_line("import_ref", &e);
                }
            }
        }
        Err(e) => {
            super::assert_one_line("name::validate", &e);
            assert!(RefName::parse(text).is_err());
            assert!(RefName::log(text).is_err());
            assert!(remote::validate_name(text).is_err());
        }
    }
    match remote::validate_name(text) {
        Ok(()) => assert!(!text.contains('/') && name::validate(text).is_ok()),
        Err(e) => super::assert_one_line("remote::validate_name", &e),
    }
}

/// A name joined below `refs/` names a file below `refs/`: plain components only.
fn stays_below_refs(name: &str) {
    let p = Path::new("refs").join(name);
    assert!(
        p.components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_))),
        "{name:?} escapes refs/"
    );
    assert!(p.starts_with("refs") && p.components().count() > 1);
    for seg in name.split('/') {
        assert!(!seg.is_empty() && !seg.starts_with('.') && !seg.ends_with(".lock"));
    }
}
