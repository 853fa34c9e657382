//! Operations endpoints: liveness, readiness and health.
//!
//! - `/livez`: the process runs (no database access).
//! - `/readyz`: a write can commit now (a heartbeat write, at most once a second).
//! - `/healthz`: detail, with `status` `ok` or `degraded` and the `problems` found.
//! - `/metrics`: counters, gauges and histograms in the Prometheus text format.
//! - `/openapi.json`: the OpenAPI 3.0 document of every endpoint.

use serde_json::{json, Value};

use super::{access, answer, App};
use crate::domain::time::now_ms;
use crate::domain::LedgerError;
use crate::http::Response;
use crate::store::Readiness;

/// `GET /livez`: 200 while the process runs.
pub fn livez() -> Response {
    access::code(0);
    Response::json(200, &json!({"code": 0, "message": "live"}))
}

/// `GET /readyz`: 200 when a write can commit now, else 503 with code 50301
/// and the reason.
pub fn readyz(app: &App) -> Response {
    match app.store.readiness() {
        Readiness::Ready => {
            access::code(0);
            Response::json(200, &json!({"code": 0, "message": "ready"}))
        }
        Readiness::NotReady { reason } => {
            let e = LedgerError::StorageUnavailable(reason.clone());
            access::code(e.code());
            Response::json(
                503,
                &json!({"code": e.code(), "message": format!("not ready: {reason}")}),
            )
        }
    }
}

/// `GET /metrics`: the Prometheus text format (see [`crate::metrics`]).
pub fn metrics(app: &App) -> Response {
    match app.metrics.render() {
        Ok(text) => Response::new(200, crate::metrics::CONTENT_TYPE, text.into_bytes()),
        Err(_) => answer(Err(LedgerError::Internal(
            "cannot render the metrics".into(),
        ))),
    }
}

/// The OpenAPI 3.0 document of every endpoint, kept beside the routing table.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /openapi.json`: [`OPENAPI_JSON`].
pub fn openapi() -> Response {
    Response::new(200, "application/json", OPENAPI_JSON.as_bytes().to_vec())
}

/// `GET /healthz`: outbox depth and age, the writer, and what is wrong.
pub fn healthz(app: &App) -> Response {
    answer(health(app))
}

fn health(app: &App) -> Result<Value, LedgerError> {
    let writer = app.store.writer_status();
    let stats = app.store.batch_stats();
    let mut problems: Vec<String> = Vec::new();
    if writer.stopped {
        problems.push("writer stopped: no write can commit".into());
    }
    if let Some(ms) = writer.stalled_for_ms {
        problems.push(format!(
            "writer stalled: a commit has been under way for {ms} ms"
        ));
    }
    if writer.failing {
        problems.push("storage unavailable: the last write failed (see /readyz)".into());
    }
    if let Some(e) = &writer.recent_error {
        problems.push(format!("write errors in the last minute: last was {e}"));
    }
    // The outbox counts are a read; a database that cannot be read is a problem too.
    let outbox = match app.store.outbox_health() {
        Ok(o) => Some(o),
        Err(e) => {
            problems.push(format!("database unreadable: {e}"));
            None
        }
    };
    let now = now_ms();
    let outbox_json = match &outbox {
        Some(o) => {
            let oldest_age_s = o.oldest_pending_ms.map(|t| (now - t).max(0) / 1000);
            if o.dead > 0 {
                problems.push(format!(
                    "{} dead sync call(s): retry or abandon them (GET /admin/outbox?state=dead)",
                    o.dead
                ));
            }
            if o.blocked > 0 {
                problems.push(format!(
                    "{} sync call(s) blocked behind a dead call",
                    o.blocked
                ));
            }
            if let Some(age) = oldest_age_s {
                if age > app.config.health_max_pending_age_s as i64 {
                    problems.push(format!(
                        "oldest pending sync call is {age} s old (limit {} s)",
                        app.config.health_max_pending_age_s
                    ));
                }
            }
            json!({
                "pending": o.pending,
                "dead": o.dead,
                "blocked_by_dead": o.blocked,
                "delivered": o.delivered,
                "abandoned": o.abandoned,
                "oldest_pending_age_s": oldest_age_s,
            })
        }
        None => Value::Null,
    };
    Ok(json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "uptime_s": app.started.elapsed().as_secs(),
        "sync": if app.config.platform.is_some() { "enabled" } else { "disabled" },
        "outbox": outbox_json,
        "edge": app.edge.health(&app.config),
        "writer": {
            "commits": stats.commits,
            "writes": stats.jobs,
            "largest_batch": stats.largest,
            "errors": writer.errors,
            "last_commit_age_ms": writer.last_commit_ms.map(|t| (now - t).max(0)),
        },
    }))
}
