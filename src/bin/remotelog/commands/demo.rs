//! `remotelog demo`: a short end-to-end run in a throwaway directory.

use std::io::Write;
use std::process::ExitCode;

use remotelog::demo::{self, Step};

use crate::args::DemoArgs;
use crate::ctx::{Ctx, Out};

/// Runs the demonstration (`remotelog::demo`), printing each step as it is done.
pub fn run(args: DemoArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let outcome = demo::run(args.dir, |step| {
        print_step(&mut out, step)?;
        // Each step shows as it is done, not when the demo ends.
        out.flush()?;
        anyhow::Ok(())
    })?;
    writeln!(
        out,
        "== try it yourself: {} --store {} status",
        invocation(),
        outcome.store.display()
    )?;
    if !outcome.ok {
        out.flush()?;
        anyhow::bail!("the demo did not end as expected; see above");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_step(out: &mut Out, step: Step) -> anyhow::Result<()> {
    match step {
        Step::Created { store } => writeln!(out, "== created a store in {}", store.display())?,
        Step::Appended {
            log,
            messages,
            settings,
            head,
        } => writeln!(
            out,
            "== appended {messages} message{} to log {log} (page size {}{}); head page {head}",
            if messages == 1 { "" } else { "s" },
            settings.page_size_text(),
            if settings.embed > 0 {
                format!(", newest {} embedded", settings.embed)
            } else {
                String::new()
            }
        )?,
        Step::Logs(logs) => {
            writeln!(out, "== logs:")?;
            for info in logs {
                writeln!(out, "   {:<8} {} entries", info.name, info.count)?;
            }
        }
        Step::Entries { log, entries } => {
            writeln!(out, "== log {log}, newest first (H1 H2 body):")?;
            for (entry, body) in entries {
                writeln!(
                    out,
                    "   {} {} {}{}",
                    &entry.h1.to_hex()[..12],
                    &entry.h2.to_hex()[..12],
                    String::from_utf8_lossy(&body),
                    if entry.embedded.is_some() {
                        "  [embedded]"
                    } else {
                        ""
                    }
                )?;
            }
        }
        Step::Pushed { remote, transfer } => writeln!(
            out,
            "== pushed log {} to directory remote {} ({}: {} objects)",
            transfer.log,
            remote.display(),
            transfer.outcome,
            transfer.copied.objects
        )?,
        Step::Cloned { dest, identical } => writeln!(
            out,
            "== cloned the remote into {}: logs identical to the original: {}",
            dest.display(),
            if identical { "yes" } else { "NO" }
        )?,
        Step::Checked { store, report } => writeln!(
            out,
            "== check --read-data {store}: {} ({} objects read and hashed)",
            if report.is_sound() { "ok" } else { "FAILED" },
            report.objects_read
        )?,
    }
    Ok(())
}

/// How to run this binary again: `remotelog` when that is what PATH finds, else its path
/// (after `cargo run`, before `cargo install`), so the hint works as printed.
fn invocation() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "remotelog".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("remotelog"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            .is_some_and(|p| p == me)
    });
    if on_path {
        return "remotelog".into();
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| me.strip_prefix(cwd).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| me.clone());
    let text = shown.display().to_string();
    // A path with spaces or other shell characters is quoted.
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
