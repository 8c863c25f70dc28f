//! `remotelog push`: copy logs to remotes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use remotelog::log;
use remotelog::remote::{self, Remotes};
use remotelog::sync;
use remotelog::FsStore;

use crate::args::PushArgs;
use crate::ctx::Ctx;
use crate::output::transfer;

/// Pushes each log to each remote; one that fails is reported and the others still go.
pub fn run(args: PushArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let force = match (args.force, args.force_with_lease) {
        (true, _) => sync::Force::Yes,
        (_, true) => sync::Force::WithLease,
        _ => sync::Force::No,
    };
    let store = ctx.open_store()?;
    let registered = Remotes::load(&store)?;
    let targets: Vec<remote::Remote> = if args.all {
        registered.all().to_vec()
    } else if args.remotes.is_empty() {
        vec![registered.default_remote()?.clone()]
    } else {
        args.remotes
            .iter()
            .map(|n| registered.named(n).cloned().map_err(anyhow::Error::from))
            .collect::<anyhow::Result<_>>()?
    };
    if targets.is_empty() {
        anyhow::bail!("this store has no remotes; add one with `remotelog remote add NAME DIR`");
    }
    let logs: Vec<String> = if args.all_logs {
        log::list(&store)?.into_iter().map(|i| i.name).collect()
    } else {
        vec![args.log]
    };
    let mut failed = 0;
    for target in &targets {
        let dst = match remote::open(&target.location, true) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("remotelog: error: remote {}: {e}", target.name);
                failed += 1;
                continue;
            }
        };
        for name in &logs {
            let bar = ctx.progress(format!("push {name} → {}", target.name));
            failed += transfer(&mut out, bar, args.json, "to", |bar| {
                sync::push(&store, &target.name, &*dst, name, force, bar)
            })?;
        }
        repack_hint(&target.name, &target.location);
    }
    out.flush()?;
    if failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Packs on a directory remote beyond which a push suggests a repack: every push adds one.
const PACKS_BEFORE_HINT: usize = 16;

/// Tells on stderr when a directory remote has gathered many packs, and how to merge them.
fn repack_hint(name: &str, location: &str) {
    if remotelog::remote::is_url(location) {
        return;
    }
    let packs = FsStore::open(Path::new(location)).and_then(|s| s.packs());
    if let Ok(packs) = packs {
        if packs.len() > PACKS_BEFORE_HINT {
            eprintln!(
                "remotelog: remote {name} now holds {} packs (one per push); `remotelog repack --store {location}` merges them into a few large ones",
                packs.len()
            );
        }
    }
}
