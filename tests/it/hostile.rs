//! Bad input never panics, never hangs, and always gets a JSON body with a clear
//! code (docs/protocol.md, conventions): malformed bodies, wrong types, over-long fields, missing
//! fields, oversized and lying requests, header floods, idle connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const PLATFORM_PATHS: [&str; 4] = [
    "/sp/stock/query",
    "/sp/coupon/receive",
    "/sp/coupon/deactivate",
    "/sp/coupon/batch-deactivate",
];

// ---------------------------------------------------------------- helpers

/// Asserts a 40001 whose message names `field` and says the broken `rule`.
fn expect_invalid_saying(a: &Answer, field: &str, rule: &str) {
    expect_invalid(a, field);
    let msg = a.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(rule),
        "message should say {rule:?}: {}",
        show(a)
    );
}

/// Asserts an HTTP error status with a JSON body carrying `code`.
fn expect_http(a: &Answer, status: u16, code: i64) {
    assert_eq!(a.status, status, "{}", show(a));
    assert_eq!(a.code(), code, "{}", show(a));
    assert!(a.json()["message"].is_string(), "{}", show(a));
}

fn post_raw(addr: SocketAddr, path: &str, body: &[u8]) -> Answer {
    raw_request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// Writes `head` and `body` on a fresh connection, tolerating the server closing
/// early, and reads the answer.
fn send_tolerant(addr: SocketAddr, head: &[u8], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(head);
    let _ = s.write_all(body);
    read_answer(&mut s)
}

/// A signed request still succeeds: the server is alive and sane.
fn assert_alive(server: &TestServer) {
    let a = server
        .client()
        .call("/sp/stock/query", json!({"stock_id": "no-such-stock"}));
    expect(&a, 40401);
}

/// Business fields of a valid request to each platform path, for a coupon
/// `coupon_id` of `stock_id` held by `u1`.
fn valid_fields(path: &str, stock_id: &str, coupon_id: &str) -> Value {
    match path {
        "/sp/stock/query" => json!({"stock_id": stock_id, "extra": "x"}),
        "/sp/coupon/receive" => json!({"app_channel_id": 1, "user_code": "u1",
            "stock_id": stock_id, "request_id": unique("r"), "mobile_phone": "13911112222", "extra": "x"}),
        "/sp/coupon/deactivate" => json!({"app_channel_id": 1, "user_code": "u1",
            "stock_id": stock_id, "coupon_id": coupon_id, "coupon_status": 3, "reason": "r", "extra": "x"}),
        _ => json!({"app_channel_id": 1, "user_code": "u1",
            "coupons": [{"stock_id": stock_id, "coupon_id": coupon_id}], "coupon_status": 3,
            "reason": "r", "extra": "x"}),
    }
}

/// A server with one running stock and one coupon of it held by `u1`.
fn with_coupon() -> (TestServer, String, String) {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons_per_user": 20})));
    let a = client.claim(&s, "u1", &unique("r"));
    let id = expect(&a, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    (server, s, id)
}

/// `fields` with `key` set to `value` (or removed when `value` is None), signed.
fn with_field(fields: &Value, key: &str, value: Option<Value>) -> Value {
    let mut f = fields.clone();
    match value {
        Some(v) => f[key] = v,
        None => {
            f.as_object_mut().unwrap().remove(key);
        }
    }
    signed(f)
}

// ---------------------------------------------------------------- bodies that are not JSON objects

#[test]
fn malformed_json_is_refused_with_40002_on_every_platform_path() {
    let server = TestServer::start();
    for path in PLATFORM_PATHS {
        for body in [
            &b"{"[..],
            b"{\"stock_id\": }",
            b"{'stock_id': 'x'}",
            b"{\"a\":1}garbage",
            b"stock_id=test001",
        ] {
            let a = post_raw(server.addr, path, body);
            expect(&a, 40002);
        }
    }
    assert_alive(&server);
}

#[test]
fn json_array_body_is_refused_with_40002() {
    let server = TestServer::start();
    for path in PLATFORM_PATHS {
        let body = json!([signed(json!({"stock_id": "x"}))]).to_string();
        expect(&post_raw(server.addr, path, body.as_bytes()), 40002);
    }
}

#[test]
fn json_scalar_bodies_are_refused_with_40002() {
    let server = TestServer::start();
    for body in [&b"null"[..], b"42", b"\"text\"", b"true"] {
        expect(&post_raw(server.addr, "/sp/coupon/receive", body), 40002);
    }
}

#[test]
fn empty_body_is_refused_with_40002() {
    let server = TestServer::start();
    for path in PLATFORM_PATHS {
        expect(&post_raw(server.addr, path, b""), 40002);
    }
}

#[test]
fn non_utf8_body_is_refused_with_40002() {
    let server = TestServer::start();
    for body in [
        &[0xff, 0xfe, 0x00, 0x7b][..],
        b"{\"stock_id\": \"\xc3\x28\"}",
        b"{\"stock_id\": \"\xed\xa0\x80\"}",
    ] {
        for path in PLATFORM_PATHS {
            expect(&post_raw(server.addr, path, body), 40002);
        }
    }
    assert_alive(&server);
}

#[test]
fn lone_surrogate_escape_is_refused_with_40002() {
    let server = TestServer::start();
    let a = post_raw(
        server.addr,
        "/sp/stock/query",
        br#"{"stock_id": "\ud800", "api_key": "x"}"#,
    );
    expect(&a, 40002);
}

#[test]
fn deeply_nested_json_is_refused_with_40002_without_crashing() {
    let server = TestServer::start();
    let depth = 30_000;
    let mut body = String::from("{\"x\":");
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push('}');
    assert!(body.len() < 64 * 1024);
    expect(
        &post_raw(server.addr, "/sp/coupon/receive", body.as_bytes()),
        40002,
    );
    assert_alive(&server);
}

#[test]
fn nesting_within_the_parser_limit_in_a_signed_field_is_handled() {
    let (server, s, _) = with_coupon();
    // 100 levels: within serde_json's limit of 128, deep enough to exercise signing.
    let mut nested = json!("leaf");
    for _ in 0..50 {
        nested = json!({ "n": [nested] });
    }
    let body = signed(json!({"stock_id": s, "unknown_nested": nested}));
    expect(&server.client().post("/sp/stock/query", &body), 0);
}

// ---------------------------------------------------------------- wrong types

#[test]
fn string_where_an_integer_is_expected_is_refused_with_40001_naming_the_field() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    let a = client.post(
        "/sp/coupon/receive",
        &with_field(&claim, "app_channel_id", Some(json!("1"))),
    );
    expect_invalid_saying(&a, "app_channel_id", "must be an integer");
    let deact = valid_fields("/sp/coupon/deactivate", &s, &id);
    let a = client.post(
        "/sp/coupon/deactivate",
        &with_field(&deact, "coupon_status", Some(json!("3"))),
    );
    expect_invalid_saying(&a, "coupon_status", "must be an integer");
}

#[test]
fn integer_where_a_string_is_expected_is_refused_with_40001_naming_the_field() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    for field in [
        "user_code",
        "stock_id",
        "request_id",
        "mobile_phone",
        "extra",
    ] {
        let a = client.post(
            "/sp/coupon/receive",
            &with_field(&claim, field, Some(json!(13911112222_i64))),
        );
        expect_invalid_saying(&a, field, "must be a string");
    }
    let deact = valid_fields("/sp/coupon/deactivate", &s, &id);
    let a = client.post(
        "/sp/coupon/deactivate",
        &with_field(&deact, "coupon_id", Some(json!(id.parse::<u64>().unwrap()))),
    );
    expect_invalid_saying(&a, "coupon_id", "must be a string");
}

