//! A fast way to put many coupons into a stock, for benchmarks and tests:
//! plain inserts in large transactions instead of one claim per request.
//!
//! The rows are the ones a claim writes (coupon, journal row, and the sync call
//! when sync is enabled), and the schema's triggers check every coupon as for
//! a claim, so the database holds every invariant `check` verifies.

use rusqlite::{params, Connection};
use serde_json::json;

use super::ledger::{journal, kind_columns};
use super::outbox::{enqueue, SyncRenderer};
use super::rows::load_stock;
use super::Store;
use crate::domain::coupon::{new_coupon_id, random_hex};
use crate::domain::ledger::{Coupon, Origin, Source, SyncEvent};
use crate::domain::stock::{CouponStatus, StockStatus};
use crate::domain::time::now_ms;
use crate::domain::LedgerError;

/// Coupons inserted per transaction by [`Store::bulk_fill`].
pub const FILL_BATCH: u64 = 50_000;

impl Store {
    /// Issues `n` coupons of `stock_id` to `n` new users, [`FILL_BATCH`] per
    /// transaction, as the operator (`issuer` `admin`, journal source `admin`).
    /// The stock must be running, inside its window, with room for them.
    /// Returns how many were inserted; on an error, the batches before it stay.
    pub fn bulk_fill(&self, stock_id: &str, n: u64) -> Result<u64, LedgerError> {
        let run = random_hex(4).map_err(LedgerError::Internal)?;
        let mut done = 0u64;
        while done < n {
            let count = (n - done).min(FILL_BATCH);
            let (id, run, sync) = (stock_id.to_string(), run.clone(), self.inner.sync.clone());
            let first = done;
            self.write(move |c| fill_tx(c, &id, &run, first, count, sync.as_ref()))?;
            done += count;
        }
        Ok(done)
    }
}

/// Inserts coupons `first..first + count` of one fill run.
fn fill_tx(
    conn: &Connection,
    stock_id: &str,
    run: &str,
    first: u64,
    count: u64,
    sync: Option<&SyncRenderer>,
) -> Result<(), LedgerError> {
    let stock = load_stock(conn, stock_id)?.ok_or(LedgerError::StockNotFound)?;
    let spec = &stock.spec;
    let origin = Origin {
        source: Source::Admin,
        seq_id: None,
        now: now_ms(),
    };
    if spec.status != StockStatus::Running {
        return Err(LedgerError::StockNotRunning);
    }
    if origin.now >= spec.available_end {
        return Err(LedgerError::StockOutsideWindow);
    }
    if stock.issued.saturating_add(count as i64) > spec.max_coupons {
        return Err(LedgerError::SoldOut);
    }
    let (t, amount, minimum, percent, max) = kind_columns(&spec.kind);
    let mut insert = conn.prepare_cached(
        "INSERT INTO coupons (coupon_id, stock_id, app_channel_id, user_code, mobile_masked,
            issuer, request_id, app_id, coupon_type, coupon_amount, transaction_minimum,
            discount_percent, discount_amount_max, available_begin_ms, available_end_ms,
            receive_ms, status, status_ms)
         VALUES (?1, ?2, ?3, ?4, NULL, 'admin', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1, ?14)
         ON CONFLICT (coupon_id) DO NOTHING",
    )?;
    for i in first..first + count {
        let name = format!("fill{run}x{i}");
        let mut attempts = 0;
        let coupon_id = loop {
            let id = new_coupon_id().map_err(LedgerError::Internal)?;
            let inserted = insert.execute(params![
                id,
                stock_id,
                spec.app_channel_id,
                name,
                name,
                spec.app_id,
                t,
                amount,
                minimum,
                percent,
                max,
                spec.available_begin,
                spec.available_end,
                origin.now
            ])?;
            if inserted == 1 {
                break id;
            }
            attempts += 1;
            if attempts > 8 {
                return Err(LedgerError::Internal(
                    "could not draw an unused coupon id".into(),
                ));
            }
        };
        let detail = json!({"stock_id": stock_id, "request_id": name}).to_string();
        journal(
            conn,
            "coupon",
            &coupon_id,
            "issue",
            None,
            Some(CouponStatus::Available.code()),
            &origin,
            Some(detail),
        )?;
        if sync.is_some() {
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
            enqueue(conn, sync, &SyncEvent::CouponIssued(coupon), &origin)?;
        }
    }
    Ok(())
}
