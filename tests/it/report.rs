//! The daily statement (对账), `GET /admin/report?date=`: for a day with every
//! kind of event, its rows agree with the journal and its totals with the
//! stock's counters and the voucher's uses.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{json, Value};

fn data(a: &Answer) -> Value {
    expect(a, 0)["data"].clone()
}

/// Today's date in +08:00 (the test config's offset).
fn today() -> String {
    time_from_now(0)[..10].to_string()
}

/// A statement split into its event rows and its totals (by name), each a
/// map of header → cell.
struct Statement {
    rows: Vec<BTreeMap<String, String>>,
    totals: BTreeMap<String, BTreeMap<String, String>>,
}

fn cells(line: &str) -> Vec<String> {
    // The test data holds no quotes or commas inside fields.
    line.split(',').map(str::to_string).collect()
}

fn statement(c: &Client, date: &str) -> Statement {
    let a = c.admin("GET", &format!("/admin/report?date={date}"), None);
    assert_eq!(a.status, 200, "{}", show(&a));
    assert_eq!(a.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        a.header("Content-Disposition"),
        Some(format!("attachment; filename=\"statement-{date}.csv\"").as_str())
    );
    let text = String::from_utf8(a.body).unwrap();
    assert!(text.ends_with("\r\n"));
    let (events, totals) = text.split_once("\r\n\r\n").expect("two sections");
    let mut lines = events.split("\r\n");
    let header = cells(lines.next().unwrap());
    assert_eq!(header[0], "time");
    let rows = lines
        .map(|l| header.iter().cloned().zip(cells(l)).collect())
        .collect();
    let mut lines = totals.trim_end().split("\r\n");
    let header = cells(lines.next().unwrap());
    assert_eq!(header[0], "total");
    let totals = lines
        .map(|l| {
            let row: BTreeMap<String, String> = header.iter().cloned().zip(cells(l)).collect();
            (row["total"].clone(), row)
        })
        .collect();
    Statement { rows, totals }
}

fn num(t: &BTreeMap<String, BTreeMap<String, String>>, name: &str, col: &str) -> i64 {
    t[name][col].parse().unwrap()
}

fn gw(c: &Client, method: &str, fields: Value) -> Value {
    let mut m = fields.as_object().unwrap().clone();
    m.insert(
        "method".into(),
        json!(format!("allinpay.shopoint.thirdCouponService.{method}")),
    );
    m.insert("version".into(), json!("1.0"));
    let v = c.call("/gateway", Value::Object(m)).json();
    assert_eq!(v["code"], 0, "{v}");
    v
}

