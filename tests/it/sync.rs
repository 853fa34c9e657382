//! Sync to the platform over real HTTP: the outbox, the dispatcher against a mock platform,
//! outages, flaky answers, dead calls, ordering, and the expiry sweeper.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use coupon_ledger::outbox::mock::{MockPlatform, Received};
use coupon_ledger::sign::{self, SignRule};
use coupon_ledger::sweeper::sweep;
use serde_json::{json, Value};

const PLATFORM_SECRET: &str = "platform-secret";
const PLATFORM_KEY: &str = "SP-KEY-AT-PLATFORM";

fn platform_toml(port: u16, base_ms: u64, max_ms: u64, attempts: u32) -> String {
    format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{port}\"\napi_key = \"{PLATFORM_KEY}\"\nsecret = \"{PLATFORM_SECRET}\"\n\
         max_attempts = {attempts}\nretry_base_ms = {base_ms}\nretry_max_ms = {max_ms}\n"
    )
}

/// A server syncing to `mock` on its background dispatcher, with fast retries.
fn server_with(mock: &MockPlatform, attempts: u32, extra: &str) -> TestServer {
    let port = mock.local_addr().port();
    TestServer::start_with(&format!(
        "{extra}\n{}",
        platform_toml(port, 20, 100, attempts)
    ))
}

/// A server syncing to `mock` only when the test delivers
/// ([`TestServer::deliver_all`]), so what was sent is known at every step.
fn stepped_server_with(mock: &MockPlatform, attempts: u32, extra: &str) -> TestServer {
    let port = mock.local_addr().port();
    TestServer::start_stepped(&format!(
        "{extra}\n{}",
        platform_toml(port, 20, 100, attempts)
    ))
}

fn outbox(c: &Client, state: &str) -> Vec<Value> {
    let a = c
        .admin(
            "GET",
            &format!("/admin/outbox?state={state}&limit=1000"),
            None,
        )
        .json();
    assert_eq!(a["code"], 0, "{a}");
    a["data"]["calls"].as_array().unwrap().clone()
}

fn health(c: &Client) -> Value {
    raw_request(c.addr, "GET", "/healthz", &[], b"").json()["data"].clone()
}

fn settled(c: &Client) -> bool {
    let h = health(c);
    h["outbox"]["pending"] == 0
}

/// Calls for each path, first arrival of each seq_id only (delivery is at least once).
fn distinct(received: &[Received]) -> Vec<Received> {
    let mut seen = HashSet::new();
    received
        .iter()
        .filter(|r| seen.insert(r.seq_id.clone()))
        .cloned()
        .collect()
}

fn paths(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.path.as_str()).collect()
}

