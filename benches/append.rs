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

mod common;
use common::{
    children_cpu, env_usize, generate, median, min_max, read_all, run_checked, sync_fs, usage,
    Corpus, Usage, DEFAULT_N, DEFAULT_RUNS, GROUP, MB, SEED, TIMESTAMP,
};

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
