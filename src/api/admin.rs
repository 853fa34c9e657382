//! The operator's HTTP API under `/admin/` (docs/operations.md, admin API), behind a bearer token.

use serde_json::{json, Value};

use super::routes::{AdminCall, Miss};
use super::{access, answer, envelope, failure, method_not_allowed, throttle, App};
use crate::domain::ids::Issuer;
use crate::domain::ledger::{
    CouponQuery, KindPatch, Origin, ResyncTarget, Source, StockPatch, MAX_ABANDON_REASON,
};
use crate::domain::stock::{
    CouponKind, CouponStatus, DiscountBlock, FixedBlock, StockDraft, StockSpec, StockStatus,
};
use crate::domain::time::{now_ms, render_millis};
use crate::domain::voucher::{Verification, Voucher, VoucherType};
use crate::domain::LedgerError;
use crate::http::{Request, Response};
use crate::sign::constant_time_eq;
use crate::wire::fields::{parse_object, Fields, MAX_CHANNEL, MAX_FEN, MAX_INT};
use crate::wire::render;
use crate::wire::requests::claim_request;
use crate::wire::voucher::parse_voucher_array;

fn authorized(app: &App, req: &Request) -> bool {
    let given = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    !app.config.admin_token.is_empty()
        && constant_time_eq(given.trim().as_bytes(), app.config.admin_token.as_bytes())
}

fn origin() -> Origin {
    Origin {
        source: Source::Admin,
        seq_id: None,
        now: now_ms(),
    }
}

/// Answers an `/admin/...` request: the token first (even for an unknown
/// path), then the call the routing table matched.
pub fn handle(app: &App, req: &Request, call: Result<AdminCall, Miss>) -> Response {
    let ip = access::client_ip();
    if let Err(e) = app.edge.admit_admin(&app.config, ip) {
        return failure(&e);
    }
    if let Some(retry_after_s) = app.admin_throttle.blocked(ip, now_ms()) {
        return failure(&LedgerError::RateLimited { retry_after_s });
    }
    if !authorized(app, req) {
        access::refused("bad admin token", "admin");
        if app.admin_throttle.failed(ip, now_ms()) {
            log::warn!(
                target: "auth",
                "admin API: {ip} is refused for {} s after {} bad tokens",
                throttle::BLOCK_MS / 1000,
                throttle::MAX_FAILURES
            );
        }
        return failure(&LedgerError::BadAdminToken);
    }
    app.admin_throttle.succeeded(ip);
    let call = match call {
        Ok(call) => call,
        Err(Miss::NotFound) => return envelope::not_found(&req.path),
        Err(Miss::WrongMethod(allowed)) => return method_not_allowed(allowed),
    };
    use AdminCall::*;
    match call {
        CreateStock => answer(create_stock(app, &req.body)),
        ListStocks => answer(list_stocks(app)),
        GetStock(id) => answer(get_stock(app, &id)),
        PatchStock(id) => answer(patch_stock(app, &id, &req.body)),
        SetStockStatus(id) => answer(set_status(app, &id, &req.body)),
        ResyncStock(id) => answer(resync(app, ResyncTarget::Stock(id))),
        IssueCoupon => answer(issue(app, &req.body)),
        ListCoupons => answer(list_coupons(app, req)),
        GetCoupon(id) => answer(get_coupon(app, &id)),
        Redeem(id) => answer(redeem(app, &id, &req.body)),
        Unredeem(id) => answer(unredeem(app, &id, &req.body)),
        ResyncCoupon(id) => answer(resync(app, ResyncTarget::Coupon(id))),
        ImportVouchers => answer(import_vouchers(app, &req.body)),
        GetVoucher { kind, coupon_no } => answer(get_voucher(app, &kind, &coupon_no)),
        ListOutbox => answer(list_outbox(app, req)),
        RetryOutbox(id) => answer(retry_outbox(app, &id)),
        AbandonOutbox(id) => answer(abandon_outbox(app, &id, &req.body)),
        ReloadTls => answer(reload_tls(app)),
        Activity => answer(super::activity::handle(app, req)),
    }
}