#[test]
fn every_sp_event_produces_exactly_the_right_signed_call() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0).unwrap();
    let server = stepped_server_with(&mock, 5, "");
    let c = server.client();
    let stock = c.create_stock(json!({"stock_status": 1}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    assert_eq!(
        c.admin(
            "PATCH",
            &format!("/admin/stocks/{stock_id}"),
            Some(json!({"stock_name": "改名"}))
        )
        .code(),
        0
    );
    assert_eq!(
        c.admin(
            "POST",
            &format!("/admin/stocks/{stock_id}/status"),
            Some(json!({"stock_status": 3}))
        )
        .code(),
        0
    );
    let issued = c.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": stock_id, "user_code": "u1", "app_channel_id": 1, "request_id": "op-1", "mobile_phone": "13911112222"})),
    );
    assert_eq!(issued.code(), 0);
    let coupon_id = issued.json()["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    let redeem = c.admin(
        "POST",
        &format!("/admin/coupons/{coupon_id}/redeem"),
        Some(json!({"order_id": "o-1", "order_amount": 20000})),
    );
    assert_eq!(redeem.code(), 0);
    let usage_time = redeem.json()["data"]["usage_time"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.admin(
            "POST",
            &format!("/admin/coupons/{coupon_id}/unredeem"),
            Some(json!({"order_id": "o-1"}))
        )
        .code(),
        0
    );
    // Platform-initiated changes: a claim and a deactivation cause no call.
    let claimed = c.claim(&stock_id, "u2", "p-1").json();
    let claimed_id = claimed["data"]["coupon_id"].as_str().unwrap().to_string();
    let d = c.call(
        "/sp/coupon/deactivate",
        json!({"app_channel_id": 1, "user_code": "u2", "stock_id": stock_id, "coupon_id": claimed_id, "coupon_status": 4}),
    );
    assert_eq!(d.code(), 0);

    assert_eq!(server.deliver_all(), 6, "one attempt per call");
    assert!(settled(&c), "outbox did not drain: {:?}", health(&c));
    let got = mock.received();
    assert_eq!(
        paths(&got),
        [
            "/stock/rsync",
            "/stock/rsync",
            "/stock/status/rsync",
            "/coupon/rsync",
            "/coupon/status/rsync",
            "/coupon/status/rsync"
        ],
        "{got:#?}"
    );
    assert_eq!(mock.bad_signatures(), 0);
    for r in &got {
        let body = r.body.as_object().unwrap();
        assert!(
            sign::verify(body, &SignRule::default(), PLATFORM_SECRET),
            "bad sign on {}",
            r.path
        );
        assert_eq!(body["api_key"], PLATFORM_KEY);
        assert!(body["seq_id"].as_str().unwrap().starts_with("sp-"));
        assert!(body["nonce"].as_str().is_some() && body["timestamp"].as_str().is_some());
    }
    let seq: HashSet<&str> = got.iter().map(|r| r.seq_id.as_str()).collect();
    assert_eq!(seq.len(), got.len(), "each call has its own seq_id");

    let stock_call = &got[1].body;
    for k in STOCK_FIELDS {
        assert!(stock_call.get(k).is_some(), "/stock/rsync lacks {k}");
    }
    assert_eq!(stock_call["stock_name"], "改名");
    assert!(
        stock_call.get("discount_coupon").is_none(),
        "only the type's block"
    );
    assert_eq!(got[2].body["stock_id"], stock_id.as_str());
    assert_eq!(got[2].body["stock_status"], 3);

    let coupon_call = &got[3].body;
    assert_eq!(coupon_call["coupon_id"], coupon_id.as_str());
    assert_eq!(coupon_call["user_code"], "u1");
    assert_eq!(coupon_call["app_channel_id"], 1);
    assert_eq!(coupon_call["coupon_status"], 1);
    assert_eq!(
        coupon_call["fixed_normal_coupon"],
        json!({"coupon_amount": 1000, "transaction_minimum": 10000})
    );
    for k in [
        "app_id",
        "stock_id",
        "coupon_type",
        "available_begin_time",
        "available_end_time",
        "receive_time",
    ] {
        assert!(coupon_call.get(k).is_some(), "/coupon/rsync lacks {k}");
    }
    assert!(
        !coupon_call.to_string().contains("13911112222"),
        "the full phone number never leaves the ledger"
    );

    let used = &got[4].body;
    assert_eq!(used["coupon_status"], 2);
    assert_eq!(used["usage_time"], usage_time.as_str());
    assert_eq!(used["version"], "1.0.1");
    assert!(used["event_time"].as_str().is_some());
    let back = &got[5].body;
    assert_eq!(back["coupon_status"], 1);
    assert!(back.get("usage_time").is_none());
    assert!(outbox(&c, "dead").is_empty());
    assert_eq!(outbox(&c, "delivered").len(), 6);
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn without_a_platform_nothing_is_queued_but_the_journal_has_it_all() {
    let server = TestServer::start();
    let c = server.client();
    c.create_stock(json!({}));
    assert!(outbox(&c, "pending").is_empty());
    assert_eq!(health(&c)["sync"], "disabled");
}

#[test]
fn a_flaky_platform_gets_every_call_in_the_end() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.5).unwrap();
    let server = server_with(&mock, 200, "");
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    for i in 0..8 {
        let a = c.admin(
            "POST",
            "/admin/coupons",
            Some(json!({"stock_id": stock_id, "user_code": format!("f{i}"), "app_channel_id": 1, "request_id": format!("f-{i}")})),
        );
        let id = a.json()["data"]["coupon_id"].as_str().unwrap().to_string();
        let r = c.admin(
            "POST",
            &format!("/admin/coupons/{id}/redeem"),
            Some(json!({"order_id": format!("fo-{i}"), "order_amount": 10000})),
        );
        assert_eq!(r.code(), 0);
    }
    assert!(
        wait_until(Duration::from_secs(30), || settled(&c)),
        "outbox did not drain: {:?}",
        health(&c)
    );
    let got = distinct(&mock.received());
    assert_eq!(got.len(), 17, "1 stock + 8 coupons + 8 redemptions");
    assert!(mock.failed() > 0, "the mock should have failed some calls");
    assert!(outbox(&c, "dead").is_empty());
    assert_in_order_per_coupon(&got);
}

