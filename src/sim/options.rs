//! `remotelog sim`'s options as text, the presets, and their translation into a
//! [`Matrix`]: the command line stays a thin layer.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::log::Settings;
use crate::mock::{Dist, Profile, Schedule};
use crate::sim::matrix::{Matrix, EMBED_ALL};
use crate::sim::{Push, Scenario};

/// Options as given; `None` takes the preset's value.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// A preset: `matrix` (default) or `mvds`.
    pub scenario: Option<String>,
    /// Built-in profile names or TOML files, comma-separated.
    pub profiles: Option<String>,
    /// Page sizes, comma-separated (0 = unbounded).
    pub page_sizes: Option<String>,
    /// Embed settings, comma-separated (`all` = every entry).
    pub embeds: Option<String>,
    /// Reader counts, comma-separated.
    pub readers: Option<String>,
    /// Number of seeds per cell.
    pub seeds: Option<u32>,
    /// The first seed.
    pub seed: Option<u64>,
    /// How long writers write (`12h`, `30m`, `90s`, or seconds).
    pub duration: Option<String>,
    /// How long the run goes on after that.
    pub drain: Option<String>,
    /// Writers (one log each).
    pub writers: Option<u32>,
    /// Mean time between a writer's messages.
    pub interval: Option<String>,
    /// Exponential gaps between messages instead of a fixed interval.
    pub poisson: bool,
    /// Body sizes in bytes: a number, or quantiles `p50=256,p90=1024`.
    pub size: Option<String>,
    /// `each`, `every:SECONDS` or `online`.
    pub push: Option<String>,
    /// When writers are online.
    pub writer_schedule: Option<String>,
    /// When readers are online.
    pub reader_schedule: Option<String>,
    /// Time between polls while online.
    pub poll: Option<String>,
    /// Time before a failed push is tried again.
    pub retry: Option<String>,
    /// Output directory.
    pub out: Option<PathBuf>,
}

/// A preset's values, all as text.
struct Preset {
    profiles: &'static str,
    page_sizes: &'static str,
    embeds: &'static str,
    readers: &'static str,
    seeds: u32,
    duration: &'static str,
    drain: &'static str,
    writers: u32,
    interval: &'static str,
    size: &'static str,
    push: &'static str,
    writer_schedule: &'static str,
    reader_schedule: &'static str,
    poll: &'static str,
    retry: &'static str,
}

/// The default matrix: every real profile, every page size and embed setting of the
/// issue; 8 simulated hours of a message a minute, read by two readers online half of
/// the time in half-hour sessions (sized to finish in under a minute on 2 cores).
const MATRIX: Preset = Preset {
    profiles: "ipfs,ipns,swarm,ens,s3,waku,lossy",
    page_sizes: "1,16,128,256,0",
    embeds: "0,1,8,all",
    readers: "2",
    seeds: 2,
    duration: "8h",
    drain: "2h",
    writers: 1,
    interval: "60",
    size: "p50=256,p90=1024",
    push: "each",
    writer_schedule: "always",
    reader_schedule: "onoff:1800,1800",
    poll: "60",
    retry: "30",
};

/// The MVDS simulation's setting (vacp2p/mvds simulation/): two nodes, each online in 10%
/// of 5 s epochs, a message every 5 s; here with the remote log as the helper.
const MVDS: Preset = Preset {
    profiles: "ideal,s3,lossy",
    page_sizes: "1,16,256",
    embeds: "0,1",
    readers: "1",
    seeds: 3,
    duration: "1h",
    drain: "1h",
    writers: 1,
    interval: "5",
    size: "p50=256,p90=1024",
    push: "each",
    writer_schedule: "bernoulli:0.1,5",
    reader_schedule: "bernoulli:0.1,5",
    poll: "5",
    retry: "5",
};

/// Parses `12h`, `30m`, `90s`, `2d` or plain seconds.
pub fn parse_secs(text: &str, what: &str) -> Result<f64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let mult = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => 0.0,
    };
    match num.parse::<f64>() {
        Ok(n) if mult > 0.0 && n.is_finite() && n >= 0.0 => Ok(n * mult),
        _ => Err(Error::Invalid(format!(
            "{what} {text:?}: give a number of seconds, or a number with s, m, h or d"
        ))),
    }
}

fn list<T>(text: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    text.split(',')
        .map(|x| {
            parse(x.trim()).ok_or_else(|| {
                Error::Invalid(format!("{what} {text:?}: {x:?} is not a valid value"))
            })
        })
        .collect()
}

