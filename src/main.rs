//! The `remotelog` command: a thin layer that parses arguments, calls the library and prints.

use std::borrow::Cow;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use remotelog::backend::Backend;
use remotelog::config::Config;
use remotelog::error::IoContext;
use remotelog::log::{self, SettingsChange, DEFAULT_LOG};
use remotelog::progress::{Progress, Silent};
use remotelog::remote::{self, Remotes};
use remotelog::sync::{self, LogTransfer};
use remotelog::{Error, FsStore, Message};

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
  remotelog remote add origin /mnt/backup/node   # or http://HOST:PORT (remotelog serve)
  remotelog push                          # back the log up
  remotelog clone /mnt/backup/node restored      # get it back anywhere
  remotelog check --read-data

Exit status: 0 on success, 1 on failure (one line on stderr), 2 for a malformed command line.
The formats are documented in format/ of the source tree.";

#[derive(Parser)]
#[command(name = "remotelog", version, about = ABOUT, after_help = AFTER)]
struct Cli {
    /// The store directory.
    #[arg(
        long,
        global = true,
        env = "REMOTELOG_STORE",
        default_value = ".remotelog"
    )]
    store: PathBuf,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a store (in DIR, or in --store). An existing store is left unchanged.
    Init {
        /// Where to create it; defaults to --store.
        dir: Option<PathBuf>,
        /// zstd level (1-22) for objects written to this store.
        #[arg(long, default_value_t = remotelog::config::DEFAULT_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
        zstd_level: i32,
    },
    /// Append messages to a log; prints `H1 H2` per message.
    ///
    /// Each FILE is the body of one message. With --dir, every regular file below DIR is
    /// one message, in sorted path order. With neither, one message is read from stdin.
    /// All messages of one call become visible together, or not at all.
    Append(AppendArgs),
    /// Show a log's entries, newest first.
    Log {
        /// The log.
        #[arg(long, default_value = DEFAULT_LOG)]
        log: String,
        /// One JSON object per line: h1, h2, group (hex), timestamp, size, embedded.
        #[arg(long)]
        json: bool,
    },
    /// Print the body of a message given its H1 or H2 (or a unique prefix of 8+ hex digits).
    Cat {
        /// H1 or H2, or a unique prefix of one.
        id: String,
    },
    /// List the logs of the store with their entry counts and page settings.
    Logs {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Verify the store: refs, page chains, counts, referenced objects.
    ///
    /// Prints one line per problem and exits 1 if there is any. With --read-data every
    /// object is also decompressed and hashed.
    Check {
        /// Decompress and hash every object.
        #[arg(long)]
        read_data: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage remotes: directories this store backs its logs up to.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Copy logs to remotes: objects first, then the remote's ref (compare-and-swap).
    ///
    /// Refuses to drop entries the remote has and the local log lacks, unless --force.
    /// With no REMOTE, pushes to `origin` (or the only remote).
    Push {
        /// Remotes to push to.
        remotes: Vec<String>,
        /// Push to every remote.
        #[arg(long, conflicts_with = "remotes")]
        all: bool,
        /// The log to push.
        #[arg(long, default_value = DEFAULT_LOG, conflicts_with = "all_logs")]
        log: String,
        /// Push every log.
        #[arg(long)]
        all_logs: bool,
        /// Overwrite the remote log even if that drops entries it has.
        #[arg(long, conflicts_with = "force_with_lease")]
        force: bool,
        /// Overwrite the remote log (e.g. after `forget`) only if it still holds what this
        /// store last saw there.
        #[arg(long)]
        force_with_lease: bool,
        /// Print a JSON summary per log and remote.
        #[arg(long)]
        json: bool,
    },
    /// Fetch new entries from a remote and fast-forward the local logs.
    ///
    /// Never rewinds a local log that has entries the remote lacks. With no --log, pulls
    /// every log the remote has.
    Pull {
        /// The remote (default: `origin`, or the only remote).
        remote: Option<String>,
        /// Only this log.
        #[arg(long)]
        log: Option<String>,
        /// Print a JSON summary per log.
        #[arg(long)]
        json: bool,
    },
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
    Clone {
        /// A store directory, an http://HOST:PORT URL, or the name of a remote of --store.
        src: String,
        /// The new store's directory.
        dest: PathBuf,
        /// Only this log.
        #[arg(long)]
        log: Option<String>,
        /// Keep DEST with what was copied even when no log could be copied, so that running
        /// the same clone again resumes from there (by default it is removed).
        #[arg(long)]
        keep_partial: bool,
        /// Print a JSON summary per log.
        #[arg(long)]
        json: bool,
    },
    /// Import a log written in the 3/REMOTE-LOG form (NS + CAS over Twirp) as a native log.
    ///
    /// Checks every CAS address (BLAKE3-256) and every payload's H1 against localHash,
    /// appends all new entries in one atomic append, and records the source head in
    /// refs/imports/LOCAL so a later run imports only what is new (format/spec-view.md).
    ImportSpec {
        /// The server: http://HOST:PORT (token from REMOTELOG_TOKEN or REMOTELOG_TOKEN_FILE).
        url: String,
        /// The name the log has in the server's NS.
        name: String,
        /// The local log to append to (default: NAME).
        #[arg(long, value_name = "LOCAL")]
        log: Option<String>,
        /// Refuse a source log of more pages.
        #[arg(long, default_value_t = remotelog::spec::Limits::default().max_pages)]
        max_pages: usize,
        /// Refuse a source log of more entries.
        #[arg(long, default_value_t = remotelog::spec::Limits::default().max_entries)]
        max_entries: usize,
        /// Refuse to read more bytes in all (pages and payloads, counted as they arrive).
        ///
        /// The import holds what it reads until its one atomic append, so this also bounds
        /// its memory (default 1 GiB). One answer may hold at most 256 MiB.
        #[arg(long, default_value_t = remotelog::spec::Limits::default().max_bytes)]
        max_bytes: u64,
    },
    /// Per log and remote: how far the local log is ahead or behind, as of the last push/pull.
    Status {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Delete objects no ref reaches (alias: scrub).
    ///
    /// Marks everything reachable from every log and tracking ref, deletes unreferenced
    /// loose objects and rewrites packs without their unreferenced entries. Objects younger
    /// than the grace period are kept, so a concurrent writer's new objects survive.
    #[command(alias = "scrub")]
    Gc {
        /// Collect in this remote's directory instead of --store.
        remote: Option<String>,
        /// Keep unreferenced objects younger than this: `now`, or a number with s, m, h or d.
        #[arg(long, default_value = "1h", value_name = "AGE")]
        prune: String,
        /// Only list what would be deleted and the bytes it would free.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Wait at most this many seconds for writers that are working on the store (gc
        /// deletes nothing while one works), then give up.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        wait: u64,
    },
    /// Remove messages from a log (by H1 or H2, or a unique 8+ digit prefix).
    ///
    /// Rewrites the pages that held them; the bytes stay in the store until `gc`, and in
    /// remotes until you push (--force-with-lease) and gc there.
    Forget {
        /// H1 or H2 of each message to remove.
        #[arg(required = true)]
        ids: Vec<String>,
        /// The log.
        #[arg(long, default_value = DEFAULT_LOG)]
        log: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge loose objects and packs into packs of a target size.
    ///
    /// Blocks of existing packs are copied without recompression. The new packs are durable
    /// and in force before the old files are deleted, so an interruption loses nothing.
    Repack {
        /// Start a new pack once one reaches this many MiB.
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        target_size: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a short end-to-end demonstration in a throwaway directory.
    Demo {
        /// Where to put the demo store (default: a new directory under the system temp dir).
        dir: Option<PathBuf>,
    },
    /// Serve the store over HTTP: a REST API (CAS, NS, packs) and the 3/REMOTE-LOG Twirp
    /// services, so `http://HOST:PORT` works as a remote (format/http-api.md).
    ///
    /// Logs one line per request on stderr; stops on SIGTERM/SIGINT after finishing the
    /// requests in flight.
    Serve(ServeArgs),
    /// Simulate writers and readers of remote logs against mock remotes (profiles of
    /// IPFS, IPNS, Swarm, ENS, S3, Waku, a lossy peer) on a virtual clock, over a matrix of
    /// page sizes and embed settings; writes results.csv, results.md and SVG plots.
    ///
    /// See docs/remote-log-mocking.md. The same seed gives byte-identical results.
    Sim(Box<SimArgs>),
}

#[derive(Args)]
struct SimArgs {
    /// A preset: `matrix` (default: 7 profiles x 5 page sizes x 4 embeds, 8 h) or `mvds`
    /// (the MVDS simulation's 2 nodes online 10% of the time); options below override it.
    #[arg(long)]
    scenario: Option<String>,
    /// Profiles: built-in names (ideal, ipfs, ipns, swarm, ens, s3, waku, lossy) or TOML
    /// files, comma-separated.
    #[arg(long)]
    profiles: Option<String>,
    /// Page sizes, comma-separated (0 = unbounded).
    #[arg(long)]
    page_sizes: Option<String>,
    /// Embed settings, comma-separated (`all` = every entry).
    #[arg(long)]
    embeds: Option<String>,
    /// Numbers of readers, comma-separated.
    #[arg(long)]
    readers: Option<String>,
    /// Seeds per cell (results are pooled over them).
    #[arg(long)]
    seeds: Option<u32>,
    /// The first seed.
    #[arg(long)]
    seed: Option<u64>,
    /// How long writers write: 12h, 30m, 90s or seconds.
    #[arg(long)]
    duration: Option<String>,
    /// How long the run goes on after the last message.
    #[arg(long)]
    drain: Option<String>,
    /// Writers, one log each.
    #[arg(long)]
    writers: Option<u32>,
    /// Mean time between a writer's messages.
    #[arg(long)]
    interval: Option<String>,
    /// Exponential gaps between messages instead of a fixed interval.
    #[arg(long)]
    poisson: bool,
    /// Body sizes in bytes: a number, or quantiles like p50=256,p90=1024.
    #[arg(long)]
    size: Option<String>,
    /// When writers push: each, every:SECONDS or online.
    #[arg(long)]
    push: Option<String>,
    /// When writers are online: always, onoff:ON,OFF, bernoulli:P,EPOCH or trace:FILE.
    #[arg(long)]
    writer_schedule: Option<String>,
    /// When readers are online (same forms).
    #[arg(long)]
    reader_schedule: Option<String>,
    /// Time between a reader's polls while online.
    #[arg(long)]
    poll: Option<String>,
    /// Time before a failed push is tried again.
    #[arg(long)]
    retry: Option<String>,
    /// Output directory (default sim-out).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Skip the SVG plots.
    #[arg(long)]
    no_plots: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = remotelog::server::DEFAULT_LISTEN)]
    listen: String,
    /// Require `Authorization: Bearer <token>` for writes; the file holds the token
    /// (surrounding whitespace is trimmed).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Refuse every write (403).
    #[arg(long)]
    read_only: bool,
    /// Require the token for reads too.
    #[arg(long, requires = "token_file")]
    private: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = remotelog::server::DEFAULT_MAX_BODY, value_name = "BYTES")]
    max_body: u64,
    /// Longest a request may take, in seconds (uploads included).
    #[arg(long, default_value_t = remotelog::server::DEFAULT_TIMEOUT.as_secs(), value_name = "SECS")]
    timeout: u64,
    /// Requests served at once once their body is in; more wait for a slot.
    #[arg(long, default_value_t = remotelog::server::DEFAULT_MAX_CONCURRENCY)]
    max_concurrency: usize,
    /// MiB the requests being served may hold at once for the objects and pack blocks
    /// they work on; a request waits until its share is free.
    #[arg(long, default_value_t = remotelog::server::DEFAULT_MAX_MEMORY >> 20, value_name = "MIB")]
    max_memory: u64,
    /// Allow gc over HTTP (`POST /gc`, `remotelog gc REMOTE`) with the token in this file,
    /// which must differ from --token-file's: writers cannot delete.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RemoteCommand {
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
}