/// Per coupon: `/coupon/rsync` (when there is one) comes first, and status calls follow in
/// creation order; every coupon call comes after its stock's first `/stock/rsync`.
fn assert_in_order_per_coupon(got: &[Received]) {
    let mut stock_seen: HashSet<String> = HashSet::new();
    let mut last_status: HashMap<String, Vec<i64>> = HashMap::new();
    for r in got {
        let stock = r.body["stock_id"].as_str().unwrap().to_string();
        match r.path.as_str() {
            "/stock/rsync" => {
                stock_seen.insert(stock);
            }
            "/coupon/rsync" | "/coupon/status/rsync" => {
                assert!(
                    stock_seen.contains(&stock),
                    "{} before its stock's /stock/rsync",
                    r.path
                );
                let coupon = r.body["coupon_id"].as_str().unwrap().to_string();
                let seen = last_status.entry(coupon.clone()).or_default();
                if r.path == "/coupon/rsync" {
                    assert!(
                        seen.is_empty(),
                        "coupon {coupon}: /coupon/rsync after a status call"
                    );
                }
                seen.push(r.body["coupon_status"].as_i64().unwrap());
            }
            _ => {}
        }
    }
    for (coupon, statuses) in last_status {
        assert!(
            statuses.windows(2).all(|w| w[0] != w[1]),
            "coupon {coupon}: statuses out of order {statuses:?}"
        );
    }
}

#[test]
fn a_call_that_keeps_failing_ends_dead_and_is_delivered_after_a_manual_retry() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 1.0).unwrap();
    let server = stepped_server_with(&mock, 3, "");
    let c = server.client();
    c.create_stock(json!({}));
    assert_eq!(server.deliver_all(), 3, "three attempts, then dead");
    assert_eq!(outbox(&c, "dead").len(), 1);
    let dead = outbox(&c, "dead")[0].clone();
    assert_eq!(dead["attempts"], 3);
    assert!(dead["last_error"].as_str().unwrap().len() > 3, "{dead}");
    assert_eq!(health(&c)["outbox"]["dead"], 1);
    assert!(mock.received().is_empty());

    mock.set_fail_rate(0.0);
    let id = dead["id"].as_i64().unwrap();
    let retried = c.admin("POST", &format!("/admin/outbox/{id}/retry"), None);
    assert_eq!(retried.code(), 0);
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(mock.received().len(), 1);
    assert_eq!(
        mock.received()[0].seq_id,
        dead["seq_id"].as_str().unwrap(),
        "seq_id is stable across retries"
    );
    assert_eq!(outbox(&c, "delivered").len(), 1);
    // A delivered call cannot be retried; an unknown id is named.
    assert_eq!(
        c.admin("POST", &format!("/admin/outbox/{id}/retry"), None)
            .code(),
        40905
    );
    assert_eq!(
        c.admin("POST", "/admin/outbox/999999/retry", None).code(),
        40001
    );
    assert_eq!(
        c.admin("GET", "/admin/outbox?state=lost", None).code(),
        40001
    );
}

