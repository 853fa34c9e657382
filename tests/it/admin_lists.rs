//! The admin API's lists and reads: refused unknown query parameters, the
//! coupon filters (order, status, issue time), `total` beside every page, a
//! stock's journal, and the voucher list with its statuses.

use crate::common::*;
use serde_json::{json, Value};

fn data(a: &Answer) -> Value {
    expect(a, 0)["data"].clone()
}

fn get(c: &Client, path: &str) -> Answer {
    c.admin("GET", path, None)
}

fn issue(c: &Client, stock_id: &str, user: &str) -> Value {
    data(&c.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": stock_id, "user_code": user, "app_channel_id": 1, "request_id": unique("r")})),
    ))
}

fn ids(list: &Value, key: &str, id: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[id].as_str().unwrap().to_string())
        .collect()
}

/// `%XX`-encodes a query value (times carry `+`).
fn enc(v: &Value) -> String {
    v.as_str().unwrap().replace('+', "%2B").replace(':', "%3A")
}

#[test]
fn an_unknown_or_repeated_query_parameter_is_refused_naming_it() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({})));
    let coupon_id = issue(&c, &s, "u1")["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = get(&c, "/admin/coupons?order_id2=o1");
    expect(&a, 40001);
    assert_eq!(a.json()["message"], "order_id2: unknown query parameter");
    for (path, name) in [
        ("/admin/stocks?limit=1".to_string(), "limit"),
        (format!("/admin/stocks/{s}?verbose"), "verbose"),
        (format!("/admin/stocks/{s}/journal?after=1"), "after"),
        (
            "/admin/coupons?user_code=u1&stockid=x".to_string(),
            "stockid",
        ),
        (format!("/admin/coupons/{coupon_id}?x=1"), "x"),
        ("/admin/vouchers?kind=meituan".to_string(), "kind"),
        ("/admin/vouchers/meituan/1?shop=1".to_string(), "shop"),
        ("/admin/outbox?status=dead".to_string(), "status"),
        ("/admin/report?date=2026-01-01&day=1".to_string(), "day"),
        ("/admin/coupons?%73tate=1".to_string(), "state"),
    ] {
        let a = get(&c, &path);
        expect_invalid(&a, name);
        assert_eq!(
            a.json()["message"],
            format!("{name}: unknown query parameter"),
            "{path}"
        );
    }
    let a = get(&c, "/admin/coupons?limit=1&limit=2");
    expect_invalid(&a, "limit");
    assert_eq!(a.json()["message"], "limit: given more than once");
    // Known parameters still work, and an empty value is as good as absent.
    let d = data(&get(&c, "/admin/coupons?user_code=u1&stock_id="));
    assert_eq!(d["total"], 1);
}

