//! Progress reporting for long operations, without tying the library to a terminal: the
//! CLI passes an implementation that draws bars, tests and libraries pass [`Silent`].

/// Receives progress of a long operation.
pub trait Progress: Sync {
    /// A new phase starts; `total` is the amount of work when known.
    fn phase(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// `n` more bytes of data were read, copied or written in the current phase, for a
    /// rate (the phase's `total` counts its own units: entries, objects).
    fn bytes(&self, _n: u64) {}
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

/// A [`Progress`] that records what it is told, for tests of what operations report.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Recording {
    /// Each phase's name and total, in order.
    pub phases: std::sync::Mutex<Vec<(String, Option<u64>)>>,
    /// Units advanced, over all phases.
    pub units: std::sync::atomic::AtomicU64,
    /// Bytes reported, over all phases.
    pub bytes: std::sync::atomic::AtomicU64,
    /// Whether `finish` was called.
    pub finished: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Progress for Recording {
    fn phase(&self, name: &str, total: Option<u64>) {
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        phases.push((name.to_string(), total));
    }
    fn advance(&self, n: u64) {
        self.units
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn bytes(&self, n: u64) {
        self.bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
