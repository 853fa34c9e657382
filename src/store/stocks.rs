//! Stocks: create, edit, change status, and read with their counts.

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::journal::{Entity, JournalRow};
use super::tx::{from_constraint, Tx};
use crate::domain::ledger::{Stock, StockCounts, StockPatch, SyncEvent};
use crate::domain::money::Fen;
use crate::domain::stock::{
    CouponKind, DiscountBlock, FixedBlock, StockDraft, StockSpec, StockStatus,
};
use crate::domain::LedgerError;

/// The columns [`stock_row`] reads, first in a SELECT, in this order.
pub(super) const STOCK_COLUMNS: &str = "stock_id, stock_name, app_channel_id, app_id, \
    instructions, coupon_name, coupon_desc, coupon_type, coupon_amount, transaction_minimum, \
    discount_percent, discount_amount_max, max_coupons, max_coupons_per_user, \
    available_begin_ms, available_end_ms, create_ms, stock_status, issued";

/// [`STOCK_COLUMNS`] one by one (a test keeps the two the same).
pub(super) const STOCK_FIELDS: &[&str] = &[
    "stock_id",
    "stock_name",
    "app_channel_id",
    "app_id",
    "instructions",
    "coupon_name",
    "coupon_desc",
    "coupon_type",
    "coupon_amount",
    "transaction_minimum",
    "discount_percent",
    "discount_amount_max",
    "max_coupons",
    "max_coupons_per_user",
    "available_begin_ms",
    "available_end_ms",
    "create_ms",
    "stock_status",
    "issued",
];

/// The place of column `name` among `fields`, for reading a row by place
/// instead of by name: rusqlite finds a name by comparing it with every
/// column's, which was 4 % of the writer's time in `stock_row` alone. Used in
/// `const` blocks, so a name that is not there fails the build.
pub(super) const fn place(fields: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        let f = fields[i].as_bytes();
        let n = name.as_bytes();
        if f.len() == n.len() {
            let mut j = 0;
            while j < f.len() && f[j] == n[j] {
                j += 1;
            }
            if j == f.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such column")
}

/// The places of the five columns a kind is stored in (see [`kind_columns`]).
pub(super) const fn kind_places(fields: &[&str]) -> [usize; 5] {
    [
        place(fields, "coupon_type"),
        place(fields, "coupon_amount"),
        place(fields, "transaction_minimum"),
        place(fields, "discount_percent"),
        place(fields, "discount_amount_max"),
    ]
}

/// Whether `columns` (a SELECT list) names exactly `fields`, in order.
#[cfg(test)]
pub(super) fn same_columns(columns: &str, fields: &[&str]) -> bool {
    columns.split(',').map(str::trim).eq(fields.iter().copied())
}

/// The stored columns of a kind: type, coupon_amount, minimum, percent, max.
pub(super) fn kind_columns(kind: &CouponKind) -> (i64, Option<Fen>, Fen, Option<i64>, Option<Fen>) {
    match *kind {
        CouponKind::FixedOff { amount, minimum } => (1, Some(amount), minimum, None, None),
        CouponKind::CutTo { price, minimum } => (2, Some(price), minimum, None, None),
        CouponKind::Percent {
            percent,
            max,
            minimum,
        } => (3, None, minimum, Some(percent), Some(max)),
    }
}

/// Rebuilds a kind from its stored columns (the inverse of [`kind_columns`]);
/// a stored row always satisfies the schema's CHECKs.
/// `at` gives the columns' places ([`kind_places`]).
pub(super) fn kind_of_row(row: &Row, at: [usize; 5]) -> rusqlite::Result<CouponKind> {
    let coupon_type: i64 = row.get(at[0])?;
    let amount: Option<Fen> = row.get(at[1])?;
    let minimum: Fen = row.get(at[2])?;
    let percent: Option<i64> = row.get(at[3])?;
    let max: Option<Fen> = row.get(at[4])?;
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
    CouponKind::new(coupon_type, fixed, discount).map_err(|e| bad_row("coupon_type", &e.message()))
}

/// A stored value that breaks a rule the schema should have kept.
pub(super) fn bad_row(column: &str, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Integer,
        format!("stored row breaks a rule: {column}: {what}").into(),
    )
}

