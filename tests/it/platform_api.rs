//! The inbound platform API (优惠券接入协议接口), over real HTTP:
//! stock query, claim, expire/deactivate one coupon, and the batch of up to ten.

use crate::common::*;
use coupon_ledger::domain::time::now_ms;
use coupon_ledger::sign::{SignFields, SignRule};
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

const PATHS: [&str; 4] = [
    "/sp/stock/query",
    "/sp/coupon/receive",
    "/sp/coupon/deactivate",
    "/sp/coupon/batch-deactivate",
];

/// The protocol's 查询批次信息 request example, verbatim.
const SEED_QUERY: &str = r#"{
"api_key": "PSUBZLHOKUO6HV52A5CAUSSE5KSB6Y",
"seq_id": "38d42bd9-9f5a-415e-89d9-ea4ff9cffdf2",
"timestamp": "1572342076",
"nonce": "157234207",
"sign": "8A983278E5366EB93FEB0D4143E1C522",
"stock_id": "test001",
"extra": "extra info"
}"#;

/// The protocol's 领券 request example, verbatim.
const SEED_RECEIVE: &str = r#"{
"api_key": "PSUBZLHOKUO6HV52A5CAUSSE5KSB6Y",
"seq_id": "38d42bd9-9f5a-415e-89d9-ea4ff9cffdf2",
"timestamp": "1572342076",
"nonce": "157234207",
"sign": "8A983278E5366EB93FEB0D4143E1C522",
"app_channel_id":1,
"user_code": "udxbxd",
"mobile_phone": "13911112222",
"stock_id": "test001",
"request_id": "123456789",
"extra": "extra info"
}"#;

/// The protocol's 设置可用优惠券过期/失效 request example, verbatim.
const SEED_DEACTIVATE: &str = r#"{
"api_key": "PSUBZLHOKUO6HV52A5CAUSSE5KSB6Y",
"seq_id": "38d42bd9-9f5a-415e-89d9-ea4ff9cffdf2",
"timestamp": "1572342076",
"nonce":"157234207",
"sign":"8A983278E5366EB93FEB0D4143E1C522",
"app_channel_id":1,
"user_code": "udxbxd",
"mobile_phone":"13911112222",
"stock_id":"test001",
"coupon_id": "123456789",
"coupon_status":3,
"reason": "用户申请退款",
"extra": "extra**** info"
}"#;

/// The protocol's 批量设置可用优惠券过期/失效 request example, verbatim — including its
/// typo, the key `"app_channel_id "` with a trailing space.
const SEED_BATCH: &str = r#"{
"api_key": "PSUBZLHOKUO6HV52A5CAUSSE5KSB6Y",
"seq_id": "38d42bd9-9f5a-415e-89d9-ea4ff9cffdf2",
"timestamp": "1572342076",
"nonce": "157234207",
"sign": "8A983278E5366EB93FEB0D4143E1C522",
"app_channel_id ": 1,
"user_code": "udxbxd",
"mobile_phone": "13911112222",
"coupons": [{
"stock_id": "test001",
"coupon_id": "123456789"
}],
"coupon_status": 3,
"reason": "用户申请退款",
"extra": "extrainfo"
}"#;

/// A seed request example adapted to the test credentials: the protocol's own
/// timestamp, nonce and sign are dropped and the body is signed afresh.
fn adapted(seed: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v: Value = serde_json::from_str(seed).expect("the seed example is JSON");
    let m = v.as_object_mut().unwrap();
    for k in ["sign", "timestamp", "nonce"] {
        m.remove(k);
    }
    edit(m);
    signed(v)
}

/// The protocol's stock `test001`, created through the admin API.
fn seed_stock(client: &Client, begin: &str, end: &str) -> Value {
    let a = client.admin(
        "POST",
        "/admin/stocks",
        Some(json!({
            "app_channel_id": 1,
            "app_id": "wx1111111111",
            "stock_id": "test001",
            "stock_name": "代驾10元代金券",
            "instructions": "优惠券使用简介",
            "coupon_name": "代驾代金券",
            "coupon_desc": "消费满100元可用,仅限深圳使用",
            "coupon_type": 1,
            "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
            "max_coupons": 20000,
            "max_coupons_per_user": 1,
            "available_begin_time": begin,
            "available_end_time": end,
            "stock_status": 3
        })),
    );
    expect(&a, 0)["data"].clone()
}

fn batch(client: &Client, user: &str, coupons: &[(&str, &str)], to: i64) -> Answer {
    let list: Vec<Value> = coupons
        .iter()
        .map(|(s, c)| json!({"stock_id": s, "coupon_id": c}))
        .collect();
    client.call(
        "/sp/coupon/batch-deactivate",
        json!({"app_channel_id": 1, "user_code": user, "coupons": list, "coupon_status": to}),
    )
}

// ---------------------------------------------------------------- seed examples

#[test]
fn seed_stock_query_example_answers_the_seed_answer_example() {
    let server = TestServer::start();
    let client = server.client();
    let created = seed_stock(
        &client,
        "2020-07-20T13:29:35.120+08:00",
        "2020-08-20T13:29:35.120+08:00",
    );
    let a = client.post("/sp/stock/query", &adapted(SEED_QUERY, |_| {}));
    let v = expect(&a, 0);
    assert_eq!(v["message"], "successful");
    let mut data = v["data"].clone();
    let create_time = data.as_object_mut().unwrap().remove("create_time").unwrap();
    assert_eq!(create_time, created["create_time"]);
    // The protocol's answer example, less create_time (the server's clock) and less the
    // discount_coupon block: answers carry only the block of their type.
    assert_eq!(
        data,
        json!({
            "app_channel_id": 1,
            "app_id": "wx1111111111",
            "stock_id": "test001",
            "stock_name": "代驾10元代金券",
            "instructions": "优惠券使用简介",
            "coupon_name": "代驾代金券",
            "coupon_desc": "消费满100元可用,仅限深圳使用",
            "coupon_type": 1,
            "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
            "max_coupons": 20000,
            "max_coupons_per_user": 1,
            "available_begin_time": "2020-07-20T13:29:35.120+08:00",
            "available_end_time": "2020-08-20T13:29:35.120+08:00",
            "stock_status": 3
        })
    );
}

