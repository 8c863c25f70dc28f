//! `remotelog demo`: a short end-to-end run in a throwaway directory.

use std::path::PathBuf;
use std::process::ExitCode;

use remotelog::config::Config;
use remotelog::log::{self, SettingsChange};
use remotelog::progress::Silent;
use remotelog::remote;
use remotelog::sync;
use remotelog::{FsStore, Message};

use crate::args::DemoArgs;
use crate::ctx::Ctx;

/// Runs the demonstration, printing each step.
pub fn run(args: DemoArgs, _ctx: &Ctx) -> anyhow::Result<ExitCode> {
    demo(args.dir)?;
    Ok(ExitCode::SUCCESS)
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
