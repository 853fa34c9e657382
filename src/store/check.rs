//! `coupon-ledger check DB`: verifies every invariant of docs/protocol.md, the ledger's rules on a database file.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::SCHEMA_VERSION;
use crate::domain::stock::{CouponStatus, StockStatus};

/// Checks a ledger database and returns every violation found (empty: all good).
/// Opens the file read-only; fails if it cannot be read at all.
pub fn check_database(path: &Path) -> Result<Vec<String>, String> {
    if !path.exists() {
        return Err(format!("{}: no such database file", path.display()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; BEGIN")
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut v = Vec::new();
    run_checks(&conn, &mut v).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(v)
}

fn strings(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    strings_with(conn, sql, [])
}

/// [`strings`] with bound parameters: the ledger's states come from their
/// Rust types, never from literals in the SQL.
fn strings_with(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn run_checks(conn: &Connection, v: &mut Vec<String>) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        v.push(format!(
            "schema version is {version}, expected {SCHEMA_VERSION}"
        ));
        return Ok(());
    }
    for line in strings(conn, "PRAGMA integrity_check")? {
        if line != "ok" {
            v.push(format!("integrity_check: {line}"));
        }
    }
    let fk: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if fk > 0 {
        v.push(format!("{fk} rows break a foreign key"));
    }
    for t in [
        "journal_append_only_update",
        "journal_append_only_delete",
        "coupons_claim_rules",
        "coupons_count_issue",
        "coupons_count_status",
    ] {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [t],
            |r| r.get(0),
        )?;
        if n == 0 {
            v.push(format!("trigger {t} is missing"));
        }
    }
    v.extend(strings(
        conn,
        // One pass over the coupons, grouped by stock, against the counters
        // the triggers keep on each stock's row.
        "WITH n AS (SELECT stock_id, count(*) AS issued, sum(status = 2) AS used,
                           sum(status = 3) AS expired, sum(status = 4) AS deactivated
                    FROM coupons GROUP BY stock_id)
         SELECT 'stock ' || s.stock_id || ': counters issued/used/expired/deactivated '
                || s.issued || '/' || s.used || '/' || s.expired || '/' || s.deactivated
                || ' but its coupons are ' || coalesce(n.issued, 0) || '/' || coalesce(n.used, 0)
                || '/' || coalesce(n.expired, 0) || '/' || coalesce(n.deactivated, 0)
         FROM stocks s LEFT JOIN n ON n.stock_id = s.stock_id
         WHERE s.issued <> coalesce(n.issued, 0) OR s.used <> coalesce(n.used, 0)
            OR s.expired <> coalesce(n.expired, 0) OR s.deactivated <> coalesce(n.deactivated, 0)",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'stock ' || stock_id || ': ' || issued || ' issued, over max_coupons ' || max_coupons
         FROM stocks WHERE issued > max_coupons",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'stock ' || c.stock_id || ': user ' || c.app_channel_id || '/' || c.user_code || ' holds '
                || count(*) || ', over max_coupons_per_user ' || s.max_coupons_per_user
         FROM coupons c JOIN stocks s ON s.stock_id = c.stock_id
         GROUP BY c.user_code, c.stock_id, c.app_channel_id
         HAVING count(*) > s.max_coupons_per_user",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'coupon ' || c.coupon_id || ': terms differ from stock ' || s.stock_id
         FROM coupons c JOIN stocks s ON s.stock_id = c.stock_id
         WHERE c.coupon_type IS NOT s.coupon_type OR c.coupon_amount IS NOT s.coupon_amount
            OR c.transaction_minimum IS NOT s.transaction_minimum
            OR c.discount_percent IS NOT s.discount_percent
            OR c.discount_amount_max IS NOT s.discount_amount_max
            OR c.app_channel_id IS NOT s.app_channel_id",
    )?);
    v.extend(strings_with(
        conn,
        "SELECT 'coupon ' || c.coupon_id || ': status ' || c.status || ' with '
                || (SELECT count(*) FROM redemptions r WHERE r.coupon_id = c.coupon_id AND r.undone_ms IS NULL)
                || ' live redemptions'
         FROM coupons c
         WHERE (c.status = ?1) <> ((SELECT count(*) FROM redemptions r
                                    WHERE r.coupon_id = c.coupon_id AND r.undone_ms IS NULL) = 1)",
        [CouponStatus::Used.code()],
    )?);
    v.extend(strings(
        conn,
        "SELECT 'coupon ' || coupon_id || ': mobile_phone stored unmasked' FROM coupons
         WHERE mobile_masked GLOB '*[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*'",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'voucher ' || w.type || ':' || w.coupon_no || ': ' || w.remaining || ' uses left, but '
                || w.total || ' minus live verifies is '
                || (w.total - coalesce((SELECT sum(count) FROM voucher_verifications x
                                        WHERE x.voucher_id = w.id AND x.cancelled_ms IS NULL), 0))
         FROM vouchers w
         WHERE w.remaining <> w.total - coalesce((SELECT sum(count) FROM voucher_verifications x
                                                  WHERE x.voucher_id = w.id AND x.cancelled_ms IS NULL), 0)",
    )?);
    check_journal(conn, v)?;
    Ok(())
}

/// Every journal chain starts from nothing, links each row to the one before,
/// makes only legal transitions, and ends at the entity's current status.
fn check_journal(conn: &Connection, v: &mut Vec<String>) -> rusqlite::Result<()> {
    let mut last: HashMap<(String, String), Option<i64>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT entity, entity_id, id, event, from_status, to_status FROM journal ORDER BY entity, entity_id, id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let entity: String = r.get(0)?;
        let entity_id: String = r.get(1)?;
        let id: i64 = r.get(2)?;
        let event: String = r.get(3)?;
        let from: Option<i64> = r.get(4)?;
        let to: Option<i64> = r.get(5)?;
        let key = (entity.clone(), entity_id.clone());
        let prev = last.get(&key).copied().flatten();
        if from != prev {
            v.push(format!(
                "journal {id}: {entity} {entity_id} {event} starts from {from:?}, but the previous row ended at {prev:?}"
            ));
        }
        if let (Some(f), Some(t)) = (from, to) {
            let legal = f == t
                || match entity.as_str() {
                    "stock" => matches!((StockStatus::from_code(f), StockStatus::from_code(t)),
                        (Some(a), Some(b)) if a.can_become(b)),
                    "coupon" => matches!((CouponStatus::from_code(f), CouponStatus::from_code(t)),
                        (Some(a), Some(b)) if a.can_become(b)),
                    _ => true,
                };
            if !legal {
                v.push(format!(
                    "journal {id}: {entity} {entity_id} made an illegal transition {f} -> {t}"
                ));
            }
        }
        last.insert(key, to);
    }
    let current = [
        ("stock", "SELECT stock_id, stock_status FROM stocks"),
        ("coupon", "SELECT coupon_id, status FROM coupons"),
        (
            "voucher",
            "SELECT type || ':' || coupon_no, remaining FROM vouchers",
        ),
    ];
    for (entity, sql) in current {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let status: i64 = r.get(1)?;
            match last.get(&(entity.to_string(), id.clone())) {
                None => v.push(format!("{entity} {id}: no journal rows")),
                Some(j) if *j != Some(status) => v.push(format!(
                    "{entity} {id}: status {status}, but its journal ends at {j:?}"
                )),
                Some(_) => {}
            }
        }
    }
    Ok(())
}
