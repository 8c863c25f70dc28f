//! `https://` remotes and `https` S3 endpoints, through the real binary: a CA and a server
//! certificate made at test time (`openssl`), a TLS-terminating proxy
//! (`tests/tls_proxy.py`, as caddy or nginx would be) in front of `remotelog serve` or this
//! binary's SeaweedFS. With the CA named by `SSL_CERT_FILE` (or `REMOTELOG_CA_FILE`, or
//! `AWS_CA_BUNDLE` for S3) push and clone work; without it, or with another CA, the
//! command fails at once on one line that names the URL, says the certificate is not
//! trusted and which variable adds a CA; a CA file that cannot be used is named.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;
use common::{fails_with, ok, ok_env, run_env, serve};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What `openssl` made for a test: a CA, a server certificate it signed (for `localhost`
/// and `127.0.0.1`) with its key, and a second CA that signed nothing.
struct Certs {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Makes [`Certs`] in `dir` (P-256 keys: a few milliseconds each).
fn certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("openssl.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = remotelog test CA\n\
         [ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [srv]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for name in ["ca", "other-ca"] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec![
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
        ];
        args.extend(ec);
        args.extend(["-nodes", "-days", "2", "-keyout", &key, "-out", &pem]);
        openssl(dir, &args);
    }
    let mut args = vec![
        "req",
        "-new",
        "-config",
        "openssl.cnf",
        "-subj",
        "/CN=localhost",
    ];
    args.extend(ec);
    args.extend(["-nodes", "-keyout", "srv.key", "-out", "srv.csr"]);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "srv",
            "-out",
            "srv.pem",
        ],
    );
    Certs {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("srv.pem"),
        key: dir.join("srv.key"),
    }
}

/// `tests/tls_proxy.py` serving TLS with `certs` in front of the loopback `upstream`
/// port; killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(certs: &Certs, upstream: u16) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&certs.cert)
            .arg(&certs.key)
            .arg(upstream.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 tests/tls_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("tls_proxy.py printed {line:?}, not its port"));
        Proxy { child, port }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of an `http://HOST:PORT` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A store at `dir` with a few messages in its main log.
fn store_with_messages(dir: &Path, tmp: &Path) {
    ok(dir, &["init"]);
    let files: Vec<String> = (0..5)
        .map(|i| {
            let p = tmp.join(format!("m{i}"));
            std::fs::write(&p, format!("body {i}")).unwrap();
            p.display().to_string()
        })
        .collect();
    let mut args = vec!["append", "--group", "chat"];
    args.extend(files.iter().map(String::as_str));
    ok(dir, &args);
}

#[test]
fn push_and_clone_over_https_with_the_ca_given() {
    let t = tempfile::tempdir().unwrap();
    let certs = certs(&t.path().join("pki"));
    let srv = serve(&t.path().join("srv"), |_| {});
    let proxy = Proxy::start(&certs, port_of(&srv.url()));
    let url = format!("https://localhost:{}", proxy.port);
    let a = t.path().join("a");
    store_with_messages(&a, t.path());
    ok(&a, &["remote", "add", "origin", &format!("{url}/")]);
    assert!(ok(&a, &["remote", "list"]).starts_with(&format!("origin\t{url}\n")));
    ok_env(&a, &["push"], &[("SSL_CERT_FILE", s(&certs.ca))]);
    assert!(ok_env(&a, &["status"], &[("SSL_CERT_FILE", s(&certs.ca))]).contains("up to date"));

    // REMOTELOG_CA_FILE comes first: a wrong SSL_CERT_FILE beside it does not matter.
    let c = t.path().join("c");
    ok_env(
        t.path(),
        &["clone", &url, s(&c)],
        &[
            ("REMOTELOG_CA_FILE", s(&certs.ca)),
            ("SSL_CERT_FILE", s(&certs.other_ca)),
        ],
    );
    assert_eq!(ok(&c, &["log", "--json"]), ok(&a, &["log", "--json"]));
    ok(&t.path().join("srv"), &["check", "--read-data"]);
    srv.stop().unwrap();
}

