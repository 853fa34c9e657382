//! `coupon-ledger mock-platform`: a stand-in travel platform for demos and tests
//! (docs/protocol.md, sync to the platform). It verifies signatures, records what it accepts, fails a fraction
//! of calls on purpose, and shows what it got at `GET /received`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::domain::time::now_ms;
use crate::http::{Handler, Limits, Request, Response, Server};
use crate::sign::{self, SignRule};
use crate::wire::fields::parse_object;

/// One accepted call.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub seq_id: String,
    pub body: Value,
    pub at_ms: i64,
}

struct State {
    secret: String,
    rule: SignRule,
    /// Failure rate in parts per million, so the draw needs no float.
    fail_ppm: AtomicU64,
    received: Mutex<Vec<Received>>,
    failed: AtomicU64,
    bad_sign: AtomicU64,
}

/// A running mock platform.
pub struct MockPlatform {
    server: Server,
    state: Arc<State>,
}

fn ppm(rate: f64) -> u64 {
    (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64
}

fn draw_ppm() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b) % 1_000_000
}

impl MockPlatform {
    /// Listens on `addr`; `fail_rate` in 0..=1 of calls are answered with an error.
    pub fn start(addr: &str, secret: &str, fail_rate: f64) -> std::io::Result<MockPlatform> {
        let state = Arc::new(State {
            secret: secret.to_string(),
            rule: SignRule::default(),
            fail_ppm: AtomicU64::new(ppm(fail_rate)),
            received: Mutex::new(Vec::new()),
            failed: AtomicU64::new(0),
            bad_sign: AtomicU64::new(0),
        });
        let s = state.clone();
        let handler: Handler = Arc::new(move |req: &Request| handle(&s, req));
        let server = Server::start(addr, Limits::default(), handler)?;
        Ok(MockPlatform { server, state })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Changes the failure rate.
    pub fn set_fail_rate(&self, rate: f64) {
        self.state.fail_ppm.store(ppm(rate), Ordering::SeqCst);
    }

    /// Every call accepted so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().clone()
    }

    /// Calls answered with an injected failure.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Calls refused for a bad signature.
    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_sign.load(Ordering::SeqCst)
    }

    /// Stops listening; connections are refused afterwards.
    pub fn shutdown(self) {
        self.server.shutdown();
    }

    /// Blocks while it serves.
    pub fn join(self) {
        self.server.join();
    }
}

fn handle(state: &State, req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/received") => {
            let list: Vec<Value> = state
                .received
                .lock()
                .iter()
                .map(|r| json!({"path": r.path, "seq_id": r.seq_id, "body": r.body}))
                .collect();
            Response::json(
                200,
                &json!({
                    "received": list,
                    "failed": state.failed.load(Ordering::SeqCst),
                    "bad_signatures": state.bad_sign.load(Ordering::SeqCst),
                }),
            )
        }
        ("POST", "/control") => {
            let rate = parse_object(&req.body)
                .ok()
                .and_then(|m| m.get("fail_rate").and_then(Value::as_f64));
            match rate {
                Some(r) => {
                    state.fail_ppm.store(ppm(r), Ordering::SeqCst);
                    Response::json(200, &json!({"code": 0, "message": "successful"}))
                }
                None => Response::json(
                    200,
                    &json!({"code": 40001, "message": "fail_rate: required number"}),
                ),
            }
        }
        ("POST", path) => {
            let body = match parse_object(&req.body) {
                Ok(b) => b,
                Err(e) => {
                    return Response::json(200, &json!({"code": e.code(), "message": e.message()}))
                }
            };
            if !sign::verify_body(&req.body, &body, &state.rule, &state.secret) {
                state.bad_sign.fetch_add(1, Ordering::SeqCst);
                return Response::json(200, &json!({"code": 40102, "message": "bad signature"}));
            }
            if draw_ppm() < state.fail_ppm.load(Ordering::SeqCst) {
                let n = state.failed.fetch_add(1, Ordering::SeqCst);
                return if n.is_multiple_of(2) {
                    Response::json(500, &json!({"code": 50000, "message": "injected failure"}))
                } else {
                    Response::json(200, &json!({"code": 50001, "message": "injected failure"}))
                };
            }
            let seq_id = body
                .get("seq_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            state.received.lock().push(Received {
                path: path.to_string(),
                seq_id,
                body: Value::Object(body),
                at_ms: now_ms(),
            });
            Response::json(200, &json!({"code": 0, "message": "successful"}))
        }
        _ => Response::json(404, &json!({"code": 40400, "message": "no such path"})),
    }
}
