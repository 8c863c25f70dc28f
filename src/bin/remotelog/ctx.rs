//! What every command gets besides its arguments: the store path, how much to say
//! (--quiet, --verbose), the output and a way to make progress bars.

use std::cell::RefCell;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::PathBuf;

use remotelog::FsStore;

use crate::output::Bar;

/// The context a command runs in.
pub struct Ctx {
    /// The store directory (`--store`).
    pub store: PathBuf,
    /// No progress bars, summaries or hints (`--quiet`).
    pub quiet: bool,
    /// More detail on stderr: each phase, each file skipped (`--verbose`).
    pub verbose: bool,
    out: RefCell<BufWriter<Stdout>>,
    /// Standard output is only a summary and --quiet silences it.
    silent_out: bool,
}

impl Ctx {
    /// A context on the process's standard output; `summary_only` says that what the
    /// command prints there is a summary, which --quiet silences (what a command was
    /// asked to show, like `log`, `cat` or `--json`, is never silenced).
    pub fn new(store: PathBuf, quiet: bool, verbose: bool, summary_only: bool) -> Ctx {
        Ctx {
            store,
            quiet,
            verbose,
            out: RefCell::new(BufWriter::new(io::stdout())),
            silent_out: quiet && summary_only,
        }
    }

    /// Standard output, buffered: what a command prints goes out when it flushes, when it
    /// ends, or before the error line if it fails.
    pub fn out(&self) -> Out<'_> {
        Out {
            buf: &self.out,
            silent: self.silent_out,
        }
    }

    /// Where a summary line goes when the rest of the output is not one: nowhere with
    /// --quiet.
    pub fn summary(&self) -> Out<'_> {
        Out {
            buf: &self.out,
            silent: self.quiet,
        }
    }

    /// Prints a hint or note on stderr unless --quiet.
    pub fn note(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("remotelog: {line}");
        }
    }

    /// Writes out what is buffered; a failure (a closed pipe, a full disk) is the
    /// command's failure.
    pub fn flush(&self) -> io::Result<()> {
        self.out().flush()
    }

    /// A progress bar labelled `label`, drawn only as `Bar` says.
    pub fn progress(&self, label: impl Into<String>) -> Bar {
        Bar::new(self.quiet, self.verbose, label.into())
    }

    /// The store of `--store`.
    pub fn open_store(&self) -> remotelog::Result<FsStore> {
        FsStore::open(&self.store)
    }
}

/// A handle on the context's output, or on nothing (a silenced summary). Each write
/// borrows the buffer only for itself, so handles may be copied and passed around freely.
#[derive(Clone, Copy)]
pub struct Out<'a> {
    buf: &'a RefCell<BufWriter<Stdout>>,
    silent: bool,
}

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.silent {
            return Ok(buf.len());
        }
        self.buf.borrow_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.silent {
            return Ok(());
        }
        self.buf.borrow_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.buf.borrow_mut().flush()
    }
}
