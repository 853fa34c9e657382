//! `coupon-ledger bench`: a load generator over raw keep-alive TCP, signing
//! with `sign.rs`. The server never uses it.
//!
//! - Self-contained ([`run_self_contained`]): starts two servers in-process on
//!   temp databases (one with group commit, one with `write_batch_max = 1`),
//!   creates a bench partner and a big running stock, runs every row of the
//!   table at each connection count, checks that each stock issued exactly the
//!   claims that succeeded, and removes the databases. The group-commit server
//!   speaks HTTPS on `listen` (a self-signed certificate) and plain HTTP on
//!   `http_listen`, so the `-tls` rows and the plain rows measure one server.
//! - Against a running server ([`run_target`]): one mode, one connection count.
//!
//! Measuring is done here; nothing in the test suite asserts a figure.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Map, Value};

use crate::app::{self, Running};
use crate::config::{Config, Partner};
use crate::domain::coupon::random_hex;
use crate::domain::ids::{Issuer, Name, RequestId, StockId, UserCode};
use crate::domain::ledger::{ClaimRequest, Origin, Source};
use crate::domain::stock::{CouponKind, StockDraft, StockSpec, StockStatus};
use crate::domain::time::now_ms;
use crate::sign::{self, SignRule};
use crate::store::{check_database_to, CheckDepth, NonceUse, Store};

mod events;

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signed `/sp/coupon/receive`, a new user and request id each time (durable writes).
    Claim,
    /// Signed `/sp/stock/query` (a nonce write and a read).
    Query,
    /// `GET /healthz` (reads only).
    Healthz,
    /// `GET /livez` (no database).
    Livez,
    /// `GET /bench-ceiling`, a path no route serves: the router answers 404
    /// without touching the database, so this is what HTTP alone costs.
    Ceiling,
}

impl Mode {
    /// The `--mode` word.
    pub fn parse(word: &str) -> Result<Mode, String> {
        match word {
            "claim" => Ok(Mode::Claim),
            "query" => Ok(Mode::Query),
            "healthz" => Ok(Mode::Healthz),
            "livez" => Ok(Mode::Livez),
            "ceiling" => Ok(Mode::Ceiling),
            other => Err(format!(
                "--mode: {other:?} is not claim, query, healthz, livez or ceiling"
            )),
        }
    }

    /// Whether an answer counts as a success: HTTP 200 with code 0, except the
    /// ceiling, whose every answer is meant to be a 404.
    fn success(self, status: u16, code: Option<i64>) -> bool {
        match self {
            Mode::Ceiling => status == 404,
            _ => status == 200 && code == Some(0),
        }
    }

    /// Whether requests must be signed by a partner.
    pub fn signed(self) -> bool {
        matches!(self, Mode::Claim | Mode::Query)
    }
}

/// A server to drive and the partner and stock to use on it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    pub api_key: String,
    pub secret: String,
    pub stock_id: String,
    pub app_channel_id: i64,
}

/// What one load measured.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    /// Requests answered or broken off (a refused connect is not a request).
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Failures by protocol code (`"code":N` of the answer), `httpNNN` for an
    /// answer without a code, `io` for transport errors.
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Why a connection could not be made, the first time it could not.
    pub connect_error: Option<String>,
    /// CPU time the run cost this process outside the bench's own client
    /// threads, and the ledger writers' share of it (Linux only).
    pub cpu: Option<CpuUse>,
}

/// CPU time spent while a row ran, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUse {
    /// Every thread of the process but the bench's clients: in a
    /// self-contained run, the servers (HTTP threads, writers, checkpointers).
    pub server_ns: u64,
    /// The threads named `ledger-writer`: the writers alone.
    pub writer_ns: u64,
}

impl Measure {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency below which `p` (0..=1) of requests finished, in microseconds.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)]
    }

    fn ms(&self, p: f64) -> f64 {
        self.percentile(p) as f64 / 1000.0
    }

    /// Microseconds of server CPU and of writer CPU per request.
    fn cpu_per_request(&self) -> Option<(f64, f64)> {
        let cpu = self.cpu?;
        let n = self.requests.max(1) as f64;
        Some((
            cpu.server_ns as f64 / 1e3 / n,
            cpu.writer_ns as f64 / 1e3 / n,
        ))
    }

    /// `40903:12 io:3`, or `-` when nothing failed.
    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "-".into();
        }
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        parts.join(" ")
    }

    /// The report of a run against `--target`, one line per figure.
    pub fn render(&self, mode: Mode, connections: usize) -> String {
        let mut s = format!(
            "mode {mode:?} · {connections} connections · {:.1} s\nrequests {} · errors {} · throughput {:.0} req/s\nlatency p50 {:.2} ms · p99 {:.2} ms · p99.9 {:.2} ms · max {:.2} ms",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.error_count(),
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.ms(0.999),
            self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        );
        if !self.errors.is_empty() {
            let _ = write!(s, "\nerrors by code: {}", self.error_summary());
        }
        if let Some(why) = &self.connect_error {
            let _ = write!(s, "\nfirst connection error: {why}");
        }
        s
    }
}

/// What one request came to.
enum Outcome {
    Ok,
    /// Answered, but not a success: the code, `httpNNN` or `io`.
    Failed(String),
}

/// Requests each row builds (and signs) before its clock starts, per second
/// of the row, over all its connections: more than any row sends on 2 cores.
/// A client that runs out builds the rest as it goes.
const AHEAD_PER_SECOND: u64 = 30_000;
/// At most this many for one row: about 60 MB of signed HTTP requests.
const AHEAD_MAX: u64 = 150_000;

/// One load-generating thread's way of sending requests.
trait Client: Send {
    /// Builds requests `0..count` before the row is timed, as a load
    /// generator whose bodies are made in advance: signing them while the
    /// row ran took CPU the server shares on a small machine.
    fn build_ahead(&mut self, count: u64);
    /// Gets request `n` ready (connects, builds and signs it), outside the
    /// timed part. `Err`: why the server cannot be reached now.
    fn prepare(&mut self, n: u64) -> Result<(), String>;
    /// Sends what `prepare` built and waits for the outcome.
    fn call(&mut self) -> Outcome;
}

/// Requests `0..count` of a signed mode; none for the others, whose
/// request never changes.
fn build_ahead(t: &Target, mode: Mode, worker: usize, run: &str, count: u64) -> VecDeque<Vec<u8>> {
    match mode.signed() {
        true => (0..count)
            .map(|n| request(t, mode, worker, n, run))
            .collect(),
        false => VecDeque::new(),
    }
}

/// Puts the next request in `next`: the next one built ahead, or the one of
/// an unsigned mode again (it never changes), or else a new one.
fn next_request(
    next: &mut Vec<u8>,
    ahead: &mut VecDeque<Vec<u8>>,
    mode: Mode,
    build: impl FnOnce() -> Vec<u8>,
) {
    if let Some(built) = ahead.pop_front() {
        *next = built;
    } else if mode.signed() || next.is_empty() {
        *next = build();
    }
}

/// What an answer (or a transport error) comes to for `mode`.
fn outcome(mode: Mode, answer: std::io::Result<(u16, Option<i64>)>) -> Outcome {
    match answer {
        Ok((status, code)) if mode.success(status, code) => Outcome::Ok,
        Ok((status, code)) => Outcome::Failed(match code {
            Some(c) => c.to_string(),
            None => format!("http{status}"),
        }),
        Err(_) => Outcome::Failed("io".into()),
    }
}

