//! `remotelog repack`: merge loose objects and packs into large packs.

use std::io::Write;
use std::process::ExitCode;

use remotelog::progress::Progress;
use remotelog::transfer::remote::{self, Remotes};

use crate::args::RepackArgs;
use crate::ctx::Ctx;

/// Repacks and prints the summary.
pub fn run(args: RepackArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let bar = ctx.progress("repack");
    let target = args.target_size.clamp(1, u64::MAX >> 20) << 20;
    let r = match &args.remote {
        None => remotelog::upkeep::repack::repack(&store, target, &bar),
        Some(name) => {
            let r = Remotes::load(&store)?.named(name)?.clone();
            let b = remote::open_for_upkeep(&r.location)?;
            remotelog::upkeep::repack::repack(&*b, target, &bar)
        }
    }
    .inspect_err(|_| bar.finish())?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else if r.packs_after == 0 {
        writeln!(
            out,
            "nothing to repack ({} pack, no loose objects)",
            r.packs_before
        )?;
    } else {
        writeln!(
            out,
            "repacked {} objects from {} packs and {} loose objects into {} pack(s) ({} blocks copied as they were); removed {} files",
            r.objects, r.packs_before, r.loose_before, r.packs_after, r.blocks_copied, r.files_removed
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
