//! The command line: every argument and its help text, and nothing else. Help and error
//! messages come from these definitions, so a change here changes what users see.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use remotelog::log::DEFAULT_LOG;

const ABOUT: &str = "Keep a node's message log safe on remotes.

A store is a directory with a content-addressed object store (objects/) and a name system \
of refs (refs/). It holds named logs of MVDS messages {group_id, timestamp, body}, organised \
in mapping pages that pair each message's native id (H1, SHA-256 as in MVDS) with its \
address in the store (H2, BLAKE3 of the stored object).";

const AFTER: &str = "Quick start:
  remotelog init                          # creates ./.remotelog
  echo hello | remotelog append --group chat
  remotelog append --group chat --dir ./inbox
  remotelog log
  remotelog remote add origin ~/backup/node   # or http://HOST:PORT (remotelog serve)
  remotelog push                          # back the log up
  remotelog clone ~/backup/node restored  # get it back anywhere
  remotelog check --read-data

`remotelog COMMAND --help` shows each command's options and examples.
Exit status: 0 on success, 1 on failure (one line on stderr), 2 for a malformed command line.";

#[derive(Parser)]
#[command(name = "remotelog", version, about = ABOUT, after_help = AFTER)]
pub struct Cli {
    /// The store directory.
    #[arg(
        long,
        global = true,
        env = "REMOTELOG_STORE",
        default_value = ".remotelog"
    )]
    pub store: PathBuf,
    /// No progress bars, summaries or hints: only what was asked for, and errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr: each phase of a long operation, each file `append --dir`
    /// skips.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a store (in DIR, or in --store). An existing store is left unchanged.
    Init(InitArgs),
    /// Append messages to a log; prints `H1 H2` per message.
    ///
    /// Each FILE is the body of one message. With --dir, every regular file below DIR is
    /// one message, in sorted path order; hidden files and folders (names starting with
    /// `.`, `.git/` among them) and symbolic links are skipped and counted on stderr. With
    /// neither, one message is read from stdin. All messages of one call become visible
    /// together, or not at all.
    Append(AppendArgs),
    /// Show a log's entries, newest first.
    Log(LogArgs),
    /// Print the body of a message given its H1 or H2 (or a unique prefix of 8+ hex digits).
    Cat(CatArgs),
    /// List the logs of the store with their entry counts and page settings.
    Logs(LogsArgs),
    /// Verify the store: refs, page chains, counts, referenced objects.
    ///
    /// Prints one line per problem and exits 1 if there is any. With --read-data every
    /// object is also decompressed and hashed.
    Check(CheckArgs),
    /// Manage remotes: directories this store backs its logs up to.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Copy logs to remotes: objects first, then the remote's ref (compare-and-swap).
    ///
    /// Refuses to drop entries the remote has and the local log lacks, unless --force.
    /// With no REMOTE, pushes to `origin` (or the only remote).
    Push(PushArgs),
    /// Fetch new entries from a remote and fast-forward the local logs.
    ///
    /// Never rewinds a local log that has entries the remote lacks. With no --log, pulls
    /// every log the remote has.
    Pull(PullArgs),
    /// Record what a remote holds, without changing any local log.
    ///
    /// Copies each log's entries from the remote (verified, as pull does) and records the
    /// remote's head as what this store last saw there, the lease that `push
    /// --force-with-lease` checks; then says how each local log relates to it. With no
    /// --log, fetches every log the remote has.
    Fetch(PullArgs),
    /// Create a new store from a remote directory or URL (or a remote's name), verifying every object.
    ///
    /// SRC becomes remote `origin` of the new store. DEST must be new or an empty directory;
    /// the store appears there in one step before any log is copied, and each log arrives
    /// whole or not at all, so an interrupted clone is completed by running the same command
    /// again (or `remotelog --store DEST pull`).
    ///
    /// A log that cannot be copied (an object missing or corrupt in SRC) is named on stderr
    /// and left out, the other logs are copied, and the exit status is 1: DEST is then a
    /// sound store without that log. If no log could be copied, DEST is removed again
    /// unless --keep-partial.
    Clone(CloneArgs),
    /// Import a log written in the 3/REMOTE-LOG form (NS + CAS over Twirp) as a native log.
    ///
    /// Checks every CAS address (BLAKE3-256) and every payload's H1 against localHash,
    /// appends all new entries in one atomic append, and records the source head in
    /// refs/imports/LOCAL so a later run imports only what is new.
    ImportSpec(ImportSpecArgs),
    /// Per log and remote: how far the local log is ahead or behind, as of the last push/pull.
    Status(StatusArgs),
    /// Delete objects no ref reaches (alias: scrub).
    ///
    /// Marks everything reachable from every log and tracking ref, deletes unreferenced
    /// loose objects and rewrites packs without their unreferenced entries. Objects younger
    /// than the grace period are kept, so a concurrent writer's new objects survive.
    #[command(alias = "scrub")]
    Gc(GcArgs),
    /// Remove messages from a log (by H1 or H2, or a unique 8+ digit prefix).
    ///
    /// Rewrites the pages that held them; the bytes stay in the store until `gc`, and in
    /// remotes until you push (--force-with-lease) and gc there.
    Forget(ForgetArgs),
    /// Merge loose objects and packs into packs of a target size.
    ///
    /// Blocks of existing packs are copied without recompression. The new packs are durable
    /// and in force before the old files are deleted, so an interruption loses nothing.
    Repack(RepackArgs),
    /// Run a short end-to-end demonstration in a throwaway directory.
    Demo(DemoArgs),
    /// Serve the store over HTTP: a REST API (CAS, NS, packs) and the 3/REMOTE-LOG Twirp
    /// services, so `http://HOST:PORT` works as a remote.
    ///
    /// Logs one line per request on stderr; stops on SIGTERM/SIGINT after finishing the
    /// requests in flight.
    Serve(ServeArgs),
    /// Simulate writers and readers of remote logs against mock remotes (profiles of
    /// IPFS, IPNS, Swarm, ENS, S3, Waku, a lossy peer) on a virtual clock, over a matrix of
    /// page sizes and embed settings; writes results.csv, results.md and SVG plots.
    ///
    /// The same seed gives byte-identical results.
    Sim(Box<SimArgs>),
    /// Print a shell completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout: remotelog(1), or remotelog-COMMAND(1).
    Man(ManArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// Where to create it; defaults to --store.
    pub dir: Option<PathBuf>,
    /// zstd level (1-22) for objects written to this store.
    #[arg(long, default_value_t = remotelog::store::config::DEFAULT_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
}

