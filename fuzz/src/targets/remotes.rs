//! The `remotes` file parser (`src/store/remotes.rs`).

use std::path::Path;

use remotelog::transfer::remote::{self, Remotes};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("STORE/remotes");
    match Remotes::parse(text, path) {
        Ok(r) => {
            for one in r.all() {
                assert!(remote::validate_name(&one.name).is_ok());
                assert!(!one.location.contains('\n'));
            }
            let again = Remotes::parse(&r.render(), path).expect("rendered remotes parse");
            assert_eq!(
                again.all(),
                r.all(),
                "remotes → render → parse changed them"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            super::assert_one_line("remotes", &msg);
            assert!(
                msg.starts_with("STORE/remotes: "),
                "error does not name the file: {msg}"
            );
        }
    }
}
