//! The ledger's records as the rest of the program sees them, and the
//! requests that change them. Plain data: the store builds and checks them.

use super::error::LedgerError;
use super::ids::{CouponId, Issuer, MaskedPhone, RequestId, StockId, UserCode};
use super::money::Fen;
use super::stock::{CouponKind, CouponStatus, DiscountBlock, FixedBlock, StockSpec, StockStatus};
use super::time::Millis;

/// Who caused a change; written to every journal row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Platform,
    Admin,
    Sweeper,
    Shop,
}

impl Source {
    /// The journal's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Platform => "platform",
            Source::Admin => "admin",
            Source::Sweeper => "sweeper",
            Source::Shop => "shop",
        }
    }
}

/// The context of one change: who, which trace id, when.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Source,
    pub seq_id: Option<String>,
    pub now: Millis,
    /// The named operator of an admin API call (`[[admins]]`, or `admin` for
    /// `admin_token`); `None` for every other source.
    pub operator: Option<String>,
}

/// A stock as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    pub spec: StockSpec,
    pub create_ms: Millis,
    pub issued: i64,
}

impl Stock {
    /// The stock's spec with `patch` applied, validated again: a stopped stock
    /// cannot be edited, and what the first coupon froze (type and amounts,
    /// channel, app, start time; the per-user limit may only rise) stays.
    pub fn patched(&self, patch: StockPatch) -> Result<StockSpec, LedgerError> {
        let old = &self.spec;
        if old.status == StockStatus::Stopped {
            return Err(LedgerError::StateConflict(
                "stock is stopped (4) and can no longer be edited".into(),
            ));
        }
        let mut spec = old.draft();
        macro_rules! take {
            ($($f:ident => $g:ident),*) => { $( if let Some(v) = patch.$f { spec.$g = v; } )* };
        }
        if let Some(k) = &patch.kind {
            spec.kind = k.apply(&old.kind)?;
        }
        take!(stock_name => stock_name, app_channel_id => app_channel_id, app_id => app_id,
              instructions => instructions, coupon_name => coupon_name, coupon_desc => coupon_desc,
              max_coupons => max_coupons, max_coupons_per_user => max_coupons_per_user,
              available_begin => available_begin, available_end => available_end);
        if self.issued > 0 {
            let frozen = if spec.kind != old.kind {
                Some("coupon_type and amounts")
            } else if spec.app_channel_id != old.app_channel_id {
                Some("app_channel_id")
            } else if spec.app_id != old.app_id {
                Some("app_id")
            } else if spec.available_begin != old.available_begin {
                Some("available_begin_time")
            } else if spec.max_coupons_per_user < old.max_coupons_per_user {
                Some("max_coupons_per_user (it may only rise)")
            } else {
                None
            };
            if let Some(what) = frozen {
                return Err(LedgerError::StateConflict(format!(
                    "{what}: frozen after the first coupon is issued"
                )));
            }
        }
        if spec.max_coupons < self.issued {
            return Err(LedgerError::invalid(
                "max_coupons",
                format!("below the {} coupons already issued", self.issued),
            ));
        }
        StockSpec::new(spec)
    }
}

/// How many coupons of a stock are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockCounts {
    pub issued: i64,
    pub available: i64,
    pub used: i64,
    pub expired: i64,
    pub deactivated: i64,
}

/// A coupon as stored. Its terms are copied from the stock at issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub coupon_id: String,
    pub stock_id: String,
    pub app_channel_id: i64,
    pub user_code: String,
    pub mobile_masked: Option<String>,
    pub app_id: String,
    pub kind: CouponKind,
    pub available_begin: Millis,
    pub available_end: Millis,
    pub receive_ms: Millis,
    pub status: CouponStatus,
    pub status_ms: Millis,
    pub usage_ms: Option<Millis>,
    /// The idempotency key it was issued under.
    pub request_id: String,
}

/// A request for one coupon (领券, or an operator issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub stock_id: StockId,
    pub app_channel_id: i64,
    pub user_code: UserCode,
    /// Masked: the full number never reaches the store.
    pub mobile_masked: Option<MaskedPhone>,
    pub request_id: RequestId,
    /// Scope of the idempotency key.
    pub issuer: Issuer,
}

