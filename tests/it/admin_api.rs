//! The operator's admin HTTP API for stocks and coupons, over real HTTP
//! with a bearer token.

use crate::common::*;
use coupon_ledger::domain::time::now_ms;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

/// Asserts success and returns `data`.
fn ok(a: &Answer) -> Value {
    let v = expect(a, 0);
    assert_eq!(v["message"], "successful");
    v["data"].clone()
}

/// The default test stock (running 满减, 10 元 off from 100 元) with `overrides`.
fn stock_body(overrides: Value) -> Value {
    let mut stock = stock_fields(&unique("s"));
    if let (Value::Object(m), Value::Object(o)) = (&mut stock, overrides) {
        for (k, v) in o {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
    }
    stock
}

fn create(client: &Client, body: Value) -> Answer {
    client.admin("POST", "/admin/stocks", Some(body))
}

fn get_stock(client: &Client, id: &str) -> Value {
    ok(&client.admin("GET", &format!("/admin/stocks/{id}"), None))
}

fn patch(client: &Client, id: &str, body: Value) -> Answer {
    client.admin("PATCH", &format!("/admin/stocks/{id}"), Some(body))
}

fn issue_as(client: &Client, stock_id: &str, user: &str, request_id: &str) -> Answer {
    client.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": stock_id, "user_code": user, "app_channel_id": 1, "request_id": request_id})),
    )
}

fn issue(client: &Client, stock_id: &str, user: &str) -> String {
    ok(&issue_as(client, stock_id, user, &unique("r")))["coupon_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn unredeem(client: &Client, coupon_id: &str, order_id: &str) -> Answer {
    client.admin(
        "POST",
        &format!("/admin/coupons/{coupon_id}/unredeem"),
        Some(json!({ "order_id": order_id })),
    )
}

fn journal(client: &Client, id: &str) -> Vec<Value> {
    ok(&client.admin("GET", &format!("/admin/coupons/{id}"), None))["journal"]
        .as_array()
        .unwrap()
        .clone()
}

/// Expires (3) or deactivates (4) a coupon of channel 1, asserting success.
fn settle(client: &Client, stock_id: &str, user: &str, coupon_id: &str, to: i64) {
    expect(&deactivate(client, stock_id, user, coupon_id, to), 0);
}

/// A running stock of `coupon_type` with its amount block.
fn typed_stock(client: &Client, coupon_type: i64, block: Value) -> String {
    let name = if coupon_type == 3 {
        "discount_coupon"
    } else {
        "fixed_normal_coupon"
    };
    let mut body = stock_body(json!({"coupon_type": coupon_type, "fixed_normal_coupon": null}));
    body[name] = block;
    sid(&ok(&create(client, body)))
}

/// Issues one coupon of a fresh stock and redeems it against `amount`.
fn redeem_fresh(client: &Client, coupon_type: i64, block: Value, amount: i64) -> Answer {
    let s = typed_stock(client, coupon_type, block);
    let id = issue(client, &s, "u1");
    redeem(client, &id, &unique("o"), amount)
}

// ---------------------------------------------------------------- create

#[test]
fn create_stock_answers_the_stock_with_zero_counts() {
    let server = TestServer::start();
    let client = server.client();
    let body = stock_body(json!({}));
    let before = now_ms();
    let d = ok(&create(&client, body.clone()));
    let after = now_ms();
    assert_eq!(
        keys(&d),
        sorted(STOCK_FIELDS.iter().copied().chain(["counts"]).collect())
    );
    // Every field as sent; the times are compared as instants below.
    for k in STOCK_FIELDS.iter().filter(|k| !k.ends_with("_time")) {
        assert_eq!(d[k], body[k], "{k}");
    }
    assert_eq!(
        ms(&d["available_begin_time"]),
        ms(&body["available_begin_time"])
    );
    assert_eq!(
        ms(&d["available_end_time"]),
        ms(&body["available_end_time"])
    );
    let t = ms(&d["create_time"]);
    assert!(before <= t && t <= after);
    assert_eq!(
        d["counts"],
        json!({"issued": 0, "available": 0, "used": 0, "expired": 0, "deactivated": 0})
    );
    assert_checked(&server);
}

#[test]
fn create_stock_without_stock_status_defaults_to_1() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&create(&client, stock_body(json!({"stock_status": null}))));
    assert_eq!(d["stock_status"], 1);
    assert_eq!(get_stock(&client, &sid(&d))["stock_status"], 1);
}

#[test]
fn created_full_reduction_stock_carries_only_the_fixed_block() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&create(
        &client,
        stock_body(json!({
            "coupon_type": 1,
            "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
            "discount_coupon": {"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}
        })),
    ));
    assert_eq!(d["coupon_type"], 1);
    assert_eq!(
        d["fixed_normal_coupon"],
        json!({"coupon_amount": 1000, "transaction_minimum": 10000})
    );
    assert!(d.get("discount_coupon").is_none(), "{d}");
}

