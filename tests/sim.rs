//! The sync simulator (src/sim/): its self-checks (request counts against
//! format/spec-view.md with a zero-delay remote, the same seed giving the same bytes) and
//! `remotelog sim` as a user runs it.

use remotelog::log::Settings;
use remotelog::mock::{secs, Dist, Profile, Schedule};
use remotelog::sim::matrix::{Matrix, EMBED_ALL};
use remotelog::sim::{output, run, Push, Scenario};

mod common;
use common::{bin, run_cmd};

/// `n` messages, one a second, pushed in one go when the writer first comes online after
/// them, read by one reader that comes online once, later still, and polls once.
fn one_read(profile: Profile, n: u64, capacity: u64, embed: u64) -> Scenario {
    let done = n as f64 + 10.0;
    Scenario {
        profile,
        settings: Settings { capacity, embed },
        duration: n as f64,
        drain: 100.0,
        writers: 1,
        interval: 1.0,
        poisson: false,
        size: Dist::Const(100.0),
        push: Push::Online,
        writer_schedule: Schedule::Trace(vec![(secs(n as f64 + 1.0), secs(n as f64 + 2.0))]),
        readers: 1,
        reader_schedule: Schedule::Trace(vec![(secs(done), secs(done + 1.0))]),
        poll: 3600.0,
        retry: 1.0,
        seed: 1,
    }
}

#[test]
fn a_zero_delay_reader_makes_exactly_the_requests_spec_view_gives() {
    // format/spec-view.md section 3: a reader of n messages in p pages, e of them
    // embedded, makes p + n - e requests when the NS record holds the head page (one
    // NS Fetch, p - 1 CAS Gets of tails, one CAS Get per payload not embedded), and one
    // more, 1 + p + n - e, when the NS holds the head page's id.
    let by_id = Profile::builtin("ideal").unwrap();
    let in_record = Profile::from_toml(
        "inherit = \"ideal\"\nname = \"ideal-record\"\n[ns]\nrecord = \"head-page\"\n",
    )
    .unwrap();
    let cases: [(u64, u64, u64); 10] = [
        (1, 1, 0),
        (10, 1, 0),
        (10, 4, 0),
        (10, 4, 1),
        (37, 16, 8),
        (37, 0, 0),
        (37, 0, EMBED_ALL),
        (300, 256, 0),
        (300, 256, 1),
        (300, 128, 300),
    ];
    for (n, c, e) in cases {
        let p = if c == 0 { 1 } else { n.div_ceil(c) };
        let embedded = e.min(n);
        for (profile, want) in [
            (&by_id, 1 + p + n - embedded),
            (&in_record, p + n - embedded),
        ] {
            let r = run(&one_read(profile.clone(), n, c, e)).unwrap();
            let what = format!("{} n={n} page size {c} embed {e}", profile.name);
            assert_eq!(r.messages, n, "{what}");
            assert_eq!(r.delivered, n, "{what}: {:?}", r.missing);
            assert_eq!(r.readers.ns_fetches, 1, "{what}");
            assert_eq!(r.readers.ns_fetches + r.readers.cas_gets, want, "{what}");
            assert!(r.latencies.iter().all(|l| *l > 0), "{what}");
        }
    }
}

fn small_matrix(seed: u64) -> Matrix {
    let base = Scenario {
        reader_schedule: Schedule::OnOff {
            on: 900.0,
            off: 900.0,
        },
        writer_schedule: Schedule::OnOff {
            on: 3600.0,
            off: 600.0,
        },
        duration: 3600.0,
        drain: 1800.0,
        interval: 30.0,
        poisson: true,
        size: Dist::lognormal(256.0, 1024.0),
        push: Push::Each,
        poll: 60.0,
        ..one_read(Profile::builtin("ideal").unwrap(), 1, 1, 0)
    };
    Matrix {
        base,
        profiles: ["ipns", "lossy", "swarm"]
            .map(|p| Profile::builtin(p).unwrap())
            .to_vec(),
        page_sizes: vec![16, 0],
        embeds: vec![0, 1],
        readers: vec![2],
        seeds: vec![seed, seed + 1],
    }
}

