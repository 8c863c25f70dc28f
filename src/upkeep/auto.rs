//! `gc --auto`: housekeeping that writers run by themselves, as git does. After an append
//! or a push, a store whose loose objects, packs or size have grown past the thresholds of
//! its `config` since the last housekeeping (format/store-v1.md section 2.1) is collected
//! (`gc` with the configured grace period) and repacked. It never holds the writer up for
//! long: when another upkeep runs, or writers still work on the store after a short wait,
//! it is skipped and tried after the next write.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::config::AutoGc;
use crate::store::dir::Usage;
use crate::store::Collected;
use crate::store::FsStore;
use crate::upkeep::repack::{self, Repacked};

/// How long housekeeping waits for other writers to finish before it skips.
pub const AUTO_WAIT: Duration = Duration::from_secs(2);

/// What an automatic housekeeping did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AutoRun {
    /// Why it ran: which threshold was passed.
    pub reason: String,
    /// What gc removed.
    pub collected: Collected,
    /// What repack merged.
    pub repacked: Repacked,
    /// The store before and after.
    pub before: Usage,
    /// The store after.
    pub after: Usage,
}

/// What happened when housekeeping was considered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not due (or turned off): nothing was done.
    NotDue,
    /// Due, but another upkeep or a writer was busy: skipped until the next write.
    Skipped(String),
    /// It ran.
    Ran(Box<AutoRun>),
}

/// Why housekeeping is due for a store at usage `now`, whose usage after its last
/// housekeeping was `last`, under `settings`; `None` when it is not.
pub fn due(settings: &AutoGc, now: &Usage, last: &Usage) -> Option<String> {
    if settings.loose == 0 {
        return None;
    }
    let loose = now.loose.saturating_sub(last.loose);
    if loose > settings.loose {
        return Some(format!(
            "{loose} loose objects since the last housekeeping (gc-auto = {})",
            settings.loose
        ));
    }
    let packs = now.packs.saturating_sub(last.packs);
    if settings.packs > 0 && packs > settings.packs {
        return Some(format!(
            "{packs} packs since the last housekeeping (gc-auto-packs = {})",
            settings.packs
        ));
    }
    let grown = now.bytes.saturating_sub(last.bytes);
    if settings.bytes > 0 && grown > settings.bytes.max(last.bytes) {
        return Some(format!(
            "the store grew by {grown} bytes since the last housekeeping (more than its size then, {} bytes, and than gc-auto-bytes = {})",
            last.bytes, settings.bytes
        ));
    }
    None
}

/// Runs gc and repack on `store` if its thresholds say so ([`due`]), and records its usage
/// after. Another upkeep running, or writers that keep working past [`AUTO_WAIT`], make
/// it skip; any other failure is returned (the caller's write has succeeded regardless).
pub fn gc_auto(store: &FsStore, progress: &dyn Progress) -> Result<Outcome> {
    let settings = store.auto_gc()?;
    if settings.loose == 0 {
        return Ok(Outcome::NotDue);
    }
    let before = store.usage()?;
    let Some(last) = store.last_auto_gc() else {
        // The first look at this store: what it holds now is the baseline. (Taking zero
        // would collect a new store right after its first large write, which made an
        // append of 50,000 messages take twice as long, for no garbage.)
        store.record_auto_gc(&before)?;
        return Ok(Outcome::NotDue);
    };
    let Some(reason) = due(&settings, &before, &last) else {
        return Ok(Outcome::NotDue);
    };
    let collected =
        match crate::upkeep::gc::gc_waiting(store, settings.prune, false, AUTO_WAIT, progress) {
            Ok(c) => c,
            Err(Error::Locked { hint, .. }) => return Ok(Outcome::Skipped(hint)),
            Err(e) => return Err(e),
        };
    let repacked = match repack::repack_waiting(store, repack::DEFAULT_TARGET, AUTO_WAIT, progress)
    {
        Ok(r) => r,
        Err(Error::Locked { hint, .. }) => return Ok(Outcome::Skipped(hint)),
        Err(e) => return Err(e),
    };
    let after = store.usage()?;
    store.record_auto_gc(&after)?;
    Ok(Outcome::Ran(Box::new(AutoRun {
        reason,
        collected,
        repacked,
        before,
        after,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(loose: u64, packs: u64, bytes: u64) -> Usage {
        Usage {
            loose,
            packs,
            bytes,
        }
    }

    #[test]
    fn due_when_a_threshold_is_passed_since_the_last_housekeeping() {
        let s = AutoGc {
            loose: 10,
            packs: 2,
            bytes: 1000,
            prune: Duration::ZERO,
        };
        let last = usage(5, 1, 4000);
        assert!(
            due(&s, &usage(15, 3, 8000), &last).is_none(),
            "nothing past"
        );
        let r = due(&s, &usage(16, 1, 4000), &last).unwrap();
        assert!(r.contains("11 loose objects"), "{r}");
        let r = due(&s, &usage(5, 4, 4000), &last).unwrap();
        assert!(r.contains("3 packs"), "{r}");
        // Growth counts past the larger of gc-auto-bytes and the size after last time.
        let r = due(&s, &usage(5, 1, 8001), &last).unwrap();
        assert!(r.contains("grew by 4001 bytes"), "{r}");
        assert!(due(&s, &usage(5, 1, 1900), &usage(0, 0, 900)).is_none());
        assert!(due(&s, &usage(5, 1, 1901), &usage(0, 0, 900)).is_some());
        // Off: gc-auto = 0 turns every threshold off; 0 turns one off.
        let off = AutoGc {
            loose: 0,
            ..s.clone()
        };
        assert!(due(&off, &usage(1 << 20, 1 << 20, 1 << 40), &last).is_none());
        let no_packs = AutoGc {
            packs: 0,
            bytes: 0,
            ..s
        };
        assert!(due(&no_packs, &usage(5, 1 << 20, 1 << 40), &last).is_none());
    }
}
