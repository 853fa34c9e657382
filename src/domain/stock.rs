//! Stocks (批次) and coupons: types, amounts and the two state machines (docs/protocol.md, the ledger's rules).

use super::error::LedgerError;
use super::money::Fen;
use super::time::Millis;

/// A coupon's kind with the amounts that belong to it. Built only through
/// [`CouponKind::new`], so an amount block always matches its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponKind {
    /// 1 满减: `amount` off when the order reaches `minimum`.
    FixedOff { amount: Fen, minimum: Fen },
    /// 2 减至: the order is cut down to `price` (stored in `coupon_amount`).
    CutTo { price: Fen, minimum: Fen },
    /// 3 折扣: pay `percent`% of the order, saving at most `max`.
    Percent {
        percent: i64,
        max: Fen,
        minimum: Fen,
    },
}

/// The protocol's `fixed_normal_coupon` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBlock {
    pub coupon_amount: Fen,
    pub transaction_minimum: Fen,
}

/// The protocol's `discount_coupon` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscountBlock {
    pub discount_amount_max: Fen,
    pub discount_percent: i64,
    pub transaction_minimum: Fen,
}

impl CouponKind {
    /// Builds a kind from the wire's `coupon_type` and the blocks that came with it;
    /// the block of the type is required, the other is ignored.
    pub fn new(
        coupon_type: i64,
        fixed: Option<FixedBlock>,
        discount: Option<DiscountBlock>,
    ) -> Result<CouponKind, LedgerError> {
        let fixed_block = || {
            fixed.ok_or_else(|| {
                LedgerError::invalid("fixed_normal_coupon", "required for coupon_type 1 and 2")
            })
        };
        match coupon_type {
            1 | 2 => {
                let b = fixed_block()?;
                if b.coupon_amount <= 0 {
                    return Err(LedgerError::invalid(
                        "fixed_normal_coupon.coupon_amount",
                        "must be greater than 0",
                    ));
                }
                if b.transaction_minimum < 0 {
                    return Err(LedgerError::invalid(
                        "fixed_normal_coupon.transaction_minimum",
                        "must not be negative",
                    ));
                }
                Ok(if coupon_type == 1 {
                    CouponKind::FixedOff {
                        amount: b.coupon_amount,
                        minimum: b.transaction_minimum,
                    }
                } else {
                    CouponKind::CutTo {
                        price: b.coupon_amount,
                        minimum: b.transaction_minimum,
                    }
                })
            }
            3 => {
                let b = discount.ok_or_else(|| {
                    LedgerError::invalid("discount_coupon", "required for coupon_type 3")
                })?;
                if !(1..=99).contains(&b.discount_percent) {
                    return Err(LedgerError::invalid(
                        "discount_coupon.discount_percent",
                        "must be between 1 and 99",
                    ));
                }
                if b.discount_amount_max <= 0 {
                    return Err(LedgerError::invalid(
                        "discount_coupon.discount_amount_max",
                        "must be greater than 0",
                    ));
                }
                if b.transaction_minimum < 0 {
                    return Err(LedgerError::invalid(
                        "discount_coupon.transaction_minimum",
                        "must not be negative",
                    ));
                }
                Ok(CouponKind::Percent {
                    percent: b.discount_percent,
                    max: b.discount_amount_max,
                    minimum: b.transaction_minimum,
                })
            }
            _ => Err(LedgerError::invalid("coupon_type", "must be 1, 2 or 3")),
        }
    }

    /// The protocol's `coupon_type` number.
    pub fn type_code(&self) -> i64 {
        match self {
            CouponKind::FixedOff { .. } => 1,
            CouponKind::CutTo { .. } => 2,
            CouponKind::Percent { .. } => 3,
        }
    }

    /// The order amount the coupon needs, in fen.
    pub fn transaction_minimum(&self) -> Fen {
        match *self {
            CouponKind::FixedOff { minimum, .. }
            | CouponKind::CutTo { minimum, .. }
            | CouponKind::Percent { minimum, .. } => minimum,
        }
    }

    /// The `fixed_normal_coupon` block, for types 1 and 2.
    pub fn fixed_block(&self) -> Option<FixedBlock> {
        match *self {
            CouponKind::FixedOff { amount, minimum } => Some(FixedBlock {
                coupon_amount: amount,
                transaction_minimum: minimum,
            }),
            CouponKind::CutTo { price, minimum } => Some(FixedBlock {
                coupon_amount: price,
                transaction_minimum: minimum,
            }),
            CouponKind::Percent { .. } => None,
        }
    }

    /// The `discount_coupon` block, for type 3.
    pub fn discount_block(&self) -> Option<DiscountBlock> {
        match *self {
            CouponKind::Percent {
                percent,
                max,
                minimum,
            } => Some(DiscountBlock {
                discount_amount_max: max,
                discount_percent: percent,
                transaction_minimum: minimum,
            }),
            _ => None,
        }
    }
}

/// 批次状态: 1 未激活, 2 审核中, 3 运行中, 4 已停止, 5 暂停发放.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockStatus {
    Inactive = 1,
    InReview = 2,
    Running = 3,
    Stopped = 4,
    Paused = 5,
}

impl StockStatus {
    /// Reads the protocol's number.
    pub fn from_code(code: i64) -> Option<StockStatus> {
        Some(match code {
            1 => StockStatus::Inactive,
            2 => StockStatus::InReview,
            3 => StockStatus::Running,
            4 => StockStatus::Stopped,
            5 => StockStatus::Paused,
            _ => return None,
        })
    }