#[derive(Args)]
#[command(group(ArgGroup::new("group_id").required(true).args(["group", "group_hex"])))]
pub struct AppendArgs {
    /// The messages' group id, as text (required: this or --group-hex).
    #[arg(long)]
    pub group: Option<String>,
    /// The messages' group id, as hex bytes.
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub group_hex: Option<HexBytes>,
    /// The log to append to.
    #[arg(long, default_value = DEFAULT_LOG)]
    pub log: String,
    /// The messages' timestamp in Unix seconds (default: now).
    #[arg(long, allow_negative_numbers = true)]
    pub timestamp: Option<i64>,
    /// Take every regular file below DIR, in sorted path order, except hidden ones.
    #[arg(long, conflicts_with = "files")]
    pub dir: Option<PathBuf>,
    /// With --dir: skip files and folders whose path below DIR matches GLOB (`*.tmp`,
    /// `drafts/**`); may be given several times.
    #[arg(long, value_name = "GLOB", requires = "dir", value_parser = parse_glob)]
    pub exclude: Vec<globset::Glob>,
    /// With --dir: take hidden files and folders too (`.git/` included).
    #[arg(long, requires = "dir")]
    pub include_hidden: bool,
    /// Page capacity for pages written from now on (1 = linked list, 0 = unbounded).
    #[arg(long)]
    pub page_size: Option<u64>,
    /// Embed the newest K messages in the pages written from now on.
    #[arg(long, value_name = "K")]
    pub embed: Option<u64>,
    /// One JSON object per message: h1, h2, size, and the file it came from (null for
    /// stdin).
    #[arg(long)]
    pub json: bool,
    /// Message bodies, one file each.
    pub files: Vec<PathBuf>,
}

