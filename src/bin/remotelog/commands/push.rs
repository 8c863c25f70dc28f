//! `remotelog push`: copy logs to remotes.

use std::io::Write;
use std::process::ExitCode;

use remotelog::log;
use remotelog::transfer::remote::{self, Remotes};
use remotelog::transfer::sync;

use crate::args::PushArgs;
use crate::ctx::Ctx;
use crate::output::{transfer, Failures};

/// Pushes each log to each remote; one that fails is reported and the others still go.
pub fn run(args: PushArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let force = match (args.force, args.force_with_lease) {
        (true, _) => sync::Force::Yes,
        (_, true) => sync::Force::WithLease,
        _ => sync::Force::No,
    };
    let store = ctx.open_store()?;
    let targets = Remotes::load(&store)?.targets(&args.remotes, args.all)?;
    let logs: Vec<String> = if args.all_logs {
        log::list(&store)?.into_iter().map(|i| i.name).collect()
    } else {
        vec![args.log]
    };
    let mut failures = Failures::default();
    for target in &targets {
        let dst = match remote::open(&target.location, true) {
            Ok(d) => d,
            Err(e) => {
                failures.record(Some(&format!("remote {}", target.name)), &e);
                continue;
            }
        };
        for name in &logs {
            let bar = ctx.progress(format!("push {name} → {}", target.name));
            transfer(&mut out, &mut failures, bar, args.json, "to", |bar| {
                sync::push(&store, &target.name, &*dst, name, force, bar)
            })?;
        }
        repack_hint(&target.name, &target.location);
    }
    out.flush()?;
    Ok(failures.status())
}

/// Tells on stderr when a directory remote has gathered many packs, and how to merge them.
fn repack_hint(name: &str, location: &str) {
    if let Some(packs) = remote::packs_to_merge(location) {
        eprintln!(
            "remotelog: remote {name} now holds {packs} packs (one per push); `remotelog repack --store {location}` merges them into a few large ones"
        );
    }
}