#[test]
fn seed_stock_query_answer_has_the_create_time_of_the_stock() {
    let server = TestServer::start();
    let client = server.client();
    let before = now_ms();
    seed_stock(
        &client,
        "2020-07-20T13:29:35.120+08:00",
        "2020-08-20T13:29:35.120+08:00",
    );
    let after = now_ms();
    let v = expect(
        &client.post("/sp/stock/query", &adapted(SEED_QUERY, |_| {})),
        0,
    );
    let t = ms(&v["data"]["create_time"]);
    assert!(
        before <= t && t <= after,
        "create_time {t} not in [{before}, {after}]"
    );
}

#[test]
fn seed_receive_example_claims_a_coupon_in_the_seed_answer_shape() {
    let server = TestServer::start();
    let client = server.client();
    seed_stock(
        &client,
        "2020-07-05T13:29:35.120+08:00",
        "2099-07-30T23:59:59.120+08:00",
    );
    let before = now_ms();
    let a = client.post("/sp/coupon/receive", &adapted(SEED_RECEIVE, |_| {}));
    let after = now_ms();
    let v = expect(&a, 0);
    assert!(
        a.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        a.headers
    );
    assert_eq!(v["message"], "successful");
    let d = &v["data"];
    // The protocol's answer example lists `stock_status: 1` where `coupon_status` is meant.
    assert_eq!(
        keys(d),
        sorted(vec![
            "app_id",
            "stock_id",
            "coupon_id",
            "coupon_type",
            "fixed_normal_coupon",
            "available_begin_time",
            "available_end_time",
            "receive_time",
            "coupon_status"
        ])
    );
    assert_eq!(d["app_id"], "wx1111111111");
    assert_eq!(d["stock_id"], "test001");
    assert_eq!(d["coupon_type"], 1);
    assert_eq!(
        d["fixed_normal_coupon"],
        json!({"coupon_amount": 1000, "transaction_minimum": 10000})
    );
    assert_eq!(d["available_begin_time"], "2020-07-05T13:29:35.120+08:00");
    assert_eq!(d["available_end_time"], "2099-07-30T23:59:59.120+08:00");
    assert_eq!(d["coupon_status"], 1);
    let t = ms(&d["receive_time"]);
    assert!(
        before <= t && t <= after,
        "receive_time {t} not in [{before}, {after}]"
    );
}

#[test]
fn coupon_id_is_a_numeric_string_of_at_most_20_characters_and_not_sequential() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let ids: Vec<String> = (0..2)
        .map(|i| claim_ok(&client, &sid(&stock), &format!("u{i}")))
        .collect();
    for id in &ids {
        assert!(!id.is_empty() && id.len() <= 20, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    }
    let (a, b): (u128, u128) = (ids[0].parse().unwrap(), ids[1].parse().unwrap());
    assert!(a.abs_diff(b) > 1000, "ids look sequential: {a} {b}");
}

#[test]
fn seed_deactivate_example_expires_the_coupon_and_answers_its_time() {
    let server = TestServer::start();
    let client = server.client();
    seed_stock(
        &client,
        "2020-07-05T13:29:35.120+08:00",
        "2099-07-30T23:59:59.120+08:00",
    );
    let claimed = expect(
        &client.post("/sp/coupon/receive", &adapted(SEED_RECEIVE, |_| {})),
        0,
    );
    let id = claimed["data"]["coupon_id"].as_str().unwrap().to_string();
    let before = now_ms();
    let a = client.post(
        "/sp/coupon/deactivate",
        &adapted(SEED_DEACTIVATE, |m| {
            m.insert("coupon_id".into(), json!(id));
        }),
    );
    let after = now_ms();
    let v = expect(&a, 0);
    assert_eq!(v["message"], "successful");
    assert_eq!(keys(&v["data"]), vec!["deactivate_time"]);
    let t = ms(&v["data"]["deactivate_time"]);
    assert!(before <= t && t <= after);
    let c = coupon(&client, &id);
    assert_eq!(c["coupon_status"], 3);
    assert_eq!(c["status_time"], v["data"]["deactivate_time"]);
    assert_checked(&server);
}

#[test]
fn seed_batch_example_with_its_key_typo_fixed_expires_the_coupon() {
    let server = TestServer::start();
    let client = server.client();
    seed_stock(
        &client,
        "2020-07-05T13:29:35.120+08:00",
        "2099-07-30T23:59:59.120+08:00",
    );
    let claimed = expect(
        &client.post("/sp/coupon/receive", &adapted(SEED_RECEIVE, |_| {})),
        0,
    );
    let id = claimed["data"]["coupon_id"].as_str().unwrap().to_string();
    let before = now_ms();
    let a = client.post(
        "/sp/coupon/batch-deactivate",
        &adapted(SEED_BATCH, |m| {
            let channel = m.remove("app_channel_id ").unwrap();
            m.insert("app_channel_id".into(), channel);
            m["coupons"][0]["coupon_id"] = json!(id);
        }),
    );
    let after = now_ms();
    let v = expect(&a, 0);
    assert_eq!(v["message"], "successful");
    let d = &v["data"];
    assert_eq!(
        keys(d),
        vec!["deactivate_coupons", "expire_coupons", "illegal_coupons"]
    );
    assert_eq!(d["deactivate_coupons"], json!([]));
    assert_eq!(d["illegal_coupons"], json!([]));
    let expired = d["expire_coupons"].as_array().unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        keys(&expired[0]),
        vec!["coupon_id", "expire_time", "stock_id"]
    );
    assert_eq!(expired[0]["stock_id"], "test001");
    assert_eq!(expired[0]["coupon_id"], json!(id));
    let t = ms(&expired[0]["expire_time"]);
    assert!(before <= t && t <= after);
    assert_eq!(coupon(&client, &id)["coupon_status"], 3);
    assert_checked(&server);
}