/// `POST /admin/tls/reload`: reads the certificate and key again; a bad pair
/// is refused (40001 naming the file) and the old one stays in use.
fn reload_tls(app: &App) -> Result<Value, LedgerError> {
    let tls = app.tls.as_ref().ok_or_else(|| {
        LedgerError::StateConflict("HTTPS is off: tls_cert and tls_key are not set".into())
    })?;
    tls.reload().map_err(LedgerError::Invalid)?;
    log::info!("certificate reloaded through the admin API; new connections use it");
    Ok(json!({"reloaded": true}))
}

fn fixed_block(f: &Fields) -> Result<Option<FixedBlock>, LedgerError> {
    f.opt_object("fixed_normal_coupon")?
        .map(|b| {
            Ok(FixedBlock {
                coupon_amount: b.int("coupon_amount", 0, MAX_FEN)?,
                transaction_minimum: b.int("transaction_minimum", 0, MAX_FEN)?,
            })
        })
        .transpose()
}

fn discount_block(f: &Fields) -> Result<Option<DiscountBlock>, LedgerError> {
    f.opt_object("discount_coupon")?
        .map(|b| {
            Ok(DiscountBlock {
                discount_amount_max: b.int("discount_amount_max", 0, MAX_FEN)?,
                discount_percent: b.int("discount_percent", 0, MAX_INT)?,
                transaction_minimum: b.int("transaction_minimum", 0, MAX_FEN)?,
            })
        })
        .transpose()
}

fn kind(f: &Fields) -> Result<CouponKind, LedgerError> {
    CouponKind::new(
        f.int("coupon_type", 0, 9999)?,
        fixed_block(f)?,
        discount_block(f)?,
    )
}

fn stock_status(f: &Fields) -> Result<Option<StockStatus>, LedgerError> {
    f.opt_int("stock_status", 0, 9999)?
        .map(|n| {
            StockStatus::from_code(n)
                .ok_or_else(|| LedgerError::invalid("stock_status", "must be 1 to 5"))
        })
        .transpose()
}

fn create_stock(app: &App, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let spec = StockSpec::new(StockDraft {
        stock_id: f.str("stock_id", 30)?,
        stock_name: f.str("stock_name", 20)?,
        app_channel_id: f.int("app_channel_id", 0, MAX_CHANNEL)?,
        app_id: f.str("app_id", 32)?,
        instructions: f.str("instructions", 1024)?,
        coupon_name: f.str("coupon_name", 20)?,
        coupon_desc: f.str("coupon_desc", 50)?,
        kind: kind(&f)?,
        max_coupons: f.int("max_coupons", 1, MAX_INT)?,
        max_coupons_per_user: f.int("max_coupons_per_user", 1, MAX_INT)?,
        available_begin: f.time("available_begin_time")?,
        available_end: f.time("available_end_time")?,
        status: stock_status(&f)?.unwrap_or(StockStatus::Inactive),
    })?;
    let stock = app.store.create_stock(spec, origin())?;
    let (stock, counts) = app.store.stock_with_counts(&stock.spec.stock_id)?;
    Ok(render::stock_with_counts(
        &stock,
        &counts,
        app.config.utc_offset,
    ))
}

fn list_stocks(app: &App) -> Result<Value, LedgerError> {
    let tz = app.config.utc_offset;
    let stocks: Vec<Value> = app
        .store
        .stocks_with_counts()?
        .iter()
        .map(|(s, c)| render::stock_with_counts(s, c, tz))
        .collect();
    Ok(json!({ "stocks": stocks }))
}

fn get_stock(app: &App, id: &str) -> Result<Value, LedgerError> {
    let (stock, counts) = app.store.stock_with_counts(id)?;
    Ok(render::stock_with_counts(
        &stock,
        &counts,
        app.config.utc_offset,
    ))
}

