//! `remotelog append`: messages from files, a directory or stdin, in one atomic append.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use remotelog::error::IoContext;
use remotelog::log::{self, SettingsChange};
use remotelog::progress::Progress;
use remotelog::Message;

use crate::args::AppendArgs;
use crate::ctx::Ctx;
use crate::output::Bar;

/// Appends the messages and prints `H1 H2` (or a JSON object) for each.
pub fn run(args: AppendArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let (group_id, timestamp) = group_and_time(&args);
    let bar = ctx.progress(format!("append {}", args.log));
    let inputs = inputs(&args, ctx)?;
    let files = inputs.files.len() as u64;
    bar.phase("reading files", (files > 0).then_some(files));
    let mut messages = Bodies {
        inputs: &inputs,
        next: 0,
        bar: &bar,
        verbose: ctx.verbose,
        stdin_done: false,
    }
    .map(|body| {
        body.map(|body| {
            Cow::Owned(Message {
                group_id: group_id.clone(),
                timestamp,
                body,
            })
        })
    })
    .peekable();
    if let (Some(dir), None) = (&args.dir, messages.peek()) {
        // Every file was empty when read (emptiness is learnt by reading, not by a stat).
        bar.finish();
        anyhow::bail!(
            "{}: no files to append{}",
            dir.display(),
            inputs.skipped.borrow().summary()
        );
    }
    let change = SettingsChange {
        capacity: args.page_size,
        embed: args.embed,
    };
    let done = log::append_iter(&store, &args.log, messages, change);
    bar.finish();
    let done = done?;
    let sizes = inputs.sizes.take();
    let taken = inputs.taken.take();
    if args.json {
        for (i, (h1, h2)) in done.ids.iter().enumerate() {
            let file = taken
                .get(i)
                .and_then(|&f| inputs.files.get(f))
                .map(|p| p.display().to_string());
            let line = serde_json::json!({
                "h1": h1.to_hex(),
                "h2": h2.to_hex(),
                "size": sizes.get(i).copied(),
                "file": file,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        let mut line = [0u8; 130];
        for (h1, h2) in &done.ids {
            // Hex into a stack buffer: 100,000 lines through Display cost a few percent.
            hex::encode_to_slice(h1.0, &mut line[..64]).map_err(anyhow::Error::msg)?;
            line[64] = b' ';
            hex::encode_to_slice(h2.0, &mut line[65..129]).map_err(anyhow::Error::msg)?;
            line[129] = b'\n';
            out.write_all(&line)?;
        }
    }
    if let Some(dir) = &args.dir {
        out.flush()?;
        let bytes: u64 = sizes.iter().sum();
        ctx.note(format_args!(
            "appended {} message{} ({}) from {} to log {}{}",
            done.ids.len(),
            if done.ids.len() == 1 { "" } else { "s" },
            remotelog::human::size(bytes),
            dir.display(),
            args.log,
            inputs.skipped.borrow().summary()
        ));
    }
    crate::housekeeping::after_write(ctx, "the store", |bar| {
        remotelog::upkeep::auto::gc_auto(&store, bar)
    });
    Ok(ExitCode::SUCCESS)
}

fn group_and_time(args: &AppendArgs) -> (Vec<u8>, i64) {
    // clap makes sure one of the two is given.
    let group_id = match (&args.group, &args.group_hex) {
        (Some(g), _) => g.as_bytes().to_vec(),
        (None, Some(h)) => h.0.clone(),
        (None, None) => Vec::new(),
    };
    let timestamp = args.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    (group_id, timestamp)
}

/// Where the bodies come from: files, or stdin when there are none.
struct Inputs {
    files: Vec<PathBuf>,
    /// Whether an empty file is skipped (`--dir`) rather than appended as an empty body.
    skip_empty: bool,
    /// The size of each body taken, in order (filled as they are read).
    sizes: RefCell<Vec<u64>>,
    /// The index in `files` of each body taken, in order.
    taken: RefCell<Vec<usize>>,
    /// What `--dir` left out; empty files are counted as they are read.
    skipped: RefCell<Skipped>,
}

/// What `append --dir` left out, by reason.
#[derive(Default)]
struct Skipped {
    hidden: u64,
    excluded: u64,
    symlinks: u64,
    empty: u64,
    special: u64,
}

impl Skipped {
    /// `; skipped 2 hidden (--include-hidden takes them), 1 symbolic link`, or nothing.
    fn summary(&self) -> String {
        let parts: Vec<String> = [
            (
                self.hidden,
                "hidden",
                "hidden",
                " (--include-hidden takes them)",
            ),
            (self.excluded, "excluded", "excluded", ""),
            (self.symlinks, "symbolic link", "symbolic links", ""),
            (self.empty, "empty file", "empty files", ""),
            (self.special, "special file", "special files", ""),
        ]
        .into_iter()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, one, many, hint)| format!("{n} {}{hint}", if n == 1 { one } else { many }))
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("; skipped {}", parts.join(", "))
        }
    }
}

fn inputs(args: &AppendArgs, ctx: &Ctx) -> anyhow::Result<Inputs> {
    let (files, skipped) = match &args.dir {
        Some(dir) => select(dir, args, ctx)?,
        None => {
            // Named files are checked before anything is written.
            for f in &args.files {
                std::fs::metadata(f).at(f)?;
            }
            (args.files.clone(), Skipped::default())
        }
    };
    Ok(Inputs {
        sizes: RefCell::new(Vec::with_capacity(files.len().max(1))),
        taken: RefCell::new(Vec::with_capacity(files.len())),
        skip_empty: args.dir.is_some(),
        files,
        skipped: RefCell::new(skipped),
    })
}

