//! Vouchers (docs/protocol.md, voucher gateway): import, prepare, verify and cancel, each in one transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

use super::journal::{Entity, JournalRow};
use super::stocks::bad_row;
use crate::domain::coupon::new_coupon_id;
use crate::domain::ledger::{Origin, Page};
use crate::domain::time::Millis;
use crate::domain::voucher::{
    Verification, VerifyRequest, Voucher, VoucherQuery, VoucherSpec, VoucherType,
};
use crate::domain::LedgerError;

/// The columns of a voucher row, read by name in [`voucher_row`].
const VOUCHER_COLUMNS: &str =
    "id, type, coupon_no, coupon_name, value_fen, price_fen, coupon_type, \
    total, remaining, validity_begin_ms, validity_end_ms, templates, deal";

/// Builds a voucher (without its shops) from a row selected with
/// [`VOUCHER_COLUMNS`], by column name.
fn voucher_row(row: &Row) -> rusqlite::Result<Voucher> {
    let kind: String = row.get("type")?;
    let templates: String = row.get("templates")?;
    let deal: String = row.get("deal")?;
    Ok(Voucher {
        id: row.get("id")?,
        spec: VoucherSpec {
            kind: VoucherType::parse(&kind).ok_or_else(|| bad_row("type", "voucher type"))?,
            coupon_no: row.get("coupon_no")?,
            shop_ids: Vec::new(),
            coupon_name: row.get("coupon_name")?,
            value_fen: row.get("value_fen")?,
            price_fen: row.get("price_fen")?,
            coupon_type: row.get("coupon_type")?,
            count: row.get("total")?,
            validity_begin: row.get("validity_begin_ms")?,
            validity_end: row.get("validity_end_ms")?,
            templates: serde_json::from_str(&templates)
                .map_err(|_| bad_row("templates", "not JSON"))?,
            deal: serde_json::from_str(&deal).map_err(|_| bad_row("deal", "not JSON"))?,
        },
        remaining: row.get("remaining")?,
    })
}

/// Builds a verify from a row selected with [`VERIFICATION_SELECT`], by column name.
fn verification_row(row: &Row) -> rusqlite::Result<Verification> {
    let kind: String = row.get("type")?;
    Ok(Verification {
        verify_id: row.get("verify_id")?,
        kind: VoucherType::parse(&kind).ok_or_else(|| bad_row("type", "voucher type"))?,
        coupon_no: row.get("coupon_no")?,
        shop_id: row.get("shop_id")?,
        count: row.get("count")?,
        remaining_after: row.get("remaining_after")?,
        verified_ms: row.get("verified_ms")?,
        cancelled_ms: row.get("cancelled_ms")?,
    })
}

/// A verify with its voucher's type and number; every column is named with
/// `AS`, since SQLite does not promise the name of a qualified column.
const VERIFICATION_SELECT: &str = "SELECT v.verify_id AS verify_id, w.type AS type, \
    w.coupon_no AS coupon_no, v.shop_id AS shop_id, v.count AS count, \
    v.remaining_after AS remaining_after, v.verified_ms AS verified_ms, \
    v.cancelled_ms AS cancelled_ms, v.issuer AS issuer, v.voucher_id AS voucher_id \
    FROM voucher_verifications v JOIN vouchers w ON w.id = v.voucher_id";

/// Fills in a voucher's shops.
fn with_shops(conn: &Connection, mut v: Voucher) -> Result<Voucher, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT shop_id FROM voucher_shops WHERE voucher_id = ?1 ORDER BY shop_id",
    )?;
    v.spec.shop_ids = stmt
        .query_map([v.id], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(v)
}

/// The filters of [`page`] on parameters ?1 (type), ?2 (status) and ?3 (now);
/// the same statuses as [`crate::domain::voucher::VoucherStatus::of`].
const VOUCHER_FILTER: &str = "(?1 IS NULL OR type = ?1) AND CASE ?2
    WHEN 'used_up' THEN remaining = 0
    WHEN 'expired' THEN remaining > 0 AND ?3 >= validity_end_ms
    WHEN 'upcoming' THEN remaining > 0 AND ?3 < validity_begin_ms
    WHEN 'usable' THEN remaining > 0 AND validity_begin_ms <= ?3 AND ?3 < validity_end_ms
    ELSE 1 END";