#[test]
fn object_where_a_string_is_expected_is_refused_with_40001_naming_the_field() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let query = valid_fields("/sp/stock/query", &s, &id);
    let a = client.post(
        "/sp/stock/query",
        &with_field(&query, "stock_id", Some(json!({"stock_id": s}))),
    );
    expect_invalid_saying(&a, "stock_id", "must be a string");
    let deact = valid_fields("/sp/coupon/deactivate", &s, &id);
    let a = client.post(
        "/sp/coupon/deactivate",
        &with_field(&deact, "reason", Some(json!({"text": "x"}))),
    );
    expect_invalid_saying(&a, "reason", "must be a string");
}

#[test]
fn array_where_a_string_is_expected_is_refused_with_40001_naming_the_field() {
    let (server, s, id) = with_coupon();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    let a = server.client().post(
        "/sp/coupon/receive",
        &with_field(&claim, "request_id", Some(json!(["r1"]))),
    );
    expect_invalid_saying(&a, "request_id", "must be a string");
}

#[test]
fn fraction_bool_or_object_where_an_integer_is_expected_is_refused_with_40001() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    for bad in [json!(1.5), json!(true), json!({"id": 1}), json!([1])] {
        let a = client.post(
            "/sp/coupon/receive",
            &with_field(&claim, "app_channel_id", Some(bad)),
        );
        expect_invalid_saying(&a, "app_channel_id", "must be an integer");
    }
}