#[test]
fn unrelated_coupons_do_not_wait_behind_a_dead_call_but_its_own_coupon_does() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0).unwrap();
    let server = stepped_server_with(&mock, 2, "");
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(mock.received().len(), 1);
    let issue = |user: &str| {
        let a = c.admin(
            "POST",
            "/admin/coupons",
            Some(json!({"stock_id": stock_id, "user_code": user, "app_channel_id": 1, "request_id": format!("req-{user}")})),
        );
        a.json()["data"]["coupon_id"].as_str().unwrap().to_string()
    };
    mock.set_fail_rate(1.0);
    let a = issue("a");
    assert_eq!(server.deliver_all(), 2, "two attempts, then dead");
    assert_eq!(outbox(&c, "dead").len(), 1);
    mock.set_fail_rate(0.0);
    let r = c.admin(
        "POST",
        &format!("/admin/coupons/{a}/redeem"),
        Some(json!({"order_id": "oa", "order_amount": 10000})),
    );
    assert_eq!(r.code(), 0);
    let b = issue("b");
    server.deliver_all();
    assert!(
        mock.received()
            .iter()
            .any(|r| r.body["coupon_id"] == b.as_str()),
        "coupon b waited behind coupon a"
    );
    // a's status call waits behind a's dead /coupon/rsync.
    assert!(!mock
        .received()
        .iter()
        .any(|r| r.body["coupon_id"] == a.as_str()));
    let pending = outbox(&c, "pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        health(&c)["outbox"]["blocked_by_dead"],
        1,
        "the operator can see what waits"
    );
    assert_eq!(pending[0]["path"], "/coupon/status/rsync");
    let dead_id = outbox(&c, "dead")[0]["id"].as_i64().unwrap();
    assert_eq!(
        c.admin("POST", &format!("/admin/outbox/{dead_id}/retry"), None)
            .code(),
        0
    );
    assert_eq!(server.deliver_all(), 2, "a's two calls, in order");
    assert!(settled(&c), "{:?}", health(&c));
    let got = distinct(&mock.received());
    let for_a: Vec<&str> = got
        .iter()
        .filter(|r| r.body["coupon_id"] == a.as_str())
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(for_a, ["/coupon/rsync", "/coupon/status/rsync"]);
    assert_in_order_per_coupon(&got);
}

#[test]
fn outage_and_kill_9_lose_no_call_and_keep_order() {
    let platform_port = free_port();
    // Nothing listens on the platform's port yet: every attempt is refused.
    let (_dir, db, cfg) = config_file(&platform_toml(platform_port, 50, 200, 10_000));
    let server = BinServer::start(&cfg, free_port());
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    let mut coupons = Vec::new();
    for i in 0..6 {
        let a = c.admin(
            "POST",
            "/admin/coupons",
            Some(json!({"stock_id": stock_id, "user_code": format!("o{i}"), "app_channel_id": 1, "request_id": format!("o-{i}")})),
        );
        let id = a.json()["data"]["coupon_id"].as_str().unwrap().to_string();
        if i % 2 == 0 {
            let r = c.admin(
                "POST",
                &format!("/admin/coupons/{id}/redeem"),
                Some(json!({"order_id": format!("oo-{i}"), "order_amount": 10000})),
            );
            assert_eq!(r.code(), 0);
        }
        if i == 0 {
            let r = c.admin(
                "POST",
                &format!("/admin/coupons/{id}/unredeem"),
                Some(json!({"order_id": "oo-0"})),
            );
            assert_eq!(r.code(), 0);
        }
        coupons.push(id);
    }
    let total = outbox(&c, "pending").len();
    assert_eq!(total, 1 + 6 + 3 + 1);
    server.kill9();

    let server = BinServer::start(&cfg, free_port());
    let c = server.client();
    assert_eq!(
        outbox(&c, "pending").len(),
        total,
        "every call survived the kill"
    );
    let mock =
        MockPlatform::start(&format!("127.0.0.1:{platform_port}"), PLATFORM_SECRET, 0.0).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || settled(&c)),
        "outbox did not drain: {:?}",
        health(&c)
    );
    assert!(outbox(&c, "dead").is_empty());
    let got = distinct(&mock.received());
    assert_eq!(got.len(), total);
    assert_in_order_per_coupon(&got);
    let first: Vec<i64> = got
        .iter()
        .filter(|r| r.body["coupon_id"] == coupons[0].as_str())
        .map(|r| r.body["coupon_status"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [1, 2, 1], "issue, redeem, un-redeem in that order");

    let out = Command::new(bin())
        .args(["outbox", "list", "--state", "delivered", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), total);
    drop(server);
    let (ok, out) = check(&db);
    assert!(ok, "{out}");
}