#[test]
fn created_cut_to_stock_carries_only_the_fixed_block() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&create(
        &client,
        stock_body(json!({
            "coupon_type": 2,
            "fixed_normal_coupon": {"coupon_amount": 990, "transaction_minimum": 0},
            "discount_coupon": {"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}
        })),
    ));
    assert_eq!(d["coupon_type"], 2);
    assert_eq!(
        d["fixed_normal_coupon"],
        json!({"coupon_amount": 990, "transaction_minimum": 0})
    );
    assert!(d.get("discount_coupon").is_none(), "{d}");
}

#[test]
fn created_discount_stock_carries_only_the_discount_block() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&create(
        &client,
        stock_body(json!({
            "coupon_type": 3,
            "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
            "discount_coupon": {"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}
        })),
    ));
    assert_eq!(d["coupon_type"], 3);
    assert_eq!(
        d["discount_coupon"],
        json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000})
    );
    assert!(d.get("fixed_normal_coupon").is_none(), "{d}");
}

#[test]
fn create_discount_stock_without_its_block_is_refused_with_40001_naming_discount_coupon() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &create(&client, stock_body(json!({"coupon_type": 3}))),
        "discount_coupon",
    );
}

#[test]
fn create_discount_stock_with_percent_100_is_refused_with_40001_naming_discount_percent() {
    let server = TestServer::start();
    let client = server.client();
    let body = stock_body(json!({
        "coupon_type": 3,
        "discount_coupon": {"discount_amount_max": 1000, "discount_percent": 100, "transaction_minimum": 0}
    }));
    expect_invalid(&create(&client, body), "discount_coupon.discount_percent");
}

#[test]
fn create_stock_with_zero_coupon_amount_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let body =
        stock_body(json!({"fixed_normal_coupon": {"coupon_amount": 0, "transaction_minimum": 0}}));
    expect_invalid(&create(&client, body), "fixed_normal_coupon.coupon_amount");
}

#[test]
fn create_stock_of_unknown_type_is_refused_with_40001_naming_coupon_type() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &create(&client, stock_body(json!({"coupon_type": 4}))),
        "coupon_type",
    );
}

#[test]
fn create_stock_ending_before_it_begins_is_refused_with_40001_naming_available_end_time() {
    let server = TestServer::start();
    let client = server.client();
    let body = stock_body(json!({
        "available_begin_time": time_from_now(86_400),
        "available_end_time": time_from_now(3_600)
    }));
    expect_invalid(&create(&client, body), "available_end_time");
}

#[test]
fn create_stock_with_a_time_without_offset_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let body = stock_body(json!({"available_begin_time": "2020-07-20T13:29:35.120"}));
    expect_invalid(&create(&client, body), "available_begin_time");
}

#[test]
fn create_stock_with_a_21_character_name_is_refused_with_40001_naming_stock_name() {
    let server = TestServer::start();
    let client = server.client();
    let body = stock_body(json!({"stock_name": "代".repeat(21)}));
    expect_invalid(&create(&client, body), "stock_name");
}

#[test]
fn create_stock_with_an_unknown_status_is_refused_with_40001_naming_stock_status() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &create(&client, stock_body(json!({"stock_status": 6}))),
        "stock_status",
    );
}

#[test]
fn create_stock_that_is_not_json_is_refused_with_40002() {
    let server = TestServer::start();
    let auth = format!("Bearer {ADMIN}");
    let a = raw_request(
        server.addr,
        "POST",
        "/admin/stocks",
        &[("Authorization", &auth)],
        b"{not json",
    );
    expect(&a, 40002);
}

// ---------------------------------------------------------------- list and get

#[test]
fn list_stocks_shows_every_stock_with_counts_of_each_state() {
    let server = TestServer::start();
    let client = server.client();
    let busy = client.create_stock(json!({"max_coupons_per_user": 5}));
    let idle = client.create_stock(json!({}));
    let s = sid(&busy);
    let ids: Vec<String> = (0..5).map(|_| issue(&client, &s, "u1")).collect();
    expect(&redeem(&client, &ids[0], &unique("o"), 20000), 0);
    settle(&client, &s, "u1", &ids[1], 3);
    settle(&client, &s, "u1", &ids[2], 4);
    settle(&client, &s, "u1", &ids[3], 4);
    let d = ok(&client.admin("GET", "/admin/stocks", None));
    assert_eq!(keys(&d), vec!["stocks", "total"]);
    let stocks = d["stocks"].as_array().unwrap();
    assert_eq!(stocks.len(), 2);
    assert_eq!(d["total"], 2);
    let find = |id: &str| {
        stocks
            .iter()
            .find(|x| x["stock_id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    assert_eq!(
        find(&s)["counts"],
        json!({"issued": 5, "available": 1, "used": 1, "expired": 1, "deactivated": 2})
    );
    assert_eq!(
        find(&sid(&idle))["counts"],
        json!({"issued": 0, "available": 0, "used": 0, "expired": 0, "deactivated": 0})
    );
    assert_eq!(find(&s)["stock_name"], busy["stock_name"]);
    assert_checked(&server);
}

#[test]
fn get_stock_answers_the_stock_with_its_counts() {
    let server = TestServer::start();
    let client = server.client();
    let created = client.create_stock(json!({}));
    let s = sid(&created);
    issue(&client, &s, "u1");
    let d = get_stock(&client, &s);
    let mut without_counts = d.clone();
    without_counts.as_object_mut().unwrap().remove("counts");
    let mut created_without = created.clone();
    created_without.as_object_mut().unwrap().remove("counts");
    assert_eq!(without_counts, created_without);
    assert_eq!(
        d["counts"],
        json!({"issued": 1, "available": 1, "used": 0, "expired": 0, "deactivated": 0})
    );
}

#[test]
fn stock_with_a_non_ascii_id_is_reachable_by_its_percent_encoded_path() {
    let server = TestServer::start();
    let client = server.client();
    ok(&create(&client, stock_body(json!({"stock_id": "批次 01"}))));
    let d = ok(&client.admin("GET", "/admin/stocks/%E6%89%B9%E6%AC%A1%2001", None));
    assert_eq!(d["stock_id"], "批次 01");
}

#[test]
fn get_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    expect(&client.admin("GET", "/admin/stocks/no-such", None), 40401);
}

// ---------------------------------------------------------------- patch

#[test]
fn patch_before_the_first_issue_may_change_type_and_amounts() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let d = ok(&patch(
        &client,
        &s,
        json!({"coupon_type": 3, "discount_coupon":
            {"discount_amount_max": 500, "discount_percent": 80, "transaction_minimum": 0}}),
    ));
    assert_eq!(d["coupon_type"], 3);
    assert!(d.get("fixed_normal_coupon").is_none());
    assert_eq!(d["discount_coupon"]["discount_percent"], 80);
    assert_checked(&server);
}