#[test]
fn a_day_with_every_event_reconciles_with_the_journal_and_the_counters() {
    let server = TestServer::start();
    let c = server.client();
    let date = today();
    let s = sid(&c.create_stock(json!({"max_coupons_per_user": 10})));
    // Six coupons: two claimed by the platform, four issued by the operator.
    let mut coupons: Vec<String> = (0..2).map(|_| claim_ok(&c, &s, "u1")).collect();
    for _ in 0..4 {
        let a = c.admin(
            "POST",
            "/admin/coupons",
            Some(json!({"stock_id": s, "user_code": "u1", "app_channel_id": 1, "request_id": unique("r")})),
        );
        coupons.push(data(&a)["coupon_id"].as_str().unwrap().to_string());
    }
    for (i, amount) in [(0, 20000), (1, 15000), (2, 30000)] {
        expect(&redeem(&c, &coupons[i], &format!("order-{i}"), amount), 0);
    }
    expect(
        &c.admin(
            "POST",
            &format!("/admin/coupons/{}/unredeem", coupons[1]),
            Some(json!({"order_id": "order-1"})),
        ),
        0,
    );
    expect(&deactivate(&c, &s, "u1", &coupons[3], 3), 0);
    expect(&deactivate(&c, &s, "u1", &coupons[4], 4), 0);
    // A voucher of five uses: two verified, one more verified and cancelled.
    expect(
        &c.admin(
            "POST",
            "/admin/vouchers",
            Some(json!([{"type": "meituan", "couponNo": "R-1", "shopIds": [147], "couponName": "套餐",
                "valueFen": 1980, "priceFen": 990, "count": 5,
                "validityBegin": time_from_now(-86_400), "validityEnd": time_from_now(86_400),
                "deal": {"dealId": 1}}])),
        ),
        0,
    );
    let v = |n: i64| json!({"type": "meituan", "couponNo": "R-1", "shopId": 147, "count": n, "request_id": unique("v")});
    gw(&c, "verify", v(2));
    let second = gw(&c, "verify", v(1));
    let verify_id = second["data"]["verifyId"].as_str().unwrap().to_string();
    gw(&c, "cancel", json!({"verifyId": verify_id, "shopId": 147}));

    // The statement (of both days, should the test straddle midnight).
    let mut days = vec![statement(&c, &date)];
    if today() != date {
        days.push(statement(&c, &today()));
    }
    let rows: Vec<BTreeMap<String, String>> =
        days.iter().flat_map(|d| d.rows.iter().cloned()).collect();
    let total =
        |name: &str, col: &str| -> i64 { days.iter().map(|d| num(&d.totals, name, col)).sum() };

    // Rows agree with the journal: the same events, one row each.
    let mut journaled: BTreeMap<String, i64> = BTreeMap::new();
    for id in &coupons {
        let j = data(&c.admin("GET", &format!("/admin/coupons/{id}"), None));
        for row in j["journal"].as_array().unwrap() {
            *journaled
                .entry(row["event"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let voucher = data(&c.admin("GET", "/admin/vouchers/meituan/R-1", None));
    let verifies = voucher["verifications"].as_array().unwrap();
    journaled.insert("voucher_verify".into(), verifies.len() as i64);
    journaled.insert(
        "voucher_cancel".into(),
        verifies
            .iter()
            .filter(|x| !x["cancelTime"].is_null())
            .count() as i64,
    );
    let mut listed: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        *listed.entry(r["event"].clone()).or_default() += 1;
    }
    assert_eq!(listed, journaled);
    for (event, n) in &journaled {
        assert_eq!(total(event, "count"), *n, "{event}");
    }

    // Totals agree with the stock's counters and the voucher's uses.
    let counts = data(&c.admin("GET", &format!("/admin/stocks/{s}"), None))["counts"].clone();
    let counter = |k: &str| counts[k].as_i64().unwrap();
    assert_eq!(total("issue", "count"), counter("issued"));
    assert_eq!(total("redeem_net", "count"), counter("used"));
    assert_eq!(total("expire", "count"), counter("expired"));
    assert_eq!(total("deactivate", "count"), counter("deactivated"));
    assert_eq!(
        total("issue", "count")
            - total("redeem_net", "count")
            - total("expire", "count")
            - total("deactivate", "count"),
        counter("available")
    );
    assert_eq!(
        (counter("issued"), counter("used"), counter("available")),
        (6, 2, 2)
    );
    let uses = voucher["count"].as_i64().unwrap() - voucher["remaining"].as_i64().unwrap();
    assert_eq!(total("voucher_net", "uses"), uses);
    assert_eq!(
        (
            total("voucher_verify", "uses"),
            total("voucher_cancel", "uses"),
            uses
        ),
        (3, 1, 2)
    );

    // Amounts: 满减 10 元 on every order.
    assert_eq!(total("redeem", "order_amount_fen"), 65000);
    assert_eq!(total("redeem", "discount_amount_fen"), 3000);
    assert_eq!(total("unredeem", "order_amount_fen"), 15000);
    assert_eq!(total("redeem_net", "order_amount_fen"), 50000);
    assert_eq!(total("redeem_net", "discount_amount_fen"), 2000);
    assert_eq!(total("redeem_net", "pay_amount_fen"), 48000);
    if days.len() == 1 {
        let t = &days[0].totals;
        assert_eq!(t["redeem"]["order_amount_yuan"], "650");
        assert_eq!(t["redeem_net"]["pay_amount_yuan"], "480");
    }

    // One row in detail, and who did what.
    let r = rows
        .iter()
        .find(|r| r["event"] == "redeem" && r["order_id"] == "order-0")
        .unwrap();
    assert_eq!(r["stock_or_voucher"], s);
    assert_eq!(r["coupon_or_verify_id"], coupons[0]);
    assert_eq!(
        (
            r["order_amount_fen"].as_str(),
            r["order_amount_yuan"].as_str()
        ),
        ("20000", "200")
    );
    assert_eq!(
        (
            r["discount_amount_fen"].as_str(),
            r["discount_amount_yuan"].as_str()
        ),
        ("1000", "10")
    );
    assert_eq!(
        (r["pay_amount_fen"].as_str(), r["pay_amount_yuan"].as_str()),
        ("19000", "190")
    );
    assert_eq!(
        (r["source"].as_str(), r["operator"].as_str()),
        ("admin", "admin")
    );
    ms(&json!(r["time"]));
    let claims: Vec<_> = rows
        .iter()
        .filter(|r| r["event"] == "issue" && r["source"] == "platform")
        .collect();
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|r| r["operator"].is_empty()));
    let cancel = rows
        .iter()
        .find(|r| r["event"] == "voucher_cancel")
        .unwrap();
    assert_eq!(cancel["stock_or_voucher"], "meituan:R-1");
    assert_eq!(cancel["coupon_or_verify_id"], verify_id);
    assert_eq!(
        (cancel["uses"].as_str(), cancel["shop_id"].as_str()),
        ("1", "147")
    );
    assert_eq!(cancel["source"], "shop");
    assert_checked(&server);
}

#[test]
fn a_quiet_day_has_zero_totals_and_a_bad_date_is_refused() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({})));
    claim_ok(&c, &s, "u1");
    let quiet = statement(&c, "2020-01-01");
    assert!(quiet.rows.is_empty());
    assert_eq!(quiet.totals.len(), 9);
    for (name, t) in &quiet.totals {
        for (col, v) in t.iter().filter(|(k, _)| *k != "total") {
            assert_eq!(v, "0", "{name} {col}");
        }
    }
    for bad in [
        "2026-13-01",
        "2026-1-1",
        "yesterday",
        "2026-02-30",
        "2026-01-01T00:00",
    ] {
        let a = c.admin("GET", &format!("/admin/report?date={bad}"), None);
        expect_invalid(&a, "date");
    }
    let a = c.admin("GET", "/admin/report", None);
    expect_invalid(&a, "date");
    assert_eq!(a.json()["message"], "date: required");
}