fn patch_stock(app: &App, id: &str, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    for fixed in ["create_time", "stock_status"] {
        if f.has(fixed) {
            return Err(LedgerError::invalid(
                fixed,
                "cannot be edited here (use /status for stock_status)",
            ));
        }
    }
    if let Some(other) = f.opt_str("stock_id", 30)? {
        if other != id {
            return Err(LedgerError::invalid(
                "stock_id",
                "differs from the stock in the path",
            ));
        }
    }
    let touches_kind = ["coupon_type", "fixed_normal_coupon", "discount_coupon"]
        .iter()
        .any(|k| f.has(k));
    let patch = StockPatch {
        stock_name: f.opt_str("stock_name", 20)?,
        app_channel_id: f.opt_int("app_channel_id", 0, MAX_CHANNEL)?,
        app_id: f.opt_str("app_id", 32)?,
        instructions: f.opt_str("instructions", 1024)?,
        coupon_name: f.opt_str("coupon_name", 20)?,
        coupon_desc: f.opt_str("coupon_desc", 50)?,
        kind: if touches_kind {
            Some(KindPatch {
                coupon_type: f.opt_int("coupon_type", 0, 9999)?,
                fixed: fixed_block(&f)?,
                discount: discount_block(&f)?,
            })
        } else {
            None
        },
        max_coupons: f.opt_int("max_coupons", 1, MAX_INT)?,
        max_coupons_per_user: f.opt_int("max_coupons_per_user", 1, MAX_INT)?,
        available_begin: f.opt_time("available_begin_time")?,
        available_end: f.opt_time("available_end_time")?,
    };
    app.store.patch_stock(id, patch, origin())?;
    get_stock(app, id)
}

fn set_status(app: &App, id: &str, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let to = stock_status(&Fields::new(&map))?
        .ok_or_else(|| LedgerError::invalid("stock_status", "required"))?;
    app.store.set_stock_status(id, to, origin())?;
    get_stock(app, id)
}

fn issue(app: &App, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let req = claim_request(&f, Issuer::Admin)?;
    let coupon = app.store.claim(None, req, origin())?;
    Ok(render::coupon_full(&coupon, app.config.utc_offset))
}

/// An optional integer query parameter within `min..=max`.
fn query_int(req: &Request, name: &str, min: i64, max: i64) -> Result<Option<i64>, LedgerError> {
    match req.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                LedgerError::invalid(name, format!("must be an integer between {min} and {max}"))
            }),
    }
}

fn list_coupons(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let int_param = |name: &str, min: i64, max: i64| query_int(req, name, min, max);
    let status = int_param("status", 1, 4)?.and_then(CouponStatus::from_code);
    let q = CouponQuery {
        user_code: req.query_param("user_code").filter(|v| !v.is_empty()),
        stock_id: req.query_param("stock_id").filter(|v| !v.is_empty()),
        status,
        limit: int_param("limit", 1, 1000)?.unwrap_or(100),
        after: int_param("after", 0, i64::MAX)?,
    };
    let (coupons, next) = app.store.coupons(&q)?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = coupons.iter().map(|c| render::coupon_full(c, tz)).collect();
    Ok(json!({"coupons": list, "next_after": next.map(|n| n.to_string())}))
}

fn get_coupon(app: &App, id: &str) -> Result<Value, LedgerError> {
    let (coupon, journal) = app.store.coupon_with_journal(id)?;
    let tz = app.config.utc_offset;
    let journal: Vec<Value> = journal
        .iter()
        .map(|j| {
            json!({
                "id": j.id, "event": j.event, "from_status": j.from_status, "to_status": j.to_status,
                "source": j.source, "seq_id": j.seq_id, "time": render_millis(j.at_ms, tz),
                "detail": j.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
            })
        })
        .collect();
    Ok(json!({"coupon": render::coupon_full(&coupon, tz), "journal": journal}))
}

fn redeem(app: &App, id: &str, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let order_id = f.str("order_id", 64)?;
    let amount = f.int("order_amount", 0, MAX_FEN)?;
    let r = app.store.redeem(id, &order_id, amount, origin())?;
    app.metrics.redeemed();
    Ok(json!({
        "coupon_id": r.coupon_id, "order_id": r.order_id, "order_amount": r.order_amount,
        "discount_amount": r.discount_amount, "pay_amount": r.pay_amount,
        "usage_time": render_millis(r.usage_ms, app.config.utc_offset),
    }))
}

fn unredeem(app: &App, id: &str, body: &[u8]) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let order_id = Fields::new(&map).str("order_id", 64)?;
    let r = app.store.unredeem(id, &order_id, origin())?;
    let coupon = app.store.coupon(id)?;
    Ok(json!({
        "coupon_id": r.coupon_id, "order_id": r.order_id, "coupon_status": coupon.status.code(),
        "unredeem_time": r.undone_ms.map(|t| render_millis(t, app.config.utc_offset)),
    }))
}

