//! Third-party group-buy vouchers (docs/protocol.md, voucher gateway): kinds, terms and uses.

use serde_json::Value;

use super::money::Fen;
use super::time::Millis;

/// The platform a voucher comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherType {
    Meituan,
    Dianping,
    /// Meituan 到综.
    Mtdz,
    /// Douyin.
    Tiktok,
}

impl VoucherType {
    /// Reads the wire's `type`.
    pub fn parse(s: &str) -> Option<VoucherType> {
        Some(match s {
            "meituan" => VoucherType::Meituan,
            "dianping" => VoucherType::Dianping,
            "mtdz" => VoucherType::Mtdz,
            "tiktok" => VoucherType::Tiktok,
            _ => return None,
        })
    }

    /// The wire's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherType::Meituan => "meituan",
            VoucherType::Dianping => "dianping",
            VoucherType::Mtdz => "mtdz",
            VoucherType::Tiktok => "tiktok",
        }
    }

    /// The key of the platform block in the prepare answer.
    pub fn block_key(self) -> &'static str {
        match self {
            VoucherType::Meituan => "meiTuan",
            VoucherType::Dianping => "dianPing",
            VoucherType::Mtdz => "mtdz",
            VoucherType::Tiktok => "tikTok",
        }
    }
}

/// A voucher as the operator imports it. `deal` and `templates` are the
/// platform's own data, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct VoucherSpec {
    pub kind: VoucherType,
    pub coupon_no: String,
    pub shop_ids: Vec<i64>,
    pub coupon_name: String,
    pub value_fen: Fen,
    pub price_fen: Fen,
    pub coupon_type: String,
    /// Uses it starts with.
    pub count: i64,
    pub validity_begin: Millis,
    pub validity_end: Millis,
    pub templates: Value,
    pub deal: Value,
}

/// A voucher as stored, with its uses left.
#[derive(Debug, Clone, PartialEq)]
pub struct Voucher {
    pub id: i64,
    pub spec: VoucherSpec,
    pub remaining: i64,
}

/// One verify (核销) of some uses of a voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub verify_id: String,
    pub kind: VoucherType,
    pub coupon_no: String,
    pub shop_id: i64,
    pub count: i64,
    /// Uses left right after this verify.
    pub remaining_after: i64,
    pub verified_ms: Millis,
    pub cancelled_ms: Option<Millis>,
}

/// A verify as a shop asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    pub kind: VoucherType,
    pub coupon_no: String,
    pub shop_id: i64,
    pub count: i64,
    pub request_id: String,
    /// Scope of the idempotency key: `partner:<api_key>`.
    pub issuer: String,
}

/// Where a voucher stands now, for the operator's list. Exactly one applies:
/// no uses left is `used_up` whatever the time; otherwise the validity decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherStatus {
    /// Uses left, and now is within its validity.
    Usable,
    /// No uses left.
    UsedUp,
    /// Uses left, but its validity has ended.
    Expired,
    /// Uses left, but its validity has not begun.
    Upcoming,
}

impl VoucherStatus {
    /// Every status, in the order the docs list them.
    pub const ALL: [VoucherStatus; 4] = [
        VoucherStatus::Usable,
        VoucherStatus::UsedUp,
        VoucherStatus::Expired,
        VoucherStatus::Upcoming,
    ];

    /// Reads the query's `status`.
    pub fn parse(s: &str) -> Option<VoucherStatus> {
        VoucherStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The operator's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherStatus::Usable => "usable",
            VoucherStatus::UsedUp => "used_up",
            VoucherStatus::Expired => "expired",
            VoucherStatus::Upcoming => "upcoming",
        }
    }

    /// The status of `v` at `now`.
    pub fn of(v: &Voucher, now: Millis) -> VoucherStatus {
        if v.remaining <= 0 {
            VoucherStatus::UsedUp
        } else if now >= v.spec.validity_end {
            VoucherStatus::Expired
        } else if now < v.spec.validity_begin {
            VoucherStatus::Upcoming
        } else {
            VoucherStatus::Usable
        }
    }
}

/// Filter and page of `GET /admin/vouchers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherQuery {
    pub kind: Option<VoucherType>,
    pub status: Option<VoucherStatus>,
    /// The time `status` is judged at.
    pub now: Millis,
    pub limit: i64,
    /// Keyset cursor: the `next_after` of the previous page.
    pub after: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voucher(remaining: i64, begin: Millis, end: Millis) -> Voucher {
        Voucher {
            id: 1,
            spec: VoucherSpec {
                kind: VoucherType::Meituan,
                coupon_no: "1".into(),
                shop_ids: vec![1],
                coupon_name: "n".into(),
                value_fen: 100,
                price_fen: 10,
                coupon_type: String::new(),
                count: 3,
                validity_begin: begin,
                validity_end: end,
                templates: Value::Null,
                deal: Value::Null,
            },
            remaining,
        }
    }

    #[test]
    fn exactly_one_status_applies() {
        assert_eq!(
            VoucherStatus::of(&voucher(1, 10, 20), 10),
            VoucherStatus::Usable
        );
        assert_eq!(
            VoucherStatus::of(&voucher(1, 10, 20), 20),
            VoucherStatus::Expired
        );
        assert_eq!(
            VoucherStatus::of(&voucher(1, 10, 20), 9),
            VoucherStatus::Upcoming
        );
        assert_eq!(
            VoucherStatus::of(&voucher(0, 10, 20), 15),
            VoucherStatus::UsedUp
        );
        assert_eq!(
            VoucherStatus::of(&voucher(0, 10, 20), 25),
            VoucherStatus::UsedUp
        );
        for s in VoucherStatus::ALL {
            assert_eq!(VoucherStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(VoucherStatus::parse("gone"), None);
    }
}