#[test]
fn the_sweeper_expires_a_coupon_within_one_interval_and_syncs_it() {
    // The sweeper's step is driven here; its thread sleeps for an hour.
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0).unwrap();
    let server = stepped_server_with(&mock, 5, "sweep_interval_s = 3600");
    let c = server.client();
    let end = time_from_now(1);
    let stock = c.create_stock(json!({ "available_end_time": end }));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    let claimed = c.claim(&stock_id, "sweep-user", "sw-1").json();
    let coupon_id = claimed["data"]["coupon_id"].as_str().unwrap().to_string();
    assert_eq!(sweep(&server.store(), 100).unwrap(), 0, "not due yet");
    wait_past(&json!(end));
    assert_eq!(sweep(&server.store(), 100).unwrap(), 1);
    assert_eq!(coupon(&c, &coupon_id)["coupon_status"], 3, "expired");
    let got = c
        .admin("GET", &format!("/admin/coupons/{coupon_id}"), None)
        .json();
    let last = got["data"]["journal"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["source"], "sweeper");
    assert_eq!(last["to_status"], 3);
    server.deliver_all();
    assert!(mock
        .received()
        .iter()
        .any(|r| r.path == "/coupon/status/rsync"
            && r.body["coupon_id"] == coupon_id.as_str()
            && r.body["coupon_status"] == 3));
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

