//! The `remotelog` command: parses the command line and hands it to the command's file
//! under `commands/`. Each command calls the library and prints what it returns; the
//! decisions are the library's.

mod args;
mod commands;
mod ctx;
mod housekeeping;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::commands::*;
use crate::ctx::Ctx;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(cli.store, cli.quiet);
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
    }
}
