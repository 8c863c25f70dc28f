//! `remotelog completions SHELL` and `remotelog man`: generated from the clap definitions,
//! so they never disagree with the command line.

use std::io::Write;
use std::process::ExitCode;

use crate::args::{CompletionsArgs, ManArgs};
use crate::ctx::Ctx;
use crate::output::Usage;

/// Writes the completion script for the shell.
pub fn run(args: CompletionsArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut cmd = crate::cli_command();
    clap_complete::generate(args.shell, &mut cmd, "remotelog", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the manual page in roff: the program's, or one command's.
pub fn man(args: ManArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut cmd = crate::cli_command();
    if let Some(name) = &args.command {
        // Built so that the page's usage line reads `remotelog NAME ...`.
        cmd.build();
        let sub = cmd
            .find_subcommand(name)
            .ok_or_else(|| {
                Usage(format!(
                    "man: no command {name:?}; `remotelog --help` lists them"
                ))
            })?
            .clone();
        // clap names commands with 'static strings; one page per run leaks one name.
        let page: &'static str = Box::leak(format!("remotelog-{name}").into_boxed_str());
        cmd = sub.name(page);
    }
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