/// Where the HTTPS rows connect, and the client settings they use.
#[derive(Clone)]
struct TlsTarget {
    /// The partner and stock as for plain HTTP; `addr` is the HTTPS listener.
    target: Target,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsTarget {
    /// Trusts only `trusted`: the server's self-signed certificate, or the
    /// certificates of a `--cacert` file. Session resumption is off: every
    /// new connection makes a full handshake, which is what `handshake-tls`
    /// counts.
    fn new(target: Target, trusted: &[CertificateDer<'static>]) -> Result<TlsTarget, String> {
        let mut roots = RootCertStore::empty();
        for cert in trusted {
            roots
                .add(cert.clone())
                .map_err(|e| format!("bench certificate: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("bench TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        let host = target.addr.rsplit_once(':').map_or("", |(h, _)| h);
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| format!("bench TLS server name {host:?}: {e}"))?;
        Ok(TlsTarget {
            target,
            config: Arc::new(config),
            name,
        })
    }

    /// A new connection with its handshake done.
    fn connect(&self) -> std::io::Result<BufReader<TlsStream>> {
        let sock = TcpStream::connect(&self.target.addr)?;
        let _ = sock.set_nodelay(true);
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let conn = ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(std::io::Error::other)?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(BufReader::new(stream))
    }

    /// The protocol, cipher suite and key exchange a connection agrees on,
    /// for the line under the table.
    fn describe(&self) -> Result<String, String> {
        let r = self
            .connect()
            .map_err(|e| format!("cannot reach the bench's HTTPS listener: {e}"))?;
        let conn = &r.get_ref().conn;
        let show = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        Ok(format!(
            "{}, {}, key exchange {}",
            show(conn.protocol_version().map(|v| format!("{v:?}"))),
            show(
                conn.negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
            ),
            show(
                conn.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
            ),
        ))
    }
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// An HTTPS client: one keep-alive connection whose handshake is made
/// outside the timed part, or (`per_request`) a new connection and a full
/// handshake inside every timed request.
struct TlsClient {
    tls: TlsTarget,
    mode: Mode,
    per_request: bool,
    worker: usize,
    run: String,
    conn: Option<BufReader<TlsStream>>,
    next: Vec<u8>,
    /// Requests built ahead, from the next one on.
    ahead: VecDeque<Vec<u8>>,
}

impl TlsClient {
    fn exchange(r: &mut BufReader<TlsStream>, req: &[u8]) -> std::io::Result<(u16, Option<i64>)> {
        let s = r.get_mut();
        s.write_all(req)?;
        s.flush()?;
        read_answer(r)
    }

    /// Connect, handshake, one request, close (with close_notify).
    fn once(&self) -> std::io::Result<(u16, Option<i64>)> {
        let mut r = self.tls.connect()?;
        let answer = Self::exchange(&mut r, &self.next);
        let s = r.get_mut();
        s.conn.send_close_notify();
        let _ = s.conn.complete_io(&mut s.sock);
        answer
    }
}

impl Client for TlsClient {
    fn build_ahead(&mut self, count: u64) {
        self.ahead = build_ahead(&self.tls.target, self.mode, self.worker, &self.run, count);
    }

    fn prepare(&mut self, n: u64) -> Result<(), String> {
        if !self.per_request && self.conn.is_none() {
            let conn = self
                .tls
                .connect()
                .map_err(|e| format!("HTTPS connection to {}: {e}", self.tls.target.addr))?;
            self.conn = Some(conn);
        }
        next_request(&mut self.next, &mut self.ahead, self.mode, || {
            request(&self.tls.target, self.mode, self.worker, n, &self.run)
        });
        Ok(())
    }

    fn call(&mut self) -> Outcome {
        if self.per_request {
            return outcome(self.mode, self.once());
        }
        let Some(r) = self.conn.as_mut() else {
            return Outcome::Failed("io".into());
        };
        let answer = Self::exchange(r, &self.next);
        if answer.is_err() {
            self.conn = None;
        }
        outcome(self.mode, answer)
    }
}

/// Claims through [`Store::claim`] directly, as the platform handler does
/// after HTTP and authentication: a nonce and a claim in one write job.
struct StoreClient {
    store: Store,
    target: Target,
    worker: usize,
    run: String,
    next: Option<(NonceUse, ClaimRequest, Origin)>,
    ahead: VecDeque<(NonceUse, ClaimRequest, Origin)>,
}

impl StoreClient {
    /// The nonce, claim and origin of call `n`.
    fn build(&self, n: u64) -> Result<(NonceUse, ClaimRequest, Origin), String> {
        let (run, w) = (&self.run, self.worker);
        let nonce = NonceUse {
            api_key: self.target.api_key.clone(),
            nonce: format!("d{run}{w}x{n}"),
        };
        let name = format!("d{run}{w}x{n}");
        let (Ok(stock_id), Ok(user_code), Ok(request_id)) = (
            StockId::parse(self.target.stock_id.clone()),
            UserCode::parse(name.clone()),
            RequestId::parse(name),
        ) else {
            return Err(format!("stock {:?}: not a stock id", self.target.stock_id));
        };
        let req = ClaimRequest {
            stock_id,
            app_channel_id: self.target.app_channel_id,
            user_code,
            mobile_masked: None,
            request_id,
            issuer: Issuer::Partner(self.target.api_key.clone()),
        };
        let origin = Origin {
            source: Source::Platform,
            seq_id: Some(format!("bench-d{run}-{w}-{n}")),
            now: now_ms(),
            operator: None,
        };
        Ok((nonce, req, origin))
    }
}

impl Client for StoreClient {
    fn build_ahead(&mut self, count: u64) {
        self.ahead = (0..count).map_while(|n| self.build(n).ok()).collect();
    }

    fn prepare(&mut self, n: u64) -> Result<(), String> {
        self.next = Some(match self.ahead.pop_front() {
            Some(built) => built,
            None => self.build(n)?,
        });
        Ok(())
    }

    fn call(&mut self) -> Outcome {
        let Some((nonce, req, origin)) = self.next.take() else {
            return Outcome::Failed("io".into());
        };
        match self.store.claim(Some(nonce), req, origin) {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.code().to_string()),
        }
    }
}

fn request(t: &Target, mode: Mode, worker: usize, n: u64, run: &str) -> Vec<u8> {
    let (method, path, body) = match mode {
        Mode::Healthz => ("GET", "/healthz", String::new()),
        Mode::Livez => ("GET", "/livez", String::new()),
        Mode::Ceiling => ("GET", "/bench-ceiling", String::new()),
        Mode::Claim | Mode::Query => {
            let mut m = Map::new();
            m.insert("api_key".into(), json!(t.api_key));
            m.insert("seq_id".into(), json!(format!("bench-{run}-{worker}-{n}")));
            m.insert("timestamp".into(), json!((now_ms() / 1000).to_string()));
            m.insert("nonce".into(), json!(format!("{run}{worker}x{n}")));
            m.insert("stock_id".into(), json!(t.stock_id));
            let path = if mode == Mode::Claim {
                m.insert("app_channel_id".into(), json!(t.app_channel_id));
                m.insert("user_code".into(), json!(format!("b{run}{worker}x{n}")));
                m.insert("request_id".into(), json!(format!("{run}{worker}x{n}")));
                "/sp/coupon/receive"
            } else {
                "/sp/stock/query"
            };
            let s = sign::sign(&m, &SignRule::default(), &t.secret);
            m.insert("sign".into(), json!(s));
            ("POST", path, Value::Object(m).to_string())
        }
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        t.addr,
        body.len()
    )
    .into_bytes()
}

/// Reads one answer: its HTTP status and the `"code":N` of its body, if any.
/// One request is in flight at a time, so nothing past the answer is read.
fn read_answer(r: &mut impl BufRead) -> std::io::Result<(u16, Option<i64>)> {
    let mut got = Vec::with_capacity(512);
    loop {
        if let Some(answer) = parse_answer(&got) {
            return Ok(answer);
        }
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = chunk.len();
        got.extend_from_slice(chunk);
        r.consume(n);
    }
}

/// The status and `"code"` of a whole answer at the start of `buf`, or
/// `None` while it is incomplete. Answers carry a Content-Length (the
/// server never sends chunked bodies).
fn parse_answer(buf: &[u8]) -> Option<(u16, Option<i64>)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = buf.get(head_end + 4..head_end + 4 + len)?;
    Some((status, protocol_code(body)))
}

/// The number after the first `"code":` of a JSON answer.
fn protocol_code(body: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"code\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &body[at..];
    let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let digits = rest
        .iter()
        .enumerate()
        .take_while(|&(i, b)| b.is_ascii_digit() || (i == 0 && *b == b'-'))
        .count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Where the run is, on stderr, only when stderr is a terminal.
struct Progress {
    on: bool,
    step: usize,
    total: usize,
    label: String,
    connections: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            step: 0,
            total,
            label: String::new(),
            connections: 0,
        }
    }

    fn next(&mut self, label: &str, connections: usize) {
        self.step += 1;
        self.label = label.to_string();
        self.connections = connections;
    }

    fn show(&self, elapsed: Duration) {
        if self.on {
            let _ = write!(
                std::io::stderr().lock(),
                "\r\x1b[K[{}/{}] {} · {} conns · {:.1} s",
                self.step,
                self.total,
                self.label,
                self.connections,
                elapsed.as_secs_f64()
            );
        }
    }

    fn say(&self, what: &str) {
        if self.on {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K{what}");
        }
    }

    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// Runs one client per thread for `duration` and gathers the figures. A
/// request under way at the end is waited for and counted.
fn load<C: Client + 'static>(
    clients: Vec<C>,
    duration: Duration,
    progress: &Progress,
) -> Result<Measure, String> {
    load_while(clients, ahead_for(duration), progress, |elapsed| {
        elapsed < duration
    })
}

/// How many requests a row of `duration` builds ahead, over all its connections.
fn ahead_for(duration: Duration) -> u64 {
    ((duration.as_secs_f64() * AHEAD_PER_SECOND as f64) as u64).min(AHEAD_MAX)
}

/// Like [`load`], for as long as `go_on(elapsed)` says, with `ahead`
/// requests built before the clock starts.
fn load_while<C: Client + 'static>(
    mut clients: Vec<C>,
    ahead: u64,
    progress: &Progress,
    go_on: impl Fn(Duration) -> bool,
) -> Result<Measure, String> {
    if clients.is_empty() {
        return Err("--connections: must be at least 1".into());
    }
    let each = ahead.div_ceil(clients.len() as u64);
    if each > 0 {
        progress.say(&format!("building {ahead} requests ahead ..."));
        in_parallel(&mut clients, |c| c.build_ahead(each));
    }
    let workers = clients
        .into_iter()
        .map(|mut client| -> Worker {
            Box::new(move |stop: &AtomicBool| {
                let mut run = ThreadRun::default();
                let mut n = 0u64;
                let cpu_at_start = cpu::thread_ns();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(why) = client.prepare(n) {
                        *run.errors.entry("io".into()).or_default() += 1;
                        run.first_io.get_or_insert(why);
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    n += 1;
                    let t = Instant::now();
                    let outcome = client.call();
                    run.lat.push(t.elapsed().as_micros() as u64);
                    match outcome {
                        Outcome::Ok => run.ok += 1,
                        Outcome::Failed(k) => *run.errors.entry(k).or_default() += 1,
                    }
                }
                run.cpu = cpu_at_start
                    .zip(cpu::thread_ns())
                    .map(|(a, b)| b.saturating_sub(a));
                run
            })
        })
        .collect();
    drive(workers, progress, go_on)
}

/// Plain HTTP to `t` over `connections` keep-alive connections, driven by
/// one thread per core ([`events`]) for `duration`.
fn load_http(
    t: &Target,
    mode: Mode,
    connections: usize,
    duration: Duration,
    progress: &Progress,
) -> Result<Measure, String> {
    load_http_while(
        t,
        mode,
        connections,
        ahead_for(duration),
        progress,
        |elapsed| elapsed < duration,
    )
}

/// Like [`load_http`], for as long as `go_on(elapsed)` says, with `ahead`
/// requests built before the clock starts.
fn load_http_while(
    t: &Target,
    mode: Mode,
    connections: usize,
    ahead: u64,
    progress: &Progress,
    go_on: impl Fn(Duration) -> bool,
) -> Result<Measure, String> {
    if connections == 0 {
        return Err("--connections: must be at least 1".into());
    }
    let run = random_hex(4)?;
    let mut shares = events::shares(t, mode, &run, connections, cores());
    let each = match mode.signed() {
        true => ahead.div_ceil(connections as u64),
        false => 0,
    };
    progress.say(&format!(
        "connecting{} ...",
        match each {
            0 => String::new(),
            _ => format!(", building {ahead} requests ahead"),
        }
    ));
    in_parallel(&mut shares, |s| s.prepare(each));
    let workers = shares
        .into_iter()
        .map(|share| -> Worker { Box::new(move |stop: &AtomicBool| share.drive(stop)) })
        .collect();
    drive(workers, progress, go_on)
}

/// The machine's cores (2 when it cannot tell).
fn cores() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `f` on every item, the items spread over one thread per core.
fn in_parallel<T: Send>(items: &mut [T], f: impl Fn(&mut T) + Sync) {
    let per_thread = items.len().div_ceil(cores()).max(1);
    let f = &f;
    thread::scope(|s| {
        for part in items.chunks_mut(per_thread) {
            s.spawn(move || part.iter_mut().for_each(f));
        }
    });
}

/// What one load thread measured.
#[derive(Default)]
struct ThreadRun {
    /// Each request's latency, in microseconds.
    lat: Vec<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    first_io: Option<String>,
    /// The thread's own CPU time, in nanoseconds.
    cpu: Option<u64>,
}

/// One load thread's work: it runs until the flag is set, then finishes
/// the requests it has under way.
type Worker = Box<dyn FnOnce(&AtomicBool) -> ThreadRun + Send>;

/// Runs every worker on a thread of its own for as long as `go_on(elapsed)`
/// says, and gathers the figures. A request under way at the end is waited
/// for and counted.
fn drive(
    workers: Vec<Worker>,
    progress: &Progress,
    go_on: impl Fn(Duration) -> bool,
) -> Result<Measure, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu::process_ns().zip(cpu::writers_ns());
    let started = Instant::now();
    let mut threads = Vec::with_capacity(workers.len());
    for (i, work) in workers.into_iter().enumerate() {
        let stopping = stop.clone();
        let spawned = thread::Builder::new()
            .name(format!("bench-{i}"))
            .spawn(move || work(&stopping));
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(format!("cannot start a bench thread: {e}"));
            }
        }
    }
    loop {
        let elapsed = started.elapsed();
        progress.show(elapsed);
        if !go_on(elapsed) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut m = Measure::default();
    let mut clients_ns = Some(0u64);
    for t in threads {
        let run = t
            .join()
            .map_err(|_| "a bench thread panicked".to_string())?;
        clients_ns = clients_ns.zip(run.cpu).map(|(sum, n)| sum + n);
        m.latencies_us.extend(run.lat);
        m.ok += run.ok;
        if m.connect_error.is_none() {
            m.connect_error = run.first_io;
        }
        for (k, n) in run.errors {
            *m.errors.entry(k).or_default() += n;
        }
    }
    m.elapsed = started.elapsed();
    let cpu_after = cpu::process_ns().zip(cpu::writers_ns());
    m.cpu = match (cpu_before, cpu_after, clients_ns) {
        (Some((p0, w0)), Some((p1, w1)), Some(clients)) => Some(CpuUse {
            server_ns: p1.saturating_sub(p0).saturating_sub(clients),
            writer_ns: w1.saturating_sub(w0),
        }),
        _ => None,
    };
    m.latencies_us.sort_unstable();
    m.requests = m.latencies_us.len() as u64;
    Ok(m)
}