#[test]
fn seed_batch_example_with_trailing_space_key_is_refused_with_40001_naming_app_channel_id() {
    let server = TestServer::start();
    let client = server.client();
    seed_stock(
        &client,
        "2020-07-05T13:29:35.120+08:00",
        "2099-07-30T23:59:59.120+08:00",
    );
    let claimed = expect(
        &client.post("/sp/coupon/receive", &adapted(SEED_RECEIVE, |_| {})),
        0,
    );
    let id = claimed["data"]["coupon_id"].as_str().unwrap().to_string();
    // Signed as sent, trailing-space key and all: `"app_channel_id "` is an unknown key.
    let a = client.post(
        "/sp/coupon/batch-deactivate",
        &adapted(SEED_BATCH, |m| {
            m["coupons"][0]["coupon_id"] = json!(id);
        }),
    );
    expect_invalid(&a, "app_channel_id");
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}

// ---------------------------------------------------------------- answer shapes

#[test]
fn stock_query_of_a_discount_stock_carries_only_the_discount_block() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({
        "coupon_type": 3,
        "fixed_normal_coupon": null,
        "discount_coupon": {"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}
    }));
    let v = expect(
        &client.call("/sp/stock/query", json!({"stock_id": sid(&stock)})),
        0,
    );
    let d = &v["data"];
    assert!(d.get("fixed_normal_coupon").is_none(), "{d}");
    assert_eq!(d["coupon_type"], 3);
    assert_eq!(
        d["discount_coupon"],
        json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000})
    );
    assert_eq!(
        keys(d),
        sorted(
            STOCK_FIELDS
                .iter()
                .map(|k| match *k {
                    "fixed_normal_coupon" => "discount_coupon",
                    k => k,
                })
                .collect()
        )
    );
}

#[test]
fn claim_of_a_discount_stock_carries_only_the_discount_block() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({
        "coupon_type": 3,
        "fixed_normal_coupon": null,
        "discount_coupon": {"discount_amount_max": 500, "discount_percent": 90, "transaction_minimum": 0}
    }));
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 0);
    let d = &v["data"];
    assert_eq!(d["coupon_type"], 3);
    assert!(d.get("fixed_normal_coupon").is_none(), "{d}");
    assert_eq!(
        d["discount_coupon"],
        json!({"discount_amount_max": 500, "discount_percent": 90, "transaction_minimum": 0})
    );
}

#[test]
fn claim_of_a_cut_to_stock_carries_the_cut_price_in_the_fixed_block() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({
        "coupon_type": 2,
        "fixed_normal_coupon": {"coupon_amount": 990, "transaction_minimum": 2000}
    }));
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 0);
    let d = &v["data"];
    assert_eq!(d["coupon_type"], 2);
    assert!(d.get("discount_coupon").is_none(), "{d}");
    assert_eq!(
        d["fixed_normal_coupon"],
        json!({"coupon_amount": 990, "transaction_minimum": 2000})
    );
}

#[test]
fn claim_answer_copies_the_stock_window() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 0);
    assert_eq!(
        v["data"]["available_begin_time"],
        stock["available_begin_time"]
    );
    assert_eq!(v["data"]["available_end_time"], stock["available_end_time"]);
    assert_eq!(v["data"]["app_id"], stock["app_id"]);
}

// ---------------------------------------------------------------- signing (docs/protocol.md, signing)

#[test]
fn unknown_api_key_is_refused_with_40101_on_every_path() {
    let server = TestServer::start();
    let client = server.client();
    for path in PATHS {
        let body = signed_as(
            "NO-SUCH-KEY",
            SECRET,
            &SignRule::default(),
            json!({"stock_id": "s1"}),
        );
        let v = expect(&client.post(path, &body), 40101);
        assert_eq!(v["message"], "unknown api_key");
    }
}

#[test]
fn body_changed_after_signing_is_refused_with_40102_on_every_path() {
    let server = TestServer::start();
    let client = server.client();
    for path in PATHS {
        let mut body = signed(json!({"stock_id": "s1", "user_code": "u1"}));
        body["user_code"] = json!("u2");
        let v = expect(&client.post(path, &body), 40102);
        assert_eq!(v["message"], "bad signature");
    }
}

#[test]
fn claim_with_a_tampered_body_issues_nothing() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let mut body = signed(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": sid(&stock), "request_id": unique("r")}));
    body["user_code"] = json!("u2");
    expect(&client.post("/sp/coupon/receive", &body), 40102);
    let counts = expect(
        &client.admin("GET", &format!("/admin/stocks/{}", sid(&stock)), None),
        0,
    );
    assert_eq!(counts["data"]["counts"]["issued"], 0);
}

#[test]
fn missing_sign_is_refused_with_40102_on_every_path() {
    let server = TestServer::start();
    let client = server.client();
    for path in PATHS {
        let mut body = signed(json!({"stock_id": "s1"}));
        body.as_object_mut().unwrap().remove("sign");
        expect(&client.post(path, &body), 40102);
    }
}

#[test]
fn sign_made_with_another_secret_is_refused_with_40102() {
    let server = TestServer::start();
    let client = server.client();
    let body = signed_as(
        KEY,
        "not-the-secret",
        &SignRule::default(),
        json!({"stock_id": "s1"}),
    );
    expect(&client.post("/sp/stock/query", &body), 40102);
}

#[test]
fn sign_over_common_fields_only_is_refused_for_an_all_fields_partner() {
    let server = TestServer::start();
    let client = server.client();
    let rule = SignRule {
        fields: SignFields::Common,
        key_name: "key".into(),
    };
    let body = signed_as(KEY, SECRET, &rule, json!({"stock_id": "s1"}));
    expect(&client.post("/sp/stock/query", &body), 40102);
}