#[test]
fn integer_out_of_range_is_refused_with_40001_naming_the_field() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    for bad in [json!(-1), json!(10_000_000_000_i64), json!(u64::MAX)] {
        let a = client.post(
            "/sp/coupon/receive",
            &with_field(&claim, "app_channel_id", Some(bad)),
        );
        expect_invalid_saying(&a, "app_channel_id", "");
    }
}

#[test]
fn coupons_that_is_not_an_array_is_refused_with_40001_naming_coupons() {
    let (server, s, id) = with_coupon();
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(
            &fields,
            "coupons",
            Some(json!({"stock_id": s, "coupon_id": id})),
        ),
    );
    expect_invalid_saying(&a, "coupons", "must be an array");
}

#[test]
fn coupons_item_that_is_not_an_object_is_refused_with_40001_naming_the_item() {
    let (server, s, id) = with_coupon();
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(&fields, "coupons", Some(json!([id]))),
    );
    expect_invalid_saying(&a, "coupons[0]", "must be an object");
}

#[test]
fn coupons_item_field_of_the_wrong_type_is_refused_with_40001_naming_its_path() {
    let (server, s, id) = with_coupon();
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(
            &fields,
            "coupons",
            Some(json!([{"stock_id": s, "coupon_id": id}, {"stock_id": s, "coupon_id": 7}])),
        ),
    );
    expect_invalid_saying(&a, "coupons[1].coupon_id", "must be a string");
}

#[test]
fn api_key_that_is_not_a_string_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let body = signed(json!({"stock_id": "x", "api_key": 12345}));
    expect_invalid_saying(
        &server.client().post("/sp/stock/query", &body),
        "api_key",
        "must be a string",
    );
}

#[test]
fn timestamp_that_is_not_unix_seconds_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    for bad in [
        json!("yesterday"),
        json!({"s": 1}),
        json!(1.5e3),
        json!("1e9"),
    ] {
        let body = signed(json!({"stock_id": "x", "timestamp": bad}));
        expect_invalid_saying(
            &client.post("/sp/stock/query", &body),
            "timestamp",
            "unix seconds",
        );
    }
}

#[test]
fn extreme_timestamps_are_refused_without_overflow() {
    let server = TestServer::start();
    let client = server.client();
    for t in [
        json!(i64::MIN),
        json!(i64::MAX),
        json!(i64::MIN.to_string()),
        json!(i64::MAX.to_string()),
    ] {
        let body = signed(json!({"stock_id": "x", "timestamp": t}));
        let a = client.post("/sp/stock/query", &body);
        expect(&a, 40103);
    }
    assert_alive(&server);
}

#[test]
fn timestamp_whose_distance_from_now_is_i64_min_is_refused_with_40103() {
    let server = TestServer::start();
    let client = server.client();
    let now_s = coupon_ledger::domain::time::now_ms() / 1000;
    // ts − now = i64::MIN for one of these, whatever second the server reads.
    for k in 0..3 {
        let body = signed(json!({"stock_id": "x", "timestamp": i64::MIN + now_s + k}));
        let a = client.post("/sp/stock/query", &body);
        expect(&a, 40103);
    }
    assert_alive(&server);
}

#[test]
fn sign_that_is_not_a_string_is_refused_with_40102() {
    let server = TestServer::start();
    let mut body = signed(json!({"stock_id": "x"}));
    body["sign"] = json!(12345);
    expect(&server.client().post("/sp/stock/query", &body), 40102);
}

// ---------------------------------------------------------------- maximum lengths (seed 最大长度)

#[test]
fn stock_id_of_31_characters_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let a = server
        .client()
        .call("/sp/stock/query", json!({"stock_id": "s".repeat(31)}));
    expect_invalid_saying(&a, "stock_id", "longer than 30 characters");
}

#[test]
fn stock_id_of_30_characters_passes_validation() {
    let server = TestServer::start();
    let a = server
        .client()
        .call("/sp/stock/query", json!({"stock_id": "s".repeat(30)}));
    expect(&a, 40401);
}

