//! Named operators (`[[admins]]`): each has its own token and role, a read
//! operator cannot change anything, and every admin change is journaled with
//! the operator's name. `admin_token` stays operator `admin` with role write.

use crate::common::*;
use serde_json::{json, Value};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

fn operators() -> String {
    format!(
        "[[admins]]\nname = \"alice\"\ntoken = \"{ALICE}\"\nrole = \"write\"\n\n\
         [[admins]]\nname = \"bob\"\ntoken = \"{BOB}\"\nrole = \"read\"\n"
    )
}

/// An admin request with `token`.
fn as_op(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    as_op_at(server.addr, token, method, path, body)
}

/// [`as_op`] to a server at `addr`.
fn as_op_at(
    addr: std::net::SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    raw_request(
        addr,
        method,
        path,
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
}

fn data(a: &Answer) -> Value {
    expect(a, 0)["data"].clone()
}

#[test]
fn each_operator_is_journaled_by_name_and_admin_token_is_operator_admin() {
    let server = TestServer::start_with(&operators());
    let stock = stock_fields(&unique("op"));
    let id = sid(&stock);
    data(&as_op(&server, ALICE, "POST", "/admin/stocks", Some(stock)));
    data(&as_op(
        &server,
        ADMIN,
        "PATCH",
        &format!("/admin/stocks/{id}"),
        Some(json!({"stock_name": "renamed"})),
    ));
    let j = data(&as_op(
        &server,
        BOB,
        "GET",
        &format!("/admin/stocks/{id}/journal"),
        None,
    ));
    let rows: Vec<(Value, Value, Value)> = j["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["event"].clone(),
                r["source"].clone(),
                r["operator"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("create"), json!("admin"), json!("alice")),
            (json!("edit"), json!("admin"), json!("admin")),
        ]
    );

    // A coupon issued by alice and redeemed by admin.
    let c = data(&as_op(
        &server,
        ALICE,
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": id, "user_code": "u1", "app_channel_id": 1, "request_id": "r1"})),
    ));
    let coupon_id = c["coupon_id"].as_str().unwrap().to_string();
    data(&as_op(
        &server,
        ADMIN,
        "POST",
        &format!("/admin/coupons/{coupon_id}/redeem"),
        Some(json!({"order_id": "o1", "order_amount": 20000})),
    ));
    let got = data(&as_op(
        &server,
        BOB,
        "GET",
        &format!("/admin/coupons/{coupon_id}"),
        None,
    ));
    let ops: Vec<&Value> = got["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["operator"])
        .collect();
    assert_eq!(ops, [&json!("alice"), &json!("admin")]);
    assert_checked(&server);
}

#[test]
fn a_read_operator_reads_but_every_write_is_refused_with_403_and_40105() {
    let server = TestServer::start_with(&operators());
    let client = server.client();
    let stock = client.create_stock(json!({}));
    let id = sid(&stock);
    let coupon_id = data(&client.admin(
        "POST",
        "/admin/coupons",
        Some(json!({"stock_id": id, "user_code": "u1", "app_channel_id": 1, "request_id": "r1"})),
    ))["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/admin/stocks".to_string(),
        format!("/admin/stocks/{id}"),
        format!("/admin/stocks/{id}/journal"),
        "/admin/coupons".to_string(),
        format!("/admin/coupons/{coupon_id}"),
        "/admin/vouchers".to_string(),
        "/admin/outbox".to_string(),
    ] {
        let a = as_op(&server, BOB, "GET", &path, None);
        assert_eq!((a.status, a.code()), (200, 0), "{path}: {}", show(&a));
    }
    let writes: Vec<(&str, String, Value)> = vec![
        ("POST", "/admin/stocks".into(), stock_fields(&unique("no"))),
        (
            "PATCH",
            format!("/admin/stocks/{id}"),
            json!({"stock_name": "x"}),
        ),
        (
            "POST",
            format!("/admin/stocks/{id}/status"),
            json!({"stock_status": 5}),
        ),
        ("POST", format!("/admin/stocks/{id}/resync"), json!({})),
        (
            "POST",
            "/admin/coupons".into(),
            json!({"stock_id": id, "user_code": "u2", "app_channel_id": 1, "request_id": "r2"}),
        ),
        (
            "POST",
            format!("/admin/coupons/{coupon_id}/redeem"),
            json!({"order_id": "o1", "order_amount": 20000}),
        ),
        (
            "POST",
            format!("/admin/coupons/{coupon_id}/unredeem"),
            json!({"order_id": "o1"}),
        ),
        ("POST", "/admin/vouchers".into(), json!([])),
        ("POST", "/admin/outbox/1/retry".into(), json!({})),
        (
            "POST",
            "/admin/outbox/1/abandon".into(),
            json!({"reason": "x"}),
        ),
    ];
    for (method, path, body) in writes {
        let a = as_op(&server, BOB, method, &path, Some(body));
        assert_eq!(a.status, 403, "{method} {path}: {}", show(&a));
        assert_eq!(a.code(), 40105, "{method} {path}");
        assert_eq!(
            a.json()["message"],
            "operator bob may only read (role read); this call would change the ledger"
        );
    }
    // Nothing changed.
    let stocks = data(&client.admin("GET", "/admin/stocks", None));
    assert_eq!(stocks["total"], 1);
    assert_eq!(stocks["stocks"][0]["stock_status"], 3);
    assert_eq!(stocks["stocks"][0]["counts"]["issued"], 1);
    assert_eq!(coupon(&client, &coupon_id)["coupon_status"], 1);
    // A 403 is not a bad token: bob is not locked out after many.
    for _ in 0..12 {
        let a = as_op(&server, BOB, "POST", "/admin/stocks", Some(json!({})));
        assert_eq!(a.status, 403);
    }
    assert_eq!(
        as_op(&server, BOB, "GET", "/admin/stocks", None).status,
        200
    );
}

#[test]
fn unknown_tokens_are_401_and_the_lock_out_covers_named_operators() {
    let server = TestServer::start_with(&operators());
    for token in [
        "nope",
        &ALICE[..ALICE.len() - 1],
        &format!("{ALICE}x"),
        &BOB.to_uppercase(),
    ] {
        let a = as_op(&server, token, "GET", "/admin/stocks", None);
        assert_eq!((a.status, a.code()), (401, 40105), "{token}: {}", show(&a));
    }
    for _ in 0..6 {
        assert_eq!(
            as_op(&server, "bad", "GET", "/admin/stocks", None).status,
            401
        );
    }
    let a = as_op(&server, ALICE, "GET", "/admin/stocks", None);
    assert_eq!((a.status, a.code()), (429, 42900), "{}", show(&a));
    assert!(a.header("Retry-After").is_some());
}

#[test]
fn named_operators_alone_are_enough_without_admin_token() {
    let dir = TempDir::new();
    let db = dir.path().join("ledger.db");
    let text =
        config_toml(&db, "127.0.0.1:0", "").replace(&format!("admin_token = \"{ADMIN}\"\n"), "");
    let text = format!("{text}\n{}", operators());
    let cfg = coupon_ledger::config::Config::from_toml(&text, &|_| None).unwrap();
    assert!(cfg.admin_token.is_empty());
    let running = coupon_ledger::app::start(cfg).unwrap();
    let addr = running.local_addr();
    let get = |token: &str| {
        let auth = format!("Bearer {token}");
        raw_request(
            addr,
            "GET",
            "/admin/stocks",
            &[("Authorization", &auth)],
            b"",
        )
    };
    assert_eq!(get(ALICE).status, 200);
    assert_eq!(get(BOB).status, 200);
    assert_eq!(get(ADMIN).status, 401, "no admin_token, no operator admin");
    assert_eq!(get("").status, 401);
    running.shutdown();
}

#[test]
fn a_bad_admins_table_stops_the_server_with_one_line() {
    let (dir, _db, cfg) = config_file("");
    let base = std::fs::read_to_string(&cfg).unwrap();
    let cases = [
        (
            "[[admins]]\nname = \"a\"\ntoken = \"t1\"\nrole = \"owner\"\n",
            "admins[0].role: \"owner\" is not \"read\" or \"write\"",
        ),
        (
            "[[admins]]\nname = \"a\"\ntoken = \"t1\"\nrole = \"read\"\n[[admins]]\nname = \"a\"\ntoken = \"t2\"\nrole = \"read\"\n",
            "admins[1].name: \"a\" appears twice",
        ),
        (
            "[[admins]]\nname = \"a\"\ntoken = \"t1\"\nrole = \"read\"\n[[admins]]\nname = \"b\"\ntoken = \"t1\"\nrole = \"read\"\n",
            "admins[1].token: the same token as another operator's",
        ),
        (
            "[[admins]]\nname = \"a\"\ntoken = \"t1\"\nrole = \"read\"\ncolour = \"blue\"\n",
            "unknown field `colour`",
        ),
        (
            "[[admins]]\nname = \"\"\ntoken = \"t1\"\nrole = \"read\"\n",
            "admins[0].name: must not be empty",
        ),
    ];
    for (i, (table, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        write_private(&path, &format!("{base}\n{table}"));
        let out = std::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{table}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(message), "{message}: {err}");
    }
}

#[test]
fn outbox_retry_and_abandon_are_journaled_with_the_operator() {
    // Nothing listens on the platform's port: the first attempt kills the call.
    let platform = format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{}\"\napi_key = \"SP\"\nsecret = \"s\"\nmax_attempts = 1\nretry_base_ms = 10\nretry_max_ms = 10\n",
        free_port()
    );
    let server = TestServer::start_stepped(&format!("{}\n{platform}", operators()));
    let stock = stock_fields(&unique("ob"));
    data(&as_op(&server, ALICE, "POST", "/admin/stocks", Some(stock)));
    assert_eq!(server.deliver_all(), 1);
    let dead = data(&as_op(
        &server,
        BOB,
        "GET",
        "/admin/outbox?state=dead",
        None,
    ));
    assert_eq!(dead["total"], 1);
    let id = dead["calls"][0]["id"].as_i64().unwrap();
    data(&as_op(
        &server,
        ALICE,
        "POST",
        &format!("/admin/outbox/{id}/retry"),
        None,
    ));
    assert_eq!(server.deliver_all(), 1);
    data(&as_op(
        &server,
        ADMIN,
        "POST",
        &format!("/admin/outbox/{id}/abandon"),
        Some(json!({"reason": "platform gone"})),
    ));
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let mut stmt = conn
        .prepare("SELECT event, operator, detail FROM journal WHERE entity = 'outbox' AND entity_id = ?1 ORDER BY id")
        .unwrap();
    let rows: Vec<(String, Option<String>, String)> = stmt
        .query_map([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_deref()),
        ("retry", Some("alice"))
    );
    assert!(
        rows[0].2.contains("\"from_state\":\"dead\""),
        "{}",
        rows[0].2
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_deref()),
        ("abandon", Some("admin"))
    );
    drop(stmt);
    drop(conn);
    assert_checked(&server);
}

#[test]
fn an_operator_whose_token_is_in_the_environment_signs_in_with_it() {
    const NIGHT: &str = "night-token-0123456789";
    let (_dir, _db, cfg) = config_file("[[admins]]\nname = \"night-shift\"\nrole = \"write\"\n");
    let server = BinServer::start_with_env(
        &cfg,
        free_port(),
        &[("COUPON_LEDGER_ADMIN_TOKEN_NIGHT_SHIFT", NIGHT)],
    );
    let call = |token: &str, method: &str, path: &str, body: Option<Value>| {
        as_op_at(server.addr, token, method, path, body)
    };
    let stock = stock_fields(&unique("env"));
    let id = sid(&stock);
    data(&call(NIGHT, "POST", "/admin/stocks", Some(stock)));
    let j = data(&call(
        NIGHT,
        "GET",
        &format!("/admin/stocks/{id}/journal"),
        None,
    ));
    assert_eq!(j["journal"][0]["operator"], json!("night-shift"), "{j}");
    let wrong = call("night-token-012345678", "GET", "/admin/stocks", None);
    assert_eq!((wrong.status, wrong.code()), (401, 40105));
}
