//! `remotelog cat`: a message's body.

use std::io::Write;
use std::process::ExitCode;

use remotelog::log;

use crate::args::CatArgs;
use crate::ctx::Ctx;

/// Writes the body of the message named by an id or prefix.
pub fn run(args: CatArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let (_, m) = log::find(&store, &args.id)?;
    out.write_all(&m.body)?;
    Ok(ExitCode::SUCCESS)
}
