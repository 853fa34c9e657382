//! The command line's mirrors of the admin API (`stock`, `coupon`, `report`),
//! each run as the real binary against a running server.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

/// Runs the binary; returns (exit ok, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("COUPON_LEDGER_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Runs a mirror against `server` with the admin token; answers the printed `data`.
fn data(server: &str, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", server, "--token", ADMIN]);
    let (ok, out, err) = run(&all);
    assert!(ok, "{args:?}: {err}");
    assert!(err.is_empty(), "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Runs a mirror expected to be refused; answers its one stderr line.
fn refused(args: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(!ok, "{args:?} should fail: {out}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err.trim_end().to_string()
}

fn write_json(dir: &Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn stock_and_coupon_mirrors_do_what_the_admin_api_does() {
    let server = TestServer::start();
    let url = format!("http://{}", server.addr);
    let dir = TempDir::new();
    let mut body = stock_fields(&unique("cli"));
    body["stock_status"] = json!(1);
    let id = sid(&body);
    let file = write_json(dir.path(), "stock.json", &body);

    let created = data(&url, &["stock", "create", &file]);
    assert_eq!(created["stock_id"], json!(id));
    assert_eq!(created["stock_status"], 1);
    assert_eq!(created["counts"]["issued"], 0);
    // host:port works as well as a URL.
    let listed = data(&server.addr.to_string(), &["stock", "list"]);
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["stocks"][0]["stock_id"], json!(id));
    let moved = data(&url, &["stock", "status", &id, "3"]);
    assert_eq!(moved["stock_status"], 3);
    let shown = data(&url, &["stock", "show", &id]);
    assert_eq!(shown["stock_status"], 3);

    let req =
        json!({"stock_id": id, "user_code": "u-cli", "app_channel_id": 1, "request_id": "cli-1"});
    let file = write_json(dir.path(), "issue.json", &req);
    let issued = data(&url, &["coupon", "issue", &file]);
    let coupon_id = issued["coupon_id"].as_str().unwrap().to_string();
    assert_eq!(issued["coupon_status"], 1);
    let r = data(
        &url,
        &[
            "coupon",
            "redeem",
            &coupon_id,
            "--order-id",
            "cli-o1",
            "--amount",
            "20000",
        ],
    );
    assert_eq!(
        (
            r["order_amount"].clone(),
            r["discount_amount"].clone(),
            r["pay_amount"].clone()
        ),
        (json!(20000), json!(1000), json!(19000))
    );
    let u = data(
        &url,
        &["coupon", "unredeem", &coupon_id, "--order-id", "cli-o1"],
    );
    assert_eq!(u["coupon_status"], 1);
    let shown = data(&url, &["coupon", "show", &coupon_id]);
    let events: Vec<&str> = shown["journal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["issue", "redeem", "unredeem"]);
    assert!(shown["journal"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["operator"] == "admin"));

    // What the server refuses is printed as code and message, exit 1.
    let refused_as_admin = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str(), "--token", ADMIN]);
        refused(&all)
    };
    let err = refused_as_admin(&["coupon", "show", "1234567890"]);
    assert_eq!(err, "coupon-ledger: 40402 coupon not found");
    let err = refused_as_admin(&["stock", "status", &id, "1"]);
    assert_eq!(err, "coupon-ledger: 40905 stock_status: 3 cannot become 1");
    let err = refused_as_admin(&["stock", "create", &file]);
    assert!(err.starts_with("coupon-ledger: 40001 "), "{err}");
    let err = refused_as_admin(&[
        "coupon",
        "redeem",
        &coupon_id,
        "--order-id",
        "o2",
        "--amount",
        "100",
    ]);
    assert_eq!(
        err,
        "coupon-ledger: 40908 order amount below the coupon's threshold"
    );
    let err = refused(&["stock", "list", "--server", &url, "--token", "wrong"]);
    assert_eq!(err, "coupon-ledger: 40105 bad or missing admin token");
    let err = refused_as_admin(&["stock", "show", "no/such stock"]);
    assert_eq!(err, "coupon-ledger: 40401 stock not found");
    // An amount is integer fen: clap refuses anything else before any request.
    let (ok, _, err) = run(&[
        "coupon",
        "redeem",
        &coupon_id,
        "--order-id",
        "o3",
        "--amount",
        "19.99",
        "--server",
        &url,
        "--token",
        ADMIN,
    ]);
    assert!(!ok && err.contains("--amount"), "{err}");
    assert_eq!(coupon(&server.client(), &coupon_id)["coupon_status"], 1);
    assert_checked(&server);
}

#[test]
fn report_prints_the_statement_and_refuses_a_bad_date() {
    let server = TestServer::start();
    let c = server.client();
    let s = sid(&c.create_stock(json!({})));
    claim_ok(&c, &s, "u1");
    let url = format!("http://{}", server.addr);
    let date = time_from_now(0)[..10].to_string();
    let (ok, out, err) = run(&[
        "report", "--date", &date, "--server", &url, "--token", ADMIN,
    ]);
    assert!(ok, "{err}");
    let api = c.admin("GET", &format!("/admin/report?date={date}"), None);
    if time_from_now(0)[..10] == date {
        assert_eq!(out.as_bytes(), api.body.as_slice());
    }
    assert!(out.starts_with("time,event,"), "{out}");
    assert!(out.contains(",issue,"), "{out}");
    let err = refused(&[
        "report",
        "--date",
        "2026-02-30",
        "--server",
        &url,
        "--token",
        ADMIN,
    ]);
    assert!(err.starts_with("coupon-ledger: 40001 date: "), "{err}");
}

#[test]
fn mirrors_find_the_server_and_token_in_the_config_and_its_admin_listen() {
    let dir = TempDir::new();
    let db = dir.path().join("ledger.db");
    let (port, admin_port) = (free_port(), free_port());
    let cfg = dir.path().join("ledger.toml");
    write_private(
        &cfg,
        &config_toml(
            &db,
            &format!("127.0.0.1:{port}"),
            &format!("admin_listen = \"0.0.0.0:{admin_port}\"\n[[admins]]\nname = \"viewer\"\ntoken = \"view-only\"\nrole = \"read\"\n"),
        ),
    );
    let _server = BinServer::start(&cfg, port);
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(admin).is_ok()
    }));
    let cfg = cfg.to_str().unwrap();
    let (ok, out, err) = run(&["stock", "list", "--config", cfg]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["total"], 0);
    let body = write_json(dir.path(), "s.json", &stock_fields(&unique("cfg")));
    // --token picks another operator of the same server; a reader cannot write.
    let err = refused(&[
        "stock",
        "create",
        &body,
        "--config",
        cfg,
        "--token",
        "view-only",
    ]);
    assert_eq!(
        err,
        "coupon-ledger: 40105 operator viewer may only read (role read); this call would change the ledger"
    );
    let (ok, out, err) = run(&["stock", "create", &body, "--config", cfg]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["counts"]["issued"],
        0
    );
    // Without a server: one clear line.
    let err = refused(&["stock", "list"]);
    assert!(err.contains("--server"), "{err}");
    let err = refused(&["stock", "list", "--server", "127.0.0.1:1", "--token", "t"]);
    assert!(
        err.contains("cannot reach the admin API at http://127.0.0.1:1"),
        "{err}"
    );
}
