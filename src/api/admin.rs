//! The operator's HTTP API under `/admin/` (docs/operations.md, admin API), behind a bearer token.

use serde_json::{json, Value};

use super::routes::{AdminCall, Miss};
use super::{access, answer, envelope, failure, method_not_allowed, throttle, App};
use crate::config::{Admin, Role};
use crate::domain::ids::Issuer;
use crate::domain::ledger::{
    CouponQuery, JournalEntry, KindPatch, Origin, ResyncTarget, Source, StockPatch,
    MAX_ABANDON_REASON,
};
use crate::domain::stock::{
    CouponKind, CouponStatus, DiscountBlock, FixedBlock, StockDraft, StockSpec, StockStatus,
};
use crate::domain::time::{day_bounds, now_ms, parse_time, render_millis};
use crate::domain::voucher::{Verification, Voucher, VoucherQuery, VoucherStatus, VoucherType};
use crate::domain::LedgerError;
use crate::http::{Request, Response};
use crate::wire::fields::{parse_object, Fields, MAX_CHANNEL, MAX_FEN, MAX_INT};
use crate::wire::render;
use crate::wire::requests::claim_request;
use crate::wire::voucher::parse_voucher_array;

/// The operator whose bearer token the request carries, if any.
fn operator(app: &App, req: &Request) -> Option<Admin> {
    let given = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim();
    if given.is_empty() {
        return None;
    }
    app.config.operator(given)
}