#[test]
fn timestamp_older_than_the_window_is_refused_with_40103_on_every_path() {
    let server = TestServer::start();
    let client = server.client();
    for path in PATHS {
        let old = (now_ms() / 1000 - 301).to_string();
        let body = signed(json!({"stock_id": "s1", "timestamp": old}));
        let v = expect(&client.post(path, &body), 40103);
        assert_eq!(v["message"], "timestamp outside the allowed window");
    }
}

#[test]
fn timestamp_ahead_of_the_window_is_refused_with_40103() {
    let server = TestServer::start();
    let client = server.client();
    let ahead = (now_ms() / 1000 + 400).to_string();
    let body = signed(json!({"stock_id": "s1", "timestamp": ahead}));
    expect(&client.post("/sp/stock/query", &body), 40103);
}

#[test]
fn timestamp_may_be_a_number() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let body = signed(json!({"stock_id": sid(&stock), "timestamp": now_ms() / 1000}));
    expect(&client.post("/sp/stock/query", &body), 0);
}

#[test]
fn replayed_claim_request_is_refused_with_40104() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let body = signed(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": sid(&stock), "request_id": unique("r")}));
    expect(&client.post("/sp/coupon/receive", &body), 0);
    let v = expect(&client.post("/sp/coupon/receive", &body), 40104);
    assert_eq!(v["message"], "nonce already used");
}

#[test]
fn replayed_stock_query_is_refused_with_40104() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let body = signed(json!({"stock_id": sid(&stock)}));
    expect(&client.post("/sp/stock/query", &body), 0);
    expect(&client.post("/sp/stock/query", &body), 40104);
}

#[test]
fn a_stock_query_refused_for_an_unknown_stock_still_uses_up_its_nonce() {
    // The nonce and the read share one transaction; the refusal of the read
    // keeps the nonce recorded.
    let server = TestServer::start();
    let client = server.client();
    let body = signed(json!({"stock_id": "no-such-stock"}));
    expect(&client.post("/sp/stock/query", &body), 40401);
    expect(&client.post("/sp/stock/query", &body), 40104);
}

#[test]
fn nonce_reused_in_a_different_signed_request_is_refused_with_40104() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let nonce = unique("n");
    let first = signed(json!({"stock_id": sid(&stock), "nonce": nonce}));
    expect(&client.post("/sp/stock/query", &first), 0);
    let second = signed(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": sid(&stock), "request_id": unique("r"), "nonce": nonce}));
    expect(&client.post("/sp/coupon/receive", &second), 40104);
}

#[test]
fn replayed_deactivate_request_is_refused_with_40104() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let body = signed(
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": sid(&stock),
        "coupon_id": id, "coupon_status": 4}),
    );
    expect(&client.post("/sp/coupon/deactivate", &body), 0);
    expect(&client.post("/sp/coupon/deactivate", &body), 40104);
}

#[test]
fn replayed_batch_request_is_refused_with_40104() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let body = signed(json!({"app_channel_id": 1, "user_code": "u1",
        "coupons": [{"stock_id": sid(&stock), "coupon_id": id}], "coupon_status": 3}));
    expect(&client.post("/sp/coupon/batch-deactivate", &body), 0);
    expect(&client.post("/sp/coupon/batch-deactivate", &body), 40104);
}

#[test]
fn nonces_are_remembered_per_api_key() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let nonce = unique("n");
    let a = signed(json!({"stock_id": sid(&stock), "nonce": nonce}));
    let b = signed_common(json!({"stock_id": sid(&stock), "nonce": nonce}));
    expect(&client.post("/sp/stock/query", &a), 0);
    expect(&client.post("/sp/stock/query", &b), 0);
}

#[test]
fn common_fields_partner_claims_with_a_sign_over_common_fields_and_secret_key() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let body = signed_common(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": sid(&stock), "request_id": unique("r")}));
    let v = expect(&client.post("/sp/coupon/receive", &body), 0);
    assert_eq!(v["data"]["coupon_status"], 1);
}

#[test]
fn common_fields_partner_sign_survives_a_change_of_a_business_field() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let mut body = signed_common(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": "not-this-one", "request_id": unique("r")}));
    body["stock_id"] = json!(sid(&stock));
    body["user_code"] = json!("u2");
    let v = expect(&client.post("/sp/coupon/receive", &body), 0);
    let id = v["data"]["coupon_id"].as_str().unwrap();
    assert_eq!(coupon(&client, id)["user_code"], "u2");
}

#[test]
fn common_fields_partner_sign_breaks_when_a_common_field_changes() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let mut body = signed_common(json!({"stock_id": sid(&stock)}));
    body["nonce"] = json!(unique("other"));
    expect(&client.post("/sp/stock/query", &body), 40102);
}

#[test]
fn common_fields_partner_sign_with_the_all_fields_rule_is_refused_with_40102() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let body = signed_as(
        KEY2,
        SECRET2,
        &SignRule::default(),
        json!({"stock_id": sid(&stock)}),
    );
    expect(&client.post("/sp/stock/query", &body), 40102);
}

#[test]
fn sign_is_the_md5_of_sorted_non_empty_fields_with_the_key_appended() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let id = claim_ok(&client, &s, "u1");
    let ts = (now_ms() / 1000).to_string();
    let nonce = unique("n");
    // The signing rule by hand: null and "" dropped, arrays as compact JSON with sorted keys.
    let string_to_sign = format!(
        "api_key={KEY}&app_channel_id=1&coupon_status=4&coupons=[{{\"coupon_id\":\"{id}\",\"stock_id\":\"{s}\"}}]\
         &nonce={nonce}&reason=用户申请退款&seq_id=q1&timestamp={ts}&user_code=u1&key={SECRET}"
    );
    let sign = coupon_ledger::sign::md5_upper(&string_to_sign);
    let body = format!(
        r#"{{"coupons": [{{"stock_id": "{s}", "coupon_id": "{id}"}}], "user_code": "u1",
            "app_channel_id": 1, "coupon_status": 4, "reason": "用户申请退款", "extra": "",
            "mobile_phone": null, "api_key": "{KEY}", "seq_id": "q1", "timestamp": "{ts}",
            "nonce": "{nonce}", "sign": "{sign}"}}"#
    );
    let a = raw_request(
        server.addr,
        "POST",
        "/sp/coupon/batch-deactivate",
        &[],
        body.as_bytes(),
    );
    let v = expect(&a, 0);
    assert_eq!(v["data"]["deactivate_coupons"][0]["coupon_id"], json!(id));
}