#[test]
fn user_code_of_33_characters_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    let a = server.client().post(
        "/sp/coupon/receive",
        &with_field(&claim, "user_code", Some(json!("u".repeat(33)))),
    );
    expect_invalid_saying(&a, "user_code", "longer than 32 characters");
}

#[test]
fn request_id_of_33_characters_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    let a = server.client().post(
        "/sp/coupon/receive",
        &with_field(&claim, "request_id", Some(json!("r".repeat(33)))),
    );
    expect_invalid_saying(&a, "request_id", "longer than 32 characters");
}

#[test]
fn extra_of_129_characters_is_refused_with_40001_naming_it_on_every_path() {
    let (server, s, id) = with_coupon();
    for path in PLATFORM_PATHS {
        let fields = valid_fields(path, &s, &id);
        let a = server.client().post(
            path,
            &with_field(&fields, "extra", Some(json!("e".repeat(129)))),
        );
        expect_invalid_saying(&a, "extra", "longer than 128 characters");
    }
}

#[test]
fn reason_of_16_characters_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    for path in ["/sp/coupon/deactivate", "/sp/coupon/batch-deactivate"] {
        let fields = valid_fields(path, &s, &id);
        let a = server.client().post(
            path,
            &with_field(&fields, "reason", Some(json!("退".repeat(16)))),
        );
        expect_invalid_saying(&a, "reason", "longer than 15 characters");
    }
}

#[test]
fn mobile_phone_of_12_digits_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    let a = server.client().post(
        "/sp/coupon/receive",
        &with_field(&claim, "mobile_phone", Some(json!("139111122223"))),
    );
    expect_invalid_saying(&a, "mobile_phone", "longer than 11 characters");
}

#[test]
fn coupon_id_of_33_characters_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    let deact = valid_fields("/sp/coupon/deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/deactivate",
        &with_field(&deact, "coupon_id", Some(json!("1".repeat(33)))),
    );
    expect_invalid_saying(&a, "coupon_id", "longer than 32 characters");
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(
            &fields,
            "coupons",
            Some(json!([{"stock_id": s, "coupon_id": "1".repeat(33)}])),
        ),
    );
    expect_invalid_saying(&a, "coupons[0].coupon_id", "longer than 32 characters");
}

#[test]
fn fields_at_their_maximum_length_counted_in_characters_are_accepted() {
    let (server, s, id) = with_coupon();
    let client = server.client();
    let claim = json!({"app_channel_id": 1, "user_code": "用".repeat(32), "stock_id": s,
        "request_id": "请".repeat(32), "mobile_phone": "13911112222", "extra": "扩".repeat(128)});
    expect(&client.call("/sp/coupon/receive", claim), 0);
    let deact = valid_fields("/sp/coupon/deactivate", &s, &id);
    let a = client.post(
        "/sp/coupon/deactivate",
        &with_field(&deact, "reason", Some(json!("退".repeat(15)))),
    );
    expect(&a, 0);
}

// ---------------------------------------------------------------- missing fields

#[test]
fn each_missing_required_field_is_refused_with_40001_naming_it() {
    let (server, s, id) = with_coupon();
    let required: [(&str, &[&str]); 4] = [
        ("/sp/stock/query", &["stock_id"]),
        (
            "/sp/coupon/receive",
            &["app_channel_id", "user_code", "stock_id", "request_id"],
        ),
        (
            "/sp/coupon/deactivate",
            &[
                "app_channel_id",
                "user_code",
                "stock_id",
                "coupon_id",
                "coupon_status",
            ],
        ),
        (
            "/sp/coupon/batch-deactivate",
            &["app_channel_id", "user_code", "coupons", "coupon_status"],
        ),
    ];
    for (path, fields) in required {
        let valid = valid_fields(path, &s, &id);
        for field in fields {
            let a = server.client().post(path, &with_field(&valid, field, None));
            expect_invalid_saying(&a, field, "required");
        }
    }
}

#[test]
fn null_or_empty_required_field_counts_as_missing() {
    let (server, s, id) = with_coupon();
    let claim = valid_fields("/sp/coupon/receive", &s, &id);
    for empty in [Value::Null, json!("")] {
        let a = server.client().post(
            "/sp/coupon/receive",
            &with_field(&claim, "user_code", Some(empty)),
        );
        expect_invalid_saying(&a, "user_code", "required");
    }
}

