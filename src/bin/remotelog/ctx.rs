//! What every command gets besides its arguments: the store path, the quiet flag, the
//! output and a way to make progress bars.

use std::cell::RefCell;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::PathBuf;

use remotelog::FsStore;

use crate::output::Bar;

/// The context a command runs in.
pub struct Ctx {
    /// The store directory (`--store`).
    pub store: PathBuf,
    /// No progress bars (`--quiet`).
    pub quiet: bool,
    out: RefCell<BufWriter<Stdout>>,
}

impl Ctx {
    /// A context on the process's standard output.
    pub fn new(store: PathBuf, quiet: bool) -> Ctx {
        Ctx {
            store,
            quiet,
            out: RefCell::new(BufWriter::new(io::stdout())),
        }
    }

    /// Standard output, buffered: what a command prints goes out when it flushes, when it
    /// ends, or before the error line if it fails.
    pub fn out(&self) -> Out<'_> {
        Out(&self.out)
    }

    /// Writes out what is buffered; a failure (a closed pipe, a full disk) is the
    /// command's failure.
    pub fn flush(&self) -> io::Result<()> {
        self.out().flush()
    }

    /// A progress bar labelled `label`, drawn only as `Bar` says.
    pub fn progress(&self, label: impl Into<String>) -> Bar {
        Bar::new(self.quiet, label.into())
    }

    /// The store of `--store`.
    pub fn open_store(&self) -> remotelog::Result<FsStore> {
        FsStore::open(&self.store)
    }
}

/// A handle on the context's output. Each write borrows the buffer only for itself, so
/// handles may be copied and passed around freely.
#[derive(Clone, Copy)]
pub struct Out<'a>(&'a RefCell<BufWriter<Stdout>>);

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}
