//! Coupons: claim (and operator issue), expire and deactivate, expiry of
//! coupons whose window has passed, and reads.

use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use serde_json::json;

use super::journal::{Entity, JournalRow};
use super::stocks::{self, bad_row, kind_columns, kind_of_row, kind_places, place};
use super::tx::{from_constraint, Tx};
use crate::domain::coupon::new_coupon_id;
use crate::domain::ledger::{
    BatchOutcome, Blocker, ClaimRequest, Coupon, CouponQuery, DeactivateRequest, HeldCoupon,
    Illegal, Page, Settled, Stock, SyncEvent,
};
use crate::domain::stock::{CouponStatus, StockSpec, StockStatus};
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// The columns [`coupon_row`] reads, first in a SELECT, in this order.
pub(super) const COUPON_COLUMNS: &str = "coupon_id, stock_id, app_channel_id, user_code, \
    mobile_masked, app_id, coupon_type, coupon_amount, transaction_minimum, discount_percent, \
    discount_amount_max, available_begin_ms, available_end_ms, receive_ms, status, status_ms, \
    usage_ms, request_id";

/// [`COUPON_COLUMNS`] one by one (a test keeps the two the same).
const COUPON_FIELDS: &[&str] = &[
    "coupon_id",
    "stock_id",
    "app_channel_id",
    "user_code",
    "mobile_masked",
    "app_id",
    "coupon_type",
    "coupon_amount",
    "transaction_minimum",
    "discount_percent",
    "discount_amount_max",
    "available_begin_ms",
    "available_end_ms",
    "receive_ms",
    "status",
    "status_ms",
    "usage_ms",
    "request_id",
];

/// Builds a coupon from a row whose first columns are [`COUPON_COLUMNS`].
pub(super) fn coupon_row(row: &Row) -> rusqlite::Result<Coupon> {
    macro_rules! at {
        ($name:literal) => {
            const { place(COUPON_FIELDS, $name) }
        };
    }
    let status: i64 = row.get(at!("status"))?;
    Ok(Coupon {
        coupon_id: row.get(at!("coupon_id"))?,
        stock_id: row.get(at!("stock_id"))?,
        app_channel_id: row.get(at!("app_channel_id"))?,
        user_code: row.get(at!("user_code"))?,
        mobile_masked: row.get(at!("mobile_masked"))?,
        app_id: row.get(at!("app_id"))?,
        kind: kind_of_row(row, const { kind_places(COUPON_FIELDS) })?,
        available_begin: row.get(at!("available_begin_ms"))?,
        available_end: row.get(at!("available_end_ms"))?,
        receive_ms: row.get(at!("receive_ms"))?,
        status: CouponStatus::from_code(status)
            .ok_or_else(|| bad_row("status", "unknown status"))?,
        status_ms: row.get(at!("status_ms"))?,
        usage_ms: row.get(at!("usage_ms"))?,
        request_id: row.get(at!("request_id"))?,
    })
}

/// One coupon, if it exists.
pub(super) fn load(conn: &Connection, coupon_id: &str) -> Result<Option<Coupon>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE coupon_id = ?1"
        ))?
        .query_row([coupon_id], coupon_row)
        .optional()?)
}

/// One coupon, or 40402.
pub(super) fn get(conn: &Connection, coupon_id: &str) -> Result<Coupon, LedgerError> {
    load(conn, coupon_id)?.ok_or(LedgerError::CouponNotFound)
}

/// A filter's value for binding, when it is set.
fn value<T: ToSql>(v: &Option<T>) -> Option<&dyn ToSql> {
    v.as_ref().map(|v| v as &dyn ToSql)
}

/// The WHERE clause of [`page`] with only the filters that are set, and their
/// values by name. Each filter is left out rather than written as
/// `(?1 IS NULL OR ...)`, so SQLite can use an index for it: by user
/// (`coupons_by_holder`) and by order (`redemptions`, then `coupon_id`).
fn coupon_filter<'a>(
    q: &'a CouponQuery,
    status: &'a Option<i64>,
) -> (String, Vec<(&'static str, &'a dyn ToSql)>) {
    let filters: [(&str, &'static str, Option<&'a dyn ToSql>); 6] = [
        ("user_code = :user", ":user", value(&q.user_code)),
        ("stock_id = :stock", ":stock", value(&q.stock_id)),
        ("status = :status", ":status", value(status)),
        (
            "coupon_id IN (SELECT coupon_id FROM redemptions WHERE order_id = :order)",
            ":order",
            value(&q.order_id),
        ),
        ("receive_ms >= :from", ":from", value(&q.from)),
        ("receive_ms < :to", ":to", value(&q.to)),
    ];
    let (clauses, args): (Vec<&str>, Vec<_>) = filters
        .into_iter()
        .filter_map(|(clause, name, value)| value.map(|v| (clause, (name, v))))
        .unzip();
    let filter = std::iter::once("1").chain(clauses).collect::<Vec<_>>();
    (filter.join(" AND "), args)
}