fn tls_clients(
    t: &TlsTarget,
    mode: Mode,
    per_request: bool,
    connections: usize,
) -> Result<Vec<TlsClient>, String> {
    let run = random_hex(4)?;
    Ok((0..connections)
        .map(|worker| TlsClient {
            tls: t.clone(),
            mode,
            per_request,
            worker,
            run: run.clone(),
            conn: None,
            next: Vec::new(),
            ahead: VecDeque::new(),
        })
        .collect())
}

/// Drives a running server with one mode at one connection count.
pub fn run_target(
    target: &Target,
    https: Option<&Path>,
    mode: Mode,
    connections: usize,
    duration: Duration,
) -> Result<Measure, String> {
    let tls = match https {
        Some(cacert) => Some(TlsTarget::new(
            target.clone(),
            &crate::http::read_certs(cacert, "--cacert")?,
        )?),
        None => None,
    };
    let mut progress = Progress::new(1);
    progress.next(&format!("{mode:?}").to_lowercase(), connections);
    let m = match &tls {
        Some(tls) => load(
            tls_clients(tls, mode, false, connections)?,
            duration,
            &progress,
        ),
        None => load_http(target, mode, connections, duration, &progress),
    };
    progress.clear();
    m
}

/// Settings of a self-contained run.
#[derive(Debug, Clone)]
pub struct SelfContained {
    /// Each row runs once at each of these.
    pub connections: Vec<usize>,
    /// How long each row runs.
    pub duration: Duration,
    /// Coupons pre-filled into each server's stock before measuring (0: none).
    pub scale: u64,
    /// Coupons the claim+sweep row has the sweeper expire while claims run
    /// (0: no such row).
    pub sweep: u64,
    /// The rows to run, in table order.
    pub rows: Vec<&'static str>,
    /// How many times every row runs (in whole rounds); the table gives
    /// each row's median run and the spread.
    pub repeat: usize,
}