#[test]
fn patch_after_the_first_issue_may_change_names_texts_and_end_time() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    issue(&client, &s, "u1");
    let end = time_from_now(2 * 365 * 86_400);
    let d = ok(&patch(
        &client,
        &s,
        json!({"stock_name": "新名字", "coupon_name": "新券名", "coupon_desc": "新描述",
               "instructions": "新说明", "available_end_time": end}),
    ));
    assert_eq!(d["stock_name"], "新名字");
    assert_eq!(d["coupon_name"], "新券名");
    assert_eq!(d["coupon_desc"], "新描述");
    assert_eq!(d["instructions"], "新说明");
    assert_eq!(ms(&d["available_end_time"]), ms(&json!(end)));
    assert_eq!(get_stock(&client, &s)["stock_name"], "新名字");
    assert_checked(&server);
}

#[test]
fn issued_coupon_keeps_the_window_it_was_issued_with_when_the_stock_end_changes() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let id = issue(&client, &s, "u1");
    ok(&patch(
        &client,
        &s,
        json!({"available_end_time": time_from_now(30 * 86_400)}),
    ));
    assert_eq!(
        coupon(&client, &id)["available_end_time"],
        stock["available_end_time"]
    );
    assert_checked(&server);
}

#[test]
fn patch_of_coupon_type_after_the_first_issue_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    issue(&client, &s, "u1");
    let a = patch(
        &client,
        &s,
        json!({"coupon_type": 2, "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000}}),
    );
    expect(&a, 40905);
    assert_eq!(get_stock(&client, &s)["coupon_type"], 1);
}

#[test]
fn patch_of_amounts_after_the_first_issue_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    issue(&client, &s, "u1");
    let a = patch(
        &client,
        &s,
        json!({"coupon_type": 1, "fixed_normal_coupon": {"coupon_amount": 2000, "transaction_minimum": 10000}}),
    );
    expect(&a, 40905);
    assert_eq!(
        get_stock(&client, &s)["fixed_normal_coupon"],
        json!({"coupon_amount": 1000, "transaction_minimum": 10000})
    );
    assert_checked(&server);
}

#[test]
fn patch_of_channel_app_start_or_lower_user_limit_after_the_first_issue_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    issue(&client, &s, "u1");
    for change in [
        json!({"app_channel_id": 2}),
        json!({"app_id": "wx-other"}),
        json!({"available_begin_time": time_from_now(-3600)}),
        json!({"max_coupons_per_user": 1}),
    ] {
        expect(&patch(&client, &s, change.clone()), 40905);
    }
    let d = ok(&patch(&client, &s, json!({"max_coupons_per_user": 3})));
    assert_eq!(d["max_coupons_per_user"], 3);
    assert_eq!(get_stock(&client, &s)["app_id"], "wx1111111111");
    assert_checked(&server);
}

#[test]
fn patch_of_amounts_alone_keeps_the_coupon_type() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let d = ok(&patch(
        &client,
        &s,
        json!({"fixed_normal_coupon": {"coupon_amount": 2000, "transaction_minimum": 5000}}),
    ));
    assert_eq!(d["coupon_type"], 1);
    assert_eq!(
        d["fixed_normal_coupon"],
        json!({"coupon_amount": 2000, "transaction_minimum": 5000})
    );
}

#[test]
fn patch_of_max_coupons_below_the_issued_count_is_refused_with_40001() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    issue(&client, &s, "u1");
    issue(&client, &s, "u2");
    expect_invalid(
        &patch(&client, &s, json!({"max_coupons": 1})),
        "max_coupons",
    );
    assert_eq!(get_stock(&client, &s)["max_coupons"], 100);
}

