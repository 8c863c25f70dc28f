//! Hostile clients against a running `remotelog serve`, for `bench/http/attack.sh`: the
//! attacks of `tests/attack.rs` at full size, while a normal client keeps asking for
//! `/healthz`, pushing one message and reading the log; prints the normal client's
//! latencies, what became of each attack, and the server's peak RSS (`VmHWM` of PID).
//!
//! Usage: `http_attack URL PID TOKEN [ATTACKS] [SECONDS]`, ATTACKS a comma-separated
//! subset of `slow-bodies,slow-heads,idle,floods,bomb` (default all), SECONDS the time the
//! normal client runs (default 20). Sizes: 100 slow bodies and 100 slow heads (one byte a
//! second), 100 idle keep-alive connections, six 256 MiB bodies to read endpoints without
//! a token, a bomb of 36 objects of 64 MiB (about 150 KB compressed) from the writer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use remotelog::log::{self, SettingsChange};
use remotelog::net::client::HttpBackend;
use remotelog::progress::Silent;
use remotelog::transfer::sync::{self, Force};
use remotelog::{store::config::Config, FsStore, Id, Message};

fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        << 10
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(s)
}

fn closed(s: &mut TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Runs `op` on a thread and waits at most 10 s for it: the time it took, or why not.
fn timed<F>(op: F) -> Result<Duration, String>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(op());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

fn bomb(objects: u8) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut w = remotelog::pack::PackWriter::create(dir.path(), None, 1).unwrap();
    let mut buf = vec![0u8; remotelog::pack::MAX_BLOCK as usize];
    for i in 0..objects {
        buf.fill(i);
        w.add(Id::of(&buf), &buf).unwrap();
    }
    let done = w.finish().unwrap();
    std::fs::read(&done.tmp).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: http_attack URL PID TOKEN [ATTACKS] [SECONDS]");
        std::process::exit(2);
    }
    let url = args[1].trim_end_matches('/').to_string();
    let pid: u32 = args[2].parse().expect("PID");
    let token = args[3].clone();
    let all = "slow-bodies,slow-heads,idle,floods,bomb".to_string();
    let attacks: Vec<String> = args
        .get(4)
        .unwrap_or(&all)
        .split(',')
        .map(str::to_string)
        .collect();
    let on = |a: &str| attacks.iter().any(|x| x == a);
    let seconds: u64 = args.get(5).map_or(20, |s| s.parse().expect("SECONDS"));
    let addr: SocketAddr = url.trim_start_matches("http://").parse().expect("URL");

    let work = tempfile::tempdir().unwrap();
    let local = FsStore::init(&work.path().join("local"), Config::default()).unwrap();
    let msg = |i: u64| Message {
        group_id: b"bench".to_vec(),
        timestamp: i as i64,
        body: format!("normal message {i}").into_bytes(),
    };
    log::append(&local, "main", &[msg(0)], SettingsChange::default()).unwrap();
    let remote = HttpBackend::open(&url, Some(token.clone())).unwrap();
    sync::push(&local, "origin", &remote, "main", Force::No, &Silent).unwrap();
    let bomb_pack = on("bomb").then(|| bomb(36));
    let rss_before = vm_hwm(pid);
    let start = Instant::now();

    let mut floods = Vec::new();
    if on("floods") {
        for i in 0..6 {
            floods.push(std::thread::spawn(move || -> String {
                let path = if i % 2 == 0 {
                    "/cas/present"
                } else {
                    "/twirp/vac.cas.CAS/Get"
                };
                let Some(mut s) = connect(addr) else {
                    return "connection refused".into();
                };
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/protobuf\r\nContent-Length: {}\r\n\r\n",
                    256u64 << 20
                );
                let chunk = vec![b'7'; 1 << 20];
                let mut sent = 0u64;
                if s.write_all(head.as_bytes()).is_ok() {
                    for _ in 0..256 {
                        if s.write_all(&chunk).is_err() {
                            break;
                        }
                        sent += chunk.len() as u64;
                    }
                }
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let mut answer = [0u8; 64];
                let n = s.read(&mut answer).unwrap_or(0);
                let status = String::from_utf8_lossy(&answer[..n.min(12)]).into_owned();
                format!("{path}: sent {} MiB, answer {status:?}", sent >> 20)
            }));
        }
    }
    let bomb_thread = bomb_pack.map(|pack| {
        let (u, t) = (format!("{url}/packs"), token.clone());
        let len = pack.len();
        std::thread::spawn(move || {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build(),
            );
            let started = Instant::now();
            let r = agent
                .post(&u)
                .header("authorization", format!("Bearer {t}"))
                .send(&pack[..]);
            match r {
                Ok(mut r) => format!(
                    "{len} bytes: {} {} in {:.1}s",
                    r.status().as_u16(),
                    r.body_mut().read_to_string().unwrap_or_default().trim(),
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => format!("{len} bytes: {e}"),
            }
        })
    });
    // The slow clients a moment later, so that on a server where they take every slot the
    // memory attacks above still get in.
    std::thread::sleep(Duration::from_secs(1));
    let mut idle: Vec<TcpStream> = Vec::new();
    if on("idle") {
        for _ in 0..100 {
            if let Some(mut s) = connect(addr) {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                idle.push(s);
            }
        }
    }
    let mut slow_bodies: Vec<TcpStream> = Vec::new();
    let mut slow_heads: Vec<TcpStream> = Vec::new();
    for _ in 0..100 {
        if on("slow-bodies") {
            if let Some(mut s) = connect(addr) {
                let _ = s.write_all(
                    b"POST /cas/present HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                );
                slow_bodies.push(s);
            }
        }
        if on("slow-heads") {
            if let Some(mut s) = connect(addr) {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                slow_heads.push(s);
            }
        }
    }
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let trickler = std::thread::spawn(move || {
        while stop_rx.recv_timeout(Duration::from_secs(1)).is_err() {
            for s in slow_bodies.iter_mut() {
                let _ = s.write_all(b"0");
            }
            for s in slow_heads.iter_mut() {
                let _ = s.write_all(b"a");
            }
        }
        (slow_bodies, slow_heads)
    });

    // The normal client.
    let mut latencies: Vec<(&str, Result<Duration, String>)> = Vec::new();
    let mut round = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        round += 1;
        let h = format!("{url}/healthz");
        latencies.push((
            "healthz",
            timed(move || ureq::get(&h).call().map(|_| ()).map_err(|e| e.to_string())),
        ));
        log::append(&local, "main", &[msg(round)], SettingsChange::default()).unwrap();
        let (u, t, dir) = (url.clone(), token.clone(), local.root().to_path_buf());
        latencies.push((
            "push",
            timed(move || {
                let local = FsStore::open(&dir).map_err(|e| e.to_string())?;
                let remote = HttpBackend::open(&u, Some(t)).map_err(|e| e.to_string())?;
                sync::push(&local, "origin", &remote, "main", Force::No, &Silent)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
        ));
        let u = url.clone();
        latencies.push((
            "read",
            timed(move || {
                let remote = HttpBackend::open(&u, None).map_err(|e| e.to_string())?;
                log::entries(&remote, "main")
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
        ));
    }
    let _ = stop_tx.send(());
    let (mut slow_bodies, mut slow_heads) = trickler.join().unwrap();
    println!(
        "normal client: {round} rounds in {:.0}s",
        start.elapsed().as_secs_f64()
    );
    for what in ["healthz", "push", "read"] {
        let mut ok: Vec<Duration> = latencies
            .iter()
            .filter(|l| l.0 == what)
            .filter_map(|l| l.1.as_ref().ok().copied())
            .collect();
        let failed: Vec<&String> = latencies
            .iter()
            .filter(|l| l.0 == what)
            .filter_map(|l| l.1.as_ref().err())
            .collect();
        ok.sort();
        let median = ok.get(ok.len() / 2).copied().unwrap_or_default();
        let worst = ok.last().copied().unwrap_or_default();
        println!(
            "  {what:8} answered {:3}, median {:7.1} ms, worst {:7.1} ms, failed {}{}",
            ok.len(),
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            failed.len(),
            failed
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
    let at = start.elapsed().as_secs_f64();
    for (what, conns) in [
        ("slow bodies", &mut slow_bodies),
        ("slow heads", &mut slow_heads),
        ("idle connections", &mut idle),
    ] {
        if !conns.is_empty() {
            let open = conns.iter_mut().map(closed).filter(|c| !c).count();
            println!(
                "{what}: {open} of {} still open after {at:.0}s",
                conns.len()
            );
        }
    }
    for f in floods {
        println!("flood {}", f.join().unwrap());
    }
    if let Some(b) = bomb_thread {
        println!("bomb: {}", b.join().unwrap());
    }
    println!(
        "server peak RSS: {} MiB (before the attacks: {} MiB)",
        vm_hwm(pid) >> 20,
        rss_before >> 20
    );
}
