//! HTTPS from the binary: real TLS end to end with curl, plain HTTP to the
//! TLS port, certificate reload, and stalled handshakes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A self-signed certificate for localhost and 127.0.0.1, made with openssl.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server's own certificate, not a CA's: rustls (the bench's client)
        // refuses a CA certificate as the server's, which openssl makes by default.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs")
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}

fn tls_lines(cert: &Path, key: &Path) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// POSTs over HTTPS with curl, trusting `ca`; (status, body).
fn https_post(port: u16, ca: &Path, path: &str, body: &Value, auth: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(body.to_string());
    if let Some(token) = auth {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json_text, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

/// The SHA-256 fingerprint of the certificate a new connection is served.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn tls_server() -> (TestServer, TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new();
    let (cert, key) = make_cert(dir.path(), "first");
    let s = TestServer::start_with(&tls_lines(&cert, &key));
    (s, dir, cert, key)
}

fn claim_body(stock: &str, n: usize) -> Value {
    signed(
        json!({"app_channel_id": 1, "user_code": format!("tls-{n}"), "stock_id": stock,
        "request_id": unique("tls")}),
    )
}

fn create_stock_https(port: u16, ca: &Path) -> String {
    let mut fields = stock_fields(&unique("t"));
    fields["max_coupons_per_user"] = json!(1);
    let (status, body) = https_post(port, ca, "/admin/stocks", &fields, Some(ADMIN));
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    body["data"]["stock_id"].as_str().unwrap().to_string()
}

#[test]
fn signed_claims_over_https_with_a_real_client() {
    let (s, _dir, cert, _key) = tls_server();
    let port = s.addr.port();
    let stock = create_stock_https(port, &cert);
    for n in 0..3 {
        let (status, body) = https_post(
            port,
            &cert,
            "/sp/coupon/receive",
            &claim_body(&stock, n),
            None,
        );
        assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    }
}

/// `bench --target https://... --cacert FILE` with `args`: (success, stdout, stderr).
fn bench_https(port: u16, cacert: &Path, args: &[&str]) -> (bool, String, String) {
    let cacert = cacert.to_str().unwrap();
    let args = [&["--cacert", cacert, "--connections", "2"], args].concat();
    bench_target(&format!("https://127.0.0.1:{port}"), &args)
}

#[test]
fn bench_drives_a_running_server_over_https_trusting_its_certificate() {
    let (s, dir, cert, _key) = tls_server();
    let port = s.addr.port();
    let mut fields = stock_fields(&unique("b"));
    fields["max_coupons"] = json!(10_000_000);
    let (status, body) = https_post(port, &cert, "/admin/stocks", &fields, Some(ADMIN));
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    let stock = body["data"]["stock_id"].as_str().unwrap().to_string();
    let (ok, out, err) = bench_https(
        port,
        &cert,
        &[
            "--mode",
            "claim",
            "--api-key",
            KEY,
            "--secret",
            SECRET,
            "--stock",
            &stock,
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("mode Claim · 2 connections"), "{out}");
    assert!(out.contains("· errors 0 ·"), "{out}");
    let claimed: u64 = out
        .split("requests ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(claimed > 0, "{out}");
    // Every claim it counted was issued, over HTTPS.
    let db = rusqlite::Connection::open(s.db()).unwrap();
    let issued: u64 = db
        .query_row(
            "SELECT issued FROM stocks WHERE stock_id = ?1",
            [&stock],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(issued, claimed, "{out}");

    // A certificate the server does not hold: every connection is refused,
    // and the report says why.
    let (other, _) = make_cert(dir.path(), "other");
    let (_, out, err) = bench_https(port, &other, &["--mode", "healthz"]);
    assert!(out.contains("requests 0 ·"), "{out}\n{err}");
    assert!(
        out.contains(&format!("first connection error: HTTPS connection to 127.0.0.1:{port}: invalid peer certificate")),
        "{out}\n{err}"
    );
}

#[test]
fn bench_over_https_needs_its_cacert_and_cacert_needs_https() {
    for (args, says) in [
        (
            vec!["--target", "https://127.0.0.1:1", "--mode", "healthz"],
            "--target https://...: give --cacert",
        ),
        (
            vec![
                "--target",
                "http://127.0.0.1:1",
                "--cacert",
                "x.pem",
                "--mode",
                "healthz",
            ],
            "--cacert: only with --target https://",
        ),
        (
            vec![
                "--target",
                "https://127.0.0.1:1",
                "--cacert",
                "/nonexistent.pem",
                "--mode",
                "healthz",
            ],
            "--cacert /nonexistent.pem",
        ),
    ] {
        let out = Command::new(bin())
            .arg("bench")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn plain_http_to_the_tls_port_is_closed_not_hung() {
    let (s, _dir, _cert, _key) = tls_server();
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let read = sock.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(5), "it hung");
    // Closed: EOF after at most a TLS alert, or a reset; never an HTTP answer.
    assert!(read.is_ok() || read.is_err());
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
}

#[test]
fn a_new_certificate_is_used_by_new_connections_after_reload_and_a_bad_one_is_refused() {
    let (s, dir, cert, key) = tls_server();
    let port = s.addr.port();
    let first = file_fingerprint(&cert);
    assert_eq!(served_fingerprint(port), first);
    let stock = create_stock_https(port, &cert);
    let old_ca = dir.path().join("old-ca.crt");
    std::fs::copy(&cert, &old_ca).unwrap();

    // Replace the files, as an ACME client would, then reload under load.
    let (cert2, key2) = make_cert(dir.path(), "second");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    let second = file_fingerprint(&cert);
    assert_ne!(first, second);
    let load = std::thread::spawn({
        let (old_ca, stock) = (old_ca.clone(), stock.clone());
        move || {
            // Until the reload, clients trust the old certificate; after it the new.
            let mut failures = 0;
            for n in 0..20 {
                let (status, _) = https_post(
                    port,
                    &old_ca,
                    "/sp/coupon/receive",
                    &claim_body(&stock, n),
                    None,
                );
                if status != 200 {
                    failures += 1;
                }
            }
            failures
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let old_failures_before_reload = load.join().unwrap();
    assert_eq!(
        old_failures_before_reload, 0,
        "requests failed before the reload"
    );
    let (status, body) = https_post(port, &old_ca, "/admin/tls/reload", &json!({}), Some(ADMIN));
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(served_fingerprint(port), second);
    for n in 100..105 {
        let (status, body) = https_post(
            port,
            &cert2,
            "/sp/coupon/receive",
            &claim_body(&stock, n),
            None,
        );
        assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    }

    // A broken pair is refused and the working one stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let (status, body) = https_post(port, &cert2, "/admin/tls/reload", &json!({}), Some(ADMIN));
    assert_eq!(
        (status, body["code"].as_i64()),
        (200, Some(40001)),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("tls_cert"),
        "{body}"
    );
    assert_eq!(served_fingerprint(port), second);
}

#[test]
fn stalled_handshakes_do_not_stop_a_normal_client() {
    let (s, _dir, cert, _key) = tls_server();
    let port = s.addr.port();
    // 200 sockets that send the start of a ClientHello and stop.
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut sock = TcpStream::connect(s.addr).unwrap();
            sock.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .unwrap();
            sock
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/livez"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        times.push(started.elapsed());
    }
    times.sort();
    let p95 = times[18];
    assert!(
        p95 < Duration::from_millis(200),
        "p95 {p95:?} with 200 stalled handshakes"
    );
    drop(stalled);
}

#[test]
fn a_bad_certificate_stops_the_start_with_one_line_naming_the_file() {
    let dir = TempDir::new();
    let cert = dir.path().join("missing.crt");
    let key = dir.path().join("missing.key");
    let cfg = coupon_ledger::config::Config::from_toml(
        &config_toml(
            &dir.path().join("l.db"),
            "127.0.0.1:0",
            &tls_lines(&cert, &key),
        ),
        &|_| None,
    )
    .unwrap();
    let e = match coupon_ledger::app::start(cfg) {
        Err(e) => e,
        Ok(_) => panic!("started without its certificate"),
    };
    assert!(e.contains("missing.crt"), "{e}");
    assert!(!e.contains('\n'));
    assert!(
        !dir.path().join("l.db").exists(),
        "the database was created"
    );
}

/// Whether curl and openssl are here: a loud skip without them (a failure
/// under CI, where `.ci/run` installs both).
fn have_curl_and_openssl(test: &str) -> bool {
    for (tool, arg) in [("curl", "--version"), ("openssl", "version")] {
        let runs = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs {
            return missing_tool(test, &format!("{tool} (apt-get install {tool})"));
        }
    }
    true
}

/// The binary, killed when the test ends however it ends.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `coupon-ledger serve ARGS` and collects its stderr lines up to and
/// including the line after `check it:` (the curl to paste); stderr is drained
/// afterwards so the server never blocks on it.
fn serve_until_check_line(args: &[&str]) -> (Serving, Vec<String>) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = Command::new(bin())
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines: Vec<String> = Vec::new();
    while lines.len() < 2 || lines[lines.len() - 2] != "check it:" {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!(
                "no `check it:` line and curl on stderr:\n{}",
                lines.join("\n")
            ),
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (serving, lines)
}

/// The value after `label` on the first line holding it.
fn after<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{}", lines.join("\n")))
}

/// Runs a printed command line as a shell would, with `extra` options.
fn sh(line: &str, extra: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{line} {extra}"))
        .output()
        .expect("sh runs")
}

#[test]
fn serve_tls_self_signed_prints_the_fingerprint_and_a_curl_that_works() {
    let test = "serve_tls_self_signed_prints_the_fingerprint_and_a_curl_that_works";
    if !have_curl_and_openssl(test) {
        return;
    }
    let dir = TempDir::new();
    let db = dir.path().join("ledger.db");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let db_arg = db.to_str().unwrap();
    let (mut serving, lines) =
        serve_until_check_line(&["--tls-self-signed", "--db", db_arg, "--listen", &listen]);
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("listening on https://{listen}")),
        "{text}"
    );

    // The pair sits beside the database; the key is the owner's only.
    let cert = PathBuf::from(after(&lines, "  certificate "));
    assert_eq!(cert, PathBuf::from(format!("{db_arg}.selfsigned.crt")));
    let key = PathBuf::from(after(&lines, "  key "));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "key mode {mode:o}");

    // The printed fingerprint is the one openssl computes, and the one served.
    let printed = after(&lines, "SHA-256 fingerprint ").to_string();
    assert_eq!(printed.len(), 95, "{printed}");
    let from_file = file_fingerprint(&cert);
    assert_eq!(from_file.split_once('=').map(|(_, f)| f), Some(&*printed));
    assert_eq!(served_fingerprint(port), from_file);

    // The printed curl, pasted as it is, gets 200 over HTTPS.
    let curl = lines.last().unwrap();
    assert_eq!(
        curl,
        &format!("curl --cacert {} https://{listen}/healthz", cert.display())
    );
    let out = sh(curl, "-s -o /dev/null -w '%{http_code}'");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");

    // The embedded default's signed claim (stdout) goes over HTTPS too.
    use std::io::BufRead;
    let stdout = serving.0.stdout.take().unwrap();
    let mut claim = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut claim)
        .unwrap();
    assert!(
        claim.contains("--cacert") && claim.contains("https://"),
        "{claim}"
    );
    let out = sh(claim.trim_end(), "");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(answer["code"], json!(0), "{out:?}");

    // demo-curl knows the server speaks HTTPS and which certificate to trust.
    let out = Command::new(bin())
        .args(["demo-curl", "--db", db_arg])
        .output()
        .unwrap();
    let again = String::from_utf8_lossy(&out.stdout);
    assert!(again.contains(&format!("https://{listen}/")), "{again}");
    let answer: Value = serde_json::from_slice(&sh(again.trim_end(), "").stdout).unwrap();
    assert_eq!(answer["code"], json!(0), "{answer}");
}

#[test]
fn tls_self_signed_serves_https_beside_a_configured_http_listen() {
    let test = "tls_self_signed_serves_https_beside_a_configured_http_listen";
    if !have_curl_and_openssl(test) {
        return;
    }
    let plain = free_port();
    let (_dir, _db, cfg) = config_file(&format!("http_listen = \"127.0.0.1:{plain}\"\n"));
    let listen = format!("127.0.0.1:{}", free_port());
    let (_serving, lines) = serve_until_check_line(&[
        "--tls-self-signed",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        &listen,
    ]);
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("listening on https://{listen}")),
        "{text}"
    );
    // HTTPS on listen, with the certificate the server printed.
    let curl = lines.last().unwrap();
    let out = sh(curl, "-s -o /dev/null -w '%{http_code}'");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    // Plain HTTP beside it, on http_listen.
    let out = sh(
        &format!("curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{plain}/healthz"),
        "",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
}

#[test]
fn http_listen_without_https_on_listen_is_a_one_line_error() {
    let (_dir, db, cfg) = config_file(&format!("http_listen = \"127.0.0.1:{}\"\n", free_port()));
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("http_listen: only with HTTPS on listen (tls_cert and tls_key, or serve --tls-self-signed)"),
        "{stderr}"
    );
    assert!(!db.exists(), "the database was created");
}

#[test]
fn tls_self_signed_beside_a_configured_certificate_is_a_one_line_error() {
    let dir = TempDir::new();
    let tls = tls_lines(&dir.path().join("c.pem"), &dir.path().join("k.pem"));
    let (cfg_dir, db, cfg) = config_file(&tls);
    let out = Command::new(bin())
        .args(["serve", "--tls-self-signed", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--tls-self-signed"), "{stderr}");
    assert!(stderr.contains("tls_cert"), "{stderr}");
    assert!(!db.exists(), "the database was created");
    let left: Vec<_> = std::fs::read_dir(cfg_dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("ledger.toml")]);
}