#[test]
fn patch_may_raise_max_coupons_after_the_first_issue() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons": 1})));
    issue(&client, &s, "u1");
    expect(&issue_as(&client, &s, "u2", &unique("r")), 40903);
    assert_eq!(
        ok(&patch(&client, &s, json!({"max_coupons": 2})))["max_coupons"],
        2
    );
    issue(&client, &s, "u2");
    assert_checked(&server);
}

#[test]
fn patch_to_end_before_begin_is_refused_with_40001_naming_available_end_time() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    expect_invalid(
        &patch(
            &client,
            &s,
            json!({"available_end_time": time_from_now(-2 * 86_400)}),
        ),
        "available_end_time",
    );
}

#[test]
fn patch_of_an_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    expect(
        &patch(&client, "no-such", json!({"stock_name": "x"})),
        40401,
    );
}

// ---------------------------------------------------------------- status transitions

#[test]
fn stock_status_follows_every_legal_transition() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"stock_status": 1})));
    for to in [2, 1, 3, 5, 3, 4] {
        let d = ok(&set_status(&client, &s, to));
        assert_eq!(d["stock_status"], to);
        assert_eq!(get_stock(&client, &s)["stock_status"], to);
    }
    assert_checked(&server);
}

#[test]
fn in_review_may_go_straight_to_running() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"stock_status": 2})));
    assert_eq!(ok(&set_status(&client, &s, 3))["stock_status"], 3);
}

#[test]
fn every_status_but_stopped_may_be_stopped() {
    let server = TestServer::start();
    let client = server.client();
    for from in [1, 2, 3, 5] {
        let s =
            sid(&client.create_stock(json!({"stock_status": if from == 5 { 3 } else { from }})));
        if from == 5 {
            ok(&set_status(&client, &s, 5));
        }
        assert_eq!(ok(&set_status(&client, &s, 4))["stock_status"], 4);
    }
    assert_checked(&server);
}

#[test]
fn stopped_stock_cannot_run_again_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    ok(&set_status(&client, &s, 4));
    for to in [1, 2, 3, 4, 5] {
        expect(&set_status(&client, &s, to), 40905);
    }
    assert_eq!(get_stock(&client, &s)["stock_status"], 4);
}

#[test]
fn running_stock_cannot_go_back_to_inactive_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    expect(&set_status(&client, &s, 1), 40905);
    expect(&set_status(&client, &s, 2), 40905);
    assert_eq!(get_stock(&client, &s)["stock_status"], 3);
}

#[test]
fn running_stock_cannot_become_running_again_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    expect(&set_status(&client, &s, 3), 40905);
}

#[test]
fn inactive_stock_cannot_be_paused_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"stock_status": 1})));
    expect(&set_status(&client, &s, 5), 40905);
}

#[test]
fn paused_stock_cannot_go_back_to_inactive_or_review_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    ok(&set_status(&client, &s, 5));
    expect(&set_status(&client, &s, 1), 40905);
    expect(&set_status(&client, &s, 2), 40905);
    assert_checked(&server);
}

#[test]
fn status_outside_1_to_5_is_refused_with_40001_naming_stock_status() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    expect_invalid(&set_status(&client, &s, 6), "stock_status");
    expect_invalid(
        &client.admin(
            "POST",
            &format!("/admin/stocks/{s}/status"),
            Some(json!({})),
        ),
        "stock_status",
    );
}

#[test]
fn status_of_an_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    expect(&set_status(&client, "no-such", 3), 40401);
}

#[test]
fn stopped_stock_cannot_be_edited_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    ok(&set_status(&client, &s, 4));
    expect(&patch(&client, &s, json!({"stock_name": "x"})), 40905);
}

// ---------------------------------------------------------------- issue

#[test]
fn issue_answers_the_coupon_with_its_holder() {
    let server = TestServer::start();
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let s = sid(&stock);
    let r = unique("r");
    let before = now_ms();
    let d = ok(&client.admin(
        "POST",
        "/admin/coupons",
        Some(
            json!({"stock_id": s, "user_code": "u1", "app_channel_id": 1,
                    "request_id": r, "mobile_phone": "13911112222"}),
        ),
    ));
    let after = now_ms();
    assert_eq!(
        keys(&d),
        sorted(vec![
            "app_id",
            "stock_id",
            "coupon_id",
            "coupon_type",
            "fixed_normal_coupon",
            "available_begin_time",
            "available_end_time",
            "receive_time",
            "coupon_status",
            "app_channel_id",
            "user_code",
            "mobile_phone",
            "request_id",
            "status_time",
            "usage_time"
        ])
    );
    assert_eq!(d["app_id"], stock["app_id"]);
    assert_eq!(d["stock_id"], json!(s));
    assert_eq!(d["coupon_type"], 1);
    assert_eq!(d["fixed_normal_coupon"], stock["fixed_normal_coupon"]);
    assert_eq!(d["available_begin_time"], stock["available_begin_time"]);
    assert_eq!(d["available_end_time"], stock["available_end_time"]);
    assert_eq!(d["coupon_status"], 1);
    assert_eq!(d["app_channel_id"], 1);
    assert_eq!(d["user_code"], "u1");
    assert_eq!(d["mobile_phone"], "139****2222");
    assert_eq!(d["request_id"], json!(r));
    assert_eq!(d["usage_time"], Value::Null);
    assert_eq!(d["status_time"], d["receive_time"]);
    let t = ms(&d["receive_time"]);
    assert!(before <= t && t <= after);
    let id = d["coupon_id"].as_str().unwrap();
    assert!(id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(coupon(&client, id), d);
    assert_checked(&server);
}

#[test]
fn issue_from_a_stock_not_running_is_refused_with_40901() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"stock_status": 1})));
    expect(&issue_as(&client, &s, "u1", &unique("r")), 40901);
}

