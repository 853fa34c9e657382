//! The WeChat-Pay-style coupon query (docs/protocol.md, coupon query). `agent_no` names the
//! partner, `req_id` is the trace id; the answer has its own shape and is signed.

use serde_json::{json, Map, Value};

use super::auth::{admit_source, charge_rate, check_sign_and_time};
use super::{access, App};
use crate::config::Partner;
use crate::domain::ledger::Coupon;
use crate::domain::stock::{CouponKind, CouponStatus};
use crate::domain::time::render_rfc3339_seconds;
use crate::domain::LedgerError;
use crate::http::Response;
use crate::sign::{self, SignFields, SignRule};
use crate::store::NonceUse;
use crate::wire::fields::{parse_object, Fields};

/// WeChat's word for a coupon status.
pub fn status_word(s: CouponStatus) -> &'static str {
    match s {
        CouponStatus::Available => "SENDED",
        CouponStatus::Used => "USED",
        CouponStatus::Expired => "EXPIRED",
        CouponStatus::Deactivated => "DEACTIVATED",
    }
}

/// WeChat's word for a coupon type.
pub fn type_word(k: &CouponKind) -> &'static str {
    match k {
        CouponKind::FixedOff { .. } => "NORMAL",
        CouponKind::CutTo { .. } => "CUT_TO",
        CouponKind::Percent { .. } => "DISCOUNT",
    }
}

/// Refusals of transport or authentication get `return_code` FAIL; ledger
/// outcomes get SUCCESS with the code in `result_code`.
fn is_transport(e: &LedgerError) -> bool {
    matches!(
        e,
        LedgerError::Invalid(_)
            | LedgerError::NotJsonObject(_)
            | LedgerError::UnknownApiKey
            | LedgerError::BadSignature
            | LedgerError::TimestampOutOfWindow
            | LedgerError::NonceReused
            | LedgerError::SourceNotAllowed
            | LedgerError::RateLimited { .. }
    )
}

/// Renders the answer map, signed when the partner is known.
fn reply(m: Map<String, Value>, partner: Option<&Partner>) -> Response {
    reply_with(200, m, partner)
}

fn reply_with(status: u16, mut m: Map<String, Value>, partner: Option<&Partner>) -> Response {
    if let Some(p) = partner {
        let rule = SignRule {
            fields: SignFields::All,
            key_name: p.sign.key_name.clone(),
        };
        let s = sign::sign(&m, &rule, &p.secret);
        m.insert("sign".into(), json!(s));
    }
    Response::json(status, &Value::Object(m))
}

fn refusal(e: &LedgerError, partner: Option<&Partner>) -> Response {
    super::server_fault(e);
    access::code(e.code());
    let mut m = Map::new();
    if is_transport(e) {
        m.insert("return_code".into(), json!("FAIL"));
        m.insert("return_msg".into(), json!(e.message()));
    } else {
        m.insert("return_code".into(), json!("SUCCESS"));
        m.insert("return_msg".into(), json!("成功"));
    }
    m.insert("result_code".into(), json!(e.code().to_string()));
    m.insert("result_msg".into(), json!(e.message()));
    // Refusals at the edge keep their HTTP status; the rest answer 200.
    let status = match e {
        LedgerError::SourceNotAllowed | LedgerError::RateLimited { .. } => {
            super::envelope::http_status(e)
        }
        _ => 200,
    };
    super::envelope::with_retry_after(reply_with(status, m, partner), e)
}