#[test]
fn missing_coupon_item_field_is_refused_with_40001_naming_its_path() {
    let (server, s, id) = with_coupon();
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(&fields, "coupons", Some(json!([{"coupon_id": id}]))),
    );
    expect_invalid_saying(&a, "coupons[0].stock_id", "required");
}

#[test]
fn missing_common_fields_are_refused() {
    let server = TestServer::start();
    let client = server.client();
    let mut no_key = signed(json!({"stock_id": "x"}));
    no_key.as_object_mut().unwrap().remove("api_key");
    expect_invalid_saying(
        &client.post("/sp/stock/query", &no_key),
        "api_key",
        "required",
    );
    // The nonce and timestamp are checked after the sign; sign the body without them.
    for field in ["nonce", "timestamp"] {
        let mut fields = serde_json::Map::new();
        fields.insert("stock_id".into(), json!("x"));
        fields.insert("api_key".into(), json!(KEY));
        fields.insert("seq_id".into(), json!("q"));
        fields.insert(
            "timestamp".into(),
            json!((coupon_ledger::domain::time::now_ms() / 1000).to_string()),
        );
        fields.insert("nonce".into(), json!(unique("n")));
        fields.remove(field);
        let sign =
            coupon_ledger::sign::sign(&fields, &coupon_ledger::sign::SignRule::default(), SECRET);
        fields.insert("sign".into(), json!(sign));
        let a = client.post("/sp/stock/query", &Value::Object(fields));
        expect_invalid_saying(&a, field, "required");
    }
}

#[test]
fn batch_of_eleven_coupons_is_refused_with_40001_naming_coupons() {
    let (server, s, id) = with_coupon();
    let items: Vec<Value> = (0..11)
        .map(|i| json!({"stock_id": s, "coupon_id": if i == 0 { id.clone() } else { format!("{i}") }}))
        .collect();
    let fields = valid_fields("/sp/coupon/batch-deactivate", &s, &id);
    let a = server.client().post(
        "/sp/coupon/batch-deactivate",
        &with_field(&fields, "coupons", Some(json!(items))),
    );
    expect_invalid_saying(&a, "coupons", "1 to 10");
}

#[test]
fn unknown_keys_are_ignored() {
    let (server, s, id) = with_coupon();
    let mut claim = valid_fields("/sp/coupon/receive", &s, &id);
    claim["user_code "] = json!("someone-else");
    claim["surprise"] = json!({"deep": [1, 2, {"x": null}]});
    let v = expect(&server.client().call("/sp/coupon/receive", claim), 0);
    assert_eq!(v["data"]["coupon_status"], 1);
}

// ---------------------------------------------------------------- sizes and framing

