//! Randomness for the mock and the simulator: a small seeded generator whose streams are
//! derived from one seed (so a run repeats exactly, whatever order actors run in), and
//! distributions given by quantiles, as published measurements give them.

use std::collections::BTreeMap;

use crate::error::{DecodeError, Format};

/// SplitMix64: tiny, fast and good enough for simulation (it passes BigCrush); written
/// here so that the sequence can never change under us with a dependency's version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one purpose, derived from the run's seed and labels naming the
    /// purpose (an actor, a schedule), so streams do not depend on each other's use.
    pub fn derive(seed: u64, labels: &[u64]) -> Rng {
        let mut r = Rng(seed ^ 0x6a09_e667_f3bc_c909);
        let mut state = r.next_u64();
        for l in labels {
            r.0 = state ^ l.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            state = r.next_u64();
        }
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1): never exactly 0 or 1, so logs and inverse
    /// CDFs stay finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
}

/// A stateless hash of a seed and labels to (0, 1), for decisions that must not depend on
/// the order of questions (a Bernoulli schedule's epoch k).
pub fn hash_unit(seed: u64, labels: &[u64]) -> f64 {
    Rng::derive(seed, labels).unit()
}

/// The inverse of the standard normal CDF (Acklam's rational approximation, relative
/// error below 1.2e-9): turns a uniform sample into a normal one exactly at its quantile.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// A distribution of non-negative values (seconds, bytes).
///
/// Given by quantiles, as measurements are published: `{ p50 = 12.6, p90 = 49 }`. Between
/// two given quantiles the value is log-normal (linear in the normal score against the log
/// of the value), so two points are exactly the log-normal with mu = ln p50 and
/// sigma = (ln p90 − ln p50) / 1.2816, and more points follow the measured shape; beyond
/// the outermost points the nearest segment's slope continues. A plain number is a
/// constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Always this value.
    Const(f64),
    /// Quantile points (probability, value), sorted, at least two, values > 0.
    Quantiles {
        /// (q, value) with 0 < q < 1, increasing in both.
        points: Vec<(f64, f64)>,
        /// Largest value sampled, if any.
        max: Option<f64>,
    },
}

impl Default for Dist {
    fn default() -> Self {
        Dist::Const(0.0)
    }
}

impl Dist {
    /// The log-normal with the given median and 90th percentile.
    pub fn lognormal(p50: f64, p90: f64) -> Dist {
        Dist::Quantiles {
            points: vec![(0.5, p50), (0.9, p90)],
            max: None,
        }
    }

