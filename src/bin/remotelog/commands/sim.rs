//! `remotelog sim`: the simulator of writers and readers against mock remotes.

use std::io::Write;
use std::process::ExitCode;

use remotelog::sim::options::SimOptions;

use crate::args::SimArgs;
use crate::ctx::Ctx;

/// Runs the matrix and names the files written.
pub fn run(a: SimArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let opts = SimOptions {
        scenario: a.scenario,
        profiles: a.profiles,
        page_sizes: a.page_sizes,
        embeds: a.embeds,
        readers: a.readers,
        seeds: a.seeds,
        seed: a.seed,
        duration: a.duration,
        drain: a.drain,
        writers: a.writers,
        interval: a.interval,
        poisson: a.poisson,
        size: a.size,
        push: a.push,
        writer_schedule: a.writer_schedule,
        reader_schedule: a.reader_schedule,
        poll: a.poll,
        retry: a.retry,
        out: a.out,
    };
    // A setting that does not parse is a malformed command line (exit 2), found before
    // anything runs.
    opts.matrix()
        .map_err(|e| crate::output::Usage(e.to_string()))?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = std::time::Instant::now();
    let done = remotelog::sim::run_options(&opts, jobs, !a.no_plots)?;
    writeln!(
        out,
        "{} runs ({} cells x {} seeds) in {:.1} s on {jobs} thread(s); wrote {}",
        done.runs,
        done.cells,
        done.seeds,
        started.elapsed().as_secs_f64(),
        done.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    Ok(ExitCode::SUCCESS)
}
