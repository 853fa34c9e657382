//! The access line of each request, and the log of refused authentication.
//!
//! A request is handled start to finish on one connection thread, so what the
//! handlers learn along the way (the partner, the `seq_id`, the protocol code)
//! is noted in a thread-local record and logged once when the answer is ready.
//! Never logged: phone numbers, secrets, signatures, bodies.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::http::{Request, Response};
use crate::metrics::Metrics;

#[derive(Default)]
struct Record {
    peer: Option<SocketAddr>,
    /// The client's address (the peer, or from `X-Forwarded-For` of a trusted proxy).
    client: Option<IpAddr>,
    partner: Option<String>,
    seq_id: Option<String>,
    code: Option<i64>,
    /// The route's method and path template, for metrics.
    template: Option<(&'static str, &'static str)>,
}

thread_local! {
    static CURRENT: RefCell<Record> = RefCell::new(Record::default());
}

/// Notes the partner (its configured name) and the request's `seq_id`.
pub fn partner(name: &str, seq_id: Option<&str>) {
    CURRENT.with(|r| {
        let mut r = r.borrow_mut();
        r.partner = Some(name.to_string());
        r.seq_id = seq_id.map(str::to_string);
    });
}

/// Notes the protocol code of the answer.
pub fn code(code: i64) {
    CURRENT.with(|r| r.borrow_mut().code = Some(code));
}

/// Notes the client's address.
pub fn client(ip: IpAddr) {
    CURRENT.with(|r| r.borrow_mut().client = Some(ip));
}

/// The client's address: as noted, else the peer's, else unspecified.
pub fn client_ip() -> IpAddr {
    CURRENT.with(|r| {
        let r = r.borrow();
        r.client
            .or(r.peer.map(|p| p.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    })
}

/// Notes the route's method and path template (`None`: not served).
pub fn template(template: Option<(&'static str, &'static str)>) {
    CURRENT.with(|r| r.borrow_mut().template = template);
}

/// The address the request came from, for log lines.
pub fn peer() -> String {
    CURRENT.with(|r| {
        r.borrow()
            .peer
            .map_or_else(|| "-".to_string(), |p| p.to_string())
    })
}

/// Logs a refused authentication (warn, rate-limited): what was wrong, the
/// key or token holder it claimed to be, and the peer address.
pub fn refused(what: &str, who: &str) {
    let peer = peer();
    crate::logging::auth_failure(format_args!("refused: {what}; key {who:?}; peer {peer}"));
}

/// Longest raw path written in an access line.
const MAX_LOGGED_PATH: usize = 100;

/// Runs `handle` for one request, counts it in `metrics` and logs its access
/// line at info: method, route, HTTP status, protocol code, latency, partner, `seq_id`.
/// `handle` names the route it took; admin calls and misses (`None`) are
/// logged with the request's path instead, shortened.
pub fn logged(
    req: &Request,
    metrics: &Metrics,
    handle: impl FnOnce() -> (Option<&'static str>, Response),
) -> Response {
    let started = Instant::now();
    CURRENT.with(|r| {
        *r.borrow_mut() = Record {
            peer: Some(req.peer),
            ..Record::default()
        }
    });
    let (route, response) = handle();
    let r = CURRENT.with(|r| std::mem::take(&mut *r.borrow_mut()));
    let micros = started.elapsed().as_micros();
    metrics.request(
        r.template,
        response.status,
        r.code,
        u64::try_from(micros).unwrap_or(u64::MAX),
    );
    if log::log_enabled!(target: "access", log::Level::Info) {
        let path: String;
        let route = match route {
            Some(named) => named,
            None => {
                path = req.path.chars().take(MAX_LOGGED_PATH).collect();
                path.as_str()
            }
        };
        log::info!(
            target: "access",
            "{} {} status={} code={} ms={}.{:03} partner={} seq_id={} peer={}",
            req.method.escape_debug(),
            route.escape_debug(),
            response.status,
            r.code.map_or_else(|| "-".to_string(), |c| c.to_string()),
            micros / 1000,
            micros % 1000,
            r.partner.as_deref().unwrap_or("-").escape_debug(),
            r.seq_id.as_deref().unwrap_or("-").escape_debug(),
            req.peer,
        );
    }
    response
}
