//! When something is online: the remote service (a profile's availability) or a node (the
//! simulator's writers and readers). All times are microseconds of the run's clock.

use std::path::Path;

use crate::error::{Error, Result};
use crate::mock::dist::{hash_unit, Rng};
use crate::mock::{secs, Micros};

/// Longest search for the next online moment, in epochs or toggles: bounds the time spent
/// on a schedule that is (almost) never online.
const SEARCH_LIMIT: u64 = 10_000_000;

/// How online time is distributed.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Always online.
    Always,
    /// Alternating online and offline periods with exponentially distributed lengths of
    /// these means (seconds); the first period is online with probability on / (on + off).
    OnOff {
        /// Mean online period, seconds.
        on: f64,
        /// Mean offline period, seconds.
        off: f64,
    },
    /// Each epoch of `epoch` seconds is online with probability `p`, independently (the
    /// MVDS simulation's per-send loss when `epoch` is its send interval).
    Bernoulli {
        /// Probability of an online epoch.
        p: f64,
        /// Epoch length, seconds.
        epoch: f64,
    },
    /// Online exactly in these [start, end) intervals, in microseconds, sorted.
    Trace(Vec<(Micros, Micros)>),
}

impl Schedule {
    /// Parses the command-line form: `always`, `onoff:ON,OFF` (mean seconds), `bernoulli:P,EPOCH`
    /// or `trace:FILE` (a file of `START END` lines in seconds, `#` comments).
    pub fn parse(text: &str) -> Result<Schedule> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "schedule {text:?}: {why}; use always, onoff:ON,OFF (mean seconds online and offline), bernoulli:P,EPOCH or trace:FILE"
            ))
        };
        let (kind, args) = text.split_once(':').unwrap_or((text, ""));
        let nums = || -> Result<Vec<f64>> {
            args.split(',')
                .map(|a| a.trim().parse::<f64>().map_err(|_| bad("not a number")))
                .collect()
        };
        let s = match kind {
            "always" if args.is_empty() => Schedule::Always,
            "onoff" => match nums()?[..] {
                [on, off] => Schedule::OnOff { on, off },
                _ => return Err(bad("give two numbers")),
            },
            "bernoulli" => match nums()?[..] {
                [p, epoch] => Schedule::Bernoulli { p, epoch },
                _ => return Err(bad("give two numbers")),
            },
            "trace" if !args.is_empty() => Schedule::trace_file(Path::new(args))?,
            _ => return Err(bad("unknown form")),
        };
        if let Some(why) = s.problem() {
            return Err(bad(why));
        }
        Ok(s)
    }

    /// Reads a trace file: one `START END` pair of seconds per line.
    pub fn trace_file(path: &Path) -> Result<Schedule> {
        use crate::error::IoContext;
        let meta = std::fs::metadata(path).at(path)?;
        if meta.len() > 64 << 20 {
            return Err(Error::Invalid(format!(
                "{}: a trace file of {} bytes is too large (at most 64 MiB)",
                path.display(),
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).at(path)?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let pair: Vec<f64> = line
                .split_whitespace()
                .map(|x| x.parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::Invalid(format!(
                        "{} line {}: expected two numbers of seconds, START END",
                        path.display(),
                        n + 1
                    ))
                })?;
            match pair[..] {
                [a, b] if a.is_finite() && b.is_finite() && 0.0 <= a && a < b => {
                    out.push((secs(a), secs(b)))
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{} line {}: expected START END with 0 <= START < END",
                        path.display(),
                        n + 1
                    )))
                }
            }
        }
        out.sort();
        if out.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(Error::Invalid(format!(
                "{}: trace intervals overlap",
                path.display()
            )));
        }
        Ok(Schedule::Trace(out))
    }

    /// Checks the numbers: an [`Error::Invalid`] naming the schedule and what is wrong.
    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            Some(why) => Err(Error::Invalid(format!("schedule {}: {why}", self.label()))),
            None => Ok(()),
        }
    }

    /// What is wrong with the numbers, if anything.
    fn problem(&self) -> Option<&'static str> {
        match self {
            Schedule::OnOff { on, off }
                if !(on.is_finite() && off.is_finite()) || *on <= 0.0 || *off < 0.0 =>
            {
                Some("onoff needs a mean online time above 0 and an offline time of 0 or more")
            }
            Schedule::Bernoulli { p, epoch }
                if !((0.0..=1.0).contains(p) && epoch.is_finite() && *epoch >= 0.001) =>
            {
                Some("bernoulli needs 0 <= P <= 1 and an epoch of at least 0.001 s")
            }
            _ => None,
        }
    }

    /// The share of time online, on average.
    pub fn duty(&self) -> f64 {
        match self {
            Schedule::Always => 1.0,
            Schedule::OnOff { on, off } => on / (on + off),
            Schedule::Bernoulli { p, .. } => *p,
            Schedule::Trace(_) => f64::NAN,
        }
    }

    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            Schedule::Always => "always".into(),
            Schedule::OnOff { on, off } => format!("onoff:{on},{off}"),
            Schedule::Bernoulli { p, epoch } => format!("bernoulli:{p},{epoch}"),
            Schedule::Trace(t) => format!("trace({} intervals)", t.len()),
        }
    }
}

