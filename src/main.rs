//! The `remotelog` command: a thin layer that parses arguments, calls the library and prints.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use remotelog::backend::Backend;
use remotelog::config::Config;
use remotelog::error::IoContext;
use remotelog::log::{self, SettingsChange, DEFAULT_LOG};
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
  remotelog check --read-data

Exit status: 0 on success, 1 on failure (one line on stderr), 2 for a malformed command line.
The format is documented in format/store-v1.md of the source tree.";

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
    /// Run a short end-to-end demonstration in a throwaway directory.
    Demo {
        /// Where to put the demo store (default: a new directory under the system temp dir).
        dir: Option<PathBuf>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("remotelog: error: {e:#}");
            ExitCode::from(1)
        }
    }
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
            let messages = read_messages(&args)?;
            let change = SettingsChange {
                capacity: args.page_size,
                embed: args.embed,
            };
            let done = log::append(&store, &args.log, &messages, change)?;
            for (h1, h2) in &done.ids {
                writeln!(out, "{h1} {h2}")?;
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
        Command::Demo { dir } => {
            drop(out);
            demo(dir)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
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

fn read_messages(args: &AppendArgs) -> anyhow::Result<Vec<Message>> {
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
    let bodies: Vec<Vec<u8>> = if let Some(dir) = &args.dir {
        read_dir_bodies(dir)?
    } else if !args.files.is_empty() {
        args.files
            .iter()
            .map(|f| std::fs::read(f).at(f))
            .collect::<remotelog::Result<_>>()?
    } else {
        let mut body = Vec::new();
        io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| anyhow::anyhow!("reading the message from stdin: {e}"))?;
        vec![body]
    };
    Ok(bodies
        .into_iter()
        .map(|body| Message {
            group_id: group_id.clone(),
            timestamp,
            body,
        })
        .collect())
}

fn read_dir_bodies(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    let mut bodies = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        if entry.file_type().is_file() {
            bodies.push(std::fs::read(entry.path()).at(entry.path())?);
        }
    }
    if bodies.is_empty() {
        anyhow::bail!("{}: no regular files to append", dir.display());
    }
    Ok(bodies)
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
    let report = remotelog::check::check(&store, true);
    println!(
        "== check --read-data: {} ({} objects read and hashed)",
        if report.is_sound() { "ok" } else { "FAILED" },
        report.objects_read
    );
    println!(
        "== try it yourself: remotelog --store {} log",
        store_dir.display()
    );
    if !report.is_sound() {
        anyhow::bail!("demo store failed its check: {:?}", report.problems);
    }
    Ok(())
}