/// `POST /wx/coupon/query`.
pub fn handle(app: &App, body: &[u8]) -> Response {
    let map = match parse_object(body) {
        Ok(m) => m,
        Err(e) => return refusal(&e, None),
    };
    let f = Fields::new(&map);
    let partner = match f.str("agent_no", 64) {
        Ok(key) => match app.config.partner(&key) {
            Some(p) => {
                access::partner(&p.name, map.get("req_id").and_then(Value::as_str));
                if let Err(e) = admit_source(app, p) {
                    return refusal(&e, None);
                }
                p
            }
            None => {
                access::refused("unknown agent_no", &key);
                return refusal(&LedgerError::UnknownApiKey, None);
            }
        },
        Err(e) => return refusal(&e, None),
    };
    // The coupon query may omit timestamp and nonce; when sent they are checked.
    if let Err(e) = check_sign_and_time(app, body, &map, partner, false) {
        return refusal(&e, Some(partner));
    }
    // Charged only once the sign passed, like every partner call (api::auth).
    if let Err(e) = charge_rate(app, partner) {
        return refusal(&e, None);
    }
    match query(app, &map, partner) {
        Ok(m) => reply(m, Some(partner)),
        Err(e) => refusal(&e, Some(partner)),
    }
}

fn query(
    app: &App,
    map: &Map<String, Value>,
    partner: &Partner,
) -> Result<Map<String, Value>, LedgerError> {
    let f = Fields::new(map);
    let nonce = f.opt_str("nonce", 64)?;
    let req_id = f.opt_str("req_id", 64)?;
    let coupon_id = f.str("coupon_id", 48)?;
    let openid = f.str("openid", 128)?;
    let appid = f.opt_str("appid", 64)?;
    if let Some(r) = &req_id {
        log::debug!("/wx/coupon/query req_id={r} from {}", partner.name);
    }
    let (coupon, stock) = match nonce {
        Some(n) => app.store.coupon_with_stock_once(
            NonceUse {
                api_key: partner.api_key.clone(),
                nonce: n,
            },
            &coupon_id,
        )?,
        None => app.store.coupon_with_stock(&coupon_id)?,
    };
    // Another user's coupon, or another app's, is "not found".
    if coupon.user_code != openid || appid.is_some_and(|a| a != coupon.app_id) {
        return Err(LedgerError::CouponNotFound);
    }
    Ok(answer(
        app,
        &coupon,
        &stock.spec.coupon_name,
        &stock.spec.coupon_desc,
    ))
}

fn answer(app: &App, c: &Coupon, coupon_name: &str, description: &str) -> Map<String, Value> {
    let tz = app.config.utc_offset;
    let mut m = Map::new();
    m.insert("return_code".into(), json!("SUCCESS"));
    m.insert("return_msg".into(), json!("成功"));
    m.insert("result_code".into(), json!("10000"));
    m.insert("result_msg".into(), json!("请求成功"));
    m.insert("stock_id".into(), json!(c.stock_id));
    m.insert("stock_creator_mchid".into(), json!(app.config.merchant_id));
    m.insert("coupon_id".into(), json!(c.coupon_id));
    m.insert("coupon_name".into(), json!(coupon_name));
    m.insert("status".into(), json!(status_word(c.status)));
    m.insert("description".into(), json!(description));
    m.insert(
        "create_time".into(),
        json!(render_rfc3339_seconds(c.receive_ms, tz)),
    );
    m.insert("coupon_type".into(), json!(type_word(&c.kind)));
    m.insert("no_cash".into(), json!(false));
    m.insert("singleitem".into(), json!(false));
    m.insert(
        "available_begin_time".into(),
        json!(render_rfc3339_seconds(c.available_begin, tz)),
    );
    m.insert(
        "available_end_time".into(),
        json!(render_rfc3339_seconds(c.available_end, tz)),
    );
    match c.kind {
        CouponKind::FixedOff { amount, minimum } => {
            m.insert(
                "normal_coupon_information".into(),
                json!({"coupon_amount": amount, "transaction_minimum": minimum}),
            );
        }
        CouponKind::CutTo { price, minimum } => {
            m.insert(
                "cut_to_message".into(),
                json!({"cut_to_price": price, "transaction_minimum": minimum}),
            );
        }
        CouponKind::Percent {
            percent,
            max,
            minimum,
        } => {
            m.insert(
                "discount_information".into(),
                json!({"discount_percent": percent, "discount_amount_max": max, "transaction_minimum": minimum}),
            );
        }
    }
    m.insert("out_request_no".into(), json!(c.request_id));
    m
}