/// How many coupons match `q`, read from the stock's counters when only the
/// stock (and maybe a status) is asked for, instead of counting its coupons.
fn total(conn: &Connection, q: &CouponQuery, status: &Option<i64>) -> Result<i64, LedgerError> {
    let by_stock_only =
        q.user_code.is_none() && q.order_id.is_none() && q.from.is_none() && q.to.is_none();
    if let (true, Some(stock_id)) = (by_stock_only, &q.stock_id) {
        return match stocks::counts(conn, stock_id) {
            Ok(c) => Ok(match q.status {
                None => c.issued,
                Some(CouponStatus::Available) => c.available,
                Some(CouponStatus::Used) => c.used,
                Some(CouponStatus::Expired) => c.expired,
                Some(CouponStatus::Deactivated) => c.deactivated,
            }),
            Err(LedgerError::StockNotFound) => Ok(0),
            Err(e) => Err(e),
        };
    }
    let (filter, args) = coupon_filter(q, status);
    Ok(conn
        .prepare_cached(&format!("SELECT count(*) FROM coupons WHERE {filter}"))?
        .query_row(args.as_slice(), |r| r.get(0))?)
}

/// A page of coupons in issue order, the cursor of the next page, and how
/// many coupons match the filters in all.
pub(super) fn page(conn: &Connection, q: &CouponQuery) -> Result<Page<Coupon>, LedgerError> {
    let status = q.status.map(|s| s.code());
    let total = total(conn, q, &status)?;
    let (filter, mut args) = coupon_filter(q, &status);
    let after = q.after.unwrap_or(0);
    args.push((":after", &after));
    args.push((":limit", &q.limit));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COUPON_COLUMNS}, seq FROM coupons
         WHERE {filter} AND seq > :after
         ORDER BY seq LIMIT :limit"
    ))?;
    let rows = stmt.query_map(args.as_slice(), |r| {
        Ok((coupon_row(r)?, r.get::<_, i64>("seq")?))
    })?;
    let rows = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(Page::of(rows, q.limit, total))
}

/// A coupon and its stock, in one snapshot.
pub(super) fn with_stock(
    conn: &Connection,
    coupon_id: &str,
) -> Result<(Coupon, Stock), LedgerError> {
    let coupon = get(conn, coupon_id)?;
    let stock = stocks::get(conn, &coupon.stock_id)?;
    Ok((coupon, stock))
}

/// 领券 or an operator issue: every claim rule, then one new coupon.
///
/// Idempotency: the same key answers the same coupon, whatever happened since.
/// The earlier coupon is looked up only when the claim does not go through:
/// a refusal, or an insert that the key's unique index turned away. A new key,
/// the common case, then costs the writer one search of that index (the
/// insert's) instead of two.
pub(super) fn claim(tx: &Tx, req: &ClaimRequest) -> Result<Coupon, LedgerError> {
    match issue(tx, req) {
        Ok(Some(coupon)) => Ok(coupon),
        Ok(None) => earlier(tx, req)?.ok_or_else(|| {
            LedgerError::Internal("the request_id was taken, but no coupon holds it".into())
        }),
        // A refusal stands unless the key already has its coupon; a failing
        // look-up leaves the first error as the answer.
        Err(refused) => match earlier(tx, req) {
            Ok(Some(coupon)) => Ok(coupon),
            Err(e @ LedgerError::IdempotencyConflict(_)) => Err(e),
            Ok(None) | Err(_) => Err(refused),
        },
    }
}

