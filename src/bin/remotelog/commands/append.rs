//! `remotelog append`: messages from files, a directory or stdin, in one atomic append.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use remotelog::error::IoContext;
use remotelog::log::{self, SettingsChange};
use remotelog::Message;

use crate::args::AppendArgs;
use crate::ctx::Ctx;

/// Appends the messages and prints `H1 H2` for each.
pub fn run(args: AppendArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let (group_id, timestamp) = group_and_time(&args)?;
    let messages = message_bodies(&args)?.map(|body| {
        body.map(|body| {
            Cow::Owned(Message {
                group_id: group_id.clone(),
                timestamp,
                body,
            })
        })
    });
    let change = SettingsChange {
        capacity: args.page_size,
        embed: args.embed,
    };
    let done = log::append_iter(&store, &args.log, messages, change)?;
    let mut line = [0u8; 130];
    for (h1, h2) in &done.ids {
        // Hex into a stack buffer: 100,000 lines through Display cost a few percent.
        hex::encode_to_slice(h1.0, &mut line[..64]).map_err(anyhow::Error::msg)?;
        line[64] = b' ';
        hex::encode_to_slice(h2.0, &mut line[65..129]).map_err(anyhow::Error::msg)?;
        line[129] = b'\n';
        out.write_all(&line)?;
    }
    crate::housekeeping::after_write(ctx, "the store", |bar| {
        remotelog::upkeep::auto::gc_auto(&store, bar)
    });
    Ok(ExitCode::SUCCESS)
}

/// The bodies to append, read lazily so that reading overlaps hashing and compression.
type Bodies = Box<dyn Iterator<Item = remotelog::Result<Vec<u8>>>>;

fn group_and_time(args: &AppendArgs) -> anyhow::Result<(Vec<u8>, i64)> {
    let group_id = match (&args.group, &args.group_hex) {
        (Some(g), _) => g.as_bytes().to_vec(),
        (None, Some(h)) => {
            hex::decode(h).map_err(|e| anyhow::anyhow!("--group-hex {h:?} is not hex: {e}"))?
        }
        (None, None) => anyhow::bail!("give the messages' group with --group or --group-hex"),
    };
    let timestamp = args.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    Ok((group_id, timestamp))
}

fn message_bodies(args: &AppendArgs) -> anyhow::Result<Bodies> {
    if let Some(dir) = &args.dir {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!("{}: no such directory", dir.display())
            }
            Err(e) => {
                return Err(remotelog::Error::Io {
                    path: dir.clone(),
                    source: e,
                }
                .into())
            }
            Ok(m) if !m.is_dir() => anyhow::bail!("{}: not a directory", dir.display()),
            Ok(_) => {}
        }
        let root = dir.clone();
        let mut files = walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .filter_map(move |entry| match entry {
                Ok(e) if e.file_type().is_file() => Some(std::fs::read(e.path()).at(e.path())),
                Ok(_) => None,
                Err(e) => {
                    let path = e.path().unwrap_or(&root).to_path_buf();
                    Some(Err(remotelog::Error::Io {
                        path,
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| io::Error::other("file system loop")),
                    }))
                }
            })
            .peekable();
        if files.peek().is_none() {
            anyhow::bail!("{}: no regular files to append", dir.display());
        }
        Ok(Box::new(files))
    } else if !args.files.is_empty() {
        let files = args.files.clone();
        Ok(Box::new(
            files.into_iter().map(|f| std::fs::read(&f).at(&f)),
        ))
    } else {
        let mut body = Vec::new();
        io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| anyhow::anyhow!("reading the message from stdin: {e}"))?;
        Ok(Box::new(std::iter::once(Ok(body))))
    }
}