/// The rows named in `--rows` (every row when `None`), in table order; the
/// HTTP ceiling always runs, since every row is compared with it.
pub fn pick_rows(list: Option<&str>) -> Result<Vec<&'static str>, String> {
    let Some(list) = list else {
        return Ok(ROWS.iter().map(|(name, _)| *name).collect());
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    if let Some(bad) = wanted
        .iter()
        .find(|w| !ROWS.iter().any(|(name, _)| name == *w))
    {
        let names: Vec<&str> = ROWS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "--rows: {bad:?} is not a row (rows: {})",
            names.join(", ")
        ));
    }
    Ok(ROWS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| *name == "http-ceiling" || wanted.contains(name))
        .collect())
}

/// What a self-contained run prints, and what went wrong in it.
#[derive(Debug, Clone)]
pub struct SelfReport {
    /// The table and the lines after it, for stdout.
    pub text: String,
    /// Failed checks (issued count, `check`); not empty means exit 1.
    pub problems: Vec<String>,
}

/// The rows of the table, in the order they run at each connection count.
pub const ROWS: [(&str, &str); 10] = [
    (
        "http-ceiling",
        "GET /bench-ceiling, answered 404 by the router with no database work (a 404 counts as success here only)",
    ),
    ("healthz", "GET /healthz"),
    (
        "claim",
        "signed /sp/coupon/receive, a new user and request_id each: one durable write each",
    ),
    (
        "query",
        "signed /sp/stock/query: a nonce write and a read",
    ),
    (
        "claim-no-group",
        "claim against a second server with write_batch_max = 1: one commit per job, group commit off",
    ),
    (
        "writer-direct",
        "Store::claim (nonce + claim) from as many threads, no HTTP: the ledger's own ceiling",
    ),
    (
        "ceiling-tls",
        "http-ceiling over HTTPS keep-alive connections (handshakes before timing): what TLS adds to HTTP alone",
    ),
    (
        "claim-tls",
        "claim over HTTPS keep-alive connections, on the same server as claim",
    ),
    (
        "query-tls",
        "query over HTTPS keep-alive connections, on the same server as query",
    ),
    (
        "handshake-tls",
        "GET /livez, each on a new TCP connection with a full TLS handshake (no resumption; conns = clients at once): handshakes per second",
    ),
];

/// The HTTPS rows and the plain row each is compared with.
const TLS_PAIRS: [(&str, &str); 3] = [
    ("ceiling-tls", "http-ceiling"),
    ("claim-tls", "claim"),
    ("query-tls", "query"),
];

const BENCH_STOCK: &str = "bench-stock";
/// Most `--connections` of a self-contained run.
pub const MAX_BENCH_CONNECTIONS: usize = 2000;
/// The bench servers' `max_connections` and `max_connections_per_ip`: room
/// for every client of a row while the last row's connections are closing.
const BENCH_SERVER_CONNECTIONS: usize = 2 * MAX_BENCH_CONNECTIONS + 64;
const BENCH_CHANNEL: i64 = 1;

/// A directory under the system temp dir, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let p = std::env::temp_dir().join(format!(
            "coupon-ledger-bench-{}-{}",
            std::process::id(),
            random_hex(4)?
        ));
        std::fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One in-process server with its bench partner and stock.
struct BenchServer {
    running: Running,
    /// Plain HTTP: `listen`, or `http_listen` when the server speaks HTTPS.
    target: Target,
    /// HTTPS on `listen`, when started with it.
    tls: Option<TlsTarget>,
    /// Coupons pre-filled into the stock.
    filled: u64,
    /// Claims answered with success, by HTTP or directly.
    claimed: u64,
}

