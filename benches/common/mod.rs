//! Code shared by the benchmark harnesses in `benches/` (`append.rs`, `transfer.rs`): the
//! settings, the fixed-seed corpus generator, and helpers to run, time and measure.
//!
//! Each harness includes it with `mod common;`; not every harness uses every item.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const DEFAULT_N: usize = 100_000;
pub const DEFAULT_RUNS: usize = 5;
/// Messages are spread over this many subfolders of the corpus directory.
pub const FOLDERS: usize = 100;
pub const MIN_LEN: usize = 200;
pub const MAX_LEN: usize = 2000;
pub const SEED: u64 = 0x5eed_1e55_0f0d_d5ee;
pub const GROUP: &str = "bench";
pub const TIMESTAMP: &str = "1700000000";
/// Sizes are reported in decimal megabytes, as in the notes on this machine.
pub const MB: f64 = 1e6;

pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => bail!("{name}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// The corpus

/// xorshift64*: small, fast, deterministic; good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), up to a negligible bias.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Number of distinct words the text is made of.
pub const VOCABULARY: usize = 8000;

/// Pronounceable pseudo-words of 1–4 syllables.
pub fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
        "br", "ch", "cl", "dr", "fr", "gr", "pl", "pr", "sh", "st", "th", "tr", "",
    ];
    const NUCLEI: &[&str] = &[
        "a", "e", "i", "o", "u", "y", "ai", "ea", "ee", "ie", "oo", "ou",
    ];
    const CODAS: &[&str] = &[
        "", "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "st", "ck",
    ];
    let mut words = Vec::with_capacity(VOCABULARY);
    let mut seen = std::collections::HashSet::new();
    while words.len() < VOCABULARY {
        let syllables = 1 + rng.below(3) + usize::from(rng.below(4) == 0);
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.below(ONSETS.len())]);
            w.push_str(NUCLEI[rng.below(NUCLEI.len())]);
            w.push_str(CODAS[rng.below(CODAS.len())]);
        }
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// One message: a 16-hex-digit random prefix, then sentences of words, `len` bytes in all.
pub fn message(rng: &mut Rng, words: &[String], len: usize) -> Vec<u8> {
    let mut s = format!("{:016x} ", rng.next());
    let mut sentence_left = 0;
    let mut capital = true;
    while s.len() < len {
        if sentence_left == 0 {
            sentence_left = 4 + rng.below(16);
        }
        // Zipf-like: a few words are very common, most are rare.
        let w = &words[((words.len() as f64) * rng.unit().powi(3)) as usize];
        if capital {
            s.push(w.as_bytes()[0].to_ascii_uppercase() as char);
            s.push_str(&w[1..]);
        } else {
            s.push_str(w);
        }
        sentence_left -= 1;
        capital = sentence_left == 0;
        if capital {
            s.push_str(if rng.below(6) == 0 { ".\n" } else { ". " });
        } else if rng.below(12) == 0 {
            s.push_str(", ");
        } else {
            s.push(' ');
        }
    }
    s.truncate(len);
    s.into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corpus {
    pub files: usize,
    pub bytes: u64,
}

/// Writes `n` messages to `dir/NN/IIIIIII.txt`, message i in folder i mod 100.
pub fn generate(dir: &Path, n: usize, seed: u64) -> Result<Corpus> {
    let mut rng = Rng::new(seed);
    let words = vocabulary(&mut rng);
    for f in 0..FOLDERS.min(n) {
        let d = dir.join(format!("{f:02}"));
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut bytes = 0;
    for i in 0..n {
        let len = MIN_LEN + rng.below(MAX_LEN - MIN_LEN + 1);
        let body = message(&mut rng, &words, len);
        let path = dir.join(format!("{:02}/{i:07}.txt", i % FOLDERS));
        fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
        bytes += body.len() as u64;
    }
    Ok(Corpus { files: n, bytes })
}

/// Reads every file below `dir` once (the warm-up), returning what it found.
pub fn read_all(dir: &Path) -> Result<Corpus> {
    let mut c = Corpus { files: 0, bytes: 0 };
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry?;
        if entry.file_type().is_file() {
            c.files += 1;
            c.bytes += fs::read(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?
                .len() as u64;
        }
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// The runs

/// Sizes of a directory tree's regular files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub files: u64,
    /// Sum of the files' lengths.
    pub bytes: u64,
    /// Allocated blocks (st_blocks × 512) of files and directories, like `du`.
    pub allocated: u64,
}

pub fn usage(dir: &Path) -> Result<Usage> {
    use std::os::unix::fs::MetadataExt;
    let mut u = Usage::default();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry?;
        let m = entry
            .metadata()
            .with_context(|| format!("stat {}", entry.path().display()))?;
        u.allocated += m.blocks() * 512;
        if m.is_file() {
            u.files += 1;
            u.bytes += m.len();
        }
    }
    Ok(u)
}
pub fn run_checked(cmd: &mut Command, what: &str) -> Result<Duration> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("starting {what} ({cmd:?})"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {cmd:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(wall)
}

pub fn sync_fs(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs {}", path.display()))
}

/// CPU time (user + system) of this process's waited-for children so far.
pub fn children_cpu() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the `(comm)`: state is field 3; cutime and cstime are fields 16 and 17.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .context("odd /proc/self/stat")
    };
    let total = ticks(16)? + ticks(17)?;
    // USER_HZ is 100 on every Linux this runs on.
    Ok(Duration::from_millis(total * 10))
}

// ---------------------------------------------------------------------------------------
// The report

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}