/// A schedule being followed: answers "online at t?" for one seeded realisation. The
/// on/off periods are drawn lazily and kept, so questions may come in any order.
#[derive(Debug, Clone)]
pub struct Availability {
    schedule: Schedule,
    seed: u64,
    rng: Rng,
    /// For OnOff: whether the first period is online, and the ends of periods so far.
    first_on: bool,
    ends: Vec<Micros>,
}

impl Availability {
    /// Follows `schedule` with randomness from `seed` and `labels`.
    pub fn new(schedule: Schedule, seed: u64, labels: &[u64]) -> Availability {
        let mut rng = Rng::derive(seed, labels);
        let first_on = match &schedule {
            Schedule::OnOff { .. } => rng.chance(schedule.duty()),
            _ => true,
        };
        Availability {
            schedule,
            seed: Rng::derive(seed, labels).next_u64(),
            rng,
            first_on,
            ends: Vec::new(),
        }
    }

    /// The schedule followed.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Draws on/off periods until they cover `t`.
    fn cover(&mut self, t: Micros) {
        let Schedule::OnOff { on, off } = self.schedule else {
            return;
        };
        let mut last = self.ends.last().copied().unwrap_or(0);
        while last <= t {
            let online = (self.ends.len() % 2 == 0) == self.first_on;
            let mean = if online { on } else { off };
            // At least a microsecond, so that periods always advance.
            last += secs(self.rng.exponential(mean)).max(1);
            self.ends.push(last);
        }
    }

    /// Whether it is online at `t`.
    pub fn online(&mut self, t: Micros) -> bool {
        match &self.schedule {
            Schedule::Always => true,
            Schedule::Bernoulli { p, epoch } => {
                let k = t / secs(*epoch).max(1);
                hash_unit(self.seed, &[k]) < *p
            }
            Schedule::Trace(iv) => {
                let i = iv.partition_point(|(_, end)| *end <= t);
                iv.get(i).is_some_and(|(start, _)| *start <= t)
            }
            Schedule::OnOff { .. } => {
                self.cover(t);
                let i = self.ends.partition_point(|end| *end <= t);
                (i % 2 == 0) == self.first_on
            }
        }
    }

    /// The first moment at or after `t` when it is online; `None` when that never comes
    /// (within the search limit).
    pub fn next_online(&mut self, t: Micros) -> Option<Micros> {
        if self.online(t) {
            return Some(t);
        }
        match self.schedule.clone() {
            Schedule::Always => Some(t),
            Schedule::Bernoulli { p, epoch } => {
                if p <= 0.0 {
                    return None;
                }
                let e = secs(epoch).max(1);
                let k0 = t / e + 1;
                (k0..k0 + SEARCH_LIMIT)
                    .find(|k| hash_unit(self.seed, &[*k]) < p)
                    .map(|k| k * e)
            }
            Schedule::Trace(iv) => {
                let i = iv.partition_point(|(_, end)| *end <= t);
                iv.get(i).map(|(start, _)| (*start).max(t))
            }
            Schedule::OnOff { .. } => {
                // Offline now: online from the end of the current period.
                let i = self.ends.partition_point(|end| *end <= t);
                self.ends.get(i).copied()
            }
        }
    }

