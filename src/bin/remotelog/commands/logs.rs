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
                info.settings.page_size_text(),
                info.settings.embed
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