/// The coupon an earlier claim with the same key issued: `Some` when its
/// parameters were the same, a conflict when they were not, `None` when the
/// key is new.
fn earlier(tx: &Tx, req: &ClaimRequest) -> Result<Option<Coupon>, LedgerError> {
    let earlier = tx
        .conn
        .prepare_cached(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE issuer = ?1 AND request_id = ?2"
        ))?
        .query_row(params![req.issuer.key(), req.request_id], coupon_row)
        .optional()?;
    match earlier {
        None => Ok(None),
        Some(c)
            if c.stock_id == req.stock_id
                && c.user_code == req.user_code
                && c.app_channel_id == req.app_channel_id
                && c.mobile_masked.as_deref() == req.mobile_masked.as_ref().map(|m| m.as_str()) =>
        {
            Ok(Some(c))
        }
        Some(_) => Err(LedgerError::IdempotencyConflict(
            "request_id: already used with different parameters".into(),
        )),
    }
}

/// Every claim rule, then one new coupon; `None` when the key already has one.
fn issue(tx: &Tx, req: &ClaimRequest) -> Result<Option<Coupon>, LedgerError> {
    let stock = stocks::get(tx.conn, req.stock_id.as_str())?;
    let spec = &stock.spec;
    if spec.app_channel_id != req.app_channel_id {
        return Err(LedgerError::invalid(
            "app_channel_id",
            "differs from the stock's app_channel_id",
        ));
    }
    if spec.status != StockStatus::Running {
        return Err(LedgerError::StockNotRunning);
    }
    if tx.now() >= spec.available_end {
        return Err(LedgerError::StockOutsideWindow);
    }
    if stock.issued >= spec.max_coupons {
        return Err(LedgerError::SoldOut);
    }
    // The per-user limit is checked by the schema's claim trigger, which
    // counts the user's coupons of the stock anyway; its refusal comes back as
    // `UserLimit` (see `from_constraint`). Counting here too cost every claim
    // a second index search.
    let Some((coupon_id, seq)) = insert(
        tx,
        spec,
        req.user_code.as_str(),
        req.mobile_masked.as_ref().map(|m| m.as_str()),
        &req.issuer.key(),
        req.request_id.as_str(),
    )?
    else {
        return Ok(None);
    };
    tx.journal(
        JournalRow::new(Entity::Coupon, &coupon_id, "issue")
            .coupon_seq(seq)
            .moved(None, Some(CouponStatus::Available.code()))
            .issue_detail(req.stock_id.as_str(), req.request_id.as_str()),
    )?;
    let coupon = Coupon {
        coupon_id,
        stock_id: req.stock_id.to_string(),
        app_channel_id: req.app_channel_id,
        user_code: req.user_code.to_string(),
        mobile_masked: req.mobile_masked.as_ref().map(|m| m.as_str().to_string()),
        app_id: spec.app_id.clone(),
        kind: spec.kind,
        available_begin: spec.available_begin,
        available_end: spec.available_end,
        receive_ms: tx.now(),
        status: CouponStatus::Available,
        status_ms: tx.now(),
        usage_ms: None,
        request_id: req.request_id.to_string(),
    };
    tx.enqueue(&SyncEvent::CouponIssued(coupon.clone()))?;
    Ok(Some(coupon))
}

/// Inserts one available coupon of `spec` under a fresh random id, copying
/// the stock's terms; answers the id and the coupon's `seq`, or `None` when
/// `issuer` already used `request_id` (nothing is written then). The schema's
/// triggers check the claim rules again.
pub(super) fn insert(
    tx: &Tx,
    spec: &StockSpec,
    user_code: &str,
    mobile_masked: Option<&str>,
    issuer: &str,
    request_id: &str,
) -> Result<Option<(String, i64)>, LedgerError> {
    let (t, amount, minimum, percent, max) = kind_columns(&spec.kind);
    // DO NOTHING on either unique key: the coupon id or the idempotency key.
    let mut stmt = tx.conn.prepare_cached(
        "INSERT INTO coupons (coupon_id, stock_id, app_channel_id, user_code, mobile_masked,
            issuer, request_id, app_id, coupon_type, coupon_amount, transaction_minimum,
            discount_percent, discount_amount_max, available_begin_ms, available_end_ms,
            receive_ms, status, status_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?16)
         ON CONFLICT DO NOTHING",
    )?;
    // A clash of 63 random bits is next to impossible; a few draws settle it.
    for _ in 0..8 {
        let id = new_coupon_id().map_err(LedgerError::Internal)?;
        let inserted = stmt
            .execute(params![
                id,
                spec.stock_id,
                spec.app_channel_id,
                user_code,
                mobile_masked,
                issuer,
                request_id,
                spec.app_id,
                t,
                amount,
                minimum,
                percent,
                max,
                spec.available_begin,
                spec.available_end,
                tx.now(),
                CouponStatus::Available.code()
            ])
            .map_err(from_constraint)?;
        if inserted == 1 {
            // `seq` is the row id; the trigger's write to the stock does not
            // change the connection's last inserted row.
            return Ok(Some((id, tx.conn.last_insert_rowid())));
        }
        let key_taken = tx
            .conn
            .prepare_cached("SELECT 1 FROM coupons WHERE issuer = ?1 AND request_id = ?2")?
            .exists(params![issuer, request_id])?;
        if key_taken {
            return Ok(None);
        }
    }
    Err(LedgerError::Internal(
        "could not draw an unused coupon id".into(),
    ))
}

