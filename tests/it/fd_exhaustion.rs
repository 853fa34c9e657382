//! The accept loop survives running out of file descriptors (EMFILE).
//!
//! The server runs as its own process with a low open-files limit (set by
//! `sh -c 'ulimit -n …; exec …'`), so exhausting its descriptors cannot starve
//! the other tests of this binary. The test holds idle connections until the
//! server's accept fails, checks the failure was logged, frees them, and
//! expects the connection that waited in the backlog to be served.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// The open-files limit of the server process: room for its database, log
/// and listener, and a few dozen connections.
const NOFILE: u32 = 64;

/// The first line the shell writes before starting the server: the
/// open-files limit the server inherits, as the shell applied it.
const LIMIT_LINE: &str = "open-files limit:";

/// `coupon-ledger serve` with at most [`NOFILE`] descriptors; its stderr
/// (warnings and above, after the shell's [`LIMIT_LINE`]) is collected into
/// the returned lines. The limit is lowered in the child only, whatever the
/// limit of the test run, so the test always runs.
fn serve_limited(cfg: &std::path::Path, port: u16) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {NOFILE} && echo \"{LIMIT_LINE} $(ulimit -n)\" >&2 && exec \"$0\" \"$@\""
        ))
        .arg(bin())
        .args(["serve", "--config"])
        .arg(cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("COUPON_LEDGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

#[test]
fn accept_survives_fd_exhaustion() {
    let (_dir, _db, cfg) = config_file("");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (child, log) = serve_limited(&cfg, port);
    // Killed on drop, also when an assertion fails.
    let mut server = BinServer { child, addr };
    let up = wait_until(Duration::from_secs(20), || TcpStream::connect(addr).is_ok());
    assert!(up, "server did not come up on {addr}");
    wait_until(Duration::from_secs(5), || !log.lock().unwrap().is_empty());
    let applied = log.lock().unwrap().first().cloned().unwrap_or_default();
    assert_eq!(
        applied,
        format!("{LIMIT_LINE} {NOFILE}"),
        "the server's open-files limit was not lowered, so it cannot be exhausted"
    );

    // Hold connections open until the server has no descriptor left to
    // accept with: then a connection waits in the backlog and accept fails.
    let accept_failed = || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("accept failed"))
    };
    let mut held = Vec::new();
    for _ in 0..(2 * NOFILE) {
        held.push(TcpStream::connect(addr).unwrap());
        if accept_failed() {
            break;
        }
    }
    let saw_error = wait_until(Duration::from_secs(5), accept_failed);
    assert!(
        saw_error,
        "no accept error was logged with {} connections held; log: {:?}",
        held.len(),
        log.lock().unwrap()
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited when it ran out of descriptors"
    );

    // This connection waits in the backlog until descriptors come back.
    let mut client = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    drop(held);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
