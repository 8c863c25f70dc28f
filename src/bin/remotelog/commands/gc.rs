//! `remotelog gc` (alias `scrub`): delete what no ref reaches, here or in a remote.

use std::io::Write;
use std::process::ExitCode;

use remotelog::progress::Progress;
use remotelog::transfer::remote::{self, Remotes};
use remotelog::FsStore;

use crate::args::{parse_age, GcArgs};
use crate::ctx::Ctx;

/// Collects and prints the summary (with `--dry-run`, what would go).
pub fn run(args: GcArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let GcArgs {
        remote: which,
        prune,
        dry_run,
        json,
        wait,
    } = args;
    let grace = parse_age(&prune)?;
    let wait = std::time::Duration::from_secs(wait);
    let bar = ctx.progress("gc");
    let c = match &which {
        None => remotelog::upkeep::gc::gc_waiting(
            &FsStore::open(&ctx.store)?,
            grace,
            dry_run,
            wait,
            &bar,
        ),
        Some(name) => {
            let local = FsStore::open(&ctx.store)?;
            let r = Remotes::load(&local)?.named(name)?.clone();
            let b = remote::open_for_upkeep(&r.location)?;
            remotelog::upkeep::gc::gc_waiting(&*b, grace, dry_run, wait, &bar)
        }
    }
    .inspect_err(|_| bar.finish())?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&c)?)?;
    } else {
        if dry_run {
            for id in &c.removed_ids {
                writeln!(out, "would remove {id}")?;
            }
        }
        writeln!(
            out,
            "{} {} unreferenced objects ({} uncompressed); kept {} younger than {prune}; {} reachable{}",
            if dry_run { "would remove" } else { "removed" },
            c.objects,
            remotelog::human::size(c.bytes),
            c.kept_young,
            c.reachable,
            if dry_run {
                String::new()
            } else {
                format!(
                    "; disk {} -> {}",
                    remotelog::human::size(c.disk_before),
                    remotelog::human::size(c.disk_after)
                )
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
