//! Benchmark harness (not a unit test): moving a log between a store and a directory
//! remote. On the fixed-seed corpus of `benches/append.rs` (shared in `benches/common/`),
//! each run times, side by side:
//!
//! - `remotelog append --dir` into a fresh store (for reference), `remotelog push` of it to
//!   an empty directory remote, `tar --zstd -cf` of the message files and `restic backup` of
//!   them into a fresh repository;
//! - `remotelog clone` of the remote, `cp -r` of the remote directory and `restic restore`;
//! - `remotelog check --read-data` of the clone;
//! - an incremental step: `append --dir` of 1,000 more messages, `push` of them, and
//!   `restic backup` of the same new files.
//!
//! It checks every exit status, that the clone's `log --json` equals the source's and that
//! `check --read-data` passes, and prints Markdown tables: times, sizes, file counts, peak
//! RSS and the issue-4 targets. See bench/README.md. Settings come from the environment:
//!
//! - `BENCH_N`: number of messages (default 100000);
//! - `BENCH_RUNS`: number of runs (default 5);
//! - `BENCH_INC_N`: messages of the incremental step (default 1000);
//! - `BENCH_BIG=1`: afterwards, one run of append/push/clone/check at `BENCH_BIG_N`
//!   messages (default 1000000);
//! - `BENCH_TMPDIR`: where to put the scratch directory (default: cargo's target tmp dir);
//! - `BENCH_KEEP=1`: keep the scratch directory.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

mod common;
use common::{
    env_usize, generate, median, min_max, read_all, run_checked, sync_fs, usage, Corpus, Usage,
    DEFAULT_N, DEFAULT_RUNS, GROUP, MB, SEED, TIMESTAMP,
};

/// The incremental step's messages come from the same generator with this seed.
const INC_SEED: u64 = 0x1c2e_3e47_a1de_50fb;
const DEFAULT_INC_N: usize = 1000;
const DEFAULT_BIG_N: usize = 1_000_000;
const RESTIC_PASSWORD: &str = "remotelog-bench";
/// Where GNU time lives on Debian; it reports the peak RSS of what it runs.
const TIME_BIN: &str = "/usr/bin/time";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench transfer: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

macro_rules! say {
    ($($t:tt)*) => { eprintln!("bench transfer: {}", format_args!($($t)*)) };
}

struct Settings {
    exe: PathBuf,
    /// GNU time, for the peak RSS and CPU time of each timed command.
    time_bin: Option<PathBuf>,
    restic: Option<PathBuf>,
}

fn run() -> Result<()> {
    let n = env_usize("BENCH_N", DEFAULT_N)?;
    let runs = env_usize("BENCH_RUNS", DEFAULT_RUNS)?;
    let inc_n = env_usize("BENCH_INC_N", DEFAULT_INC_N)?;
    let big = std::env::var("BENCH_BIG").is_ok_and(|v| v == "1");
    let big_n = env_usize("BENCH_BIG_N", DEFAULT_BIG_N)?;
    ensure!(
        n > 0 && runs > 0 && inc_n > 0 && big_n > 0,
        "BENCH_N, BENCH_RUNS, BENCH_INC_N and BENCH_BIG_N must be positive"
    );
    let keep = std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1");
    let time_bin = Some(PathBuf::from(TIME_BIN)).filter(|p| p.is_file());
    if time_bin.is_none() {
        say!("{TIME_BIN} not found (apt-get install time): peak RSS is not measured");
    }
    let restic = find_on_path("restic");
    if restic.is_none() {
        say!("restic not installed (apt-get install restic): its columns stay empty");
    }
    let set = Settings {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_remotelog")),
        time_bin,
        restic,
    };
    let base = std::env::var_os("BENCH_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-transfer-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
    let root = scratch.path().to_path_buf();

    let load_before = uptime();
    say!("binary {}", set.exe.display());
    say!("load before: {load_before}");
    let tools = tool_versions(&set);
    say!("tools: {tools}");

    let msgdir = root.join("corpus").join("messages");
    let incdir = root.join("corpus").join("increment");
    let (corpus, inc) = make_corpus(&msgdir, n, &incdir, inc_n)?;
    say!("{runs} runs follow");

    let mut results = Vec::with_capacity(runs);
    for r in 1..=runs {
        let res = one_run(&set, &root, r, &msgdir, &incdir, n, inc_n, &corpus)?;
        say!(
            "run {r}/{runs} (load {}): push {}, tar {}, restic backup {}, clone {}, cp -r {}, restic restore {}, check {}, inc push {}",
            res.load,
            secs(res.push.wall),
            secs(res.tar.wall),
            opt_secs(res.restic_backup.as_ref()),
            secs(res.clone.wall),
            secs(res.cp.wall),
            opt_secs(res.restic_restore.as_ref()),
            secs(res.check.wall),
            secs(res.inc_push.wall),
        );
        results.push(res);
    }
    let breakdown = results[0]
        .breakdown
        .take()
        .context("run 1 measured no breakdown")?;

    let big_result = if big {
        Some(big_run(&set, &root, big_n, inc_n, &incdir)?)
    } else {
        None
    };
    let load_after = uptime();
    say!("load after: {load_after}");

    let mut out = report(&set, n, inc_n, &corpus, &inc, &results, &breakdown);
    if let Some(b) = &big_result {
        out.push_str(&big_report(b, inc_n));
    }
    let _ = writeln!(out, "\nTools: {tools}.");
    let _ = writeln!(out, "Load before: `{load_before}`; after: `{load_after}`.");
    print!("{out}");
    std::io::stdout().flush()?;

    if keep {
        say!("kept {}", scratch.keep().display());
    } else if big {
        // Deleting a million files takes minutes: leave it to a background `rm`.
        let path = scratch.keep();
        let child = Command::new("rm")
            .arg("-rf")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting rm -rf {}", path.display()))?;
        say!(
            "removing {} in the background (rm pid {})",
            path.display(),
            child.id()
        );
    } else {
        scratch
            .close()
            .with_context(|| format!("removing {}", root.display()))?;
    }
    Ok(())
}

fn make_corpus(msgdir: &Path, n: usize, incdir: &Path, inc_n: usize) -> Result<(Corpus, Corpus)> {
    say!(
        "generating {n} + {inc_n} messages in {} (not timed)",
        msgdir.parent().unwrap_or(msgdir).display()
    );
    let t = Instant::now();
    let corpus = generate(msgdir, n, SEED)?;
    let inc = generate(incdir, inc_n, INC_SEED)?;
    say!(
        "generated {} + {} files, {:.1} + {:.2} MB in {:.1} s",
        corpus.files,
        inc.files,
        corpus.bytes as f64 / MB,
        inc.bytes as f64 / MB,
        t.elapsed().as_secs_f64()
    );
    for (dir, want) in [(msgdir, corpus), (incdir, inc)] {
        let warm = read_all(dir)?;
        ensure!(
            warm == want,
            "warm-up read of {} found {warm:?}, generated {want:?}",
            dir.display()
        );
    }
    Ok((corpus, inc))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `uptime`'s line, or why it is missing.
fn uptime() -> String {
    first_line(Command::new("uptime")).unwrap_or_else(|| "(uptime failed)".into())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn first_line(mut cmd: Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim().to_string())
}

fn tool_versions(set: &Settings) -> String {
    let mut v = Vec::new();
    let mut tar = Command::new("tar");
    tar.arg("--version");
    v.push(first_line(tar).unwrap_or_else(|| "tar ?".into()));
    let mut zstd = Command::new("zstd");
    zstd.arg("--version");
    // "*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***"
    v.push(
        first_line(zstd)
            .and_then(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with('v'))
                    .map(|w| format!("zstd {}", w.trim_end_matches(',')))
            })
            .unwrap_or_else(|| "zstd ?".into()),
    );
    v.push(match &set.restic {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg("version");
            first_line(c).unwrap_or_else(|| "restic ?".into())
        }
        None => "restic not installed".into(),
    });
    let mut cp = Command::new("cp");
    cp.arg("--version");
    v.push(first_line(cp).unwrap_or_else(|| "cp ?".into()));
    v.join("; ")
}

