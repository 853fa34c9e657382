//! The daily statement (对账): the journal's events of one period, with the
//! redemption and verify rows they refer to, read in one snapshot.

use rusqlite::{params, Connection, Row};

use crate::domain::report::{EventKind, ReportRow};
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// Every coupon and voucher event journaled in `[from, to)`, in journal order.
/// Amounts come from `redemptions` (by the order the journal row names), uses
/// and shops from `voucher_verifications` (by the verify the row names), the
/// stock from `coupons`.
pub(super) fn rows(
    conn: &Connection,
    from: Millis,
    to: Millis,
) -> Result<Vec<ReportRow>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id AS journal_id, j.at_ms AS at_ms, j.entity AS entity,
                j.entity_id AS entity_id, j.event AS event, j.source AS source,
                j.operator AS operator, c.stock_id AS stock_id, r.order_id AS order_id,
                r.order_amount AS order_amount, r.discount_amount AS discount_amount,
                r.pay_amount AS pay_amount, v.verify_id AS verify_id, v.count AS uses,
                v.shop_id AS shop_id
         FROM journal j
         LEFT JOIN coupons c ON c.seq = j.coupon_seq
         LEFT JOIN redemptions r ON j.entity = 'coupon' AND j.event IN ('redeem', 'unredeem')
              AND r.order_id = json_extract(j.detail, '$.order_id')
         LEFT JOIN voucher_verifications v ON j.entity = 'voucher' AND j.event IN ('verify', 'cancel')
              AND v.verify_id = json_extract(j.detail, '$.verify_id')
         WHERE j.at_ms >= ?1 AND j.at_ms < ?2
           AND ((j.entity = 'coupon' AND j.event IN ('issue', 'redeem', 'unredeem', 'expire', 'deactivate'))
             OR (j.entity = 'voucher' AND j.event IN ('verify', 'cancel')))
         ORDER BY j.id",
    )?;
    let rows = stmt.query_map(params![from, to], report_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (entity, event, row) = row?;
        if let Some(kind) = EventKind::of_journal(&entity, &event) {
            out.push(ReportRow { kind, ..row });
        }
    }
    Ok(out)
}

/// One row of [`rows`]' query, read by column name: its entity and event
/// (which decide its kind), and the statement row, its kind still to be set.
fn report_row(r: &Row) -> rusqlite::Result<(String, String, ReportRow)> {
    let entity: String = r.get("entity")?;
    let entity_id: String = r.get("entity_id")?;
    let event: String = r.get("event")?;
    let verify_id: Option<String> = r.get("verify_id")?;
    let stock_id: Option<String> = r.get("stock_id")?;
    let (subject, item_id) = if entity == "voucher" {
        (entity_id, verify_id.unwrap_or_default())
    } else {
        (stock_id.unwrap_or_default(), entity_id)
    };
    let row = ReportRow {
        journal_id: r.get("journal_id")?,
        at_ms: r.get("at_ms")?,
        kind: EventKind::Issue,
        subject,
        item_id,
        order_id: r.get("order_id")?,
        order_amount: r.get("order_amount")?,
        discount_amount: r.get("discount_amount")?,
        pay_amount: r.get("pay_amount")?,
        uses: r.get("uses")?,
        shop_id: r.get("shop_id")?,
        source: r.get("source")?,
        operator: r.get("operator")?,
    };
    Ok((entity, event, row))
}