impl BenchServer {
    /// Starts a server on `dir/name.db`; with `https`, HTTPS on `listen`
    /// (the self-signed certificate of `serve --tls-self-signed`) and plain
    /// HTTP beside it on `http_listen`, as a production config would have it.
    fn start(
        dir: &Path,
        name: &str,
        write_batch_max: usize,
        https: bool,
    ) -> Result<BenchServer, String> {
        let mut cfg = Config::embedded_default();
        cfg.listen = "127.0.0.1:0".into();
        cfg.db = dir.join(format!("{name}.db"));
        cfg.demo = false;
        cfg.platform = None;
        cfg.admin_token = random_hex(16)?;
        cfg.write_batch_max = write_batch_max;
        // Every bench client connects from 127.0.0.1.
        cfg.max_connections = BENCH_SERVER_CONNECTIONS;
        cfg.max_connections_per_ip = BENCH_SERVER_CONNECTIONS;
        if https {
            cfg.use_self_signed()?;
            cfg.http_listen = Some("127.0.0.1:0".into());
        }
        let partner = Partner {
            api_key: format!("BENCH{}", random_hex(8)?.to_uppercase()),
            secret: random_hex(16)?,
            name: "bench".into(),
            sign: SignRule::default(),
            allow_ips: Vec::new(),
            rate: None,
        };
        cfg.partners = vec![partner.clone()];
        let running = app::start(cfg)?;
        create_stock(running.store(), BENCH_STOCK, 365)?;
        let target = Target {
            addr: running.local_addr().to_string(),
            api_key: partner.api_key,
            secret: partner.secret,
            stock_id: BENCH_STOCK.into(),
            app_channel_id: BENCH_CHANNEL,
        };
        let (target, tls) = match (&running.self_signed, running.http_addr()) {
            (Some(cert), Some(plain)) => {
                let tls = TlsTarget::new(target.clone(), std::slice::from_ref(&cert.der))?;
                let target = Target {
                    addr: plain.to_string(),
                    ..target
                };
                (target, Some(tls))
            }
            _ => (target, None),
        };
        Ok(BenchServer {
            running,
            target,
            tls,
            filled: 0,
            claimed: 0,
        })
    }

    /// The HTTPS listener, for the `-tls` rows.
    fn tls(&self) -> Result<&TlsTarget, String> {
        self.tls
            .as_ref()
            .ok_or_else(|| "the bench server has no HTTPS listener".to_string())
    }

    fn store(&self) -> &Store {
        self.running.store()
    }

    /// The issued-vs-successes line, and whether it holds.
    fn issued_check(&self, what: &str) -> (String, bool) {
        let expected = self.filled + self.claimed;
        match self.store().stock(&self.target.stock_id) {
            Ok(stock) => {
                let issued = u64::try_from(stock.issued).unwrap_or(0);
                let ok = issued == expected;
                let line = format!(
                    "issued vs successes, {what}: stock issued {issued}, {} pre-filled + {} successful claims seen: {}",
                    self.filled,
                    self.claimed,
                    if ok { "ok" } else { "MISMATCH" }
                );
                (line, ok)
            }
            Err(e) => (
                format!(
                    "issued vs successes, {what}: cannot read the stock: {}: MISMATCH",
                    e.message()
                ),
                false,
            ),
        }
    }
}

