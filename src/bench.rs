//! `coupon-ledger bench`: drives a running server with signed keep-alive
//! requests and reports throughput, latency percentiles and errors (SPEC §11).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::domain::coupon::random_hex;
use crate::domain::time::now_ms;
use crate::sign::{self, SignRule};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signed `/sp/coupon/receive`, a new user and request id each time (durable writes).
    Claim,
    /// Signed `/sp/stock/query` (a nonce write and a read).
    Query,
    /// `GET /healthz` (reads only).
    Healthz,
}

/// A bench run's settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `host:port` of the server.
    pub target: String,
    pub mode: Mode,
    pub connections: usize,
    pub duration: Duration,
    pub api_key: String,
    pub secret: String,
    pub stock_id: String,
    pub app_channel_id: i64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

impl BenchReport {
    /// The latency below which `p` (0..=1) of requests finished, in microseconds.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)]
    }

    /// One line per figure, for people.
    pub fn render(&self, opts: &BenchOptions) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "mode {:?} · {} connections · {:.1} s\nrequests {} · errors {} · throughput {:.0} req/s\nlatency p50 {:.2} ms · p99 {:.2} ms · p99.9 {:.2} ms · max {:.2} ms",
            opts.mode,
            opts.connections,
            secs,
            self.requests,
            self.errors,
            self.requests as f64 / secs,
            self.percentile(0.50) as f64 / 1000.0,
            self.percentile(0.99) as f64 / 1000.0,
            self.percentile(0.999) as f64 / 1000.0,
            self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        )
    }
}

fn request(opts: &BenchOptions, worker: usize, n: u64, run: &str) -> Vec<u8> {
    let (method, path, body) = match opts.mode {
        Mode::Healthz => ("GET", "/healthz", String::new()),
        Mode::Claim | Mode::Query => {
            let mut m = Map::new();
            m.insert("api_key".into(), json!(opts.api_key));
            m.insert("seq_id".into(), json!(format!("bench-{run}-{worker}-{n}")));
            m.insert("timestamp".into(), json!((now_ms() / 1000).to_string()));
            m.insert("nonce".into(), json!(format!("{run}{worker}x{n}")));
            m.insert("stock_id".into(), json!(opts.stock_id));
            let path = if opts.mode == Mode::Claim {
                m.insert("app_channel_id".into(), json!(opts.app_channel_id));
                m.insert("user_code".into(), json!(format!("b{run}{worker}x{n}")));
                m.insert("request_id".into(), json!(format!("{run}{worker}x{n}")));
                "/sp/coupon/receive"
            } else {
                "/sp/stock/query"
            };
            let s = sign::sign(&m, &SignRule::default(), &opts.secret);
            m.insert("sign".into(), json!(s));
            ("POST", path, Value::Object(m).to_string())
        }
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        opts.target,
        body.len()
    )
    .into_bytes()
}

/// Reads one answer; true when it is HTTP 200 with `"code":0`.
fn read_answer(r: &mut BufReader<TcpStream>) -> std::io::Result<bool> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let ok_status = line.starts_with("HTTP/1.1 200");
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len.min(1 << 20)];
    r.read_exact(&mut body)?;
    Ok(ok_status && body.windows(8).any(|w| w == b"\"code\":0"))
}

/// Runs the load and gathers the figures.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, String> {
    if opts.connections == 0 {
        return Err("--connections: must be at least 1".into());
    }
    let run_id = random_hex(4)?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..opts.connections)
        .map(|w| {
            let (opts, stop, run_id) = (opts.clone(), stop.clone(), run_id.clone());
            thread::spawn(move || {
                let mut lat = Vec::with_capacity(1 << 16);
                let (mut n, mut errors) = (0u64, 0u64);
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                while !stop.load(Ordering::Relaxed) {
                    if conn.is_none() {
                        conn = TcpStream::connect(&opts.target).ok().and_then(|s| {
                            let _ = s.set_nodelay(true);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                            let r = s.try_clone().ok()?;
                            Some((s, BufReader::new(r)))
                        });
                        if conn.is_none() {
                            errors += 1;
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                    let Some((s, r)) = conn.as_mut() else {
                        continue;
                    };
                    let req = request(&opts, w, n, &run_id);
                    n += 1;
                    let t = Instant::now();
                    let answer = s.write_all(&req).and_then(|_| read_answer(r));
                    lat.push(t.elapsed().as_micros() as u64);
                    match answer {
                        Ok(true) => {}
                        Ok(false) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    thread::sleep(opts.duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w
            .join()
            .map_err(|_| "a bench worker panicked".to_string())?;
        latencies_us.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(BenchReport {
        requests: latencies_us.len() as u64,
        errors,
        elapsed,
        latencies_us,
    })
}
