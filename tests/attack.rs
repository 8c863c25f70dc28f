//! Hostile clients against the real `remotelog serve` binary, all at once: bodies sent one
//! byte a second, request heads sent one byte a second, idle keep-alive connections, six
//! 256 MiB bodies to the read endpoints without a token, and a decompression bomb (a pack
//! of a few tens of KB whose blocks each expand to 64 MiB) from a writer. Meanwhile a
//! normal client must be answered within 3 s (`/healthz`, a push, a read of the log), and
//! at the end the server's peak RSS (`VmHWM`) must be under 300 MB and every hostile
//! connection closed. `bench/http/attack.sh` runs the same at full size.
//!
//! Every goal missed is collected and reported together, so a run names all of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use remotelog::log;
use remotelog::net::client::HttpBackend;
use remotelog::progress::Silent;
use remotelog::transfer::sync::{self, Force};
use remotelog::Id;

mod common;
use common::{append, bin, ok, store};

/// What a normal request may take under attack.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// The peak resident size the server must stay under.
const RSS_LIMIT: u64 = 300 << 20;
/// When hostile connections must all be closed: the server's 10 s header and body
/// deadlines, with a margin.
const CLOSED_BY: Duration = Duration::from_secs(14);

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set of a process, from `/proc/<pid>/status`.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Whether the server closed `s` (reading what it sent first).
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
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

/// Runs `op` on its own thread and waits at most `limit` (plus a margin to see how late
/// it was): `Ok(elapsed)` or a description of the failure. A stuck operation is left
/// behind; it ends when the server is killed.
fn timed<F>(what: &str, op: F) -> Result<Duration, String>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(op());
    });
    match rx.recv_timeout(ANSWER_WITHIN + Duration::from_secs(2)) {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(format!("{what} failed: {e}")),
        Err(_) => Err(format!(
            "{what} got no answer within {:?}",
            ANSWER_WITHIN + Duration::from_secs(2)
        )),
    }
}

/// A pack of `n` objects of 64 MiB each (one block each, at the largest block size a
/// reader accepts), a few KB compressed.
fn bomb(dir: &std::path::Path, n: u8) -> Vec<u8> {
    let mut w = remotelog::pack::PackWriter::create(dir, None, 1).unwrap();
    let mut buf = vec![0u8; remotelog::pack::MAX_BLOCK as usize];
    for i in 0..n {
        buf.fill(i);
        w.add(Id::of(&buf), &buf).unwrap();
    }
    let done = w.finish().unwrap();
    std::fs::read(&done.tmp).unwrap()
}