// ---------------------------------------------------------------------------------------
// Timing one command

/// One timed command. Times in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Timed {
    wall: f64,
    /// Wall time plus a `syncfs` of the output's file system right after it, so that a
    /// command that leaves dirty pages pays for writing them as one that fsyncs does.
    wall_sync: f64,
    /// User + system CPU time of the command and the children it waited for.
    cpu: f64,
    /// Peak resident set size in KiB (GNU time's `%M`), when measured.
    rss_kib: Option<u64>,
}

/// What to do with the standard output of a timed command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stdout {
    Discard,
    Capture,
}

/// Runs `cmd` after a `syncfs` of `fs_path`'s file system, checking its exit status, under
/// GNU time when there is one. Returns the timings and the captured stdout.
fn timed(
    set: &Settings,
    cmd: &Command,
    what: &str,
    fs_path: &Path,
    stdout: Stdout,
) -> Result<(Timed, Vec<u8>)> {
    let time_file = tempfile::NamedTempFile::new().context("creating a file for GNU time")?;
    let mut c = match &set.time_bin {
        Some(time) => {
            let mut c = Command::new(time);
            c.arg("-f")
                .arg("%M %U %S")
                .arg("-o")
                .arg(time_file.path())
                .arg(cmd.get_program())
                .args(cmd.get_args());
            c
        }
        None => {
            let mut c = Command::new(cmd.get_program());
            c.args(cmd.get_args());
            c
        }
    };
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c.stdin(Stdio::null()).stderr(Stdio::piped());
    c.stdout(match stdout {
        Stdout::Discard => Stdio::null(),
        Stdout::Capture => Stdio::piped(),
    });
    sync_fs(fs_path)?;
    let cpu_before = common::children_cpu()?;
    let start = Instant::now();
    let out = c
        .output()
        .with_context(|| format!("starting {what} ({cmd:?})"))?;
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {cmd:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    sync_fs(fs_path)?;
    let wall_sync = start.elapsed().as_secs_f64();
    let mut t = Timed {
        wall,
        wall_sync,
        cpu: common::children_cpu()?
            .saturating_sub(cpu_before)
            .as_secs_f64(),
        rss_kib: None,
    };
    if set.time_bin.is_some() {
        let text = fs::read_to_string(time_file.path()).context("reading GNU time's output")?;
        let last = text.lines().last().unwrap_or("");
        let f: Vec<&str> = last.split_whitespace().collect();
        ensure!(f.len() == 3, "odd GNU time output for {what}: {text:?}");
        t.rss_kib = Some(f[0].parse().context("GNU time %M")?);
        let user: f64 = f[1].parse().context("GNU time %U")?;
        let sys: f64 = f[2].parse().context("GNU time %S")?;
        t.cpu = user + sys;
    }
    Ok((t, out.stdout))
}

fn remotelog(set: &Settings, store: &Path) -> Command {
    let mut c = Command::new(&set.exe);
    c.arg("--store").arg(store);
    c
}

fn restic(set: &Settings, repo: &Path, cache: &Path) -> Option<Command> {
    let mut c = Command::new(set.restic.as_ref()?);
    c.arg("-r")
        .arg(repo)
        .env("RESTIC_PASSWORD", RESTIC_PASSWORD)
        .env("RESTIC_CACHE_DIR", cache);
    Some(c)
}

/// What a push or clone reports with `--json`.
#[derive(Debug, Clone, Copy, Default)]
struct Copied {
    objects: u64,
    bytes: u64,
}

fn copied(json: &[u8], what: &str) -> Result<Copied> {
    let text = String::from_utf8_lossy(json);
    let mut c = Copied::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{what} printed something that is not JSON: {line:?}"))?;
        c.objects += v["copied"]["objects"].as_u64().unwrap_or(0);
        c.bytes += v["copied"]["bytes"].as_u64().unwrap_or(0);
    }
    Ok(c)
}

