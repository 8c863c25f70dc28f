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
                k if k.starts_with(AutoGc::PREFIX) => {
                    AutoGc::default().set(k, value).map_err(|e| match e {
                        Error::Invalid(reason) => fail(reason),
                        other => other,
                    })?;
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

/// When a store's writers run gc and repack on it by themselves (`gc --auto`), from the
/// optional `gc-auto*` keys of its `config` (format/store-v1.md section 2.1). `init` writes
/// none of them: a store without them has these defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoGc {
    /// `gc-auto`: loose objects added since the last housekeeping that make it due; 0
    /// turns automatic housekeeping off altogether.
    pub loose: u64,
    /// `gc-auto-packs`: packs added since then that make it due (0: never by this count).
    pub packs: u64,
    /// `gc-auto-bytes`: the store makes it due once it has grown by more than this many
    /// bytes and by more than its size after the last housekeeping (0: never by size).
    pub bytes: u64,
    /// `gc-auto-prune`: the grace period of the automatic gc (a duration like `1h`, or
    /// `now`).
    pub prune: std::time::Duration,
}

impl Default for AutoGc {
    fn default() -> Self {
        AutoGc {
            loose: 1000,
            packs: 32,
            bytes: 4 << 20,
            prune: std::time::Duration::from_secs(3600),
        }
    }
}

impl AutoGc {
    /// What every key of these settings begins with.
    pub const PREFIX: &'static str = "gc-auto";

    /// The settings in the text of a `config` file: the defaults, changed by its
    /// `gc-auto*` lines (which [`Config::parse`] has checked).
    pub fn from_config_text(text: &str) -> AutoGc {
        let mut auto = AutoGc::default();
        for line in text.lines().skip(1) {
            if let Some((k, v)) = line.split_once('=') {
                let (k, v) = (k.trim(), v.trim());
                if k.starts_with(Self::PREFIX) {
                    // Checked when the store was opened.
                    let _ = auto.set(k, v);
                }
            }
        }
        auto
    }

    /// Sets `key` to `value`, or says what is wrong with them ([`Error::Invalid`] naming
    /// the key and the value).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let count = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                Error::Invalid(format!(
                    "{key} {v:?} is not a whole number (0 turns it off)"
                ))
            })
        };
        match key {
            "gc-auto" => self.loose = count(value)?,
            "gc-auto-packs" => self.packs = count(value)?,
            "gc-auto-bytes" => self.bytes = count(value)?,
            "gc-auto-prune" => {
                self.prune = if value == "now" {
                    std::time::Duration::ZERO
                } else {
                    humantime::parse_duration(value).map_err(|e| {
                        Error::Invalid(format!(
                            "{key} {value:?} is not a duration like 1h, 2d or now ({e})"
                        ))
                    })?
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown setting {other:?} (the gc-auto settings are gc-auto, gc-auto-packs, gc-auto-bytes, gc-auto-prune)"
                )))
            }
        }
        Ok(())
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

    #[test]
    fn gc_auto_settings_are_optional_checked_and_read() {
        let p = Path::new("config");
        let plain = Config::default().render();
        assert_eq!(AutoGc::from_config_text(&plain), AutoGc::default());
        let set = format!(
            "{plain}gc-auto = 0\ngc-auto-packs = 5\ngc-auto-bytes = 100\ngc-auto-prune = 1w\n"
        );
        assert_eq!(Config::parse(&set, p).unwrap(), Config::default());
        let auto = AutoGc::from_config_text(&set);
        assert_eq!(
            (auto.loose, auto.packs, auto.bytes, auto.prune.as_secs()),
            (0, 5, 100, 7 * 86400)
        );
        for bad in ["gc-auto = -1", "gc-auto-prune = soon", "gc-auto-often = 1"] {
            let e = Config::parse(&format!("{plain}{bad}\n"), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn auto_gc_set_is_a_typed_error_naming_key_and_value() {
        let mut auto = AutoGc::default();
        auto.set("gc-auto-packs", "7").unwrap();
        assert_eq!(auto.packs, 7);
        let e = auto.set("gc-auto-prune", "soon").unwrap_err();
        assert!(
            matches!(&e, Error::Invalid(m) if m.starts_with("gc-auto-prune \"soon\" is not a duration")),
            "{e:?}"
        );
        // In a config file the same words come as the store's refusal, naming the file.
        let text = format!("{}gc-auto = lots\n", Config::default().render());
        let e = Config::parse(&text, Path::new("/s/config")).unwrap_err();
        assert!(
            matches!(&e, Error::NotAStore { reason, .. } if reason.starts_with("gc-auto \"lots\" is not a whole number")),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("/s/config: gc-auto"), "{e}");
    }
}
