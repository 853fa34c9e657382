//! Numbers as written: third-party JSON keeps every number's text from import
//! to the prepare answer, signatures are checked over the numbers as sent, and
//! fen fields take only integer literals.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

const DEAL: &str = r#"{"dealId": "1316147453", "dealValue": 198.00, "dealPrice": 12.50, "big": 12345678901234567.89, "huge": 123456789012345678901234567890, "neg": -0.10, "list": [1.0, 2.50]}"#;
/// `DEAL` as the prepare answer carries it: compact, keys sorted, `count` added.
const DEAL_OUT: &str = r#""mtdz":{"big":12345678901234567.89,"count":3,"dealId":"1316147453","dealPrice":12.50,"dealValue":198.00,"huge":123456789012345678901234567890,"list":[1.0,2.50],"neg":-0.10}"#;

fn record(coupon_no: &str) -> String {
    format!(
        r#"{{"type": "mtdz", "couponNo": "{coupon_no}", "shopIds": [147], "couponName": "数字券",
        "valueFen": 19800, "priceFen": 1250, "count": 3,
        "validityBegin": "2025-05-14T00:00:00+08:00", "validityEnd": "2099-12-31T23:59:59+08:00",
        "templates": [{{"templateId": "T1", "couponType": 3, "rate": 0.50}}], "deal": {DEAL}}}"#
    )
}

