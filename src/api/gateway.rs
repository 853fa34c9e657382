//! The voucher gateway for shop terminals (docs/protocol.md, voucher gateway). One path, the
//! `method` field picks prepare, verify or cancel; answers use `code` 0 / 3 with
//! `msg`, and the ledger's code in `sub_code`.

use serde_json::{json, Map, Value};
use time::UtcOffset;

use super::auth::{authenticate, Signed};
use super::App;
use crate::domain::ledger::{Origin, Source};
use crate::domain::money::yuan;
use crate::domain::time::{now_ms, render_local};
use crate::domain::voucher::{Verification, VerifyRequest, Voucher, VoucherType};
use crate::domain::LedgerError;
use crate::http::Response;
use crate::wire::fields::{Fields, MAX_SHOP};
use crate::wire::voucher::voucher_type;

const PREPARE: &str = "allinpay.shopoint.thirdCouponService.prepare";
const VERIFY: &str = "allinpay.shopoint.thirdCouponService.verify";
const CANCEL: &str = "allinpay.shopoint.thirdCouponService.cancel";

fn success(data: Value) -> Response {
    super::access::code(0);
    Response::json(200, &json!({"code": 0, "msg": "successful", "data": data}))
}

fn failure(e: &LedgerError) -> Response {
    super::access::code(e.code());
    let status = super::envelope::http_status(e);
    Response::json(
        status,
        &json!({"code": 3, "msg": e.message(), "sub_code": e.code()}),
    )
}

/// `POST /gateway`.
pub fn handle(app: &App, body: &[u8]) -> Response {
    match dispatch(app, body) {
        Ok(data) => success(data),
        Err(e) => failure(&e),
    }
}

fn dispatch(app: &App, body: &[u8]) -> Result<Value, LedgerError> {
    let signed = authenticate(app, body)?;
    let f = Fields::new(&signed.body);
    let method = f.str("method", 64)?;
    if let Some(v) = f.opt_str("version", 8)? {
        if v != "1.0" {
            return Err(LedgerError::invalid("version", "must be 1.0"));
        }
    }
    match method.as_str() {
        PREPARE => prepare(app, &signed),
        VERIFY => verify(app, &signed),
        CANCEL => cancel(app, &signed),
        other => Err(LedgerError::invalid(
            "method",
            format!("unknown method {other:?}; use {PREPARE}, {VERIFY} or {CANCEL}"),
        )),
    }
}

fn origin(s: &Signed) -> Origin {
    Origin {
        source: Source::Shop,
        seq_id: s.seq_id.clone(),
        now: now_ms(),
        operator: None,
    }
}

fn prepare(app: &App, s: &Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let kind = voucher_type(&f)?;
    let coupon_no = f.str("couponNo", 64)?;
    let shop_id = f.lenient_int("shopId", 0, MAX_SHOP)?;
    let v = app
        .store
        .prepare_voucher(s.nonce.clone(), kind, &coupon_no, shop_id, now_ms())?;
    Ok(prepare_data(&v, app.config.utc_offset))
}

/// The protocol's prepare `data`, with exactly one platform block carrying the uses left.
pub fn prepare_data(v: &Voucher, tz: UtcOffset) -> Value {
    let spec = &v.spec;
    let mut m = Map::new();
    m.insert("couponName".into(), json!(spec.coupon_name));
    m.insert("couponValue".into(), json!(yuan(spec.value_fen)));
    m.insert("couponBuyPrice".into(), json!(yuan(spec.price_fen)));
    m.insert("couponType".into(), json!(spec.coupon_type));
    m.insert("initAmount".into(), json!(v.remaining));
    m.insert(
        "validityBeginDate".into(),
        json!(render_local(spec.validity_begin, tz)),
    );
    m.insert(
        "validityEndDate".into(),
        json!(render_local(spec.validity_end, tz)),
    );
    m.insert("couponTemplateList".into(), spec.templates.clone());
    let block = match spec.kind {
        VoucherType::Tiktok => json!({"tiktokCertificateList": [{
            "certificateId": spec.deal.get("certificateId").cloned().unwrap_or(Value::Null),
            "num": v.remaining,
            "sku": spec.deal.get("sku").cloned().unwrap_or(Value::Null),
        }]}),
        _ => {
            let mut deal = spec.deal.as_object().cloned().unwrap_or_default();
            deal.insert("count".into(), json!(v.remaining));
            Value::Object(deal)
        }
    };
    m.insert(spec.kind.block_key().into(), block);
    Value::Object(m)
}

fn verification_data(v: &Verification, uses_left: i64) -> Value {
    json!({
        "verifyId": v.verify_id,
        "type": v.kind.as_str(),
        "couponNo": v.coupon_no,
        "shopId": v.shop_id,
        "count": v.count,
        "initAmount": uses_left,
    })
}

fn verify(app: &App, s: &Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let req = VerifyRequest {
        kind: voucher_type(&f)?,
        coupon_no: f.str("couponNo", 64)?,
        shop_id: f.lenient_int("shopId", 0, MAX_SHOP)?,
        count: f.int("count", 1, 1_000_000)?,
        request_id: f.str("request_id", 64)?,
        issuer: format!("partner:{}", s.partner.api_key),
    };
    let v = app.store.verify_voucher(s.nonce.clone(), req, origin(s))?;
    app.metrics.verified();
    Ok(verification_data(&v, v.remaining_after))
}

fn cancel(app: &App, s: &Signed) -> Result<Value, LedgerError> {
    let f = Fields::new(&s.body);
    let verify_id = f.str("verifyId", 32)?;
    let shop_id = f.lenient_int("shopId", 0, MAX_SHOP)?;
    let issuer = format!("partner:{}", s.partner.api_key);
    let window_ms = app.config.cancel_window_s.saturating_mul(1000);
    let (v, left) = app.store.cancel_verification(
        s.nonce.clone(),
        &verify_id,
        shop_id,
        &issuer,
        window_ms,
        origin(s),
    )?;
    let mut data = verification_data(&v, left);
    if let (Value::Object(m), Some(t)) = (&mut data, v.cancelled_ms) {
        m.insert(
            "cancelTime".into(),
            json!(render_local(t, app.config.utc_offset)),
        );
    }
    Ok(data)
}
