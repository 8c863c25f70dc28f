//! The matrix of runs: profile × page size × embed × readers × seeds, run on all cores,
//! aggregated per cell (everything but the seed), in a fixed order whatever the threads do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::log::Settings;
use crate::mock::{Micros, Profile, Stats};
use crate::sim::{run, Cause, RunResult, Scenario};

/// `embed` meaning "every entry" (shown as `all`).
pub const EMBED_ALL: u64 = u64::MAX;

/// What to run.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The scenario every run starts from (its profile, settings, readers and seed are
    /// replaced per run).
    pub base: Scenario,
    /// Remotes.
    pub profiles: Vec<Profile>,
    /// Page capacities (0 = unbounded).
    pub page_sizes: Vec<u64>,
    /// Embed counts ([`EMBED_ALL`] = all).
    pub embeds: Vec<u64>,
    /// Numbers of readers.
    pub readers: Vec<u32>,
    /// Seeds; results of one cell are pooled over them.
    pub seeds: Vec<u64>,
}

/// One cell's results, pooled over its seeds.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The profile's name.
    pub profile: String,
    /// Its cost unit.
    pub cost_unit: String,
    /// Page capacity.
    pub page_size: u64,
    /// Embed count.
    pub embed: u64,
    /// Readers.
    pub readers: u32,
    /// Runs pooled.
    pub runs: u32,
    /// Messages created, over all runs.
    pub messages: u64,
    /// (reader, message) deliveries.
    pub delivered: u64,
    /// Body bytes delivered.
    pub delivered_bytes: u64,
    /// Delivery latencies, sorted.
    pub latencies: Vec<Micros>,
    /// Catch-up times, sorted.
    pub catchups: Vec<Micros>,
    /// Sessions that did not catch up.
    pub catchup_incomplete: u64,
    /// The readers' requests.
    pub reader_stats: Stats,
    /// The writers' requests.
    pub writer_stats: Stats,
    /// Missing (reader, message) pairs by cause.
    pub missing: BTreeMap<Cause, u64>,
}

impl Cell {
    /// The `q` quantile of the delivery latencies, in seconds (NaN when none).
    pub fn latency(&self, q: f64) -> f64 {
        quantile(&self.latencies, q)
    }

    /// The `q` quantile of the catch-up times, in seconds.
    pub fn catchup(&self, q: f64) -> f64 {
        quantile(&self.catchups, q)
    }

    /// (reader, message) pairs that should have been delivered.
    pub fn expected(&self) -> u64 {
        self.messages * self.readers as u64
    }

    /// Missing pairs.
    pub fn missing_total(&self) -> u64 {
        self.missing.values().sum()
    }

    /// `n` per delivered message.
    pub fn per_message(&self, n: u64) -> f64 {
        if self.delivered == 0 {
            f64::NAN
        } else {
            n as f64 / self.delivered as f64
        }
    }

    /// Bytes moved by everyone per body byte delivered.
    pub fn bandwidth(&self) -> f64 {
        let moved = self.reader_stats.bytes_up
            + self.reader_stats.bytes_down
            + self.writer_stats.bytes_up
            + self.writer_stats.bytes_down;
        if self.delivered_bytes == 0 {
            f64::NAN
        } else {
            moved as f64 / self.delivered_bytes as f64
        }
    }
}

