//! Redemptions: a coupon used against an order, and undone for a refund.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

use super::coupons;
use super::tx::{from_constraint, Tx};
use crate::domain::discount::{discount, DiscountRefusal};
use crate::domain::ledger::Redemption;
use crate::domain::money::Fen;
use crate::domain::stock::CouponStatus;
use crate::domain::LedgerError;

/// Builds a redemption from a row of `redemptions` (columns by name).
fn redemption_row(row: &Row) -> rusqlite::Result<Redemption> {
    Ok(Redemption {
        order_id: row.get("order_id")?,
        coupon_id: row.get("coupon_id")?,
        order_amount: row.get("order_amount")?,
        discount_amount: row.get("discount_amount")?,
        pay_amount: row.get("pay_amount")?,
        usage_ms: row.get("usage_ms")?,
        undone_ms: row.get("undone_ms")?,
    })
}

fn load(conn: &Connection, order_id: &str) -> Result<Option<Redemption>, LedgerError> {
    Ok(conn
        .prepare_cached(
            "SELECT order_id, coupon_id, order_amount, discount_amount, pay_amount, usage_ms,
                undone_ms FROM redemptions WHERE order_id = ?1",
        )?
        .query_row([order_id], redemption_row)
        .optional()?)
}

/// Redeems a coupon against an order, idempotent by `order_id`.
pub(super) fn redeem(
    tx: &Tx,
    coupon_id: &str,
    order_id: &str,
    order_amount: Fen,
) -> Result<Redemption, LedgerError> {
    if let Some(r) = load(tx.conn, order_id)? {
        if r.coupon_id == coupon_id && r.order_amount == order_amount && r.undone_ms.is_none() {
            return Ok(r);
        }
        let why = if r.undone_ms.is_some() {
            "order_id: its redemption was undone; use a new order_id"
        } else {
            "order_id: already used with different parameters"
        };
        return Err(LedgerError::IdempotencyConflict(why.into()));
    }
    let coupon = coupons::get(tx.conn, coupon_id)?;
    if coupon.status != CouponStatus::Available {
        return Err(LedgerError::StateConflict(format!(
            "coupon_status: {} does not allow a redemption",
            coupon.status.code()
        )));
    }
    let now = tx.now();
    if now < coupon.available_begin || now >= coupon.available_end {
        return Err(LedgerError::StateConflict(
            "coupon is outside its validity window".into(),
        ));
    }
    let d = discount(&coupon.kind, order_amount)
        .map_err(|DiscountRefusal::BelowThreshold| LedgerError::BelowThreshold)?;
    tx.conn
        .prepare_cached(
            "INSERT INTO redemptions (order_id, coupon_id, order_amount, discount_amount, pay_amount, usage_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![order_id, coupon_id, order_amount, d.discount, d.pay, now])
        .map_err(from_constraint)?;
    let detail = json!({
        "order_id": order_id, "order_amount": order_amount,
        "discount_amount": d.discount, "pay_amount": d.pay,
    });
    coupons::set_status(
        tx,
        &coupon,
        CouponStatus::Used,
        Some(now),
        "redeem",
        Some(detail),
    )?;
    Ok(Redemption {
        order_id: order_id.to_string(),
        coupon_id: coupon_id.to_string(),
        order_amount,
        discount_amount: d.discount,
        pay_amount: d.pay,
        usage_ms: now,
        undone_ms: None,
    })
}

/// Undoes the redemption of `order_id` while the coupon's window is open.
pub(super) fn unredeem(
    tx: &Tx,
    coupon_id: &str,
    order_id: &str,
) -> Result<Redemption, LedgerError> {
    let r = load(tx.conn, order_id)?
        .filter(|r| r.coupon_id == coupon_id)
        .ok_or_else(|| {
            LedgerError::invalid("order_id", "no redemption of this coupon has this order_id")
        })?;
    if r.undone_ms.is_some() {
        return Ok(r);
    }
    let coupon = coupons::get(tx.conn, coupon_id)?;
    if coupon.status != CouponStatus::Used {
        return Err(LedgerError::StateConflict(format!(
            "coupon_status: {} does not allow an un-redemption",
            coupon.status.code()
        )));
    }
    if tx.now() >= coupon.available_end {
        return Err(LedgerError::StateConflict(
            "coupon's window has closed; it can no longer be un-redeemed".into(),
        ));
    }
    tx.conn
        .prepare_cached("UPDATE redemptions SET undone_ms = ?2 WHERE order_id = ?1")?
        .execute(params![order_id, tx.now()])?;
    let detail = json!({"order_id": order_id, "order_amount": r.order_amount,
                        "discount_amount": r.discount_amount, "pay_amount": r.pay_amount});
    coupons::set_status(
        tx,
        &coupon,
        CouponStatus::Available,
        None,
        "unredeem",
        Some(detail),
    )?;
    Ok(Redemption {
        undone_ms: Some(tx.now()),
        ..r
    })
}
