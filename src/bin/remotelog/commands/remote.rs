//! `remotelog remote add|list|remove|rename|set-url|show`: the store's remotes.

use std::io::Write;
use std::process::ExitCode;

use remotelog::transfer::remote;

use crate::args::RemoteCommand;
use crate::ctx::Ctx;

/// Adds, lists, removes, renames, moves or shows a remote.
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
        RemoteCommand::Rename { old, new } => {
            remote::rename(&store, &old, &new)?;
            writeln!(out, "renamed remote {old} to {new}")?;
        }
        RemoteCommand::SetUrl { name, location } => {
            let r = remote::set_url(&store, &name, &location.to_string_lossy())?;
            writeln!(out, "remote {} is now at {}", r.name, r.location)?;
        }
        RemoteCommand::Show { name, json } => show(&mut out, &remote::show(&store, &name)?, json)?,
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

/// The first second of year 10000, which RFC 3339 (and humantime) cannot write.
const LAST_DATE: u64 = 253_402_300_800;

/// Prints `remote show`: as JSON, or a few lines for people.
fn show(out: &mut impl Write, s: &remote::RemoteShow, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(s)?)?;
        return Ok(());
    }
    // The seconds come from a file anyone may edit: one past what a date shows (RFC 3339
    // stops at 9999-12-31; `UNIX_EPOCH + secs` overflows) is printed as the number.
    let when = |t: Option<u64>| match t {
        Some(secs) if secs < LAST_DATE => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string(),
        Some(secs) => format!("{secs} (unix seconds)"),
        None => "never".to_string(),
    };
    writeln!(out, "remote {}", s.name)?;
    writeln!(out, "  location:  {}", s.location)?;
    writeln!(out, "  last push: {}", when(s.last_push))?;
    writeln!(out, "  last pull: {}", when(s.last_pull))?;
    if let Some(why) = &s.unreachable {
        writeln!(out, "  not reachable now: {why}")?;
    }
    if s.logs.is_empty() {
        writeln!(out, "  no logs")?;
    }
    for l in &s.logs {
        let short = |h: &Option<String>| {
            h.as_deref()
                .map_or("-", |h| &h[..h.len().min(12)])
                .to_string()
        };
        let there = match l.entries {
            Some(n) => format!("{n} entries, head {}", short(&l.head)),
            None if s.unreachable.is_some() => "unknown now".to_string(),
            None => "not there".to_string(),
        };
        let then = match l.tracked_entries {
            Some(n) => format!(
                "{n} entries at the last exchange (head {})",
                short(&l.tracked_head)
            ),
            None => "never exchanged".to_string(),
        };
        writeln!(out, "  log {}: {there}; {then}", l.log)?;
    }
    Ok(())
}