/// A whole-hour offset (`-05:00`, `+00:00`) at which, right now, the local
/// date is not the +08:00 date, with at least an hour to either midnight so
/// the test cannot straddle one. Negative offsets first.
fn offset_on_another_day(now: i64) -> String {
    use coupon_ledger::domain::time::{parse_offset, render_millis};
    let date_at = |offset: &str| render_millis(now, parse_offset(offset).unwrap());
    let beijing = date_at("+08:00")[..10].to_string();
    let mut candidates =
        (-12..=14).map(|h: i32| format!("{}{:02}:00", if h < 0 { '-' } else { '+' }, h.abs()));
    candidates
        .find(|o| {
            let local = date_at(o);
            let minutes: i64 =
                local[11..13].parse::<i64>().unwrap() * 60 + local[14..16].parse::<i64>().unwrap();
            local[..10] != beijing && (60..=23 * 60).contains(&minutes)
        })
        .expect("some whole-hour offset is on another day than +08:00")
}

/// One day later or earlier than `date` (yyyy-MM-dd).
fn day_beside(date: &str, days: i64) -> String {
    use coupon_ledger::domain::time::{parse_time, render_millis};
    let noon = parse_time(&format!("{date}T12:00:00.000Z")).unwrap();
    render_millis(noon + days * 86_400_000, time::UtcOffset::UTC)[..10].to_string()
}

#[test]
fn the_statement_is_cut_at_midnight_of_the_configured_offset() {
    let now = coupon_ledger::domain::time::now_ms();
    let offset = offset_on_another_day(now);
    let server = TestServer::start_with(&format!("utc_offset = \"{offset}\"\n"));
    let c = server.client();
    let s = sid(&c.create_stock(json!({})));
    let id = claim_ok(&c, &s, "u-tz");
    let received = coupon(&c, &id)["receive_time"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(received.ends_with(&offset), "{received} is not in {offset}");
    let local_day = received[..10].to_string();
    let beijing_day = coupon_ledger::domain::time::render_millis(
        coupon_ledger::domain::time::parse_time(&received).unwrap(),
        coupon_ledger::domain::time::parse_offset("+08:00").unwrap(),
    )[..10]
        .to_string();
    assert_ne!(
        local_day, beijing_day,
        "the chosen offset {offset} should put the claim on another day"
    );

    // The claim is on its local day's statement, at its local time ...
    let day = statement(&c, &local_day);
    let row = day
        .rows
        .iter()
        .find(|r| r["coupon_or_verify_id"] == id)
        .unwrap_or_else(|| panic!("claim {id} of {received} not on the {local_day} statement"));
    assert_eq!(row["time"], received);
    assert_eq!(day.totals["issue"]["count"], "1");
    // ... and on no other: not the day before or after, one of which is
    // its +08:00 date, where a statement cut at +08:00 would have put it.
    for other in [day_beside(&local_day, -1), day_beside(&local_day, 1)] {
        let d = statement(&c, &other);
        assert!(d.rows.is_empty(), "{other} ({offset}) lists {:?}", d.rows);
        assert_eq!(d.totals["issue"]["count"], "0", "{other}");
    }
    assert!([day_beside(&local_day, -1), day_beside(&local_day, 1)].contains(&beijing_day));
}
