//! `remotelog clone`: a new store from a remote.

use std::io::Write;
use std::process::ExitCode;

use remotelog::progress::Progress;
use remotelog::transfer::remote;

use crate::args::CloneArgs;
use crate::ctx::Ctx;
use crate::output::report_transfer;

/// Clones every log (or one); a log that cannot be copied is reported and exits 1.
pub fn run(args: CloneArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let CloneArgs {
        src,
        dest,
        log: one_log,
        keep_partial,
        json,
    } = args;
    let location = remote::resolve_source(&ctx.store, &src)?;
    if remotelog::transfer::clone::target(&dest, &location)?
        == remotelog::store::clone_setup::Target::Resume
    {
        // Said even with --quiet: the command does something else than a new clone.
        eprintln!(
            "remotelog: resuming the clone into {} (it holds an earlier clone of {location})",
            dest.display()
        );
    }
    let src_store = remote::open(&location, false)?;
    let bar = ctx.progress(format!("clone {src}"));
    let report = remotelog::transfer::clone::clone_logs(
        &*src_store,
        &location,
        &dest,
        one_log.as_deref(),
        keep_partial,
        &bar,
    )
    .inspect_err(|_| bar.finish())?;
    bar.finish();
    for t in &report.done {
        report_transfer(&mut out, t, json, "from")?;
    }
    for (log, e) in &report.failed {
        if json {
            let line = serde_json::json!({
                "log": log,
                "remote": remote::ORIGIN,
                "outcome": "failed",
                "error": e.to_string(),
            });
            writeln!(out, "{line}")?;
        }
    }
    let Some(summary) = report.summary() else {
        if !json {
            writeln!(
                out,
                "cloned {} log(s) into {}",
                report.done.len(),
                dest.display()
            )?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    out.flush()?;
    // One line per broken log, then the summary; a single broken log is named by the
    // summary alone.
    if report.failed.len() > 1 {
        for (log, e) in &report.failed {
            eprintln!("remotelog: error: log {log} could not be copied: {e}");
        }
    }
    eprintln!("remotelog: error: {summary}");
    Ok(ExitCode::from(1))
}
