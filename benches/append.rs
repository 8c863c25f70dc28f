//! Benchmark harness (not a unit test): `remotelog append --dir` of a generated corpus of
//! small text messages, against `tar --zstd -cf` of the same files.
//!
//! Run with `cargo bench --bench append`; see bench/README.md for what it measures and how
//! to read the table. Settings come from the environment:
//!
//! - `BENCH_N`: number of messages (default 100000);
//! - `BENCH_RUNS`: alternating append/tar runs (default 5);
//! - `BENCH_TMPDIR`: where to put the scratch directory (default: cargo's target tmp dir);
//! - `BENCH_ZSTD_LEVEL`: passed to `remotelog init --zstd-level` (default: remotelog's);
//! - `BENCH_KEEP=1`: keep the scratch directory (corpus, stores, archives).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

const DEFAULT_N: usize = 100_000;
const DEFAULT_RUNS: usize = 5;
/// Messages are spread over this many subfolders of the corpus directory.
const FOLDERS: usize = 100;
const MIN_LEN: usize = 200;
const MAX_LEN: usize = 2000;
const SEED: u64 = 0x5eed_1e55_0f0d_d5ee;
const GROUP: &str = "bench";
const TIMESTAMP: &str = "1700000000";
/// Sizes are reported in decimal megabytes, as in the notes on this machine.
const MB: f64 = 1e6;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench append: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let n = env_usize("BENCH_N", DEFAULT_N)?;
    let runs = env_usize("BENCH_RUNS", DEFAULT_RUNS)?;
    ensure!(n > 0 && runs > 0, "BENCH_N and BENCH_RUNS must be positive");
    let zstd_level = std::env::var("BENCH_ZSTD_LEVEL").ok();
    let keep = std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_remotelog"));
    let base = std::env::var_os("BENCH_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-append-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
    let root = scratch.path().to_path_buf();
    let msgdir = root.join("messages");

    eprintln!("bench append: binary {}", exe.display());
    eprintln!(
        "bench append: generating {n} messages in {} (not timed)",
        msgdir.display()
    );
    let t = Instant::now();
    let corpus = generate(&msgdir, n, SEED)?;
    eprintln!(
        "bench append: generated {} files, {:.1} MB in {:.1} s",
        corpus.files,
        corpus.bytes as f64 / MB,
        t.elapsed().as_secs_f64()
    );
    let warm = read_all(&msgdir)?;
    ensure!(
        warm == corpus,
        "warm-up read found {warm:?}, generated {corpus:?}"
    );
    eprintln!("bench append: warm-up read done; {runs} alternating runs follow");

    let mut appends = Vec::with_capacity(runs);
    let mut tars = Vec::with_capacity(runs);
    for r in 1..=runs {
        // Stores and archives are kept until the end: on this ext4 (no journal) creating
        // files within a minute or so of deleting many is several times slower, which would
        // be charged to the next run.
        let store = root.join(format!("store-{r}"));
        let a = append_run(&exe, &store, &msgdir, zstd_level.as_deref())?;
        let archive = root.join(format!("archive-{r}.tar.zst"));
        let t = tar_run(&archive, &msgdir)?;
        eprintln!(
            "bench append: run {r}/{runs}: append {:.3} s (cpu {:.2} s, {:.1} MB, {} files), tar {:.3} s (+fsync {:.3} s, cpu {:.2} s, {:.1} MB)",
            a.wall.as_secs_f64(),
            a.cpu.as_secs_f64(),
            a.usage.bytes as f64 / MB,
            a.usage.files,
            t.wall.as_secs_f64(),
            t.wall_fsync.as_secs_f64(),
            t.cpu.as_secs_f64(),
            t.size as f64 / MB
        );
        if r == runs {
            check_store(&exe, &store, n)?;
        }
        appends.push(a);
        tars.push(t);
    }
    print!(
        "{}",
        report(n, runs, &corpus, zstd_level.as_deref(), &appends, &tars)
    );
    std::io::stdout().flush()?;
    if keep {
        eprintln!("bench append: kept {}", scratch.keep().display());
    } else {
        scratch
            .close()
            .with_context(|| format!("removing {}", root.display()))?;
    }
    Ok(())
}