#[test]
fn common_fields_sign_is_the_md5_of_the_common_fields_with_secret_key_appended() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let ts = now_ms() / 1000;
    let nonce = unique("n");
    let sign = coupon_ledger::sign::md5_upper(&format!(
        "api_key={KEY2}&nonce={nonce}&seq_id=q2&timestamp={ts}&secretKey={SECRET2}"
    ));
    let body = json!({"api_key": KEY2, "seq_id": "q2", "timestamp": ts, "nonce": nonce,
        "sign": sign, "stock_id": sid(&stock)});
    expect(&client.post("/sp/stock/query", &body), 0);
}

// ---------------------------------------------------------------- stock query

#[test]
fn stock_query_of_an_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    let v = expect(
        &client.call("/sp/stock/query", json!({"stock_id": "no-such-stock"})),
        40401,
    );
    assert_eq!(v["message"], "stock not found");
    assert!(v.get("data").is_none());
}

#[test]
fn stock_query_without_stock_id_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &client.call("/sp/stock/query", json!({"extra": "x"})),
        "stock_id",
    );
}

#[test]
fn stock_query_that_is_not_json_is_refused_with_40002() {
    let server = TestServer::start();
    let a = raw_request(
        server.addr,
        "POST",
        "/sp/stock/query",
        &[],
        b"stock_id=test001",
    );
    expect(&a, 40002);
}

#[test]
fn stock_query_shows_the_current_stock_status() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    expect(&set_status(&client, &sid(&stock), 5), 0);
    let v = expect(
        &client.call("/sp/stock/query", json!({"stock_id": sid(&stock)})),
        0,
    );
    assert_eq!(v["data"]["stock_status"], 5);
}

// ---------------------------------------------------------------- claim rules (docs/protocol.md, the ledger's rules)

#[test]
fn claim_of_an_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    expect(&client.claim("no-such-stock", "u1", &unique("r")), 40401);
}

#[test]
fn claim_from_an_inactive_stock_is_refused_with_40901() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"stock_status": 1}));
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40901);
    assert_eq!(v["message"], "stock not running");
}

#[test]
fn claim_from_a_stock_in_review_is_refused_with_40901() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"stock_status": 2}));
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40901);
}

#[test]
fn claim_from_a_paused_stock_is_refused_with_40901() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    expect(&set_status(&client, &sid(&stock), 5), 0);
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40901);
}

#[test]
fn claim_from_a_stopped_stock_is_refused_with_40901() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    expect(&set_status(&client, &sid(&stock), 4), 0);
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40901);
}

#[test]
fn claim_after_the_stock_window_ended_is_refused_with_40902() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({
        "available_begin_time": time_from_now(-2 * 86_400),
        "available_end_time": time_from_now(-86_400)
    }));
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40902);
    assert_eq!(v["message"], "stock outside its time window");
}

#[test]
fn claim_beyond_max_coupons_is_refused_with_40903() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons": 2}));
    claim_ok(&client, &sid(&stock), "u1");
    claim_ok(&client, &sid(&stock), "u2");
    let v = expect(&client.claim(&sid(&stock), "u3", &unique("r")), 40903);
    assert_eq!(v["message"], "stock sold out");
    assert_checked(&server);
}

#[test]
fn claim_beyond_user_limit_is_refused_with_40904() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 2}));
    claim_ok(&client, &sid(&stock), "u1");
    claim_ok(&client, &sid(&stock), "u1");
    let v = expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40904);
    assert_eq!(v["message"], "user limit reached");
    assert_checked(&server);
}

#[test]
fn user_limit_of_one_user_does_not_stop_another_user() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 1}));
    claim_ok(&client, &sid(&stock), "u1");
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40904);
    claim_ok(&client, &sid(&stock), "u2");
}

#[test]
fn user_limit_counts_coupons_of_this_stock_only() {
    let server = TestServer::start();
    let client = server.client();
    let a = client.create_stock(json!({"max_coupons_per_user": 1}));
    let b = client.create_stock(json!({"max_coupons_per_user": 1}));
    claim_ok(&client, &sid(&a), "u1");
    claim_ok(&client, &sid(&b), "u1");
}

#[test]
fn user_limit_counts_coupons_that_were_used_or_deactivated() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 2}));
    let first = claim_ok(&client, &sid(&stock), "u1");
    let second = claim_ok(&client, &sid(&stock), "u1");
    expect(&redeem(&client, &first, &unique("o"), 20000), 0);
    expect(&deactivate(&client, &sid(&stock), "u1", &second, 4), 0);
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40904);
}

#[test]
fn claim_on_another_app_channel_than_the_stocks_is_refused_with_40001_naming_app_channel_id() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let a = client.call(
        "/sp/coupon/receive",
        json!({"app_channel_id": 11, "user_code": "u1", "stock_id": sid(&stock), "request_id": unique("r")}),
    );
    expect_invalid(&a, "app_channel_id");
}

#[test]
fn claim_without_user_code_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let a = client.call(
        "/sp/coupon/receive",
        json!({"app_channel_id": 1, "stock_id": sid(&stock), "request_id": unique("r")}),
    );
    expect_invalid(&a, "user_code");
}

