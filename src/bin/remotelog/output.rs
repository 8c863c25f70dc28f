//! How results look on a terminal: the progress bar (indicatif), transfer lines, group ids,
//! and the one-line error of a failed command.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remotelog::progress::Progress;
use remotelog::transfer::sync::LogTransfer;

/// How long an operation runs before its bar appears: quick commands draw nothing.
const BAR_DELAY: Duration = Duration::from_millis(200);

/// A progress bar on stderr: units of the current phase against its total when known,
/// the bytes moved, their rate and the time left. It appears once an operation has run for
/// [`BAR_DELAY`], and only when stderr is a terminal and --quiet is not given. With
/// --verbose each phase also ends with a line on stderr saying what it did.
pub struct Bar {
    pb: indicatif::ProgressBar,
    label: String,
    start: Instant,
    enabled: bool,
    verbose: bool,
    shown: AtomicBool,
    /// Bytes of the current phase, shared with the bar's template.
    bytes: Arc<AtomicU64>,
    /// The current phase, its start and units, for the verbose line.
    phase: Mutex<Option<(String, Instant)>>,
}

impl Bar {
    /// A hidden bar labelled `label`; `quiet` keeps it hidden, `verbose` adds a line per
    /// phase.
    pub fn new(quiet: bool, verbose: bool, label: String) -> Bar {
        use std::io::IsTerminal;
        let bytes = Arc::new(AtomicU64::new(0));
        let pb = indicatif::ProgressBar::hidden();
        pb.set_style(style(true, &bytes));
        pb.set_prefix(label.clone());
        Bar {
            pb,
            label,
            start: Instant::now(),
            enabled: !quiet && io::stderr().is_terminal(),
            verbose: verbose && !quiet,
            shown: AtomicBool::new(false),
            bytes,
            phase: Mutex::new(None),
        }
    }

    /// Draws the bar once the operation has run long enough.
    fn show_when_due(&self) {
        if self.enabled
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() >= BAR_DELAY
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.pb
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            // Redrawn while the library works without reporting (a commit, an fsync), so
            // rate and time left stay true.
            self.pb.enable_steady_tick(Duration::from_millis(120));
        }
    }

    /// With --verbose, says what the phase that ends did.
    fn end_phase(&self) {
        let ended = self.phase.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((name, started)) = ended else {
            return;
        };
        if !self.verbose {
            return;
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let line = format!(
            "remotelog: {}: {name}: {}{} in {:.2} s",
            self.label,
            self.pb.position(),
            if bytes > 0 {
                format!(", {}", remotelog::human::size(bytes))
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
        self.pb.suspend(|| eprintln!("{line}"));
    }
}

/// The bar's look: with a total, a bar, the units done and the time left; without, a
/// spinner and the time spent. Either way the bytes moved and their rate once there are
/// any.
fn style(total: bool, bytes: &Arc<AtomicU64>) -> indicatif::ProgressStyle {
    let template = if total {
        "{prefix} {msg} [{bar:25}] {pos}/{len}{data} · ETA {eta}"
    } else {
        // Units without a total mean little: the bytes and the time spent say more.
        "{prefix} {msg} {spinner}{data} · {elapsed}"
    };
    let bytes = Arc::clone(bytes);
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key(
            "data",
            move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let n = bytes.load(Ordering::Relaxed);
                if n > 0 {
                    let secs = state.elapsed().as_secs_f64().max(0.001);
                    let _ = write!(
                        w,
                        " · {} · {}/s",
                        remotelog::human::size(n),
                        remotelog::human::size((n as f64 / secs) as u64)
                    );
                }
            },
        )
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.end_phase();
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((name.to_string(), Instant::now()));
        self.bytes.store(0, Ordering::Relaxed);
        // reset() also restarts the clock that rate and time left are measured on.
        self.pb.reset();
        self.pb.set_style(style(total.is_some(), &self.bytes));
        self.pb.set_message(name.to_string());
        self.pb.set_length(total.unwrap_or(0));
        if total.is_none() {
            self.pb.unset_length();
        }
        if self.shown.load(Ordering::Relaxed) {
            // A bar finished for one log goes on for the next (clone, pull).
            self.pb.enable_steady_tick(Duration::from_millis(120));
        }
        self.show_when_due();
    }

    fn advance(&self, n: u64) {
        self.pb.inc(n);
        self.show_when_due();
    }

    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.show_when_due();
    }

    fn finish(&self) {
        self.end_phase();
        self.pb.finish_and_clear();
    }
}