#[test]
fn hostile_clients_neither_starve_nor_bloat_the_server() {
    let t = tempfile::tempdir().unwrap();
    let srv_dir = t.path().join("srv");
    ok(&srv_dir, &["init"]);
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "writer\n").unwrap();
    let bomb_pack = bomb(t.path(), 12);
    let mut child = bin()
        .args(["--store", srv_dir.to_str().unwrap(), "serve"])
        .args(["--listen", "127.0.0.1:0", "--max-concurrency", "16"])
        .arg("--token-file")
        .arg(&token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        // The first line names the address; the request log after it is not needed.
        let mut err = child.stderr.take().unwrap();
        let mut byte = [0u8; 1];
        while err.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            first.push(byte[0] as char);
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    }
    let server = Server(child);
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();

    // A normal writer with a log on the server already.
    let local = store(&t.path().join("local"));
    append(&local, 50, "normal");
    let token = Some("writer".to_string());
    let remote = HttpBackend::open(&url, token.clone()).unwrap();
    sync::push(&local, "origin", &remote, "main", Force::No, &Silent).unwrap();

    let start = Instant::now();
    let mut failures: Vec<String> = Vec::new();

    // Six 256 MiB bodies to the read endpoints, without a token.
    let floods: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 {
                    "/cas/present"
                } else {
                    "/twirp/vac.cas.CAS/Get"
                };
                let mut s = connect(addr);
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/protobuf\r\nContent-Length: {}\r\n\r\n",
                    256u64 << 20
                );
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b'7'; 1 << 20];
                for _ in 0..256 {
                    if s.write_all(&chunk).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    // The bomb, from a writer.
    let bomb_url = format!("{url}/packs");
    let bomb_thread = std::thread::spawn(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        );
        agent
            .post(&bomb_url)
            .header("authorization", "Bearer writer")
            .send(&bomb_pack[..])
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });

    // The slow clients a moment later, so that on a server where they hold every slot
    // the memory attacks above still get in.
    std::thread::sleep(Duration::from_secs(1));
    // 20 keep-alive connections left idle after one request.
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            s
        })
        .collect();
    // 40 bodies sent one byte a second, to an endpoint that needs no token.
    let mut slow_bodies: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"POST /cas/present HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // 40 request heads sent one byte a second.
    let mut slow_heads: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let (trickle_tx, trickle_rx) = mpsc::channel::<()>();
    let trickler = std::thread::spawn(move || {
        while trickle_rx.recv_timeout(Duration::from_secs(1)).is_err() {
            for s in slow_bodies.iter_mut() {
                let _ = s.write_all(b"0");
            }
            for s in slow_heads.iter_mut() {
                let _ = s.write_all(b"a");
            }
        }
        (slow_bodies, slow_heads)
    });
    // Meanwhile, a normal client: health, a push of one more message, a read of the log.
    let health_url = format!("{url}/healthz");
    let mut worst = Duration::ZERO;
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(500));
        rounds += 1;
        let h = health_url.clone();
        let health = timed("GET /healthz", move || {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build(),
            );
            agent.get(&h).call().map(|_| ()).map_err(|e| e.to_string())
        });
        append(&local, 1, &format!("round {rounds}"));
        let (u, tok, dir) = (url.clone(), token.clone(), local.root().to_path_buf());
        let push = timed("push of one message", move || {
            let local = remotelog::FsStore::open(&dir).map_err(|e| e.to_string())?;
            let remote = HttpBackend::open(&u, tok).map_err(|e| e.to_string())?;
            sync::push(&local, "origin", &remote, "main", Force::No, &Silent)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        let u = url.clone();
        let read = timed("read of the log", move || {
            let remote = HttpBackend::open(&u, None).map_err(|e| e.to_string())?;
            log::entries(&remote, "main")
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        for r in [health, push, read] {
            match r {
                Ok(d) if d > ANSWER_WITHIN => failures.push(format!(
                    "round {rounds} at {:?}: a normal request took {d:?}",
                    start.elapsed()
                )),
                Ok(d) => worst = worst.max(d),
                Err(e) => failures.push(format!("round {rounds} at {:?}: {e}", start.elapsed())),
            }
        }
        if failures.len() > 6 {
            break;
        }
    }

    // Every hostile connection is closed by now, and the server stayed small.
    std::thread::sleep(CLOSED_BY.saturating_sub(start.elapsed()));
    trickle_tx.send(()).unwrap();
    let (mut slow_bodies, mut slow_heads) = trickler.join().unwrap();
    for (what, conns) in [
        ("slow bodies", &mut slow_bodies),
        ("slow request heads", &mut slow_heads),
        ("idle keep-alive connections", &mut idle),
    ] {
        let open = conns.iter_mut().map(closed).filter(|c| !c).count();
        if open > 0 {
            failures.push(format!(
                "{open} of {} {what} still open after {:?}",
                conns.len(),
                start.elapsed()
            ));
        }
    }
    let peak = vm_hwm(server.0.id());
    if peak >= RSS_LIMIT {
        failures.push(format!(
            "peak RSS {} MiB, over {} MiB",
            peak >> 20,
            RSS_LIMIT >> 20
        ));
    }
    for f in floods {
        let _ = f.join();
    }
    match bomb_thread.join().unwrap() {
        // The bomb is a valid pack: stored object by object, one block at a time.
        Ok(200) => {}
        other => failures.push(format!("the bomb upload got {other:?}")),
    }
    eprintln!(
        "attack: {rounds} rounds, worst normal request {worst:?}, peak RSS {} MiB",
        peak >> 20
    );
    assert!(
        failures.is_empty(),
        "goals missed:\n{}",
        failures.join("\n")
    );
    // Still serving, with everything it accepted intact.
    let remote = HttpBackend::open(&url, None).unwrap();
    assert_eq!(
        log::entries(&remote, "main").unwrap().len(),
        log::entries(&local, "main").unwrap().len()
    );
    drop(server);
    ok(&srv_dir, &["check"]);
}