/// How `log` prints entries.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Short H1, local date, size, group and the start of the body: for people.
    Human,
    /// `H1 H2 TIMESTAMP SIZE GROUP`, full ids and Unix seconds: for scripts, stable.
    Plain,
    /// One JSON object per line (as --json).
    Json,
}

#[derive(Args)]
pub struct LogArgs {
    /// The log.
    #[arg(long, default_value = DEFAULT_LOG)]
    pub log: String,
    /// Show only the newest N entries.
    #[arg(short = 'n', long, value_name = "N")]
    pub max_count: Option<u64>,
    /// human (the default on a terminal), plain (the default otherwise: `H1 H2 TIMESTAMP
    /// SIZE GROUP` per line) or json.
    #[arg(long, value_enum, conflicts_with = "json")]
    pub format: Option<LogFormat>,
    /// One JSON object per line: h1, h2, group (hex), timestamp, size, embedded.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// A command, for its own page (e.g. push).
    pub command: Option<String>,
}

/// Bytes given in hex on the command line.
#[derive(Clone, Debug)]
pub struct HexBytes(pub Vec<u8>);

/// Parses hex bytes, so that clap reports a bad value as a malformed command line.
fn parse_hex(text: &str) -> Result<HexBytes, String> {
    hex::decode(text)
        .map(HexBytes)
        .map_err(|e| format!("not hex bytes ({e}); give an even number of hex digits"))
}

