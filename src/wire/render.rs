//! Rendering domain values in the platform protocol's vocabulary, shared by the platform and admin APIs.

use serde_json::{json, Map, Value};
use time::UtcOffset;

use crate::domain::ledger::{Coupon, OutboxCall, Stock, StockCounts};
use crate::domain::stock::CouponKind;
use crate::domain::time::render_millis;

/// Adds the amount block of the kind's type (and only that one) to `out`.
pub fn kind_into(kind: &CouponKind, out: &mut Map<String, Value>) {
    out.insert("coupon_type".into(), json!(kind.type_code()));
    if let Some(b) = kind.fixed_block() {
        out.insert(
            "fixed_normal_coupon".into(),
            json!({"coupon_amount": b.coupon_amount, "transaction_minimum": b.transaction_minimum}),
        );
    }
    if let Some(b) = kind.discount_block() {
        out.insert(
            "discount_coupon".into(),
            json!({
                "discount_amount_max": b.discount_amount_max,
                "discount_percent": b.discount_percent,
                "transaction_minimum": b.transaction_minimum
            }),
        );
    }
}

/// A stock with the protocol's 查询批次信息 fields.
pub fn stock(s: &Stock, tz: UtcOffset) -> Map<String, Value> {
    let spec = &s.spec;
    let mut m = Map::new();
    m.insert("app_channel_id".into(), json!(spec.app_channel_id));
    m.insert("app_id".into(), json!(spec.app_id));
    m.insert("stock_id".into(), json!(spec.stock_id));
    m.insert("stock_name".into(), json!(spec.stock_name));
    m.insert("instructions".into(), json!(spec.instructions));
    m.insert("coupon_name".into(), json!(spec.coupon_name));
    m.insert("coupon_desc".into(), json!(spec.coupon_desc));
    kind_into(&spec.kind, &mut m);
    m.insert("max_coupons".into(), json!(spec.max_coupons));
    m.insert(
        "max_coupons_per_user".into(),
        json!(spec.max_coupons_per_user),
    );
    m.insert(
        "available_begin_time".into(),
        json!(render_millis(spec.available_begin, tz)),
    );
    m.insert(
        "available_end_time".into(),
        json!(render_millis(spec.available_end, tz)),
    );
    m.insert("create_time".into(), json!(render_millis(s.create_ms, tz)));
    m.insert("stock_status".into(), json!(spec.status.code()));
    m
}

/// A stock with its counts, for the admin API.
pub fn stock_with_counts(s: &Stock, c: &StockCounts, tz: UtcOffset) -> Value {
    let mut m = stock(s, tz);
    m.insert(
        "counts".into(),
        json!({
            "issued": c.issued, "available": c.available, "used": c.used,
            "expired": c.expired, "deactivated": c.deactivated
        }),
    );
    Value::Object(m)
}

/// A coupon with the protocol's 领券 answer fields.
pub fn claimed(c: &Coupon, tz: UtcOffset) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app_id".into(), json!(c.app_id));
    m.insert("stock_id".into(), json!(c.stock_id));
    m.insert("coupon_id".into(), json!(c.coupon_id));
    kind_into(&c.kind, &mut m);
    m.insert(
        "available_begin_time".into(),
        json!(render_millis(c.available_begin, tz)),
    );
    m.insert(
        "available_end_time".into(),
        json!(render_millis(c.available_end, tz)),
    );
    m.insert(
        "receive_time".into(),
        json!(render_millis(c.receive_ms, tz)),
    );
    m.insert("coupon_status".into(), json!(c.status.code()));
    m
}

/// A coupon with everything the operator may see (the phone stays masked).
pub fn coupon_full(c: &Coupon, tz: UtcOffset) -> Value {
    let mut m = claimed(c, tz);
    m.insert("app_channel_id".into(), json!(c.app_channel_id));
    m.insert("user_code".into(), json!(c.user_code));
    m.insert("mobile_phone".into(), json!(c.mobile_masked));
    m.insert("request_id".into(), json!(c.request_id));
    m.insert("status_time".into(), json!(render_millis(c.status_ms, tz)));
    m.insert(
        "usage_time".into(),
        json!(c.usage_ms.map(|t| render_millis(t, tz))),
    );
    Value::Object(m)
}

/// An outbox call for the operator.
pub fn outbox_call(c: &OutboxCall, tz: UtcOffset) -> Value {
    json!({
        "id": c.id,
        "seq_id": c.seq_id,
        "path": c.path,
        "stock_id": c.stock_id,
        "coupon_id": c.coupon_id,
        "state": c.state,
        "attempts": c.attempts,
        "created_time": render_millis(c.created_ms, tz),
        "next_attempt_time": render_millis(c.next_attempt_ms, tz),
        "delivered_time": c.delivered_ms.map(|t| render_millis(t, tz)),
        "last_error": c.last_error,
        "abandoned_time": c.abandoned_ms.map(|t| render_millis(t, tz)),
        "abandon_reason": c.abandon_reason,
        "body": serde_json::from_str::<Value>(&c.body).unwrap_or(Value::Null),
    })
}