/// BLAKE3 of `remotelog --store STORE log --json`, streamed.
fn log_hash(set: &Settings, store: &Path) -> Result<(blake3::Hash, u64)> {
    let mut child = remotelog(set, store)
        .args(["log", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting remotelog log --json")?;
    let mut hasher = blake3::Hasher::new();
    let mut lines = 0u64;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = stdout.read(&mut buf).context("reading log --json")?;
        if k == 0 {
            break;
        }
        lines += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
        hasher.update(&buf[..k]);
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait()?;
    ensure!(
        status.success(),
        "remotelog --store {} log --json failed ({status}): {}",
        store.display(),
        err.trim_end()
    );
    Ok((hasher.finalize(), lines))
}

/// The clone must list exactly the source's log.
fn same_log(set: &Settings, source: &Path, clone: &Path, n: usize) -> Result<()> {
    let (a, la) = log_hash(set, source)?;
    let (b, lb) = log_hash(set, clone)?;
    ensure!(
        la == n as u64,
        "log --json of {} has {la} lines, want {n}",
        source.display()
    );
    ensure!(
        a == b && la == lb,
        "CLONE DIFFERS: log --json of {} ({la} lines, blake3 {a}) != {} ({lb} lines, blake3 {b})",
        source.display(),
        clone.display()
    );
    Ok(())
}

/// Times `check --read-data` (or plain `check`) of `store`, which must pass with `n`
/// entries and no problem.
fn check_store(set: &Settings, store: &Path, n: usize, read_data: bool) -> Result<Timed> {
    let mut c = remotelog(set, store);
    c.arg("check").arg("--json");
    if read_data {
        c.arg("--read-data");
    }
    // check exits 1 when it finds problems; `timed` then fails with its output.
    let (t, out) = timed(set, &c, "remotelog check", store, Stdout::Capture)?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .with_context(|| format!("check --json: {}", String::from_utf8_lossy(&out)))?;
    let problems = v["problems"].as_array().map_or(0, Vec::len);
    ensure!(
        v["entries"].as_u64() == Some(n as u64) && problems == 0,
        "CHECK FAILED for {}: want {n} entries and no problem, got {}",
        store.display(),
        String::from_utf8_lossy(&out).trim_end()
    );
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// The runs

struct RunResult {
    load: String,
    append: Timed,
    push: Timed,
    push_copied: Copied,
    tar: Timed,
    restic_backup: Option<Timed>,
    clone: Timed,
    cp: Timed,
    restic_restore: Option<Timed>,
    check: Timed,
    inc_append: Timed,
    inc_push: Timed,
    inc_copied: Copied,
    restic_inc: Option<Timed>,
    remote: Usage,
    remote_after_inc: Usage,
    tar_size: u64,
    restic_repo: Option<Usage>,
    restic_repo_after_inc: Option<Usage>,
    /// Where the remote's bytes go after the full push (first run only).
    breakdown: Option<Breakdown>,
}

#[allow(clippy::too_many_arguments)]
fn one_run(
    set: &Settings,
    root: &Path,
    r: usize,
    msgdir: &Path,
    incdir: &Path,
    n: usize,
    inc_n: usize,
    corpus: &Corpus,
) -> Result<RunResult> {
    // Everything stays until the end: on this ext4, creating files soon after deleting many
    // is several times slower (see the append section of bench/README.md).
    let load = loadavg();
    let store = root.join(format!("store-{r}"));
    let remote = root.join(format!("remote-{r}"));
    let dest = root.join(format!("clone-{r}"));
    let cp_dest = root.join(format!("cp-{r}"));
    let archive = root.join(format!("archive-{r}.tar.zst"));
    let repo = root.join(format!("restic-{r}"));
    let cache = root.join(format!("restic-cache-{r}"));
    let restore = root.join(format!("restore-{r}"));

    // 1. append (reference), push, tar, restic backup.
    run_checked(remotelog(set, &store).arg("init"), "remotelog init")?;
    let mut c = remotelog(set, &store);
    c.args([
        "append",
        "--group",
        GROUP,
        "--timestamp",
        TIMESTAMP,
        "--dir",
    ])
    .arg(msgdir);
    let (append, _) = timed(set, &c, "remotelog append", &store, Stdout::Discard)?;
    fs::create_dir(&remote).with_context(|| format!("creating {}", remote.display()))?;
    run_checked(
        remotelog(set, &store)
            .args(["remote", "add", "origin"])
            .arg(&remote),
        "remotelog remote add",
    )?;
    let mut c = remotelog(set, &store);
    c.args(["push", "--json"]);
    let (push, out) = timed(set, &c, "remotelog push", &remote, Stdout::Capture)?;
    let push_copied = copied(&out, "push")?;
    let remote_usage = usage(&remote)?;
    let breakdown = if r == 1 {
        Some(pack_breakdown(&remote, n)?)
    } else {
        None
    };

    let mut c = Command::new("tar");
    c.arg("--zstd")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(msgdir)
        .arg(".");
    let (tar, _) = timed(
        set,
        &c,
        "tar --zstd -cf",
        &archive_dir(&archive),
        Stdout::Discard,
    )?;
    let tar_size = fs::metadata(&archive)
        .with_context(|| format!("stat {}", archive.display()))?
        .len();

    let mut restic_backup = None;
    let mut restic_repo = None;
    let mut snapshot = None;
    if let Some(mut c) = restic(set, &repo, &cache) {
        c.arg("init");
        run_checked(&mut c, "restic init")?;
        let mut c = restic(set, &repo, &cache).context("restic")?;
        c.arg("backup").arg(msgdir);
        restic_backup = Some(timed(set, &c, "restic backup", &repo, Stdout::Discard)?.0);
        restic_repo = Some(usage(&repo)?);
        snapshot = Some(restic_snapshot(set, &repo, &cache)?);
    }

    // 2. clone, cp -r, restic restore; then the checks.
    let mut c = Command::new(&set.exe);
    c.args(["clone", "--json"]).arg(&remote).arg(&dest);
    let (clone, _) = timed(set, &c, "remotelog clone", root, Stdout::Capture)?;
    let mut c = Command::new("cp");
    c.arg("-r").arg(&remote).arg(&cp_dest);
    let (cp, _) = timed(set, &c, "cp -r", root, Stdout::Discard)?;
    let cp_usage = usage(&cp_dest)?;
    ensure!(
        cp_usage.files == remote_usage.files && cp_usage.bytes == remote_usage.bytes,
        "cp -r copied {cp_usage:?}, the remote holds {remote_usage:?}"
    );
    let mut restic_restore = None;
    if let Some(mut c) = restic(set, &repo, &cache) {
        c.args(["restore", "latest", "--target"]).arg(&restore);
        restic_restore = Some(timed(set, &c, "restic restore", root, Stdout::Discard)?.0);
        let got = usage(&restore.join(msgdir.strip_prefix("/").unwrap_or(msgdir)))?;
        ensure!(
            got.files == corpus.files as u64 && got.bytes == corpus.bytes,
            "restic restore gave {} files, {} bytes; want {} and {}",
            got.files,
            got.bytes,
            corpus.files,
            corpus.bytes
        );
    }
    same_log(set, &store, &dest, n)?;
    let check = check_store(set, &dest, n, true)?;

    // 4. incremental: append more messages, push just those; restic backs up the new files
    // with the first snapshot as parent (what it picks itself for a repeated backup of the
    // same paths), so it skips the unchanged files by their metadata.
    let mut c = remotelog(set, &store);
    c.args([
        "append",
        "--group",
        GROUP,
        "--timestamp",
        TIMESTAMP,
        "--dir",
    ])
    .arg(incdir);
    let (inc_append, _) = timed(
        set,
        &c,
        "remotelog append (increment)",
        &store,
        Stdout::Discard,
    )?;
    let mut c = remotelog(set, &store);
    c.args(["push", "--json"]);
    let (inc_push, out) = timed(
        set,
        &c,
        "remotelog push (increment)",
        &remote,
        Stdout::Capture,
    )?;
    let inc_copied = copied(&out, "push")?;
    let remote_after_inc = usage(&remote)?;
    check_store(set, &remote, n + inc_n, false)?;
    let mut restic_inc = None;
    let mut restic_repo_after_inc = None;
    if let (Some(mut c), Some(parent)) = (restic(set, &repo, &cache), snapshot) {
        c.args(["backup", "--parent", &parent])
            .arg(msgdir)
            .arg(incdir);
        restic_inc = Some(timed(set, &c, "restic backup (increment)", &repo, Stdout::Discard)?.0);
        restic_repo_after_inc = Some(usage(&repo)?);
    }

    Ok(RunResult {
        load,
        append,
        push,
        push_copied,
        tar,
        restic_backup,
        clone,
        cp,
        restic_restore,
        check,
        inc_append,
        inc_push,
        inc_copied,
        restic_inc,
        remote: remote_usage,
        remote_after_inc,
        tar_size,
        restic_repo,
        restic_repo_after_inc,
        breakdown,
    })
}

fn archive_dir(archive: &Path) -> PathBuf {
    archive
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The id of the newest snapshot of a restic repository.
fn restic_snapshot(set: &Settings, repo: &Path, cache: &Path) -> Result<String> {
    let mut c = restic(set, repo, cache).context("restic")?;
    let out = c
        .args(["snapshots", "--json", "latest"])
        .stdin(Stdio::null())
        .output()
        .context("starting restic snapshots")?;
    ensure!(
        out.status.success(),
        "restic snapshots failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("restic snapshots --json")?;
    v[0]["id"]
        .as_str()
        .map(str::to_string)
        .context("restic snapshots --json listed no snapshot")
}

// ---------------------------------------------------------------------------------------
// Where the remote's bytes go (format/pack-v1.md, parsed here from the spec)

#[derive(Debug, Default)]
struct Breakdown {
    n: usize,
    packs: u64,
    pack_bytes: u64,
    message_blocks: u64,
    message_clen: u64,
    message_ulen: u64,
    page_blocks: u64,
    page_clen: u64,
    page_ulen: u64,
    other_blocks: u64,
    other_clen: u64,
    index_bytes: u64,
    objects: u64,
    header_trailer: u64,
    loose_files: u64,
    loose_bytes: u64,
    other_files: u64,
    other_bytes: u64,
}

fn le32(d: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(d[at..at + 4].try_into().unwrap()))
}

fn le64(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

fn pack_breakdown(store: &Path, n: usize) -> Result<Breakdown> {
    use std::os::unix::fs::MetadataExt;
    let mut b = Breakdown {
        n,
        ..Breakdown::default()
    };
    for entry in walkdir::WalkDir::new(store) {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let len = entry.metadata()?.size();
        let rel = path.strip_prefix(store).unwrap_or(path);
        if rel.starts_with("objects") {
            b.loose_files += 1;
            b.loose_bytes += len;
            continue;
        }
        if !(rel.starts_with("packs") && path.extension().is_some_and(|e| e == "pack")) {
            b.other_files += 1;
            b.other_bytes += len;
            continue;
        }
        let d = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let l = d.len();
        ensure!(
            l >= 104 && &d[..8] == b"RLOGPACK" && &d[l - 40..l - 32] == b"RLOGPEND",
            "{} is not a pack of format/pack-v1.md",
            path.display()
        );
        b.packs += 1;
        b.pack_bytes += l as u64;
        b.header_trailer += 48 + 56;
        let index_offset = le64(&d, l - 56) as usize;
        let index_len = le64(&d, l - 48);
        b.index_bytes += index_len;
        let blocks = le32(&d, index_offset) as usize;
        b.objects += le64(&d, index_offset + 4 + 24 * blocks);
        for i in 0..blocks {
            let e = index_offset + 4 + 24 * i;
            let (off, clen, ulen) = (le64(&d, e) as usize, le32(&d, e + 8), le32(&d, e + 12));
            // An object is a CBOR array [1, kind, ...]: the kind is its third byte.
            let mut head = [0u8; 3];
            zstd::stream::read::Decoder::new(&d[off..off + clen as usize])?
                .read_exact(&mut head)
                .with_context(|| format!("block {i} of {}", path.display()))?;
            match head {
                [_, 1, 1] => {
                    b.message_blocks += 1;
                    b.message_clen += clen;
                    b.message_ulen += ulen;
                }
                [_, 1, 2] => {
                    b.page_blocks += 1;
                    b.page_clen += clen;
                    b.page_ulen += ulen;
                }
                _ => {
                    b.other_blocks += 1;
                    b.other_clen += clen;
                }
            }
        }
    }
    Ok(b)
}

// ---------------------------------------------------------------------------------------
// The million-message run

struct BigResult {
    n: usize,
    corpus: Corpus,
    gen_secs: f64,
    append: Timed,
    push: Timed,
    tar: Timed,
    tar_size: u64,
    clone: Timed,
    cp: Timed,
    check: Timed,
    inc_push: Timed,
    remote: Usage,
    df_before: String,
}

fn big_run(
    set: &Settings,
    root: &Path,
    n: usize,
    inc_n: usize,
    incdir: &Path,
) -> Result<BigResult> {
    let dir = root.join("big");
    let msgdir = dir.join("messages");
    let df_before = first_line_df(root);
    say!("BENCH_BIG: {n} messages; disk before: {df_before}");
    let t = Instant::now();
    let corpus = generate(&msgdir, n, SEED)?;
    let warm = read_all(&msgdir)?;
    ensure!(
        warm == corpus,
        "warm-up read found {warm:?}, generated {corpus:?}"
    );
    let gen_secs = t.elapsed().as_secs_f64();
    say!(
        "BENCH_BIG: generated and read {} files, {:.1} MB in {gen_secs:.0} s",
        corpus.files,
        corpus.bytes as f64 / MB
    );
    let store = dir.join("store");
    let remote = dir.join("remote");
    let dest = dir.join("clone");
    let cp_dest = dir.join("cp");
    let archive = dir.join("archive.tar.zst");

    run_checked(remotelog(set, &store).arg("init"), "remotelog init")?;
    let mut c = remotelog(set, &store);
    c.args([
        "append",
        "--group",
        GROUP,
        "--timestamp",
        TIMESTAMP,
        "--dir",
    ])
    .arg(&msgdir);
    let (append, _) = timed(set, &c, "remotelog append (big)", &store, Stdout::Discard)?;
    say!("BENCH_BIG: append {}", secs(append.wall));
    fs::create_dir(&remote).with_context(|| format!("creating {}", remote.display()))?;
    run_checked(
        remotelog(set, &store)
            .args(["remote", "add", "origin"])
            .arg(&remote),
        "remotelog remote add",
    )?;
    let mut c = remotelog(set, &store);
    c.arg("push");
    let (push, _) = timed(set, &c, "remotelog push (big)", &remote, Stdout::Discard)?;
    let remote_usage = usage(&remote)?;
    say!("BENCH_BIG: push {}", secs(push.wall));
    let mut c = Command::new("tar");
    c.arg("--zstd")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&msgdir)
        .arg(".");
    let (tar, _) = timed(set, &c, "tar --zstd -cf (big)", &dir, Stdout::Discard)?;
    let tar_size = fs::metadata(&archive)?.len();
    let mut c = Command::new(&set.exe);
    c.arg("clone").arg(&remote).arg(&dest);
    let (clone, _) = timed(set, &c, "remotelog clone (big)", &dir, Stdout::Discard)?;
    say!("BENCH_BIG: clone {}", secs(clone.wall));
    let mut c = Command::new("cp");
    c.arg("-r").arg(&remote).arg(&cp_dest);
    let (cp, _) = timed(set, &c, "cp -r (big)", &dir, Stdout::Discard)?;
    same_log(set, &store, &dest, n)?;
    let check = check_store(set, &dest, n, true)?;
    say!("BENCH_BIG: check --read-data {}", secs(check.wall));
    let mut c = remotelog(set, &store);
    c.args([
        "append",
        "--group",
        GROUP,
        "--timestamp",
        TIMESTAMP,
        "--dir",
    ])
    .arg(incdir);
    timed(
        set,
        &c,
        "remotelog append (big increment)",
        &store,
        Stdout::Discard,
    )?;
    let mut c = remotelog(set, &store);
    c.arg("push");
    let (inc_push, _) = timed(
        set,
        &c,
        "remotelog push (big increment)",
        &remote,
        Stdout::Discard,
    )?;
    check_store(set, &remote, n + inc_n, false)?;
    Ok(BigResult {
        n,
        corpus,
        gen_secs,
        append,
        push,
        tar,
        tar_size,
        clone,
        cp,
        check,
        inc_push,
        remote: remote_usage,
        df_before,
    })
}

fn first_line_df(path: &Path) -> String {
    let mut c = Command::new("df");
    c.arg("-h").arg("--output=avail,size").arg(path);
    let out = c.stdin(Stdio::null()).output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!(
                    "{} free of {}",
                    f.first().unwrap_or(&"?"),
                    f.get(1).unwrap_or(&"?")
                )
            })
            .unwrap_or_else(|| "?".into()),
        Err(_) => "?".into(),
    }
}

// ---------------------------------------------------------------------------------------
// The report

fn secs(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3} s")
    } else {
        format!("{x:.2} s")
    }
}

