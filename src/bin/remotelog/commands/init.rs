//! `remotelog init`: create a store.

use std::io::Write;
use std::process::ExitCode;

use remotelog::store::config::Config;
use remotelog::{Error, FsStore};

use crate::args::InitArgs;
use crate::ctx::Ctx;

/// Creates the store; an existing store is reported and left unchanged.
pub fn run(args: InitArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let dir = args.dir.unwrap_or_else(|| ctx.store.clone());
    let config = Config {
        zstd_level: args.zstd_level,
        ..Config::default()
    };
    match FsStore::init(&dir, config) {
        Ok(_) => writeln!(
            out,
            "Initialized empty remotelog store in {}",
            dir.display()
        )?,
        Err(e @ Error::AlreadyAStore(_)) => {
            writeln!(out, "{e}")?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}
