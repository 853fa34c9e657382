//! Wire protocols: each module parses its wire format into domain values, calls
//! the store, and renders the answer in its own vocabulary. No SQL here.

pub mod admin;
pub mod fields;
pub mod gateway;
pub mod ops;
pub mod platform;
pub mod render;
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
}

/// `{"code":0,"message":"successful","data":...}` with HTTP 200.
pub fn success(data: Value) -> Response {
    Response::json(
        200,
        &json!({"code": 0, "message": "successful", "data": data}),
    )
}

/// The envelope of a refusal. HTTP 200 for protocol codes (SPEC §4), 401 for a
/// bad admin token, 413 for an oversized body, 500 for an internal error.
pub fn failure(e: &LedgerError) -> Response {
    let status = match e {
        LedgerError::BadAdminToken => 401,
        LedgerError::BodyTooLarge => 413,
        LedgerError::Internal(detail) => {
            log::error!("internal error: {detail}");
            500
        }
        _ => 200,
    };
    Response::json(status, &json!({"code": e.code(), "message": e.message()}))
}

/// Answers `Ok(data)` as success and `Err` as its failure envelope.
pub fn answer(result: Result<Value, LedgerError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(e) => failure(&e),
    }
}

fn status_only(status: u16, code: i64, message: &str) -> Response {
    Response::json(status, &json!({"code": code, "message": message}))
}

/// The routing table: one place that maps a method and path to a handler.
pub fn route(app: &App, req: &Request) -> Response {
    let path = req.path.as_str();
    let post = req.method == "POST";
    match path {
        "/sp/stock/query"
        | "/sp/coupon/receive"
        | "/sp/coupon/deactivate"
        | "/sp/coupon/batch-deactivate" => {
            if !post {
                return method_not_allowed("POST");
            }
            platform::handle(app, path, &req.body)
        }
        "/wx/coupon/query" => {
            if !post {
                return method_not_allowed("POST");
            }
            wx::handle(app, &req.body)
        }
        "/gateway" => {
            if !post {
                return method_not_allowed("POST");
            }
            gateway::handle(app, &req.body)
        }
        "/healthz" => match req.method.as_str() {
            "GET" | "HEAD" => ops::healthz(app),
            _ => method_not_allowed("GET"),
        },
        p if p == "/admin" || p.starts_with("/admin/") => admin::handle(app, req),
        _ => status_only(404, 40400, &format!("no such path: {path}")),
    }
}

/// 405 with the allowed method named.
pub fn method_not_allowed(allowed: &str) -> Response {
    status_only(405, 40500, &format!("method not allowed; use {allowed}"))
        .with_header("Allow", allowed)
}

/// The application as an HTTP handler.
pub fn handler(app: Arc<App>) -> crate::http::Handler {
    Arc::new(move |req: &Request| route(&app, req))
}
