//! The scenario of `remotelog demo`: the main job end to end in a throwaway directory. A
//! store with two logs (one in pages of 4 with the newest 2 messages embedded, one a
//! linked list), both pushed to a directory remote, the remote cloned into a third store,
//! and all three checked with `--read-data`.
//!
//! Each step is handed to the caller as soon as it is done, so the binary prints as the
//! demo goes; the outcome says whether it ended as it should.

use std::path::PathBuf;

use crate::error::{Error, IoContext, Result};
use crate::id::Id;
use crate::log::{self, LogInfo, Settings, SettingsChange};
use crate::model::object::{Entry, Message};
use crate::progress::Silent;
use crate::store::config::Config;
use crate::store::FsStore;
use crate::transfer::remote;
use crate::transfer::sync::{self, LogTransfer};
use crate::upkeep::check::{self, Report};

/// The logs of the demo, in the order they are pushed and compared.
const LOGS: [&str; 2] = ["audit", "main"];

/// One step of the demo, reported as soon as it is done.
#[derive(Debug, Clone)]
pub enum Step {
    /// The store was created.
    Created {
        /// Its directory.
        store: PathBuf,
    },
    /// Messages were appended to a log in one append.
    Appended {
        /// The log.
        log: String,
        /// How many.
        messages: usize,
        /// The log's page settings from then on.
        settings: Settings,
        /// The new head page.
        head: Id,
    },
    /// The logs of the store.
    Logs(Vec<LogInfo>),
    /// A log's entries, newest first, each with its message's body.
    Entries {
        /// The log.
        log: String,
        /// The entries and bodies.
        entries: Vec<(Entry, Vec<u8>)>,
    },
    /// A log was pushed to the directory remote.
    Pushed {
        /// The remote's directory.
        remote: PathBuf,
        /// What the push did.
        transfer: LogTransfer,
    },
    /// The remote was cloned into a new store.
    Cloned {
        /// The new store's directory.
        dest: PathBuf,
        /// Whether every log there is identical to the original.
        identical: bool,
    },
    /// A store was checked, reading every object.
    Checked {
        /// Which: `node`, `backup` or `restored`.
        store: &'static str,
        /// What check found.
        report: Report,
    },
}

/// How the demo ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The store it created, to try commands on.
    pub store: PathBuf,
    /// Whether the clone was identical and every store sound.
    pub ok: bool,
}

/// Runs the demo in `dir` (by default a new directory under the system's temporary
/// directory, which is kept), handing each step to `step`. A step that `step` refuses (its
/// output failed) ends the demo with that error.
pub fn run<E: From<Error>>(
    dir: Option<PathBuf>,
    mut step: impl FnMut(Step) -> std::result::Result<(), E>,
) -> std::result::Result<Outcome, E> {
    let dir = match dir {
        Some(d) => d,
        None => new_dir()?,
    };
    let store_dir = dir.join("node");
    let store = FsStore::init(&store_dir, Config::default())?;
    step(Step::Created {
        store: store_dir.clone(),
    })?;
    let msg = |i: i64, text: &str| Message {
        group_id: b"demo-chat".to_vec(),
        timestamp: 1_700_000_000 + i,
        body: text.as_bytes().to_vec(),
    };
    let batch: Vec<Message> = (0..10)
        .map(|i| msg(i, &format!("message {i}: hello from the demo")))
        .collect();
    let pages_of_4 = SettingsChange {
        capacity: Some(4),
        embed: Some(2),
    };
    step(appended(&store, "main", &batch, pages_of_4)?)?;
    let linked_list = SettingsChange {
        capacity: Some(1),
        embed: None,
    };
    step(appended(
        &store,
        "audit",
        &[msg(99, "a linked-list log")],
        linked_list,
    )?)?;
    step(Step::Logs(log::list(&store)?))?;
    let entries = log::entries(&store, "main")?
        .into_iter()
        .map(|entry| {
            let body = log::read_message(&store, &entry)?.body;
            Ok((entry, body))
        })
        .collect::<Result<_>>()?;
    step(Step::Entries {
        log: "main".into(),
        entries,
    })?;

    let backup = dir.join("backup");
    remote::add(&store, "backup", &backup)?;
    let backup_store = remote::open_dir(&backup.to_string_lossy(), true)?;
    for name in LOGS {
        let transfer = sync::push(
            &store,
            "backup",
            &backup_store,
            name,
            sync::Force::No,
            &Silent,
        )?;
        step(Step::Pushed {
            remote: backup.clone(),
            transfer,
        })?;
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
    let mut identical = true;
    for name in LOGS {
        identical &= log::entries(&store, name)? == log::entries(&restored_store, name)?;
    }
    step(Step::Cloned {
        dest: restored,
        identical,
    })?;

    let mut sound = true;
    for (name, s) in [
        ("node", &store),
        ("backup", &backup_store),
        ("restored", &restored_store),
    ] {
        let report = check::check(s, true);
        sound &= report.is_sound();
        step(Step::Checked {
            store: name,
            report,
        })?;
    }
    Ok(Outcome {
        store: store_dir,
        ok: sound && identical,
    })
}

/// A new directory for the demo, kept after the process ends.
fn new_dir() -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    Ok(tempfile::Builder::new()
        .prefix("remotelog-demo-")
        .tempdir_in(&tmp)
        .at(&tmp)?
        .keep())
}

