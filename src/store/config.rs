//! The store's `config` file: magic, format version, settings (format/store-v1.md, section 2).

use std::path::Path;

use crate::error::{Error, Result};

/// First line of every config file.
pub const MAGIC: &str = "remotelog-store";
/// The store format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// zstd level used when none is configured.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The settings in a store's `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The store's format version.
    pub format_version: u32,
    /// zstd level for objects this store writes.
    pub zstd_level: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format_version: FORMAT_VERSION,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl Config {
    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "{MAGIC}\nformat-version = {}\nzstd-level = {}\n",
            self.format_version, self.zstd_level
        )
    }

    /// Parses the file's text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let fail = |reason: String| Error::NotAStore {
            path: path.to_path_buf(),
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(fail(format!(
                "not a remotelog config (first line is not {MAGIC:?})"
            )));
        }
        let mut version = None;
        let mut level = DEFAULT_ZSTD_LEVEL;
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| fail(format!("line {line:?} is not `key = value`")))?;
            match key {
                "format-version" => {
                    version =
                        Some(value.parse::<u32>().map_err(|_| {
                            fail(format!("format-version {value:?} is not a number"))
                        })?)
                }
                "zstd-level" => {
                    level = value
                        .parse::<i32>()
                        .ok()
                        .filter(|l| (1..=22).contains(l))
                        .ok_or_else(|| fail(format!("zstd-level {value:?} is not 1..22")))?
                }
                other => return Err(fail(format!("unknown setting {other:?}"))),
            }
        }
        let version = version.ok_or_else(|| fail("no format-version line".into()))?;
        if version > FORMAT_VERSION {
            return Err(fail(format!(
                "store format version {version} is newer than this remotelog supports ({FORMAT_VERSION}); upgrade remotelog"
            )));
        }
        if version < 1 {
            return Err(fail(format!("format version {version} does not exist")));
        }
        Ok(Config {
            format_version: version,
            zstd_level: level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Path::new("config");
        let c = Config::default();
        assert_eq!(Config::parse(&c.render(), p).unwrap(), c);
        let newer = c
            .render()
            .replace("format-version = 2", "format-version = 3");
        let e = Config::parse(&newer, p).unwrap_err().to_string();
        assert!(e.contains("newer") && e.contains("upgrade"), "{e}");
        assert!(Config::parse("hello\n", p).is_err());
        assert!(Config::parse(
            &format!("{MAGIC}\nformat-version = 1\nzstd-level = 99\n"),
            p
        )
        .is_err());
        let v1 = Config::parse(&format!("{MAGIC}\nformat-version = 1\n"), p).unwrap();
        assert_eq!(v1.format_version, 1, "version-1 stores stay readable");
    }
}
