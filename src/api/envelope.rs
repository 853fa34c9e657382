//! The `{code, message, data}` envelope of the platform and admin APIs, and
//! the HTTP status that goes with each refusal.

use serde_json::{json, Map, Value};

use super::access;
use crate::domain::LedgerError;
use crate::http::Response;

/// `{"code":0,"message":"successful","data":...}` with HTTP 200.
pub fn success(data: Value) -> Response {
    access::code(0);
    // Built by hand so that `data` is moved in: `json!` would serialise it
    // into a copy, which was a tenth of a claim's answer.
    let mut m = Map::new();
    m.insert("code".into(), Value::from(0));
    m.insert("message".into(), Value::from("successful"));
    m.insert("data".into(), data);
    Response::json(200, &Value::Object(m))
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

/// The HTTP status of a refusal: 200 for protocol codes, 401 for a bad admin
/// token, 403 for a source not allowed or a change asked by a read-only
/// operator, 429 when rate limited, 500 for an
/// internal error, 503 when storage is unavailable (the last two logged).
pub fn http_status(e: &LedgerError) -> u16 {
    server_fault(e).unwrap_or(match e {
        LedgerError::BadAdminToken => 401,
        LedgerError::SourceNotAllowed | LedgerError::ReadOnlyOperator(_) => 403,
        LedgerError::RateLimited { .. } => 429,
        _ => 200,
    })
}

/// Adds `Retry-After` to the answer of a rate-limited request.
pub fn with_retry_after(response: Response, e: &LedgerError) -> Response {
    match e {
        LedgerError::RateLimited { retry_after_s } => {
            response.with_header("Retry-After", &retry_after_s.to_string())
        }
        _ => response,
    }
}

/// The envelope of a refusal, with its [`http_status`].
pub fn failure(e: &LedgerError) -> Response {
    access::code(e.code());
    let response = Response::json(
        http_status(e),
        &json!({"code": e.code(), "message": e.message()}),
    );
    with_retry_after(response, e)
}

/// Answers `Ok(data)` as success and `Err` as its failure envelope.
pub fn answer(result: Result<Value, LedgerError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(e) => failure(&e),
    }
}

pub fn status_only(status: u16, code: i64, message: &str) -> Response {
    access::code(code);
    Response::json(status, &json!({"code": code, "message": message}))
}

pub fn not_found(path: &str) -> Response {
    status_only(404, 40400, &format!("no such path: {path}"))
}

/// 405 with the allowed method named.
pub fn method_not_allowed(allowed: &str) -> Response {
    status_only(405, 40500, &format!("method not allowed; use {allowed}"))
        .with_header("Allow", allowed)
}
