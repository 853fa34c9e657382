//! Operations endpoints: health (SPEC §10 Ops).

use serde_json::json;

use super::{failure, success, App};

/// `GET /healthz`: the database answers a read.
pub fn healthz(app: &App) -> crate::http::Response {
    let empty = app.store.is_empty();
    match empty {
        Ok(_) => {
            let stats = app.store.batch_stats();
            success(json!({
                "status": "ok",
                "uptime_s": app.started.elapsed().as_secs(),
                "commits": stats.commits,
                "writes": stats.jobs,
                "largest_commit_batch": stats.largest,
            }))
        }
        Err(e) => failure(&e),
    }
}