/// Nearest-rank quantile of sorted microseconds, in seconds.
pub fn quantile(sorted: &[Micros], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

impl Matrix {
    /// The cells in output order: profile, page size, embed, readers.
    fn cells(&self) -> Vec<(usize, u64, u64, u32)> {
        let mut out = Vec::new();
        for p in 0..self.profiles.len() {
            for &c in &self.page_sizes {
                for &e in &self.embeds {
                    for &r in &self.readers {
                        out.push((p, c, e, r));
                    }
                }
            }
        }
        out
    }

    /// How many runs the matrix makes.
    pub fn runs(&self) -> usize {
        // From the lengths, not the cells: the lists come from the command line, and their
        // product may be more cells than memory holds (or than a usize counts).
        [
            self.page_sizes.len(),
            self.embeds.len(),
            self.readers.len(),
            self.seeds.len(),
        ]
        .iter()
        .fold(self.profiles.len(), |n, k| n.saturating_mul(*k))
    }

    /// Checks the matrix and its base scenario.
    pub fn validate(&self) -> Result<()> {
        if self.profiles.is_empty()
            || self.page_sizes.is_empty()
            || self.embeds.is_empty()
            || self.readers.is_empty()
            || self.seeds.is_empty()
        {
            return Err(Error::Invalid(
                "the matrix is empty: give at least one profile, page size, embed, readers count and seed".into(),
            ));
        }
        if self.runs() > 100_000 {
            return Err(Error::Invalid(format!(
                "{} runs: the matrix may have at most 100,000",
                self.runs()
            )));
        }
        for &r in &self.readers {
            Scenario {
                readers: r,
                ..self.base.clone()
            }
            .validate()?;
        }
        Ok(())
    }

    /// Runs every cell and seed on `jobs` threads; the result does not depend on `jobs`.
    pub fn run(&self, jobs: usize) -> Result<Vec<Cell>> {
        self.validate()?;
        let cells = self.cells();
        let work: Vec<(usize, u64)> = (0..cells.len())
            .flat_map(|c| self.seeds.iter().map(move |s| (c, *s)))
            .collect();
        let results: Mutex<Vec<Option<Result<RunResult>>>> =
            Mutex::new((0..work.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, 64) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(c, seed)) = work.get(i) else { break };
                    let (p, capacity, embed, readers) = cells[c];
                    let scenario = Scenario {
                        profile: self.profiles[p].clone(),
                        settings: Settings { capacity, embed },
                        readers,
                        seed,
                        ..self.base.clone()
                    };
                    let r = run(&scenario);
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(work.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Cell> = cells
            .iter()
            .map(|&(p, page_size, embed, readers)| Cell {
                profile: self.profiles[p].name.clone(),
                cost_unit: self.profiles[p].cost.unit.clone(),
                page_size,
                embed,
                readers,
                runs: 0,
                messages: 0,
                delivered: 0,
                delivered_bytes: 0,
                latencies: Vec::new(),
                catchups: Vec::new(),
                catchup_incomplete: 0,
                reader_stats: Stats::default(),
                writer_stats: Stats::default(),
                missing: BTreeMap::new(),
            })
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            let (c, seed) = work[i];
            let r = match r {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    let (p, cap, embed, readers) = cells[c];
                    return Err(Error::Invalid(format!(
                        "run {} page size {cap} embed {} readers {readers} seed {seed}: {e}",
                        self.profiles[p].name,
                        embed_label(embed)
                    )));
                }
                None => continue,
            };
            let cell = &mut out[c];
            cell.runs += 1;
            cell.messages += r.messages;
            cell.delivered += r.delivered;
            cell.delivered_bytes += r.delivered_bytes;
            cell.latencies.extend(r.latencies);
            cell.catchups.extend(r.catchups);
            cell.catchup_incomplete += r.catchup_incomplete;
            cell.reader_stats.add(&r.readers);
            cell.writer_stats.add(&r.writers);
            for (k, v) in r.missing {
                *cell.missing.entry(k).or_default() += v;
            }
        }
        for cell in &mut out {
            cell.latencies.sort_unstable();
            cell.catchups.sort_unstable();
        }
        Ok(out)
    }
}

/// `all` for [`EMBED_ALL`], else the number.
pub fn embed_label(e: u64) -> String {
    if e == EMBED_ALL {
        "all".into()
    } else {
        e.to_string()
    }
}

/// `unbounded` for 0, else the number.
pub fn page_label(c: u64) -> String {
    if c == 0 {
        "unbounded".into()
    } else {
        c.to_string()
    }
}
