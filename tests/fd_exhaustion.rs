//! The accept loop survives running out of file descriptors (EMFILE).
//! Its own test binary (process), since it exhausts the process's fds.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coupon_ledger::http::{Handler, Limits, Request, Response, Server};
use parking_lot::Mutex;

/// Captures warnings so the test can see the accept errors were logged.
struct CaptureLog {
    lines: Mutex<Vec<String>>,
}

impl log::Log for CaptureLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.lines.lock().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static LOG: CaptureLog = CaptureLog {
    lines: Mutex::new(Vec::new()),
};

#[test]
fn accept_survives_fd_exhaustion() {
    log::set_logger(&LOG).unwrap();
    log::set_max_level(log::LevelFilter::Warn);

    let handler: Handler =
        Arc::new(|req: &Request| Response::new(200, "text/plain", req.path.clone().into_bytes()));
    let server = Server::start("127.0.0.1:0", Limits::default(), handler).unwrap();
    let addr = server.local_addr();

    // Use up every file descriptor.
    let mut files = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(_) => break,
        }
        if files.len() > 200_000 {
            eprintln!("fd limit too high to exhaust quickly; skipping");
            return;
        }
    }
    // Free exactly one, for the client's socket: the server's accept then
    // has none and fails with EMFILE while the connection waits in the backlog.
    files.pop();
    let t = Instant::now();
    let mut client = TcpStream::connect(addr).unwrap();
    let saw_error = {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            if LOG.lines.lock().iter().any(|l| l.contains("accept failed")) {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    drop(files);
    assert!(saw_error, "no accept error was logged");

    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(b"GET /alive HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("/alive"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    server.shutdown();
}
