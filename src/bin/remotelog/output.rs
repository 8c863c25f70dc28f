//! How results look on a terminal: the progress bar (indicatif), transfer lines, group ids,
//! and the one-line error of a failed command.

use std::io::{self, Write};
use std::process::ExitCode;

use remotelog::progress::Progress;
use remotelog::transfer::sync::LogTransfer;

/// A progress bar on stderr that appears only once an operation has run for a second, and
/// only when stderr is a terminal and --quiet is not given.
pub struct Bar {
    pb: indicatif::ProgressBar,
    start: std::time::Instant,
    enabled: bool,
    shown: std::sync::atomic::AtomicBool,
}

impl Bar {
    /// A hidden bar labelled `label`; `quiet` keeps it hidden.
    pub fn new(quiet: bool, label: String) -> Bar {
        use std::io::IsTerminal;
        let pb = indicatif::ProgressBar::hidden();
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {msg} [{bar:30}] {pos}/{len} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(label);
        Bar {
            pb,
            start: std::time::Instant::now(),
            enabled: !quiet && io::stderr().is_terminal(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.pb.set_message(name.to_string());
        self.pb.set_position(0);
        if let Some(t) = total {
            self.pb.set_length(t);
        }
    }

    fn advance(&self, n: u64) {
        use std::sync::atomic::Ordering;
        self.pb.inc(n);
        if self.enabled
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() > std::time::Duration::from_secs(1)
        {
            self.shown.store(true, Ordering::Relaxed);
            self.pb
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
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
            "{} {dir} {}: {} ({} entries, {} objects, {} bytes copied, {:.2}s)",
            t.log, t.remote, t.outcome, t.entries, t.copied.objects, t.copied.bytes, t.elapsed
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

/// The exit status of a command's result; a failure is printed on one line first. A
/// closed output pipe (`remotelog log | head`) is not a failure.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
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
