//! `remotelog logs`: the logs of the store.

use std::io::Write;
use std::process::ExitCode;

use remotelog::log;

use crate::args::LogsArgs;
use crate::ctx::Ctx;

/// Prints each log with its entry count and page settings.
pub fn run(args: LogsArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    for info in log::list(&store)? {
        if args.json {
            let line = serde_json::json!({
                "name": info.name,
                "entries": info.count,
                "head": info.head.to_hex(),
                "page_size": info.settings.capacity,
                "embed": info.settings.embed,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}\t{} entries\tpage size {}\tembed {}",
                info.name,
                info.count,
                page_size_text(info.settings.capacity),
                info.settings.embed
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn page_size_text(capacity: u64) -> String {
    if capacity == 0 {
        "unbounded".into()
    } else {
        capacity.to_string()
    }
}