#[test]
fn a_change_with_a_query_parameter_is_refused_and_changes_nothing() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({"stock_status": 1})));
    let running = sid(&c.create_stock(json!({})));
    let coupon_id = issue(&c, &running, "u1")["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    let voucher = json!([{"type": "meituan", "couponNo": "Q-1", "shopIds": [147], "couponName": "套餐",
        "valueFen": 1980, "priceFen": 990, "count": 5,
        "validityBegin": time_from_now(-86_400), "validityEnd": time_from_now(86_400),
        "deal": {"dealId": 1}}]);
    let calls = [
        (
            "POST",
            "/admin/stocks?dry_run=1".to_string(),
            stock_fields("q-new"),
            "dry_run",
        ),
        (
            "PATCH",
            format!("/admin/stocks/{s}?force=1"),
            json!({"stock_name": "renamed"}),
            "force",
        ),
        (
            "POST",
            format!("/admin/stocks/{s}/status?stock_status=3"),
            json!({"stock_status": 3}),
            "stock_status",
        ),
        (
            "POST",
            format!("/admin/stocks/{s}/resync?now"),
            json!({}),
            "now",
        ),
        (
            "POST",
            "/admin/coupons?notify=0".to_string(),
            json!({"stock_id": running, "user_code": "u2", "app_channel_id": 1, "request_id": "q-r1"}),
            "notify",
        ),
        (
            "POST",
            format!("/admin/coupons/{coupon_id}/redeem?order_id=o9"),
            json!({"order_id": "o1", "order_amount": 20000}),
            "order_id",
        ),
        (
            "POST",
            format!("/admin/coupons/{coupon_id}/unredeem?x=1"),
            json!({"order_id": "o1"}),
            "x",
        ),
        (
            "POST",
            format!("/admin/coupons/{coupon_id}/resync?x=1"),
            json!({}),
            "x",
        ),
        (
            "POST",
            "/admin/vouchers?replace=1".to_string(),
            voucher,
            "replace",
        ),
        (
            "POST",
            "/admin/outbox/1/retry?force=1".to_string(),
            json!({}),
            "force",
        ),
        (
            "POST",
            "/admin/outbox/1/abandon?reason=x".to_string(),
            json!({"reason": "x"}),
            "reason",
        ),
        (
            "POST",
            "/admin/tls/reload?now=1".to_string(),
            json!({}),
            "now",
        ),
    ];
    for (method, path, body, name) in calls {
        let a = c.admin(method, &path, Some(body));
        expect_invalid(&a, name);
        assert_eq!(
            a.json()["message"],
            format!("{name}: unknown query parameter"),
            "{method} {path}"
        );
    }
    // None of them took effect.
    let stock = data(&get(&c, &format!("/admin/stocks/{s}")));
    assert_eq!(
        (stock["stock_status"].as_i64(), stock["stock_name"].as_str()),
        (Some(1), Some("代驾10元代金券"))
    );
    assert_eq!(data(&get(&c, "/admin/stocks"))["total"], 2);
    assert_eq!(coupon(&c, &coupon_id)["coupon_status"], 1);
    assert_eq!(data(&get(&c, "/admin/coupons"))["total"], 1);
    expect(&get(&c, "/admin/vouchers/meituan/Q-1"), 40403);
    // Without the parameter the same change goes through.
    expect(&set_status(&c, &s, 3), 0);
}

#[test]
fn coupons_are_found_by_the_order_that_redeemed_them() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({"max_coupons_per_user": 5})));
    let a = issue(&c, &s, "u1")["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = issue(&c, &s, "u1")["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    expect(&redeem(&c, &a, "order-a", 20000), 0);
    expect(&redeem(&c, &b, "order-b", 20000), 0);
    let d = data(&get(&c, "/admin/coupons?order_id=order-b"));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [b]);
    assert_eq!(d["total"], 1);
    assert_eq!(d["coupons"][0]["coupon_status"], 2);
    // Still found after the redemption was undone.
    expect(
        &c.admin(
            "POST",
            &format!("/admin/coupons/{a}/unredeem"),
            Some(json!({"order_id": "order-a"})),
        ),
        0,
    );
    let d = data(&get(&c, "/admin/coupons?order_id=order-a"));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [a.as_str()]);
    let d = data(&get(&c, "/admin/coupons?order_id=order-a&status=2"));
    assert_eq!(
        (d["coupons"].as_array().unwrap().len(), d["total"].clone()),
        (0, json!(0))
    );
    let d = data(&get(&c, "/admin/coupons?order_id=no-such-order"));
    assert_eq!(d["coupons"], json!([]));
    assert_eq!(d["total"], 0);
    assert_eq!(d["next_after"], Value::Null);
}

