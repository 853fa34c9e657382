//! The daily statement (对账): the journal's events of one period, with the
//! redemption and verify rows they refer to, read in one snapshot.

use rusqlite::{params, Connection};

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
        "SELECT j.id, j.at_ms, j.entity, j.entity_id, j.event, j.source, j.operator,
                c.stock_id, r.order_id, r.order_amount, r.discount_amount, r.pay_amount,
                v.verify_id, v.count, v.shop_id
         FROM journal j
         LEFT JOIN coupons c ON j.entity = 'coupon' AND c.coupon_id = j.entity_id
         LEFT JOIN redemptions r ON j.entity = 'coupon' AND j.event IN ('redeem', 'unredeem')
              AND r.order_id = json_extract(j.detail, '$.order_id')
         LEFT JOIN voucher_verifications v ON j.entity = 'voucher' AND j.event IN ('verify', 'cancel')
              AND v.verify_id = json_extract(j.detail, '$.verify_id')
         WHERE j.at_ms >= ?1 AND j.at_ms < ?2
           AND ((j.entity = 'coupon' AND j.event IN ('issue', 'redeem', 'unredeem', 'expire', 'deactivate'))
             OR (j.entity = 'voucher' AND j.event IN ('verify', 'cancel')))
         ORDER BY j.id",
    )?;
    let rows = stmt.query_map(params![from, to], |r| {
        let entity: String = r.get(2)?;
        let entity_id: String = r.get(3)?;
        let event: String = r.get(4)?;
        let verify_id: Option<String> = r.get(12)?;
        let stock_id: Option<String> = r.get(7)?;
        let (subject, item_id) = if entity == "voucher" {
            (entity_id, verify_id.unwrap_or_default())
        } else {
            (stock_id.unwrap_or_default(), entity_id)
        };
        Ok((
            entity,
            event,
            ReportRow {
                journal_id: r.get(0)?,
                at_ms: r.get(1)?,
                kind: EventKind::Issue,
                subject,
                item_id,
                order_id: r.get(8)?,
                order_amount: r.get(9)?,
                discount_amount: r.get(10)?,
                pay_amount: r.get(11)?,
                uses: r.get(13)?,
                shop_id: r.get(14)?,
                source: r.get(5)?,
                operator: r.get(6)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (entity, event, row) = row?;
        if let Some(kind) = EventKind::of_journal(&entity, &event) {
            out.push(ReportRow { kind, ..row });
        }
    }
    Ok(out)
}