/// Which patterns `--exclude` gave: a glob without `/` matches a name at any depth
/// (`*.tmp`), one with `/` the path below DIR (`drafts/**`), as in `.gitignore`.
struct Excludes {
    names: globset::GlobSet,
    paths: globset::GlobSet,
}

impl Excludes {
    fn new(globs: &[globset::Glob]) -> anyhow::Result<Excludes> {
        let (mut names, mut paths) = (
            globset::GlobSetBuilder::new(),
            globset::GlobSetBuilder::new(),
        );
        for g in globs {
            if g.glob().contains('/') {
                paths.add(g.clone());
            } else {
                names.add(g.clone());
            }
        }
        Ok(Excludes {
            names: names.build()?,
            paths: paths.build()?,
        })
    }

    fn matches(&self, name: &std::ffi::OsStr, rel: &Path) -> bool {
        self.names.is_match(name) || self.paths.is_match(rel)
    }
}

/// The files `append --dir` takes, in sorted path order, and what it skips: hidden files
/// and folders (unless --include-hidden), what --exclude names, symbolic links and
/// anything that is not a regular file (empty files are skipped as they are read). With
/// --verbose each skipped path is named on stderr.
///
/// The walk takes each entry's type from the directory listing and never stats a file:
/// a stat per file made `append --dir` of 100,000 files about 20% slower
/// (bench/before-after/README.md).
fn select(dir: &Path, args: &AppendArgs, ctx: &Ctx) -> anyhow::Result<(Vec<PathBuf>, Skipped)> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            anyhow::bail!("{}: no such directory", dir.display())
        }
        Err(e) => {
            return Err(remotelog::Error::Io {
                path: dir.to_path_buf(),
                source: e,
            }
            .into())
        }
        Ok(m) if !m.is_dir() => anyhow::bail!("{}: not a directory", dir.display()),
        Ok(_) => {}
    }
    let excludes = Excludes::new(&args.exclude)?;
    let mut skipped = Skipped::default();
    let mut files = Vec::new();
    let skip = |path: &Path, why: &str| {
        if ctx.verbose {
            eprintln!("remotelog: skipped {} ({why})", path.display());
        }
    };
    let mut walk = walkdir::WalkDir::new(dir).sort_by_file_name().into_iter();
    while let Some(entry) = walk.next() {
        let e = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            remotelog::Error::Io {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop")),
            }
        })?;
        if e.depth() == 0 {
            continue;
        }
        let kind = e.file_type();
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
        let hidden = e.file_name().as_encoded_bytes().starts_with(b".");
        let why = if hidden && !args.include_hidden {
            skipped.hidden += 1;
            "hidden"
        } else if excludes.matches(e.file_name(), rel) {
            skipped.excluded += 1;
            "excluded"
        } else if kind.is_symlink() {
            skipped.symlinks += 1;
            "a symbolic link"
        } else if kind.is_dir() {
            continue;
        } else if !kind.is_file() {
            skipped.special += 1;
            "not a regular file"
        } else {
            files.push(e.into_path());
            continue;
        };
        // A skipped folder is skipped whole, and counted once.
        if kind.is_dir() {
            walk.skip_current_dir();
        }
        skip(e.path(), why);
    }
    if files.is_empty() {
        anyhow::bail!("{}: no files to append{}", dir.display(), skipped.summary());
    }
    Ok((files, skipped))
}

/// The bodies of the inputs, read lazily so that reading overlaps hashing and compression;
/// each read advances the bar, and the end of the reading starts its last phase.
struct Bodies<'a> {
    inputs: &'a Inputs,
    next: usize,
    bar: &'a Bar,
    verbose: bool,
    stdin_done: bool,
}

impl Iterator for Bodies<'_> {
    type Item = remotelog::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.inputs.files.is_empty() {
            if std::mem::replace(&mut self.stdin_done, true) {
                return None;
            }
            let mut body = Vec::new();
            let read = io::stdin().read_to_end(&mut body).map_err(|e| {
                remotelog::Error::Invalid(format!("reading the message from stdin: {e}"))
            });
            self.inputs.sizes.borrow_mut().push(body.len() as u64);
            return Some(read.map(|_| body));
        }
        loop {
            let Some(path) = self.inputs.files.get(self.next) else {
                if self.next == self.inputs.files.len() {
                    self.next += 1;
                    self.bar.phase("writing pages", None);
                }
                return None;
            };
            let index = self.next;
            self.next += 1;
            let body = std::fs::read(path).at(path);
            if let Ok(b) = &body {
                self.bar.advance(1);
                if b.is_empty() && self.inputs.skip_empty {
                    self.inputs.skipped.borrow_mut().empty += 1;
                    if self.verbose {
                        eprintln!("remotelog: skipped {} (empty)", path.display());
                    }
                    continue;
                }
                self.inputs.sizes.borrow_mut().push(b.len() as u64);
                self.inputs.taken.borrow_mut().push(index);
                self.bar.bytes(b.len() as u64);
            }
            return Some(body);
        }
    }
}
