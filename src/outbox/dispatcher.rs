//! The background dispatcher: delivers outbox calls to the platform, signed per
//! the project's signing rule, with capped exponential backoff and jitter, in order per stock and
//! per coupon, a few at a time so one stuck call does not hold up the others.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};

use crate::config::Platform;
use crate::domain::coupon::random_hex;
use crate::domain::ledger::OutboxCall;
use crate::domain::time::{now_ms, Millis};
use crate::domain::LedgerError;
use crate::sign;
use crate::store::{Attempt, Store};

/// Calls sent at once; calls in one lane never overlap.
const WORKERS: usize = 4;
/// How long a worker holds a call whose attempt could not be recorded.
const RECORD_FAILURE_PAUSE: Duration = Duration::from_secs(5);
/// How often the dispatcher wakes to check for new calls.
const POLL: Duration = Duration::from_millis(100);
/// The longest the dispatcher goes without looking, when nothing was due.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(2);

/// The delay before attempt `attempts + 1`: `base × 2^(attempts−1)` capped at
/// `max`, with "equal jitter" (a random point in the upper half) so retries spread.
pub fn backoff_ms(attempts: i64, base: u64, max: u64, random: u64) -> u64 {
    let exp = attempts.clamp(1, 40) as u32 - 1;
    let full = base.saturating_mul(1u64 << exp.min(62)).min(max);
    let half = full / 2;
    half + random % (full - half + 1)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

/// Sends one call once: the stored business fields plus fresh common parameters
/// and the sign. Delivered means HTTP 200 and `code` 0.
pub fn deliver(agent: &ureq::Agent, platform: &Platform, call: &OutboxCall) -> Result<(), String> {
    let mut body = match serde_json::from_str::<Value>(&call.body) {
        Ok(Value::Object(m)) => m,
        _ => return Err("stored body is not a JSON object".into()),
    };
    body.insert("api_key".into(), json!(platform.api_key));
    body.insert("seq_id".into(), json!(call.seq_id));
    body.insert("timestamp".into(), json!((now_ms() / 1000).to_string()));
    body.insert("nonce".into(), json!(random_hex(8)?));
    let s = sign::sign(&body, &platform.sign, &platform.secret);
    body.insert("sign".into(), json!(s));
    let url = format!("{}{}", platform.base_url, call.path);
    let response = agent
        .post(&url)
        .set("Content-Type", "application/json")
        .send_string(&Value::Object(body).to_string());
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => return Err(format!("HTTP {code}")),
        Err(e) => return Err(format!("{e}")),
    };
    if response.status() != 200 {
        return Err(format!("HTTP {}", response.status()));
    }
    let text = response
        .into_string()
        .map_err(|e| format!("reading the answer: {e}"))?;
    let answer: Value =
        serde_json::from_str(&text).map_err(|_| "the answer is not JSON".to_string())?;
    match answer.get("code").and_then(Value::as_i64) {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "code {code}: {}",
            answer.get("message").and_then(Value::as_str).unwrap_or("")
        )),
        None => Err("the answer has no code".into()),
    }
}

/// What to record after an attempt that ended with `result`.
pub fn next_step(
    call: &OutboxCall,
    result: Result<(), String>,
    platform: &Platform,
    now: Millis,
) -> Attempt {
    match result {
        Ok(()) => Attempt::Delivered,
        Err(error) => {
            let attempts = call.attempts + 1;
            if attempts >= i64::from(platform.max_attempts) {
                Attempt::Dead { error }
            } else {
                let delay = backoff_ms(
                    attempts,
                    platform.retry_base_ms,
                    platform.retry_max_ms,
                    random_u64(),
                );
                Attempt::Retry {
                    error,
                    at: now.saturating_add(delay as i64),
                }
            }
        }
    }
}

/// Makes the HTTP client with connect and read timeouts.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(3))
        .timeout_read(Duration::from_secs(10))
        .timeout_write(Duration::from_secs(10))
        .build()
}

struct Shared {
    store: Store,
    platform: Platform,
    stop: AtomicBool,
    in_flight: Mutex<Vec<i64>>,
    /// Set by a worker that has recorded its attempt.
    finished: AtomicBool,
    /// The earliest retry a worker scheduled that the dispatcher has not looked for yet.
    next_retry_ms: AtomicI64,
    wake: Condvar,
}

