//! `remotelog import-spec`: import a 3/REMOTE-LOG log over Twirp.

use std::io::Write;
use std::process::ExitCode;

use crate::args::ImportSpecArgs;
use crate::ctx::Ctx;

/// Imports what is new of the source log and says how much.
pub fn run(args: ImportSpecArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let ImportSpecArgs {
        url,
        name,
        log: local,
        max_pages,
        max_entries,
        max_bytes,
    } = args;
    let store = ctx.open_store()?;
    let limits = remotelog::transfer::import_spec::Limits {
        max_pages,
        max_entries,
        max_bytes,
    };
    let token = remotelog::net::client::token_from_env()?;
    let src = remotelog::transfer::import_spec::TwirpSource::new(&url, token, max_bytes)?;
    let local = local.unwrap_or_else(|| name.clone());
    let done = remotelog::transfer::import_spec::import(&store, &src, &name, &local, &limits)?;
    writeln!(
        out,
        "imported {} new message(s) of {name:?} from {url} into log {local:?} ({} page(s) read)",
        done.entries, done.pages
    )?;
    Ok(ExitCode::SUCCESS)
}