fn env_usize(name: &str, default: usize) -> Result<usize> {
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
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), up to a negligible bias.
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Number of distinct words the text is made of.
const VOCABULARY: usize = 8000;

/// Pronounceable pseudo-words of 1–4 syllables.
fn vocabulary(rng: &mut Rng) -> Vec<String> {
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
fn message(rng: &mut Rng, words: &[String], len: usize) -> Vec<u8> {
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
struct Corpus {
    files: usize,
    bytes: u64,
}

/// Writes `n` messages to `dir/NN/IIIIIII.txt`, message i in folder i mod 100.
fn generate(dir: &Path, n: usize, seed: u64) -> Result<Corpus> {
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
fn read_all(dir: &Path) -> Result<Corpus> {
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
struct Usage {
    files: u64,
    /// Sum of the files' lengths.
    bytes: u64,
    /// Allocated blocks (st_blocks × 512) of files and directories, like `du`.
    allocated: u64,
}

fn usage(dir: &Path) -> Result<Usage> {
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

struct AppendRun {
    wall: Duration,
    /// User + system CPU time of the append process (10 ms resolution).
    cpu: Duration,
    usage: Usage,
}

struct TarRun {
    wall: Duration,
    /// `tar` plus an fsync of the archive, for a durable result like append's.
    wall_fsync: Duration,
    /// User + system CPU time of tar and the zstd it runs.
    cpu: Duration,
    size: u64,
}

fn append_run(exe: &Path, store: &Path, msgdir: &Path, level: Option<&str>) -> Result<AppendRun> {
    let mut init = Command::new(exe);
    init.arg("--store").arg(store).arg("init");
    if let Some(l) = level {
        init.arg("--zstd-level").arg(l);
    }
    run_checked(&mut init, "remotelog init")?;
    // Leave no dirty pages of earlier runs for the append's syncfs to flush.
    sync_fs(store)?;
    let mut append = Command::new(exe);
    append
        .arg("--store")
        .arg(store)
        .args([
            "append",
            "--group",
            GROUP,
            "--timestamp",
            TIMESTAMP,
            "--dir",
        ])
        .arg(msgdir);
    let cpu_before = children_cpu()?;
    let wall = run_checked(&mut append, "remotelog append")?;
    let cpu = children_cpu()?.saturating_sub(cpu_before);
    Ok(AppendRun {
        wall,
        cpu,
        usage: usage(store)?,
    })
}

fn tar_run(archive: &Path, msgdir: &Path) -> Result<TarRun> {
    sync_fs(msgdir)?;
    let mut tar = Command::new("tar");
    tar.arg("--zstd")
        .arg("-cf")
        .arg(archive)
        .arg("-C")
        .arg(msgdir)
        .arg(".");
    let cpu_before = children_cpu()?;
    let start = Instant::now();
    let wall = run_checked(&mut tar, "tar --zstd")?;
    let cpu = children_cpu()?.saturating_sub(cpu_before);
    File::open(archive)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", archive.display()))?;
    let wall_fsync = start.elapsed();
    let size = fs::metadata(archive)
        .with_context(|| format!("stat {}", archive.display()))?
        .len();
    Ok(TarRun {
        wall,
        wall_fsync,
        cpu,
        size,
    })
}

/// Runs a command with stdout discarded; fails with its stderr unless it exits 0.
fn run_checked(cmd: &mut Command, what: &str) -> Result<Duration> {
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

/// `remotelog check` must pass and count all `n` messages.
fn check_store(exe: &Path, store: &Path, n: usize) -> Result<()> {
    let out = Command::new(exe)
        .arg("--store")
        .arg(store)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .context("starting remotelog check")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "remotelog check of {} FAILED ({}):\n{}{}",
            store.display(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want = format!("{n} entries");
    ensure!(
        stdout.starts_with("ok:") && stdout.contains(&want),
        "remotelog check of {} did not report `ok` with {want}:\n{stdout}",
        store.display()
    );
    eprintln!("bench append: check of the last store: {}", stdout.trim());
    Ok(())
}

fn sync_fs(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs {}", path.display()))
}

/// CPU time (user + system) of this process's waited-for children so far.
fn children_cpu() -> Result<Duration> {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn report(
    n: usize,
    runs: usize,
    corpus: &Corpus,
    level: Option<&str>,
    appends: &[AppendRun],
    tars: &[TarRun],
) -> String {
    let secs = |v: Vec<Duration>| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let a_wall = secs(appends.iter().map(|a| a.wall).collect());
    let a_cpu = secs(appends.iter().map(|a| a.cpu).collect());
    let t_wall = secs(tars.iter().map(|t| t.wall).collect());
    let t_sync = secs(tars.iter().map(|t| t.wall_fsync).collect());
    let t_cpu = secs(tars.iter().map(|t| t.cpu).collect());
    let ma = median(a_wall.clone());
    let mt = median(t_wall.clone());
    let mts = median(t_sync.clone());
    let (a_lo, a_hi) = min_max(&a_wall);
    let (t_lo, t_hi) = min_max(&t_wall);
    let med_u = |f: fn(&Usage) -> u64| median(appends.iter().map(|a| f(&a.usage) as f64).collect());
    let store_bytes = med_u(|u| u.bytes);
    let store_alloc = med_u(|u| u.allocated);
    let store_files = med_u(|u| u.files);
    let tar_size = median(tars.iter().map(|t| t.size as f64).collect());
    let input_mb = corpus.bytes as f64 / MB;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### remotelog append vs tar --zstd: {n} messages, {input_mb:.1} MB, median of {runs} runs\n"
    );
    let _ = writeln!(s, "| | `remotelog append --dir` | `tar --zstd -cf` |");
    let _ = writeln!(s, "|---|---:|---:|");
    let _ = writeln!(s, "| wall time, median | {ma:.2} s | {mt:.2} s |");
    let _ = writeln!(
        s,
        "| wall time, min–max | {a_lo:.2}–{a_hi:.2} s | {t_lo:.2}–{t_hi:.2} s |"
    );
    let _ = writeln!(
        s,
        "| wall time incl. fsync of the output | {ma:.2} s (append syncs itself) | {mts:.2} s |"
    );
    let _ = writeln!(
        s,
        "| CPU time (user+sys), median | {:.2} s | {:.2} s |",
        median(a_cpu),
        median(t_cpu)
    );
    let _ = writeln!(
        s,
        "| messages/s | {:.0} | {:.0} |",
        n as f64 / ma,
        n as f64 / mt
    );
    let _ = writeln!(
        s,
        "| input MB/s | {:.1} | {:.1} |",
        input_mb / ma,
        input_mb / mt
    );
    let _ = writeln!(
        s,
        "| wall time ratio append / tar | **{:.1}×** (vs tar+fsync: {:.1}×) | 1× |",
        ma / mt,
        ma / mts
    );
    let _ = writeln!(
        s,
        "| size on disk, sum of file sizes | {:.1} MB ({:.2}× tar) | {:.1} MB |",
        store_bytes / MB,
        store_bytes / tar_size,
        tar_size / MB
    );
    let _ = writeln!(
        s,
        "| size on disk, allocated blocks | {:.1} MB ({:.2}× tar) | {:.1} MB |",
        store_alloc / MB,
        store_alloc / tar_size,
        tar_size / MB
    );
    let _ = writeln!(s, "| files | {store_files:.0} | 1 |");
    let _ = writeln!(
        s,
        "\nInput: {} files, {} bytes; zstd level: {}. Per-run wall times (s): append [{}], tar [{}], tar+fsync [{}].",
        corpus.files,
        corpus.bytes,
        level.unwrap_or("remotelog's default"),
        list(&a_wall),
        list(&t_wall),
        list(&t_sync)
    );
    s
}