#[test]
fn issue_from_an_unknown_stock_is_refused_with_40401() {
    let server = TestServer::start();
    let client = server.client();
    expect(&issue_as(&client, "no-such", "u1", &unique("r")), 40401);
}

#[test]
fn issue_after_the_stock_window_ended_is_refused_with_40902() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({
        "available_begin_time": time_from_now(-2 * 86_400),
        "available_end_time": time_from_now(-60)
    })));
    expect(&issue_as(&client, &s, "u1", &unique("r")), 40902);
}

#[test]
fn issue_beyond_max_coupons_is_refused_with_40903() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons": 1})));
    issue(&client, &s, "u1");
    expect(&issue_as(&client, &s, "u2", &unique("r")), 40903);
}

#[test]
fn issue_beyond_user_limit_is_refused_with_40904() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons_per_user": 1})));
    issue(&client, &s, "u1");
    expect(&issue_as(&client, &s, "u1", &unique("r")), 40904);
    assert_checked(&server);
}

#[test]
fn issue_counts_towards_the_same_user_limit_as_platform_claims() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons_per_user": 2})));
    issue(&client, &s, "u1");
    expect(&client.claim(&s, "u1", &unique("r")), 0);
    expect(&issue_as(&client, &s, "u1", &unique("r")), 40904);
    expect(&client.claim(&s, "u1", &unique("r")), 40904);
}

#[test]
fn issue_with_the_same_request_id_answers_the_same_coupon() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({"max_coupons": 1})));
    let r = unique("r");
    let first = ok(&issue_as(&client, &s, "u1", &r));
    ok(&set_status(&client, &s, 5));
    let again = ok(&issue_as(&client, &s, "u1", &r));
    assert_eq!(again["coupon_id"], first["coupon_id"]);
    assert_eq!(get_stock(&client, &s)["counts"]["issued"], 1);
    assert_checked(&server);
}

#[test]
fn issue_with_a_reused_request_id_and_other_parameters_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let r = unique("r");
    ok(&issue_as(&client, &s, "u1", &r));
    expect(&issue_as(&client, &s, "u2", &r), 40906);
    assert_eq!(get_stock(&client, &s)["counts"]["issued"], 1);
}

#[test]
fn issue_without_request_id_is_refused_with_40001_naming_it() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let a = client.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": s, "user_code": "u1", "app_channel_id": 1})),
    );
    expect_invalid(&a, "request_id");
}

// ---------------------------------------------------------------- list coupons

#[test]
fn list_coupons_filters_by_user_code() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let mine = issue(&client, &s, "alice");
    issue(&client, &s, "bob");
    let d = ok(&client.admin("GET", "/admin/coupons?user_code=alice", None));
    let list = d["coupons"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["coupon_id"], json!(mine));
    assert_eq!(list[0]["user_code"], "alice");
    assert_eq!(d["next_after"], Value::Null);
}

#[test]
fn list_coupons_filters_by_stock_id() {
    let server = TestServer::start();
    let client = server.client();
    let a = sid(&client.create_stock(json!({})));
    let b = sid(&client.create_stock(json!({})));
    issue(&client, &a, "u1");
    let in_b = issue(&client, &b, "u1");
    let d = ok(&client.admin("GET", &format!("/admin/coupons?stock_id={b}"), None));
    let ids: Vec<&Value> = d["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["coupon_id"])
        .collect();
    assert_eq!(ids, vec![&json!(in_b)]);
}

#[test]
fn list_coupons_filters_by_status() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let used = issue(&client, &s, "u1");
    issue(&client, &s, "u2");
    expect(&redeem(&client, &used, &unique("o"), 20000), 0);
    let d = ok(&client.admin("GET", "/admin/coupons?status=2", None));
    let list = d["coupons"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["coupon_id"], json!(used));
    assert_eq!(list[0]["coupon_status"], 2);
}

#[test]
fn list_coupons_combines_filters() {
    let server = TestServer::start();
    let client = server.client();
    let a = sid(&client.create_stock(json!({})));
    let b = sid(&client.create_stock(json!({})));
    let target = issue(&client, &a, "u1");
    issue(&client, &a, "u2");
    issue(&client, &b, "u1");
    let d = ok(&client.admin(
        "GET",
        &format!("/admin/coupons?user_code=u1&stock_id={a}&status=1"),
        None,
    ));
    let list = d["coupons"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["coupon_id"], json!(target));
}