/// Parses a size: a number of bytes, or quantiles `p50=256,p90=1024[,max=N]`.
pub fn parse_size(text: &str) -> Result<Dist> {
    let bad = |e: String| Error::Invalid(format!("--size {text:?}: {e}"));
    if let Ok(n) = text.trim().parse::<f64>() {
        return Dist::from_toml(&toml::Value::Float(n), "size").map_err(|e| bad(e.reason));
    }
    let mut table = toml::Table::new();
    for part in text.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("give a number, or quantiles like p50=256,p90=1024".into()))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| bad(format!("{v:?} is not a number")))?;
        table.insert(k.trim().to_string(), toml::Value::Float(v));
    }
    // A command-line value: the error names the flag, not a profile's field.
    Dist::from_toml(&toml::Value::Table(table), "size").map_err(|e| bad(e.reason))
}

impl SimOptions {
    /// The matrix these options describe.
    pub fn matrix(&self) -> Result<Matrix> {
        let preset = match self.scenario.as_deref() {
            None | Some("matrix") => &MATRIX,
            Some("mvds") => &MVDS,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "no scenario {other:?}: use matrix (the default) or mvds"
                )))
            }
        };
        let pick = |given: &Option<String>, default: &str| {
            given.clone().unwrap_or_else(|| default.to_string())
        };
        let profiles = pick(&self.profiles, preset.profiles)
            .split(',')
            .map(|p| Profile::load(p.trim()))
            .collect::<Result<Vec<_>>>()?;
        let page_sizes = list(
            &pick(&self.page_sizes, preset.page_sizes),
            "--page-sizes",
            |x| x.parse().ok(),
        )?;
        let embeds = list(
            &pick(&self.embeds, preset.embeds),
            "--embeds",
            |x| match x {
                "all" => Some(EMBED_ALL),
                n => n.parse().ok(),
            },
        )?;
        let readers = list(&pick(&self.readers, preset.readers), "--readers", |x| {
            x.parse().ok()
        })?;
        let seed = self.seed.unwrap_or(1);
        let seeds = self.seeds.unwrap_or(preset.seeds);
        if seeds == 0 || seeds > 1000 {
            return Err(Error::Invalid("--seeds: give 1 to 1,000".into()));
        }
        let base = Scenario {
            profile: profiles[0].clone(),
            settings: Settings::default(),
            duration: parse_secs(&pick(&self.duration, preset.duration), "--duration")?,
            drain: parse_secs(&pick(&self.drain, preset.drain), "--drain")?,
            writers: self.writers.unwrap_or(preset.writers),
            interval: parse_secs(&pick(&self.interval, preset.interval), "--interval")?,
            poisson: self.poisson,
            size: parse_size(&pick(&self.size, preset.size))?,
            push: Push::parse(&pick(&self.push, preset.push))?,
            writer_schedule: Schedule::parse(&pick(&self.writer_schedule, preset.writer_schedule))?,
            readers: readers[0],
            reader_schedule: Schedule::parse(&pick(&self.reader_schedule, preset.reader_schedule))?,
            poll: parse_secs(&pick(&self.poll, preset.poll), "--poll")?,
            retry: parse_secs(&pick(&self.retry, preset.retry), "--retry")?,
            seed,
        };
        let m = Matrix {
            base,
            profiles,
            page_sizes,
            embeds,
            readers,
            seeds: (0..seeds as u64).map(|i| seed.wrapping_add(i)).collect(),
        };
        m.validate()?;
        Ok(m)
    }

    /// The output directory.
    pub fn out_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("sim-out"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_secs("12h", "x").unwrap(), 43200.0);
        assert_eq!(parse_secs("90", "x").unwrap(), 90.0);
        assert_eq!(parse_secs("1.5m", "x").unwrap(), 90.0);
        assert!(parse_secs("3w", "x").is_err());
        assert!(parse_secs("-1", "x").is_err());
        assert_eq!(parse_size("512").unwrap(), Dist::Const(512.0));
        assert_eq!(
            parse_size("p50=256,p90=1024").unwrap(),
            Dist::lognormal(256.0, 1024.0)
        );
        assert!(parse_size("p50=256").is_err());
    }

    #[test]
    fn presets_build_valid_matrices() {
        let m = SimOptions::default().matrix().unwrap();
        assert_eq!(m.runs(), 7 * 5 * 4 * 2);
        let o = SimOptions {
            scenario: Some("mvds".into()),
            ..SimOptions::default()
        };
        assert_eq!(o.matrix().unwrap().base.interval, 5.0);
        let bad = SimOptions {
            scenario: Some("nope".into()),
            ..SimOptions::default()
        };
        assert!(bad.matrix().is_err());
    }
}
