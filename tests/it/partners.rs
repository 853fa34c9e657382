//! The WeChat-style coupon query and the voucher gateway.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use coupon_ledger::sign::{self, SignRule};
use serde_json::{json, Map, Value};

// ---------- coupon query ----------

/// A coupon-query request: `agent_no` and `req_id` instead of `api_key` and `seq_id`.
fn wx_body(fields: Value) -> Value {
    let mut m: Map<String, Value> = fields.as_object().unwrap().clone();
    m.entry("agent_no").or_insert(json!(KEY));
    m.entry("req_id").or_insert(json!(unique("req-")));
    let s = sign::sign(&m, &SignRule::default(), SECRET);
    m.insert("sign".into(), json!(s));
    Value::Object(m)
}

fn wx(c: &Client, fields: Value) -> Value {
    let a = c.post("/wx/coupon/query", &wx_body(fields));
    assert_eq!(a.status, 200);
    a.json()
}

/// Verifies the answer's own sign as a partner would.
fn assert_answer_signed(answer: &Value) {
    let m = answer.as_object().unwrap();
    let given = m["sign"].as_str().expect("the answer carries a sign");
    assert_eq!(
        given,
        sign::sign(m, &SignRule::default(), SECRET),
        "answer sign"
    );
}

const OPENID: &str = "oc5mSjk88888888efaeBmjU";

#[test]
fn wx_query_answers_the_seed_shape_with_a_verifiable_sign() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let request_id = "wx-order-1";
    let a = c
        .claim(stock["stock_id"].as_str().unwrap(), OPENID, request_id)
        .json();
    let coupon_id = a["data"]["coupon_id"].as_str().unwrap().to_string();
    // The protocol document's example, adapted to the test partner.
    let got = wx(
        &c,
        json!({"coupon_id": coupon_id, "openid": OPENID, "appid": "wx1111111111", "req_id": "@id"}),
    );
    assert_answer_signed(&got);
    assert_eq!(got["return_code"], "SUCCESS");
    assert_eq!(got["result_code"], "10000");
    assert!(got["return_msg"].is_string() && got["result_msg"].is_string());
    assert_eq!(got["stock_id"], stock["stock_id"]);
    assert_eq!(got["stock_creator_mchid"], "88888888");
    assert_eq!(got["coupon_id"], coupon_id.as_str());
    assert_eq!(got["coupon_name"], "代驾代金券");
    assert_eq!(got["description"], "消费满100元可用,仅限深圳使用");
    assert_eq!(got["status"], "SENDED");
    assert_eq!(got["coupon_type"], "NORMAL");
    assert_eq!(got["no_cash"], json!(false));
    assert_eq!(got["singleitem"], json!(false));
    assert_eq!(
        got["normal_coupon_information"],
        json!({"coupon_amount": 1000, "transaction_minimum": 10000})
    );
    assert_eq!(got["out_request_no"], request_id);
    for k in ["create_time", "available_begin_time", "available_end_time"] {
        let t = got[k].as_str().unwrap();
        assert_eq!(t.len(), 25, "{k}: {t}");
        assert!(
            t.ends_with("+08:00") && !t.contains('.'),
            "{k}: RFC 3339 without fraction: {t}"
        );
    }
    assert!(got.get("cut_to_message").is_none());
}

