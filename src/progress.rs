//! Progress reporting for long operations, without tying the library to a terminal: the
//! CLI passes an implementation that draws bars, tests and libraries pass [`Silent`].

/// Receives progress of a long operation.
pub trait Progress: Sync {
    /// A new phase starts; `total` is the amount of work when known.
    fn phase(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The operation is over (success or not).
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
