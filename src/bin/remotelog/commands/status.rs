//! `remotelog status`: how each log stands against each remote.

use std::io::Write;
use std::process::ExitCode;

use remotelog::transfer::remote::Remotes;
use remotelog::transfer::sync;

use crate::args::StatusArgs;
use crate::ctx::Ctx;

/// One line (or JSON object) per log and remote.
pub fn run(args: StatusArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let remotes = Remotes::load(&store)?;
    for s in sync::status(&store, remotes.all())? {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
            continue;
        }
        let what = match (s.remote_entries, s.diverged) {
            (None, _) => "never pushed or pulled".to_string(),
            (_, true) => "diverged (each has entries the other lacks)".to_string(),
            _ if s.ahead == 0 && s.behind == 0 => "up to date".to_string(),
            _ if s.ahead > 0 => format!("{} entries ahead (push to publish them)", s.ahead),
            _ => format!("{} entries behind (pull to get them)", s.behind),
        };
        writeln!(out, "{}\t{}\t{}", s.log, s.remote, what)?;
    }
    Ok(ExitCode::SUCCESS)
}
