//! The one error type of the ledger, and its protocol codes (docs/protocol.md, conventions).

use std::fmt;

/// Every way a ledger operation can be refused. Each protocol renders it in its
/// own vocabulary, but the numeric code comes from [`LedgerError::code`] alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// 40001: a field is missing, of the wrong type or breaks a rule; the text names both.
    Invalid(String),
    /// 40002: the body is not a UTF-8 JSON object.
    NotJsonObject(String),
    /// 40101
    UnknownApiKey,
    /// 40102
    BadSignature,
    /// 40103
    TimestampOutOfWindow,
    /// 40104
    NonceReused,
    /// 40105
    BadAdminToken,
    /// 40301: the caller's source address is not on its allowlist.
    SourceNotAllowed,
    /// 40105 with HTTP 403: a named operator of role `read` asked for a change.
    ReadOnlyOperator(String),
    /// 40401
    StockNotFound,
    /// 40402: also when the coupon belongs to someone else.
    CouponNotFound,
    /// 40403
    VoucherNotFound,
    /// 40901
    StockNotRunning,
    /// 40902
    StockOutsideWindow,
    /// 40903
    SoldOut,
    /// 40904
    UserLimit,
    /// 40905: the state machine forbids the change; the text says which.
    StateConflict(String),
    /// 40906
    IdempotencyConflict(String),
    /// 40907
    VoucherExhausted(String),
    /// 40908
    BelowThreshold,
    /// 42900: too many attempts from one address; retry after this many seconds.
    RateLimited { retry_after_s: u64 },
    /// 50000: logged in full where it happens, answered without detail.
    Internal(String),
    /// 50301: the database cannot be written now (disk full, read-only, I/O
    /// error, writer stopped); nothing was changed. Logged where it happens.
    StorageUnavailable(String),
}

impl LedgerError {
    /// The protocol code of this outcome (docs/protocol.md, error codes).
    pub fn code(&self) -> i64 {
        match self {
            LedgerError::Invalid(_) => 40001,
            LedgerError::NotJsonObject(_) => 40002,
            LedgerError::UnknownApiKey => 40101,
            LedgerError::BadSignature => 40102,
            LedgerError::TimestampOutOfWindow => 40103,
            LedgerError::NonceReused => 40104,
            LedgerError::BadAdminToken => 40105,
            LedgerError::SourceNotAllowed => 40301,
            LedgerError::ReadOnlyOperator(_) => 40105,
            LedgerError::StockNotFound => 40401,
            LedgerError::CouponNotFound => 40402,
            LedgerError::VoucherNotFound => 40403,
            LedgerError::StockNotRunning => 40901,
            LedgerError::StockOutsideWindow => 40902,
            LedgerError::SoldOut => 40903,
            LedgerError::UserLimit => 40904,
            LedgerError::StateConflict(_) => 40905,
            LedgerError::IdempotencyConflict(_) => 40906,
            LedgerError::VoucherExhausted(_) => 40907,
            LedgerError::BelowThreshold => 40908,
            LedgerError::RateLimited { .. } => 42900,
            LedgerError::Internal(_) => 50000,
            LedgerError::StorageUnavailable(_) => 50301,
        }
    }

    /// The human-readable message that goes with the code.
    pub fn message(&self) -> String {
        match self {
            LedgerError::Invalid(m) => m.clone(),
            LedgerError::NotJsonObject(m) => m.clone(),
            LedgerError::UnknownApiKey => "unknown api_key".into(),
            LedgerError::BadSignature => "bad signature".into(),
            LedgerError::TimestampOutOfWindow => "timestamp outside the allowed window".into(),
            LedgerError::NonceReused => "nonce already used".into(),
            LedgerError::BadAdminToken => "bad or missing admin token".into(),
            LedgerError::SourceNotAllowed => "source address not allowed".into(),
            LedgerError::ReadOnlyOperator(name) => {
                format!(
                    "operator {name} may only read (role read); this call would change the ledger"
                )
            }
            LedgerError::StockNotFound => "stock not found".into(),
            LedgerError::CouponNotFound => "coupon not found".into(),
            LedgerError::VoucherNotFound => "voucher not found or not valid at this shop".into(),
            LedgerError::StockNotRunning => "stock not running".into(),
            LedgerError::StockOutsideWindow => "stock outside its time window".into(),
            LedgerError::SoldOut => "stock sold out".into(),
            LedgerError::UserLimit => "user limit reached".into(),
            LedgerError::StateConflict(m) => m.clone(),
            LedgerError::IdempotencyConflict(m) => m.clone(),
            LedgerError::VoucherExhausted(m) => m.clone(),
            LedgerError::BelowThreshold => "order amount below the coupon's threshold".into(),
            LedgerError::RateLimited { retry_after_s } => {
                format!("too many attempts; retry after {retry_after_s} s")
            }
            LedgerError::Internal(_) => "internal error".into(),
            LedgerError::StorageUnavailable(_) => {
                "storage unavailable: the ledger cannot be written now; nothing was changed".into()
            }
        }
    }

    /// Shorthand for a validation error on one field: `field: rule`.
    pub fn invalid(field: &str, rule: impl fmt::Display) -> LedgerError {
        LedgerError::Invalid(format!("{field}: {rule}"))
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Internal(detail) => write!(f, "{} internal error: {detail}", self.code()),
            LedgerError::StorageUnavailable(detail) => {
                write!(f, "{} storage unavailable: {detail}", self.code())
            }
            other => write!(f, "{} {}", other.code(), other.message()),
        }
    }
}

impl std::error::Error for LedgerError {}

impl From<rusqlite::Error> for LedgerError {
    /// A fault of the storage under the ledger (disk full, read-only file,
    /// I/O error) is [`LedgerError::StorageUnavailable`]; anything else is internal.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen) => {
                LedgerError::StorageUnavailable(format!("sqlite: {e}"))
            }
            _ => LedgerError::Internal(format!("sqlite: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec_table() {
        assert_eq!(LedgerError::invalid("stock_id", "required").code(), 40001);
        assert_eq!(LedgerError::SoldOut.code(), 40903);
        assert_eq!(LedgerError::UserLimit.code(), 40904);
        assert_eq!(LedgerError::BelowThreshold.code(), 40908);
        assert_eq!(
            LedgerError::Internal("x".into()).message(),
            "internal error"
        );
    }
}
