//! The store's `config` file parser (`src/config.rs`).

use std::path::Path;

use remotelog::store::config::{Config, FORMAT_VERSION};

pub fn run(data: &[u8]) {
    // The file is read as UTF-8 text; anything else is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("STORE/config");
    match Config::parse(text, path) {
        Ok(c) => {
            assert!((1..=FORMAT_VERSION).contains(&c.format_version));
            assert!((1..=22).contains(&c.zstd_level));
            let again = Config::parse(&c.render(), path).expect("a rendered config parses");
            assert_eq!(again, c, "config → render → parse changed it");
        }
        Err(e) => {
            let msg = e.to_string();
            super::assert_one_line("config", &msg);
            assert!(
                msg.starts_with("STORE/config: "),
                "error does not name the file: {msg}"
            );
        }
    }
}
