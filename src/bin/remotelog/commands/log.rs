//! `remotelog log`: a log's entries, newest first: for people on a terminal, one stable
//! line per entry for scripts, or JSON.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use remotelog::log;

use crate::args::{LogArgs, LogFormat};
use crate::ctx::Ctx;
use crate::output::printable_group;

/// Prints one line (or JSON object) per entry, at most `-n` of them.
pub fn run(args: LogArgs, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let name = args.log;
    // People read a terminal; a pipe or a file gets the stable form scripts rely on
    // (`remotelog log | wc -l`, `read -r h1 h2 ...`), as it always has.
    let format = match (args.json, args.format) {
        (true, _) => LogFormat::Json,
        (false, Some(f)) => f,
        (false, None) if std::io::stdout().is_terminal() => LogFormat::Human,
        (false, None) => LogFormat::Plain,
    };
    let mut left = args.max_count.unwrap_or(u64::MAX);
    let store = ctx.open_store()?;
    let head = log::existing_head(&store, &name)?;
    let human = Human::new();
    // Page by page, so that -n reads only the pages it shows.
    let entries = log::pages(&store, Some(head)).flat_map(|page| match page {
        Ok((_, p)) => p.entries.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e)],
    });
    for entry in entries {
        if left == 0 {
            break;
        }
        left -= 1;
        let entry = entry?;
        let m = log::read_message(&store, &entry)?;
        match format {
            LogFormat::Json => {
                let line = serde_json::json!({
                    "h1": entry.h1.to_hex(),
                    "h2": entry.h2.to_hex(),
                    "group": hex::encode(&m.group_id),
                    "timestamp": m.timestamp,
                    "size": m.body.len(),
                    "embedded": entry.embedded.is_some(),
                });
                writeln!(out, "{line}")?;
            }
            LogFormat::Plain => writeln!(
                out,
                "{} {} {} {} {}",
                entry.h1,
                entry.h2,
                m.timestamp,
                m.body.len(),
                printable_group(&m.group_id)
            )?,
            LogFormat::Human => {
                let group = clip(&printable_group(&m.group_id), 16);
                let head = format!(
                    "{}  {}  {:>8}  {group:<8}  ",
                    &entry.h1.to_hex()[..12],
                    human.date(m.timestamp),
                    remotelog::human::size(m.body.len() as u64),
                );
                let room = human.width.saturating_sub(head.chars().count()).max(20);
                writeln!(out, "{head}{}", preview(&m.body, room))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the human form needs once: the local time zone and the terminal's width.
struct Human {
    tz: jiff::tz::TimeZone,
    width: usize,
}

impl Human {
    fn new() -> Human {
        let width = rustix::termios::tcgetwinsize(std::io::stdout())
            .ok()
            .map(|w| w.ws_col as usize)
            .filter(|w| *w > 0)
            .unwrap_or(100);
        Human {
            // The system's zone (TZ, /etc/localtime), or UTC when it cannot be told.
            tz: jiff::tz::TimeZone::system(),
            width,
        }
    }

    /// A message's timestamp as a local date and time; one outside the calendar's range
    /// (timestamps are the sender's to choose) as Unix seconds.
    fn date(&self, unix: i64) -> String {
        match jiff::Timestamp::from_second(unix) {
            Ok(t) => t
                .to_zoned_datetime(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            Err(_) => format!("{:>19}", format!("@{unix}")),
        }
    }
}

/// `text` cut to `max` characters, the cut marked.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The start of a body on one line: text with its whitespace runs as one space and control
/// characters as `�`, cut to `room` characters; a body that is not text says so.
fn preview(body: &[u8], room: usize) -> String {
    if body.is_empty() {
        return "(empty)".into();
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return "(binary)".into();
    };
    if text.contains('\0') {
        return "(binary)".into();
    }
    let mut line = String::new();
    let mut space = false;
    // Only as much of the body as can show is looked at.
    for c in text.chars().take(room.saturating_mul(4).max(64)) {
        if c.is_whitespace() {
            space = !line.is_empty();
            continue;
        }
        if space {
            line.push(' ');
            space = false;
        }
        line.push(if c.is_control() { '\u{fffd}' } else { c });
    }
    clip(&line, room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_fit_one_line() {
        assert_eq!(preview(b"hello\n  world\t!", 40), "hello world !");
        assert_eq!(preview(b"abcdefghij", 5), "abcd…");
        assert_eq!(preview(b"", 5), "(empty)");
        assert_eq!(preview(&[0xff, 0xfe], 5), "(binary)");
        assert_eq!(preview(b"a\0b", 5), "(binary)");
        assert_eq!(preview(b"a\x1bb", 5), "a\u{fffd}b");
    }
}
