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

/// The soft open-files limit of process `pid`, read from `/proc`.
fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `coupon-ledger serve` with at most [`NOFILE`] descriptors; its stderr
/// (warnings and above) is collected into the returned lines.
fn serve_limited(cfg: &std::path::Path, port: u16) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
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
    match open_files_limit(server.child.id()) {
        Some(n) if n == u64::from(NOFILE) => {}
        other => {
            eprintln!(
                "SKIPPED accept_survives_fd_exhaustion: the server's open-files limit is {other:?}, \
                 not {NOFILE} (no /proc, or `ulimit -n` did not apply), so it cannot be exhausted here"
            );
            return;
        }
    }

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