#[test]
fn wx_status_and_type_follow_the_ledger() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({"max_coupons_per_user": 5}));
    let stock_id = stock["stock_id"].as_str().unwrap();
    let used = claim_ok(&c, &sid(&stock), OPENID);
    c.admin(
        "POST",
        &format!("/admin/coupons/{used}/redeem"),
        Some(json!({"order_id": unique("o"), "order_amount": 20000})),
    );
    assert_eq!(
        wx(&c, json!({"coupon_id": used, "openid": OPENID}))["status"],
        "USED"
    );
    for (status, word) in [(3, "EXPIRED"), (4, "DEACTIVATED")] {
        let id = claim_ok(&c, &sid(&stock), OPENID);
        let d = c.call(
            "/sp/coupon/deactivate",
            json!({"app_channel_id": 1, "user_code": OPENID, "stock_id": stock_id, "coupon_id": id, "coupon_status": status}),
        );
        assert_eq!(d.code(), 0);
        assert_eq!(
            wx(&c, json!({"coupon_id": id, "openid": OPENID}))["status"],
            word
        );
    }
    let cut = c.create_stock(json!({"coupon_type": 2, "fixed_normal_coupon": {"coupon_amount": 990, "transaction_minimum": 0}}));
    let id = claim_ok(&c, &sid(&cut), OPENID);
    let got = wx(&c, json!({"coupon_id": id, "openid": OPENID}));
    assert_eq!(got["coupon_type"], "CUT_TO");
    assert_eq!(got["cut_to_message"]["cut_to_price"], 990);
    assert!(got.get("normal_coupon_information").is_none());
    let pct = c.create_stock(json!({"coupon_type": 3, "fixed_normal_coupon": null,
        "discount_coupon": {"discount_percent": 88, "discount_amount_max": 1000, "transaction_minimum": 0}}));
    let id = claim_ok(&c, &sid(&pct), OPENID);
    let got = wx(&c, json!({"coupon_id": id, "openid": OPENID}));
    assert_eq!(got["coupon_type"], "DISCOUNT");
    assert_eq!(got["discount_information"]["discount_percent"], 88);
    assert_answer_signed(&got);
}

#[test]
fn wx_another_users_coupon_is_not_found() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let id = claim_ok(&c, &sid(&stock), "someone-else");
    let got = wx(&c, json!({"coupon_id": id, "openid": OPENID}));
    assert_eq!(got["return_code"], "SUCCESS");
    assert_eq!(got["result_code"], "40402");
    assert!(got.get("coupon_id").is_none());
    assert_answer_signed(&got);
    assert_eq!(
        wx(&c, json!({"coupon_id": "1234", "openid": OPENID}))["result_code"],
        "40402"
    );
    let wrong_app = wx(
        &c,
        json!({"coupon_id": id, "openid": "someone-else", "appid": "wx-other"}),
    );
    assert_eq!(wrong_app["result_code"], "40402");
}

#[test]
fn wx_refusals_of_transport_and_auth_are_fail() {
    let server = TestServer::start();
    let c = server.client();
    let mut bad = wx_body(json!({"coupon_id": "1", "openid": OPENID}));
    bad["sign"] = json!("0123456789ABCDEF0123456789ABCDEF");
    let got = c.post("/wx/coupon/query", &bad).json();
    assert_eq!(
        (got["return_code"].as_str(), got["result_code"].as_str()),
        (Some("FAIL"), Some("40102"))
    );
    let got = c
        .post(
            "/wx/coupon/query",
            &json!({"agent_no": "NOBODY", "coupon_id": "1", "openid": "x", "sign": "x"}),
        )
        .json();
    assert_eq!(
        (got["return_code"].as_str(), got["result_code"].as_str()),
        (Some("FAIL"), Some("40101"))
    );
    assert!(
        got.get("sign").is_none(),
        "no secret to sign with for an unknown agent"
    );
    let got = wx(&c, json!({"coupon_id": "1"}));
    assert_eq!(
        (got["return_code"].as_str(), got["result_code"].as_str()),
        (Some("FAIL"), Some("40001"))
    );
    assert!(got["return_msg"].as_str().unwrap().contains("openid"));
    let got = wx(&c, json!({"coupon_id": "x".repeat(49), "openid": OPENID}));
    assert_eq!(got["result_code"], "40001");
    let got = raw_request(c.addr, "POST", "/wx/coupon/query", &[], b"[1,2]").json();
    assert_eq!(
        (got["return_code"].as_str(), got["result_code"].as_str()),
        (Some("FAIL"), Some("40002"))
    );
    let got = wx(
        &c,
        json!({"coupon_id": "1", "openid": OPENID, "timestamp": "1000"}),
    );
    assert_eq!(got["result_code"], "40103");
    let once = wx_body(json!({"coupon_id": "1", "openid": OPENID, "nonce": unique("n")}));
    assert_eq!(
        c.post("/wx/coupon/query", &once).json()["result_code"],
        "40402"
    );
    assert_eq!(
        c.post("/wx/coupon/query", &once).json()["result_code"],
        "40104"
    );
    assert_eq!(
        raw_request(c.addr, "GET", "/wx/coupon/query", &[], b"").status,
        405
    );
}