#[test]
fn claims_go_through_between_sweeper_batches() {
    // The sweeper's step is driven here; its thread sleeps for an hour.
    let server = TestServer::start_with("sweep_interval_s = 3600");
    let c = server.client();
    let end = time_from_now(2);
    let doomed = c.create_stock(
        json!({"max_coupons": 200, "max_coupons_per_user": 200, "available_end_time": end}),
    );
    let doomed_id = doomed["stock_id"].as_str().unwrap().to_string();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (id, c) = (doomed_id.clone(), c);
            std::thread::spawn(move || {
                for i in 0..50 {
                    assert_eq!(c.claim(&id, "many", &format!("d{t}-{i}")).code(), 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let live = c.create_stock(json!({"max_coupons": 100000, "max_coupons_per_user": 100000}));
    let live_id = live["stock_id"].as_str().unwrap().to_string();
    wait_past(&json!(end));
    // Claim continuously while the sweeper expires 200 coupons, 5 per transaction.
    let stop = Arc::new(AtomicBool::new(false));
    let claims = Arc::new(AtomicUsize::new(0));
    let claimer = {
        let (stop, claims, id) = (stop.clone(), claims.clone(), live_id.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(c.claim(&id, "live", &format!("l-{i}")).code(), 0);
                claims.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || claims
        .load(Ordering::Relaxed)
        > 0));
    let swept = sweep(&server.store(), 5).unwrap();
    stop.store(true, Ordering::Relaxed);
    claimer.join().unwrap();
    assert_eq!(swept, 200, "the sweeper did not expire all 200");
    let s = c
        .admin("GET", &format!("/admin/stocks/{doomed_id}"), None)
        .json();
    assert_eq!(s["data"]["counts"]["expired"], 200);
    // Journal ids are commit order: some claim committed between the sweep's first and last batch.
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let (first, last): (i64, i64) = conn
        .query_row(
            "SELECT min(id), max(id) FROM journal WHERE source = 'sweeper'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let between: i64 = conn
        .query_row(
            "SELECT count(*) FROM journal WHERE event = 'issue' AND id > ?1 AND id < ?2",
            [first, last],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        between > 0,
        "no claim committed during the sweep: claims waited for the whole sweep"
    );
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
}

fn abandon(c: &Client, id: i64, body: Value) -> Answer {
    c.admin("POST", &format!("/admin/outbox/{id}/abandon"), Some(body))
}

fn journal_rows(
    db: &std::path::Path,
    entity: &str,
) -> Vec<(String, String, Option<String>, Value)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT entity_id, event, seq_id, detail FROM journal WHERE entity = ?1 ORDER BY id",
        )
        .unwrap();
    let rows = stmt
        .query_map([entity], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .unwrap();
    rows.map(|r| {
        let (id, event, seq, detail) = r.unwrap();
        let detail = detail.map_or(Value::Null, |d| serde_json::from_str(&d).unwrap());
        (id, event, seq, detail)
    })
    .collect()
}

#[test]
fn abandoning_a_dead_stock_call_frees_its_lane_and_a_resync_sends_the_current_state() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0).unwrap();
    let server = stepped_server_with(&mock, 2, "");
    let c = server.client();
    let stock_id = sid(&c.create_stock(json!({})));
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(mock.received().len(), 1);

    // The platform refuses the edit until the call is dead.
    mock.set_fail_rate(1.0);
    let patch = |name: &str| {
        let a = c.admin(
            "PATCH",
            &format!("/admin/stocks/{stock_id}"),
            Some(json!({ "stock_name": name })),
        );
        expect(&a, 0);
    };
    patch("refused-name");
    assert_eq!(server.deliver_all(), 2, "two attempts, then dead");
    assert_eq!(outbox(&c, "dead").len(), 1);
    mock.set_fail_rate(0.0);
    let dead = outbox(&c, "dead")[0].clone();
    let dead_id = dead["id"].as_i64().unwrap();
    assert_eq!(dead["path"], "/stock/rsync");

    // Later calls of the stock and of its coupons wait behind it.
    let issued = c.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": stock_id, "user_code": "u-lane", "app_channel_id": 1, "request_id": "lane-1"})),
    );
    let coupon_id = expect(&issued, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    patch("later-name");
    assert_eq!(health(&c)["outbox"]["blocked_by_dead"], 2);
    assert_eq!(
        server.deliver_all(),
        0,
        "nothing is due behind the dead call"
    );
    assert_eq!(
        mock.received().len(),
        1,
        "a call behind the dead one was sent: {:?}",
        paths(&mock.received())
    );

    // Refusals: a pending call, a missing or blank reason, an unknown id.
    let pending_id = outbox(&c, "pending")[0]["id"].as_i64().unwrap();
    let a = abandon(&c, pending_id, json!({"reason": "not dead yet"}));
    let v = expect(&a, 40905);
    assert!(
        v["message"].as_str().unwrap().contains("only a dead call"),
        "{v}"
    );
    expect_invalid(&abandon(&c, dead_id, json!({})), "reason");
    expect_invalid(&abandon(&c, dead_id, json!({"reason": ""})), "reason");
    expect_invalid(&abandon(&c, dead_id, json!({"reason": "   "})), "reason");
    expect_invalid(
        &abandon(&c, dead_id, json!({"reason": "x".repeat(257)})),
        "reason",
    );
    expect_invalid(&abandon(&c, dead_id, json!({"reason": 7})), "reason");
    expect_invalid(&abandon(&c, 999_999, json!({"reason": "gone"})), "id");
    expect_invalid(
        &c.admin(
            "POST",
            "/admin/outbox/abc/abandon",
            Some(json!({"reason": "x"})),
        ),
        "id",
    );
    assert_eq!(
        c.admin("GET", &format!("/admin/outbox/{dead_id}/abandon"), None)
            .status,
        405
    );
    assert_eq!(outbox(&c, "dead").len(), 1, "a refusal changes nothing");

    let a = abandon(
        &c,
        dead_id,
        json!({"reason": "platform refuses the old name; resynced instead"}),
    );
    let call = expect(&a, 0)["data"].clone();
    assert_eq!(call["state"], "abandoned");
    assert_eq!(call["id"], dead_id);
    assert_eq!(
        call["abandon_reason"],
        "platform refuses the old name; resynced instead"
    );
    ms(&call["abandoned_time"]);

    // The lane is free: the calls behind it arrive, in order; the abandoned one never does.
    assert_eq!(server.deliver_all(), 2);
    assert!(settled(&c), "{:?}", health(&c));
    // The coupon's call and the stock's later edit are in different lanes: either may come first.
    let got = distinct(&mock.received());
    let mut sent = paths(&got);
    sent.sort_unstable();
    assert_eq!(
        sent,
        ["/coupon/rsync", "/stock/rsync", "/stock/rsync"],
        "{got:#?}"
    );
    let names: Vec<&Value> = got
        .iter()
        .filter(|r| r.path == "/stock/rsync")
        .map(|r| &r.body["stock_name"])
        .collect();
    assert_eq!(names, [&json!("代驾10元代金券"), &json!("later-name")]);
    assert!(got
        .iter()
        .any(|r| r.path == "/coupon/rsync" && r.body["coupon_id"] == coupon_id.as_str()));
    assert_in_order_per_coupon(&got);
    assert!(got
        .iter()
        .all(|r| r.seq_id != dead["seq_id"].as_str().unwrap()));

    let listed = outbox(&c, "abandoned");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], dead_id);
    let h = health(&c)["outbox"].clone();
    assert_eq!(
        (
            h["abandoned"].clone(),
            h["dead"].clone(),
            h["blocked_by_dead"].clone()
        ),
        (json!(1), json!(0), json!(0)),
        "{h}"
    );
    assert_eq!(h["delivered"], 3, "{h}");
    // Abandoned is final: no second abandon, no retry.
    expect(&abandon(&c, dead_id, json!({"reason": "again"})), 40905);
    expect(
        &c.admin("POST", &format!("/admin/outbox/{dead_id}/retry"), None),
        40905,
    );
    let journal = journal_rows(&server.db(), "outbox");
    assert_eq!(journal.len(), 1, "{journal:?}");
    let (entity_id, event, seq, detail) = &journal[0];
    assert_eq!(entity_id, &dead_id.to_string());
    assert_eq!(event, "abandon");
    assert_eq!(seq.as_deref(), dead["seq_id"].as_str());
    assert_eq!(
        detail["reason"],
        "platform refuses the old name; resynced instead"
    );
    assert_eq!(detail["path"], "/stock/rsync");

    // Resync the stock: its current state goes out with new seq_ids.
    let a = c.admin("POST", &format!("/admin/stocks/{stock_id}/resync"), None);
    let calls = expect(&a, 0)["data"]["calls"].as_array().unwrap().clone();
    let resync_paths: Vec<&str> = calls.iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(resync_paths, ["/stock/rsync", "/stock/status/rsync"]);
    assert!(calls.iter().all(|x| x["state"] == "pending"));
    assert_eq!(calls[0]["body"]["stock_name"], "later-name");
    assert_eq!(server.deliver_all(), 2);
    assert!(settled(&c), "{:?}", health(&c));
    let got = distinct(&mock.received());
    assert_eq!(got.len(), 5, "{:?}", paths(&got));
    for (sent, call) in got[3..].iter().zip(&calls) {
        assert_eq!(sent.path, call["path"].as_str().unwrap());
        assert_eq!(sent.seq_id, call["seq_id"].as_str().unwrap());
    }
    assert_eq!(got[3].body["stock_name"], "later-name");
    for k in STOCK_FIELDS {
        assert!(
            got[3].body.get(k).is_some(),
            "resync /stock/rsync lacks {k}"
        );
    }
    assert_eq!(got[4].body["stock_status"], 3);

    // Resync the coupon after a redemption: it carries status 2 and the usage time.
    let r = c.admin(
        "POST",
        &format!("/admin/coupons/{coupon_id}/redeem"),
        Some(json!({"order_id": "lane-o1", "order_amount": 20000})),
    );
    let usage_time = expect(&r, 0)["data"]["usage_time"].clone();
    assert_eq!(server.deliver_all(), 1);
    assert!(settled(&c), "{:?}", health(&c));
    let before = distinct(&mock.received()).len();
    let a = c.admin("POST", &format!("/admin/coupons/{coupon_id}/resync"), None);
    let calls = expect(&a, 0)["data"]["calls"].as_array().unwrap().clone();
    let resync_paths: Vec<&str> = calls.iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(resync_paths, ["/coupon/rsync", "/coupon/status/rsync"]);
    assert_eq!(server.deliver_all(), 2);
    assert!(settled(&c), "{:?}", health(&c));
    let got = distinct(&mock.received());
    assert_eq!(got.len(), before + 2);
    let (full, status) = (&got[before].body, &got[before + 1].body);
    assert_eq!(full["coupon_id"], coupon_id.as_str());
    assert_eq!(full["coupon_status"], 2);
    assert_eq!(full["usage_time"], usage_time);
    assert_eq!(full["user_code"], "u-lane");
    assert_eq!(status["coupon_status"], 2);
    assert_eq!(status["usage_time"], usage_time);
    assert_eq!(got[before].seq_id, calls[0]["seq_id"].as_str().unwrap());
    assert_eq!(mock.bad_signatures(), 0);
    let resyncs: Vec<_> = journal_rows(&server.db(), "outbox")
        .into_iter()
        .filter(|j| j.1 == "resync")
        .collect();
    assert_eq!(resyncs.len(), 4);
    assert_checked(&server);
}