/// A running dispatcher; stops when [`Dispatcher::stop`] is called.
pub struct Dispatcher {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the dispatcher thread and its workers.
    pub fn start(store: Store, platform: Platform) -> Result<Dispatcher, String> {
        let shared = Arc::new(Shared {
            store,
            platform,
            stop: AtomicBool::new(false),
            in_flight: Mutex::new(Vec::new()),
            finished: AtomicBool::new(false),
            next_retry_ms: AtomicI64::new(i64::MAX),
            wake: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel::<OutboxCall>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let (shared, rx) = (shared.clone(), rx.clone());
            threads.push(
                thread::Builder::new()
                    .name(format!("outbox-worker-{i}"))
                    .spawn(move || worker(&shared, &rx))
                    .map_err(|e| format!("cannot start an outbox worker: {e}"))?,
            );
        }
        let s = shared.clone();
        threads.push(
            thread::Builder::new()
                .name("outbox-dispatcher".into())
                .spawn(move || dispatch(&s, tx))
                .map_err(|e| format!("cannot start the outbox dispatcher: {e}"))?,
        );
        Ok(Dispatcher { shared, threads })
    }

    /// Stops handing out calls and waits for the calls in flight.
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Looks for due calls when new ones were written, a worker came free, or the
/// idle wait passed; the idle wait doubles while there is nothing to send, so a
/// large blocked backlog is not rescanned ten times a second.
fn dispatch(shared: &Shared, tx: Sender<OutboxCall>) {
    let mut seen_writes = u64::MAX;
    let mut idle_wait = POLL;
    let mut last_look: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        // Read the signal before the in-flight list: a worker clears its call first.
        let finished = shared.finished.swap(false, Ordering::SeqCst);
        let busy: Vec<i64> = shared.in_flight.lock().clone();
        let free = WORKERS.saturating_sub(busy.len());
        let writes = shared.store.outbox_writes();
        let retry_at = shared.next_retry_ms.load(Ordering::SeqCst);
        let retry_due = retry_at <= now_ms()
            && shared
                .next_retry_ms
                .compare_exchange(retry_at, i64::MAX, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        let due = writes != seen_writes
            || finished
            || retry_due
            || last_look.is_none_or(|t| t.elapsed() >= idle_wait);
        if free > 0 && due {
            seen_writes = writes;
            last_look = Some(Instant::now());
            match shared.store.outbox_ready(now_ms(), &busy, free) {
                Ok(calls) => {
                    idle_wait = if calls.is_empty() {
                        (idle_wait * 2).min(MAX_IDLE_WAIT)
                    } else {
                        POLL
                    };
                    for call in calls {
                        shared.in_flight.lock().push(call.id);
                        if tx.send(call).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => log::warn!("outbox: cannot read due calls: {e}"),
            }
        }
        let mut guard = shared.in_flight.lock();
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        shared.wake.wait_for(&mut guard, POLL);
    }
    // Dropping `tx` ends the workers once they finish what they hold.
}

fn worker(shared: &Shared, rx: &Mutex<Receiver<OutboxCall>>) {
    let agent = agent();
    loop {
        let next = rx.lock().recv();
        let Ok(call) = next else { return };
        let (retry_at, recorded) = attempt(&agent, &shared.store, &shared.platform, &call);
        if let Some(at) = retry_at {
            shared.next_retry_ms.fetch_min(at, Ordering::SeqCst);
        }
        if let Err(e) = recorded {
            // The ledger cannot be written: hold the call back a while rather
            // than send it again at once.
            log::error!("outbox: cannot record the attempt of {}: {e}", call.seq_id);
            thread::sleep(RECORD_FAILURE_PAUSE);
        }
        shared.in_flight.lock().retain(|id| *id != call.id);
        shared.finished.store(true, Ordering::SeqCst);
        shared.wake.notify_all();
    }
}

/// Sends `call` once and records the attempt. Answers when the call is due
/// again if it stays pending, and whether the attempt could be recorded.
fn attempt(
    agent: &ureq::Agent,
    store: &Store,
    platform: &Platform,
    call: &OutboxCall,
) -> (Option<Millis>, Result<(), LedgerError>) {
    let result = deliver(agent, platform, call);
    if let Err(e) = &result {
        log::info!(
            "outbox: {} {} attempt {} failed: {e}",
            call.path,
            call.seq_id,
            call.attempts + 1
        );
    }
    let step = next_step(call, result, platform, now_ms());
    let retry_at = match &step {
        Attempt::Retry { at, .. } => Some(*at),
        Attempt::Dead { error } => {
            log::warn!(
                "outbox: {} {} is dead after {} attempts: {error}",
                call.path,
                call.seq_id,
                call.attempts + 1
            );
            None
        }
        Attempt::Delivered => None,
    };
    (retry_at, store.outbox_record(call.id, step, now_ms()))
}

/// One dispatcher step, without the background thread: sends every call that
/// is due by `now` and heads its lane, once each, in order, and records each
/// attempt as the workers do. Calls behind one of them in its lane become due
/// at the next step. Returns how many calls it sent. Tests and tools use it to
/// deliver at a moment of their choosing, with no background dispatcher running.
pub fn deliver_due(store: &Store, platform: &Platform, now: Millis) -> Result<usize, LedgerError> {
    let calls = store.outbox_ready(now, &[], i64::MAX as usize)?;
    let agent = agent();
    for call in &calls {
        attempt(&agent, store, platform, call).1?;
    }
    Ok(calls.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        for attempt in 1..=5 {
            let full = 1000u64 << (attempt - 1);
            for r in [0, 7, u64::MAX] {
                let d = backoff_ms(attempt, 1000, 60_000, r);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
            }
        }
        assert!(backoff_ms(30, 1000, 60_000, 5) <= 60_000);
        assert!(backoff_ms(30, 1000, 60_000, 5) >= 30_000);
        assert_eq!(backoff_ms(1, 1, 1, 0), 0);
    }
}
