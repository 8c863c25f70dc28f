//! Helpers shared by the integration tests: running the `remotelog` binary, building small
//! stores and logs, serving a store over HTTP, and a few test doubles.

// Every test binary compiles this module on its own and uses only a subset of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use remotelog::log::{self, SettingsChange};
use remotelog::model::name::RefName;
use remotelog::net::server::{self, Options, Running};
use remotelog::store::config::Config;
use remotelog::store::{Backend, Batch, Expected, RawBlock};
use remotelog::{upkeep::check, FsStore, Id, Message};

// ---------------------------------------------------------------------------------------
// The binary

/// A `remotelog` command untouched by the caller's store, token and CA variables, without backtraces.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_remotelog"));
    c.env_remove("REMOTELOG_STORE")
        .env_remove("REMOTELOG_TOKEN")
        .env_remove("REMOTELOG_TOKEN_FILE")
        .env_remove("REMOTELOG_ADMIN_TOKEN")
        .env_remove("REMOTELOG_ADMIN_TOKEN_FILE")
        .env_remove("REMOTELOG_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("AWS_CA_BUNDLE")
        .env("RUST_BACKTRACE", "0");
    // Once this binary's SeaweedFS runs, every command can reach it (s3:// remotes).
    if let Some(server) = SEAWEED.get() {
        c.envs(server.env());
    }
    c
}

/// Runs `remotelog --store STORE ARGS...` with no input and returns its output.
pub fn run(store: &Path, args: &[&str]) -> Output {
    run_env(store, args, &[])
}

/// Runs `remotelog --store STORE ARGS...` with extra environment variables.
pub fn run_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.arg("--store").arg(store).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Runs `remotelog --store STORE ARGS...` with `input` on its standard input.
pub fn run_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut c = bin();
    c.arg("--store").arg(store).args(args);
    run_cmd(c, Some(input))
}

/// Runs `c` with `stdin` (empty when `None`) on its standard input, capturing its output.
pub fn run_cmd(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn remotelog");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            // The command may exit before reading its input (e.g. on a bad argument).
            let _ = input.write_all(bytes);
        }
    }
    child.wait_with_output().unwrap()
}

