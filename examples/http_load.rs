//! A small load generator for `bench/http/run.sh`: N keep-alive connections (one thread
//! and one ureq agent each) sending the same request, or adding unique blobs, and the
//! requests per second it reached.
//!
//! Usage: `http_load get URL CONNS REQUESTS_PER_CONN`
//!        `http_load add BASE_URL CONNS REQUESTS_PER_CONN SIZE`

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: http_load get URL CONNS N | http_load add BASE_URL CONNS N SIZE";
    if args.len() < 5 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let (mode, url) = (args[1].clone(), args[2].clone());
    let conns: usize = args[3].parse().expect("CONNS");
    let n: usize = args[4].parse().expect("N");
    let size: usize = args.get(5).map_or(1024, |s| s.parse().expect("SIZE"));
    let start = Instant::now();
    let bytes: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (mode, url) = (mode.clone(), url.clone());
                sc.spawn(move || {
                    let agent = ureq::Agent::new_with_config(
                        ureq::Agent::config_builder()
                            .http_status_as_error(false)
                            .build(),
                    );
                    let mut total = 0;
                    for i in 0..n {
                        let (status, len) = if mode == "get" {
                            let mut r = agent.get(&url).call().expect("GET");
                            let body = r.body_mut().read_to_vec().expect("body");
                            (r.status().as_u16(), body.len())
                        } else {
                            let mut blob = format!("conn {c} request {i} ").into_bytes();
                            blob.resize(size, b'x');
                            let mut r = agent
                                .post(format!("{url}/cas"))
                                .send(&blob[..])
                                .expect("POST");
                            let _ = r.body_mut().read_to_vec();
                            (r.status().as_u16(), blob.len())
                        };
                        assert!(status / 100 == 2, "status {status}");
                        total += len;
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    let total = conns * n;
    println!(
        "{mode} {total} requests over {conns} connections in {secs:.2}s: {:.0} requests/s, {:.1} MB/s",
        total as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}