    /// The end of the online period that contains `t` (`t` itself when offline);
    /// `Micros::MAX` when it never ends.
    pub fn online_until(&mut self, t: Micros) -> Micros {
        if !self.online(t) {
            return t;
        }
        match self.schedule.clone() {
            Schedule::Always => Micros::MAX,
            Schedule::Bernoulli { p, epoch } => {
                let e = secs(epoch).max(1);
                let mut k = t / e + 1;
                let stop = k + SEARCH_LIMIT;
                while k < stop && hash_unit(self.seed, &[k]) < p {
                    k += 1;
                }
                if k == stop {
                    Micros::MAX
                } else {
                    k * e
                }
            }
            Schedule::Trace(iv) => {
                let i = iv.partition_point(|(_, end)| *end <= t);
                iv.get(i).map_or(t, |(_, end)| *end)
            }
            Schedule::OnOff { .. } => {
                let i = self.ends.partition_point(|end| *end <= t);
                self.ends.get(i).copied().unwrap_or(Micros::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share_online(s: Schedule) -> f64 {
        let mut a = Availability::new(s, 42, &[1]);
        let n = 100_000u64;
        (0..n).filter(|i| a.online(i * 1_000_000)).count() as f64 / n as f64
    }

    #[test]
    fn duty_cycles_come_out_as_asked() {
        let on = share_online(Schedule::OnOff {
            on: 60.0,
            off: 540.0,
        });
        assert!((on - 0.1).abs() < 0.02, "{on}");
        let b = share_online(Schedule::Bernoulli { p: 0.1, epoch: 5.0 });
        assert!((b - 0.1).abs() < 0.01, "{b}");
    }

    #[test]
    fn next_online_and_until_agree_with_online() {
        for s in [
            Schedule::OnOff {
                on: 30.0,
                off: 90.0,
            },
            Schedule::Bernoulli { p: 0.2, epoch: 5.0 },
            Schedule::Trace(vec![(secs(10.0), secs(20.0)), (secs(50.0), secs(60.0))]),
        ] {
            let mut a = Availability::new(s.clone(), 3, &[9]);
            for t in (0..40).map(|i| i * 1_500_000) {
                if let Some(n) = a.next_online(t) {
                    assert!(n >= t && a.online(n), "{s:?} at {t}: {n}");
                    let until = a.online_until(n);
                    assert!(until > n);
                    if until != Micros::MAX {
                        assert!(!a.online(until), "{s:?}: still online at {until}");
                        assert!(a.online(until - 1));
                    }
                }
            }
        }
    }

    #[test]
    fn trace_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "# online intervals\n10 20\n\n50.5 60 # late\n").unwrap();
        let s = Schedule::parse(&format!("trace:{}", good.display())).unwrap();
        assert_eq!(
            s,
            Schedule::Trace(vec![(secs(10.0), secs(20.0)), (secs(50.5), secs(60.0))])
        );
        let mut a = Availability::new(s, 1, &[1]);
        assert!(!a.online(secs(9.0)) && a.online(secs(10.0)) && !a.online(secs(20.0)));
        assert_eq!(a.next_online(secs(21.0)), Some(secs(50.5)));
        assert_eq!(a.next_online(secs(61.0)), None);
        for (text, needle) in [
            ("10\n", "line 1"),
            ("5 20\n10 30\n", "overlap"),
            ("20 10\n", "line 1"),
        ] {
            let bad = dir.path().join("bad");
            std::fs::write(&bad, text).unwrap();
            let e = Schedule::parse(&format!("trace:{}", bad.display()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let e = Schedule::parse("trace:/nonexistent/trace")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/trace"), "{e}");
    }

    #[test]
    fn parse_forms() {
        assert_eq!(Schedule::parse("always").unwrap(), Schedule::Always);
        assert_eq!(
            Schedule::parse("bernoulli:0.1,5").unwrap(),
            Schedule::Bernoulli { p: 0.1, epoch: 5.0 }
        );
        assert!(Schedule::parse("bernoulli:2,5").is_err());
        assert!(Schedule::parse("onoff:1").is_err());
        assert!(Schedule::parse("sometimes").is_err());
    }

    #[test]
    fn validate_is_a_typed_error_naming_the_schedule() {
        let bad = Schedule::Bernoulli { p: 2.0, epoch: 5.0 };
        let e = bad.validate().unwrap_err();
        assert!(
            matches!(&e, Error::Invalid(m) if m.starts_with("schedule bernoulli:2,5: bernoulli needs")),
            "{e:?}"
        );
        assert!(Schedule::OnOff { on: 1.0, off: 0.0 }.validate().is_ok());
        // The command-line form keeps naming the text as given.
        let e = Schedule::parse("onoff:0, 1").unwrap_err().to_string();
        assert!(e.starts_with("schedule \"onoff:0, 1\": onoff needs"), "{e}");
    }
}
