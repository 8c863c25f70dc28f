//! `remotelog fetch`: record what a remote holds without merging it.

use std::io::Write;
use std::process::ExitCode;

use remotelog::transfer::remote;
use remotelog::transfer::sync;

use crate::args::PullArgs;
use crate::ctx::Ctx;
use crate::output::{transfer, Failures};

/// Fetches each log, then says per log how the local one relates and what to do; one that
/// fails is reported and the others still go.
pub fn run(args: PullArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let (target, src, logs) = super::pull::source(&args, &store)?;
    let mut failures = Failures::default();
    for name in &logs {
        let bar = ctx.progress(format!("fetch {name} ← {}", target.name));
        let mut fetched = false;
        transfer(&mut out, &mut failures, bar, args.json, "from", |bar| {
            let r = remote::take(&store, &target, &*src, name, remote::Take::Fetch, bar);
            fetched = r.is_ok();
            r
        })?;
        if fetched && !args.json {
            writeln!(out, "{}", sync::next_step(&store, &target.name, name)?)?;
        }
    }
    out.flush()?;
    Ok(failures.status())
}
