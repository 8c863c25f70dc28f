//! `remotelog log`: a log's entries, newest first.

use std::io::Write;
use std::process::ExitCode;

use remotelog::log;

use crate::args::LogArgs;
use crate::ctx::Ctx;
use crate::output::printable_group;

/// Prints one line (or JSON object) per entry.
pub fn run(args: LogArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let (name, json) = (args.log, args.json);
    let store = ctx.open_store()?;
    log::existing_head(&store, &name)?;
    for entry in log::entries(&store, &name)? {
        let m = log::read_message(&store, &entry)?;
        if json {
            let line = serde_json::json!({
                "h1": entry.h1.to_hex(),
                "h2": entry.h2.to_hex(),
                "group": hex::encode(&m.group_id),
                "timestamp": m.timestamp,
                "size": m.body.len(),
                "embedded": entry.embedded.is_some(),
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{} {} {} {} {}",
                entry.h1,
                entry.h2,
                m.timestamp,
                m.body.len(),
                printable_group(&m.group_id)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