fn prepare_text(c: &Client, coupon_no: &str) -> String {
    let body = signed_raw(&[
        (
            "method",
            r#""allinpay.shopoint.thirdCouponService.prepare""#,
        ),
        ("version", r#""1.0""#),
        ("type", r#""mtdz""#),
        ("couponNo", &format!("\"{coupon_no}\"")),
        ("shopId", "147"),
    ]);
    let a = post_text(c.addr, "/gateway", &body);
    assert_eq!(a.status, 200, "{}", show(&a));
    assert_eq!(a.json()["code"], 0, "{}", show(&a));
    String::from_utf8(a.body).unwrap()
}

fn assert_verbatim(answer: &str) {
    assert!(answer.contains(DEAL_OUT), "deal rewritten: {answer}");
    assert!(
        answer.contains(r#""couponTemplateList":[{"couponType":3,"rate":0.50,"templateId":"T1"}]"#),
        "templates rewritten: {answer}"
    );
    assert!(answer.contains(r#""couponValue":"198""#), "{answer}");
    assert!(answer.contains(r#""couponBuyPrice":"12.5""#), "{answer}");
}

#[test]
fn admin_import_keeps_deal_numbers_byte_for_byte_to_the_prepare_answer() {
    let server = TestServer::start();
    let c = server.client();
    let a = admin_text(
        c.addr,
        "POST",
        "/admin/vouchers",
        &format!("[{}]", record("N1")),
    );
    expect(&a, 0);
    assert_verbatim(&prepare_text(&c, "N1"));
    let shown = c.admin("GET", "/admin/vouchers/mtdz/N1", None);
    let text = String::from_utf8(shown.body).unwrap();
    assert!(
        text.contains(r#""dealPrice":12.50,"dealValue":198.00"#),
        "{text}"
    );
    assert!(text.contains(r#""big":12345678901234567.89"#), "{text}");
}

#[test]
fn cli_import_keeps_deal_numbers_byte_for_byte_to_the_prepare_answer() {
    let mut server = TestServer::start();
    let dir = TempDir::new();
    let file = dir.path().join("vouchers.jsonl");
    std::fs::write(&file, format!("{}\n", record("L1").replace('\n', " "))).unwrap();
    // The CLI writes only to a database no server holds.
    server.while_stopped(|db| {
        let out = Command::new(bin())
            .args(["voucher", "import"])
            .arg(&file)
            .arg("--db")
            .arg(db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert_verbatim(&prepare_text(&server.client(), "L1"));
}

fn query_fields(stock_id: &str) -> Vec<(&'static str, String)> {
    vec![("stock_id", format!("\"{stock_id}\""))]
}

fn signed_query(stock_id: &str, extra: &[(&str, &str)]) -> String {
    let base = query_fields(stock_id);
    let mut fields: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fields.extend_from_slice(extra);
    signed_raw(&fields)
}

#[test]
fn a_body_signed_over_numbers_as_written_is_accepted() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let id = sid(&stock);
    for extra in [
        vec![("amount", "1.50")],
        vec![("order_no", "12345678901234567890")],
        vec![("huge", "-123456789012345678901234567890.000")],
        vec![("ratio", "1E+3"), ("tiny", "5e-7")],
        vec![("amount", "1.50"), ("order_no", "12345678901234567890")],
    ] {
        let body = signed_query(&id, &extra);
        expect(&post_text(c.addr, "/sp/stock/query", &body), 0);
    }
    // Nested: keys sorted, numbers still as written, strings unescaped UTF-8.
    let body = signed_raw_as(
        KEY,
        SECRET,
        &[
            ("stock_id", &format!("\"{id}\""), &id),
            (
                "attach",
                r#"{"b": 1.50, "a": [12345678901234567890, "券"]}"#,
                r#"{"a":[12345678901234567890,"券"],"b":1.50}"#,
            ),
        ],
    );
    expect(&post_text(c.addr, "/sp/stock/query", &body), 0);
}

#[test]
fn a_sign_over_respelled_numbers_or_a_wrong_secret_is_refused() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let id = sid(&stock);
    let id_raw = format!("\"{id}\"");
    // Signed as `1.5` but sent as `1.50`: the server hashes what was sent.
    let respelled = signed_raw_as(
        KEY,
        SECRET,
        &[("stock_id", &id_raw, &id), ("amount", "1.50", "1.5")],
    );
    expect(&post_text(c.addr, "/sp/stock/query", &respelled), 40102);
    let rounded = signed_raw_as(
        KEY,
        SECRET,
        &[
            ("stock_id", &id_raw, &id),
            ("order_no", "12345678901234567890", "12345678901234567000"),
        ],
    );
    expect(&post_text(c.addr, "/sp/stock/query", &rounded), 40102);
    let wrong = signed_raw_as(
        KEY,
        "not-the-secret",
        &[("stock_id", &id_raw, &id), ("amount", "1.50", "1.50")],
    );
    expect(&post_text(c.addr, "/sp/stock/query", &wrong), 40102);
    let tampered = signed_query(&id, &[("amount", "1.50")]).replace("1.50", "1.5");
    expect(&post_text(c.addr, "/sp/stock/query", &tampered), 40102);
}

#[test]
fn the_gateway_accepts_a_body_signed_over_numbers_as_written() {
    let server = TestServer::start();
    let c = server.client();
    expect(
        &admin_text(
            c.addr,
            "POST",
            "/admin/vouchers",
            &format!("[{}]", record("G1")),
        ),
        0,
    );
    let body = signed_raw(&[
        (
            "method",
            r#""allinpay.shopoint.thirdCouponService.prepare""#,
        ),
        ("type", r#""mtdz""#),
        ("couponNo", r#""G1""#),
        ("shopId", "147"),
        ("posAmount", "12.50"),
        ("posSerial", "98765432109876543210"),
    ]);
    let a = post_text(c.addr, "/gateway", &body);
    assert_eq!(a.json()["code"], 0, "{}", show(&a));
}

/// A JSON number with exactly this text.
fn num(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

const NOT_FEN: [&str; 7] = [
    "1.5",
    "100.0",
    "1e3",
    "99999999999999999999",
    "1000000000000000000",
    "-1",
    "-0.0",
];

#[test]
fn voucher_fen_fields_take_only_integer_literals() {
    let server = TestServer::start();
    let c = server.client();
    for field in ["valueFen", "priceFen"] {
        for bad in NOT_FEN {
            let mut rec: Value = serde_json::from_str(&record(&unique("F"))).unwrap();
            rec[field] = num(bad);
            let a = c.admin("POST", "/admin/vouchers", Some(json!([rec])));
            expect_invalid(&a, &format!("[0].{field}"));
        }
    }
    let mut rec: Value = serde_json::from_str(&record("F-ok")).unwrap();
    rec["valueFen"] = num("-0");
    expect(&c.admin("POST", "/admin/vouchers", Some(json!([rec]))), 0);
}

#[test]
fn stock_amounts_take_only_integer_literals() {
    let server = TestServer::start();
    let c = server.client();
    for (block, field) in [
        ("fixed_normal_coupon", "coupon_amount"),
        ("fixed_normal_coupon", "transaction_minimum"),
    ] {
        for bad in NOT_FEN {
            let mut stock = stock_fields(&unique("s"));
            stock[block][field] = num(bad);
            let a = c.admin("POST", "/admin/stocks", Some(stock));
            expect_invalid(&a, &format!("{block}.{field}"));
        }
    }
    for field in ["discount_amount_max", "transaction_minimum"] {
        for bad in NOT_FEN {
            let mut stock = stock_fields(&unique("s"));
            stock["fixed_normal_coupon"] = Value::Null;
            stock["coupon_type"] = json!(2);
            stock["discount_coupon"] = json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000});
            stock["discount_coupon"][field] = num(bad);
            let a = c.admin("POST", "/admin/stocks", Some(stock));
            expect_invalid(&a, &format!("discount_coupon.{field}"));
        }
    }
}

#[test]
fn order_amount_takes_only_integer_literals() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let a = c.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": sid(&stock), "user_code": "u1", "app_channel_id": 1, "request_id": unique("r")})),
    );
    let coupon_id = expect(&a, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in NOT_FEN {
        let a = c.admin(
            "POST",
            &format!("/admin/coupons/{coupon_id}/redeem"),
            Some(json!({"order_id": unique("o"), "order_amount": num(bad)})),
        );
        expect_invalid(&a, "order_amount");
    }
    let a = c.admin(
        "POST",
        &format!("/admin/coupons/{coupon_id}/redeem"),
        Some(json!({"order_id": unique("o"), "order_amount": num("20000")})),
    );
    expect(&a, 0);
    assert_checked(&server);
}

#[test]
fn the_sign_subcommand_signs_numbers_as_written() {
    let dir = TempDir::new();
    let file = dir.path().join("numbers.json");
    std::fs::write(
        &file,
        r#"{"api_key": "K", "order_amount": 1.50, "order_no": 12345678901234567890, "ratio": 1E+3, "attach": {"price": 12.50, "name": "代驾"}}"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sign", "--secret", "S"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = r#"api_key=K&attach={"name":"代驾","price":12.50}&order_amount=1.50&order_no=12345678901234567890&ratio=1E+3&key=S"#;
    assert!(
        text.contains(&format!("string-to-sign: {expected}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sign: {}\n",
            coupon_ledger::sign::md5_upper(expected)
        )),
        "{text}"
    );
}