#[test]
fn claim_with_a_non_digit_mobile_phone_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let a = client.call(
        "/sp/coupon/receive",
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": sid(&stock),
               "request_id": unique("r"), "mobile_phone": "139-1111-22"}),
    );
    expect_invalid(&a, "mobile_phone");
}

#[test]
fn claimed_mobile_phone_is_stored_masked() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let a = client.call(
        "/sp/coupon/receive",
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": sid(&stock),
               "request_id": unique("r"), "mobile_phone": "13911112222"}),
    );
    let id = expect(&a, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(coupon(&client, &id)["mobile_phone"], "139****2222");
    let full = b"13911112222";
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", server.db().display());
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(full.len()).any(|w| w == full),
            "the full number reached {path}"
        );
    }
}

#[test]
fn claim_without_mobile_phone_stores_none() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    assert_eq!(coupon(&client, &id)["mobile_phone"], Value::Null);
}

// ---------------------------------------------------------------- claim idempotency

#[test]
fn same_request_id_with_same_parameters_answers_the_same_coupon() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(first["data"], again["data"]);
    let s = expect(
        &client.admin("GET", &format!("/admin/stocks/{}", sid(&stock)), None),
        0,
    );
    assert_eq!(s["data"]["counts"]["issued"], 1);
    assert_checked(&server);
}

#[test]
fn same_request_id_answers_the_same_coupon_after_the_stock_sold_out() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons": 1}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    expect(&client.claim(&sid(&stock), "u2", &unique("r")), 40903);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(again["data"]["coupon_id"], first["data"]["coupon_id"]);
}

#[test]
fn same_request_id_answers_the_same_coupon_after_the_stock_was_paused() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    expect(&set_status(&client, &sid(&stock), 5), 0);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(again["data"]["coupon_id"], first["data"]["coupon_id"]);
}

#[test]
fn same_request_id_answers_the_same_coupon_after_the_stock_was_stopped() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    expect(&set_status(&client, &sid(&stock), 4), 0);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(again["data"]["coupon_id"], first["data"]["coupon_id"]);
}

#[test]
fn same_request_id_answers_the_same_coupon_after_the_user_reached_the_limit() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 1}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    expect(&client.claim(&sid(&stock), "u1", &unique("r")), 40904);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(again["data"]["coupon_id"], first["data"]["coupon_id"]);
}

#[test]
fn same_request_id_for_another_user_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    expect(&client.claim(&sid(&stock), "u1", &r), 0);
    expect(&client.claim(&sid(&stock), "u2", &r), 40906);
    assert_checked(&server);
}

#[test]
fn same_request_id_for_another_stock_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let a = client.create_stock(json!({}));
    let b = client.create_stock(json!({}));
    let r = unique("r");
    expect(&client.claim(&sid(&a), "u1", &r), 0);
    expect(&client.claim(&sid(&b), "u1", &r), 40906);
}

#[test]
fn same_request_id_answers_the_same_coupon_after_the_window_closed() {
    let server = TestServer::start();
    let client = server.client();
    let end = time_from_now(1);
    let stock = client.create_stock(json!({ "available_end_time": end }));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    wait_past(&json!(end));
    expect(&client.claim(&sid(&stock), "u2", &unique("r")), 40902);
    let again = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    assert_eq!(again["data"], first["data"]);
}

#[test]
fn same_request_id_for_another_stock_that_refuses_is_still_a_conflict() {
    // The refusal of the second stock does not hide that the key is taken.
    let server = TestServer::start();
    let client = server.client();
    let a = client.create_stock(json!({}));
    let b = client.create_stock(json!({}));
    expect(&set_status(&client, &sid(&b), 5), 0);
    let r = unique("r");
    expect(&client.claim(&sid(&a), "u1", &r), 0);
    expect(&client.claim(&sid(&b), "u1", &r), 40906);
    expect(&client.claim(&sid(&b), "u1", &unique("r")), 40901);
    assert_checked(&server);
}

#[test]
fn same_request_id_with_another_mobile_phone_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    let claim = |phone: &str| {
        client.call(
            "/sp/coupon/receive",
            json!({"app_channel_id": 1, "user_code": "u1", "stock_id": sid(&stock),
                   "request_id": r, "mobile_phone": phone}),
        )
    };
    expect(&claim("13911112222"), 0);
    expect(&claim("13800001111"), 40906);
}

#[test]
fn request_ids_are_scoped_per_partner() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let r = unique("r");
    let first = expect(&client.claim(&sid(&stock), "u1", &r), 0);
    let other = signed_common(json!({"app_channel_id": 1, "user_code": "u1",
        "stock_id": sid(&stock), "request_id": r}));
    let second = expect(&client.post("/sp/coupon/receive", &other), 0);
    assert_ne!(first["data"]["coupon_id"], second["data"]["coupon_id"]);
}

#[test]
fn refused_claim_does_not_burn_its_request_id() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"stock_status": 1}));
    let r = unique("r");
    expect(&client.claim(&sid(&stock), "u1", &r), 40901);
    expect(&set_status(&client, &sid(&stock), 3), 0);
    expect(&client.claim(&sid(&stock), "u1", &r), 0);
}

// ---------------------------------------------------------------- expire/deactivate one

#[test]
fn deactivate_to_4_answers_the_time_and_marks_the_coupon_invalid() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let v = expect(&deactivate(&client, &sid(&stock), "u1", &id, 4), 0);
    let c = coupon(&client, &id);
    assert_eq!(c["coupon_status"], 4);
    assert_eq!(c["status_time"], v["data"]["deactivate_time"]);
    assert_checked(&server);
}

#[test]
fn repeated_deactivate_succeeds_with_the_original_time() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let first = expect(&deactivate(&client, &sid(&stock), "u1", &id, 3), 0);
    wait_past(&first["data"]["deactivate_time"]);
    let again = expect(&deactivate(&client, &sid(&stock), "u1", &id, 3), 0);
    assert_eq!(
        again["data"]["deactivate_time"],
        first["data"]["deactivate_time"]
    );
    assert_checked(&server);
}

