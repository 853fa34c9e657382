//! The discount maths of a redemption (docs/operations.md, redeem): integer
//! fen only.

use super::money::Fen;
use super::stock::CouponKind;

/// What a redemption of one coupon against one order yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discount {
    /// The amount the coupon takes off, in fen.
    pub discount: Fen,
    /// What the customer pays, in fen.
    pub pay: Fen,
}

/// Why a coupon cannot be applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountRefusal {
    /// The order is below the coupon's `transaction_minimum`.
    BelowThreshold,
}

/// The discount a coupon gives on `order` fen: 满减 takes off
/// `coupon_amount`; 减至 cuts the price down to `coupon_amount`; 折扣 takes off
/// `order × (100 − percent) / 100` rounded down and capped at
/// `discount_amount_max`. Never more than the order itself.
pub fn discount(kind: &CouponKind, order: Fen) -> Result<Discount, DiscountRefusal> {
    if order < kind.transaction_minimum() {
        return Err(DiscountRefusal::BelowThreshold);
    }
    let off = match *kind {
        CouponKind::FixedOff { amount, .. } => amount,
        CouponKind::CutTo { price, .. } => order.saturating_sub(price).max(0),
        CouponKind::Percent { percent, max, .. } => {
            let raw = i128::from(order) * i128::from(100 - percent) / 100;
            i64::try_from(raw).unwrap_or(i64::MAX).min(max)
        }
    };
    let off = off.clamp(0, order);
    Ok(Discount {
        discount: off,
        pay: order - off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stock::CouponKind;

    #[test]
    fn fixed_off_takes_its_amount_but_never_more_than_the_order() {
        let k = CouponKind::FixedOff {
            amount: 1000,
            minimum: 0,
        };
        assert_eq!(
            discount(&k, 5000),
            Ok(Discount {
                discount: 1000,
                pay: 4000
            })
        );
        assert_eq!(
            discount(&k, 600),
            Ok(Discount {
                discount: 600,
                pay: 0
            })
        );
    }

    #[test]
    fn threshold_is_inclusive() {
        let k = CouponKind::FixedOff {
            amount: 1000,
            minimum: 10000,
        };
        assert_eq!(discount(&k, 9999), Err(DiscountRefusal::BelowThreshold));
        assert_eq!(discount(&k, 10000).map(|d| d.pay), Ok(9000));
    }

    #[test]
    fn cut_to_pays_the_cut_price() {
        let k = CouponKind::CutTo {
            price: 990,
            minimum: 0,
        };
        assert_eq!(
            discount(&k, 2500),
            Ok(Discount {
                discount: 1510,
                pay: 990
            })
        );
        assert_eq!(
            discount(&k, 500),
            Ok(Discount {
                discount: 0,
                pay: 500
            })
        );
    }

    #[test]
    fn percent_rounds_down_to_the_fen_and_caps() {
        let k = CouponKind::Percent {
            percent: 88,
            max: 1000,
            minimum: 0,
        };
        // 1999 × 12 / 100 = 239.88 → 239
        assert_eq!(
            discount(&k, 1999),
            Ok(Discount {
                discount: 239,
                pay: 1760
            })
        );
        assert_eq!(discount(&k, 100_000).map(|d| d.discount), Ok(1000));
        assert_eq!(discount(&k, i64::MAX).map(|d| d.discount), Ok(1000));
    }
}