/// Standard output followed by standard error, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The exit status and output of a finished command, for failure messages.
fn describe(o: &Output) -> String {
    format!(
        "({:?})\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts that a finished command succeeded, showing its status and output if not.
#[track_caller]
pub fn assert_ok(o: Output) -> Output {
    assert!(o.status.success(), "command failed {}", describe(&o));
    o
}

/// Runs `remotelog --store STORE ARGS...`, asserts success and returns its stdout.
#[track_caller]
pub fn ok(store: &Path, args: &[&str]) -> String {
    ok_env(store, args, &[])
}

/// Like [`ok`], with extra environment variables.
#[track_caller]
pub fn ok_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_env(store, args, env);
    assert!(
        out.status.success(),
        "remotelog {args:?} failed {}",
        describe(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `remotelog --store STORE ARGS...`, asserts exit status 1 and returns its stderr.
#[track_caller]
pub fn fails(store: &Path, args: &[&str]) -> String {
    fails_env(store, args, &[])
}

/// Like [`fails`], with extra environment variables.
#[track_caller]
pub fn fails_env(store: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_env(store, args, env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "remotelog {args:?} should fail {}",
        describe(&out)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Asserts exit status 1 and a single-line stderr message, no panic, containing every needle.
#[track_caller]
pub fn fails_with(o: &Output, needles: &[&str]) {
    fails_with_status(o, 1, needles)
}

/// Asserts exit status 75 (a transient failure: running it again later may succeed) and a
/// single-line stderr message, no panic, containing every needle.
#[track_caller]
pub fn fails_transiently_with(o: &Output, needles: &[&str]) {
    fails_with_status(o, 75, needles)
}

#[track_caller]
fn fails_with_status(o: &Output, status: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(status),
        "expected exit {status} {}",
        describe(o)
    );
    let line = err.strip_suffix('\n').unwrap_or(&err);
    assert!(!line.is_empty(), "no message on stderr");
    assert!(!line.contains('\n'), "stderr is not one line:\n{err}");
    assert!(
        !line.contains("panicked") && !line.contains("backtrace"),
        "looks like a panic: {err}"
    );
    for n in needles {
        assert!(line.contains(n), "stderr does not mention {n:?}: {err}");
    }
}

/// Spawns `c` with its output discarded, kills it (SIGKILL) after `delay` and reaps it.
pub fn kill_after(c: &mut Command, delay: Duration) {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill(); // harmless if it already exited
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// Stores and logs

/// The committed fixtures folder (`fixtures/`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The example scripts folder (`examples/`).
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `n` messages of group "g" with timestamps 0.., bodies tagged `tag` and of varied length.
pub fn msgs(tag: &str, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            group_id: b"g".to_vec(),
            timestamp: i as i64,
            body: format!("{tag} message {i} {}", "x".repeat(i % 50)).into_bytes(),
        })
        .collect()
}

/// A new store at `dir` with the default configuration.
pub fn store(dir: &Path) -> FsStore {
    FsStore::init(dir, Config::default()).unwrap()
}

/// Appends [`msgs`]`(tag, n)` to log "main" with default settings.
pub fn append(s: &FsStore, n: usize, tag: &str) {
    log::append(s, "main", &msgs(tag, n), SettingsChange::default()).unwrap();
}

/// The (H1, H2) pairs of log `name`, oldest first.
pub fn entries(s: &dyn Backend, name: &str) -> Vec<(Id, Id)> {
    log::entries(s, name)
        .unwrap()
        .into_iter()
        .map(|e| (e.h1, e.h2))
        .collect()
}

/// Asserts that a full check (object data included) finds no problem.
pub fn sound(s: &dyn Backend) {
    let r = check::check(s, true);
    assert!(r.is_sound(), "{:?}", r.problems);
}

/// Serves the store at `dir` (made first if missing) on a free loopback port, quietly;
/// `tweak` adjusts the options. The server stops when the result is dropped.
pub fn serve(dir: &Path, tweak: impl FnOnce(&mut Options)) -> Running {
    if !dir.join("config").exists() {
        FsStore::init(dir, Config::default()).unwrap();
    }
    let mut o = Options::new(dir);
    o.listen = "127.0.0.1:0".into();
    o.log_requests = false;
    tweak(&mut o);
    server::start(o).unwrap()
}

// ---------------------------------------------------------------------------------------
// Test doubles and generators

/// A backend that counts object reads (`get_object`), to prove transfers are incremental.
pub struct Counting<'a> {
    inner: &'a dyn Backend,
    reads: AtomicU64,
    /// Whether the bulk paths (`present_objects`, `raw_blocks`) go to `inner`.
    bulk: bool,
    /// Reads after this many fail, as if the source went away mid-transfer.
    fail_after: Option<u64>,
}

impl<'a> Counting<'a> {
    /// Forwards everything, bulk paths included: blocks copied whole are not counted.
    pub fn bulk(inner: &'a dyn Backend) -> Self {
        Counting {
            inner,
            reads: AtomicU64::new(0),
            bulk: true,
            fail_after: None,
        }
    }

    /// Offers no raw blocks, so every object is read, and counted, one by one.
    pub fn per_object(inner: &'a dyn Backend) -> Self {
        Counting {
            inner,
            reads: AtomicU64::new(0),
            bulk: false,
            fail_after: None,
        }
    }

    /// Like [`Counting::per_object`], but every read after the first `n` fails.
    pub fn failing_after(inner: &'a dyn Backend, n: u64) -> Self {
        Counting {
            fail_after: Some(n),
            ..Counting::per_object(inner)
        }
    }

    /// How many objects were read so far.
    pub fn read_count(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Backend for Counting<'_> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn object_location(&self, id: &Id) -> String {
        self.inner.object_location(id)
    }
    fn get_object(&self, id: &Id) -> remotelog::Result<Vec<u8>> {
        let done = self.reads.fetch_add(1, Ordering::Relaxed);
        if self.fail_after.is_some_and(|n| done >= n) {
            return Err(remotelog::Error::Invalid(format!(
                "simulated failure after {done} reads"
            )));
        }
        self.inner.get_object(id)
    }
    fn has_object(&self, id: &Id) -> remotelog::Result<bool> {
        self.inner.has_object(id)
    }
    fn present_objects(&self, ids: &[Id]) -> remotelog::Result<HashSet<Id>> {
        if self.bulk {
            return self.inner.present_objects(ids);
        }
        let mut out = HashSet::new();
        for id in ids {
            if self.inner.has_object(id)? {
                out.insert(*id);
            }
        }
        Ok(out)
    }
    fn put_objects(&self, objects: &[(Id, &[u8])]) -> remotelog::Result<usize> {
        self.inner.put_objects(objects)
    }
    fn batch(&self) -> remotelog::Result<Box<dyn Batch + '_>> {
        self.inner.batch()
    }
    fn raw_blocks(
        &self,
        ids: &[Id],
        take: &mut dyn FnMut(RawBlock) -> remotelog::Result<()>,
    ) -> remotelog::Result<()> {
        if self.bulk {
            self.inner.raw_blocks(ids, take)
        } else {
            Ok(())
        }
    }
    fn list_objects(&self) -> remotelog::Result<Vec<Id>> {
        self.inner.list_objects()
    }
    fn objects_with_prefix(&self, prefix: &str) -> remotelog::Result<Vec<Id>> {
        self.inner.objects_with_prefix(prefix)
    }
    fn read_ref(&self, name: &RefName) -> remotelog::Result<Option<Id>> {
        self.inner.read_ref(name)
    }
    fn update_ref(&self, name: &RefName, e: Expected, n: Option<Id>) -> remotelog::Result<()> {
        self.inner.update_ref(name, e, n)
    }
    fn list_refs(&self, prefix: &str) -> remotelog::Result<Vec<RefName>> {
        self.inner.list_refs(prefix)
    }
}

/// A small xorshift generator, so runs can differ yet a failing seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Appends a CBOR head (major type `major`, argument `n`) in its shortest form.
pub fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.push(m | 24);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Object storage: one SeaweedFS per test binary

static SEAWEED: std::sync::OnceLock<S3Server> = std::sync::OnceLock::new();

/// A SeaweedFS S3 server started by `scripts/seaweedfs.sh` for this test binary, and what
/// reaches it (the variables the script prints).
pub struct S3Server {
    /// `AWS_ENDPOINT_URL` and the other variables, as the script printed them.
    pub vars: Vec<(String, String)>,
    /// The bucket it serves.
    pub bucket: String,
}

/// The server of this test binary, started on first use with the test process as its owner
/// (it stops when the process exits). If it cannot be started the test fails, with the
/// script's message: object-storage tests never skip.
pub fn seaweed() -> &'static S3Server {
    SEAWEED.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Data of servers whose test binary is gone.
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("seaweedfs-").and_then(|p| p.parse().ok()) {
                    if !remotelog::store::lock::process_alive(pid) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("seaweedfs-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seaweedfs.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/seaweedfs.sh");
        assert!(
            out.status.success(),
            "SeaweedFS could not be started for the object-storage tests: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bucket = vars
            .iter()
            .find(|(k, _)| k == "REMOTELOG_S3_BUCKET")
            .map(|(_, v)| v.clone())
            .expect("the script names the bucket");
        S3Server { vars, bucket }
    })
}

impl S3Server {
    /// The value of one of the script's variables.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the script did not print {name}"))
    }

    /// A new prefix in the bucket, never used before: `s3://BUCKET/t-TAG-PID-N-NANOS`.
    pub fn fresh(&self, tag: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!(
            "s3://{}/t-{tag}-{}-{n}-{nanos}",
            self.bucket,
            std::process::id()
        )
    }

    /// The environment a `remotelog` command needs to reach the server.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The client configuration of the server (without touching this process's
    /// environment, which the tests' threads share).
    pub fn config(&self) -> remotelog::s3::client::Config {
        remotelog::s3::client::Config {
            endpoint: self.var("AWS_ENDPOINT_URL").into(),
            region: self.var("AWS_REGION").into(),
            key_id: self.var("AWS_ACCESS_KEY_ID").into(),
            secret: self.var("AWS_SECRET_ACCESS_KEY").into(),
            session_token: None,
        }
    }

    /// The store at `location` (`s3://…` from [`S3Server::fresh`]), created if need be,
    /// its preconditions probed.
    pub fn backend(&self, location: &str) -> remotelog::s3::S3Backend {
        let loc = remotelog::s3::Location::parse(location).unwrap();
        let client = remotelog::s3::client::Client::new(self.config(), &loc.bucket).unwrap();
        remotelog::s3::probe_once(&client, &loc).unwrap();
        remotelog::s3::S3Backend::open(client, loc, true).unwrap()
    }

    /// Runs `remotelog --store STORE ARGS...` with the server's environment.
    pub fn run(&self, store: &Path, args: &[&str]) -> Output {
        run_env(store, args, &self.env())
    }

    /// Like [`S3Server::run`], asserting success; returns stdout.
    #[track_caller]
    pub fn ok(&self, store: &Path, args: &[&str]) -> String {
        ok_env(store, args, &self.env())
    }
}

// remotelog serve --mock

/// A `remotelog serve --mock PROFILE` process on a free loopback port, with its request
/// log collected; killed when dropped.
pub struct MockServer {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl MockServer {
    /// Serves the store at `store` as `profile` (a built-in name or a TOML file) says,
    /// with `seed` and `extra` options of `serve`.
    pub fn start(store: &Path, profile: &str, seed: u64, extra: &[&str]) -> MockServer {
        use std::io::BufRead;
        let mut c = bin();
        c.arg("--store")
            .arg(store)
            .args(["serve", "--listen", "127.0.0.1:0", "--mock", profile])
            .args(["--mock-seed", &seed.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("remotelog serve --mock exited before listening")
                .unwrap();
            if let Some(at) = line.find(" on http://") {
                break line[at + 4..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        // Drained as it comes, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(|l| l.ok()) {
                let mut k = kept.lock().unwrap();
                k.push_str(&line);
                k.push('\n');
            }
        });
        MockServer { child, url, log }
    }

    /// What it wrote on stderr since it listened (one line per request).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