/// The failures of a command that goes on past them (push to several remotes, pull of
/// several logs): each printed when it happens, and the exit status they add up to.
#[derive(Debug, Default)]
pub struct Failures {
    count: usize,
    transient: usize,
}

impl Failures {
    /// Prints `e` (after `context`, if any) on one line and counts it.
    pub fn record(&mut self, context: Option<&str>, e: &remotelog::Error) {
        match context {
            Some(c) => eprintln!("remotelog: error: {c}: {e}"),
            None => eprintln!("remotelog: error: {e}"),
        }
        self.count += 1;
        if e.is_transient() {
            self.transient += 1;
        }
    }

    /// 0 without failures; [`TRY_AGAIN`] when every failure was transient; else 1.
    pub fn status(&self) -> ExitCode {
        match self.count {
            0 => ExitCode::SUCCESS,
            n if n == self.transient => ExitCode::from(TRY_AGAIN),
            _ => ExitCode::from(1),
        }
    }
}

/// Runs one push or pull of one log with a progress bar and reports it; a failure is
/// printed and recorded in `failures` so the other logs and remotes still go.
pub fn transfer(
    out: &mut impl Write,
    failures: &mut Failures,
    bar: Bar,
    json: bool,
    dir: &str,
    run: impl FnOnce(&Bar) -> remotelog::Result<LogTransfer>,
) -> anyhow::Result<()> {
    match run(&bar) {
        Ok(t) => report_transfer(out, &t, json, dir),
        Err(e) => {
            bar.finish();
            failures.record(None, &e);
            Ok(())
        }
    }
}

/// One line per log transferred: JSON, or `LOG to|from REMOTE: OUTCOME (...)`.
pub fn report_transfer(
    out: &mut impl Write,
    t: &LogTransfer,
    json: bool,
    dir: &str,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(t)?)?;
    } else {
        writeln!(
            out,
            "{} {dir} {}: {} ({} entries, {} objects, {} copied, {:.2}s)",
            t.log,
            t.remote,
            t.outcome,
            t.entries,
            t.copied.objects,
            remotelog::human::size(t.copied.bytes),
            t.elapsed
        )?;
    }
    Ok(())
}

/// A group id as text when it is printable ASCII, else as `0x` and hex.
pub fn printable_group(g: &[u8]) -> String {
    match std::str::from_utf8(g) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
        _ => format!("0x{}", hex::encode(g)),
    }
}

/// A bad value on the command line that only the command could see (an option that is
/// well-formed alone but not with the others, a simulator setting): exit status 2, like
/// the malformed command lines clap reports.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit status of a command's result; a failure is printed on one line first. A
/// closed output pipe (`remotelog log | head`) is not a failure.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if let Some(usage) = e.downcast_ref::<Usage>() {
                eprintln!("remotelog: error: {usage}");
                return ExitCode::from(2);
            }
            eprintln!("remotelog: error: {}", one_line(&e));
            failure_status(&e)
        }
    }
}

/// 75 (`EX_TEMPFAIL`: running the same command later may succeed: a remote unreachable
/// or overloaded, a ref moved meanwhile) for a transient failure, so that cron jobs and scripts can
/// retry by status; 1 for every other failure.
pub fn failure_status(e: &anyhow::Error) -> ExitCode {
    let transient = e
        .chain()
        .find_map(|c| c.downcast_ref::<remotelog::Error>())
        .is_some_and(remotelog::Error::is_transient);
    ExitCode::from(if transient { TRY_AGAIN } else { 1 })
}

/// The exit status of a transient failure (sysexits' `EX_TEMPFAIL`).
pub const TRY_AGAIN: u8 = 75;

/// The error and its causes on one line, each cause once: most errors already show their
/// cause in their own message (`Error::Io` shows the OS error it also chains as its
/// source), so a cause whose text is already there is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
