//! Money: integer fen only, and the discount maths of SPEC §10. No float touches money.

use super::stock::CouponKind;

/// An amount of money in fen (分). Never negative inside the ledger.
pub type Fen = i64;

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

/// The discount a coupon gives on `order` fen (SPEC §10): 满减 takes off
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

/// Renders fen as a yuan string without trailing zeros: 10 → "0.1", 1000 → "10", 1234 → "12.34".
pub fn yuan(fen: Fen) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let (whole, cents) = (abs / 100, abs % 100);
    match cents {
        0 => format!("{sign}{whole}"),
        c if c % 10 == 0 => format!("{sign}{whole}.{}", c / 10),
        c => format!("{sign}{whole}.{c:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn yuan_has_no_trailing_zeros() {
        assert_eq!(yuan(10), "0.1");
        assert_eq!(yuan(1000), "10");
        assert_eq!(yuan(1234), "12.34");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(0), "0");
        assert_eq!(yuan(100_000_000_001), "1000000000.01");
    }
}
