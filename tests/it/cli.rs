//! The binary's subcommands: the embedded default, config errors, sign, check,
//! and nonce replay across a restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::{json, Value};

#[test]
fn embedded_default_creates_a_demo_and_prints_a_working_signed_curl() {
    let dir = TempDir::new();
    let port = free_port();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("curl -s http://127.0.0.1:"), "{line}");
    assert!(
        dir.path().join("ledger.db").exists(),
        "ledger.db is created in the working directory"
    );
    // Run the printed request body as the curl would send it.
    let start = line.find("-d '").unwrap() + 4;
    let body: Value =
        serde_json::from_str(line[start..].trim_end().trim_end_matches('\'')).unwrap();
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let a = c.post("/sp/coupon/receive", &body).json();
    assert_eq!(a["code"], 0, "{a}");
    assert_eq!(a["data"]["stock_id"], "demo-stock");
    assert_eq!(a["data"]["coupon_status"], 1);
    // The same printed request a second time is a replayed nonce.
    assert_eq!(c.post("/sp/coupon/receive", &body).code(), 40104);
    let _ = child.kill();
    let _ = child.wait();

    // demo-curl signs a fresh claim for the same database.
    let out = Command::new(bin())
        .args(["demo-curl", "--addr", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("curl -s "));
}

fn serve_error(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new(bin())
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve should refuse {args:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one-line error expected, got:\n{err}"
    );
    err
}

#[test]
fn bad_config_stops_with_a_one_line_error() {
    let dir = TempDir::new();
    let missing = dir.path().join("missing.toml");
    let err = serve_error(&["--config", missing.to_str().unwrap()], dir.path());
    assert!(err.contains("cannot read config file"), "{err}");

    let bad = dir.path().join("bad.toml");
    let db = dir.path().join("x.db");
    std::fs::write(
        &bad,
        format!("colour = \"blue\"\n{}", config_toml(&db, "127.0.0.1:0", "")),
    )
    .unwrap();
    let err = serve_error(&["--config", bad.to_str().unwrap()], dir.path());
    assert!(err.contains("colour"), "{err}");

    let nosecret = dir.path().join("nosecret.toml");
    std::fs::write(
        &nosecret,
        "admin_token = \"t\"\n[[partners]]\napi_key = \"K\"\n",
    )
    .unwrap();
    let err = serve_error(&["--config", nosecret.to_str().unwrap()], dir.path());
    assert!(err.contains("partners[0].secret is missing"), "{err}");
    assert!(!db.exists(), "nothing is created by a refused config");
}