// ---------- voucher gateway ----------

/// A voucher import record, valid for decades.
fn mtdz_record(coupon_no: &str) -> Value {
    json!({"type": "mtdz", "couponNo": coupon_no, "shopIds": [147, 148], "couponName": "0.1团10百货券",
        "valueFen": 1000, "priceFen": 10, "couponType": "", "count": 1,
        "validityBegin": "2025-05-14T00:00:00.000+08:00", "validityEnd": "2099-12-31T23:59:59.000+08:00",
        "templates": [{"templateId": "T1", "couponType": 3}],
        "deal": {"dealId": "1316147453", "dealTitle": "0.1团10百货券", "dealPrice": 0.1, "dealGroupId": "1081740947"}})
}

fn import(c: &Client, records: Value) -> Answer {
    c.admin("POST", "/admin/vouchers", Some(records))
}

fn gw(c: &Client, method: &str, fields: Value) -> Value {
    let mut m = fields.as_object().unwrap().clone();
    m.insert(
        "method".into(),
        json!(format!("allinpay.shopoint.thirdCouponService.{method}")),
    );
    m.entry("version").or_insert(json!("1.0"));
    let a = c.call("/gateway", Value::Object(m));
    assert_eq!(a.status, 200);
    a.json()
}

fn assert_refused(answer: &Value, sub_code: i64) {
    assert_eq!(answer["code"], 3, "{answer}");
    assert_eq!(answer["sub_code"], sub_code, "{answer}");
    assert!(
        answer["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}

#[test]
fn prepare_answers_the_seed_example() {
    let server = TestServer::start();
    let c = server.client();
    assert_eq!(import(&c, json!([mtdz_record("5948286811")])).code(), 0);
    // The protocol's request: shopId as a numeric string.
    let got = gw(
        &c,
        "prepare",
        json!({"type": "mtdz", "couponNo": "5948286811", "shopId": "147"}),
    );
    assert_eq!(got["code"], 0, "{got}");
    let d = &got["data"];
    assert_eq!(d["couponName"], "0.1团10百货券");
    assert_eq!(d["couponValue"], "10");
    assert_eq!(d["couponBuyPrice"], "0.1");
    assert_eq!(d["couponType"], "");
    assert_eq!(d["initAmount"], 1);
    assert_eq!(d["validityBeginDate"], "2025-05-14 00:00:00");
    assert_eq!(d["validityEndDate"], "2099-12-31 23:59:59");
    assert_eq!(
        d["couponTemplateList"],
        json!([{"templateId": "T1", "couponType": 3}])
    );
    assert_eq!(
        d["mtdz"],
        json!({"dealId": "1316147453", "dealTitle": "0.1团10百货券", "dealPrice": 0.1, "dealGroupId": "1081740947", "count": 1})
    );
    for other in ["meiTuan", "dianPing", "tikTok"] {
        assert!(d.get(other).is_none(), "only one platform block");
    }
    // shopId as an integer works too.
    let got = gw(
        &c,
        "prepare",
        json!({"type": "mtdz", "couponNo": "5948286811", "shopId": 148}),
    );
    assert_eq!(got["code"], 0);
}

#[test]
fn each_platform_has_its_own_block() {
    let server = TestServer::start();
    let c = server.client();
    let mut mt = mtdz_record("M1");
    mt["type"] = json!("meituan");
    mt["count"] = json!(3);
    mt["valueFen"] = json!(1234);
    mt["deal"] = json!({"dealBeginTime": "2025-05-14", "dealId": 1, "dealValue": 12.34, "dealTitle": "t", "singleValue": 12.34, "dealPrice": 9.9});
    let mut dp = mtdz_record("D1");
    dp["type"] = json!("dianping");
    let mut tt = mtdz_record("T1");
    tt["type"] = json!("tiktok");
    tt["count"] = json!(5);
    tt["deal"] = json!({"certificateId": "C-1", "sku": {"skuId": "S1", "title": "抖音团购", "accountId": "A1", "marketPrice": "1000", "soldStartTime": "1715616000", "thirdSkuId": "X1"}});
    assert_eq!(import(&c, json!([mt, dp, tt])).code(), 0);
    let got = gw(
        &c,
        "prepare",
        json!({"type": "meituan", "couponNo": "M1", "shopId": 147}),
    );
    assert_eq!(got["data"]["couponValue"], "12.34");
    assert_eq!(got["data"]["meiTuan"]["count"], 3);
    assert_eq!(got["data"]["meiTuan"]["dealPrice"], 9.9);
    let got = gw(
        &c,
        "prepare",
        json!({"type": "dianping", "couponNo": "D1", "shopId": 147}),
    );
    assert_eq!(got["data"]["dianPing"]["dealGroupId"], "1081740947");
    let got = gw(
        &c,
        "prepare",
        json!({"type": "tiktok", "couponNo": "T1", "shopId": 147}),
    );
    let cert = &got["data"]["tikTok"]["tiktokCertificateList"][0];
    assert_eq!(cert["certificateId"], "C-1");
    assert_eq!(cert["num"], 5);
    assert_eq!(cert["sku"]["skuId"], "S1");
    assert_eq!(got["data"]["initAmount"], 5);
}

#[test]
fn verify_consumes_uses_and_replays_by_request_id() {
    let server = TestServer::start();
    let c = server.client();
    let mut rec = mtdz_record("V1");
    rec["count"] = json!(3);
    import(&c, json!([rec]));
    let v = gw(
        &c,
        "verify",
        json!({"type": "mtdz", "couponNo": "V1", "shopId": 147, "count": 2, "request_id": "r1"}),
    );
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["initAmount"], 1);
    let verify_id = v["data"]["verifyId"].as_str().unwrap().to_string();
    let again = gw(
        &c,
        "verify",
        json!({"type": "mtdz", "couponNo": "V1", "shopId": 147, "count": 2, "request_id": "r1"}),
    );
    assert_eq!(again["data"]["verifyId"], verify_id.as_str());
    assert_eq!(again["data"]["initAmount"], 1);
    assert_refused(
        &gw(
            &c,
            "verify",
            json!({"type": "mtdz", "couponNo": "V1", "shopId": 147, "count": 1, "request_id": "r1"}),
        ),
        40906,
    );
    assert_refused(
        &gw(
            &c,
            "verify",
            json!({"type": "mtdz", "couponNo": "V1", "shopId": 147, "count": 2, "request_id": "r2"}),
        ),
        40907,
    );
    let last = gw(
        &c,
        "verify",
        json!({"type": "mtdz", "couponNo": "V1", "shopId": "148", "count": 1, "request_id": "r3"}),
    );
    assert_eq!(last["data"]["initAmount"], 0);
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "mtdz", "couponNo": "V1", "shopId": 147}),
        ),
        40907,
    );
    let shown = c.admin("GET", "/admin/vouchers/mtdz/V1", None).json();
    assert_eq!(shown["data"]["remaining"], 0);
    assert_eq!(shown["data"]["verifications"].as_array().unwrap().len(), 2);
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn cancel_gives_uses_back_once_within_the_window() {
    let server = TestServer::start();
    let c = server.client();
    let mut rec = mtdz_record("C1");
    rec["count"] = json!(2);
    import(&c, json!([rec]));
    let v = gw(
        &c,
        "verify",
        json!({"type": "mtdz", "couponNo": "C1", "shopId": 147, "count": 2, "request_id": "c1"}),
    );
    let verify_id = v["data"]["verifyId"].as_str().unwrap().to_string();
    assert_refused(
        &gw(&c, "cancel", json!({"verifyId": verify_id, "shopId": 148})),
        40403,
    );
    let back = gw(&c, "cancel", json!({"verifyId": verify_id, "shopId": 147}));
    assert_eq!(back["code"], 0, "{back}");
    assert_eq!(back["data"]["initAmount"], 2);
    assert!(back["data"]["cancelTime"].is_string());
    assert_refused(
        &gw(&c, "cancel", json!({"verifyId": verify_id, "shopId": 147})),
        40907,
    );
    assert_refused(
        &gw(&c, "cancel", json!({"verifyId": "999", "shopId": 147})),
        40403,
    );
    let shown = c.admin("GET", "/admin/vouchers/mtdz/C1", None).json();
    assert_eq!(shown["data"]["remaining"], 2);
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn cancel_after_the_window_is_refused() {
    let server = TestServer::start_with("cancel_window_s = 0");
    let c = server.client();
    import(&c, json!([mtdz_record("W1")]));
    let v = gw(
        &c,
        "verify",
        json!({"type": "mtdz", "couponNo": "W1", "shopId": 147, "count": 1, "request_id": "w1"}),
    );
    let verify_id = v["data"]["verifyId"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(5));
    let got = gw(&c, "cancel", json!({"verifyId": verify_id, "shopId": 147}));
    assert_refused(&got, 40907);
    assert!(got["msg"].as_str().unwrap().contains("window"), "{got}");
}

#[test]
fn gateway_refusals_are_code_3_with_a_clear_msg() {
    let server = TestServer::start();
    let c = server.client();
    let mut old = mtdz_record("OLD");
    old["validityBegin"] = json!("2020-01-01T00:00:00+08:00");
    old["validityEnd"] = json!("2021-01-01T00:00:00+08:00");
    import(&c, json!([mtdz_record("G1"), old]));
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "mtdz", "couponNo": "G1", "shopId": 999}),
        ),
        40403,
    );
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "mtdz", "couponNo": "NOPE", "shopId": 147}),
        ),
        40403,
    );
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "meituan", "couponNo": "G1", "shopId": 147}),
        ),
        40403,
    );
    let expired = gw(
        &c,
        "prepare",
        json!({"type": "mtdz", "couponNo": "OLD", "shopId": 147}),
    );
    assert_refused(&expired, 40907);
    assert!(expired["msg"].as_str().unwrap().contains("expired"));
    assert_refused(
        &gw(
            &c,
            "verify",
            json!({"type": "mtdz", "couponNo": "OLD", "shopId": 147, "count": 1, "request_id": "x"}),
        ),
        40907,
    );
    let unknown = gw(&c, "refund", json!({}));
    assert_refused(&unknown, 40001);
    assert!(unknown["msg"].as_str().unwrap().contains("method"));
    let t = gw(
        &c,
        "prepare",
        json!({"type": "eleme", "couponNo": "G1", "shopId": 147}),
    );
    assert_refused(&t, 40001);
    assert!(t["msg"].as_str().unwrap().starts_with("type:"));
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "mtdz", "couponNo": "G1", "shopId": "14x"}),
        ),
        40001,
    );
    assert_refused(
        &gw(&c, "prepare", json!({"type": "mtdz", "couponNo": "G1"})),
        40001,
    );
    assert_refused(
        &gw(
            &c,
            "verify",
            json!({"type": "mtdz", "couponNo": "G1", "shopId": 147, "count": 0, "request_id": "z"}),
        ),
        40001,
    );
    assert_refused(
        &gw(
            &c,
            "verify",
            json!({"type": "mtdz", "couponNo": "G1", "shopId": 147, "count": 1}),
        ),
        40001,
    );
    assert_refused(
        &gw(
            &c,
            "prepare",
            json!({"type": "mtdz", "couponNo": "G1", "shopId": 147, "version": "2.0"}),
        ),
        40001,
    );
    let a = raw_request(c.addr, "POST", "/gateway", &[], b"{not json");
    assert_eq!(a.status, 200);
    assert_refused(&a.json(), 40002);
    let mut bad = signed(
        json!({"method": "allinpay.shopoint.thirdCouponService.prepare", "type": "mtdz", "couponNo": "G1", "shopId": 147}),
    );
    bad["couponNo"] = json!("G2");
    assert_refused(&c.post("/gateway", &bad).json(), 40102);
}

