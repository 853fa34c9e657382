//! The daily statement (对账): the ledger's events of one local day, and their
//! totals. Pure: the store reads the rows, `wire::report` renders them.

use super::money::Fen;
use super::time::Millis;

/// The kinds of event a statement lists, in the order its totals list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// A coupon was issued (platform claim or operator issue).
    Issue,
    Redeem,
    Unredeem,
    /// A coupon expired (the sweeper, or the platform asked for status 3).
    Expire,
    /// A coupon was deactivated (status 4).
    Deactivate,
    /// Uses of a voucher were verified (核销) by a shop.
    VoucherVerify,
    /// A voucher verify was cancelled and its uses given back.
    VoucherCancel,
}

impl EventKind {
    /// Every kind, in statement order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Issue,
        EventKind::Redeem,
        EventKind::Unredeem,
        EventKind::Expire,
        EventKind::Deactivate,
        EventKind::VoucherVerify,
        EventKind::VoucherCancel,
    ];

    /// The statement's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Issue => "issue",
            EventKind::Redeem => "redeem",
            EventKind::Unredeem => "unredeem",
            EventKind::Expire => "expire",
            EventKind::Deactivate => "deactivate",
            EventKind::VoucherVerify => "voucher_verify",
            EventKind::VoucherCancel => "voucher_cancel",
        }
    }

    /// The kind of a journal row (`entity`, `event`), if a statement lists it.
    pub fn of_journal(entity: &str, event: &str) -> Option<EventKind> {
        Some(match (entity, event) {
            ("coupon", "issue") => EventKind::Issue,
            ("coupon", "redeem") => EventKind::Redeem,
            ("coupon", "unredeem") => EventKind::Unredeem,
            ("coupon", "expire") => EventKind::Expire,
            ("coupon", "deactivate") => EventKind::Deactivate,
            ("voucher", "verify") => EventKind::VoucherVerify,
            ("voucher", "cancel") => EventKind::VoucherCancel,
            _ => return None,
        })
    }
}

/// One event of the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// The journal row it comes from.
    pub journal_id: i64,
    pub at_ms: Millis,
    pub kind: EventKind,
    /// The stock (coupon events) or the voucher as `type:couponNo` (voucher events).
    pub subject: String,
    /// The coupon id (coupon events) or the verify id (voucher events).
    pub item_id: String,
    pub order_id: Option<String>,
    pub order_amount: Option<Fen>,
    pub discount_amount: Option<Fen>,
    pub pay_amount: Option<Fen>,
    /// Voucher uses verified or given back.
    pub uses: Option<i64>,
    pub shop_id: Option<i64>,
    /// `platform`, `admin`, `sweeper` or `shop`.
    pub source: String,
    /// The named operator of an admin API change.
    pub operator: Option<String>,
}

/// The totals of one kind of event. Sums of fen are `i128`: a day's sum may
/// exceed the range of one amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindTotal {
    pub count: i64,
    pub order_amount: i128,
    pub discount_amount: i128,
    pub pay_amount: i128,
    pub uses: i128,
}

/// The totals of a statement: one per kind, every kind listed (zero when none).
pub fn totals(rows: &[ReportRow]) -> Vec<(EventKind, KindTotal)> {
    EventKind::ALL
        .iter()
        .map(|&kind| {
            let mut t = KindTotal::default();
            for r in rows.iter().filter(|r| r.kind == kind) {
                let wide = |f: Option<Fen>| i128::from(f.unwrap_or(0));
                t.count += 1;
                t.order_amount += wide(r.order_amount);
                t.discount_amount += wide(r.discount_amount);
                t.pay_amount += wide(r.pay_amount);
                t.uses += wide(r.uses);
            }
            (kind, t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: EventKind, order: Option<Fen>, uses: Option<i64>) -> ReportRow {
        ReportRow {
            journal_id: 1,
            at_ms: 0,
            kind,
            subject: "s".into(),
            item_id: "1".into(),
            order_id: order.map(|_| "o".into()),
            order_amount: order,
            discount_amount: order.map(|o| o / 10),
            pay_amount: order.map(|o| o - o / 10),
            uses,
            shop_id: None,
            source: "admin".into(),
            operator: None,
        }
    }

    #[test]
    fn totals_list_every_kind_and_add_up_each() {
        let rows = [
            row(EventKind::Redeem, Some(1000), None),
            row(EventKind::Redeem, Some(2000), None),
            row(EventKind::Issue, None, None),
            row(EventKind::VoucherVerify, None, Some(2)),
        ];
        let t = totals(&rows);
        assert_eq!(t.len(), EventKind::ALL.len());
        let get = |k| t.iter().find(|(x, _)| *x == k).map(|(_, t)| *t).unwrap();
        assert_eq!(
            get(EventKind::Redeem),
            KindTotal {
                count: 2,
                order_amount: 3000,
                discount_amount: 300,
                pay_amount: 2700,
                uses: 0
            }
        );
        assert_eq!(get(EventKind::Issue).count, 1);
        assert_eq!(get(EventKind::VoucherVerify).uses, 2);
        assert_eq!(get(EventKind::VoucherCancel), KindTotal::default());
    }

    #[test]
    fn journal_rows_map_to_kinds() {
        assert_eq!(
            EventKind::of_journal("coupon", "redeem"),
            Some(EventKind::Redeem)
        );
        assert_eq!(
            EventKind::of_journal("voucher", "cancel"),
            Some(EventKind::VoucherCancel)
        );
        assert_eq!(EventKind::of_journal("voucher", "import"), None);
        assert_eq!(EventKind::of_journal("stock", "create"), None);
    }
}
