//! Wire protocols: each module parses its wire format into domain values, calls
//! the store, and renders the answer in its own vocabulary. No SQL here.

pub mod access;
pub mod admin;
pub mod auth;
pub mod gateway;
pub mod ops;
pub mod platform;
pub mod throttle;
pub mod wx;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::LedgerError;
use crate::http::{Request, Response};
use crate::store::Store;

/// What every handler needs: the validated config and the ledger.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub started: Instant,
    /// Failed admin tokens per source address.
    pub admin_throttle: throttle::AdminThrottle,
}

/// Which paths a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: partner, admin and ops paths (no `admin_listen`).
    All,
    /// Partner and ops paths; `/admin/*` answers 404 (it lives on `admin_listen`).
    Public,
    /// `admin_listen`: `/admin/*` and the ops paths only.
    Admin,
}

/// `{"code":0,"message":"successful","data":...}` with HTTP 200.
pub fn success(data: Value) -> Response {
    access::code(0);
    Response::json(
        200,
        &json!({"code": 0, "message": "successful", "data": data}),
    )
}

/// The HTTP status of a refusal that is not the caller's fault (500 internal,
/// 503 storage unavailable), logged here; `None` for protocol refusals.
pub fn server_fault(e: &LedgerError) -> Option<u16> {
    match e {
        LedgerError::Internal(detail) => {
            log::error!("internal error: {detail}");
            Some(500)
        }
        LedgerError::StorageUnavailable(detail) => {
            log::error!("storage unavailable: {detail}");
            Some(503)
        }
        _ => None,
    }
}

/// The envelope of a refusal. HTTP 200 for protocol codes, 401 for a bad
/// admin token, 413 for an oversized body, 429 (with `Retry-After`) when
/// rate limited, 500 for an internal error, 503 when storage is unavailable.
pub fn failure(e: &LedgerError) -> Response {
    access::code(e.code());
    let status = server_fault(e).unwrap_or(match e {
        LedgerError::BadAdminToken => 401,
        LedgerError::BodyTooLarge => 413,
        LedgerError::RateLimited { .. } => 429,
        _ => 200,
    });
    let response = Response::json(status, &json!({"code": e.code(), "message": e.message()}));
    match e {
        LedgerError::RateLimited { retry_after_s } => {
            response.with_header("Retry-After", &retry_after_s.to_string())
        }
        _ => response,
    }
}

/// Answers `Ok(data)` as success and `Err` as its failure envelope.
pub fn answer(result: Result<Value, LedgerError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(e) => failure(&e),
    }
}

fn status_only(status: u16, code: i64, message: &str) -> Response {
    access::code(code);
    Response::json(status, &json!({"code": code, "message": message}))
}

fn not_found(path: &str) -> Response {
    status_only(404, 40400, &format!("no such path: {path}"))
}

/// The routing table: one place that maps a method and path to a handler.
/// Returns the route's name for the access log with the answer.
pub fn route(app: &App, req: &Request, surface: Surface) -> (&'static str, Response) {
    let path = req.path.as_str();
    let post = req.method == "POST";
    let partner_paths = surface != Surface::Admin;
    let admin_paths = surface != Surface::Public;
    match path {
        "/sp/stock/query"
        | "/sp/coupon/receive"
        | "/sp/coupon/deactivate"
        | "/sp/coupon/batch-deactivate"
            if partner_paths =>
        {
            let name = match path {
                "/sp/stock/query" => "/sp/stock/query",
                "/sp/coupon/receive" => "/sp/coupon/receive",
                "/sp/coupon/deactivate" => "/sp/coupon/deactivate",
                _ => "/sp/coupon/batch-deactivate",
            };
            if !post {
                return (name, method_not_allowed("POST"));
            }
            (name, platform::handle(app, path, &req.body))
        }
        "/wx/coupon/query" if partner_paths => {
            if !post {
                return ("/wx/coupon/query", method_not_allowed("POST"));
            }
            ("/wx/coupon/query", wx::handle(app, &req.body))
        }
        "/gateway" if partner_paths => {
            if !post {
                return ("/gateway", method_not_allowed("POST"));
            }
            ("/gateway", gateway::handle(app, &req.body))
        }
        "/healthz" => ("/healthz", get_only(req, || ops::healthz(app))),
        "/livez" => ("/livez", get_only(req, ops::livez)),
        "/readyz" => ("/readyz", get_only(req, || ops::readyz(app))),
        p if admin_paths && (p == "/admin" || p.starts_with("/admin/")) => {
            ("/admin", admin::handle(app, req))
        }
        _ => ("-", not_found(path)),
    }
}

fn get_only(req: &Request, f: impl FnOnce() -> Response) -> Response {
    match req.method.as_str() {
        "GET" | "HEAD" => f(),
        _ => method_not_allowed("GET"),
    }
}

/// 405 with the allowed method named.
pub fn method_not_allowed(allowed: &str) -> Response {
    status_only(405, 40500, &format!("method not allowed; use {allowed}"))
        .with_header("Allow", allowed)
}

/// The application as an HTTP handler for a listener serving `surface`.
pub fn handler(app: Arc<App>, surface: Surface) -> crate::http::Handler {
    Arc::new(move |req: &Request| access::logged(req, || route(&app, req, surface)))
}