    /// Parses `{ p50 = .., p90 = .., max = .. }` or a number; `what` names the field in
    /// errors, which are of a profile's format (a command line's caller names its flag).
    pub fn from_toml(v: &toml::Value, what: &str) -> Result<Dist, DecodeError> {
        let bad = |reason: String| DecodeError::new(Format::Profile, reason);
        match v {
            toml::Value::Integer(i) if *i >= 0 => Ok(Dist::Const(*i as f64)),
            toml::Value::Float(f) if f.is_finite() && *f >= 0.0 => Ok(Dist::Const(*f)),
            toml::Value::Table(t) => {
                let mut points = BTreeMap::new();
                let mut max = None;
                for (k, v) in t {
                    let x = match v {
                        toml::Value::Integer(i) => *i as f64,
                        toml::Value::Float(f) => *f,
                        _ => return Err(bad(format!("{what}.{k}: expected a number"))),
                    };
                    if !x.is_finite() || x <= 0.0 {
                        return Err(bad(format!("{what}.{k}: must be a number above 0")));
                    }
                    if k == "max" {
                        max = Some(x);
                        continue;
                    }
                    let q: f64 = k
                        .strip_prefix('p')
                        .and_then(|n| n.parse().ok())
                        .filter(|q: &f64| *q > 0.0 && *q < 100.0)
                        .ok_or_else(|| {
                            bad(format!(
                                "{what}.{k}: keys are quantiles like p50 or p99.9, or max"
                            ))
                        })?;
                    // Keyed in thousandths so that the map sorts them numerically.
                    points.insert((q * 1000.0).round() as u64, (q / 100.0, x));
                }
                let points: Vec<(f64, f64)> = points.into_values().collect();
                if points.len() < 2 {
                    return Err(bad(format!(
                        "{what}: give at least two quantiles (e.g. {{ p50 = 1.0, p90 = 3.0 }}) or one number"
                    )));
                }
                if points.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(bad(format!("{what}: quantile values must not decrease")));
                }
                Ok(Dist::Quantiles { points, max })
            }
            _ => Err(bad(format!(
                "{what}: expected a number or a table of quantiles like {{ p50 = 1.0, p90 = 3.0 }}"
            ))),
        }
    }

    /// One sample.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Dist::Const(c) => *c,
            Dist::Quantiles { .. } => self.at_score(normal_quantile(rng.unit())),
        }
    }

    /// The exact `q` quantile of the distribution (0 < q < 1).
    pub fn quantile(&self, q: f64) -> f64 {
        match self {
            Dist::Const(c) => *c,
            Dist::Quantiles { .. } => self.at_score(normal_quantile(q)),
        }
    }

    /// The value at normal score `z`.
    fn at_score(&self, z: f64) -> f64 {
        let Dist::Quantiles { points, max } = self else {
            return self.quantile(0.5);
        };
        // Find the segment: the last one whose start lies at or below z (or the first).
        let scores: Vec<(f64, f64)> = points
            .iter()
            .map(|(q, x)| (normal_quantile(*q), x.ln()))
            .collect();
        let i = scores
            .windows(2)
            .position(|w| z <= w[1].0)
            .unwrap_or(scores.len() - 2);
        let (z0, l0) = scores[i];
        let (z1, l1) = scores[i + 1];
        let slope = if z1 > z0 { (l1 - l0) / (z1 - z0) } else { 0.0 };
        let x = (l0 + slope * (z - z0)).exp();
        match max {
            Some(m) => x.min(*m),
            None => x,
        }
    }

    /// The median, for summaries.
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The points given (q, value), for tests and documentation.
    pub fn points(&self) -> Vec<(f64, f64)> {
        match self {
            Dist::Const(c) => vec![(0.5, *c)],
            Dist::Quantiles { points, .. } => points.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_known_values() {
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.9) - 1.281_551_565_5).abs() < 1e-6);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-6);
    }

    #[test]
    fn two_points_are_the_lognormal_fit() {
        let d = Dist::lognormal(12.64, 49.0);
        let sigma = (49.0f64.ln() - 12.64f64.ln()) / 1.281_551_565_5;
        let p99 = (12.64f64.ln() + sigma * 2.326_347_874).exp();
        assert!((d.quantile(0.99) / p99 - 1.0).abs() < 1e-6);
        assert!((d.quantile(0.5) - 12.64).abs() < 1e-9);
    }

    #[test]
    fn same_seed_same_stream_and_labels_separate_streams() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::derive(7, &[1, 2]);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::derive(7, &[1, 2]);
                move |_| r.next_u64()
            })
            .collect();
        let c = Rng::derive(7, &[1, 3]).next_u64();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
    }

    #[test]
    fn toml_forms_and_errors() {
        let v: toml::Value =
            toml::from_str::<toml::Table>("d = { p5 = 2.97, p50 = 12.64, p90 = 49.0 }").unwrap()
                ["d"]
                .clone();
        let d = Dist::from_toml(&v, "d").unwrap();
        assert_eq!(d.points().len(), 3);
        let bad: toml::Value =
            toml::from_str::<toml::Table>("d = { p50 = 2 }").unwrap()["d"].clone();
        let e = Dist::from_toml(&bad, "x.latency").unwrap_err();
        assert!(e.reason.contains("x.latency"), "{e}");
        assert_eq!(e.format, Format::Profile);
        let bad: toml::Value =
            toml::from_str::<toml::Table>("d = { q50 = 2, p90 = 3 }").unwrap()["d"].clone();
        assert!(Dist::from_toml(&bad, "d").is_err());
    }
}
