//! The daily statement (对账) as CSV (RFC 4180, CRLF line ends): one row per
//! event, a blank line, then the totals. Amounts appear in fen and in yuan,
//! the yuan built from the fen digits.

use time::UtcOffset;

use crate::domain::money::{yuan, yuan_wide, Fen};
use crate::domain::report::{totals, EventKind, KindTotal, ReportRow};
use crate::domain::time::render_millis;

/// The header of the event rows.
pub const EVENT_HEADER: [&str; 15] = [
    "time",
    "event",
    "stock_or_voucher",
    "coupon_or_verify_id",
    "order_id",
    "order_amount_fen",
    "order_amount_yuan",
    "discount_amount_fen",
    "discount_amount_yuan",
    "pay_amount_fen",
    "pay_amount_yuan",
    "uses",
    "shop_id",
    "source",
    "operator",
];

/// The header of the totals.
pub const TOTALS_HEADER: [&str; 9] = [
    "total",
    "count",
    "order_amount_fen",
    "order_amount_yuan",
    "discount_amount_fen",
    "discount_amount_yuan",
    "pay_amount_fen",
    "pay_amount_yuan",
    "uses",
];

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn line(out: &mut String, fields: &[String]) {
    let cells: Vec<String> = fields.iter().map(|f| field(f)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

fn opt_fen(f: Option<Fen>) -> [String; 2] {
    match f {
        Some(f) => [f.to_string(), yuan(f)],
        None => [String::new(), String::new()],
    }
}

fn total_line(out: &mut String, name: &str, t: &KindTotal) {
    let mut cells = vec![name.to_string(), t.count.to_string()];
    for f in [t.order_amount, t.discount_amount, t.pay_amount] {
        cells.extend([f.to_string(), yuan_wide(f)]);
    }
    cells.push(t.uses.to_string());
    line(out, &cells);
}

/// The statement of `rows` (one day's events, in journal order), times in `tz`.
///
/// The totals list every kind of event (zero when none), then `redeem_net`
/// (redeems less un-redeems) and `voucher_net` (uses verified less uses given
/// back).
pub fn csv(rows: &[ReportRow], tz: UtcOffset) -> String {
    let mut out = String::new();
    line(&mut out, &EVENT_HEADER.map(String::from));
    for r in rows {
        let mut cells = vec![
            render_millis(r.at_ms, tz),
            r.kind.as_str().to_string(),
            r.subject.clone(),
            r.item_id.clone(),
            r.order_id.clone().unwrap_or_default(),
        ];
        for f in [r.order_amount, r.discount_amount, r.pay_amount] {
            cells.extend(opt_fen(f));
        }
        cells.push(r.uses.map(|u| u.to_string()).unwrap_or_default());
        cells.push(r.shop_id.map(|s| s.to_string()).unwrap_or_default());
        cells.push(r.source.clone());
        cells.push(r.operator.clone().unwrap_or_default());
        line(&mut out, &cells);
    }
    out.push_str("\r\n");
    line(&mut out, &TOTALS_HEADER.map(String::from));
    let sums = totals(rows);
    let of = |k: EventKind| {
        sums.iter()
            .find(|(x, _)| *x == k)
            .map(|(_, t)| *t)
            .unwrap_or_default()
    };
    for (kind, t) in &sums {
        total_line(&mut out, kind.as_str(), t);
    }
    let (r, u) = (of(EventKind::Redeem), of(EventKind::Unredeem));
    let redeem_net = KindTotal {
        count: r.count - u.count,
        order_amount: r.order_amount - u.order_amount,
        discount_amount: r.discount_amount - u.discount_amount,
        pay_amount: r.pay_amount - u.pay_amount,
        uses: 0,
    };
    total_line(&mut out, "redeem_net", &redeem_net);
    let (v, c) = (of(EventKind::VoucherVerify), of(EventKind::VoucherCancel));
    let voucher_net = KindTotal {
        count: v.count - c.count,
        uses: v.uses - c.uses,
        ..KindTotal::default()
    };
    total_line(&mut out, "voucher_net", &voucher_net);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_statement_has_its_rows_then_its_totals() {
        let row = ReportRow {
            journal_id: 7,
            at_ms: 0,
            kind: EventKind::Redeem,
            subject: "stock,1".into(),
            item_id: "123".into(),
            order_id: Some("o-1".into()),
            order_amount: Some(1999),
            discount_amount: Some(239),
            pay_amount: Some(1760),
            uses: None,
            shop_id: None,
            source: "admin".into(),
            operator: Some("alice".into()),
        };
        let text = csv(&[row], UtcOffset::UTC);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], EVENT_HEADER.join(","));
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00.000+00:00,redeem,\"stock,1\",123,o-1,1999,19.99,239,2.39,1760,17.6,,,admin,alice"
        );
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], TOTALS_HEADER.join(","));
        assert_eq!(lines[4], "issue,0,0,0,0,0,0,0,0");
        assert_eq!(lines[5], "redeem,1,1999,19.99,239,2.39,1760,17.6,0");
        assert!(text.contains("\r\nredeem_net,1,1999,19.99,239,2.39,1760,17.6,0\r\n"));
        assert!(text.ends_with("voucher_net,0,0,0,0,0,0,0,0\r\n"));
    }
}