/// The batch rule, also used for a single coupon: either every listed coupon
/// ends expired or deactivated, or nothing changes and the blockers are listed.
pub(super) fn deactivate(tx: &Tx, req: &DeactivateRequest) -> Result<BatchOutcome, LedgerError> {
    let mut wanted: Vec<&HeldCoupon> = Vec::new();
    for c in &req.coupons {
        if !wanted
            .iter()
            .any(|w| w.coupon_id == c.coupon_id && w.stock_id == c.stock_id)
        {
            wanted.push(c);
        }
    }
    let mut illegal = Vec::new();
    let mut plan: Vec<(HeldCoupon, Coupon)> = Vec::new();
    for held in wanted {
        let found = load(tx.conn, held.coupon_id.as_str())?.filter(|c| {
            c.stock_id == held.stock_id
                && c.user_code == req.user_code
                && c.app_channel_id == req.app_channel_id
        });
        match found {
            None => illegal.push(Illegal {
                coupon: held.clone(),
                blocker: Blocker::Unknown,
            }),
            Some(c) if c.status == CouponStatus::Used => illegal.push(Illegal {
                coupon: held.clone(),
                blocker: Blocker::Used,
            }),
            Some(c) => plan.push((held.clone(), c)),
        }
    }
    if !illegal.is_empty() {
        return Ok(BatchOutcome::Refused(illegal));
    }
    let detail = req.reason.as_ref().map(|r| json!({ "reason": r }));
    let event = if req.to == CouponStatus::Expired {
        "expire"
    } else {
        "deactivate"
    };
    let mut settled = Vec::with_capacity(plan.len());
    for (held, c) in plan {
        if c.status.is_final() {
            settled.push(Settled {
                coupon: held,
                status: c.status,
                at: c.status_ms,
            });
            continue;
        }
        set_status(tx, &c, req.to, None, event, detail.clone())?;
        settled.push(Settled {
            coupon: held,
            status: req.to,
            at: tx.now(),
        });
    }
    Ok(BatchOutcome::Done(settled))
}