#[test]
fn coupons_are_filtered_by_issue_time_and_status_with_a_total() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({"max_coupons_per_user": 10})));
    let mut issued = Vec::new();
    for _ in 0..3 {
        let coupon = issue(&c, &s, "u1");
        wait_past(&coupon["receive_time"]);
        issued.push(coupon);
    }
    let id = |i: usize| issued[i]["coupon_id"].as_str().unwrap().to_string();
    let t1 = enc(&issued[1]["receive_time"]);
    let t2 = enc(&issued[2]["receive_time"]);
    let d = data(&get(&c, &format!("/admin/coupons?from={t1}")));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [id(1), id(2)]);
    assert_eq!(d["total"], 2);
    let d = data(&get(&c, &format!("/admin/coupons?to={t1}")));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [id(0)]);
    let d = data(&get(&c, &format!("/admin/coupons?from={t1}&to={t2}")));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [id(1)]);
    // The same instant written in another offset.
    let utc = coupon_ledger::domain::time::render_millis(
        ms(&issued[1]["receive_time"]),
        time::UtcOffset::UTC,
    );
    let d = data(&get(
        &c,
        &format!("/admin/coupons?from={}", enc(&json!(utc))),
    ));
    assert_eq!(d["total"], 2);
    // Status with the time range.
    expect(&deactivate(&c, &s, "u1", &id(2), 4), 0);
    let d = data(&get(&c, &format!("/admin/coupons?from={t1}&status=1")));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [id(1)]);
    assert_eq!(d["total"], 1);
    // Paging keeps the total of the whole selection.
    let d = data(&get(&c, "/admin/coupons?limit=2"));
    assert_eq!(
        (d["coupons"].as_array().unwrap().len(), d["total"].clone()),
        (2, json!(3))
    );
    let after = d["next_after"].as_str().unwrap().to_string();
    let d = data(&get(&c, &format!("/admin/coupons?limit=2&after={after}")));
    assert_eq!(ids(&d, "coupons", "coupon_id"), [id(2)]);
    assert_eq!(d["total"], 3);
    assert_eq!(d["next_after"], Value::Null);
    // Bad times.
    expect_invalid(&get(&c, "/admin/coupons?from=2026-01-01"), "from");
    expect_invalid(&get(&c, "/admin/coupons?to=2026-01-01T00:00:00"), "to");
    let a = get(&c, &format!("/admin/coupons?from={t2}&to={t1}"));
    expect_invalid(&a, "to");
    assert_eq!(a.json()["message"], "to: must be later than from");
    expect_invalid(&get(&c, &format!("/admin/coupons?from={t1}&to={t1}")), "to");
}

#[test]
fn a_stock_journal_lists_every_change_of_the_stock() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({"stock_status": 1})));
    expect(
        &c.admin(
            "PATCH",
            &format!("/admin/stocks/{s}"),
            Some(json!({"stock_name": "n2"})),
        ),
        0,
    );
    expect(&set_status(&c, &s, 3), 0);
    expect(&set_status(&c, &s, 5), 0);
    let d = data(&get(&c, &format!("/admin/stocks/{s}/journal")));
    assert_eq!(d["stock_id"], json!(s));
    let rows: Vec<(Value, Value, Value)> = d["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["event"].clone(),
                j["from_status"].clone(),
                j["to_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("create"), Value::Null, json!(1)),
            (json!("edit"), json!(1), json!(1)),
            (json!("status"), json!(1), json!(3)),
            (json!("status"), json!(3), json!(5)),
        ]
    );
    for j in d["journal"].as_array().unwrap() {
        assert_eq!(
            keys(j),
            [
                "detail",
                "event",
                "from_status",
                "id",
                "operator",
                "seq_id",
                "source",
                "time",
                "to_status"
            ]
        );
        assert_eq!(j["operator"], "admin");
        ms(&j["time"]);
    }
    expect(&get(&c, "/admin/stocks/no-such/journal"), 40401);
    let a = c.admin("POST", &format!("/admin/stocks/{s}/journal"), None);
    assert_eq!((a.status, a.code()), (405, 40500));
}

fn voucher(no: &str, count: i64, begin: i64, end: i64) -> Value {
    json!({"type": "meituan", "couponNo": no, "shopIds": [147], "couponName": "套餐",
        "valueFen": 1980, "priceFen": 990, "count": count,
        "validityBegin": time_from_now(begin), "validityEnd": time_from_now(end),
        "deal": {"dealId": 1}})
}

