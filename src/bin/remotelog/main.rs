//! The `remotelog` command: parses the command line and hands it to the command's file
//! under `commands/`. Each command calls the library and prints what it returns; the
//! decisions are the library's.

mod args;
mod commands;
mod ctx;
mod help;
mod housekeeping;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command, RemoteCommand};
use crate::commands::*;
use crate::ctx::Ctx;

/// The command line's definition, with each command's examples: what parses the
/// arguments, and what completions and the man page are made from.
pub fn cli_command() -> clap::Command {
    help::with_examples(Cli::command())
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    let summary = prints_summary(&cli.command);
    let ctx = Ctx::new(cli.store, cli.quiet, cli.verbose, summary);
    let result = dispatch(cli.command, &ctx).and_then(|code| {
        ctx.flush()?;
        Ok(code)
    });
    // What a failed command printed goes out before its error line.
    drop(ctx);
    output::exit_code(result)
}

fn dispatch(command: Command, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(a) => init::run(a, ctx),
        Command::Append(a) => append::run(a, ctx),
        Command::Log(a) => log::run(a, ctx),
        Command::Cat(a) => cat::run(a, ctx),
        Command::Logs(a) => logs::run(a, ctx),
        Command::Check(a) => check::run(a, ctx),
        Command::Remote(a) => remote::run(a, ctx),
        Command::Push(a) => push::run(a, ctx),
        Command::Pull(a) => pull::run(a, ctx),
        Command::Fetch(a) => fetch::run(a, ctx),
        Command::Clone(a) => clone::run(a, ctx),
        Command::ImportSpec(a) => import_spec::run(a, ctx),
        Command::Status(a) => status::run(a, ctx),
        Command::Gc(a) => gc::run(a, ctx),
        Command::Forget(a) => forget::run(a, ctx),
        Command::Repack(a) => repack::run(a, ctx),
        Command::Demo(a) => demo::run(a, ctx),
        Command::Serve(a) => serve::run(a, ctx),
        Command::Sim(a) => sim::run(*a, ctx),
        Command::Completions(a) => completions::run(a, ctx),
        Command::Man(a) => completions::man(a, ctx),
    }
}

/// Whether what `command` prints on stdout is a summary of what it did, which --quiet
/// silences, rather than what it was asked to show (a log, a body, a list, --json).
fn prints_summary(command: &Command) -> bool {
    match command {
        Command::Init(_) | Command::ImportSpec(_) | Command::Sim(_) => true,
        Command::Push(a) => !a.json,
        Command::Pull(a) | Command::Fetch(a) => !a.json,
        Command::Clone(a) => !a.json,
        Command::Gc(a) => !a.json,
        Command::Forget(a) => !a.json,
        Command::Repack(a) => !a.json,
        // List and Show print what was asked for.
        Command::Remote(r) => !matches!(r, RemoteCommand::List | RemoteCommand::Show { .. }),
        Command::Append(_)
        | Command::Log(_)
        | Command::Cat(_)
        | Command::Logs(_)
        | Command::Check(_)
        | Command::Status(_)
        | Command::Demo(_)
        | Command::Serve(_)
        | Command::Completions(_)
        | Command::Man(_) => false,
    }
}