/// Expires up to `limit` available coupons whose window has passed, oldest
/// end first. Returns how many it expired.
pub(super) fn expire_due(tx: &Tx, limit: i64) -> Result<usize, LedgerError> {
    let due = tx
        .conn
        .prepare_cached(&format!(
            // The status is part of the text, not a parameter, so that
            // SQLite can use the partial index of available coupons.
            "SELECT {COUPON_COLUMNS} FROM coupons
             WHERE status = {available} AND available_end_ms <= ?1
             ORDER BY available_end_ms LIMIT ?2",
            available = CouponStatus::Available.code()
        ))?
        .query_map(params![tx.now(), limit], coupon_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for coupon in &due {
        set_status(tx, coupon, CouponStatus::Expired, None, "expire", None)?;
    }
    Ok(due.len())
}

/// Moves a coupon from its loaded status to `to` (guarded: the row must still
/// be in that status), journals the move and queues its status call.
pub(super) fn set_status(
    tx: &Tx,
    coupon: &Coupon,
    to: CouponStatus,
    usage_ms: Option<Millis>,
    event: &str,
    detail: Option<serde_json::Value>,
) -> Result<(), LedgerError> {
    let from = coupon.status;
    let changed = tx
        .conn
        .prepare_cached(
            "UPDATE coupons SET status = ?2, status_ms = ?3, usage_ms = ?4
             WHERE coupon_id = ?1 AND status = ?5",
        )?
        .execute(params![
            coupon.coupon_id,
            to.code(),
            tx.now(),
            usage_ms,
            from.code()
        ])
        .map_err(from_constraint)?;
    if changed != 1 {
        return Err(LedgerError::StateConflict(format!(
            "coupon {} is no longer in status {}",
            coupon.coupon_id,
            from.code()
        )));
    }
    let row = JournalRow::new(Entity::Coupon, &coupon.coupon_id, event)
        .moved(Some(from.code()), Some(to.code()));
    tx.journal(match detail {
        Some(d) => row.detail(d),
        None => row,
    })?;
    let moved = Coupon {
        status: to,
        status_ms: tx.now(),
        usage_ms,
        ..coupon.clone()
    };
    tx.enqueue(&SyncEvent::CouponStatus {
        coupon: moved,
        event_ms: tx.now(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are read by place: the SELECT lists and the field lists must
    /// name the same columns in the same order, and a real row must read back.
    #[test]
    fn coupons_and_stocks_are_read_by_the_places_their_selects_give() {
        assert!(stocks::same_columns(COUPON_COLUMNS, COUPON_FIELDS));
        assert!(stocks::same_columns(
            stocks::STOCK_COLUMNS,
            stocks::STOCK_FIELDS
        ));
        assert!(!stocks::same_columns("a, b", &["b", "a"]));
        assert_eq!(place(COUPON_FIELDS, "request_id"), 17);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions,
                 coupon_name, coupon_desc, coupon_type, coupon_amount, transaction_minimum,
                 discount_percent, discount_amount_max, max_coupons, max_coupons_per_user,
                 available_begin_ms, available_end_ms, create_ms, stock_status)
             VALUES ('s2', 'name', 7, 'wx1', 'i', 'cn', 'cd', 3, NULL, 500, 85, 2000, 10, 2,
                 1000, 9000000000000, 1000, 3);
             INSERT INTO coupons (coupon_id, stock_id, app_channel_id, user_code, mobile_masked,
                 issuer, request_id, app_id, coupon_type, coupon_amount, transaction_minimum,
                 discount_percent, discount_amount_max, available_begin_ms, available_end_ms,
                 receive_ms, status, status_ms)
             VALUES ('123', 's2', 7, 'u1', '139****0000', 'admin', 'r1', 'wx1', 3, NULL, 500,
                 85, 2000, 1000, 9000000000000, 5000, 1, 5000);",
        )
        .unwrap();
        let stock = stocks::get(&conn, "s2").unwrap();
        assert_eq!(stock.spec.stock_id, "s2");
        assert_eq!(stock.spec.app_channel_id, 7);
        assert_eq!(stock.spec.max_coupons, 10);
        assert_eq!(stock.spec.max_coupons_per_user, 2);
        assert_eq!(stock.spec.available_end, 9_000_000_000_000);
        assert_eq!(stock.create_ms, 1000);
        assert_eq!(stock.issued, 1);
        assert_eq!(
            stock.spec.kind,
            crate::domain::stock::CouponKind::Percent {
                percent: 85,
                max: 2000,
                minimum: 500
            }
        );
        let coupon = load(&conn, "123").unwrap().unwrap();
        assert_eq!(coupon.user_code, "u1");
        assert_eq!(coupon.mobile_masked.as_deref(), Some("139****0000"));
        assert_eq!(coupon.kind, stock.spec.kind);
        assert_eq!(coupon.receive_ms, 5000);
        assert_eq!(coupon.status, CouponStatus::Available);
        assert_eq!(coupon.usage_ms, None);
        assert_eq!(coupon.request_id, "r1");
    }

    /// The plan SQLite picks for the page query of `q`, one line per step.
    fn plan(q: &CouponQuery) -> String {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        let status = q.status.map(|s| s.code());
        let (filter, _) = coupon_filter(q, &status);
        let mut stmt = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT seq FROM coupons WHERE {filter} AND seq > 0 ORDER BY seq LIMIT 50"
            ))
            .unwrap();
        let n = stmt.parameter_count();
        let nulls: Vec<Option<i64>> = vec![None; n];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn a_lookup_by_user_or_order_uses_an_index_not_a_scan() {
        let by_user = plan(&CouponQuery {
            user_code: Some("u".into()),
            ..Default::default()
        });
        assert!(by_user.contains("coupons_by_holder"), "{by_user}");
        let by_order = plan(&CouponQuery {
            order_id: Some("o".into()),
            ..Default::default()
        });
        assert!(by_order.contains("redemptions"), "{by_order}");
        assert!(!by_order.contains("SCAN coupons"), "{by_order}");
    }
}