#[test]
fn an_untrusted_certificate_fails_at_once_saying_which_variable_adds_a_ca() {
    let t = tempfile::tempdir().unwrap();
    let certs = certs(&t.path().join("pki"));
    let srv = serve(&t.path().join("srv"), |_| {});
    let proxy = Proxy::start(&certs, port_of(&srv.url()));
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let a = t.path().join("a");
    store_with_messages(&a, t.path());
    ok(&a, &["remote", "add", "origin", &url]);

    // The built-in roots do not know the test CA.
    let o = run_env(&a, &["push"], &[]);
    fails_with(
        &o,
        &[&url, "not trusted", "built-in roots", "SSL_CERT_FILE"],
    );
    // Refused once, not retried as a lost connection would be.
    assert!(!String::from_utf8_lossy(&o.stderr).contains("tried"));
    // Another CA: the message names the file it came from.
    let o = run_env(&a, &["push"], &[("SSL_CERT_FILE", s(&certs.other_ca))]);
    fails_with(
        &o,
        &[&url, "not trusted", s(&certs.other_ca), "REMOTELOG_CA_FILE"],
    );
    let o = run_env(t.path(), &["clone", &url, s(&t.path().join("c"))], &[]);
    fails_with(&o, &[&url, "not trusted"]);
    assert!(!t.path().join("c").join("refs").exists());
    // Nothing arrived.
    let served = ok(&t.path().join("srv"), &["logs", "--json"]);
    assert!(!served.contains("main"), "{served}");
    srv.stop().unwrap();
}

#[test]
fn a_ca_file_that_cannot_be_used_is_named_and_plain_http_ignores_it() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let a = t.path().join("a");
    store_with_messages(&a, t.path());
    ok(&a, &["remote", "add", "secure", "https://localhost:9"]);
    let missing = t.path().join("no-such-ca.pem");
    let o = run_env(&a, &["push", "secure"], &[("SSL_CERT_FILE", s(&missing))]);
    fails_with(&o, &["SSL_CERT_FILE", s(&missing), "cannot read"]);
    let empty = t.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let o = run_env(&a, &["push", "secure"], &[("REMOTELOG_CA_FILE", s(&empty))]);
    fails_with(&o, &["REMOTELOG_CA_FILE", s(&empty), "no certificate"]);
    let junk = t.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let o = run_env(&a, &["push", "secure"], &[("SSL_CERT_FILE", s(&junk))]);
    fails_with(&o, &["SSL_CERT_FILE", s(&junk)]);
    // An http remote never reads the bundle: a broken one in the environment is harmless.
    ok(&a, &["remote", "add", "plain", &srv.url()]);
    ok_env(&a, &["push", "plain"], &[("SSL_CERT_FILE", s(&missing))]);
    srv.stop().unwrap();
}

#[test]
fn https_to_a_plain_http_server_says_to_use_http() {
    let t = tempfile::tempdir().unwrap();
    let srv = serve(&t.path().join("srv"), |_| {});
    let url = srv.url().replace("http://", "https://");
    let a = t.path().join("a");
    store_with_messages(&a, t.path());
    ok(&a, &["remote", "add", "origin", &url]);
    let o = run_env(&a, &["push"], &[]);
    fails_with(&o, &[&url, "TLS handshake failed", "http://"]);
    srv.stop().unwrap();
}

#[test]
fn s3_over_https_with_aws_ca_bundle() {
    let server = common::seaweed();
    let t = tempfile::tempdir().unwrap();
    let certs = certs(&t.path().join("pki"));
    let proxy = Proxy::start(&certs, port_of(server.var("AWS_ENDPOINT_URL")));
    let endpoint = format!("https://localhost:{}", proxy.port);
    let remote = format!("{}?endpoint={endpoint}", server.fresh("tls"));
    let a = t.path().join("a");
    store_with_messages(&a, t.path());
    // Adding the remote probes the store: it needs the CA too.
    let o = run_env(&a, &["remote", "add", "origin", &remote], &server.env());
    fails_with(&o, &[&endpoint, "not trusted", "AWS_CA_BUNDLE"]);
    let mut env = server.env();
    env.push(("AWS_CA_BUNDLE", s(&certs.ca)));
    ok_env(&a, &["remote", "add", "origin", &remote], &env);
    ok_env(&a, &["push"], &env);
    let c = t.path().join("c");
    ok_env(t.path(), &["clone", &remote, s(&c)], &env);
    assert_eq!(ok(&c, &["log", "--json"]), ok(&a, &["log", "--json"]));
}