#[test]
fn expiring_a_deactivated_coupon_succeeds_with_the_original_time_and_keeps_it_invalid() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let first = expect(&deactivate(&client, &sid(&stock), "u1", &id, 4), 0);
    let again = expect(&deactivate(&client, &sid(&stock), "u1", &id, 3), 0);
    assert_eq!(
        again["data"]["deactivate_time"],
        first["data"]["deactivate_time"]
    );
    assert_eq!(coupon(&client, &id)["coupon_status"], 4);
}

#[test]
fn deactivate_of_a_used_coupon_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    expect(&redeem(&client, &id, &unique("o"), 20000), 0);
    expect(&deactivate(&client, &sid(&stock), "u1", &id, 4), 40905);
    assert_eq!(coupon(&client, &id)["coupon_status"], 2);
    assert_checked(&server);
}

#[test]
fn deactivate_of_an_unknown_coupon_is_refused_with_40402() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let v = expect(
        &deactivate(&client, &sid(&stock), "u1", "1234567890123456789", 3),
        40402,
    );
    assert_eq!(v["message"], "coupon not found");
}

#[test]
fn deactivate_of_another_users_coupon_is_refused_with_40402() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "owner");
    expect(
        &deactivate(&client, &sid(&stock), "intruder", &id, 4),
        40402,
    );
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}

#[test]
fn deactivate_naming_the_wrong_stock_is_refused_with_40402() {
    let server = TestServer::start();
    let client = server.client();
    let a = client.create_stock(json!({}));
    let b = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&a), "u1");
    expect(&deactivate(&client, &sid(&b), "u1", &id, 4), 40402);
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}

#[test]
fn deactivate_to_a_status_other_than_3_or_4_is_refused_with_40001_naming_coupon_status() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    for to in [1, 2, 5] {
        expect_invalid(
            &deactivate(&client, &sid(&stock), "u1", &id, to),
            "coupon_status",
        );
    }
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}

#[test]
fn deactivate_without_coupon_id_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let a = client.call(
        "/sp/coupon/deactivate",
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": "s1", "coupon_status": 3}),
    );
    expect_invalid(&a, "coupon_id");
}

#[test]
fn deactivate_records_a_platform_journal_row_with_the_seq_id() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = claim_ok(&client, &sid(&stock), "u1");
    let a = client.call(
        "/sp/coupon/deactivate",
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": sid(&stock),
               "coupon_id": id, "coupon_status": 4, "seq_id": "trace-42", "reason": "用户申请退款"}),
    );
    expect(&a, 0);
    let v = expect(
        &client.admin("GET", &format!("/admin/coupons/{id}"), None),
        0,
    );
    let last = v["data"]["journal"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event"], "deactivate");
    assert_eq!(last["from_status"], 1);
    assert_eq!(last["to_status"], 4);
    assert_eq!(last["source"], "platform");
    assert_eq!(last["seq_id"], "trace-42");
}

// ---------------------------------------------------------------- batch (the batch rule)

#[test]
fn batch_expires_every_available_coupon() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 3}));
    let s = sid(&stock);
    let ids: Vec<String> = (0..3).map(|_| claim_ok(&client, &s, "u1")).collect();
    let list: Vec<(&str, &str)> = ids.iter().map(|i| (s.as_str(), i.as_str())).collect();
    let v = expect(&batch(&client, "u1", &list, 3), 0);
    let expired = v["data"]["expire_coupons"].as_array().unwrap();
    let mut got: Vec<&str> = expired
        .iter()
        .map(|c| c["coupon_id"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(v["data"]["deactivate_coupons"], json!([]));
    assert_eq!(v["data"]["illegal_coupons"], json!([]));
    for id in &ids {
        assert_eq!(coupon(&client, id)["coupon_status"], 3);
    }
    assert_checked(&server);
}

#[test]
fn batch_deactivates_into_deactivate_coupons_with_their_time() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let id = claim_ok(&client, &s, "u1");
    let v = expect(&batch(&client, "u1", &[(&s, &id)], 4), 0);
    let d = &v["data"];
    assert_eq!(d["expire_coupons"], json!([]));
    assert_eq!(d["illegal_coupons"], json!([]));
    let list = d["deactivate_coupons"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        keys(&list[0]),
        vec!["coupon_id", "deactivate_time", "stock_id"]
    );
    assert_eq!(list[0]["stock_id"], json!(s));
    assert_eq!(list[0]["coupon_id"], json!(id));
    assert_eq!(
        list[0]["deactivate_time"],
        coupon(&client, &id)["status_time"]
    );
}

#[test]
fn batch_reports_already_settled_coupons_by_final_status_with_their_original_time() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 3}));
    let s = sid(&stock);
    let deactivated = claim_ok(&client, &s, "u1");
    let expired = claim_ok(&client, &s, "u1");
    let available = claim_ok(&client, &s, "u1");
    let t4 = expect(&deactivate(&client, &s, "u1", &deactivated, 4), 0)["data"]["deactivate_time"]
        .clone();
    let t3 =
        expect(&deactivate(&client, &s, "u1", &expired, 3), 0)["data"]["deactivate_time"].clone();
    wait_past(&t3);
    let v = expect(
        &batch(
            &client,
            "u1",
            &[(&s, &deactivated), (&s, &expired), (&s, &available)],
            3,
        ),
        0,
    );
    let d = &v["data"];
    assert_eq!(
        d["deactivate_coupons"],
        json!([{"stock_id": s, "coupon_id": deactivated, "deactivate_time": t4}])
    );
    let exp = d["expire_coupons"].as_array().unwrap();
    assert_eq!(exp.len(), 2, "{d}");
    let time_of = |id: &str| {
        exp.iter()
            .find(|c| c["coupon_id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} missing from {d}"))["expire_time"]
            .clone()
    };
    assert_eq!(time_of(&expired), t3);
    let fresh = time_of(&available);
    assert!(
        ms(&fresh) > ms(&t3),
        "the newly expired one has the new time"
    );
    assert_eq!(fresh, coupon(&client, &available)["status_time"]);
    assert_eq!(d["illegal_coupons"], json!([]));
    assert_eq!(coupon(&client, &deactivated)["coupon_status"], 4);
    assert_checked(&server);
}