/// Identifies one coupon of one user, as the platform names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCoupon {
    pub stock_id: StockId,
    pub coupon_id: CouponId,
}

/// 设置可用优惠券过期/失效, one coupon or a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeactivateRequest {
    pub app_channel_id: i64,
    pub user_code: UserCode,
    pub coupons: Vec<HeldCoupon>,
    /// Expired or Deactivated.
    pub to: CouponStatus,
    pub reason: Option<String>,
}

/// One coupon's final state after a satisfied expire/deactivate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub coupon: HeldCoupon,
    pub status: CouponStatus,
    pub at: Millis,
}

/// Why a coupon blocks an expire/deactivate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// No such coupon, or it belongs to another user or stock.
    Unknown,
    /// Used (2): it can no longer expire or be deactivated.
    Used,
}

/// One coupon that blocks a batch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Illegal {
    pub coupon: HeldCoupon,
    pub blocker: Blocker,
}

impl Illegal {
    /// The `coupon_status` the platform protocol reports: 0 for an unknown coupon.
    pub fn wire_status(&self) -> i64 {
        match self.blocker {
            Blocker::Unknown => 0,
            Blocker::Used => CouponStatus::Used.code(),
        }
    }
}

/// What a batch expire/deactivate came to (the batch rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Done(Vec<Settled>),
    Refused(Vec<Illegal>),
}

/// A redemption of a coupon against an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub order_id: String,
    pub coupon_id: String,
    pub order_amount: Fen,
    pub discount_amount: Fen,
    pub pay_amount: Fen,
    pub usage_ms: Millis,
    pub undone_ms: Option<Millis>,
}

/// One journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: i64,
    pub entity: String,
    pub entity_id: String,
    pub event: String,
    pub from_status: Option<i64>,
    pub to_status: Option<i64>,
    pub source: String,
    pub seq_id: Option<String>,
    pub at_ms: Millis,
    pub detail: Option<String>,
    /// The operator who made an admin API change; `None` otherwise.
    pub operator: Option<String>,
}

/// Editable fields of a stock (docs/protocol.md, the ledger's rules); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockPatch {
    pub stock_name: Option<String>,
    pub app_channel_id: Option<i64>,
    pub app_id: Option<String>,
    pub instructions: Option<String>,
    pub coupon_name: Option<String>,
    pub coupon_desc: Option<String>,
    pub kind: Option<KindPatch>,
    pub max_coupons: Option<i64>,
    pub max_coupons_per_user: Option<i64>,
    pub available_begin: Option<Millis>,
    pub available_end: Option<Millis>,
}

/// A change of a stock's type or amounts; what is left out keeps its current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindPatch {
    pub coupon_type: Option<i64>,
    pub fixed: Option<FixedBlock>,
    pub discount: Option<DiscountBlock>,
}

impl KindPatch {
    /// The kind that results from applying this change to `current`.
    pub fn apply(&self, current: &CouponKind) -> Result<CouponKind, super::LedgerError> {
        CouponKind::new(
            self.coupon_type.unwrap_or(current.type_code()),
            self.fixed.or(current.fixed_block()),
            self.discount.or(current.discount_block()),
        )
    }
}

/// Filter and page of `GET /admin/coupons`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CouponQuery {
    pub user_code: Option<String>,
    pub stock_id: Option<String>,
    pub status: Option<CouponStatus>,
    /// The coupon this order redeemed (also when the redemption was undone).
    pub order_id: Option<String>,
    /// Issued at or after this time.
    pub from: Option<Millis>,
    /// Issued before this time.
    pub to: Option<Millis>,
    pub limit: i64,
    /// Keyset cursor: the `next_after` of the previous page.
    pub after: Option<i64>,
}

/// One page of a keyset-paginated list, and how many items match the filters
/// in all (every page together).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; `None` when this page was not full.
    pub next_after: Option<i64>,
    pub total: i64,
}

impl<T> Page<T> {
    /// A page of `limit` asked items, each with its cursor: the next cursor is
    /// the last item's when the page is full.
    pub fn of(rows: Vec<(T, i64)>, limit: i64, total: i64) -> Page<T> {
        let next_after = if rows.len() as i64 == limit {
            rows.last().map(|(_, k)| *k)
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(|(t, _)| t).collect(),
            next_after,
            total,
        }
    }
}