fn opt_secs(t: Option<&Timed>) -> String {
    t.map_or_else(|| "-".into(), |t| secs(t.wall))
}

/// Medians and spread of one operation over the runs.
#[derive(Clone, Copy)]
struct Stats {
    wall: f64,
    lo: f64,
    hi: f64,
    wall_sync: f64,
    cpu: f64,
    rss_mb: Option<f64>,
}

fn stats(v: &[Timed]) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    let walls: Vec<f64> = v.iter().map(|t| t.wall).collect();
    let (lo, hi) = min_max(&walls);
    let rss: Vec<f64> = v
        .iter()
        .filter_map(|t| t.rss_kib)
        .map(|k| k as f64 * 1024.0 / MB)
        .collect();
    Some(Stats {
        wall: median(walls),
        lo,
        hi,
        wall_sync: median(v.iter().map(|t| t.wall_sync).collect()),
        cpu: median(v.iter().map(|t| t.cpu).collect()),
        rss_mb: (!rss.is_empty()).then(|| median(rss)),
    })
}

fn rss(s: &Stats) -> String {
    s.rss_mb
        .map_or_else(|| "n/a".into(), |m| format!("{m:.0} MB"))
}

fn row(s: &mut String, name: &str, st: Option<Stats>, note: &str) {
    let _ = match st {
        Some(t) => writeln!(
            s,
            "| {name} | {} | {}–{} | {} | {} | {} | {note} |",
            secs(t.wall),
            secs(t.lo).trim_end_matches(" s"),
            secs(t.hi),
            secs(t.wall_sync),
            secs(t.cpu),
            rss(&t)
        ),
        None => writeln!(
            s,
            "| {name} | restic not installed (apt-get install restic) | | | | | |"
        ),
    };
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

fn report(
    set: &Settings,
    n: usize,
    inc_n: usize,
    corpus: &Corpus,
    inc: &Corpus,
    res: &[RunResult],
    b: &Breakdown,
) -> String {
    let runs = res.len();
    let col = |f: fn(&RunResult) -> Timed| res.iter().map(f).collect::<Vec<_>>();
    let opt_col = |f: fn(&RunResult) -> Option<Timed>| res.iter().filter_map(f).collect::<Vec<_>>();
    let append = stats(&col(|r| r.append)).unwrap();
    let push = stats(&col(|r| r.push)).unwrap();
    let tar = stats(&col(|r| r.tar)).unwrap();
    let rb = stats(&opt_col(|r| r.restic_backup));
    let clone = stats(&col(|r| r.clone)).unwrap();
    let cp = stats(&col(|r| r.cp)).unwrap();
    let rr = stats(&opt_col(|r| r.restic_restore));
    let check = stats(&col(|r| r.check)).unwrap();
    let inc_append = stats(&col(|r| r.inc_append)).unwrap();
    let inc_push = stats(&col(|r| r.inc_push)).unwrap();
    let ri = stats(&opt_col(|r| r.restic_inc));
    let med = |f: &dyn Fn(&RunResult) -> f64| median(res.iter().map(f).collect());
    let remote_bytes = med(&|r| r.remote.bytes as f64);
    let remote_alloc = med(&|r| r.remote.allocated as f64);
    let remote_files = med(&|r| r.remote.files as f64);
    let remote_inc_files = med(&|r| r.remote_after_inc.files as f64);
    let remote_inc_bytes = med(&|r| r.remote_after_inc.bytes as f64);
    let tar_size = med(&|r| r.tar_size as f64);
    let repo: Vec<Usage> = res.iter().filter_map(|r| r.restic_repo).collect();
    let repo_inc: Vec<Usage> = res.iter().filter_map(|r| r.restic_repo_after_inc).collect();
    let pushed = med(&|r| r.push_copied.bytes as f64);
    let pushed_objects = med(&|r| r.push_copied.objects as f64);
    let inc_pushed = med(&|r| r.inc_copied.bytes as f64);
    let inc_pct = 100.0 * inc_push.wall / push.wall;
    let input_mb = corpus.bytes as f64 / MB;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### push / clone vs tar, cp -r and restic: {n} messages, {input_mb:.1} MB, median of {runs} runs\n"
    );
    let _ = writeln!(
        s,
        "| operation | wall, median | wall, min–max | wall + syncfs after | CPU (user+sys) | peak RSS | ratio (medians) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
    row(
        &mut s,
        "`remotelog append --dir` (reference)",
        Some(append),
        &format!("{:.2}× tar", append.wall / tar.wall),
    );
    let mut note = format!(
        "**{:.2}× tar** ({:.2}× tar + syncfs)",
        push.wall / tar.wall,
        push.wall_sync / tar.wall_sync
    );
    if let Some(rb) = rb {
        let _ = write!(note, "; **{:.2}× restic backup**", push.wall / rb.wall);
    }
    row(
        &mut s,
        "`remotelog push` to an empty remote",
        Some(push),
        &note,
    );
    row(
        &mut s,
        "`tar --zstd -cf` of the message files",
        Some(tar),
        "1×",
    );
    row(
        &mut s,
        "`restic backup` of the message files (after an untimed `init`)",
        rb,
        &rb.map_or_else(String::new, |r| format!("{:.2}× tar", r.wall / tar.wall)),
    );
    let mut note = format!(
        "**{:.2}× cp -r** ({:.2}× cp -r + syncfs)",
        clone.wall / cp.wall,
        clone.wall_sync / cp.wall_sync
    );
    if let Some(rr) = rr {
        let _ = write!(note, "; {:.2}× restic restore", clone.wall / rr.wall);
    }
    row(&mut s, "`remotelog clone REMOTE DEST`", Some(clone), &note);
    row(&mut s, "`cp -r REMOTE DEST2`", Some(cp), "1×");
    row(&mut s, "`restic restore latest --target`", rr, "");
    row(
        &mut s,
        "`remotelog check --read-data` of the clone",
        Some(check),
        &format!("{:.0} messages/s", n as f64 / check.wall),
    );
    row(
        &mut s,
        &format!("`remotelog append --dir` of {inc_n} more (reference)"),
        Some(inc_append),
        "",
    );
    row(
        &mut s,
        &format!("`remotelog push` of those {inc_n}"),
        Some(inc_push),
        &format!("**{inc_pct:.1}% of the full push**"),
    );
    row(
        &mut s,
        &format!("`restic backup --parent` of the same files + {inc_n} new"),
        ri,
        &match (ri, rb) {
            (Some(ri), Some(rb)) => format!("{:.0}% of the full backup", 100.0 * ri.wall / rb.wall),
            _ => String::new(),
        },
    );

    let _ = writeln!(
        s,
        "\nA full push copied {pushed_objects:.0} objects, {:.1} MB; the incremental one {:.2} MB.",
        pushed / MB,
        inc_pushed / MB
    );

    // Sizes.
    let _ = writeln!(
        s,
        "\n| size | remotelog remote | `tar --zstd` archive | restic repository |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let repo_med = |f: fn(&Usage) -> u64, v: &[Usage]| {
        (!v.is_empty()).then(|| median(v.iter().map(|u| f(u) as f64).collect()))
    };
    let r_files = repo_med(|u| u.files, &repo);
    let r_bytes = repo_med(|u| u.bytes, &repo);
    let r_alloc = repo_med(|u| u.allocated, &repo);
    let opt_mb = |x: Option<f64>| {
        x.map_or_else(
            || "-".into(),
            |x| format!("{:.1} MB ({:.2}× tar)", x / MB, x / tar_size),
        )
    };
    let _ = writeln!(
        s,
        "| files | {remote_files:.0} | 1 | {} |",
        r_files.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
    );
    let _ = writeln!(
        s,
        "| sum of file sizes | {:.1} MB ({:.2}× tar) | {:.1} MB | {} |",
        remote_bytes / MB,
        remote_bytes / tar_size,
        tar_size / MB,
        opt_mb(r_bytes)
    );
    let _ = writeln!(
        s,
        "| allocated blocks (du) | {:.1} MB ({:.2}× tar) | {:.1} MB | {} |",
        remote_alloc / MB,
        remote_alloc / tar_size,
        tar_size / MB,
        opt_mb(r_alloc)
    );
    let ri_files = repo_med(|u| u.files, &repo_inc);
    let ri_bytes = repo_med(|u| u.bytes, &repo_inc);
    let _ = writeln!(
        s,
        "| after the incremental step: files | {remote_inc_files:.0} | | {} |",
        ri_files.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
    );
    let _ = writeln!(
        s,
        "| after the incremental step: sum of sizes | {:.1} MB | | {} |",
        remote_inc_bytes / MB,
        ri_bytes.map_or_else(|| "-".into(), |x| format!("{:.1} MB", x / MB))
    );

    // Where the remote's bytes go.
    let per = |x: u64| x as f64 / b.n as f64;
    let hashes = b.page_clen + b.index_bytes;
    let _ = writeln!(
        s,
        "\nWhere the remote's {:.1} MB go (run 1, parsed per format/pack-v1.md):\n",
        (b.pack_bytes + b.loose_bytes + b.other_bytes) as f64 / MB
    );
    let _ = writeln!(s, "| part | size | per message |");
    let _ = writeln!(s, "|---|---:|---:|");
    let _ = writeln!(
        s,
        "| message blocks: {} zstd frames ({:.1} MB before compression) | {:.1} MB | {:.0} B |",
        b.message_blocks,
        b.message_ulen as f64 / MB,
        b.message_clen as f64 / MB,
        per(b.message_clen)
    );
    let _ = writeln!(
        s,
        "| page blocks: {} frames of H1/H2 pairs ({:.1} MB before compression) | {:.1} MB | {:.0} B |",
        b.page_blocks,
        b.page_ulen as f64 / MB,
        b.page_clen as f64 / MB,
        per(b.page_clen)
    );
    let _ = writeln!(
        s,
        "| pack index: {} objects × 44 B + {} blocks × 24 B | {:.1} MB | {:.0} B |",
        b.objects,
        b.message_blocks + b.page_blocks + b.other_blocks,
        b.index_bytes as f64 / MB,
        per(b.index_bytes)
    );
    let _ = writeln!(
        s,
        "| headers and trailers of {} pack file(s), other blocks ({}), loose objects ({}), refs and config ({} files) | {:.3} MB | |",
        b.packs,
        b.other_blocks,
        b.loose_files,
        b.other_files,
        (b.header_trailer + b.other_clen + b.loose_bytes + b.other_bytes) as f64 / MB
    );
    let _ = writeln!(
        s,
        "\nPages and index hold {:.1} MB ({:.0} B per message) of hashes that do not compress; without them the remote would be {:.1} MB, {:.2}× tar. The message blocks alone are {:.2}× tar: each message is a CBOR object with its group and timestamp, compressed in {} KiB blocks rather than one stream.",
        hashes as f64 / MB,
        per(hashes),
        (remote_bytes - hashes as f64) / MB,
        (remote_bytes - hashes as f64) / tar_size,
        b.message_clen as f64 / tar_size,
        256
    );

    // Targets of issue 4.
    let _ = writeln!(s, "\n| issue-4 target | measured | verdict |");
    let _ = writeln!(s, "|---|---|---|");
    let r = push.wall / tar.wall;
    let _ = writeln!(
        s,
        "| push ≤ 1.5× `tar --zstd` | {r:.2}× ({} vs {}) | {}{} |",
        secs(push.wall),
        secs(tar.wall),
        verdict(r <= 1.5),
        if r <= 1.5 {
            String::new()
        } else {
            format!(": {:.0}% over", 100.0 * (r / 1.5 - 1.0))
        }
    );
    match rb {
        Some(rb) => {
            let r = push.wall / rb.wall;
            let _ = writeln!(
                s,
                "| push faster than `restic backup` | {r:.2}× ({} vs {}) | {}{} |",
                secs(push.wall),
                secs(rb.wall),
                verdict(r < 1.0),
                if r < 1.0 {
                    String::new()
                } else {
                    format!(": {:.0}% slower", 100.0 * (r - 1.0))
                }
            );
        }
        None => {
            let _ = writeln!(s, "| push faster than `restic backup` | restic not installed (apt-get install restic) | not measured |");
        }
    }
    let r = clone.wall / cp.wall;
    let _ = writeln!(
        s,
        "| clone ≤ 2× `cp -r` of the remote | {r:.2}× ({} vs {}) | {}{} |",
        secs(clone.wall),
        secs(cp.wall),
        verdict(r <= 2.0),
        if r <= 2.0 {
            String::new()
        } else {
            format!(": {:.0}% over", 100.0 * (r / 2.0 - 1.0))
        }
    );
    let _ = writeln!(
        s,
        "| remote < 20 files | {remote_files:.0} files | {} |",
        verdict(remote_files < 20.0)
    );
    let r = remote_bytes / tar_size;
    let _ = writeln!(
        s,
        "| remote size within 10% of tar | {r:.2}× ({:.1} vs {:.1} MB) | {}{} |",
        remote_bytes / MB,
        tar_size / MB,
        verdict((r - 1.0).abs() <= 0.10),
        if (r - 1.0).abs() <= 0.10 {
            String::new()
        } else {
            format!(
                ": {:.0}% over tar, {:.0} points over the limit",
                100.0 * (r - 1.0),
                100.0 * (r - 1.0) - 10.0
            )
        }
    );
    let _ =
        writeln!(
        s,
        "| incremental push of {inc_n} < 5% of the full push | {inc_pct:.1}% ({} vs {}) | {}{} |",
        secs(inc_push.wall),
        secs(push.wall),
        verdict(inc_pct < 5.0),
        if inc_pct < 5.0 { String::new() } else { format!(": {:.1}× the limit", inc_pct / 5.0) }
    );

    let per_run = |name: &str, f: fn(&RunResult) -> f64| {
        format!("{name} [{}]", list(&res.iter().map(f).collect::<Vec<_>>()))
    };
    let mut lists = vec![
        per_run("append", |r| r.append.wall),
        per_run("push", |r| r.push.wall),
        per_run("tar", |r| r.tar.wall),
        per_run("clone", |r| r.clone.wall),
        per_run("cp -r", |r| r.cp.wall),
        per_run("check --read-data", |r| r.check.wall),
        per_run("incremental push", |r| r.inc_push.wall),
    ];
    if set.restic.is_some() {
        lists.push(per_run("restic backup", |r| {
            r.restic_backup.map_or(0.0, |t| t.wall)
        }));
        lists.push(per_run("restic restore", |r| {
            r.restic_restore.map_or(0.0, |t| t.wall)
        }));
        lists.push(per_run("restic incremental", |r| {
            r.restic_inc.map_or(0.0, |t| t.wall)
        }));
    }
    let _ = writeln!(
        s,
        "\nInput: {} files, {} bytes (+ {} files, {} bytes for the incremental step). Load average at the start of each run: {}. Per-run wall times (s): {}.",
        corpus.files,
        corpus.bytes,
        inc.files,
        inc.bytes,
        res.iter().map(|r| format!("[{}]", r.load)).collect::<Vec<_>>().join(", "),
        lists.join("; ")
    );
    s
}

fn big_report(b: &BigResult, inc_n: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### {} messages, {:.1} MB, one run (BENCH_BIG=1)\n",
        b.n,
        b.corpus.bytes as f64 / MB
    );
    let _ = writeln!(
        s,
        "| operation | wall | wall + syncfs after | CPU (user+sys) | peak RSS | note |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    let one = |s: &mut String, name: &str, t: &Timed, note: String| {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {note} |",
            secs(t.wall),
            secs(t.wall_sync),
            secs(t.cpu),
            t.rss_kib.map_or_else(
                || "n/a".into(),
                |k| format!("{:.0} MB", k as f64 * 1024.0 / MB)
            )
        );
    };
    one(
        &mut s,
        "`remotelog append --dir`",
        &b.append,
        format!("{:.2}× tar", b.append.wall / b.tar.wall),
    );
    one(
        &mut s,
        "`remotelog push`",
        &b.push,
        format!("{:.2}× tar", b.push.wall / b.tar.wall),
    );
    one(
        &mut s,
        "`tar --zstd -cf`",
        &b.tar,
        format!("archive {:.1} MB", b.tar_size as f64 / MB),
    );
    one(
        &mut s,
        "`remotelog clone`",
        &b.clone,
        format!("{:.2}× cp -r", b.clone.wall / b.cp.wall),
    );
    one(&mut s, "`cp -r` of the remote", &b.cp, String::new());
    one(
        &mut s,
        "`remotelog check --read-data` of the clone",
        &b.check,
        format!("{:.0} messages/s", b.n as f64 / b.check.wall),
    );
    one(
        &mut s,
        &format!("`remotelog push` of {inc_n} more"),
        &b.inc_push,
        format!(
            "{:.1}% of the full push",
            100.0 * b.inc_push.wall / b.push.wall
        ),
    );
    let _ = writeln!(
        s,
        "\nRemote: {} files, {:.1} MB ({:.2}× tar). Corpus generated and read in {:.0} s (not timed); disk before: {}.",
        b.remote.files,
        b.remote.bytes as f64 / MB,
        b.remote.bytes as f64 / b.tar_size as f64,
        b.gen_secs,
        b.df_before
    );
    s
}