/// Builds a stock from a row selected with [`STOCK_COLUMNS`].
fn stock_row(row: &Row) -> rusqlite::Result<Stock> {
    macro_rules! at {
        ($name:literal) => {
            const { place(STOCK_FIELDS, $name) }
        };
    }
    let status: i64 = row.get(at!("stock_status"))?;
    let draft = StockDraft {
        stock_id: row.get(at!("stock_id"))?,
        stock_name: row.get(at!("stock_name"))?,
        app_channel_id: row.get(at!("app_channel_id"))?,
        app_id: row.get(at!("app_id"))?,
        instructions: row.get(at!("instructions"))?,
        coupon_name: row.get(at!("coupon_name"))?,
        coupon_desc: row.get(at!("coupon_desc"))?,
        kind: kind_of_row(row, const { kind_places(STOCK_FIELDS) })?,
        max_coupons: row.get(at!("max_coupons"))?,
        max_coupons_per_user: row.get(at!("max_coupons_per_user"))?,
        available_begin: row.get(at!("available_begin_ms"))?,
        available_end: row.get(at!("available_end_ms"))?,
        status: StockStatus::from_code(status)
            .ok_or_else(|| bad_row("stock_status", "unknown status"))?,
    };
    Ok(Stock {
        spec: StockSpec::new(draft).map_err(|e| bad_row("stock", &e.message()))?,
        create_ms: row.get(at!("create_ms"))?,
        issued: row.get(at!("issued"))?,
    })
}

/// One stock, if it exists.
pub(super) fn load(conn: &Connection, stock_id: &str) -> Result<Option<Stock>, LedgerError> {
    // Every claim reads its stock: the statement's text is made once.
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {STOCK_COLUMNS} FROM stocks WHERE stock_id = ?1"));
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row([stock_id], stock_row)
        .optional()?)
}

/// One stock, or 40401.
pub(super) fn get(conn: &Connection, stock_id: &str) -> Result<Stock, LedgerError> {
    load(conn, stock_id)?.ok_or(LedgerError::StockNotFound)
}

/// Every stock, oldest first.
pub(super) fn all(conn: &Connection) -> Result<Vec<Stock>, LedgerError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STOCK_COLUMNS} FROM stocks ORDER BY create_ms, stock_id"
    ))?;
    let stocks = stmt.query_map([], stock_row)?;
    Ok(stocks.collect::<Result<Vec<_>, _>>()?)
}

/// A stock's coupons by state, from the counters the schema keeps on the
/// stock's row (one row read, whatever the number of coupons).
pub(super) fn counts(conn: &Connection, stock_id: &str) -> Result<StockCounts, LedgerError> {
    conn.prepare_cached(
        "SELECT issued, used, expired, deactivated FROM stocks WHERE stock_id = ?1",
    )?
    .query_row([stock_id], |r| {
        let issued: i64 = r.get("issued")?;
        let used: i64 = r.get("used")?;
        let expired: i64 = r.get("expired")?;
        let deactivated: i64 = r.get("deactivated")?;
        Ok(StockCounts {
            issued,
            available: issued - used - expired - deactivated,
            used,
            expired,
            deactivated,
        })
    })
    .optional()?
    .ok_or(LedgerError::StockNotFound)
}