#[test]
fn resync_refuses_unknown_ids_and_a_ledger_without_sync() {
    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0).unwrap();
    let server = server_with(&mock, 2, "");
    let c = server.client();
    expect(
        &c.admin("POST", "/admin/stocks/no-such-stock/resync", None),
        40401,
    );
    expect(
        &c.admin("POST", "/admin/coupons/123456/resync", None),
        40402,
    );
    assert_eq!(
        c.admin("GET", "/admin/stocks/no-such-stock/resync", None)
            .status,
        405
    );
    assert!(outbox(&c, "pending").is_empty());

    let plain = TestServer::start();
    let p = plain.client();
    let stock_id = sid(&p.create_stock(json!({})));
    let v = expect(
        &p.admin("POST", &format!("/admin/stocks/{stock_id}/resync"), None),
        40905,
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("sync to the platform is disabled"),
        "{v}"
    );
    assert!(outbox(&p, "pending").is_empty());
}

#[test]
fn retention_prunes_only_final_calls_and_keeps_the_journal() {
    use coupon_ledger::domain::time::now_ms;
    use coupon_ledger::sweeper::prune_outbox;

    let mock = MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 1.0).unwrap();
    let server = stepped_server_with(&mock, 1, "");
    let c = server.client();
    let store = server.store();
    // One call to abandon, one left dead with a pending call behind it.
    let doomed = sid(&c.create_stock(json!({})));
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(outbox(&c, "dead").len(), 1);
    let stuck = sid(&c.create_stock(json!({})));
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(outbox(&c, "dead").len(), 2);
    let dead = outbox(&c, "dead");
    let to_abandon = dead[0]["id"].as_i64().unwrap();
    assert_eq!(dead[0]["stock_id"], doomed.as_str());
    expect(&abandon(&c, to_abandon, json!({"reason": "test"})), 0);
    expect(
        &c.admin(
            "PATCH",
            &format!("/admin/stocks/{stuck}"),
            Some(json!({"stock_name": "waits"})),
        ),
        0,
    );
    // Three delivered calls, the newest call of all among them.
    mock.set_fail_rate(0.0);
    let fine = sid(&c.create_stock(json!({})));
    for name in ["one", "two"] {
        expect(
            &c.admin(
                "PATCH",
                &format!("/admin/stocks/{fine}"),
                Some(json!({ "stock_name": name })),
            ),
            0,
        );
    }
    assert_eq!(server.deliver_all(), 3);
    assert_eq!(outbox(&c, "delivered").len(), 3);
    let newest = outbox(&c, "delivered")[2]["id"].as_i64().unwrap();
    let all = |c: &Client| {
        let a = c.admin("GET", "/admin/outbox?limit=1000", None).json();
        a["data"]["calls"].as_array().unwrap().len()
    };
    assert_eq!(all(&c), 6);
    let journal_before =
        journal_rows(&server.db(), "outbox").len() + journal_rows(&server.db(), "stock").len();
    let health_before = health(&c)["outbox"].clone();

    // Nothing is old enough yet.
    assert_eq!(prune_outbox(&store, now_ms(), 30, 2).unwrap(), 0);
    assert_eq!(all(&c), 6);
    // 31 days later: the delivered and abandoned calls go, two per transaction.
    let later = now_ms() + 31 * 86_400_000;
    assert_eq!(prune_outbox(&store, later, 30, 2).unwrap(), 4);
    assert!(outbox(&c, "delivered").is_empty());
    assert!(outbox(&c, "abandoned").is_empty());
    assert_eq!(outbox(&c, "dead").len(), 1);
    assert_eq!(outbox(&c, "pending").len(), 1);
    assert_eq!(prune_outbox(&store, later, 30, 2).unwrap(), 0);
    // The journal is never pruned; health still counts every call ever delivered or abandoned.
    assert_eq!(
        journal_rows(&server.db(), "outbox").len() + journal_rows(&server.db(), "stock").len(),
        journal_before
    );
    let h = health(&c)["outbox"].clone();
    assert_eq!(h["delivered"], health_before["delivered"], "{h}");
    assert_eq!(h["delivered"], 3);
    assert_eq!(h["abandoned"], 1);
    // A pending or dead call cannot be deleted, even behind the ledger's back.
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let e = conn
        .execute("DELETE FROM outbox WHERE state IN ('pending', 'dead')", [])
        .unwrap_err();
    assert!(e.to_string().contains("never deleted"), "{e}");
    // Ids are never reused, even after the newest call was pruned.
    let a = c.admin("POST", &format!("/admin/stocks/{fine}/resync"), None);
    let calls = expect(&a, 0)["data"]["calls"].clone();
    assert!(calls[0]["id"].as_i64().unwrap() > newest, "{calls}");
    assert_checked(&server);
}
