//! Ledger requests read from a partner's or an operator's fields: one builder
//! each, so the platform API and the admin API cannot read them differently.

use super::fields::{Fields, MAX_CHANNEL};
use crate::domain::ids::{CouponId, Issuer, StockId, UserCode};
use crate::domain::ledger::{ClaimRequest, DeactivateRequest, HeldCoupon};
use crate::domain::stock::CouponStatus;
use crate::domain::LedgerError;

/// A claim (领券) or an operator's issue: `app_channel_id`, `user_code`,
/// `mobile_phone` (optional, masked here), `stock_id`, `request_id`.
pub fn claim_request(f: &Fields, issuer: Issuer) -> Result<ClaimRequest, LedgerError> {
    Ok(ClaimRequest {
        app_channel_id: f.int("app_channel_id", 0, MAX_CHANNEL)?,
        user_code: f.named::<UserCode>()?,
        mobile_masked: f.opt_masked_phone("mobile_phone")?,
        stock_id: f.named::<StockId>()?,
        request_id: f.named()?,
        issuer,
    })
}

/// One coupon as the platform names it: `stock_id` and `coupon_id`.
pub fn held_coupon(f: &Fields) -> Result<HeldCoupon, LedgerError> {
    Ok(HeldCoupon {
        stock_id: f.named::<StockId>()?,
        coupon_id: f.named::<CouponId>()?,
    })
}

/// 设置可用优惠券过期/失效 of `coupons`: `app_channel_id`, `user_code`,
/// `mobile_phone` (checked, not kept), `coupon_status` 3 or 4, `reason`, `extra`.
pub fn deactivate_request(
    f: &Fields,
    coupons: Vec<HeldCoupon>,
) -> Result<DeactivateRequest, LedgerError> {
    let app_channel_id = f.int("app_channel_id", 0, MAX_CHANNEL)?;
    let user_code = f.named::<UserCode>()?;
    f.opt_phone("mobile_phone")?;
    let to = match f.int("coupon_status", 0, 99)? {
        3 => CouponStatus::Expired,
        4 => CouponStatus::Deactivated,
        _ => {
            return Err(LedgerError::invalid(
                "coupon_status",
                "must be 3 (expired) or 4 (deactivated)",
            ))
        }
    };
    let reason = f.opt_str("reason", 15)?;
    f.opt_str("extra", 128)?;
    Ok(DeactivateRequest {
        app_channel_id,
        user_code,
        coupons,
        to,
        reason,
    })
}