#[test]
fn list_coupons_pages_in_issue_order_with_limit_and_next_after() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let issued: Vec<String> = (0..5)
        .map(|i| issue(&client, &s, &format!("u{i}")))
        .collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            None => format!("/admin/coupons?stock_id={s}&limit=2"),
            Some(a) => format!("/admin/coupons?stock_id={s}&limit=2&after={a}"),
        };
        let d = ok(&client.admin("GET", &path, None));
        let page = d["coupons"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|c| c["coupon_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        assert!(pages <= 4, "pagination does not end");
        match d["next_after"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, issued);
}

#[test]
fn list_coupons_with_limit_zero_is_refused_with_40001_naming_limit() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &client.admin("GET", "/admin/coupons?limit=0", None),
        "limit",
    );
}

#[test]
fn list_coupons_with_an_unknown_status_is_refused_with_40001_naming_status() {
    let server = TestServer::start();
    let client = server.client();
    expect_invalid(
        &client.admin("GET", "/admin/coupons?status=9", None),
        "status",
    );
}

// ---------------------------------------------------------------- coupon with journal

#[test]
fn get_coupon_answers_the_coupon_and_its_journal() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    expect(&redeem(&client, &id, &order, 20000), 0);
    expect(&unredeem(&client, &id, &order), 0);
    let d = ok(&client.admin("GET", &format!("/admin/coupons/{id}"), None));
    assert_eq!(keys(&d), vec!["coupon", "journal"]);
    assert_eq!(d["coupon"]["coupon_id"], json!(id));
    assert_eq!(d["coupon"]["coupon_status"], 1);
    let rows: Vec<(String, Value, Value, String)> = d["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["event"].as_str().unwrap().to_string(),
                j["from_status"].clone(),
                j["to_status"].clone(),
                j["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("issue".into(), Value::Null, json!(1), "admin".into()),
            ("redeem".into(), json!(1), json!(2), "admin".into()),
            ("unredeem".into(), json!(2), json!(1), "admin".into()),
        ]
    );
    for j in d["journal"].as_array().unwrap() {
        ms(&j["time"]);
        // admin_token is the operator `admin`.
        assert_eq!(j["operator"], "admin", "{j}");
    }
    assert_checked(&server);
}

#[test]
fn journal_of_a_platform_claim_has_source_platform_and_the_seq_id() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let a = client.call(
        "/sp/coupon/receive",
        json!({"app_channel_id": 1, "user_code": "u1", "stock_id": s,
               "request_id": unique("r"), "seq_id": "trace-7"}),
    );
    let id = expect(&a, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    let j = journal(&client, &id);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["event"], "issue");
    assert_eq!(j[0]["from_status"], Value::Null);
    assert_eq!(j[0]["to_status"], 1);
    assert_eq!(j[0]["source"], "platform");
    assert_eq!(j[0]["seq_id"], "trace-7");
    assert_eq!(
        j[0]["operator"],
        Value::Null,
        "no operator for a platform call"
    );
}

#[test]
fn get_unknown_coupon_is_refused_with_40402() {
    let server = TestServer::start();
    let client = server.client();
    expect(
        &client.admin("GET", "/admin/coupons/1234567890123456789", None),
        40402,
    );
}

// ---------------------------------------------------------------- redeem maths (docs/operations.md, admin API)

#[test]
fn redeem_of_a_full_reduction_coupon_takes_off_its_amount() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    let before = now_ms();
    let d = ok(&redeem(&client, &id, &order, 12345));
    let after = now_ms();
    assert_eq!(
        keys(&d),
        sorted(vec![
            "coupon_id",
            "order_id",
            "order_amount",
            "discount_amount",
            "pay_amount",
            "usage_time"
        ])
    );
    assert_eq!(d["coupon_id"], json!(id));
    assert_eq!(d["order_id"], json!(order));
    assert_eq!(d["order_amount"], 12345);
    assert_eq!(d["discount_amount"], 1000);
    assert_eq!(d["pay_amount"], 11345);
    let t = ms(&d["usage_time"]);
    assert!(before <= t && t <= after);
    let c = coupon(&client, &id);
    assert_eq!(c["coupon_status"], 2);
    assert_eq!(c["usage_time"], d["usage_time"]);
    assert_checked(&server);
}

#[test]
fn redeem_at_exactly_the_threshold_is_accepted() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&redeem_fresh(
        &client,
        1,
        json!({"coupon_amount": 1000, "transaction_minimum": 10000}),
        10000,
    ));
    assert_eq!(
        (d["discount_amount"].clone(), d["pay_amount"].clone()),
        (json!(1000), json!(9000))
    );
}

#[test]
fn redeem_below_the_threshold_is_refused_with_40908() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let v = expect(&redeem(&client, &id, &unique("o"), 9999), 40908);
    assert_eq!(v["message"], "order amount below the coupon's threshold");
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
    assert_checked(&server);
}

#[test]
fn full_reduction_never_takes_off_more_than_the_order() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&redeem_fresh(
        &client,
        1,
        json!({"coupon_amount": 1000, "transaction_minimum": 0}),
        600,
    ));
    assert_eq!(d["discount_amount"], 600);
    assert_eq!(d["pay_amount"], 0);
}

#[test]
fn redeem_of_a_cut_to_coupon_pays_the_cut_price() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&redeem_fresh(
        &client,
        2,
        json!({"coupon_amount": 990, "transaction_minimum": 2000}),
        2500,
    ));
    assert_eq!(d["discount_amount"], 1510);
    assert_eq!(d["pay_amount"], 990);
}