#[test]
fn the_old_key_sync_still_sets_durability_with_a_warning_and_both_keys_are_refused() {
    let dir = TempDir::new();
    let db = dir.path().join("x.db");
    let both = dir.path().join("both.toml");
    write_private(
        &both,
        &config_toml(&db, "127.0.0.1:0", "durability = \"full\"\nsync = \"full\""),
    );
    let err = serve_error(&["--config", both.to_str().unwrap()], dir.path());
    assert!(err.contains("durability and sync"), "{err}");
    assert!(!db.exists(), "nothing is created by a refused config");

    let old = dir.path().join("old.toml");
    write_private(&old, &config_toml(&db, "127.0.0.1:0", "sync = \"normal\""));
    let log = dir.path().join("old.log");
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--config", old.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .env_remove("COUPON_LEDGER_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let server = BinServer {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let up = wait_until(std::time::Duration::from_secs(20), || {
        std::net::TcpStream::connect(server.addr).is_ok()
    });
    assert!(up, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    server.kill9();
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = text
        .lines()
        .find(|l| l.contains("sync is deprecated"))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(
        warning.contains("WARN") && warning.contains("durability"),
        "{warning}"
    );
}

#[test]
fn sign_prints_the_string_to_sign_and_the_sign() {
    let dir = TempDir::new();
    let file = dir.path().join("body.json");
    std::fs::write(
        &file,
        r#"{"api_key":"K","b":2,"a":"x","sign":"ignored","e":""}"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["sign", "--secret", "S"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("string-to-sign: a=x&api_key=K&b=2&key=S"),
        "{text}"
    );
    let expected = coupon_ledger::sign::md5_upper("a=x&api_key=K&b=2&key=S");
    assert!(text.contains(&format!("sign: {expected}")), "{text}");
}

#[test]
fn check_passes_a_sound_ledger_and_refuses_a_missing_file() {
    let server = TestServer::start();
    let c = server.client();
    let s = c.create_stock(json!({}));
    assert_eq!(
        c.claim(s["stock_id"].as_str().unwrap(), "u1", "r1").code(),
        0
    );
    let (ok, out) = check(&server.db());
    assert!(ok, "{out}");
    let out = Command::new(bin())
        .args(["check", "/nonexistent/ledger.db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_lists_violations_and_exits_non_zero() {
    let mut server = TestServer::start();
    let c = server.client();
    let s = c.create_stock(json!({}));
    let stock_id = s["stock_id"].as_str().unwrap().to_string();
    assert_eq!(c.claim(&stock_id, "u1", "r1").code(), 0);
    let db = server.db();
    server.running.take().unwrap().shutdown();
    // Tamper behind the ledger's back: bypass the counter trigger's effect.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE stocks SET issued = 0 WHERE stock_id = ?1",
        [&stock_id],
    )
    .unwrap();
    drop(conn);
    let (ok, out) = check(&db);
    assert!(!ok);
    assert!(
        out.contains(
            "counters issued/used/expired/deactivated 0/0/0/0 but its coupons are 1/0/0/0"
        ),
        "{out}"
    );
}

/// `check` and `check --quick` on `db`: (exit ok, stdout) of each.
fn check_both(db: &std::path::Path) -> [(bool, String); 2] {
    let quick = Command::new(bin())
        .args(["check", "--quick"])
        .arg(db)
        .output()
        .unwrap();
    [
        check(db),
        (
            quick.status.success(),
            String::from_utf8_lossy(&quick.stdout).to_string(),
        ),
    ]
}

/// Leaves `index` without the entries of the rows `skip` picks, while the
/// schema still names the index as it was: a fault only matching the index
/// against its table finds.
fn drop_index_entries(db: &std::path::Path, index: &str, skip: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = ?1",
            [index],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(&format!("DROP INDEX {index}; {sql} WHERE {skip};"))
        .unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    conn.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE name = ?2",
        [&sql, index],
    )
    .unwrap();
    conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
}

#[test]
fn the_full_check_matches_every_index_against_its_table() {
    let mut server = TestServer::start();
    let (_, ids) = server.client().stock_with_claims(3);
    let db = server.db();
    server.running.take().unwrap().shutdown();
    // One fault in the coupons table, which the check reads on its own
    // thread, and one in the journal, read on the other.
    drop_index_entries(&db, "coupons_by_holder", "rowid <> 2");
    drop_index_entries(&db, "journal_by_time", "id <> 1");
    let [(full_ok, full), (quick_ok, quick)] = check_both(&db);
    assert!(!full_ok, "{full}");
    for line in [
        "integrity_check: row 2 missing from index coupons_by_holder",
        "integrity_check: wrong # of entries in index coupons_by_holder",
        "integrity_check: row 1 missing from index journal_by_time",
        "integrity_check: wrong # of entries in index journal_by_time",
    ] {
        assert_eq!(full.matches(line).count(), 1, "{line:?} once in:\n{full}");
    }
    // The quick check counts each index's entries, but finds no row.
    assert!(!quick_ok, "{quick}");
    for index in ["coupons_by_holder", "journal_by_time"] {
        let line = format!("quick_check: wrong # of entries in index {index}");
        assert_eq!(
            quick.matches(&line).count(),
            1,
            "{line:?} once in:\n{quick}"
        );
    }
    assert!(!quick.contains("missing from index"), "{quick}");
    assert_eq!(ids.len(), 3);
}

#[test]
fn check_walks_every_journal_chain_beside_the_coupons_at_either_depth() {
    let mut server = TestServer::start();
    let (stock_id, ids) = server.client().stock_with_claims(6);
    let db = server.db();
    server.running.take().unwrap().shutdown();
    for (ok, out) in check_both(&db) {
        assert!(ok, "an untouched ledger passes: {out}");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Coupons with no journal, before and after every other in issue order.
    for (seq, id, user) in [(0, "1", "first"), (1000, "99999999999999999999", "last")] {
        conn.execute(
            "INSERT INTO coupons (seq, coupon_id, stock_id, app_channel_id, user_code, issuer, request_id,
                 app_id, coupon_type, coupon_amount, transaction_minimum, available_begin_ms,
                 available_end_ms, receive_ms, status, status_ms)
             SELECT ?4, ?1, stock_id, app_channel_id, ?2, 'admin', ?2, app_id, coupon_type, coupon_amount,
                 transaction_minimum, available_begin_ms, available_end_ms, 1, 1, 1
             FROM stocks WHERE stock_id = ?3",
            rusqlite::params![id, user, stock_id, seq],
        )
        .unwrap();
    }
    // A status changed with no journal row.
    conn.execute(
        "UPDATE coupons SET status = 4 WHERE coupon_id = ?1",
        [&ids[1]],
    )
    .unwrap();
    // A journal row that does not start where its chain ended.
    let append = |id: &str, from: i64, to: i64| {
        conn.execute(
            "INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, at_ms, coupon_seq)
             VALUES ('coupon', ?1, 'forged', ?2, ?3, 'admin', 1,
                     (SELECT seq FROM coupons WHERE coupon_id = ?1))",
            rusqlite::params![id, from, to],
        )
        .unwrap();
    };
    append(&ids[3], 3, 1);
    // An illegal move (expired back to available) that starts where the chain ended.
    conn.execute(
        "UPDATE coupons SET status = 3 WHERE coupon_id = ?1",
        [&ids[4]],
    )
    .unwrap();
    append(&ids[4], 1, 3);
    append(&ids[4], 3, 1);
    conn.execute(
        "UPDATE coupons SET status = 1 WHERE coupon_id = ?1",
        [&ids[4]],
    )
    .unwrap_or_else(|e| {
        // The schema refuses 3 -> 1 itself; the journal alone carries the illegal move.
        assert!(e.to_string().contains("illegal"), "{e}");
        0
    });
    // A coupon row written without its coupon's seq, which no chain holds.
    conn.execute(
        "INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, at_ms)
         VALUES ('coupon', ?1, 'unfiled', 1, 1, 'admin', 1)",
        [&ids[5]],
    )
    .unwrap();
    drop(conn);
    for (ok, out) in check_both(&db) {
        assert!(!ok, "{out}");
        for line in [
            format!("coupon {} unfiled has no coupon_seq", ids[5]),
            "coupon 1: no journal rows".to_string(),
            "coupon 99999999999999999999: no journal rows".to_string(),
            format!(
                "coupon {}: status 4, but its journal ends at Some(1)",
                ids[1]
            ),
            format!(
                "coupon {} forged starts from Some(3), but the previous row ended at Some(1)",
                ids[3]
            ),
            format!("coupon {} made an illegal transition 3 -> 1", ids[4]),
        ] {
            assert!(out.contains(&line), "{line:?} missing from:\n{out}");
        }
        for untouched in [&ids[0], &ids[2]] {
            assert!(
                !out.contains(untouched.as_str()),
                "{untouched} was not touched:\n{out}"
            );
        }
    }
}

#[test]
fn the_journal_refuses_updates_and_deletes() {
    let mut server = TestServer::start();
    let c = server.client();
    c.create_stock(json!({}));
    let db = server.db();
    server.running.take().unwrap().shutdown();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let e = conn.execute("DELETE FROM journal", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn
        .execute("UPDATE journal SET source = 'admin'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

#[test]
fn a_nonce_is_refused_after_a_restart() {
    let (_dir, _db, cfg) = config_file("");
    let server = BinServer::start(&cfg, free_port());
    let c = server.client();
    let s = c.create_stock(json!({}));
    let body = signed(json!({"stock_id": s["stock_id"]}));
    assert_eq!(c.post("/sp/stock/query", &body).code(), 0);
    server.kill9();
    let server = BinServer::start(&cfg, free_port());
    let a = server.client().post("/sp/stock/query", &body);
    assert_eq!(a.code(), 40104, "{}", String::from_utf8_lossy(&a.body));
}

#[test]
fn mock_platform_verifies_signatures_and_shows_what_it_received() {
    let port = free_port();
    let mut child = Command::new(bin())
        .args([
            "mock-platform",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret",
            "S",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(c.addr).is_ok()
    }));
    let good = signed_as(
        "K",
        "S",
        &coupon_ledger::sign::SignRule::default(),
        json!({"stock_id": "s1", "stock_status": 3}),
    );
    assert_eq!(c.post("/stock/status/rsync", &good).code(), 0);
    let bad = signed_as(
        "K",
        "wrong",
        &coupon_ledger::sign::SignRule::default(),
        json!({"stock_id": "s1"}),
    );
    assert_eq!(c.post("/stock/status/rsync", &bad).code(), 40102);
    let got = raw_request(c.addr, "GET", "/received", &[], b"").json();
    assert_eq!(got["received"].as_array().unwrap().len(), 1);
    assert_eq!(got["received"][0]["path"], "/stock/status/rsync");
    assert_eq!(got["bad_signatures"], 1);
    let _ = child.kill();
    let _ = child.wait();
    let out = Command::new(bin())
        .args(["mock-platform", "--secret", "S", "--fail-rate", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_closed_stderr_does_not_take_the_server_down() {
    let (_dir, _db, cfg) = config_file("");
    let port = free_port();
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("COUPON_LEDGER_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    // Read up to the line saying the server listens (a warning may come first).
    let mut line = String::new();
    for _ in 0..10 {
        line.clear();
        err.read_line(&mut line).unwrap();
        if line.contains("listening") {
            break;
        }
    }
    assert!(line.contains("listening"), "{line}");
    drop(err); // nobody reads the server's stderr any more
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    // A bad signature is logged at debug level: the log line goes to a closed pipe.
    let mut bad = signed(json!({"stock_id": "x"}));
    bad["stock_id"] = json!("y");
    for _ in 0..3 {
        assert_eq!(c.post("/sp/stock/query", &bad).code(), 40102);
    }
    assert_eq!(
        c.call("/sp/stock/query", json!({"stock_id": "none"}))
            .code(),
        40401
    );
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn outbox_abandon_gives_up_on_a_dead_call_in_the_database() {
    // Nothing listens on the platform's port: the first attempt kills the call.
    let platform = format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{}\"\napi_key = \"SP\"\nsecret = \"s\"\nmax_attempts = 1\nretry_base_ms = 10\nretry_max_ms = 10\n",
        free_port()
    );
    let mut server = TestServer::start_stepped(&platform);
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let dead = || {
        let a = c.admin("GET", "/admin/outbox?state=dead", None).json();
        a["data"]["calls"].as_array().unwrap().clone()
    };
    assert_eq!(server.deliver_all(), 1);
    assert_eq!(dead().len(), 1);
    expect(
        &c.admin(
            "PATCH",
            &format!("/admin/stocks/{}", sid(&stock)),
            Some(json!({"stock_name": "behind"})),
        ),
        0,
    );
    let id = dead()[0]["id"].as_i64().unwrap().to_string();
    let db = server.db();
    server.running.take().unwrap().shutdown();

    let outbox = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("outbox")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = outbox(&["abandon", &id]);
    assert!(!ok && err.contains("--reason"), "{err}");
    let (ok, _, err) = outbox(&["abandon", &id, "--reason", " "]);
    assert!(!ok && err.contains("40001 reason: required"), "{err}");
    let (ok, _, err) = outbox(&["abandon", "999999", "--reason", "gone"]);
    assert!(
        !ok && err.contains("40001 id: no outbox call has this id"),
        "{err}"
    );
    let (ok, out, err) = outbox(&["list", "--state", "pending"]);
    assert!(ok, "{err}");
    let pending: Value = serde_json::from_str(out.trim()).unwrap();
    let (ok, _, err) = outbox(&["abandon", &pending["id"].to_string(), "--reason", "x"]);
    assert!(!ok && err.contains("40905"), "{err}");

    let (ok, out, err) = outbox(&["abandon", &id, "--reason", "platform retired this stock"]);
    assert!(ok, "{err}");
    let call: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(call["state"], "abandoned");
    assert_eq!(call["abandon_reason"], "platform retired this stock");
    let (ok, out, err) = outbox(&["list", "--state", "abandoned"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(err.contains("abandoned 1"), "{err}");
    assert!(err.contains("blocked behind dead calls: 0"), "{err}");
    let (ok, _, err) = outbox(&["abandon", &id, "--reason", "again"]);
    assert!(!ok && err.contains("40905"), "{err}");
    let (ok, _, err) = outbox(&["list", "--state", "lost"]);
    assert!(!ok && err.contains("abandoned"), "{err}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let (event, detail): (String, String) = conn
        .query_row(
            "SELECT event, detail FROM journal WHERE entity = 'outbox' AND entity_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(event, "abandon");
    assert!(detail.contains("platform retired this stock"), "{detail}");
    drop(conn);
    let (ok, out) = check(&db);
    assert!(ok, "{out}");
}

#[test]
fn demo_curl_signs_for_the_port_the_server_really_listens_on() {
    let dir = TempDir::new();
    // Port 0: only the server knows its port.
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let start = line.find("http://").unwrap() + 7;
    let addr = &line[start..start + line[start..].find('/').unwrap()];
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{line}"
    );
    let out = Command::new(bin())
        .arg("demo-curl")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let curl = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        curl.starts_with(&format!("curl -s http://{addr}/sp/coupon/receive ")),
        "{curl}"
    );
    let body: Value = serde_json::from_str(
        curl[curl.find("-d '").unwrap() + 4..]
            .trim_end()
            .trim_end_matches('\''),
    )
    .unwrap();
    let c = Client {
        addr: addr.parse().unwrap(),
    };
    let a = c.post("/sp/coupon/receive", &body).json();
    assert_eq!(a["code"], 0, "{a}");
    // --addr still wins.
    let out = Command::new(bin())
        .args(["demo-curl", "--addr", "127.0.0.1:9"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("curl -s http://127.0.0.1:9/"));
    // The demo's admin token is operator `admin`, with role write.
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    let token: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'demo_admin_token'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let auth = format!("Bearer {token}");
    let issued = raw_request(
        c.addr,
        "POST",
        "/admin/coupons",
        &[("Authorization", &auth)],
        json!({"stock_id": "demo-stock", "user_code": "ops", "app_channel_id": 1, "request_id": "d1"})
            .to_string()
            .as_bytes(),
    )
    .json();
    assert_eq!(issued["code"], 0, "{issued}");
    let id = issued["data"]["coupon_id"].as_str().unwrap();
    let shown = raw_request(
        c.addr,
        "GET",
        &format!("/admin/coupons/{id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .json();
    assert_eq!(shown["data"]["journal"][0]["operator"], "admin");
    let _ = child.kill();
    let _ = child.wait();
}