/// A page of vouchers in import order, and how many match the filters in all.
pub(super) fn page(conn: &Connection, q: &VoucherQuery) -> Result<Page<Voucher>, LedgerError> {
    let kind = q.kind.map(VoucherType::as_str);
    let status = q.status.map(|s| s.as_str());
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM vouchers WHERE {VOUCHER_FILTER}"
        ))?
        .query_row(params![kind, status, q.now], |r| r.get(0))?;
    let found = conn
        .prepare_cached(&format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE {VOUCHER_FILTER} AND id > ?4
             ORDER BY id LIMIT ?5"
        ))?
        .query_map(
            params![kind, status, q.now, q.after.unwrap_or(0), q.limit],
            voucher_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(found.len());
    for v in found {
        let id = v.id;
        rows.push((with_shops(conn, v)?, id));
    }
    Ok(Page::of(rows, q.limit, total))
}

fn load_voucher(
    conn: &Connection,
    kind: VoucherType,
    coupon_no: &str,
) -> Result<Option<Voucher>, LedgerError> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE type = ?1 AND coupon_no = ?2"
        ))?
        .query_row(params![kind.as_str(), coupon_no], voucher_row)
        .optional()?;
    let Some(v) = found else { return Ok(None) };
    Ok(Some(with_shops(conn, v)?))
}

/// The voucher a shop may use now: known, valid at this shop, within its validity.
fn usable(
    conn: &Connection,
    kind: VoucherType,
    coupon_no: &str,
    shop_id: i64,
    now: Millis,
) -> Result<Voucher, LedgerError> {
    let v = load_voucher(conn, kind, coupon_no)?
        .filter(|v| v.spec.shop_ids.contains(&shop_id))
        .ok_or(LedgerError::VoucherNotFound)?;
    if now < v.spec.validity_begin {
        return Err(LedgerError::VoucherExhausted(
            "voucher is not valid yet".into(),
        ));
    }
    if now >= v.spec.validity_end {
        return Err(LedgerError::VoucherExhausted("voucher has expired".into()));
    }
    Ok(v)
}

/// Journals a change of a voucher's uses left (`from` is `None` at import).
fn journal_voucher(
    conn: &Connection,
    v: &Voucher,
    event: &str,
    from: Option<i64>,
    to: i64,
    origin: &Origin,
    detail: String,
) -> Result<(), LedgerError> {
    let key = voucher_key(v.spec.kind, &v.spec.coupon_no);
    JournalRow::new(Entity::Voucher, &key, event)
        .moved(from, Some(to))
        .detail(detail)
        .append(conn, origin)
}

/// The journal's id of a voucher: `type:couponNo`.
pub fn voucher_key(kind: VoucherType, coupon_no: &str) -> String {
    format!("{}:{coupon_no}", kind.as_str())
}

pub(super) fn import_tx(
    conn: &Connection,
    specs: &[VoucherSpec],
    origin: &Origin,
) -> Result<usize, LedgerError> {
    for s in specs {
        if load_voucher(conn, s.kind, &s.coupon_no)?.is_some() {
            return Err(LedgerError::IdempotencyConflict(format!(
                "voucher {} already exists; re-importing is refused",
                voucher_key(s.kind, &s.coupon_no)
            )));
        }
        conn.prepare_cached(
            "INSERT INTO vouchers (type, coupon_no, coupon_name, value_fen, price_fen, coupon_type, total,
                remaining, validity_begin_ms, validity_end_ms, templates, deal, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            s.kind.as_str(),
            s.coupon_no,
            s.coupon_name,
            s.value_fen,
            s.price_fen,
            s.coupon_type,
            s.count,
            s.validity_begin,
            s.validity_end,
            s.templates.to_string(),
            s.deal.to_string(),
            origin.now
        ])?;
        let id = conn.last_insert_rowid();
        for shop in &s.shop_ids {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO voucher_shops (voucher_id, shop_id) VALUES (?1, ?2)",
            )?
            .execute(params![id, shop])?;
        }
        let v = Voucher {
            id,
            spec: s.clone(),
            remaining: s.count,
        };
        journal_voucher(
            conn,
            &v,
            "import",
            None,
            s.count,
            origin,
            json!({"count": s.count}).to_string(),
        )?;
    }
    Ok(specs.len())
}

