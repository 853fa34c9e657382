//! A fast way to put many coupons into a stock, for benchmarks and tests:
//! plain inserts in large transactions instead of one claim per request.
//!
//! The rows are the ones a claim writes (coupon, journal row, and the sync call
//! when sync is enabled), and the schema's triggers check every coupon as for
//! a claim, so the database holds every invariant `check` verifies.

use rusqlite::Connection;

use super::coupons;
use super::journal::{Entity, JournalRow};
use super::stocks;
use super::tx::Tx;
use crate::domain::ledger::{Coupon, SyncEvent};
use crate::domain::stock::{CouponStatus, StockStatus};
use crate::domain::LedgerError;

/// Coupons inserted per write job by `Store::bulk_fill`. Jobs stay small
/// because SQLite's in-memory sub-journal makes each statement in a job cost
/// time in proportion to what the job already changed: 5,000 coupons in one
/// job filled 1,700 coupons/s, 100 per job fill many times faster. The writer
/// still commits many jobs together.
pub const FILL_BATCH: u64 = 100;
/// Fill jobs queued for the writer at once, so that it can group them.
pub(super) const FILL_JOBS_IN_FLIGHT: usize = 64;

/// Inserts coupons `first..first + count` of one fill run (user and request
/// id `fill<run>x<i>`), as the operator.
pub(super) fn fill(
    tx: &Tx,
    stock_id: &str,
    run: &str,
    first: u64,
    count: u64,
) -> Result<(), LedgerError> {
    let conn: &Connection = tx.conn;
    let stock = stocks::get(conn, stock_id)?;
    let spec = &stock.spec;
    let origin = tx.origin;
    if spec.status != StockStatus::Running {
        return Err(LedgerError::StockNotRunning);
    }
    if origin.now >= spec.available_end {
        return Err(LedgerError::StockOutsideWindow);
    }
    if stock.issued.saturating_add(count as i64) > spec.max_coupons {
        return Err(LedgerError::SoldOut);
    }
    for i in first..first + count {
        let name = format!("fill{run}x{i}");
        let Some((coupon_id, seq)) = coupons::insert(tx, spec, &name, None, "admin", &name)? else {
            return Err(LedgerError::Internal(format!(
                "fill: request_id {name} is already taken"
            )));
        };
        tx.journal(
            JournalRow::new(Entity::Coupon, &coupon_id, "issue")
                .coupon_seq(seq)
                .moved(None, Some(CouponStatus::Available.code()))
                .issue_detail(stock_id, &name),
        )?;
        {
            let coupon = Coupon {
                coupon_id,
                stock_id: stock_id.to_string(),
                app_channel_id: spec.app_channel_id,
                user_code: name.clone(),
                mobile_masked: None,
                app_id: spec.app_id.clone(),
                kind: spec.kind,
                available_begin: spec.available_begin,
                available_end: spec.available_end,
                receive_ms: origin.now,
                status: CouponStatus::Available,
                status_ms: origin.now,
                usage_ms: None,
                request_id: name,
            };
            tx.enqueue(&SyncEvent::CouponIssued(coupon))?;
        }
    }
    Ok(())
}