/// The origin of an admin change: source `admin`, and the operator's name.
fn origin(op: &Admin) -> Origin {
    Origin {
        source: Source::Admin,
        seq_id: None,
        now: now_ms(),
        operator: Some(op.name.clone()),
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
    let Some(op) = operator(app, req) else {
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
    };
    app.admin_throttle.succeeded(ip);
    let call = match call {
        Ok(call) => call,
        Err(Miss::NotFound) => return envelope::not_found(&req.path),
        Err(Miss::WrongMethod(allowed)) => return method_not_allowed(&allowed),
    };
    let reads = matches!(req.method.as_str(), "GET" | "HEAD");
    if !reads && op.role == Role::Read {
        return failure(&LedgerError::ReadOnlyOperator(op.name));
    }
    // Every call, reads and changes alike: a parameter a change does not
    // take would otherwise be dropped without a word.
    if let Err(e) = known_query(req, query_params(&call)) {
        return failure(&e);
    }
    let o = || origin(&op);
    use AdminCall::*;
    match call {
        CreateStock => answer(create_stock(app, &req.body, o())),
        ListStocks => answer(list_stocks(app)),
        GetStock(id) => answer(get_stock(app, &id)),
        PatchStock(id) => answer(patch_stock(app, &id, &req.body, o())),
        SetStockStatus(id) => answer(set_status(app, &id, &req.body, o())),
        ResyncStock(id) => answer(resync(app, ResyncTarget::Stock(id), o())),
        StockJournal(id) => answer(stock_journal(app, &id)),
        IssueCoupon => answer(issue(app, &req.body, o())),
        ListCoupons => answer(list_coupons(app, req)),
        GetCoupon(id) => answer(get_coupon(app, &id)),
        Redeem(id) => answer(redeem(app, &id, &req.body, o())),
        Unredeem(id) => answer(unredeem(app, &id, &req.body, o())),
        ResyncCoupon(id) => answer(resync(app, ResyncTarget::Coupon(id), o())),
        ImportVouchers => answer(import_vouchers(app, &req.body, o())),
        ListVouchers => answer(list_vouchers(app, req)),
        GetVoucher { kind, coupon_no } => answer(get_voucher(app, &kind, &coupon_no)),
        ListOutbox => answer(list_outbox(app, req)),
        RetryOutbox(id) => answer(retry_outbox(app, &id, o())),
        AbandonOutbox(id) => answer(abandon_outbox(app, &id, &req.body, o())),
        Report => report(app, req),
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

/// The query parameters each admin call takes; any other is refused. Only
/// reads take any: a change's input is its body.
fn query_params(call: &AdminCall) -> &'static [&'static str] {
    match call {
        AdminCall::ListCoupons => &[
            "user_code",
            "stock_id",
            "order_id",
            "status",
            "from",
            "to",
            "limit",
            "after",
        ],
        AdminCall::ListVouchers => &["type", "status", "limit", "after"],
        AdminCall::ListOutbox => &["state", "limit", "after"],
        AdminCall::Report => &["date"],
        AdminCall::Activity => &["days"],
        _ => &[],
    }
}

/// Refuses a query parameter the call does not take, or one given twice, with
/// 40001 naming it: a misspelt filter must never be ignored silently.
fn known_query(req: &Request, allowed: &[&str]) -> Result<(), LedgerError> {
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in req.query_pairs() {
        let shown: String = name.chars().take(64).collect();
        if !allowed.contains(&name.as_str()) {
            return Err(LedgerError::invalid(&shown, "unknown query parameter"));
        }
        if seen.contains(&name) {
            return Err(LedgerError::invalid(&shown, "given more than once"));
        }
        seen.push(name);
    }
    Ok(())
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

fn create_stock(app: &App, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
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
    let stock = app.store.create_stock(spec, origin)?;
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
    Ok(json!({ "total": stocks.len(), "stocks": stocks }))
}

fn get_stock(app: &App, id: &str) -> Result<Value, LedgerError> {
    let (stock, counts) = app.store.stock_with_counts(id)?;
    Ok(render::stock_with_counts(
        &stock,
        &counts,
        app.config.utc_offset,
    ))
}

fn patch_stock(app: &App, id: &str, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
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
    app.store.patch_stock(id, patch, origin)?;
    get_stock(app, id)
}

fn set_status(app: &App, id: &str, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let to = stock_status(&Fields::new(&map))?
        .ok_or_else(|| LedgerError::invalid("stock_status", "required"))?;
    app.store.set_stock_status(id, to, origin)?;
    get_stock(app, id)
}

fn issue(app: &App, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let req = claim_request(&f, Issuer::Admin)?;
    let coupon = app.store.claim(None, req, origin)?;
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

/// An optional query parameter; an empty value counts as absent.
fn query_str(req: &Request, name: &str) -> Option<String> {
    req.query_param(name).filter(|v| !v.is_empty())
}

/// An optional time query parameter, with an offset like every time field.
fn query_time(req: &Request, name: &str) -> Result<Option<i64>, LedgerError> {
    query_str(req, name)
        .map(|v| parse_time(&v).map_err(|e| LedgerError::invalid(name, e)))
        .transpose()
}

fn list_coupons(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let int_param = |name: &str, min: i64, max: i64| query_int(req, name, min, max);
    let status = int_param("status", 1, 4)?.and_then(CouponStatus::from_code);
    let (from, to) = (query_time(req, "from")?, query_time(req, "to")?);
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(LedgerError::invalid("to", "must be later than from"));
        }
    }
    let q = CouponQuery {
        user_code: query_str(req, "user_code"),
        stock_id: query_str(req, "stock_id"),
        status,
        order_id: query_str(req, "order_id"),
        from,
        to,
        limit: int_param("limit", 1, 1000)?.unwrap_or(100),
        after: int_param("after", 0, i64::MAX)?,
    };
    let page = app.store.coupons(&q)?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = page
        .items
        .iter()
        .map(|c| render::coupon_full(c, tz))
        .collect();
    Ok(json!({
        "coupons": list,
        "next_after": page.next_after.map(|n| n.to_string()),
        "total": page.total,
    }))
}

/// Journal rows as the operator sees them.
fn journal_json(journal: &[JournalEntry], tz: time::UtcOffset) -> Vec<Value> {
    journal
        .iter()
        .map(|j| {
            json!({
                "id": j.id, "event": j.event, "from_status": j.from_status, "to_status": j.to_status,
                "source": j.source, "operator": j.operator, "seq_id": j.seq_id,
                "time": render_millis(j.at_ms, tz),
                "detail": j.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
            })
        })
        .collect()
}

fn get_coupon(app: &App, id: &str) -> Result<Value, LedgerError> {
    let (coupon, journal) = app.store.coupon_with_journal(id)?;
    let tz = app.config.utc_offset;
    Ok(json!({"coupon": render::coupon_full(&coupon, tz), "journal": journal_json(&journal, tz)}))
}

/// `GET /admin/stocks/{id}/journal`: every change of the stock, oldest first.
fn stock_journal(app: &App, id: &str) -> Result<Value, LedgerError> {
    let journal = app.store.stock_journal(id)?;
    Ok(json!({
        "stock_id": id,
        "journal": journal_json(&journal, app.config.utc_offset),
    }))
}

fn redeem(app: &App, id: &str, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let order_id = f.str("order_id", 64)?;
    let amount = f.int("order_amount", 0, MAX_FEN)?;
    let r = app.store.redeem(id, &order_id, amount, origin)?;
    app.metrics.redeemed();
    Ok(json!({
        "coupon_id": r.coupon_id, "order_id": r.order_id, "order_amount": r.order_amount,
        "discount_amount": r.discount_amount, "pay_amount": r.pay_amount,
        "usage_time": render_millis(r.usage_ms, app.config.utc_offset),
    }))
}

fn unredeem(app: &App, id: &str, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let map = parse_object(body)?;
    let order_id = Fields::new(&map).str("order_id", 64)?;
    let r = app.store.unredeem(id, &order_id, origin)?;
    let coupon = app.store.coupon(id)?;
    Ok(json!({
        "coupon_id": r.coupon_id, "order_id": r.order_id, "coupon_status": coupon.status.code(),
        "unredeem_time": r.undone_ms.map(|t| render_millis(t, app.config.utc_offset)),
    }))
}

fn list_outbox(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let state = query_str(req, "state");
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
    let page = app.store.outbox_page(state.as_deref(), after, limit)?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = page
        .items
        .iter()
        .map(|c| render::outbox_call(c, tz))
        .collect();
    Ok(json!({
        "calls": list,
        "next_after": page.next_after.map(|n| n.to_string()),
        "total": page.total,
    }))
}

fn outbox_id(id: &str) -> Result<i64, LedgerError> {
    id.parse()
        .map_err(|_| LedgerError::invalid("id", "must be an outbox call id"))
}

fn retry_outbox(app: &App, id: &str, origin: Origin) -> Result<Value, LedgerError> {
    let call = app.store.outbox_retry(outbox_id(id)?, origin)?;
    Ok(render::outbox_call(&call, app.config.utc_offset))
}

/// `POST /admin/outbox/{id}/abandon` with `{"reason": "..."}`: gives up on a dead call.
fn abandon_outbox(app: &App, id: &str, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let id = outbox_id(id)?;
    let map = parse_object(body)?;
    let reason = Fields::new(&map).str("reason", MAX_ABANDON_REASON)?;
    let call = app.store.outbox_abandon(id, &reason, origin)?;
    Ok(render::outbox_call(&call, app.config.utc_offset))
}

/// `POST /admin/stocks/{id}/resync` and `POST /admin/coupons/{id}/resync`:
/// queues calls carrying the current state; answers them as `{"calls": [...]}`.
fn resync(app: &App, target: ResyncTarget, origin: Origin) -> Result<Value, LedgerError> {
    if app.config.platform.is_none() {
        return Err(LedgerError::StateConflict(
            "sync to the platform is disabled (no [platform] is configured); nothing to resend"
                .into(),
        ));
    }
    let calls = app.store.outbox_resync(target, origin)?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = calls.iter().map(|c| render::outbox_call(c, tz)).collect();
    Ok(json!({ "calls": list }))
}

fn import_vouchers(app: &App, body: &[u8], origin: Origin) -> Result<Value, LedgerError> {
    let specs = parse_voucher_array(body)?;
    let n = app.store.import_vouchers(specs, origin)?;
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

/// `GET /admin/vouchers?type=&status=&limit=&after=`: vouchers in import
/// order, each with its status now (without its verifies).
fn list_vouchers(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let kind = query_str(req, "type")
        .map(|t| {
            VoucherType::parse(&t).ok_or_else(|| {
                LedgerError::invalid("type", "must be meituan, dianping, mtdz or tiktok")
            })
        })
        .transpose()?;
    let status = query_str(req, "status")
        .map(|s| {
            VoucherStatus::parse(&s).ok_or_else(|| {
                LedgerError::invalid("status", "must be usable, used_up, expired or upcoming")
            })
        })
        .transpose()?;
    let now = now_ms();
    let q = VoucherQuery {
        kind,
        status,
        now,
        limit: query_int(req, "limit", 1, 1000)?.unwrap_or(100),
        after: query_int(req, "after", 0, i64::MAX)?,
    };
    let page = app.store.vouchers(&q)?;
    let tz = app.config.utc_offset;
    let list: Vec<Value> = page
        .items
        .iter()
        .map(|v| {
            let mut one = voucher_json(v, &[], tz);
            if let Value::Object(m) = &mut one {
                m.remove("verifications");
                m.insert("status".into(), json!(VoucherStatus::of(v, now).as_str()));
            }
            one
        })
        .collect();
    Ok(json!({
        "vouchers": list,
        "next_after": page.next_after.map(|n| n.to_string()),
        "total": page.total,
    }))
}

/// `GET /admin/report?date=yyyy-MM-dd`: the statement of that local day (in
/// `utc_offset`) as CSV.
fn report(app: &App, req: &Request) -> Response {
    let built = (|| {
        let date =
            query_str(req, "date").ok_or_else(|| LedgerError::invalid("date", "required"))?;
        let tz = app.config.utc_offset;
        let (from, to) = day_bounds(&date, tz).map_err(|e| LedgerError::invalid("date", e))?;
        let rows = app.store.report_rows(from, to)?;
        Ok::<_, LedgerError>((date, crate::wire::report::csv(&rows, tz)))
    })();
    match built {
        Ok((date, text)) => {
            access::code(0);
            Response::new(200, "text/csv; charset=utf-8", text.into_bytes()).with_header(
                "Content-Disposition",
                &format!("attachment; filename=\"statement-{date}.csv\""),
            )
        }
        Err(e) => failure(&e),
    }
}

fn get_voucher(app: &App, kind: &str, coupon_no: &str) -> Result<Value, LedgerError> {
    let kind = VoucherType::parse(kind).ok_or(LedgerError::VoucherNotFound)?;
    let (v, list) = app.store.voucher(kind, coupon_no)?;
    Ok(voucher_json(&v, &list, app.config.utc_offset))
}
