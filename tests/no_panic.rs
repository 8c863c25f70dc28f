//! Values from outside that once made remotelog panic (the audit of `unwrap`, `expect`,
//! indexing and unchecked arithmetic in `src/`): each is now an answer or a one-line error
//! naming what to fix, never a panic or an abort.

use std::path::Path;
use std::process::Command;

mod common;
use common::{assert_ok, fails_with, run, store, text};

/// Asserts that a finished command did not panic or abort.
#[track_caller]
fn no_panic(o: &std::process::Output) {
    let t = text(o);
    assert!(
        o.status.code().is_some() && !t.contains("panicked") && !t.contains("RUST_BACKTRACE"),
        "remotelog crashed ({:?}): {t}",
        o.status
    );
}

/// A `remote-exchanges` file (information for people, never trusted) recording an
/// exchange at a time no clock can show: `remote show` printed it through
/// `UNIX_EPOCH + secs`, which overflows, and a date formatter that fails past year 9999.
#[test]
fn remote_show_prints_an_exchange_time_beyond_any_date() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    store(&s);
    let r = t.path().join("r");
    store(&r);
    assert_ok(run(&s, &["remote", "add", "origin", r.to_str().unwrap()]));
    for secs in [u64::MAX, 253_402_300_800] {
        std::fs::write(
            s.join("remote-exchanges"),
            format!("remotelog-remote-exchanges\norigin push = {secs}\norigin pull = 0\n"),
        )
        .unwrap();
        let o = run(&s, &["remote", "show", "origin"]);
        no_panic(&o);
        let out = String::from_utf8_lossy(&assert_ok(o).stdout).into_owned();
        assert!(out.contains(&secs.to_string()), "{out}");
        assert!(out.contains("1970-01-01T00:00:00Z"), "{out}");
    }
}

/// `gc --wait` takes any number of seconds; the deadline `now + wait` overflowed an
/// `Instant`. A wait too long for the clock is a wait without end.
#[test]
fn gc_accepts_a_wait_longer_than_the_clock_holds() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    store(&s);
    let o = run(&s, &["gc", "--wait", &u64::MAX.to_string()]);
    no_panic(&o);
    assert_ok(o);
}

/// `serve --max-concurrency` beyond what a semaphore holds (and `+ 4` blocking threads
/// overflowing) panicked before the server started; more slots than connections served at
/// once would mean nothing, so that is the bound.
#[test]
fn serve_refuses_a_max_concurrency_beyond_its_connections() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    store(&s);
    for n in [u64::MAX.to_string(), "513".to_string()] {
        let o = run(
            &s,
            &["serve", "--listen", "127.0.0.1:0", "--max-concurrency", &n],
        );
        no_panic(&o);
        fails_with(&o, &["--max-concurrency", "512"]);
    }
}

/// A matrix of billions of cells was built whole just to count its runs: the count now
/// comes from the list lengths, and the matrix is refused for its size, in little memory
/// (the child runs under an address-space limit that the cells would have blown).
#[test]
fn sim_refuses_a_huge_matrix_without_building_it() {
    let t = tempfile::tempdir().unwrap();
    let many = vec!["1"; 20_000].join(",");
    let out = t.path().join("out");
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_remotelog"))
        .args(["--store", t.path().join("s").to_str().unwrap(), "sim"])
        .args(["--page-sizes", &many, "--embeds", &many, "--out"])
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    no_panic(&o);
    // A matrix option out of range is a bad command line (status 2), as for sim's others.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("runs: the matrix may have at most 100,000"));
    assert!(!Path::new(&out).exists());
}

/// An S3 server's `Date`, `Last-Modified` and listed times are parsed by hand; a year
/// beyond what the day arithmetic holds overflowed it (a panic in a debug build, a wrong
/// time in a release one). Such a date is no date, as HTTP writes years in four digits.
#[cfg(feature = "s3")]
#[test]
fn s3_dates_with_a_year_beyond_four_digits_are_no_dates() {
    use remotelog::s3::sigv4::{parse_http_date, parse_iso8601};
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(parse_iso8601("1994-11-06T08:49:37.000Z"), Some(784_111_777));
    for y in [i64::MAX, i64::MIN, 10_000, 99_999_999_999_999, -1] {
        assert_eq!(
            parse_http_date(&format!("Sun, 06 Nov {y} 08:49:37 GMT")),
            None
        );
        assert_eq!(parse_iso8601(&format!("{y}-11-06T08:49:37Z")), None);
    }
}

/// `REMOTELOG_HTTP_TIMEOUT` of more seconds than the clock holds: the HTTP client's
/// deadline `now + wait` overflowed inside ureq on the first answer. A wait beyond a year
/// is refused naming the variable; a year itself still works.
#[test]
fn an_http_timeout_beyond_a_year_is_refused_naming_the_variable() {
    let t = tempfile::tempdir().unwrap();
    let srv = common::serve(&t.path().join("srv"), |_| {});
    let url = srv.url();
    let var = remotelog::net::client::TIMEOUT_ENV;
    let dest = t.path().join("a");
    let o = common::run_env(
        t.path(),
        &["clone", &url, dest.to_str().unwrap()],
        &[(var, &u64::MAX.to_string())],
    );
    no_panic(&o);
    fails_with(&o, &[var, "31536000"]);
    let dest = t.path().join("b");
    let o = common::run_env(
        t.path(),
        &["clone", &url, dest.to_str().unwrap()],
        &[(var, "31536000")],
    );
    no_panic(&o);
    assert_ok(o);
}
