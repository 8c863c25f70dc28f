//! `remotelog forget`: remove messages from a log.

use std::io::Write;
use std::process::ExitCode;

use crate::args::ForgetArgs;
use crate::ctx::Ctx;

/// Rewrites the log without the messages and says what is left to do.
pub fn run(args: ForgetArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let f = if args.ids.is_empty() {
        let policy = remotelog::log::forget::Retention {
            keep_since: match &args.older_than {
                Some(age) => Some(cutoff(crate::args::parse_age(age)?)),
                None => None,
            },
            keep_last: args.keep_last,
        };
        remotelog::log::forget::retain(&store, &args.log, policy)?
    } else {
        remotelog::log::forget::forget(&store, &args.log, &args.ids)?
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&f)?)?;
    } else if f.removed.is_empty() {
        writeln!(
            out,
            "log {}: nothing to remove; all {} entries kept",
            f.log, f.remaining
        )?;
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

/// The unix time `age` ago (at the earliest representable time for an enormous age).
fn cutoff(age: std::time::Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(now)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}