/// A change the platform must hear about (docs/protocol.md, sync to the platform). Platform-initiated changes
/// (claims, deactivations it asked for) raise none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// Created, edited or resent by the operator: `/stock/rsync`.
    StockUpserted(Stock),
    /// `/stock/status/rsync`.
    StockStatus { stock_id: String, status: i64 },
    /// Issued by the operator, or resent by the operator: `/coupon/rsync`.
    CouponIssued(Coupon),
    /// Redeemed, un-redeemed or expired by the sweeper: `/coupon/status/rsync`.
    CouponStatus { coupon: Coupon, event_ms: Millis },
}

impl SyncEvent {
    /// The stock the call is about.
    pub fn stock_id(&self) -> &str {
        match self {
            SyncEvent::StockUpserted(s) => &s.spec.stock_id,
            SyncEvent::StockStatus { stock_id, .. } => stock_id,
            SyncEvent::CouponIssued(c) | SyncEvent::CouponStatus { coupon: c, .. } => &c.stock_id,
        }
    }

    /// The coupon the call is about, if any.
    pub fn coupon_id(&self) -> Option<&str> {
        match self {
            SyncEvent::CouponIssued(c) | SyncEvent::CouponStatus { coupon: c, .. } => {
                Some(&c.coupon_id)
            }
            _ => None,
        }
    }
}

/// One call of the outbox as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCall {
    pub id: i64,
    pub seq_id: String,
    pub path: String,
    /// The business fields as JSON; the common parameters and sign are added per attempt.
    pub body: String,
    pub stock_id: String,
    pub coupon_id: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_ms: Millis,
    pub created_ms: Millis,
    pub delivered_ms: Option<Millis>,
    pub last_error: Option<String>,
    /// When the operator gave up on the call (state `abandoned`), and why.
    pub abandoned_ms: Option<Millis>,
    pub abandon_reason: Option<String>,
}

/// What an operator's resync is about: a stock or a coupon, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncTarget {
    Stock(String),
    Coupon(String),
}

/// The longest reason an operator may give for abandoning a call, in characters.
pub const MAX_ABANDON_REASON: usize = 256;

/// Checks the operator's reason for abandoning a call: required, not blank,
/// at most [`MAX_ABANDON_REASON`] characters. Answers it trimmed.
pub fn abandon_reason(reason: &str) -> Result<String, super::LedgerError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(super::LedgerError::invalid("reason", "required"));
    }
    if reason.chars().count() > MAX_ABANDON_REASON {
        return Err(super::LedgerError::invalid(
            "reason",
            format!("longer than {MAX_ABANDON_REASON} characters"),
        ));
    }
    Ok(reason.to_string())
}

/// Outbox health for `/healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxHealth {
    pub pending: i64,
    pub dead: i64,
    /// Pending calls that wait behind a dead call of their coupon or stock.
    pub blocked: i64,
    /// Every call delivered since the database was created, pruned ones included.
    pub delivered: i64,
    /// Every call abandoned since the database was created, pruned ones included.
    pub abandoned: i64,
    /// Creation time of the oldest pending call.
    pub oldest_pending_ms: Option<Millis>,
}

/// The state of a sync call in the outbox, as `outbox.state` stores it.
/// The SQL of the store takes its words from here, never from literals, so
/// the two cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Not delivered yet, still being tried.
    Pending,
    /// Parked after `max_attempts`: waits for an operator's retry or abandon.
    Dead,
    /// Delivered: final.
    Delivered,
    /// Given up on by an operator: final.
    Abandoned,
}

impl OutboxState {
    /// The stored word.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Dead => "dead",
            OutboxState::Delivered => "delivered",
            OutboxState::Abandoned => "abandoned",
        }
    }
}

/// The states of a sync call in the outbox, in their stored words.
pub const OUTBOX_STATES: [&str; 4] = [
    OutboxState::Pending.as_str(),
    OutboxState::Dead.as_str(),
    OutboxState::Delivered.as_str(),
    OutboxState::Abandoned.as_str(),
];