fn appended(
    store: &FsStore,
    name: &str,
    messages: &[Message],
    change: SettingsChange,
) -> Result<Step> {
    let done = log::append(store, name, messages, change)?;
    Ok(Step::Appended {
        log: name.into(),
        messages: done.ids.len(),
        settings: log::read_page(store, &done.head)?.settings(),
        head: done.head,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_demo_runs_every_step_and_ends_sound() {
        let dir = tempfile::tempdir().unwrap();
        let mut steps = Vec::new();
        let outcome = run::<Error>(Some(dir.path().to_path_buf()), |s| {
            steps.push(s);
            Ok(())
        })
        .unwrap();
        assert!(outcome.ok);
        assert_eq!(outcome.store, dir.path().join("node"));
        let mut appended = Vec::new();
        let mut pushed = Vec::new();
        let mut checked = Vec::new();
        for s in &steps {
            match s {
                Step::Created { store } => assert_eq!(store, &outcome.store),
                Step::Appended {
                    log,
                    messages,
                    settings,
                    ..
                } => appended.push((log.as_str(), *messages, settings.capacity, settings.embed)),
                Step::Logs(logs) => {
                    let counts: Vec<_> = logs.iter().map(|l| (l.name.as_str(), l.count)).collect();
                    assert_eq!(counts, [("audit", 1), ("main", 10)]);
                }
                Step::Entries { log, entries } => {
                    assert_eq!(log, "main");
                    assert_eq!(entries.len(), 10);
                    assert_eq!(entries[0].1, b"message 9: hello from the demo");
                    let embedded = entries.iter().filter(|(e, _)| e.embedded.is_some());
                    assert_eq!(embedded.count(), 2);
                }
                Step::Pushed { remote, transfer } => {
                    assert_eq!(remote, &dir.path().join("backup"));
                    pushed.push((transfer.log.clone(), transfer.outcome));
                }
                Step::Cloned { dest, identical } => {
                    assert_eq!(dest, &dir.path().join("restored"));
                    assert!(identical);
                }
                Step::Checked { store, report } => {
                    assert!(report.is_sound(), "{store}: {:?}", report.problems);
                    assert!(report.objects_read > 0);
                    checked.push(*store);
                }
            }
        }
        assert_eq!(appended, [("main", 10, 4, 2), ("audit", 1, 1, 0)]);
        assert_eq!(
            pushed,
            [
                ("audit".to_string(), "created"),
                ("main".to_string(), "created")
            ]
        );
        assert_eq!(checked, ["node", "backup", "restored"]);
        assert!(Path::new(&outcome.store).join("config").is_file());
    }

    #[test]
    fn a_step_that_fails_ends_the_demo_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = 0;
        let err = run(Some(dir.path().to_path_buf()), |_| {
            seen += 1;
            if seen == 2 {
                return Err(Error::Invalid("output closed".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "output closed");
        assert_eq!(seen, 2);
        assert!(!dir.path().join("backup").exists());
    }
}