#[test]
fn batch_with_a_used_coupon_changes_nothing_and_is_refused_with_40905_listing_it_as_status_2() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 2}));
    let s = sid(&stock);
    let used = claim_ok(&client, &s, "u1");
    let available = claim_ok(&client, &s, "u1");
    expect(&redeem(&client, &used, &unique("o"), 20000), 0);
    let v = expect(
        &batch(&client, "u1", &[(&s, &available), (&s, &used)], 4),
        40905,
    );
    assert_eq!(
        v["data"],
        json!({
            "expire_coupons": [],
            "deactivate_coupons": [],
            "illegal_coupons": [{"stock_id": s, "coupon_id": used, "coupon_status": 2}]
        })
    );
    assert_eq!(coupon(&client, &available)["coupon_status"], 1);
    assert_eq!(coupon(&client, &used)["coupon_status"], 2);
    assert_checked(&server);
}

#[test]
fn batch_with_an_unknown_coupon_is_refused_with_40905_listing_it_as_status_0() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let available = claim_ok(&client, &s, "u1");
    let v = expect(
        &batch(
            &client,
            "u1",
            &[(&s, &available), (&s, "1111111111111111111")],
            3,
        ),
        40905,
    );
    assert_eq!(
        v["data"]["illegal_coupons"],
        json!([{"stock_id": s, "coupon_id": "1111111111111111111", "coupon_status": 0}])
    );
    assert_eq!(v["data"]["expire_coupons"], json!([]));
    assert_eq!(v["data"]["deactivate_coupons"], json!([]));
    assert_eq!(coupon(&client, &available)["coupon_status"], 1);
}

#[test]
fn batch_with_another_users_coupon_is_refused_with_40905_listing_it_as_status_0() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let mine = claim_ok(&client, &s, "u1");
    let theirs = claim_ok(&client, &s, "u2");
    let v = expect(
        &batch(&client, "u1", &[(&s, &mine), (&s, &theirs)], 4),
        40905,
    );
    assert_eq!(
        v["data"]["illegal_coupons"],
        json!([{"stock_id": s, "coupon_id": theirs, "coupon_status": 0}])
    );
    assert_eq!(coupon(&client, &mine)["coupon_status"], 1);
    assert_eq!(coupon(&client, &theirs)["coupon_status"], 1);
}

#[test]
fn batch_refusal_lists_every_illegal_coupon() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 3}));
    let s = sid(&stock);
    let used = claim_ok(&client, &s, "u1");
    let available = claim_ok(&client, &s, "u1");
    let theirs = claim_ok(&client, &s, "u2");
    expect(&redeem(&client, &used, &unique("o"), 20000), 0);
    let v = expect(
        &batch(
            &client,
            "u1",
            &[(&s, &used), (&s, &available), (&s, &theirs), (&s, "42")],
            3,
        ),
        40905,
    );
    let mut illegal: Vec<(String, i64)> = v["data"]["illegal_coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["coupon_id"].as_str().unwrap().to_string(),
                c["coupon_status"].as_i64().unwrap(),
            )
        })
        .collect();
    illegal.sort();
    let mut want = vec![
        (used.clone(), 2),
        (theirs.clone(), 0),
        ("42".to_string(), 0),
    ];
    want.sort();
    assert_eq!(illegal, want);
    assert_eq!(coupon(&client, &available)["coupon_status"], 1);
    assert_checked(&server);
}

#[test]
fn refused_batch_writes_no_journal_row() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let available = claim_ok(&client, &s, "u1");
    let journal_len = |id: &str| {
        expect(
            &client.admin("GET", &format!("/admin/coupons/{id}"), None),
            0,
        )["data"]["journal"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = journal_len(&available);
    expect(
        &batch(&client, "u1", &[(&s, &available), (&s, "999")], 3),
        40905,
    );
    assert_eq!(journal_len(&available), before);
}

#[test]
fn batch_of_ten_coupons_is_accepted() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 10}));
    let s = sid(&stock);
    let ids: Vec<String> = (0..10).map(|_| claim_ok(&client, &s, "u1")).collect();
    let list: Vec<(&str, &str)> = ids.iter().map(|i| (s.as_str(), i.as_str())).collect();
    let v = expect(&batch(&client, "u1", &list, 4), 0);
    assert_eq!(
        v["data"]["deactivate_coupons"].as_array().unwrap().len(),
        10
    );
    assert_checked(&server);
}

#[test]
fn batch_of_eleven_coupons_is_refused_with_40001_naming_coupons() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({"max_coupons_per_user": 10}));
    let s = sid(&stock);
    let ids: Vec<String> = (0..10).map(|_| claim_ok(&client, &s, "u1")).collect();
    let mut list: Vec<(&str, &str)> = ids.iter().map(|i| (s.as_str(), i.as_str())).collect();
    list.push((s.as_str(), ids[0].as_str()));
    expect_invalid(&batch(&client, "u1", &list, 4), "coupons");
    for id in &ids {
        assert_eq!(coupon(&client, id)["coupon_status"], 1);
    }
}

#[test]
fn batch_with_no_coupons_is_refused_with_40001_naming_coupons() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(&batch(&client, "u1", &[], 3), "coupons");
}

#[test]
fn batch_to_a_status_other_than_3_or_4_is_refused_with_40001_naming_coupon_status() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let id = claim_ok(&client, &s, "u1");
    expect_invalid(&batch(&client, "u1", &[(&s, &id)], 2), "coupon_status");
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}