#[derive(Args)]
struct AppendArgs {
    /// The log to append to.
    #[arg(long, default_value = DEFAULT_LOG)]
    log: String,
    /// The messages' group id, as text.
    #[arg(
        long,
        conflicts_with = "group_hex",
        required_unless_present = "group_hex"
    )]
    group: Option<String>,
    /// The messages' group id, as hex bytes.
    #[arg(long)]
    group_hex: Option<String>,
    /// The messages' timestamp (default: now, in unix seconds).
    #[arg(long, allow_negative_numbers = true)]
    timestamp: Option<i64>,
    /// Take every regular file below DIR, in sorted path order.
    #[arg(long, conflicts_with = "files")]
    dir: Option<PathBuf>,
    /// Page capacity for pages written from now on (1 = linked list, 0 = unbounded).
    #[arg(long)]
    page_size: Option<u64>,
    /// Embed the newest K messages in the pages written from now on.
    #[arg(long, value_name = "K")]
    embed: Option<u64>,
    /// Message bodies, one file each.
    files: Vec<PathBuf>,
}

/// Packs on a directory remote beyond which a push suggests a repack: every push adds one.
const PACKS_BEFORE_HINT: usize = 16;

/// Tells on stderr when a directory remote has gathered many packs, and how to merge them.
fn repack_hint(name: &str, location: &str) {
    if remotelog::http_client::is_url(location) {
        return;
    }
    let packs = FsStore::open(Path::new(location)).and_then(|s| s.packs());
    if let Ok(packs) = packs {
        if packs.len() > PACKS_BEFORE_HINT {
            eprintln!(
                "remotelog: remote {name} now holds {} packs (one per push); `remotelog repack --store {location}` merges them into a few large ones",
                packs.len()
            );
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("remotelog: error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each cause once: most errors already show their
/// cause in their own message (`Error::Io` shows the OS error it also chains as its
/// source), so a cause whose text is already there is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    match cli.command {
        Command::Init { dir, zstd_level } => {
            let dir = dir.unwrap_or(cli.store);
            let config = Config {
                zstd_level,
                ..Config::default()
            };
            match FsStore::init(&dir, config) {
                Ok(_) => writeln!(
                    out,
                    "Initialized empty remotelog store in {}",
                    dir.display()
                )?,
                Err(e @ Error::AlreadyAStore(_)) => {
                    writeln!(out, "{e}")?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::Append(args) => {
            let store = FsStore::open(&cli.store)?;
            let (group_id, timestamp) = group_and_time(&args)?;
            let messages = message_bodies(&args)?.map(|body| {
                body.map(|body| {
                    Cow::Owned(Message {
                        group_id: group_id.clone(),
                        timestamp,
                        body,
                    })
                })
            });
            let change = SettingsChange {
                capacity: args.page_size,
                embed: args.embed,
            };
            let done = log::append_iter(&store, &args.log, messages, change)?;
            let mut line = [0u8; 130];
            for (h1, h2) in &done.ids {
                // Hex into a stack buffer: 100,000 lines through Display cost a few percent.
                hex::encode_to_slice(h1.0, &mut line[..64]).map_err(anyhow::Error::msg)?;
                line[64] = b' ';
                hex::encode_to_slice(h2.0, &mut line[65..129]).map_err(anyhow::Error::msg)?;
                line[129] = b'\n';
                out.write_all(&line)?;
            }
        }
        Command::Log { log: name, json } => {
            let store = FsStore::open(&cli.store)?;
            if log::head(&store, &name)?.is_none() && !log_exists(&store, &name)? {
                anyhow::bail!(
                    "no log named {name:?} in {}; `remotelog logs` lists them",
                    cli.store.display()
                );
            }
            for entry in log::entries(&store, &name)? {
                let m = log::read_message(&store, &entry)?;
                if json {
                    let line = serde_json::json!({
                        "h1": entry.h1.to_hex(),
                        "h2": entry.h2.to_hex(),
                        "group": hex::encode(&m.group_id),
                        "timestamp": m.timestamp,
                        "size": m.body.len(),
                        "embedded": entry.embedded.is_some(),
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(
                        out,
                        "{} {} {} {} {}",
                        entry.h1,
                        entry.h2,
                        m.timestamp,
                        m.body.len(),
                        printable_group(&m.group_id)
                    )?;
                }
            }
        }
        Command::Cat { id } => {
            let store = FsStore::open(&cli.store)?;
            let (_, m) = log::find(&store, &id)?;
            out.write_all(&m.body)?;
        }
        Command::Logs { json } => {
            let store = FsStore::open(&cli.store)?;
            for info in log::list(&store)? {
                if json {
                    let line = serde_json::json!({
                        "name": info.name,
                        "entries": info.count,
                        "head": info.head.to_hex(),
                        "page_size": info.settings.capacity,
                        "embed": info.settings.embed,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(
                        out,
                        "{}\t{} entries\tpage size {}\tembed {}",
                        info.name,
                        info.count,
                        page_size_text(info.settings.capacity),
                        info.settings.embed
                    )?;
                }
            }
        }
        Command::Check { read_data, json } => {
            let store = FsStore::open(&cli.store)?;
            let report = remotelog::check::check(&store, read_data);
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            } else {
                for p in &report.problems {
                    writeln!(out, "problem: {p}")?;
                }
                for n in &report.notes {
                    writeln!(out, "note: {n}")?;
                }
                writeln!(
                    out,
                    "{}: {} logs, {} entries, {} pages, {} messages{}",
                    if report.is_sound() { "ok" } else { "FAILED" },
                    report.logs,
                    report.entries,
                    report.pages,
                    report.messages,
                    if read_data {
                        format!(", {} objects read and hashed", report.objects_read)
                    } else {
                        String::new()
                    }
                )?;
            }
            out.flush()?;
            if !report.is_sound() {
                eprintln!(
                    "remotelog: error: check found {} problem(s) in {}",
                    report.problems.len(),
                    store.location()
                );
                return Ok(ExitCode::from(1));
            }
        }
        Command::Remote(cmd) => {
            let store = FsStore::open(&cli.store)?;
            match cmd {
                RemoteCommand::Add { name, dir } => {
                    let r = remote::add(&store, &name, &dir)?;
                    writeln!(out, "added remote {} at {}", r.name, r.location)?;
                }
                RemoteCommand::Remove { name } => {
                    remote::remove(&store, &name)?;
                    writeln!(out, "removed remote {name}")?;
                }
                RemoteCommand::List => {
                    for r in Remotes::load(&store)?.all() {
                        writeln!(out, "{}\t{}", r.name, r.location)?;
                        let prefix = format!("{}/{}", remote::REMOTES, r.name);
                        for t in store.list_refs(&prefix)? {
                            let Some(head) = store.read_ref(&t)? else {
                                continue;
                            };
                            let count = log::read_page(&store, &head)?.count;
                            let name = t
                                .as_str()
                                .strip_prefix(&format!("{prefix}/"))
                                .unwrap_or(t.as_str());
                            writeln!(
                                out,
                                "\t{name}: {count} entries at last exchange (head {})",
                                &head.to_hex()[..12]
                            )?;
                        }
                    }
                }
            }
        }
        Command::Push {
            remotes,
            all,
            log: one_log,
            all_logs,
            force,
            force_with_lease,
            json,
        } => {
            let force = match (force, force_with_lease) {
                (true, _) => sync::Force::Yes,
                (_, true) => sync::Force::WithLease,
                _ => sync::Force::No,
            };
            let store = FsStore::open(&cli.store)?;
            let registered = Remotes::load(&store)?;
            let targets: Vec<remote::Remote> = if all {
                registered.all().to_vec()
            } else if remotes.is_empty() {
                vec![registered.default_remote()?.clone()]
            } else {
                remotes
                    .iter()
                    .map(|n| registered.named(n).cloned().map_err(anyhow::Error::from))
                    .collect::<anyhow::Result<_>>()?
            };
            if targets.is_empty() {
                anyhow::bail!(
                    "this store has no remotes; add one with `remotelog remote add NAME DIR`"
                );
            }
            let logs: Vec<String> = if all_logs {
                log::list(&store)?.into_iter().map(|i| i.name).collect()
            } else {
                vec![one_log]
            };
            let mut failed = 0;
            for target in &targets {
                let dst = match remote::open(&target.location, true) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("remotelog: error: remote {}: {e}", target.name);
                        failed += 1;
                        continue;
                    }
                };
                for name in &logs {
                    let label = format!("push {name} → {}", target.name);
                    failed += transfer(&mut out, cli.quiet, json, "to", label, |bar| {
                        sync::push(&store, &target.name, &*dst, name, force, bar)
                    })?;
                }
                repack_hint(&target.name, &target.location);
            }
            out.flush()?;
            if failed > 0 {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Pull {
            remote: name,
            log: one_log,
            json,
        } => {
            let store = FsStore::open(&cli.store)?;
            let registered = Remotes::load(&store)?;
            let target = match &name {
                Some(n) => registered.named(n)?.clone(),
                None => registered.default_remote()?.clone(),
            };
            let src = remote::open(&target.location, false)
                .map_err(|e| anyhow::anyhow!("remote {}: {e}", target.name))?;
            let logs: Vec<String> = match one_log {
                Some(l) => vec![l],
                None => log::list(&*src)?.into_iter().map(|i| i.name).collect(),
            };
            let mut failed = 0;
            for name in &logs {
                let label = format!("pull {name} ← {}", target.name);
                failed += transfer(&mut out, cli.quiet, json, "from", label, |bar| {
                    sync::pull(&store, &target.name, &*src, name, bar)
                })?;
            }
            out.flush()?;
            if failed > 0 {
                return Ok(ExitCode::from(1));
            }
        }
        Command::ImportSpec {
            url,
            name,
            log: local,
            max_pages,
            max_entries,
            max_bytes,
        } => {
            let store = FsStore::open(&cli.store)?;
            let limits = remotelog::spec::Limits {
                max_pages,
                max_entries,
                max_bytes,
            };
            let token = remotelog::http_client::token_from_env()?;
            let src = remotelog::spec::TwirpSource::new(&url, token, max_bytes)?;
            let local = local.unwrap_or_else(|| name.clone());
            let done = remotelog::spec::import(&store, &src, &name, &local, &limits)?;
            writeln!(
                out,
                "imported {} new message(s) of {name:?} from {url} into log {local:?} ({} page(s) read)",
                done.entries, done.pages
            )?;
        }
        Command::Clone {
            src,
            dest,
            log: one_log,
            keep_partial,
            json,
        } => {
            let location = resolve_clone_source(&cli.store, &src)?;
            if remotelog::clone::target(&dest, &location)? == remotelog::clone::Target::Resume {
                eprintln!(
                    "remotelog: resuming the clone into {} (it holds an earlier clone of {location})",
                    dest.display()
                );
            }
            let src_store = remote::open(&location, false)?;
            let bar = Bar::new(cli.quiet, format!("clone {src}"));
            let report = remotelog::clone::clone_logs(
                &*src_store,
                &location,
                &dest,
                one_log.as_deref(),
                keep_partial,
                &bar,
            )
            .inspect_err(|_| bar.finish())?;
            bar.finish();
            for t in &report.done {
                report_transfer(&mut out, t, json, "from")?;
            }
            for (log, e) in &report.failed {
                if json {
                    let line = serde_json::json!({
                        "log": log,
                        "remote": remote::ORIGIN,
                        "outcome": "failed",
                        "error": e.to_string(),
                    });
                    writeln!(out, "{line}")?;
                }
            }
            let Some(summary) = report.summary() else {
                if !json {
                    writeln!(
                        out,
                        "cloned {} log(s) into {}",
                        report.done.len(),
                        dest.display()
                    )?;
                }
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            };
            out.flush()?;
            // One line per broken log, then the summary; a single broken log is named by
            // the summary alone.
            if report.failed.len() > 1 {
                for (log, e) in &report.failed {
                    eprintln!("remotelog: error: log {log} could not be copied: {e}");
                }
            }
            eprintln!("remotelog: error: {summary}");
            return Ok(ExitCode::from(1));
        }
        Command::Status { json } => {
            let store = FsStore::open(&cli.store)?;
            let remotes = Remotes::load(&store)?;
            for s in sync::status(&store, remotes.all())? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                    continue;
                }
                let what = match (s.remote_entries, s.diverged) {
                    (None, _) => "never pushed or pulled".to_string(),
                    (_, true) => "diverged (each has entries the other lacks)".to_string(),
                    _ if s.ahead == 0 && s.behind == 0 => "up to date".to_string(),
                    _ if s.ahead > 0 => format!("{} entries ahead (push to publish them)", s.ahead),
                    _ => format!("{} entries behind (pull to get them)", s.behind),
                };
                writeln!(out, "{}\t{}\t{}", s.log, s.remote, what)?;
            }
        }
        Command::Gc {
            remote: which,
            prune,
            dry_run,
            json,
            wait,
        } => {
            let grace = parse_age(&prune)?;
            let wait = std::time::Duration::from_secs(wait);
            let bar = Bar::new(cli.quiet, "gc".into());
            let c = match &which {
                None => remotelog::gc::gc_waiting(
                    &FsStore::open(&cli.store)?,
                    grace,
                    dry_run,
                    wait,
                    &bar,
                ),
                Some(name) => {
                    let local = FsStore::open(&cli.store)?;
                    let r = Remotes::load(&local)?.named(name)?.clone();
                    let b = remote::open_for_upkeep(&r.location)?;
                    remotelog::gc::gc_waiting(&*b, grace, dry_run, wait, &bar)
                }
            }
            .inspect_err(|_| bar.finish())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&c)?)?;
            } else {
                if dry_run {
                    for id in &c.removed_ids {
                        writeln!(out, "would remove {id}")?;
                    }
                }
                writeln!(
                    out,
                    "{} {} unreferenced objects ({} bytes uncompressed); kept {} younger than {prune}; {} reachable{}",
                    if dry_run { "would remove" } else { "removed" },
                    c.objects,
                    c.bytes,
                    c.kept_young,
                    c.reachable,
                    if dry_run {
                        String::new()
                    } else {
                        format!("; disk {} -> {} bytes", c.disk_before, c.disk_after)
                    }
                )?;
            }
        }
        Command::Forget {
            ids,
            log: name,
            json,
        } => {
            let store = FsStore::open(&cli.store)?;
            let f = remotelog::forget::forget(&store, &name, &ids)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&f)?)?;
            } else {
                for (h1, h2) in &f.removed {
                    writeln!(out, "forgot {h1} {h2}")?;
                }
                writeln!(
                    out,
                    "log {}: {} entries left, {} pages rewritten; run `remotelog gc` to delete the bytes, and push --force-with-lease then gc on remotes",
                    f.log, f.remaining, f.pages_written
                )?;
            }
        }
        Command::Repack { target_size, json } => {
            let store = FsStore::open(&cli.store)?;
            let bar = Bar::new(cli.quiet, "repack".into());
            let r = remotelog::repack::repack(&store, target_size.max(1) << 20, &bar)
                .inspect_err(|_| bar.finish())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            } else if r.packs_after == 0 {
                writeln!(
                    out,
                    "nothing to repack ({} pack, no loose objects)",
                    r.packs_before
                )?;
            } else {
                writeln!(
                    out,
                    "repacked {} objects from {} packs and {} loose objects into {} pack(s) ({} blocks copied as they were); removed {} files",
                    r.objects, r.packs_before, r.loose_before, r.packs_after, r.blocks_copied, r.files_removed
                )?;
            }
        }
        Command::Demo { dir } => {
            drop(out);
            demo(dir)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Sim(a) => {
            let opts = remotelog::sim::options::SimOptions {
                scenario: a.scenario,
                profiles: a.profiles,
                page_sizes: a.page_sizes,
                embeds: a.embeds,
                readers: a.readers,
                seeds: a.seeds,
                seed: a.seed,
                duration: a.duration,
                drain: a.drain,
                writers: a.writers,
                interval: a.interval,
                poisson: a.poisson,
                size: a.size,
                push: a.push,
                writer_schedule: a.writer_schedule,
                reader_schedule: a.reader_schedule,
                poll: a.poll,
                retry: a.retry,
                out: a.out,
            };
            let jobs = a
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let started = std::time::Instant::now();
            let done = remotelog::sim::run_options(&opts, jobs, !a.no_plots)?;
            writeln!(
                out,
                "{} runs ({} cells x {} seeds) in {:.1} s on {jobs} thread(s); wrote {}",
                done.runs,
                done.cells,
                done.seeds,
                started.elapsed().as_secs_f64(),
                done.files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Command::Serve(args) => {
            drop(out);
            serve(&cli.store, args)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Parses a grace period: `now`, or a number with an optional unit s, m, h, d.
fn parse_age(text: &str) -> anyhow::Result<std::time::Duration> {
    if text == "now" {
        return Ok(std::time::Duration::ZERO);
    }
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--prune {text:?}: give `now` or an age like 30m, 1h, 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => anyhow::bail!("--prune {text:?}: the unit must be s, m, h or d"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Runs one push or pull of one log with a progress bar and reports it; a failure is
/// printed and counted (returns 1) so the other logs and remotes still go.
fn transfer(
    out: &mut impl Write,
    quiet: bool,
    json: bool,
    dir: &str,
    label: String,
    run: impl FnOnce(&Bar) -> remotelog::Result<LogTransfer>,
) -> anyhow::Result<usize> {
    let bar = Bar::new(quiet, label);
    match run(&bar) {
        Ok(t) => {
            report_transfer(out, &t, json, dir)?;
            Ok(0)
        }
        Err(e) => {
            bar.finish();
            eprintln!("remotelog: error: {e}");
            Ok(1)
        }
    }
}

fn report_transfer(
    out: &mut impl Write,
    t: &LogTransfer,
    json: bool,
    dir: &str,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(t)?)?;
    } else {
        writeln!(
            out,
            "{} {dir} {}: {} ({} entries, {} objects, {} bytes copied, {:.2}s)",
            t.log, t.remote, t.outcome, t.entries, t.copied.objects, t.copied.bytes, t.elapsed
        )?;
    }
    Ok(())
}

fn serve(store: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let mut opts = remotelog::server::Options::new(store);
    opts.listen = args.listen;
    opts.token = match &args.token_file {
        Some(f) => Some(remotelog::server::read_token_file(f)?),
        None => None,
    };
    opts.read_only = args.read_only;
    opts.private = args.private;
    opts.max_body = args.max_body;
    opts.timeout = std::time::Duration::from_secs(args.timeout.max(1));
    opts.max_concurrency = args.max_concurrency;
    opts.max_memory = args.max_memory.saturating_mul(1 << 20);
    opts.admin_token = match &args.admin_token_file {
        Some(f) => Some(remotelog::server::read_token_file(f)?),
        None => None,
    };
    let shown = remote::absolute(store)?;
    remotelog::server::run(opts, |addr| {
        eprintln!(
            "remotelog serve: serving {} on http://{addr}{}{}",
            shown.display(),
            if args.read_only { " (read-only)" } else { "" },
            match (&args.token_file, args.private) {
                (Some(_), true) => " (token required for reads and writes)",
                (Some(_), false) => " (token required for writes)",
                (None, _) => " (no token: anyone who can connect may write)",
            }
        );
    })?;
    Ok(())
}

/// A URL, or a directory that exists, is used as it is; otherwise SRC must name a remote
/// of --store.
fn resolve_clone_source(store: &Path, src: &str) -> anyhow::Result<String> {
    if remotelog::http_client::is_url(src) {
        return Ok(remotelog::http_client::normalize_url(src)?);
    }
    let p = Path::new(src);
    if p.exists() {
        return Ok(remote::absolute(p)?.to_string_lossy().into_owned());
    }
    if remote::validate_name(src).is_ok() {
        if let Ok(local) = FsStore::open(store) {
            if let Some(r) = Remotes::load(&local)?.get(src) {
                return Ok(r.location.clone());
            }
        }
    }
    anyhow::bail!(
        "{src}: no such directory, and not the name of a remote of {}",
        store.display()
    )
}

/// A progress bar on stderr that appears only once an operation has run for a second, and
/// only when stderr is a terminal and --quiet is not given.
struct Bar {
    pb: indicatif::ProgressBar,
    start: std::time::Instant,
    enabled: bool,
    shown: std::sync::atomic::AtomicBool,
}

impl Bar {
    fn new(quiet: bool, label: String) -> Bar {
        use std::io::IsTerminal;
        let pb = indicatif::ProgressBar::hidden();
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {msg} [{bar:30}] {pos}/{len} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(label);
        Bar {
            pb,
            start: std::time::Instant::now(),
            enabled: !quiet && io::stderr().is_terminal(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.pb.set_message(name.to_string());
        self.pb.set_position(0);
        if let Some(t) = total {
            self.pb.set_length(t);
        }
    }

    fn advance(&self, n: u64) {
        use std::sync::atomic::Ordering;
        self.pb.inc(n);
        if self.enabled
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() > std::time::Duration::from_secs(1)
        {
            self.shown.store(true, Ordering::Relaxed);
            self.pb
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

fn log_exists(store: &FsStore, name: &str) -> remotelog::Result<bool> {
    Ok(log::head(store, name)?.is_some())
}

fn page_size_text(capacity: u64) -> String {
    if capacity == 0 {
        "unbounded".into()
    } else {
        capacity.to_string()
    }
}

fn printable_group(g: &[u8]) -> String {
    match std::str::from_utf8(g) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
        _ => format!("0x{}", hex::encode(g)),
    }
}

/// The bodies to append, read lazily so that reading overlaps hashing and compression.
type Bodies = Box<dyn Iterator<Item = remotelog::Result<Vec<u8>>>>;

fn group_and_time(args: &AppendArgs) -> anyhow::Result<(Vec<u8>, i64)> {
    let group_id = match (&args.group, &args.group_hex) {
        (Some(g), _) => g.as_bytes().to_vec(),
        (None, Some(h)) => {
            hex::decode(h).map_err(|e| anyhow::anyhow!("--group-hex {h:?} is not hex: {e}"))?
        }
        (None, None) => anyhow::bail!("give the messages' group with --group or --group-hex"),
    };
    let timestamp = args.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    Ok((group_id, timestamp))
}

fn message_bodies(args: &AppendArgs) -> anyhow::Result<Bodies> {
    if let Some(dir) = &args.dir {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!("{}: no such directory", dir.display())
            }
            Err(e) => {
                return Err(remotelog::Error::Io {
                    path: dir.clone(),
                    source: e,
                }
                .into())
            }
            Ok(m) if !m.is_dir() => anyhow::bail!("{}: not a directory", dir.display()),
            Ok(_) => {}
        }
        let root = dir.clone();
        let mut files = walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .filter_map(move |entry| match entry {
                Ok(e) if e.file_type().is_file() => Some(std::fs::read(e.path()).at(e.path())),
                Ok(_) => None,
                Err(e) => {
                    let path = e.path().unwrap_or(&root).to_path_buf();
                    Some(Err(remotelog::Error::Io {
                        path,
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| io::Error::other("file system loop")),
                    }))
                }
            })
            .peekable();
        if files.peek().is_none() {
            anyhow::bail!("{}: no regular files to append", dir.display());
        }
        Ok(Box::new(files))
    } else if !args.files.is_empty() {
        let files = args.files.clone();
        Ok(Box::new(
            files.into_iter().map(|f| std::fs::read(&f).at(&f)),
        ))
    } else {
        let mut body = Vec::new();
        io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| anyhow::anyhow!("reading the message from stdin: {e}"))?;
        Ok(Box::new(std::iter::once(Ok(body))))
    }
}

fn demo(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("remotelog-demo-")
            .tempdir()?
            .keep(),
    };
    let store_dir = dir.join("node");
    let store = FsStore::init(&store_dir, Config::default())?;
    println!("== created a store in {}", store_dir.display());
    let msg = |i: i64, text: &str| Message {
        group_id: b"demo-chat".to_vec(),
        timestamp: 1_700_000_000 + i,
        body: text.as_bytes().to_vec(),
    };
    let batch: Vec<Message> = (0..10)
        .map(|i| msg(i, &format!("message {i}: hello from the demo")))
        .collect();
    let a = log::append(
        &store,
        "main",
        &batch,
        SettingsChange {
            capacity: Some(4),
            embed: Some(2),
        },
    )?;
    println!(
        "== appended {} messages to log main (page size 4, newest 2 embedded); head page {}",
        a.ids.len(),
        a.head
    );
    let single = log::append(
        &store,
        "audit",
        &[msg(99, "a linked-list log")],
        SettingsChange {
            capacity: Some(1),
            embed: None,
        },
    )?;
    println!(
        "== appended 1 message to log audit (page size 1); head page {}",
        single.head
    );
    println!("== logs:");
    for info in log::list(&store)? {
        println!("   {:<8} {} entries", info.name, info.count);
    }
    println!("== log main, newest first (H1 H2 body):");
    for entry in log::entries(&store, "main")? {
        let m = log::read_message(&store, &entry)?;
        println!(
            "   {} {} {}{}",
            &entry.h1.to_hex()[..12],
            &entry.h2.to_hex()[..12],
            String::from_utf8_lossy(&m.body),
            if entry.embedded.is_some() {
                "  [embedded]"
            } else {
                ""
            }
        );
    }
    let backup = dir.join("backup");
    remote::add(&store, "backup", &backup)?;
    let backup_store = remote::open_dir(&backup.to_string_lossy(), true)?;
    for name in ["audit", "main"] {
        let t = sync::push(
            &store,
            "backup",
            &backup_store,
            name,
            sync::Force::No,
            &Silent,
        )?;
        println!(
            "== pushed log {name} to directory remote {} ({}: {} objects)",
            backup.display(),
            t.outcome,
            t.copied.objects
        );
    }
    let restored = dir.join("restored");
    let (restored_store, _) = sync::clone(
        &backup_store,
        &backup.to_string_lossy(),
        &restored,
        None,
        false,
        &Silent,
    )?;
    let same = ["audit", "main"].iter().try_fold(true, |acc, name| {
        Ok::<_, remotelog::Error>(
            acc && log::entries(&store, name)? == log::entries(&restored_store, name)?,
        )
    })?;
    println!(
        "== cloned the remote into {}: logs identical to the original: {}",
        restored.display(),
        if same { "yes" } else { "NO" }
    );
    let mut sound = true;
    for (what, s) in [
        ("node", &store),
        ("backup", &backup_store),
        ("restored", &restored_store),
    ] {
        let report = remotelog::check::check(s, true);
        println!(
            "== check --read-data {what}: {} ({} objects read and hashed)",
            if report.is_sound() { "ok" } else { "FAILED" },
            report.objects_read
        );
        sound &= report.is_sound();
    }
    println!(
        "== try it yourself: remotelog --store {} status",
        store_dir.display()
    );
    if !sound || !same {
        anyhow::bail!("the demo did not end as expected; see above");
    }
    Ok(())
}