pub(super) fn verify_tx(
    conn: &Connection,
    req: &VerifyRequest,
    origin: &Origin,
) -> Result<Verification, LedgerError> {
    let earlier = conn
        .prepare_cached(&format!(
            "{VERIFICATION_SELECT} WHERE v.issuer = ?1 AND v.request_id = ?2"
        ))?
        .query_row(params![req.issuer, req.request_id], verification_row)
        .optional()?;
    if let Some(v) = earlier {
        if v.kind == req.kind
            && v.coupon_no == req.coupon_no
            && v.shop_id == req.shop_id
            && v.count == req.count
        {
            return Ok(v);
        }
        return Err(LedgerError::IdempotencyConflict(
            "request_id: already used with different parameters".into(),
        ));
    }
    let v = usable(conn, req.kind, &req.coupon_no, req.shop_id, origin.now)?;
    if v.remaining < req.count {
        return Err(LedgerError::VoucherExhausted(format!(
            "voucher has {} uses left, {} asked",
            v.remaining, req.count
        )));
    }
    let left = v.remaining - req.count;
    let changed = conn
        .prepare_cached(
            "UPDATE vouchers SET remaining = remaining - ?2 WHERE id = ?1 AND remaining >= ?2",
        )?
        .execute(params![v.id, req.count])?;
    if changed != 1 {
        return Err(LedgerError::VoucherExhausted(
            "voucher has no uses left".into(),
        ));
    }
    let verify_id = new_coupon_id().map_err(LedgerError::Internal)?;
    conn.prepare_cached(
        "INSERT INTO voucher_verifications (verify_id, voucher_id, issuer, request_id, shop_id, count,
            remaining_after, verified_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![verify_id, v.id, req.issuer, req.request_id, req.shop_id, req.count, left, origin.now])?;
    let detail =
        json!({"verify_id": verify_id, "shop_id": req.shop_id, "count": req.count}).to_string();
    journal_voucher(conn, &v, "verify", Some(v.remaining), left, origin, detail)?;
    Ok(Verification {
        verify_id,
        kind: req.kind,
        coupon_no: req.coupon_no.clone(),
        shop_id: req.shop_id,
        count: req.count,
        remaining_after: left,
        verified_ms: origin.now,
        cancelled_ms: None,
    })
}

pub(super) fn cancel_tx(
    conn: &Connection,
    verify_id: &str,
    shop_id: i64,
    issuer: &str,
    window_ms: Millis,
    origin: &Origin,
) -> Result<(Verification, i64), LedgerError> {
    let found = conn
        .prepare_cached(&format!("{VERIFICATION_SELECT} WHERE v.verify_id = ?1"))?
        .query_row([verify_id], |r| {
            Ok((verification_row(r)?, r.get::<_, String>("issuer")?))
        })
        .optional()?;
    // Another shop's or another partner's verify is as good as unknown.
    let ver = found
        .filter(|(v, owner)| v.shop_id == shop_id && owner == issuer)
        .map(|(v, _)| v)
        .ok_or(LedgerError::VoucherNotFound)?;
    if ver.cancelled_ms.is_some() {
        return Err(LedgerError::VoucherExhausted(
            "this verify is already cancelled".into(),
        ));
    }
    if origin.now - ver.verified_ms > window_ms {
        return Err(LedgerError::VoucherExhausted(format!(
            "cancel window of {} s has passed",
            window_ms / 1000
        )));
    }
    let v = load_voucher(conn, ver.kind, &ver.coupon_no)?.ok_or(LedgerError::VoucherNotFound)?;
    conn.prepare_cached("UPDATE voucher_verifications SET cancelled_ms = ?2 WHERE verify_id = ?1")?
        .execute(params![verify_id, origin.now])?;
    conn.prepare_cached("UPDATE vouchers SET remaining = remaining + ?2 WHERE id = ?1")?
        .execute(params![v.id, ver.count])?;
    let left = v.remaining + ver.count;
    let detail =
        json!({"verify_id": verify_id, "shop_id": shop_id, "count": ver.count}).to_string();
    journal_voucher(conn, &v, "cancel", Some(v.remaining), left, origin, detail)?;
    Ok((
        Verification {
            cancelled_ms: Some(origin.now),
            ..ver
        },
        left,
    ))
}

/// One voucher with its verifications, newest last.
pub(super) fn with_verifications(
    c: &Connection,
    kind: VoucherType,
    coupon_no: &str,
) -> Result<(Voucher, Vec<Verification>), LedgerError> {
    let v = load_voucher(c, kind, coupon_no)?.ok_or(LedgerError::VoucherNotFound)?;
    let mut stmt = c.prepare_cached(&format!(
        "{VERIFICATION_SELECT} WHERE v.voucher_id = ?1 ORDER BY v.verified_ms, v.verify_id"
    ))?;
    let list = stmt
        .query_map([v.id], verification_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((v, list))
}

/// The voucher if it can be used at this shop now, with a use left.
pub(super) fn prepared(
    c: &Connection,
    kind: VoucherType,
    coupon_no: &str,
    shop_id: i64,
    now: Millis,
) -> Result<Voucher, LedgerError> {
    let v = usable(c, kind, coupon_no, shop_id, now)?;
    if v.remaining == 0 {
        return Err(LedgerError::VoucherExhausted(
            "voucher has no uses left".into(),
        ));
    }
    Ok(v)
}
