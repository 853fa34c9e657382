//! Activity: how many coupon journal events of each kind happened per hour,
//! for the operator's chart. One grouped query on `journal (at_ms, event)`.

use rusqlite::{params, Connection};

use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// Coupon journal events of one kind within one local hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// Start of the hour (in the offset the caller gave), as UTC ms.
    pub hour_ms: Millis,
    /// The journal event: `issue`, `redeem`, `unredeem`, `expire`, `deactivate`.
    pub event: String,
    pub count: i64,
}

const HOUR_MS: i64 = 3_600_000;

/// Counts the coupon journal rows at or after `since_ms`, grouped by the
/// hour they fall in (hours start on the hour of `offset_ms`) and by event,
/// oldest hour first. The range scan uses `journal_by_time`.
pub(super) fn coupon_events_per_hour(
    conn: &Connection,
    since_ms: Millis,
    offset_ms: i64,
) -> Result<Vec<HourCount>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ((at_ms + ?2) / ?3) * ?3 - ?2 AS hour_ms, event, COUNT(*)
         FROM journal
         WHERE at_ms >= ?1 AND entity = 'coupon'
         GROUP BY hour_ms, event
         ORDER BY hour_ms, event",
    )?;
    let rows = stmt.query_map(params![since_ms, offset_ms, HOUR_MS], |r| {
        Ok(HourCount {
            hour_ms: r.get(0)?,
            event: r.get(1)?,
            count: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