/// Inserts a stock, or overwrites the editable fields of an existing one; the
/// schema's triggers refuse what is frozen. Status changes go through their own path.
fn write(conn: &Connection, spec: &StockSpec, create_ms: i64) -> Result<(), LedgerError> {
    let (t, amount, minimum, percent, max) = kind_columns(&spec.kind);
    conn.prepare_cached(
        "INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions, coupon_name,
            coupon_desc, coupon_type, coupon_amount, transaction_minimum, discount_percent,
            discount_amount_max, max_coupons, max_coupons_per_user, available_begin_ms,
            available_end_ms, create_ms, stock_status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (stock_id) DO UPDATE SET
            stock_name = excluded.stock_name, app_channel_id = excluded.app_channel_id,
            app_id = excluded.app_id, instructions = excluded.instructions,
            coupon_name = excluded.coupon_name, coupon_desc = excluded.coupon_desc,
            coupon_type = excluded.coupon_type, coupon_amount = excluded.coupon_amount,
            transaction_minimum = excluded.transaction_minimum,
            discount_percent = excluded.discount_percent,
            discount_amount_max = excluded.discount_amount_max, max_coupons = excluded.max_coupons,
            max_coupons_per_user = excluded.max_coupons_per_user,
            available_begin_ms = excluded.available_begin_ms,
            available_end_ms = excluded.available_end_ms",
    )?
    .execute(params![
        spec.stock_id,
        spec.stock_name,
        spec.app_channel_id,
        spec.app_id,
        spec.instructions,
        spec.coupon_name,
        spec.coupon_desc,
        t,
        amount,
        minimum,
        percent,
        max,
        spec.max_coupons,
        spec.max_coupons_per_user,
        spec.available_begin,
        spec.available_end,
        create_ms,
        spec.status.code()
    ])
    .map_err(from_constraint)?;
    Ok(())
}

/// Creates a stock; the same definition again answers the existing stock.
pub(super) fn create(tx: &Tx, spec: StockSpec) -> Result<Stock, LedgerError> {
    if let Some(existing) = load(tx.conn, &spec.stock_id)? {
        if existing.spec == spec {
            return Ok(existing);
        }
        return Err(LedgerError::IdempotencyConflict(format!(
            "stock_id: {} already exists with different fields",
            spec.stock_id
        )));
    }
    write(tx.conn, &spec, tx.now())?;
    tx.journal(
        JournalRow::new(Entity::Stock, &spec.stock_id, "create")
            .moved(None, Some(spec.status.code())),
    )?;
    let stock = Stock {
        spec,
        create_ms: tx.now(),
        issued: 0,
    };
    tx.enqueue(&SyncEvent::StockUpserted(stock.clone()))?;
    Ok(stock)
}

/// Edits a stock's editable fields; what the first coupon froze stays.
pub(super) fn patch(tx: &Tx, stock_id: &str, patch: StockPatch) -> Result<Stock, LedgerError> {
    let stock = get(tx.conn, stock_id)?;
    let spec = stock.patched(patch)?;
    write(tx.conn, &spec, stock.create_ms)?;
    let status = Some(spec.status.code());
    tx.journal(JournalRow::new(Entity::Stock, stock_id, "edit").moved(status, status))?;
    let stock = Stock { spec, ..stock };
    tx.enqueue(&SyncEvent::StockUpserted(stock.clone()))?;
    Ok(stock)
}

/// Moves a stock along its state machine.
pub(super) fn set_status(tx: &Tx, stock_id: &str, to: StockStatus) -> Result<Stock, LedgerError> {
    let mut stock = get(tx.conn, stock_id)?;
    let from = stock.spec.status;
    if !from.can_become(to) {
        return Err(LedgerError::StateConflict(format!(
            "stock_status: {} cannot become {}",
            from.code(),
            to.code()
        )));
    }
    tx.conn
        .prepare_cached("UPDATE stocks SET stock_status = ?2 WHERE stock_id = ?1")?
        .execute(params![stock_id, to.code()])
        .map_err(from_constraint)?;
    tx.journal(
        JournalRow::new(Entity::Stock, stock_id, "status")
            .moved(Some(from.code()), Some(to.code())),
    )?;
    tx.enqueue(&SyncEvent::StockStatus {
        stock_id: stock_id.to_string(),
        status: to.code(),
    })?;
    stock.spec = stock.spec.with_status(to);
    Ok(stock)
}
