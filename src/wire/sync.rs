//! The calls the SP sends the platform when its own side changes a stock or
//! coupon.

use serde_json::{json, Map, Value};
use time::UtcOffset;

use super::render;
use crate::domain::ledger::SyncEvent;
use crate::domain::stock::CouponStatus;
use crate::domain::time::render_millis;

/// The platform call an SP-side change causes: its path and business fields
/// (docs/protocol.md, sync to the platform).
pub fn platform_call(event: &SyncEvent, tz: UtcOffset) -> (&'static str, Value) {
    match event {
        SyncEvent::StockUpserted(stock) => {
            ("/stock/rsync", Value::Object(render::stock(stock, tz)))
        }
        SyncEvent::StockStatus { stock_id, status } => (
            "/stock/status/rsync",
            json!({"stock_id": stock_id, "stock_status": status}),
        ),
        SyncEvent::CouponIssued(c) => {
            let mut m = render::claimed(c, tz);
            m.insert("app_channel_id".into(), json!(c.app_channel_id));
            m.insert("user_code".into(), json!(c.user_code));
            if let Some(u) = c.usage_ms {
                m.insert("usage_time".into(), json!(render_millis(u, tz)));
            }
            ("/coupon/rsync", Value::Object(m))
        }
        SyncEvent::CouponStatus {
            coupon: c,
            event_ms,
        } => {
            let mut m = Map::new();
            m.insert("app_channel_id".into(), json!(c.app_channel_id));
            m.insert("user_code".into(), json!(c.user_code));
            m.insert("stock_id".into(), json!(c.stock_id));
            m.insert("coupon_id".into(), json!(c.coupon_id));
            m.insert("coupon_status".into(), json!(c.status.code()));
            if let (CouponStatus::Used, Some(u)) = (c.status, c.usage_ms) {
                m.insert("usage_time".into(), json!(render_millis(u, tz)));
            }
            m.insert("event_time".into(), json!(render_millis(*event_ms, tz)));
            m.insert("version".into(), json!("1.0.1"));
            ("/coupon/status/rsync", Value::Object(m))
        }
    }
}
