//! `remotelog check`: verify the store.

use std::io::Write;
use std::process::ExitCode;

use remotelog::store::Backend;
use remotelog::transfer::remote::{self, Remotes};

use crate::args::CheckArgs;
use crate::ctx::Ctx;

/// Prints every problem and a summary; exit status 1 if there is any problem.
pub fn run(args: CheckArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let (read_data, json) = (args.read_data, args.json);
    let local = ctx.open_store()?;
    let store: Box<dyn Backend> = match &args.remote {
        Some(name) => remote::open(&Remotes::load(&local)?.named(name)?.location, false)?,
        None => Box::new(local),
    };
    let bar = ctx.progress("check");
    let report = remotelog::upkeep::check::check_with_progress(&*store, read_data, &bar);
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        for p in &report.problems {
            writeln!(out, "problem: {p}")?;
        }
        for n in &report.notes {
            writeln!(ctx.summary(), "note: {n}")?;
        }
        // The problems are what check is asked for; the closing line is a summary.
        writeln!(
            ctx.summary(),
            "{}: {} logs, {} entries, {} pages, {} messages{}",
            if report.is_sound() { "ok" } else { "FAILED" },
            report.logs,
            report.entries,
            report.pages,
            report.messages,
            if read_data {
                format!(
                    ", {} objects read and hashed ({})",
                    report.objects_read,
                    remotelog::human::size(report.bytes_read)
                )
            } else {
                String::new()
            }
        )?;
    }
    out.flush()?;
    if !report.is_sound() {
        eprintln!(
            "remotelog: error: check found {} problem(s) in {}",
            report.problems.len(),
            store.location()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