#[test]
fn vouchers_are_listed_by_type_and_status_with_a_total() {
    let server = TestServer::start();
    let c = server.client();
    let day = 86_400;
    let mut tiktok = voucher("T-1", 1, -day, day);
    tiktok["type"] = json!("tiktok");
    tiktok["deal"] = json!({"certificateId": "c1", "sku": {"skuId": "s"}});
    expect(
        &c.admin(
            "POST",
            "/admin/vouchers",
            Some(json!([
                voucher("usable", 2, -day, day),
                voucher("used-up", 1, -day, day),
                voucher("expired", 1, -2 * day, -day),
                voucher("upcoming", 1, day, 2 * day),
                tiktok
            ])),
        ),
        0,
    );
    let verify = c.call(
        "/gateway",
        json!({"method": "allinpay.shopoint.thirdCouponService.verify", "version": "1.0",
               "type": "meituan", "couponNo": "used-up", "shopId": 147, "count": 1, "request_id": unique("v")}),
    );
    assert_eq!(verify.json()["code"], 0, "{}", show(&verify));

    let all = data(&get(&c, "/admin/vouchers"));
    assert_eq!(all["total"], 5);
    assert_eq!(
        ids(&all, "vouchers", "couponNo"),
        ["usable", "used-up", "expired", "upcoming", "T-1"]
    );
    let statuses: Vec<&str> = all["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["usable", "used_up", "expired", "upcoming", "usable"]
    );
    let first = &all["vouchers"][0];
    assert!(first.get("verifications").is_none(), "{first}");
    assert_eq!(first["remaining"], 2);
    assert_eq!(first["shopIds"], json!([147]));
    for (query, want) in [
        ("status=usable", vec!["usable", "T-1"]),
        ("status=used_up", vec!["used-up"]),
        ("status=expired", vec!["expired"]),
        ("status=upcoming", vec!["upcoming"]),
        ("type=tiktok", vec!["T-1"]),
        ("type=meituan&status=usable", vec!["usable"]),
        ("type=dianping", vec![]),
    ] {
        let d = data(&get(&c, &format!("/admin/vouchers?{query}")));
        assert_eq!(ids(&d, "vouchers", "couponNo"), want, "{query}");
        assert_eq!(d["total"], want.len(), "{query}");
    }
    // Keyset pages.
    let p1 = data(&get(&c, "/admin/vouchers?limit=2"));
    assert_eq!(ids(&p1, "vouchers", "couponNo"), ["usable", "used-up"]);
    assert_eq!(p1["total"], 5);
    let after = p1["next_after"].as_str().unwrap();
    let p2 = data(&get(&c, &format!("/admin/vouchers?limit=2&after={after}")));
    assert_eq!(ids(&p2, "vouchers", "couponNo"), ["expired", "upcoming"]);
    let after = p2["next_after"].as_str().unwrap();
    let p3 = data(&get(&c, &format!("/admin/vouchers?limit=2&after={after}")));
    assert_eq!(ids(&p3, "vouchers", "couponNo"), ["T-1"]);
    assert_eq!(p3["next_after"], Value::Null);
    // Bad filters.
    let a = get(&c, "/admin/vouchers?type=eleme");
    expect_invalid(&a, "type");
    let a = get(&c, "/admin/vouchers?status=valid");
    expect_invalid(&a, "status");
    assert_eq!(
        a.json()["message"],
        "status: must be usable, used_up, expired or upcoming"
    );
    expect_invalid(&get(&c, "/admin/vouchers?limit=0"), "limit");
    let a = c.admin("DELETE", "/admin/vouchers", None);
    assert_eq!(a.header("Allow"), Some("GET, POST"));
}

#[test]
fn the_outbox_list_carries_the_total_of_its_state() {
    let platform = format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{}\"\napi_key = \"SP\"\nsecret = \"s\"\n",
        free_port()
    );
    let server = TestServer::start_stepped(&platform);
    let c = server.client();
    c.create_stock(json!({}));
    c.create_stock(json!({}));
    let d = data(&get(&c, "/admin/outbox?limit=1"));
    assert_eq!(d["calls"].as_array().unwrap().len(), 1);
    assert_eq!(d["total"], 2);
    assert!(d["next_after"].is_string());
    let d = data(&get(&c, "/admin/outbox?state=pending"));
    assert_eq!(d["total"], 2);
    let d = data(&get(&c, "/admin/outbox?state=dead"));
    assert_eq!(
        (d["calls"].clone(), d["total"].clone()),
        (json!([]), json!(0))
    );
}
