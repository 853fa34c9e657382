//! The platform API: the travel platform calls the SP (docs/protocol.md, platform API).

use serde_json::{json, Value};

use super::auth::{authenticate, Signed};
use super::routes::PlatformCall;
use super::{answer, failure, App};
use crate::domain::ids::{Issuer, StockId};
use crate::domain::ledger::{BatchOutcome, Blocker, Origin, Source};
use crate::domain::stock::CouponStatus;
use crate::domain::time::{now_ms, render_millis};
use crate::domain::LedgerError;
use crate::http::Response;
use crate::wire::fields::Fields;
use crate::wire::render;
use crate::wire::requests::{claim_request, deactivate_request, held_coupon};

/// Answers one of the four platform API calls.
pub fn handle(app: &App, call: PlatformCall, body: &[u8]) -> Response {
    let signed = match authenticate(app, body) {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    match call {
        PlatformCall::StockQuery => answer(query_stock(app, signed)),
        PlatformCall::Claim => answer(receive(app, signed)),
        PlatformCall::Deactivate => answer(deactivate(app, signed)),
        PlatformCall::BatchDeactivate => batch_deactivate(app, signed),
    }
}

fn origin(signed: &Signed) -> Origin {
    Origin {
        source: Source::Platform,
        seq_id: signed.seq_id.clone(),
        now: now_ms(),
        operator: None,
    }
}

fn query_stock(app: &App, s: Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let stock_id = f.named::<StockId>()?;
    f.opt_str("extra", 128)?;
    let stock = app.store.stock_once(s.nonce, stock_id.as_str())?;
    Ok(Value::Object(render::stock(&stock, app.config.utc_offset)))
}

fn receive(app: &App, s: Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let req = claim_request(&f, Issuer::Partner(s.partner.api_key.clone()))?;
    f.opt_str("extra", 128)?;
    let origin = origin(&s);
    let coupon = app.store.claim(Some(s.nonce), req, origin)?;
    app.metrics.claimed();
    Ok(Value::Object(render::claimed(
        &coupon,
        app.config.utc_offset,
    )))
}

/// The fields common to single and batch expire/deactivate.
fn deactivate(app: &App, s: Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let held = held_coupon(&f)?;
    let req = deactivate_request(&f, vec![held])?;
    let origin = origin(&s);
    match app.store.deactivate(Some(s.nonce), req, origin)? {
        BatchOutcome::Done(settled) => {
            let at = settled.first().map(|x| x.at).unwrap_or_default();
            Ok(json!({"deactivate_time": render_millis(at, app.config.utc_offset)}))
        }
        BatchOutcome::Refused(illegal) => Err(match illegal.first().map(|i| i.blocker) {
            Some(Blocker::Used) => LedgerError::StateConflict(
                "coupon is used (2) and cannot be expired or deactivated".into(),
            ),
            _ => LedgerError::CouponNotFound,
        }),
    }
}

fn batch_deactivate(app: &App, s: Signed) -> Response {
    let tz = app.config.utc_offset;
    let result = (|| {
        let f = Fields::new(&s.body);
        let coupons = f
            .objects("coupons", 1, 10)?
            .iter()
            .map(held_coupon)
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let req = deactivate_request(&f, coupons)?;
        app.store.deactivate(Some(s.nonce.clone()), req, origin(&s))
    })();
    match result {
        Err(e) => failure(&e),
        Ok(BatchOutcome::Refused(illegal)) => {
            let illegal: Vec<Value> = illegal
                .iter()
                .map(|i| json!({"stock_id": i.coupon.stock_id, "coupon_id": i.coupon.coupon_id, "coupon_status": i.wire_status()}))
                .collect();
            let e = LedgerError::StateConflict(
                "some coupons are not available; nothing was changed".into(),
            );
            Response::json(
                200,
                &json!({"code": e.code(), "message": e.message(), "data": {
                    "expire_coupons": [], "deactivate_coupons": [], "illegal_coupons": illegal
                }}),
            )
        }
        Ok(BatchOutcome::Done(settled)) => {
            let mut expired = Vec::new();
            let mut deactivated = Vec::new();
            for x in settled {
                let at = render_millis(x.at, tz);
                if x.status == CouponStatus::Expired {
                    expired.push(json!({"stock_id": x.coupon.stock_id, "coupon_id": x.coupon.coupon_id, "expire_time": at}));
                } else {
                    deactivated.push(json!({"stock_id": x.coupon.stock_id, "coupon_id": x.coupon.coupon_id, "deactivate_time": at}));
                }
            }
            super::success(json!({
                "expire_coupons": expired, "deactivate_coupons": deactivated, "illegal_coupons": []
            }))
        }
    }
}