#[test]
fn cut_to_coupon_below_its_threshold_is_refused_with_40908() {
    let server = TestServer::start();
    let client = server.client();
    let a = redeem_fresh(
        &client,
        2,
        json!({"coupon_amount": 990, "transaction_minimum": 2000}),
        1999,
    );
    expect(&a, 40908);
}

#[test]
fn cut_to_coupon_on_an_order_below_the_cut_price_takes_off_nothing() {
    let server = TestServer::start();
    let client = server.client();
    let d = ok(&redeem_fresh(
        &client,
        2,
        json!({"coupon_amount": 990, "transaction_minimum": 0}),
        500,
    ));
    assert_eq!(d["discount_amount"], 0);
    assert_eq!(d["pay_amount"], 500);
}

#[test]
fn redeem_of_a_discount_coupon_rounds_the_discount_down_to_the_fen() {
    let server = TestServer::start();
    let client = server.client();
    // 1999 × (100 − 88) / 100 = 239.88 → 239
    let d = ok(&redeem_fresh(
        &client,
        3,
        json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 0}),
        1999,
    ));
    assert_eq!(d["discount_amount"], 239);
    assert_eq!(d["pay_amount"], 1760);
}

#[test]
fn redeem_of_a_discount_coupon_is_capped_at_discount_amount_max() {
    let server = TestServer::start();
    let client = server.client();
    // 100000 × 12 / 100 = 12000, capped at 1000
    let d = ok(&redeem_fresh(
        &client,
        3,
        json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}),
        100_000,
    ));
    assert_eq!(d["discount_amount"], 1000);
    assert_eq!(d["pay_amount"], 99_000);
}

#[test]
fn discount_coupon_below_its_threshold_is_refused_with_40908() {
    let server = TestServer::start();
    let client = server.client();
    let a = redeem_fresh(
        &client,
        3,
        json!({"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 10000}),
        9999,
    );
    expect(&a, 40908);
}

// ---------------------------------------------------------------- redeem rules

#[test]
fn redeem_replayed_with_the_same_order_answers_the_first_redemption() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    let first = ok(&redeem(&client, &id, &order, 20000));
    let again = ok(&redeem(&client, &id, &order, 20000));
    assert_eq!(again, first);
    let redeems = journal(&client, &id)
        .iter()
        .filter(|j| j["event"] == "redeem")
        .count();
    assert_eq!(redeems, 1);
    assert_checked(&server);
}

#[test]
fn redeem_with_a_used_order_id_and_another_amount_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    ok(&redeem(&client, &id, &order, 20000));
    expect(&redeem(&client, &id, &order, 30000), 40906);
}

#[test]
fn redeem_with_a_used_order_id_on_another_coupon_is_refused_with_40906() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let first = issue(&client, &s, "u1");
    let second = issue(&client, &s, "u2");
    let order = unique("o");
    ok(&redeem(&client, &first, &order, 20000));
    expect(&redeem(&client, &second, &order, 20000), 40906);
    assert_eq!(coupon(&client, &second)["coupon_status"], 1);
    assert_checked(&server);
}

#[test]
fn redeem_of_a_used_coupon_with_a_new_order_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    ok(&redeem(&client, &id, &unique("o"), 20000));
    expect(&redeem(&client, &id, &unique("o"), 20000), 40905);
}

#[test]
fn redeem_of_a_deactivated_coupon_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    settle(&client, &s, "u1", &id, 4);
    expect(&redeem(&client, &id, &unique("o"), 20000), 40905);
}

#[test]
fn redeem_of_an_expired_coupon_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    settle(&client, &s, "u1", &id, 3);
    expect(&redeem(&client, &id, &unique("o"), 20000), 40905);
}

#[test]
fn redeem_before_the_coupon_window_opens_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({
        "available_begin_time": time_from_now(86_400),
        "available_end_time": time_from_now(2 * 86_400)
    })));
    let id = issue(&client, &s, "u1");
    expect(&redeem(&client, &id, &unique("o"), 20000), 40905);
    assert_eq!(coupon(&client, &id)["coupon_status"], 1);
}

#[test]
fn redeem_of_an_unknown_coupon_is_refused_with_40402() {
    let server = TestServer::start();
    let client = server.client();
    expect(
        &redeem(&client, "1234567890123456789", &unique("o"), 20000),
        40402,
    );
}

#[test]
fn redeem_with_a_string_amount_is_refused_with_40001_naming_order_amount() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let a = client.admin(
        "POST",
        &format!("/admin/coupons/{id}/redeem"),
        Some(json!({"order_id": unique("o"), "order_amount": "200.00"})),
    );
    expect_invalid(&a, "order_amount");
}

/// A coupon of a stock whose window closes 2 s from now, already redeemed by
/// `order`; returns once the window has closed.
fn redeemed_then_window_closed(client: &Client, order: &str) -> String {
    let end = time_from_now(2);
    let s = sid(&client.create_stock(json!({"available_end_time": end})));
    let id = issue(client, &s, "u1");
    ok(&redeem(client, &id, order, 20000));
    let end_ms = ms(&json!(end));
    assert!(wait_until(std::time::Duration::from_secs(10), || now_ms() > end_ms));
    id
}

