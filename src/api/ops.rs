//! Operations endpoints: health (SPEC §10 Ops).

use serde_json::{json, Value};

use super::{answer, App};
use crate::domain::time::now_ms;
use crate::domain::LedgerError;

/// `GET /healthz`: the database answers a read; outbox depth and age, writer batching.
pub fn healthz(app: &App) -> crate::http::Response {
    answer(health(app))
}

fn health(app: &App) -> Result<Value, LedgerError> {
    let outbox = app.store.outbox_health()?;
    let stats = app.store.batch_stats();
    let oldest_age_s = outbox
        .oldest_pending_ms
        .map(|t| (now_ms() - t).max(0) / 1000);
    Ok(json!({
        "status": "ok",
        "uptime_s": app.started.elapsed().as_secs(),
        "sync": if app.config.platform.is_some() { "enabled" } else { "disabled" },
        "outbox": {
            "pending": outbox.pending,
            "dead": outbox.dead,
            "blocked_by_dead": outbox.blocked,
            "delivered": outbox.delivered,
            "abandoned": outbox.abandoned,
            "oldest_pending_age_s": oldest_age_s,
        },
        "writer": {"commits": stats.commits, "writes": stats.jobs, "largest_batch": stats.largest},
    }))
}
