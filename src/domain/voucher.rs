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