#[test]
fn the_same_seed_gives_byte_identical_csv_whatever_the_threads() {
    let csv = |seed, jobs| output::csv(&small_matrix(seed).run(jobs).unwrap());
    let a = csv(5, 1);
    assert_eq!(a, csv(5, 2), "threads changed the result");
    assert_eq!(a, csv(5, 1));
    assert_ne!(a, csv(6, 1), "another seed gave the same run");
    // Twelve cells, each with deliveries.
    assert_eq!(a.lines().count(), 1 + 3 * 2 * 2);
    assert!(a.lines().skip(1).all(|l| !l.contains(",,,,")), "{a}");
}

#[test]
fn remotelog_sim_writes_the_same_table_and_plots_twice_and_shows_the_ipns_limit() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles/example.toml");
    let profiles = format!("ipns,{}", example.display());
    let sim = |out: &str| {
        let mut c = bin();
        c.current_dir(dir.path()).args([
            "sim",
            "--profiles",
            &profiles,
            "--page-sizes",
            "16,256",
            "--embeds",
            "0",
            "--seeds",
            "1",
            "--duration",
            "2h",
            "--interval",
            "15",
            "--jobs",
            "2",
            "--out",
            out,
        ]);
        let o = run_cmd(c, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let said = sim("a");
    assert!(said.contains("4 runs (4 cells x 1 seeds)"), "{said}");
    sim("b");
    for f in [
        "results.csv",
        "results.md",
        "latency-cdf.svg",
        "requests.svg",
    ] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(!a.is_empty(), "{f} is empty");
        assert!(a == b, "{f} differs between two runs with the same seed");
    }
    let svg = std::fs::read_to_string(dir.path().join("a/latency-cdf.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("ipns-5m"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    // 480 messages: the head page of 256-entry pages ends with 224 entries, more than a
    // 10 KiB IPNS record holds, and the writer's updates are refused; 16-entry pages fit.
    let csv = std::fs::read_to_string(dir.path().join("a/results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row = |profile: &str, page: &str| -> Vec<String> {
        csv.lines()
            .map(|l| l.split(',').map(String::from).collect::<Vec<_>>())
            .find(|r| r[0] == profile && r[1] == page)
            .unwrap()
    };
    let refused = |r: &[String]| r[col("missing_refused")].parse::<u64>().unwrap();
    assert!(refused(&row("ipns", "256")) > 0, "{csv}");
    assert_eq!(refused(&row("ipns", "16")), 0, "{csv}");
    // The 5-minute cache of the example profile shortens the stale reads' delay.
    let p90 = |r: &[String]| r[col("latency_p90_s")].parse::<f64>().unwrap();
    assert!(
        p90(&row("ipns-5m", "16")) < p90(&row("ipns", "16")),
        "{csv}"
    );
}

#[test]
fn remotelog_sim_refuses_bad_options_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["sim", "--profiles", "nope"][..], "no profile \"nope\""),
        (&["sim", "--embeds", "some"][..], "--embeds"),
        (&["sim", "--duration", "3w"][..], "--duration"),
        (
            &["sim", "--reader-schedule", "bernoulli:2,5"][..],
            "bernoulli",
        ),
        (&["sim", "--push", "sometimes"][..], "push policy"),
        (
            &["sim", "--interval", "0.0001", "--duration", "48h"][..],
            "at most",
        ),
        (&["sim", "--drain", "1000d"][..], "at most a year"),
        (
            &["sim", "--poll", "0.001", "--readers", "1000"][..],
            "polls",
        ),
        (
            &["sim", "--reader-schedule", "trace:/nonexistent/t"][..],
            "/nonexistent/t",
        ),
    ] {
        let mut c = bin();
        c.current_dir(dir.path()).args(args);
        // A bad value on the command line: exit 2, one line naming it.
        let o = run_cmd(c, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let mut c = bin();
    c.current_dir(dir.path()).args(["sim", "--seeds", "many"]);
    assert_eq!(run_cmd(c, None).status.code(), Some(2));
    assert!(
        !dir.path().join("sim-out").exists(),
        "nothing written on a bad command"
    );
}