#[test]
fn redeem_after_the_coupon_window_closed_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let end = time_from_now(2);
    let s = sid(&client.create_stock(json!({"available_end_time": end})));
    let id = issue(&client, &s, "u1");
    let end_ms = ms(&json!(end));
    assert!(wait_until(std::time::Duration::from_secs(10), || now_ms() > end_ms));
    expect(&redeem(&client, &id, &unique("o"), 20000), 40905);
    assert_checked(&server);
}

// ---------------------------------------------------------------- unredeem

#[test]
fn unredeem_after_the_coupon_window_closed_is_refused_with_40905() {
    let server = TestServer::start();
    let client = server.client();
    let order = unique("o");
    let id = redeemed_then_window_closed(&client, &order);
    expect(&unredeem(&client, &id, &order), 40905);
    assert_eq!(coupon(&client, &id)["coupon_status"], 2);
    assert_checked(&server);
}

#[test]
fn redeem_replay_answers_the_redemption_even_after_the_window_closed() {
    let server = TestServer::start();
    let client = server.client();
    let order = unique("o");
    let id = redeemed_then_window_closed(&client, &order);
    let d = ok(&redeem(&client, &id, &order, 20000));
    assert_eq!(d["coupon_id"], json!(id));
    assert_eq!(d["discount_amount"], 1000);
}

#[test]
fn unredeem_returns_the_coupon_to_available() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    ok(&redeem(&client, &id, &order, 20000));
    let d = ok(&unredeem(&client, &id, &order));
    assert_eq!(
        keys(&d),
        vec!["coupon_id", "coupon_status", "order_id", "unredeem_time"]
    );
    assert_eq!(d["coupon_id"], json!(id));
    assert_eq!(d["order_id"], json!(order));
    assert_eq!(d["coupon_status"], 1);
    ms(&d["unredeem_time"]);
    let c = coupon(&client, &id);
    assert_eq!(c["coupon_status"], 1);
    assert_eq!(c["usage_time"], Value::Null);
    assert_checked(&server);
}

#[test]
fn unredeemed_coupon_can_be_redeemed_again_with_a_new_order() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    let order = unique("o");
    ok(&redeem(&client, &id, &order, 20000));
    ok(&unredeem(&client, &id, &order));
    expect(&redeem(&client, &id, &order, 20000), 40906);
    ok(&redeem(&client, &id, &unique("o"), 20000));
    assert_eq!(coupon(&client, &id)["coupon_status"], 2);
    assert_checked(&server);
}

#[test]
fn unredeem_of_an_order_never_redeemed_on_this_coupon_is_refused_with_40001_naming_order_id() {
    let server = TestServer::start();
    let client = server.client();
    let s = sid(&client.create_stock(json!({})));
    let id = issue(&client, &s, "u1");
    ok(&redeem(&client, &id, &unique("o"), 20000));
    expect_invalid(&unredeem(&client, &id, "other-order"), "order_id");
    assert_eq!(coupon(&client, &id)["coupon_status"], 2);
}

// ---------------------------------------------------------------- the bearer token

#[test]
fn admin_call_without_a_token_is_refused_with_401_and_40105() {
    let server = TestServer::start();
    for (method, path) in [
        ("GET", "/admin/stocks"),
        ("POST", "/admin/stocks"),
        ("GET", "/admin/coupons"),
        ("POST", "/admin/coupons/1/redeem"),
    ] {
        let a = raw_request(server.addr, method, path, &[], b"{}");
        assert_eq!(a.status, 401, "{method} {path}: {}", show(&a));
        assert_eq!(a.code(), 40105, "{method} {path}");
    }
}

#[test]
fn admin_call_with_a_wrong_token_is_refused_with_401_and_40105() {
    let server = TestServer::start();
    for auth in [
        "Bearer wrong-token".to_string(),
        format!("Bearer {ADMIN}x"),
        format!("Basic {ADMIN}"),
        ADMIN.to_string(),
    ] {
        let a = raw_request(
            server.addr,
            "GET",
            "/admin/stocks",
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(a.status, 401, "{auth}: {}", show(&a));
        assert_eq!(a.code(), 40105);
        assert!(a.json()["message"].is_string());
    }
}

#[test]
fn refused_admin_call_changes_nothing() {
    let server = TestServer::start();
    let body = stock_body(json!({}));
    let a = raw_request(
        server.addr,
        "POST",
        "/admin/stocks",
        &[("Authorization", "Bearer nope")],
        body.to_string().as_bytes(),
    );
    assert_eq!(a.status, 401);
    let d = ok(&server.client().admin("GET", "/admin/stocks", None));
    assert_eq!(d["stocks"], json!([]));
}

#[test]
fn unknown_admin_path_is_404_with_code_40400() {
    let server = TestServer::start();
    let a = server.client().admin("GET", "/admin/nothing-here", None);
    assert_eq!(a.status, 404, "{}", show(&a));
    assert_eq!(a.code(), 40400);
}

#[test]
fn wrong_method_on_an_admin_path_is_405_with_code_40500() {
    let server = TestServer::start();
    let a = server.client().admin("DELETE", "/admin/stocks", None);
    assert_eq!(a.status, 405, "{}", show(&a));
    assert_eq!(a.code(), 40500);
}