#[test]
fn parallel_verifies_never_overspend_a_voucher() {
    let server = TestServer::start();
    let c = server.client();
    let mut rec = mtdz_record("P1");
    rec["count"] = json!(10);
    import(&c, json!([rec]));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..5 {
                    let v = gw(&c, "verify", json!({"type": "mtdz", "couponNo": "P1", "shopId": 147, "count": 1, "request_id": format!("p{t}-{i}")}));
                    match v["code"].as_i64() {
                        Some(0) => ok += 1,
                        _ => assert_eq!(v["sub_code"], 40907, "{v}"),
                    }
                }
                ok
            })
        })
        .collect();
    let successes: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(successes, 10);
    assert_eq!(
        c.admin("GET", "/admin/vouchers/mtdz/P1", None).json()["data"]["remaining"],
        0
    );
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn import_is_all_or_nothing_and_names_the_record_and_field() {
    let server = TestServer::start();
    let c = server.client();
    let mut broken = mtdz_record("B2");
    broken.as_object_mut().unwrap().remove("valueFen");
    let a = import(&c, json!([mtdz_record("B1"), broken]));
    assert_eq!(a.code(), 40001);
    assert_eq!(a.json()["message"], "[1].valueFen: required");
    assert_eq!(
        c.admin("GET", "/admin/vouchers/mtdz/B1", None).code(),
        40403,
        "nothing imported"
    );
    let mut tiktok = mtdz_record("B3");
    tiktok["type"] = json!("tiktok");
    assert!(import(&c, json!([tiktok])).json()["message"]
        .as_str()
        .unwrap()
        .starts_with("[0].deal.certificateId"));
    let mut window = mtdz_record("B4");
    window["validityEnd"] = json!("2020-01-01T00:00:00+08:00");
    assert_eq!(
        import(&c, json!([window])).json()["message"],
        "[0].validityEnd: must be later than validityBegin"
    );
    assert_eq!(
        import(&c, json!([mtdz_record("B5"), mtdz_record("B5")])).code(),
        40001
    );
    assert_eq!(import(&c, json!({"type": "mtdz"})).code(), 40001);
    assert_eq!(import(&c, json!([mtdz_record("B1")])).code(), 0);
    assert_eq!(
        import(&c, json!([mtdz_record("B1")])).code(),
        40906,
        "re-import is refused"
    );
    let shown = c.admin("GET", "/admin/vouchers/mtdz/B1", None).json();
    assert_eq!(shown["data"]["shopIds"], json!([147, 148]));
    assert_eq!(shown["data"]["count"], 1);
    assert_eq!(shown["data"]["remaining"], 1);
}

#[test]
fn cli_imports_json_lines_and_names_the_line() {
    let mut server = TestServer::start();
    let dir = TempDir::new();
    let file = dir.path().join("vouchers.jsonl");
    let mut second = mtdz_record("L2");
    second["shopIds"] = json!([]);
    // The CLI writes only to a database no server holds.
    server.while_stopped(|db| {
        std::fs::write(&file, format!("{}\n{}\n", mtdz_record("L1"), second)).unwrap();
        let import = || {
            Command::new(bin())
                .args(["voucher", "import"])
                .arg(&file)
                .arg("--db")
                .arg(db)
                .output()
                .unwrap()
        };
        let out = import();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 2: shopIds"), "{err}");
        std::fs::write(
            &file,
            format!("{}\n\n{}\n", mtdz_record("L1"), mtdz_record("L2")),
        )
        .unwrap();
        let out = import();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let c = server.client();
    assert_eq!(c.admin("GET", "/admin/vouchers/mtdz/L2", None).code(), 0);
    let got = gw(
        &c,
        "prepare",
        json!({"type": "mtdz", "couponNo": "L1", "shopId": 147}),
    );
    assert_eq!(got["code"], 0);
}