#[test]
fn body_over_64_kib_is_refused_with_413_and_41300() {
    let server = TestServer::start();
    let body = vec![b' '; 64 * 1024 + 1];
    let head = format!(
        "POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let a = send_tolerant(server.addr, head.as_bytes(), &body);
    expect_http(&a, 413, 41300);
    assert_alive(&server);
}

#[test]
fn body_of_exactly_64_kib_is_accepted() {
    let (server, s, _) = with_coupon();
    let fields = |pad: usize| {
        signed(
            json!({"stock_id": s, "padding": "p".repeat(pad), "nonce": "fixed-nonce",
            "seq_id": "q", "timestamp": (coupon_ledger::domain::time::now_ms() / 1000).to_string()}),
        )
    };
    let base = fields(1).to_string().len() - 1;
    let body = fields(64 * 1024 - base).to_string();
    assert_eq!(body.len(), 64 * 1024);
    let a = post_raw(server.addr, "/sp/stock/query", body.as_bytes());
    expect(&a, 0);
}

#[test]
fn huge_declared_content_length_is_413_and_the_server_still_answers() {
    let server = TestServer::start();
    let head = b"POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 200000000000000000\r\n\r\n";
    let a = send_tolerant(server.addr, head, b"");
    expect_http(&a, 413, 41300);
    let a = send_tolerant(server.addr, head, b"{\"partial\":");
    expect_http(&a, 413, 41300);
    assert_alive(&server);
}

#[test]
fn malformed_http_is_400_with_a_json_code() {
    let server = TestServer::start();
    for head in [
        &b"POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n"[..],
        b"POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ] {
        let a = send_tolerant(server.addr, head, b"");
        expect_http(&a, 400, 40000);
    }
    assert_alive(&server);
}

#[test]
fn chunked_signed_claim_is_accepted() {
    let (server, s, _) = with_coupon();
    let body = signed(
        json!({"app_channel_id": 1, "user_code": "u2", "stock_id": s,
        "request_id": unique("r")}),
    )
    .to_string();
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    let mut raw = Vec::new();
    raw.extend_from_slice(
        b"POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for part in [a, b] {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = send_tolerant(server.addr, &raw, b"");
    expect(&answer, 0);
}

#[test]
fn unknown_path_is_404_with_code_40400() {
    let server = TestServer::start();
    for (method, path) in [
        ("POST", "/sp/coupon/nothing"),
        ("GET", "/"),
        ("POST", "/sp/stock/query/extra"),
        ("GET", "/%ff%fe"),
    ] {
        let a = raw_request(server.addr, method, path, &[], b"{}");
        expect_http(&a, 404, 40400);
    }
}

#[test]
fn wrong_method_on_a_platform_path_is_405_with_code_40500() {
    let server = TestServer::start();
    for path in PLATFORM_PATHS {
        for method in ["GET", "PUT", "DELETE"] {
            let a = raw_request(server.addr, method, path, &[], b"");
            expect_http(&a, 405, 40500);
            assert_eq!(a.header("Allow"), Some("POST"), "{method} {path}");
        }
    }
}

#[test]
fn header_flood_is_431_with_a_json_code() {
    let server = TestServer::start();
    let mut head = String::from("POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\n");
    head.push_str(&format!("X-Flood: {}\r\n", "a".repeat(32 * 1024)));
    head.push_str("Content-Length: 2\r\n\r\n");
    let a = send_tolerant(server.addr, head.as_bytes(), b"{}");
    expect_http(&a, 431, 43100);
    assert_alive(&server);
}

#[test]
fn too_many_header_fields_is_431_with_a_json_code() {
    let server = TestServer::start();
    let mut head = String::from("POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("Content-Length: 2\r\n\r\n");
    let a = send_tolerant(server.addr, head.as_bytes(), b"{}");
    expect_http(&a, 431, 43100);
    assert_alive(&server);
}

#[test]
fn idle_connections_do_not_stop_a_signed_claim() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let a = client.claim(&s, "u1", &unique("r"));
    expect(&a, 0);
    // The newest idle ones are still open (not refused with 503); one address
    // keeps at most 256, so the oldest made room for them.
    let mut first = &idle[idle.len() - 1];
    first.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    match first.read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("an idle connection was answered or closed: {other:?}"),
    }
    drop(idle);
    assert_alive(&server);
}

#[test]
fn a_hostile_request_does_not_spoil_a_kept_alive_connection_for_valid_ones() {
    let (server, s, _) = with_coupon();
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let send = |conn: &mut TcpStream, body: &[u8]| {
        let head = format!(
            "POST /sp/stock/query HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        read_answer(conn)
    };
    expect(&send(&mut conn, b"[1,2,3]"), 40002);
    expect(&send(&mut conn, &[0xff; 10]), 40002);
    let good = signed(json!({ "stock_id": s })).to_string();
    expect(&send(&mut conn, good.as_bytes()), 0);
}

// ---------------------------------------------------------------- admin input

#[test]
fn admin_bodies_that_are_not_json_objects_are_refused_with_40002() {
    let (server, s, id) = with_coupon();
    let auth = format!("Bearer {ADMIN}");
    let targets = [
        ("POST", "/admin/stocks".to_string()),
        ("PATCH", format!("/admin/stocks/{s}")),
        ("POST", format!("/admin/stocks/{s}/status")),
        ("POST", "/admin/coupons".to_string()),
        ("POST", format!("/admin/coupons/{id}/redeem")),
        ("POST", format!("/admin/coupons/{id}/unredeem")),
    ];
    for (method, path) in &targets {
        for body in [&b"[]"[..], b"{", &[0xc3, 0x28], b""] {
            let a = raw_request(server.addr, method, path, &[("Authorization", &auth)], body);
            expect(&a, 40002);
        }
    }
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn admin_query_parameters_that_are_not_integers_are_refused_with_40001_naming_them() {
    let server = TestServer::start();
    let client = server.client();
    for (q, field) in [
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("after=1e3", "after"),
        ("status=x", "status"),
    ] {
        let a = client.admin("GET", &format!("/admin/coupons?{q}"), None);
        expect_invalid_saying(&a, field, "must be an integer");
    }
}
