//! `remotelog pull`: fetch logs from a remote.

use std::io::Write;
use std::process::ExitCode;

use remotelog::log;
use remotelog::store::Backend;
use remotelog::transfer::remote::{self, Remote, Remotes};

use crate::args::PullArgs;
use crate::ctx::Ctx;
use crate::output::{transfer, Failures};

/// Pulls each log; one that fails is reported and the others still go.
pub fn run(args: PullArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let store = ctx.open_store()?;
    let (target, src, logs) = source(&args, &store)?;
    let mut failures = Failures::default();
    for name in &logs {
        let bar = ctx.progress(format!("pull {name} ← {}", target.name));
        transfer(&mut out, &mut failures, bar, args.json, "from", |bar| {
            remote::take(&store, &target, &*src, name, remote::Take::Pull, bar)
        })?;
    }
    out.flush()?;
    Ok(failures.status())
}

/// The remote `args` names (or the default one), opened for reading, and the logs to take
/// from it: what pull and fetch start from.
pub fn source(
    args: &PullArgs,
    store: &remotelog::FsStore,
) -> anyhow::Result<(Remote, Box<dyn Backend>, Vec<String>)> {
    let registered = Remotes::load(store)?;
    let target = match &args.remote {
        Some(n) => registered.named(n)?.clone(),
        None => registered.default_remote()?.clone(),
    };
    // The remote's name as context keeps the error's type for the exit status.
    let src = remote::open(&target.location, false)
        .map_err(|e| anyhow::Error::new(e).context(format!("remote {}", target.name)))?;
    let logs: Vec<String> = match &args.log {
        Some(l) => vec![l.clone()],
        None => log::list(&*src)?.into_iter().map(|i| i.name).collect(),
    };
    Ok((target, src, logs))
}
