//! `remotelog serve`: the store over HTTP until SIGTERM/SIGINT.

use std::process::ExitCode;

use remotelog::transfer::remote;

use crate::args::ServeArgs;
use crate::ctx::Ctx;

/// Serves the store; says where on stderr once listening.
pub fn run(args: ServeArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let store = &ctx.store;
    let mut opts = remotelog::net::server::Options::new(store);
    if let Some(spec) = &args.mock {
        // A profile that does not load is a bad command line.
        match remotelog::mock::Profile::load(spec) {
            Ok(p) => opts.mock = Some(remotelog::mock::served::setup(p, args.mock_seed)),
            Err(e) => {
                eprintln!("remotelog: error: --mock {spec}: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    opts.listen = args.listen;
    opts.token = match &args.token_file {
        Some(f) => Some(remotelog::net::wire::read_token_file(f)?),
        None => None,
    };
    opts.read_only = args.read_only;
    opts.private = args.private;
    opts.max_body = args.max_body;
    opts.timeout = std::time::Duration::from_secs(args.timeout.max(1));
    opts.max_concurrency = args.max_concurrency;
    opts.max_memory = args.max_memory.saturating_mul(1 << 20);
    opts.admin_token = match &args.admin_token_file {
        Some(f) => Some(remotelog::net::wire::read_token_file(f)?),
        None => None,
    };
    let shown = remote::absolute(store)?;
    remotelog::net::server::run(opts, |addr| {
        eprintln!(
            "remotelog serve: serving {} on http://{addr}{}{}",
            shown.display(),
            if args.read_only { " (read-only)" } else { "" },
            match (&args.token_file, args.private) {
                (Some(_), true) => " (token required for reads and writes)",
                (Some(_), false) => " (token required for writes)",
                (None, _) => " (no token: anyone who can connect may write)",
            }
        );
        if let Some(spec) = &args.mock {
            eprintln!(
                "remotelog serve: answering as the mock profile {spec} (seed {}): clients are told apart by X-Remotelog-Actor, else their token, else their address",
                args.mock_seed
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
