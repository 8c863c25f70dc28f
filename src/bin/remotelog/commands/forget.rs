//! `remotelog forget`: remove messages from a log.

use std::io::Write;
use std::process::ExitCode;

use crate::args::ForgetArgs;
use crate::ctx::Ctx;

/// Rewrites the log without the messages and says what is left to do.
pub fn run(args: ForgetArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let f = remotelog::log::forget::forget(&store, &args.log, &args.ids)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&f)?)?;
    } else {
        for (h1, h2) in &f.removed {
            writeln!(out, "forgot {h1} {h2}")?;
        }
        writeln!(
            out,
            "log {}: {} entries left, {} pages rewritten; run `remotelog gc` to delete the bytes, and push --force-with-lease then gc on remotes",
            f.log, f.remaining, f.pages_written
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
