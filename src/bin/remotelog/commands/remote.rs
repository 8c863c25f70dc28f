//! `remotelog remote add|list|remove`: the store's remotes.

use std::io::Write;
use std::process::ExitCode;

use remotelog::transfer::remote;

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
            for r in remote::list(&store)? {
                writeln!(out, "{}\t{}", r.name, r.location)?;
                for t in &r.logs {
                    writeln!(
                        out,
                        "\t{}: {} entries at last exchange (head {})",
                        t.log,
                        t.entries,
                        &t.head[..12]
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
