//! Integration tests of the HTTP layer over real TCP on 127.0.0.1:0.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coupon_ledger::http::{Handler, Limits, Request, Response, Server};

use crate::common::wait_until;

/// Echo handler: the request body if any, else "METHOD PATH QUERY".
/// `/panic` panics; `/slow` sleeps 300 ms.
fn echo_handler() -> Handler {
    Arc::new(|req: &Request| {
        match req.path.as_str() {
            "/panic" => panic!("test panic"),
            "/slow" => thread::sleep(Duration::from_millis(300)),
            _ => {}
        }
        let body = if req.body.is_empty() {
            format!("{} {} {}", req.method, req.path, req.query).into_bytes()
        } else {
            req.body.clone()
        };
        Response::new(200, "text/plain", body)
            .with_header("X-Body-Len", &req.body.len().to_string())
            .with_header("X-Name", &req.query_param("name").unwrap_or_default())
    })
}

fn start(limits: Limits) -> Server {
    Server::start("127.0.0.1:0", limits, echo_handler()).unwrap()
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn read(&mut self) -> io::Result<Resp> {
        read_response(&mut self.reader, false)
    }

    fn read_head_only(&mut self) -> io::Result<Resp> {
        read_response(&mut self.reader, true)
    }

    /// True when the server closed the connection (EOF or reset) in time.
    fn closed_within(&mut self, limit: Duration) -> bool {
        self.reader.get_ref().set_read_timeout(Some(limit)).unwrap();
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }
}

fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> io::Result<Resp> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
    let status: u16 = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (n, v) = trimmed.split_once(':').unwrap();
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_only && status >= 200 {
        let len: usize = resp
            .header("Content-Length")
            .unwrap_or("0")
            .parse()
            .unwrap();
        resp.body = vec![0u8; len];
        reader.read_exact(&mut resp.body)?;
    }
    Ok(resp)
}

/// One request on a fresh connection.
fn roundtrip(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read().unwrap()
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    roundtrip(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn assert_error(resp: &Resp, status: u16, code: u64) {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    let v = resp.json();
    assert_eq!(v["code"].as_u64(), Some(code), "body: {v}");
    assert!(v["message"].is_string());
}

#[test]
fn get_and_post_echo() {
    let server = start(Limits::default());
    let r = get(server.local_addr(), "/a/b?name=J%C3%B6rg+X&x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "GET /a/b name=J%C3%B6rg+X&x=1");
    assert_eq!(r.header("X-Name"), Some("Jörg X"));
    assert_eq!(r.header("Connection"), Some("close"));

    let r = roundtrip(
        server.local_addr(),
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.header("Connection"), None);

    // POST without any length: empty body.
    let r = roundtrip(server.local_addr(), b"POST /e HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Body-Len"), Some("0"));
    server.shutdown();
}

#[test]
fn keep_alive_two_requests() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read().unwrap().text(), "GET /one ");
    c.send(b"POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read().unwrap().text(), "abc");
    c.send(b"GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.text(), "GET /three ");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));
}

#[test]
fn pipelining_in_order() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(
        b"POST /one HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirstGET /two?q HTTP/1.1\r\nHost: t\r\n\r\nPOST /three HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nend\r\n0\r\n\r\n",
    );
    assert_eq!(c.read().unwrap().text(), "first");
    assert_eq!(c.read().unwrap().text(), "GET /two q");
    assert_eq!(c.read().unwrap().text(), "end");
}

#[test]
fn http10_closes_unless_keep_alive() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));

    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read().unwrap();
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    c.send(b"GET /b HTTP/1.0\r\n\r\n");
    assert_eq!(c.read().unwrap().text(), "GET /b ");
}

#[test]
fn head_has_no_body() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_head_only().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("8")); // "HEAD /h "
                                                       // Had a body been sent, it would be read as the next status line.
    c.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read().unwrap().text(), "GET /next ");
}