/// Parses an `--exclude` glob.
fn parse_glob(text: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

#[derive(Args)]
pub struct CatArgs {
    /// H1 or H2, or a unique prefix of one.
    pub id: String,
}

#[derive(Args)]
pub struct LogsArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Check the remote of this name (a directory, URL or s3:// remote) instead of --store.
    pub remote: Option<String>,
    /// Decompress and hash every object.
    #[arg(long)]
    pub read_data: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RemoteCommand {
    /// Register a remote directory under NAME (it is created by the first push).
    Add {
        /// The remote's name, e.g. origin or backup.
        name: String,
        /// The remote store's directory, or the URL of a `remotelog serve`
        /// (http://HOST:PORT; its token comes from REMOTELOG_TOKEN or REMOTELOG_TOKEN_FILE).
        dir: PathBuf,
    },
    /// List remotes and, per log, what each held at the last push or pull.
    List,
    /// Forget a remote (its directory is not touched).
    Remove {
        /// The remote's name.
        name: String,
    },
    /// Rename a remote; what it held at the last exchange moves along.
    Rename {
        /// Its name now.
        old: String,
        /// Its new name.
        new: String,
    },
    /// Point a remote at another location (a directory, or http://HOST:PORT).
    SetUrl {
        /// The remote's name.
        name: String,
        /// The new location.
        location: PathBuf,
    },
    /// Show a remote: location, last push and pull, and the logs it holds (read from it).
    Show {
        /// The remote's name.
        name: String,
        /// Print it as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct PushArgs {
    /// Remotes to push to.
    pub remotes: Vec<String>,
    /// Push to every remote.
    #[arg(long, conflicts_with = "remotes")]
    pub all: bool,
    /// The log to push.
    #[arg(long, default_value = DEFAULT_LOG, conflicts_with = "all_logs")]
    pub log: String,
    /// Push every log.
    #[arg(long)]
    pub all_logs: bool,
    /// Overwrite the remote log even if that drops entries it has.
    #[arg(long, conflicts_with = "force_with_lease")]
    pub force: bool,
    /// Overwrite the remote log (e.g. after `forget`) only if it still holds what this
    /// store last saw there.
    #[arg(long)]
    pub force_with_lease: bool,
    /// Print a JSON summary per log and remote.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PullArgs {
    /// The remote (default: `origin`, or the only remote).
    pub remote: Option<String>,
    /// Only this log.
    #[arg(long)]
    pub log: Option<String>,
    /// Print a JSON summary per log.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CloneArgs {
    /// A store directory, an http://HOST:PORT URL, or the name of a remote of --store.
    pub src: String,
    /// The new store's directory.
    pub dest: PathBuf,
    /// Only this log.
    #[arg(long)]
    pub log: Option<String>,
    /// Keep DEST with what was copied even when no log could be copied, so that running
    /// the same clone again resumes from there (by default it is removed).
    #[arg(long)]
    pub keep_partial: bool,
    /// Print a JSON summary per log.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ImportSpecArgs {
    /// The server: http://HOST:PORT (token from REMOTELOG_TOKEN or REMOTELOG_TOKEN_FILE).
    pub url: String,
    /// The name the log has in the server's NS.
    pub name: String,
    /// The local log to append to (default: NAME).
    #[arg(long, value_name = "LOCAL")]
    pub log: Option<String>,
    /// Refuse a source log of more pages.
    #[arg(long, default_value_t = remotelog::transfer::import_spec::Limits::default().max_pages)]
    pub max_pages: usize,
    /// Refuse a source log of more entries.
    #[arg(long, default_value_t = remotelog::transfer::import_spec::Limits::default().max_entries)]
    pub max_entries: usize,
    /// Refuse to read more bytes in all (pages and payloads, counted as they arrive).
    ///
    /// The import holds what it reads until its one atomic append, so this also bounds
    /// its memory (default 1 GiB). One answer may hold at most 256 MiB.
    #[arg(long, default_value_t = remotelog::transfer::import_spec::Limits::default().max_bytes)]
    pub max_bytes: u64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GcArgs {
    /// Collect in this remote's directory instead of --store.
    pub remote: Option<String>,
    /// Keep unreferenced objects younger than this: `now`, or an age like 30m, 1h, 2d, 1w.
    #[arg(long, default_value = "1h", value_name = "AGE", value_parser = check_age)]
    pub prune: String,
    /// Only list what would be deleted and the bytes it would free.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait at most this many seconds for writers that are working on the store (gc
    /// deletes nothing while one works), then give up.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub wait: u64,
}

#[derive(Args)]
pub struct ForgetArgs {
    /// H1 or H2 of each message to remove.
    #[arg(required_unless_present_any = ["older_than", "keep_last"], conflicts_with_all = ["older_than", "keep_last"])]
    pub ids: Vec<String>,
    /// Retention: remove the messages whose timestamp is older than AGE (30d, 12w, 1y),
    /// except those --keep-last keeps.
    #[arg(long, value_name = "AGE", value_parser = check_age)]
    pub older_than: Option<String>,
    /// Retention: keep only the newest N entries (with --older-than: also keep these).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_last: Option<u64>,
    /// The log.
    #[arg(long, default_value = DEFAULT_LOG)]
    pub log: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RepackArgs {
    /// Repack this remote's store (a directory or s3:// remote) instead of --store, as
    /// `gc REMOTE` collects there.
    pub remote: Option<String>,
    /// Start a new pack once one reaches this many MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub target_size: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where to put the demo store (default: a new directory under the system temp dir).
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = remotelog::net::server::DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: String,
    /// Require `Authorization: Bearer <token>` for writes; the file holds the token
    /// (surrounding whitespace is trimmed).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Refuse every write (403).
    #[arg(long)]
    pub read_only: bool,
    /// Require the token for reads too.
    #[arg(long, requires = "token_file")]
    pub private: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = remotelog::net::server::DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub max_body: u64,
    /// Longest a request may take, in seconds (uploads included).
    #[arg(long, default_value_t = remotelog::net::server::DEFAULT_TIMEOUT.as_secs(), value_name = "SECS")]
    pub timeout: u64,
    /// Requests served at once once their body is in; more wait for a slot (at most 512,
    /// one per connection).
    #[arg(long, default_value_t = remotelog::net::server::DEFAULT_MAX_CONCURRENCY)]
    pub max_concurrency: usize,
    /// MiB the requests being served may hold at once for the objects and pack blocks
    /// they work on; a request waits until its share is free.
    #[arg(long, default_value_t = remotelog::net::server::DEFAULT_MAX_MEMORY >> 20, value_name = "MIB")]
    pub max_memory: u64,
    /// Allow gc over HTTP (`POST /gc`, `remotelog gc REMOTE`) with the token in this file,
    /// which must differ from --token-file's: writers cannot delete.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Answer as a real CAS/NS would, in real time: a mock profile, built-in (ideal, ipfs,
    /// ipns, swarm, ens, s3, waku, lossy) or a TOML file of the same keys (a file may
    /// start from a built-in one with `inherit = "ipns"`).
    /// Clients are told apart by the X-Remotelog-Actor header (REMOTELOG_ACTOR for
    /// remotelog), else their token, else their address.
    #[arg(long, value_name = "PROFILE|FILE")]
    pub mock: Option<String>,
    /// Seed of the mock's random choices: the same seed, the same outcomes.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "mock")]
    pub mock_seed: u64,
}

#[derive(Args)]
pub struct SimArgs {
    /// A preset: `matrix` (default: 7 profiles x 5 page sizes x 4 embeds, 8 h) or `mvds`
    /// (the MVDS simulation's 2 nodes online 10% of the time); options below override it.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Profiles: built-in names (ideal, ipfs, ipns, swarm, ens, s3, waku, lossy) or TOML
    /// files, comma-separated.
    #[arg(long)]
    pub profiles: Option<String>,
    /// Page sizes, comma-separated (0 = unbounded).
    #[arg(long)]
    pub page_sizes: Option<String>,
    /// Embed settings, comma-separated (`all` = every entry).
    #[arg(long)]
    pub embeds: Option<String>,
    /// Numbers of readers, comma-separated.
    #[arg(long)]
    pub readers: Option<String>,
    /// Seeds per cell (results are pooled over them).
    #[arg(long)]
    pub seeds: Option<u32>,
    /// The first seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long writers write: 12h, 30m, 90s or seconds.
    #[arg(long)]
    pub duration: Option<String>,
    /// How long the run goes on after the last message.
    #[arg(long)]
    pub drain: Option<String>,
    /// Writers, one log each.
    #[arg(long)]
    pub writers: Option<u32>,
    /// Mean time between a writer's messages.
    #[arg(long)]
    pub interval: Option<String>,
    /// Exponential gaps between messages instead of a fixed interval.
    #[arg(long)]
    pub poisson: bool,
    /// Body sizes in bytes: a number, or quantiles like p50=256,p90=1024.
    #[arg(long)]
    pub size: Option<String>,
    /// When writers push: each, every:SECONDS or online.
    #[arg(long)]
    pub push: Option<String>,
    /// When writers are online: always, onoff:ON,OFF, bernoulli:P,EPOCH or trace:FILE.
    #[arg(long)]
    pub writer_schedule: Option<String>,
    /// When readers are online (same forms).
    #[arg(long)]
    pub reader_schedule: Option<String>,
    /// Time between a reader's polls while online.
    #[arg(long)]
    pub poll: Option<String>,
    /// Time before a failed push is tried again.
    #[arg(long)]
    pub retry: Option<String>,
    /// Output directory (default sim-out).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Skip the SVG plots.
    #[arg(long)]
    pub no_plots: bool,
}

/// Parses an age (`gc --prune`, `forget --older-than`): `now`, a number of seconds, or
/// what humantime reads (`30m`, `1h 30m`, `2d`, `1w`, `3months`). An age beyond what a
/// `Duration` of u64 seconds holds is the largest one: it keeps everything.
pub fn parse_age(text: &str) -> anyhow::Result<std::time::Duration> {
    use std::time::Duration;
    let text = text.trim();
    if text == "now" {
        return Ok(Duration::ZERO);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Ok(Duration::from_secs(u64::MAX)),
        Err(e) => {
            anyhow::bail!("{text:?} is not an age ({e}); give `now` or an age like 30m, 1h, 2d, 1w")
        }
    }
}

/// [`parse_age`] as clap's check of an age option: a bad value is a malformed command line
/// (exit status 2); the option keeps its text, which messages repeat.
fn check_age(text: &str) -> Result<String, String> {
    parse_age(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a listening address (`HOST:PORT`), so that a bad one is a malformed command line.
fn parse_listen(text: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(text.to_string()),
        Ok(None) => Err("names no address".into()),
        Err(e) => Err(format!("{e}; give HOST:PORT, e.g. 127.0.0.1:8001")),
    }
}
