//! Reading rows into domain values.

use rusqlite::{Connection, OptionalExtension, Row};

use crate::domain::ledger::{Coupon, JournalEntry, Redemption, Stock, StockCounts};
use crate::domain::stock::{
    CouponKind, CouponStatus, DiscountBlock, FixedBlock, StockSpec, StockStatus,
};
use crate::domain::LedgerError;

pub const STOCK_COLUMNS: &str = "stock_id, stock_name, app_channel_id, app_id, instructions, \
    coupon_name, coupon_desc, coupon_type, coupon_amount, transaction_minimum, discount_percent, \
    discount_amount_max, max_coupons, max_coupons_per_user, available_begin_ms, available_end_ms, \
    create_ms, stock_status, issued";

pub const COUPON_COLUMNS: &str = "coupon_id, stock_id, app_channel_id, user_code, mobile_masked, \
    app_id, coupon_type, coupon_amount, transaction_minimum, discount_percent, discount_amount_max, \
    available_begin_ms, available_end_ms, receive_ms, status, status_ms, usage_ms, request_id";

pub const REDEMPTION_COLUMNS: &str =
    "order_id, coupon_id, order_amount, discount_amount, pay_amount, usage_ms, undone_ms";

/// Rebuilds a kind from its stored columns; a stored row always satisfies the schema's CHECKs.
fn kind_at(row: &Row, at: usize) -> rusqlite::Result<CouponKind> {
    let coupon_type: i64 = row.get(at)?;
    let amount: Option<i64> = row.get(at + 1)?;
    let minimum: i64 = row.get(at + 2)?;
    let percent: Option<i64> = row.get(at + 3)?;
    let max: Option<i64> = row.get(at + 4)?;
    let fixed = amount.map(|a| FixedBlock {
        coupon_amount: a,
        transaction_minimum: minimum,
    });
    let discount = match (percent, max) {
        (Some(p), Some(m)) => Some(DiscountBlock {
            discount_amount_max: m,
            discount_percent: p,
            transaction_minimum: minimum,
        }),
        _ => None,
    };
    CouponKind::new(coupon_type, fixed, discount).map_err(|e| bad_row(at, &e.message()))
}

fn bad_row(at: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        at,
        rusqlite::types::Type::Integer,
        format!("stored row breaks a rule: {what}").into(),
    )
}

/// Builds a stock from a row selected with [`STOCK_COLUMNS`].
pub fn stock(row: &Row) -> rusqlite::Result<Stock> {
    let status: i64 = row.get(17)?;
    Ok(Stock {
        spec: StockSpec {
            stock_id: row.get(0)?,
            stock_name: row.get(1)?,
            app_channel_id: row.get(2)?,
            app_id: row.get(3)?,
            instructions: row.get(4)?,
            coupon_name: row.get(5)?,
            coupon_desc: row.get(6)?,
            kind: kind_at(row, 7)?,
            max_coupons: row.get(12)?,
            max_coupons_per_user: row.get(13)?,
            available_begin: row.get(14)?,
            available_end: row.get(15)?,
            status: StockStatus::from_code(status).ok_or_else(|| bad_row(17, "stock_status"))?,
        },
        create_ms: row.get(16)?,
        issued: row.get(18)?,
    })
}

/// Builds a coupon from a row selected with [`COUPON_COLUMNS`].
pub fn coupon(row: &Row) -> rusqlite::Result<Coupon> {
    let status: i64 = row.get(14)?;
    Ok(Coupon {
        coupon_id: row.get(0)?,
        stock_id: row.get(1)?,
        app_channel_id: row.get(2)?,
        user_code: row.get(3)?,
        mobile_masked: row.get(4)?,
        app_id: row.get(5)?,
        kind: kind_at(row, 6)?,
        available_begin: row.get(11)?,
        available_end: row.get(12)?,
        receive_ms: row.get(13)?,
        status: CouponStatus::from_code(status).ok_or_else(|| bad_row(14, "status"))?,
        status_ms: row.get(15)?,
        usage_ms: row.get(16)?,
        request_id: row.get(17)?,
    })
}

/// Builds a redemption from a row selected with [`REDEMPTION_COLUMNS`].
pub fn redemption(row: &Row) -> rusqlite::Result<Redemption> {
    Ok(Redemption {
        order_id: row.get(0)?,
        coupon_id: row.get(1)?,
        order_amount: row.get(2)?,
        discount_amount: row.get(3)?,
        pay_amount: row.get(4)?,
        usage_ms: row.get(5)?,
        undone_ms: row.get(6)?,
    })
}

/// Builds a journal entry from `SELECT * FROM journal`.
pub fn journal(row: &Row) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        id: row.get(0)?,
        entity: row.get(1)?,
        entity_id: row.get(2)?,
        event: row.get(3)?,
        from_status: row.get(4)?,
        to_status: row.get(5)?,
        source: row.get(6)?,
        seq_id: row.get(7)?,
        at_ms: row.get(8)?,
        detail: row.get(9)?,
    })
}

pub fn load_stock(conn: &Connection, stock_id: &str) -> Result<Option<Stock>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {STOCK_COLUMNS} FROM stocks WHERE stock_id = ?1"
        ))?
        .query_row([stock_id], stock)
        .optional()?)
}

pub fn load_coupon(conn: &Connection, coupon_id: &str) -> Result<Option<Coupon>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE coupon_id = ?1"
        ))?
        .query_row([coupon_id], coupon)
        .optional()?)
}

/// Counts a stock's coupons by state.
pub fn stock_counts(conn: &Connection, stock_id: &str) -> Result<StockCounts, LedgerError> {
    let mut counts = StockCounts::default();
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*) FROM coupons WHERE stock_id = ?1 GROUP BY status",
    )?;
    let rows = stmt.query_map([stock_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (status, n) = row?;
        counts.issued += n;
        match status {
            1 => counts.available = n,
            2 => counts.used = n,
            3 => counts.expired = n,
            4 => counts.deactivated = n,
            _ => {}
        }
    }
    Ok(counts)
}
