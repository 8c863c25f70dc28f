//! The README's command blocks run as written: every ```` ```sh ```` block, in order, in one
//! shell, in an empty directory, with the built `remotelog` on PATH, as a new user would
//! paste them. Blocks fenced ```` ```sh no-run ```` (cargo itself, benchmarks, the long
//! simulator run) are left out, and there are few of them.

use std::path::Path;

/// The README's `sh` blocks: (line of the fence, whether it runs, text).
fn blocks(readme: &str) -> Vec<(usize, bool, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, bool, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence.starts_with("```") => {
                let tag = fence.trim_start_matches('`').trim();
                current = Some((i + 1, tag == "sh", String::new()));
                if tag != "sh" && tag != "sh no-run" {
                    // Not a shell block (output, text): skipped whole.
                    current.as_mut().unwrap().1 = false;
                    current.as_mut().unwrap().0 = 0;
                }
            }
            (Some(_), "```") => {
                let block = current.take().unwrap();
                if block.0 > 0 {
                    out.push(block);
                }
            }
            (Some((_, _, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "README.md: a code block is not closed");
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn readme_blocks_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    let runs = blocks.iter().filter(|b| b.1).count();
    let skipped = blocks.len() - runs;
    assert!(runs >= 4, "only {runs} runnable sh blocks in README.md");
    assert!(
        skipped <= 6,
        "{skipped} blocks are marked no-run: keep them few"
    );

    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let tmp = t.path().join("tmp");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    // The spec examples are read from a checkout, as the README's readers have one.
    std::os::unix::fs::symlink(root.join("examples"), work.join("examples")).unwrap();
    // The README serves on 127.0.0.1:8001; tests run side by side, so on a free port.
    let port = free_port().to_string();
    let mut script = String::from("set -euo pipefail\n");
    for (line, runs, text) in &blocks {
        if *runs {
            script.push_str(&format!("echo '### README.md block at line {line}' >&2\n"));
            script.push_str(&text.replace("127.0.0.1:8001", &format!("127.0.0.1:{port}")));
        }
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_remotelog")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let c = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .env("RUST_BACKTRACE", "0")
        .env_remove("REMOTELOG_STORE")
        .env_remove("REMOTELOG_TOKEN")
        .env_remove("REMOTELOG_TOKEN_FILE")
        .env_remove("REMOTELOG_ADMIN_TOKEN")
        .env_remove("REMOTELOG_ADMIN_TOKEN_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&c.stderr);
    let last = err
        .lines()
        .rfind(|l| l.starts_with("### "))
        .unwrap_or("before the first block");
    assert!(
        c.status.success(),
        "the README failed in {last} ({:?}):\nstdout:\n{}\nstderr:\n{err}",
        c.status,
        String::from_utf8_lossy(&c.stdout),
    );
    // Every runnable block ran to its end.
    assert_eq!(err.matches("### README.md block").count(), runs, "{err}");
    // And did what it says: the restored log equals the one before, the reader has it.
    assert!(work.join("before.json").is_file());
    assert!(work.join("reader/config").is_file());
}
