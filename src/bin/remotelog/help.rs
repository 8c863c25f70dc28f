//! The examples that end each command's `--help`, kept apart from the argument
//! definitions so that each command's examples read as one block. Every subcommand has
//! some (`tests/help.rs` checks).

/// Examples per command path (`append`, `remote add`), each line a command and what it
/// does.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "init",
        "  remotelog init                          # a store in ./.remotelog
  remotelog init ~/node --zstd-level 9    # elsewhere, compressing harder",
    ),
    (
        "append",
        "  echo hello | remotelog append --group chat          # one message from stdin
  remotelog append --group chat --dir inbox --exclude '*.tmp'   # every file below inbox
  remotelog append --log audit --group-hex 0a0b --page-size 1 notes.txt",
    ),
    (
        "log",
        "  remotelog log -n 10                     # the newest ten entries
  remotelog log --log audit --format plain   # full ids and Unix times, one line each
  remotelog log --json | jq .size         # one JSON object per entry",
    ),
    (
        "cat",
        "  remotelog cat 1a2b3c4d                  # by a unique prefix of H1 or H2
  remotelog log --format plain -n 1 | cut -d' ' -f1 | xargs remotelog cat",
    ),
    (
        "logs",
        "  remotelog logs                          # name, entries, page settings
  remotelog logs --json",
    ),
    (
        "check",
        "  remotelog check                         # refs, pages and counts
  remotelog check --read-data             # and decompress and hash every object",
    ),
    (
        "remote",
        "  remotelog remote add origin ~/backup/node
  remotelog remote add server http://127.0.0.1:8001
  remotelog remote list",
    ),
    (
        "remote add",
        "  remotelog remote add origin ~/backup/node     # a directory (created by the first push)
  remotelog remote add server http://127.0.0.1:8001   # a remotelog serve",
    ),
    ("remote list", "  remotelog remote list"),
    (
        "remote remove",
        "  remotelog remote remove usb             # the remote's files stay where they are",
    ),
    ("remote rename", "  remotelog remote rename usb backup"),
    (
        "remote set-url",
        "  remotelog remote set-url origin ~/backup/node",
    ),
    ("remote show", "  remotelog remote show origin"),
    (
        "push",
        "  remotelog push                          # log main to origin (or the only remote)
  remotelog push --all --all-logs         # every log to every remote
  remotelog push --force-with-lease       # after forget: only if the remote is as last seen",
    ),
    (
        "pull",
        "  remotelog pull                          # every log origin has
  remotelog pull backup --log main",
    ),
    (
        "fetch",
        "  remotelog fetch                         # record what origin holds, merge nothing
  remotelog fetch backup --log main       # then: push backup --force-with-lease",
    ),
    (
        "clone",
        "  remotelog clone ~/backup/node restored  # a directory remote
  remotelog clone http://127.0.0.1:8001 bob --log main",
    ),
    (
        "import-spec",
        "  remotelog import-spec http://127.0.0.1:8001 chat --log inbox",
    ),
    (
        "status",
        "  remotelog status                        # up to date / N ahead / N behind
  remotelog status --json",
    ),
    (
        "gc",
        "  remotelog gc --dry-run --prune now      # what would go, and the bytes it frees
  remotelog gc                            # delete it, keeping what is younger than 1h
  remotelog gc origin --prune now         # the same in a remote",
    ),
    (
        "forget",
        "  remotelog forget 1a2b3c4d               # remove a message from log main
  remotelog forget --log audit 1a2b3c4d 5e6f7a8b
  remotelog push --force-with-lease && remotelog gc --prune now   # then drop the bytes",
    ),
    (
        "repack",
        "  remotelog repack                        # loose objects and packs into 64 MiB packs
  remotelog repack --store ~/backup/node  # the same in a directory remote",
    ),
    (
        "demo",
        "  remotelog demo                          # in a new temporary directory
  remotelog demo ./demo-run",
    ),
    (
        "serve",
        "  remotelog serve --listen 127.0.0.1:8001
  remotelog serve --token-file token --private --listen 0.0.0.0:8001",
    ),
    (
        "sim",
        "  remotelog sim                           # the default matrix, into sim-out/
  remotelog sim --scenario mvds
  remotelog sim --profiles ipns,s3 --page-sizes 16,128 --duration 48h --no-plots",
    ),
    (
        "completions",
        "  remotelog completions bash > ~/.local/share/bash-completion/completions/remotelog
  remotelog completions zsh > ~/.zfunc/_remotelog
  remotelog completions fish > ~/.config/fish/completions/remotelog.fish",
    ),
    (
        "man",
        "  remotelog man > remotelog.1 && man ./remotelog.1
  remotelog man | gzip > /usr/local/share/man/man1/remotelog.1.gz",
    ),
];

/// `cmd` with each subcommand's examples after its help, under a heading `Examples:`.
pub fn with_examples(mut cmd: clap::Command) -> clap::Command {
    add_examples(&mut cmd, "");
    cmd
}

fn add_examples(cmd: &mut clap::Command, path: &str) {
    for sub in cmd.get_subcommands_mut() {
        let name = sub.get_name().to_string();
        let here = if path.is_empty() {
            name
        } else {
            format!("{path} {name}")
        };
        let mut done = std::mem::take(sub);
        if let Some((_, text)) = EXAMPLES.iter().find(|(p, _)| *p == here) {
            done = done.after_help(format!("Examples:\n{text}"));
        }
        add_examples(&mut done, &here);
        *sub = done;
    }
}