/// A file's size in bytes; 0 when it is not there.
fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The WAL file of a database.
fn wal_of(db: &Path) -> PathBuf {
    let mut wal = db.to_path_buf().into_os_string();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Creates a running stock of the bench channel with room for far more
/// coupons than a run makes, open from a day ago for `days` days.
fn create_stock(store: &Store, stock_id: &str, days: i64) -> Result<(), String> {
    const DAY: i64 = 86_400_000;
    let now = now_ms();
    let spec = StockSpec::new(StockDraft {
        stock_id: stock_id.into(),
        stock_name: "bench".into(),
        app_channel_id: BENCH_CHANNEL,
        app_id: "wxbench".into(),
        instructions: "made by coupon-ledger bench".into(),
        coupon_name: "bench".into(),
        coupon_desc: "bench".into(),
        kind: CouponKind::FixedOff {
            amount: 1000,
            minimum: 10000,
        },
        max_coupons: 1_000_000_000_000,
        max_coupons_per_user: 1,
        available_begin: now - DAY,
        available_end: now + days * DAY,
        status: StockStatus::Running,
    })
    .map_err(|e| format!("bench stock: {}", e.message()))?;
    let origin = Origin {
        source: Source::Admin,
        seq_id: None,
        now,
        operator: None,
    };
    store
        .create_stock(spec, origin)
        .map(|_| ())
        .map_err(|e| format!("cannot create the bench stock {stock_id}: {}", e.message()))
}

/// One measured row.
struct Row {
    name: &'static str,
    connections: usize,
    m: Measure,
    /// With `--repeat`: the req/s of every run of this row, lowest first
    /// (`m` is the median one). Empty for a single run.
    runs: Vec<f64>,
}

/// Folds the runs of each row (name and connections) into one row, in the
/// order rows first ran: the run with the median req/s (the lower middle of
/// an even count), its figures as measured, every run's req/s beside it, and
/// the errors of all the runs.
fn fold_repeats(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups
            .iter_mut()
            .find(|g| g[0].name == row.name && g[0].connections == row.connections)
        {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .filter_map(|mut g| {
            if g.len() == 1 {
                return g.pop();
            }
            g.sort_by(|a, b| a.m.rate().total_cmp(&b.m.rate()));
            let runs: Vec<f64> = g.iter().map(|r| r.m.rate()).collect();
            let mut errors = BTreeMap::new();
            for r in &g {
                for (code, n) in &r.m.errors {
                    *errors.entry(code.clone()).or_insert(0) += n;
                }
            }
            let middle = (g.len() - 1) / 2;
            let mut row = g.swap_remove(middle);
            row.m.errors = errors;
            row.runs = runs;
            Some(row)
        })
        .collect()
}

/// Starts two servers on temp databases, runs every row at each connection
/// count, checks the issued counts, stops the servers, removes the databases.
pub fn run_self_contained(opts: &SelfContained) -> Result<SelfReport, String> {
    if opts.connections.is_empty() {
        return Err("--connections: give at least one count".into());
    }
    if let Some(&c) = opts
        .connections
        .iter()
        .find(|&&c| c == 0 || c > MAX_BENCH_CONNECTIONS)
    {
        return Err(format!(
            "--connections: {c} is not between 1 and {MAX_BENCH_CONNECTIONS}"
        ));
    }
    // Access lines for every request would measure the terminal, not the
    // ledger; an explicit filter is honoured.
    let quiet_log =
        std::env::var_os("COUPON_LEDGER_LOG").is_none() && std::env::var_os("RUST_LOG").is_none();
    if quiet_log {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let dir = TempDir::new()?;
    let per_count = opts.rows.len() * opts.repeat.max(1) + usize::from(opts.sweep > 0);
    let mut progress = Progress::new(opts.connections.len() * per_count);
    progress.say("starting two in-process servers ...");
    let mut group = BenchServer::start(&dir.0, "group", crate::store::DEFAULT_MAX_BATCH, true)?;
    let mut single = match BenchServer::start(&dir.0, "no-group", 1, false) {
        Ok(s) => s,
        Err(e) => {
            group.running.shutdown();
            return Err(e);
        }
    };
    let outcome = measure_all(opts, &mut group, &mut single, &mut progress);
    progress.clear();
    let mut text = String::new();
    let mut problems = Vec::new();
    let sync = match group.running.config().durability {
        crate::config::Durability::Full => "full",
        crate::config::Durability::Normal => "normal",
    };
    let result = outcome.map(|measured| {
        let Measured {
            rows,
            fill_secs,
            tls,
            sweeps,
        } = measured;
        let _ = writeln!(
            text,
            "coupon-ledger bench: self-contained, 2 in-process servers on 127.0.0.1 (temp databases, durability = {sync}, no platform sync{}), {:.1} s per row{}",
            if quiet_log { ", access log off" } else { "" },
            opts.duration.as_secs_f64(),
            match opts.repeat {
                0 | 1 => String::new(),
                n => format!(", {n} runs of each: its median run is shown"),
            }
        );
        text.push('\n');
        text.push_str(&table(&rows));
        text.push('\n');
        for (name, what) in ROWS.iter().filter(|(n, _)| opts.rows.contains(n)) {
            let _ = writeln!(text, "{name}: {what}");
        }
        if opts.sweep > 0 {
            let _ = writeln!(text, "{SWEEP_ROW}: {SWEEP_ROW_TEXT}");
        }
        let _ = writeln!(
            text,
            "x ceiling: the row's req/s over http-ceiling's at the same connections\n\
             cpu us: CPU microseconds per request of every thread but the bench's clients (the servers)\n\
             wr us: of those, the ledger writer's (a claim's cost on the one thread every write waits for)"
        );
        text.push('\n');
        let both = opts.rows.contains(&"claim") && opts.rows.contains(&"claim-no-group");
        for &c in opts.connections.iter().filter(|_| both) {
            let rate = |name: &str| {
                rows.iter()
                    .find(|r| r.name == name && r.connections == c)
                    .map_or(0.0, |r| r.m.rate())
            };
            let (with, without) = (rate("claim"), rate("claim-no-group"));
            let _ = writeln!(
                text,
                "group commit at {c} conns: claim {with:.0} req/s, claim-no-group {without:.0} req/s: {}",
                if without > 0.0 { format!("{:.2}x", with / without) } else { "n/a".into() }
            );
        }
        text.push_str(&https_lines(&rows, opts, tls.as_deref()));
        for run in &sweeps {
            let line = run.line();
            if run.expired != run.filled {
                problems.push(line.clone());
            }
            let _ = writeln!(text, "{line}");
        }
        if opts.scale > 0 {
            let _ = writeln!(
                text,
                "scale: {} coupons pre-filled into the stock of {} in {fill_secs:.1} s ({:.0} coupons/s)",
                opts.scale,
                if single.filled > 0 { "each server" } else { "the group-commit server" },
                (group.filled + single.filled) as f64 / fill_secs.max(1e-9)
            );
        }
        for (server, what) in [(&group, "group-commit server"), (&single, "no-group server")] {
            let (line, ok) = server.issued_check(what);
            if !ok {
                problems.push(line.clone());
            }
            let _ = writeln!(text, "{line}");
        }
    });
    let db = group.running.config().db.clone();
    let wal_bytes = file_bytes(&wal_of(&db));
    let coupons = group
        .store()
        .stock(BENCH_STOCK)
        .map(|s| s.issued)
        .unwrap_or(0);
    group.running.shutdown();
    single.running.shutdown();
    result?;
    if opts.scale > 0 {
        for (depth, name) in [
            (CheckDepth::Full, "check"),
            (CheckDepth::Quick, "check --quick"),
        ] {
            let started = Instant::now();
            let violations = check_database_to(&db, depth)?;
            let secs = started.elapsed().as_secs_f64();
            if violations.is_empty() {
                let _ = writeln!(
                    text,
                    "{name}: ok in {secs:.2} s on the group-commit server's database ({coupons} coupons)"
                );
            } else {
                let line = format!(
                    "{name}: {} violations in {secs:.2} s, the first: {}",
                    violations.len(),
                    violations[0]
                );
                let _ = writeln!(text, "{line}");
                problems.push(line);
            }
        }
        let closed = file_bytes(&db) + file_bytes(&wal_of(&db));
        let _ = writeln!(
            text,
            "size: {:.0} bytes per coupon (the database file, {:.1} MB over {coupons} coupons, once the server closed it; while it ran, the WAL had grown to {:.1} MB)",
            closed as f64 / (coupons.max(1)) as f64,
            closed as f64 / 1e6,
            wal_bytes as f64 / 1e6
        );
    }
    drop(dir);
    Ok(SelfReport { text, problems })
}

/// Under the table, when HTTPS rows ran: what the connections agreed on, and
/// each HTTPS row over its plain twin at every connection count.
fn https_lines(rows: &[Row], opts: &SelfContained, agreed: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(agreed) = agreed {
        let _ = writeln!(
            text,
            "HTTPS rows: {agreed}; an ECDSA P-256 self-signed certificate; session resumption off"
        );
    }
    for &c in &opts.connections {
        let rate = |name: &str| {
            rows.iter()
                .find(|r| r.name == name && r.connections == c)
                .map(|r| r.m.rate())
        };
        let pairs: Vec<String> = TLS_PAIRS
            .iter()
            .filter_map(|&(tls, plain)| match (rate(tls), rate(plain)) {
                (Some(t), Some(p)) if p > 0.0 => Some(format!("{tls}/{plain} {:.2}x", t / p)),
                _ => None,
            })
            .collect();
        if !pairs.is_empty() {
            let _ = writeln!(
                text,
                "HTTPS over plain HTTP at {c} conns: {}",
                pairs.join(", ")
            );
        }
    }
    text
}

/// Fills the stocks when asked, then runs every row (and the claim+sweep row
/// when asked) at each connection count.
fn measure_all(
    opts: &SelfContained,
    group: &mut BenchServer,
    single: &mut BenchServer,
    progress: &mut Progress,
) -> Result<Measured, String> {
    let mut fill_secs = 0.0;
    if opts.scale > 0 {
        let started = Instant::now();
        // The second server only serves claim-no-group: filled only for it.
        let with_single = opts.rows.contains(&"claim-no-group");
        let servers = std::iter::once(&mut *group).chain(with_single.then_some(&mut *single));
        for server in servers {
            progress.say(&format!(
                "pre-filling {} coupons into {} ...",
                opts.scale,
                server.running.config().db.display()
            ));
            server.filled = server
                .store()
                .bulk_fill(&server.target.stock_id, opts.scale)
                .map_err(|e| format!("--scale: the bulk fill failed: {}", e.message()))?;
        }
        fill_secs = started.elapsed().as_secs_f64();
    }
    let tls = match opts.rows.iter().any(|r| r.ends_with("-tls")) {
        true => Some(group.tls()?.describe()?),
        false => None,
    };
    let mut rows = Vec::new();
    let mut sweeps = Vec::new();
    // Whole rounds, one after another: a row's runs are spread over the
    // run's length, so one slow stretch of the machine hits every row alike.
    for (round, &c) in
        (0..opts.repeat.max(1)).flat_map(|round| opts.connections.iter().map(move |c| (round, c)))
    {
        for &name in &opts.rows {
            progress.next(name, c);
            let (route, mode) = plan(name)?;
            let server = match route {
                Route::Single => &mut *single,
                _ => &mut *group,
            };
            let m = match route {
                Route::Http | Route::Single => {
                    load_http(&server.target, mode, c, opts.duration, progress)?
                }
                Route::Tls { handshake } => load(
                    tls_clients(server.tls()?, mode, handshake, c)?,
                    opts.duration,
                    progress,
                )?,
                Route::Store => {
                    let run = random_hex(4)?;
                    let clients = (0..c)
                        .map(|worker| StoreClient {
                            store: server.store().clone(),
                            target: server.target.clone(),
                            worker,
                            run: run.clone(),
                            next: None,
                            ahead: VecDeque::new(),
                        })
                        .collect();
                    load(clients, opts.duration, progress)?
                }
            };
            // Every successful claim counts in its server's issued check.
            if mode == Mode::Claim {
                server.claimed += m.ok;
            }
            rows.push(Row {
                name,
                connections: c,
                m,
                runs: Vec::new(),
            });
        }
        if opts.sweep > 0 && round == 0 {
            progress.next(SWEEP_ROW, c);
            let (m, run) = claim_while_sweeping(group, opts.sweep, c, progress)?;
            group.claimed += m.ok;
            rows.push(Row {
                name: SWEEP_ROW,
                connections: c,
                m,
                runs: Vec::new(),
            });
            sweeps.push(run);
        }
    }
    Ok(Measured {
        rows: fold_repeats(rows),
        fill_secs,
        tls,
        sweeps,
    })
}

/// How a row reaches the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Plain HTTP to the group-commit server.
    Http,
    /// Plain HTTP to the server with group commit off.
    Single,
    /// HTTPS to the group-commit server; a new connection and handshake per
    /// request when `handshake`.
    Tls { handshake: bool },
    /// `Store::claim` of the group-commit server, without HTTP.
    Store,
}

/// The route and requests of each row of [`ROWS`].
fn plan(row: &str) -> Result<(Route, Mode), String> {
    let tls = Route::Tls { handshake: false };
    Ok(match row {
        "http-ceiling" => (Route::Http, Mode::Ceiling),
        "healthz" => (Route::Http, Mode::Healthz),
        "claim" => (Route::Http, Mode::Claim),
        "query" => (Route::Http, Mode::Query),
        "claim-no-group" => (Route::Single, Mode::Claim),
        "writer-direct" => (Route::Store, Mode::Claim),
        "ceiling-tls" => (tls, Mode::Ceiling),
        "claim-tls" => (tls, Mode::Claim),
        "query-tls" => (tls, Mode::Query),
        "handshake-tls" => (Route::Tls { handshake: true }, Mode::Livez),
        other => return Err(format!("no such row: {other}")),
    })
}

/// The row `--sweep` adds, and what it measures.
const SWEEP_ROW: &str = "claim+sweep";
const SWEEP_ROW_TEXT: &str = "claim while the sweeper expires the --sweep coupons of a second stock, for as long as the sweep takes";

/// What the sweep of one claim+sweep row did.
struct SweepRun {
    connections: usize,
    filled: u64,
    fill_secs: f64,
    expired: u64,
    secs: f64,
    batch: i64,
}

impl SweepRun {
    fn line(&self) -> String {
        format!(
            "{SWEEP_ROW} at {} conns: the sweeper expired {} of {} coupons in {:.1} s ({:.0} coupons/s, {} per write job) while the claims ran; filling them took {:.1} s",
            self.connections,
            self.expired,
            self.filled,
            self.secs,
            self.expired as f64 / self.secs.max(1e-9),
            self.batch,
            self.fill_secs
        )
    }
}

/// Fills a new stock of `server` with `n` coupons that end within a day,
/// then runs claims on `c` connections for as long as the sweeper's own loop
/// takes to expire them all, its clock two days ahead (so the sweep stock is
/// past its end, and the claim stock a year short of its own).
fn claim_while_sweeping(
    server: &BenchServer,
    n: u64,
    c: usize,
    progress: &mut Progress,
) -> Result<(Measure, SweepRun), String> {
    const DAY: i64 = 86_400_000;
    let stock_id = format!("bench-sweep-{c}");
    create_stock(server.store(), &stock_id, 1)?;
    progress.say(&format!("filling {n} coupons for the sweeper ..."));
    let started = Instant::now();
    let filled = server
        .store()
        .bulk_fill(&stock_id, n)
        .map_err(|e| format!("--sweep: the bulk fill failed: {}", e.message()))?;
    let fill_secs = started.elapsed().as_secs_f64();
    let store = server.store().clone();
    let batch = server.running.config().sweep_batch;
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let sweeping = thread::Builder::new()
        .name("bench-sweep".into())
        .spawn(move || {
            let started = Instant::now();
            let swept = crate::sweeper::sweep_by(&store, batch, || now_ms() + 2 * DAY);
            finished.store(true, Ordering::Relaxed);
            (swept, started.elapsed().as_secs_f64())
        })
        .map_err(|e| format!("cannot start the sweep: {e}"))?;
    // Nothing is built ahead: the sweep has started.
    let m = load_http_while(&server.target, Mode::Claim, c, 0, progress, |_| {
        !done.load(Ordering::Relaxed)
    });
    let (swept, secs) = sweeping
        .join()
        .map_err(|_| "the sweep thread panicked".to_string())?;
    let expired = swept.map_err(|e| format!("--sweep: the sweep failed: {}", e.message()))?;
    let run = SweepRun {
        connections: c,
        filled,
        fill_secs,
        expired: expired as u64,
        secs,
        batch,
    };
    Ok((m?, run))
}

/// Everything [`measure_all`] measured.
struct Measured {
    rows: Vec<Row>,
    /// How long the `--scale` fill took, in seconds.
    fill_secs: f64,
    /// What the HTTPS rows' connections agreed on, when they ran.
    tls: Option<String>,
    sweeps: Vec<SweepRun>,
}

/// The table: one line per row, figures right-aligned; with `--repeat`, each
/// row is its median run, and a last column gives every run's req/s.
fn table(rows: &[Row]) -> String {
    let repeated = rows.iter().any(|r| !r.runs.is_empty());
    let mut s = format!(
        "{:<16} {:>5} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}  {}{}\n",
        "row",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "x ceiling",
        "cpu us",
        "wr us",
        "errors",
        if repeated { "  runs, req/s" } else { "" }
    );
    for r in rows {
        let ceiling = rows
            .iter()
            .find(|c| c.name == "http-ceiling" && c.connections == r.connections)
            .map_or(0.0, |c| c.m.rate());
        let ratio = if ceiling > 0.0 {
            format!("{:.2}", r.m.rate() / ceiling)
        } else {
            "n/a".into()
        };
        let runs = match repeated {
            true => {
                let each: Vec<String> = r.runs.iter().map(|x| format!("{x:.0}")).collect();
                format!("  {}", each.join(" "))
            }
            false => String::new(),
        };
        let (cpu, writer) = match r.m.cpu_per_request() {
            Some((cpu, writer)) => (format!("{cpu:.1}"), format!("{writer:.1}")),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            s,
            "{:<16} {:>5} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>9} {:>8} {:>8}  {}{runs}",
            r.name,
            r.connections,
            r.m.rate(),
            r.m.ms(0.50),
            r.m.ms(0.99),
            r.m.ms(0.999),
            ratio,
            cpu,
            writer,
            r.m.error_summary()
        );
    }
    s
}

/// CPU time from Linux's `/proc`, for the table's CPU columns. Each reader
/// gives `None` where `/proc` does not have the figure.
mod cpu {
    use std::fs;

    /// Nanoseconds per clock tick of `/proc/*/stat`: Linux reports those
    /// fields in `USER_HZ`, which is 100 on every architecture it runs on.
    const NS_PER_TICK: u64 = 10_000_000;

    /// The calling thread's time on a CPU (`/proc/thread-self/schedstat`).
    pub fn thread_ns() -> Option<u64> {
        schedstat_ns(&fs::read_to_string("/proc/thread-self/schedstat").ok()?)
    }

    /// The whole process's user and system time, ended threads included
    /// (`/proc/self/stat`), to the tick.
    pub fn process_ns() -> Option<u64> {
        stat_ns(&fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The time on a CPU of every live thread named `ledger-writer`.
    pub fn writers_ns() -> Option<u64> {
        let mut sum = 0;
        for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
            let path = task.path();
            let named = fs::read_to_string(path.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "ledger-writer");
            if named {
                sum += schedstat_ns(&fs::read_to_string(path.join("schedstat")).ok()?)?;
            }
        }
        Some(sum)
    }

    /// The first field of a `schedstat` line: nanoseconds on a CPU.
    pub fn schedstat_ns(line: &str) -> Option<u64> {
        line.split_whitespace().next()?.parse().ok()
    }

    /// `utime + stime` of a `stat` line, in nanoseconds. The command name in
    /// parentheses may hold spaces, so fields are counted after its `)`.
    pub fn stat_ns(line: &str) -> Option<u64> {
        let rest = &line[line.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((utime + stime) * NS_PER_TICK)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A target for tests that build requests and never connect.
    pub(in crate::bench) fn test_target() -> Target {
        Target {
            addr: "127.0.0.1:9".into(),
            api_key: "k".into(),
            secret: "s".into(),
            stock_id: "st".into(),
            app_channel_id: 1,
        }
    }

    #[test]
    fn requests_built_ahead_are_the_ones_built_live_then_live_ones_follow() {
        let t = test_target();
        let mut ahead = build_ahead(&t, Mode::Claim, 3, "r", 2);
        assert_eq!(ahead.len(), 2);
        let body = |req: &[u8]| {
            let text = String::from_utf8(req.to_vec()).unwrap();
            let (_, body) = text.split_once("\r\n\r\n").unwrap();
            serde_json::from_str::<Map<String, Value>>(body).unwrap()
        };
        let mut next = Vec::new();
        for n in 0..3u64 {
            next_request(&mut next, &mut ahead, Mode::Claim, || {
                request(&t, Mode::Claim, 3, n, "r")
            });
            let m = body(&next);
            assert_eq!(m["nonce"], json!(format!("r3x{n}")), "request {n}");
            assert_eq!(m["request_id"], json!(format!("r3x{n}")));
            let sign = sign::sign(&m, &SignRule::default(), "s");
            assert_eq!(m["sign"], json!(sign), "request {n} is signed");
        }
        assert!(ahead.is_empty());
        // Nothing is built ahead for a request that never changes, and it is built once.
        assert!(build_ahead(&t, Mode::Ceiling, 0, "r", 5).is_empty());
        let mut built = 0;
        let mut next = Vec::new();
        for _ in 0..3 {
            next_request(&mut next, &mut VecDeque::new(), Mode::Ceiling, || {
                built += 1;
                request(&t, Mode::Ceiling, 0, 0, "r")
            });
        }
        assert_eq!(built, 1);
        assert!(next.starts_with(b"GET /bench-ceiling "));
    }

    #[test]
    fn cpu_times_are_read_from_proc_lines() {
        assert_eq!(
            cpu::schedstat_ns("361216842 263341 49\n"),
            Some(361_216_842)
        );
        assert_eq!(cpu::schedstat_ns(""), None);
        // A command name with spaces and a parenthesis; utime 34, stime 1.
        let stat = "4242 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 34 1 0 0 20 0 1 0";
        assert_eq!(cpu::stat_ns(stat), Some(35 * 10_000_000));
        assert_eq!(cpu::stat_ns("4242 (x) R 1 2"), None);
        assert_eq!(cpu::stat_ns("no parenthesis"), None);
        if cfg!(target_os = "linux") {
            // Both count in whole time slices or ticks: work until they move.
            let started = Instant::now();
            let mut spin = 0u64;
            let moved = loop {
                let (Some(t), Some(p)) = (cpu::thread_ns(), cpu::process_ns()) else {
                    panic!("/proc has no CPU times for this process");
                };
                if (t > 0 && p > 0) || started.elapsed() > Duration::from_secs(10) {
                    break (t, p);
                }
                spin = spin.wrapping_add(std::hint::black_box(spin) | 1);
            };
            assert!(
                moved.0 > 0 && moved.1 > 0,
                "thread and process ns: {moved:?}"
            );
            assert!(cpu::writers_ns().is_some());
        }
    }

    #[test]
    fn the_protocol_code_is_read_from_the_answer() {
        assert_eq!(protocol_code(br#"{"code":0,"data":{}}"#), Some(0));
        assert_eq!(
            protocol_code(br#"{"message":"x","code": 40903}"#),
            Some(40903)
        );
        assert_eq!(protocol_code(br#"{"code":-1}"#), Some(-1));
        assert_eq!(protocol_code(b"not json"), None);
        assert_eq!(protocol_code(br#"{"code":"x"}"#), None);
    }

    #[test]
    fn a_404_is_a_success_for_the_ceiling_only() {
        assert!(Mode::Ceiling.success(404, Some(40400)));
        assert!(!Mode::Healthz.success(404, Some(40400)));
        assert!(Mode::Claim.success(200, Some(0)));
        assert!(!Mode::Claim.success(200, Some(40903)));
        assert!(!Mode::Query.success(500, Some(0)));
        assert!(Mode::parse("livez").is_ok_and(|m| m.success(200, Some(0))));
    }

    #[test]
    fn https_rows_are_picked_like_the_others_with_the_ceiling() {
        assert_eq!(
            pick_rows(Some("handshake-tls,claim-tls")).unwrap(),
            vec!["http-ceiling", "claim-tls", "handshake-tls"]
        );
        let e = pick_rows(Some("claim-https")).unwrap_err();
        assert!(e.contains("query-tls"), "{e}");
    }

    fn run(name: &'static str, connections: usize, requests: u64, errors: &[(&str, u64)]) -> Row {
        Row {
            name,
            connections,
            m: Measure {
                requests,
                ok: requests,
                errors: errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                elapsed: Duration::from_secs(1),
                latencies_us: vec![requests],
                connect_error: None,
                // 30 and 20 microseconds per request.
                cpu: Some(CpuUse {
                    server_ns: requests * 30_000,
                    writer_ns: requests * 20_000,
                }),
            },
            runs: Vec::new(),
        }
    }

    #[test]
    fn repeated_rows_fold_into_their_median_run_with_every_error() {
        let folded = fold_repeats(vec![
            run("claim", 16, 300, &[]),
            run("claim", 64, 900, &[]),
            run("claim", 16, 100, &[("io", 1)]),
            run("claim", 64, 700, &[]),
            run("claim", 16, 200, &[("io", 2), ("40104", 1)]),
            run("query", 16, 50, &[]),
        ]);
        let got: Vec<_> = folded
            .iter()
            .map(|r| (r.name, r.connections, r.m.requests, r.runs.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("claim", 16, 200, vec![100.0, 200.0, 300.0]),
                // Of an even count, the lower middle run.
                ("claim", 64, 700, vec![700.0, 900.0]),
                ("query", 16, 50, vec![]),
            ]
        );
        // The median run keeps its own latencies, and gets every run's errors.
        assert_eq!(folded[0].m.latencies_us, vec![200]);
        assert_eq!(folded[0].m.error_summary(), "40104:1 io:3");
        let text = table(&folded);
        assert!(text.contains("cpu us    wr us"), "{text}");
        assert!(text.contains("30.0     20.0  40104:1 io:3"), "{text}");
        assert!(text.contains("runs, req/s"), "{text}");
        assert!(text.contains("  100 200 300"), "{text}");
    }

    #[test]
    fn every_row_has_a_plan() {
        for (name, _) in ROWS {
            assert!(plan(name).is_ok(), "{name}");
        }
        assert_eq!(plan("writer-direct"), Ok((Route::Store, Mode::Claim)));
        assert!(plan("claim-https").is_err());
    }

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let m = Measure {
            latencies_us: (1..=1000).collect(),
            ..Measure::default()
        };
        assert_eq!(m.percentile(0.5), 501);
        assert_eq!(m.percentile(0.99), 990);
        assert_eq!(m.percentile(1.0), 1000);
        assert_eq!(Measure::default().percentile(0.5), 0);
    }
}
