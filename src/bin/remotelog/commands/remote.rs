//! `remotelog remote add|list|remove`: the store's remotes.

use std::io::Write;
use std::process::ExitCode;

use remotelog::backend::Backend;
use remotelog::log;
use remotelog::remote::{self, Remotes};

use crate::args::RemoteCommand;
use crate::ctx::Ctx;

/// Adds, lists or removes a remote.
pub fn run(cmd: RemoteCommand, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    match cmd {
        RemoteCommand::Add { name, dir } => {
            let r = remote::add(&store, &name, &dir)?;
            writeln!(out, "added remote {} at {}", r.name, r.location)?;
        }
        RemoteCommand::Remove { name } => {
            remote::remove(&store, &name)?;
            writeln!(out, "removed remote {name}")?;
        }
        RemoteCommand::List => {
            for r in Remotes::load(&store)?.all() {
                writeln!(out, "{}\t{}", r.name, r.location)?;
                let prefix = format!("{}/{}", remote::REMOTES, r.name);
                for t in store.list_refs(&prefix)? {
                    let Some(head) = store.read_ref(&t)? else {
                        continue;
                    };
                    let count = log::read_page(&store, &head)?.count;
                    let name = t
                        .as_str()
                        .strip_prefix(&format!("{prefix}/"))
                        .unwrap_or(t.as_str());
                    writeln!(
                        out,
                        "\t{name}: {count} entries at last exchange (head {})",
                        &head.to_hex()[..12]
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