#[test]
fn huge_content_length_is_413_and_server_survives() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 200000000000000000\r\n\r\n");
    let r = c.read().unwrap();
    assert_error(&r, 413, 41300);
    assert_eq!(
        r.json()["message"].as_str(),
        Some("body too large: limit is 65536 bytes")
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(3)));
    assert_eq!(get(server.local_addr(), "/after").status, 200);

    // Overflowing and non-numeric lengths are malformed.
    for cl in ["99999999999999999999999", "12abc", "-1"] {
        let raw = format!("POST /x HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
        assert_error(&roundtrip(server.local_addr(), raw.as_bytes()), 400, 40000);
    }
    let r = roundtrip(
        server.local_addr(),
        b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_error(&r, 400, 40000);
    assert_eq!(get(server.local_addr(), "/still").status, 200);
}

#[test]
fn body_limit_boundary() {
    let server = start(Limits::default());
    let exact = vec![b'a'; 64 * 1024];
    let mut raw = format!(
        "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        exact.len()
    )
    .into_bytes();
    raw.extend_from_slice(&exact);
    let r = roundtrip(server.local_addr(), &raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, exact);

    let over = vec![b'a'; 64 * 1024 + 1];
    let mut raw = format!(
        "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        over.len()
    )
    .into_bytes();
    raw.extend_from_slice(&over);
    let mut c = Client::connect(server.local_addr());
    let _ = c.stream.write_all(&raw); // the server may close early
    assert_error(&c.read().unwrap(), 413, 41300);
}

#[test]
fn header_flood_and_too_many_headers_are_431() {
    let server = start(Limits::default());
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..40 {
        raw.push_str(&format!("X-Fill-{i}: {}\r\n", "a".repeat(500)));
    }
    raw.push_str("\r\n");
    assert!(raw.len() > 20 * 1024);
    let mut c = Client::connect(server.local_addr());
    let _ = c.stream.write_all(raw.as_bytes());
    let r = c.read().unwrap();
    assert_error(&r, 431, 43100);
    assert_eq!(r.json()["message"], "request headers too large");

    let mut raw = String::from("GET / HTTP/1.1\r\n");
    for i in 0..100 {
        raw.push_str(&format!("X-H{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert_error(&roundtrip(server.local_addr(), raw.as_bytes()), 431, 43100);

    // A single never-ending header line.
    let mut c = Client::connect(server.local_addr());
    let mut raw = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    raw.extend(std::iter::repeat_n(b'b', 16 * 1024));
    let _ = c.stream.write_all(&raw);
    assert_error(&c.read().unwrap(), 431, 43100);
}

#[test]
fn idle_connections_do_not_block_new_clients() {
    let server = start(Limits::default());
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // One address holds at most 256; the rest took the place of the oldest idle ones.
    assert!(
        wait_until(Duration::from_secs(10), || server.active_connections()
            >= 250),
        "only {} connections live",
        server.active_connections()
    );
    let t = Instant::now();
    let r = get(server.local_addr(), "/fresh");
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    drop(idle);
    assert!(wait_until(Duration::from_secs(5), || server
        .active_connections()
        == 0));
}

/// A connection in the middle of sending a request: not idle.
fn busy_client(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n");
    c
}

#[test]
fn connection_cap_answers_503_when_no_connection_is_idle() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let server = start(limits);
    let mut held: Vec<Client> = (0..4).map(|_| busy_client(server.local_addr())).collect();
    // Busy means the server has read the start of their requests.
    assert!(wait_until(Duration::from_secs(5), || server
        .active_connections()
        == 4
        && server.idle_connections() == 0));
    let mut fifth = Client::connect(server.local_addr());
    let r = fifth.read().unwrap();
    assert_error(&r, 503, 50300);
    assert_eq!(
        r.json()["message"].as_str(),
        Some("server busy: too many connections")
    );
    assert_eq!(r.header("Connection"), Some("close"));

    // Freeing one slot lets a new client in.
    held.pop();
    let ok = wait_until(Duration::from_secs(5), || {
        let mut c = Client::connect(server.local_addr());
        c.send(b"GET /again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        matches!(c.read(), Ok(r) if r.status == 200)
    });
    assert!(ok);
}

#[test]
fn at_the_cap_a_new_client_takes_the_place_of_the_longest_idle_connection() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let server = start(limits);
    let mut idle: Vec<Client> = (0..4)
        .map(|i| {
            let mut c = Client::connect(server.local_addr());
            c.send(format!("GET /idle{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            assert_eq!(c.read().unwrap().status, 200);
            thread::sleep(Duration::from_millis(5));
            c
        })
        .collect();
    let mut fifth = Client::connect(server.local_addr());
    fifth.send(b"GET /fifth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(fifth.read().unwrap().status, 200);
    // The first one, idle the longest, was closed to make room.
    let mut first = idle.remove(0);
    first.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        first.read().is_err(),
        "the longest-idle connection should be closed"
    );
}

#[test]
fn one_address_cannot_take_more_than_its_share() {
    let limits = Limits {
        max_connections_per_ip: 3,
        ..Limits::default()
    };
    let server = start(limits);
    let _held: Vec<Client> = (0..3).map(|_| busy_client(server.local_addr())).collect();
    assert!(wait_until(Duration::from_secs(5), || server
        .active_connections()
        == 3
        && server.idle_connections() == 0));
    let mut fourth = Client::connect(server.local_addr());
    assert_error(&fourth.read().unwrap(), 503, 50300);
}

#[test]
fn slowloris_gets_408() {
    let limits = Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start(limits);
    let mut c = Client::connect(server.local_addr());
    c.stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    let mut got = Vec::new();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(3) {
        let _ = c.stream.write_all(b"X-A: b\r\n");
        let mut buf = [0u8; 1024];
        match c.stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        if got.ends_with(b"}") {
            break;
        }
    }
    let elapsed = start.elapsed();
    // The server lingers after its answer, so the 408 is readable even while
    // the client keeps sending: closing without it is a failure.
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "no 408 after {elapsed:?} (closed: {closed}): {text:?}"
    );
    assert!(text.contains("\"code\":40800"), "{text}");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(get(server.local_addr(), "/ok").status, 200);
}

#[test]
fn slow_body_gets_408() {
    let limits = Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start(limits);
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    let t = Instant::now();
    assert_error(&c.read().unwrap(), 408, 40800);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn idle_keep_alive_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = start(limits);
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read().unwrap().status, 200);
    let t = Instant::now();
    assert!(c.closed_within(Duration::from_secs(3)));
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // A connection that never sends anything is closed too.
    let mut silent = Client::connect(server.local_addr());
    assert!(silent.closed_within(Duration::from_secs(3)));
}

#[test]
fn malformed_requests_are_400() {
    let server = start(Limits::default());
    let r = roundtrip(server.local_addr(), b"NOT A REQUEST\r\n\r\n");
    assert_error(&r, 400, 40000);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("malformed HTTP request: "), "{msg}");
    assert_eq!(r.header("Connection"), Some("close"));

    assert_error(
        &roundtrip(server.local_addr(), b"\x01\x02garbage\r\n\r\n"),
        400,
        40000,
    );
    assert_error(
        &roundtrip(server.local_addr(), b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        400,
        40000,
    );
    assert_error(
        &roundtrip(server.local_addr(), b"GET / HTTP/2.0\r\n\r\n"),
        505,
        50500,
    );
    assert_eq!(get(server.local_addr(), "/fine").status, 200);
}

#[test]
fn chunked_bodies() {
    let server = start(Limits::default());
    let r = roundtrip(
        server.local_addr(),
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");

    // One huge chunk: refused from its size line alone.
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n");
    assert_error(&c.read().unwrap(), 413, 41300);

    // Many small chunks adding up past the cap.
    let mut raw = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..70 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend(std::iter::repeat_n(b'z', 1024));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut c = Client::connect(server.local_addr());
    let _ = c.stream.write_all(&raw);
    assert_error(&c.read().unwrap(), 413, 41300);

    // Bad chunk framing.
    assert_error(
        &roundtrip(
            server.local_addr(),
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        ),
        400,
        40000,
    );
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let server = start(Limits::default());
    let r = roundtrip(
        server.local_addr(),
        b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_error(&r, 400, 40000);
    let r = roundtrip(
        server.local_addr(),
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    );
    assert_error(&r, 501, 50100);
}

#[test]
fn expect_100_continue() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");

    // Over the limit: 413 straight away, no 100.
    let mut c = Client::connect(server.local_addr());
    c.send(
        b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_error(&c.read().unwrap(), 413, 41300);
}

#[test]
fn handler_panic_is_500_and_server_lives() {
    let server = start(Limits::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read().unwrap();
    assert_error(&r, 500, 50000);
    assert_eq!(r.json()["message"], "internal error");
    c.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read().unwrap().text(), "GET /after ");
    assert_eq!(get(server.local_addr(), "/new").status, 200);
}

#[test]
fn shutdown_finishes_in_flight_and_stops_accepting() {
    let entered = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&entered);
    let handler: Handler = Arc::new(move |req: &Request| {
        if req.path == "/slow" {
            flag.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(300));
        }
        Response::json(200, &serde_json::json!({ "path": req.path }))
    });
    let server = Server::start("127.0.0.1:0", Limits::default(), handler).unwrap();
    let addr = server.local_addr();

    // An idle keep-alive connection must not hold shutdown up.
    let mut idle = Client::connect(addr);
    idle.send(b"GET /idle HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.read().unwrap().status, 200);

    let in_flight = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        c.read().unwrap()
    });
    assert!(wait_until(Duration::from_secs(5), || entered.load(Ordering::SeqCst)));

    let t = Instant::now();
    server.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/slow");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(idle.closed_within(Duration::from_secs(2)));
    assert!(TcpStream::connect(addr).is_err(), "port still accepting");
}

#[test]
fn shutdown_handle_ends_join() {
    let server = start(Limits::default());
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let joiner = thread::spawn(move || server.join());
    assert_eq!(get(addr, "/x").status, 200);
    handle.shutdown();
    joiner.join().unwrap();
    assert!(TcpStream::connect(addr).is_err());
}