    /// The protocol's number.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// 1→2, 1→3, 2→1, 2→3, 3→5, 5→3, any non-4 → 4.
    pub fn can_become(self, to: StockStatus) -> bool {
        use StockStatus::*;
        matches!(
            (self, to),
            (Inactive, InReview)
                | (Inactive, Running)
                | (InReview, Inactive)
                | (InReview, Running)
                | (Running, Paused)
                | (Paused, Running)
        ) || (self != Stopped && to == Stopped)
    }
}

/// 优惠券状态: 1 可用, 2 已使用, 3 已过期, 4 无效/失效.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponStatus {
    Available = 1,
    Used = 2,
    Expired = 3,
    Deactivated = 4,
}

impl CouponStatus {
    /// Reads the protocol's number.
    pub fn from_code(code: i64) -> Option<CouponStatus> {
        Some(match code {
            1 => CouponStatus::Available,
            2 => CouponStatus::Used,
            3 => CouponStatus::Expired,
            4 => CouponStatus::Deactivated,
            _ => return None,
        })
    }

    /// The protocol's number.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// 1→2 redeem, 1→3 expire, 1→4 deactivate, 2→1 un-redeem. 3 and 4 are final.
    pub fn can_become(self, to: CouponStatus) -> bool {
        use CouponStatus::*;
        matches!(
            (self, to),
            (Available, Used) | (Available, Expired) | (Available, Deactivated) | (Used, Available)
        )
    }

    /// Expired or deactivated: nothing can happen to the coupon any more.
    pub fn is_final(self) -> bool {
        matches!(self, CouponStatus::Expired | CouponStatus::Deactivated)
    }
}

/// A stock as an operator writes it: every field, not yet checked together.
/// [`StockSpec::new`] turns it into a stock the ledger accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockDraft {
    pub stock_id: String,
    pub stock_name: String,
    pub app_channel_id: i64,
    pub app_id: String,
    pub instructions: String,
    pub coupon_name: String,
    pub coupon_desc: String,
    pub kind: CouponKind,
    pub max_coupons: i64,
    pub max_coupons_per_user: i64,
    pub available_begin: Millis,
    pub available_end: Millis,
    pub status: StockStatus,
}

/// A validated stock definition: the rules that tie fields together (window
/// order, limits of at least 1; amounts matching the type hold by
/// [`CouponKind`]) hold for every value, because the only ways to get one are
/// [`StockSpec::new`] and the methods below, which check again. Its fields
/// are read through `Deref` to [`StockDraft`]; they cannot be assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockSpec(StockDraft);

impl StockSpec {
    /// Checks the rules that tie fields together.
    pub fn new(draft: StockDraft) -> Result<StockSpec, LedgerError> {
        if draft.available_begin >= draft.available_end {
            return Err(LedgerError::invalid(
                "available_end_time",
                "must be later than available_begin_time",
            ));
        }
        if draft.max_coupons < 1 {
            return Err(LedgerError::invalid("max_coupons", "must be at least 1"));
        }
        if draft.max_coupons_per_user < 1 {
            return Err(LedgerError::invalid(
                "max_coupons_per_user",
                "must be at least 1",
            ));
        }
        Ok(StockSpec(draft))
    }

    /// A copy of the fields, to change and validate again with [`StockSpec::new`].
    pub fn draft(&self) -> StockDraft {
        self.0.clone()
    }

    /// The same stock in another status (no other rule depends on the status).
    pub fn with_status(self, status: StockStatus) -> StockSpec {
        StockSpec(StockDraft { status, ..self.0 })
    }
}

impl std::ops::Deref for StockSpec {
    type Target = StockDraft;

    fn deref(&self) -> &StockDraft {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_transitions_follow_the_spec() {
        use StockStatus::*;
        let all = [Inactive, InReview, Running, Stopped, Paused];
        let allowed = [
            (Inactive, InReview),
            (Inactive, Running),
            (InReview, Inactive),
            (InReview, Running),
            (Running, Paused),
            (Paused, Running),
            (Inactive, Stopped),
            (InReview, Stopped),
            (Running, Stopped),
            (Paused, Stopped),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn coupon_final_states_are_final() {
        use CouponStatus::*;
        for to in [Available, Used, Expired, Deactivated] {
            assert!(!Expired.can_become(to));
            assert!(!Deactivated.can_become(to));
        }
        assert!(Used.can_become(Available));
        assert!(!Used.can_become(Expired));
        assert!(!Available.can_become(Available));
    }

    #[test]
    fn kind_requires_the_block_of_its_type() {
        let fixed = FixedBlock {
            coupon_amount: 1000,
            transaction_minimum: 0,
        };
        assert!(CouponKind::new(3, Some(fixed), None).is_err());
        assert_eq!(
            CouponKind::new(2, Some(fixed), None).unwrap().type_code(),
            2
        );
        let bad = DiscountBlock {
            discount_amount_max: 10,
            discount_percent: 100,
            transaction_minimum: 0,
        };
        let e = CouponKind::new(3, None, Some(bad)).unwrap_err();
        assert!(e.message().starts_with("discount_coupon.discount_percent"));
        assert!(CouponKind::new(4, Some(fixed), None).is_err());
    }
}
