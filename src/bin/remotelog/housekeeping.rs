//! Automatic housekeeping (`gc --auto`) after a write: it runs when the store's thresholds
//! say so and reports one line on stderr (none with --quiet). The write has succeeded
//! whatever happens here, so a failure is a warning, never the command's failure.

use remotelog::progress::Progress;
use remotelog::upkeep::auto::Outcome;

use crate::ctx::Ctx;
use crate::output::Bar;

/// Runs `run` (the housekeeping of `what`, e.g. "remote origin") with a progress bar and
/// reports what it did.
pub fn after_write(ctx: &Ctx, what: &str, run: impl FnOnce(&Bar) -> remotelog::Result<Outcome>) {
    let bar = ctx.progress(format!("gc --auto {what}"));
    let outcome = run(&bar);
    bar.finish();
    match outcome {
        Ok(Outcome::NotDue) | Ok(Outcome::Skipped(_)) => {}
        Ok(Outcome::Ran(r)) if !ctx.quiet => eprintln!(
            "remotelog: housekeeping of {what} ({}): removed {} unreferenced objects, {} packs and {} loose objects merged into {}; {} -> {} bytes",
            r.reason,
            r.collected.objects,
            r.repacked.packs_before,
            r.repacked.loose_before,
            r.repacked.packs_after.max(r.after.packs as usize),
            r.before.bytes,
            r.after.bytes
        ),
        Ok(Outcome::Ran(_)) => {}
        Err(e) => eprintln!(
            "remotelog: warning: housekeeping of {what} did not run: {e}; the write itself succeeded (set gc-auto = 0 in its config to turn housekeeping off)"
        ),
    }
}