fn list_outbox(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let state = req.query_param("state").filter(|v| !v.is_empty());
    if let Some(s) = &state {
        if !crate::domain::ledger::OUTBOX_STATES.contains(&s.as_str()) {
            return Err(LedgerError::invalid(
                "state",
                "must be pending, dead, delivered or abandoned",
            ));
        }
    }
    let limit = query_int(req, "limit", 1, 1000)?.unwrap_or(100);
    let after = query_int(req, "after", 0, i64::MAX)?.unwrap_or(0);
    let calls = app.store.outbox_list(state.as_deref(), after, limit)?;
    let next = (calls.len() as i64 == limit).then(|| calls.last().map(|c| c.id.to_string()));
    let tz = app.config.utc_offset;
    let list: Vec<Value> = calls.iter().map(|c| render::outbox_call(c, tz)).collect();
    Ok(json!({"calls": list, "next_after": next.flatten()}))
}

fn outbox_id(id: &str) -> Result<i64, LedgerError> {
    id.parse()
        .map_err(|_| LedgerError::invalid("id", "must be an outbox call id"))
}

fn retry_outbox(app: &App, id: &str) -> Result<Value, LedgerError> {
    let call = app.store.outbox_retry(outbox_id(id)?, now_ms())?;
    Ok(render::outbox_call(&call, app.config.utc_offset))
}

/// `POST /admin/outbox/{id}/abandon` with `{"reason": "..."}`: gives up on a dead call.
fn abandon_outbox(app: &App, id: &str, body: &[u8]) -> Result<Value, LedgerError> {
    let id = outbox_id(id)?;
    let map = parse_object(body)?;
    let reason = Fields::new(&map).str("reason", MAX_ABANDON_REASON)?;
    let call = app.store.outbox_abandon(id, &reason, origin())?;
    Ok(render::outbox_call(&call, app.config.utc_offset))
}

/// `POST /admin/stocks/{id}/resync` and `POST /admin/coupons/{id}/resync`:
/// queues calls carrying the current state; answers them as `{"calls": [...]}`.
fn resync(app: &App, target: ResyncTarget) -> Result<Value, LedgerError> {
    if app.config.platform.is_none() {
        return Err(LedgerError::StateConflict(
            "sync to the platform is disabled (no [platform] is configured); nothing to resend"
                .into(),
        ));
    }
    let calls = app.store.outbox_resync(target, origin())?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = calls.iter().map(|c| render::outbox_call(c, tz)).collect();
    Ok(json!({ "calls": list }))
}

fn import_vouchers(app: &App, body: &[u8]) -> Result<Value, LedgerError> {
    let specs = parse_voucher_array(body)?;
    let n = app.store.import_vouchers(specs, origin())?;
    Ok(json!({ "imported": n }))
}

/// A voucher for the operator, with its verifications.
pub fn voucher_json(v: &Voucher, verifications: &[Verification], tz: time::UtcOffset) -> Value {
    let s = &v.spec;
    let list: Vec<Value> = verifications
        .iter()
        .map(|x| {
            json!({
                "verifyId": x.verify_id, "shopId": x.shop_id, "count": x.count,
                "remainingAfter": x.remaining_after,
                "verifyTime": render_millis(x.verified_ms, tz),
                "cancelTime": x.cancelled_ms.map(|t| render_millis(t, tz)),
            })
        })
        .collect();
    json!({
        "type": s.kind.as_str(), "couponNo": s.coupon_no, "shopIds": s.shop_ids,
        "couponName": s.coupon_name, "valueFen": s.value_fen, "priceFen": s.price_fen,
        "couponType": s.coupon_type, "count": s.count, "remaining": v.remaining,
        "validityBegin": render_millis(s.validity_begin, tz),
        "validityEnd": render_millis(s.validity_end, tz),
        "templates": s.templates, "deal": s.deal, "verifications": list,
    })
}

fn get_voucher(app: &App, kind: &str, coupon_no: &str) -> Result<Value, LedgerError> {
    let kind = VoucherType::parse(kind).ok_or(LedgerError::VoucherNotFound)?;
    let (v, list) = app.store.voucher(kind, coupon_no)?;
    Ok(voucher_json(&v, &list, app.config.utc_offset))
}
