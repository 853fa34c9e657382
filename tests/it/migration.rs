//! Schema versions: a database written by an older schema version is migrated to
//! the current version on open, keeps every row, and ends with the same schema
//! as a new database.

use std::path::Path;

use crate::common::*;
use coupon_ledger::config::Durability;
use coupon_ledger::domain::ledger::{Origin, Source};
use coupon_ledger::domain::LedgerError;
use coupon_ledger::store::{NonceUse, Store, StoreOptions, PAGE_SIZE, SCHEMA_VERSION};
use rusqlite::Connection;
use serde_json::json;

/// The schema text of version 1, as it was shipped.
const SCHEMA_V1: &str = include_str!("../fixtures/schema_v1.sql");
/// The schema text of version 2, as it was shipped.
const SCHEMA_V2: &str = include_str!("../fixtures/schema_v2.sql");
/// The schema text of version 3, as it was shipped.
const SCHEMA_V3: &str = include_str!("../fixtures/schema_v3.sql");

fn open(db: &Path) -> Store {
    Store::open(
        db,
        StoreOptions {
            durability: Durability::Full,
            timestamp_window_s: 300,
            sync_calls: None,
            max_batch: coupon_ledger::store::DEFAULT_MAX_BATCH,
        },
    )
    .unwrap()
}

/// A database this build makes new, in `dir`, to compare a migrated one with.
fn new_database(dir: &Path) -> Connection {
    let fresh = dir.join("new.db");
    drop(open(&fresh));
    Connection::open(&fresh).unwrap()
}

/// Every table, index and trigger with its SQL, whitespace folded, sorted by name.
fn schema_of(conn: &Connection) -> Vec<(String, String, String)> {
    let mut stmt = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let sql: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                sql.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn version_1_ledger(db: &Path) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 1;
         INSERT INTO meta (key, value) VALUES ('demo', 'kept');
         INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions, coupon_name,
             coupon_desc, coupon_type, coupon_amount, transaction_minimum, max_coupons,
             max_coupons_per_user, available_begin_ms, available_end_ms, create_ms, stock_status)
         VALUES ('old-stock', 'old', 1, 'wx1', 'i', 'n', 'd', 1, 1000, 10000, 10, 1,
             1000, 4102444800000, 1000, 3);
         INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, at_ms)
         VALUES ('stock', 'old-stock', 'create', NULL, 3, 'admin', 1000);
         INSERT INTO outbox (seq_id, path, body, lane, stock_id, state, attempts, next_attempt_ms,
             created_ms, delivered_ms)
         VALUES ('sp-delivered', '/stock/rsync', '{\"stock_id\":\"old-stock\"}', 'stock:old-stock',
             'old-stock', 'delivered', 1, 1000, 1000, 1500);
         INSERT INTO outbox (seq_id, path, body, lane, stock_id, state, attempts, next_attempt_ms,
             created_ms, last_error)
         VALUES ('sp-dead', '/stock/status/rsync', '{\"stock_id\":\"old-stock\",\"stock_status\":3}',
             'stock:old-stock', 'old-stock', 'dead', 20, 2000, 2000, 'HTTP 500');
         INSERT INTO outbox (seq_id, path, body, lane, stock_id, state, next_attempt_ms, created_ms)
         VALUES ('sp-pending', '/stock/rsync', '{\"stock_id\":\"old-stock\"}', 'stock:old-stock',
             'old-stock', 'pending', 3000, 3000);",
    )
    .unwrap();
}

#[test]
fn a_version_1_database_migrates_keeps_its_rows_and_matches_a_new_one() {
    assert_eq!(SCHEMA_VERSION, 6);
    let dir = TempDir::new();
    let old = dir.path().join("v1.db");
    version_1_ledger(&old);
    // Version 1 knows no abandoned state: the migration has real work to do.
    let conn = Connection::open(&old).unwrap();
    assert!(conn
        .execute(
            "UPDATE outbox SET state = 'abandoned' WHERE seq_id = 'sp-dead'",
            []
        )
        .is_err());
    drop(conn);

    let store = open(&old);
    let conn = Connection::open(&old).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let calls = store.outbox_list(None, 0, 100).unwrap();
    let summary: Vec<(i64, &str, &str, i64)> = calls
        .iter()
        .map(|c| (c.id, c.seq_id.as_str(), c.state.as_str(), c.attempts))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "sp-delivered", "delivered", 1),
            (2, "sp-dead", "dead", 20),
            (3, "sp-pending", "pending", 0)
        ]
    );
    assert_eq!(calls[0].delivered_ms, Some(1500));
    assert_eq!(calls[1].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        calls[1].body,
        r#"{"stock_id":"old-stock","stock_status":3}"#
    );
    assert_eq!(store.meta("demo").unwrap().as_deref(), Some("kept"));
    assert_eq!(store.stock("old-stock").unwrap().spec.stock_name, "old");
    let journal: i64 = conn
        .query_row(
            "SELECT count(*) FROM journal WHERE entity_id = 'old-stock'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(journal, 1);
    let operator: Option<String> = conn
        .query_row(
            "SELECT operator FROM journal WHERE entity_id = 'old-stock'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(operator, None, "rows from before named operators have none");
    let h = store.outbox_health().unwrap();
    assert_eq!(
        (h.pending, h.dead, h.delivered, h.abandoned, h.blocked),
        (1, 1, 1, 0, 1)
    );

    // The same schema as a database made new by this build.
    let fresh_conn = new_database(dir.path());
    assert_eq!(schema_of(&conn), schema_of(&fresh_conn));
    let triggers = schema_of(&conn)
        .into_iter()
        .filter(|(t, n, _)| t == "trigger" && n.starts_with("outbox"))
        .count();
    assert_eq!(triggers, 4);

    // What version 2 allows now works on the migrated rows.
    let origin = Origin {
        source: Source::Admin,
        seq_id: None,
        now: coupon_ledger::domain::time::now_ms(),
        operator: None,
    };
    let call = store
        .outbox_abandon(2, "migrated and stuck", origin)
        .unwrap();
    assert_eq!(call.state, "abandoned");
    assert_eq!(store.outbox_health().unwrap().blocked, 0);
    let e = conn
        .execute("DELETE FROM outbox WHERE seq_id = 'sp-pending'", [])
        .unwrap_err();
    assert!(e.to_string().contains("never deleted"), "{e}");
    assert_eq!(
        conn.execute("DELETE FROM outbox WHERE seq_id = 'sp-delivered'", [])
            .unwrap(),
        1
    );
    drop(store);
    drop(conn);
    let (ok, out) = check(&old);
    assert!(ok, "{out}");
    // Opening again is a no-op.
    drop(open(&old));
}

fn page_size(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_new_ledger_has_small_pages_an_older_one_keeps_its_own_and_a_backup_gets_them() {
    assert_eq!(PAGE_SIZE, 2048);
    let dir = TempDir::new();
    let fresh = dir.path().join("fresh.db");
    drop(open(&fresh));
    assert_eq!(page_size(&fresh), PAGE_SIZE);

    // A ledger made with SQLite's default pages is migrated and used as it is.
    let old = dir.path().join("v1.db");
    version_1_ledger(&old);
    assert_eq!(page_size(&old), 4096);
    let store = open(&old);
    assert_eq!(page_size(&old), 4096);
    assert_eq!(store.stock("old-stock").unwrap().spec.stock_name, "old");

    // Its backup, taken while it is open, has the new size and the same rows.
    let dest = dir.path().join("copy.db");
    let report = coupon_ledger::store::backup(&old, &dest).unwrap();
    drop(store);
    assert_eq!(page_size(&dest), PAGE_SIZE);
    let (ok, out) = check(&dest);
    assert!(ok, "{out}");
    let copy = open(&dest);
    assert_eq!(copy.stock("old-stock").unwrap().spec.stock_name, "old");
    assert_eq!(copy.meta("demo").unwrap().as_deref(), Some("kept"));
    assert_eq!(report.coupons, 0);
    assert_eq!(page_size(&dest), PAGE_SIZE);
}

#[test]
fn a_version_2_database_gains_the_journal_operator_and_matches_a_new_one() {
    let dir = TempDir::new();
    let old = dir.path().join("v2.db");
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch(SCHEMA_V2).unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 2;
         INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions, coupon_name,
             coupon_desc, coupon_type, coupon_amount, transaction_minimum, max_coupons,
             max_coupons_per_user, available_begin_ms, available_end_ms, create_ms, stock_status)
         VALUES ('v2-stock', 'v2', 1, 'wx1', 'i', 'n', 'd', 1, 1000, 10000, 10, 1,
             1000, 4102444800000, 1000, 3);
         INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, at_ms, detail)
         VALUES ('stock', 'v2-stock', 'create', NULL, 3, 'admin', 1000, '{\"kept\":true}');",
    )
    .unwrap();
    // Version 2 has no operator column: the migration has real work to do.
    assert!(conn.prepare("SELECT operator FROM journal").is_err());
    drop(conn);

    let store = open(&old);
    let conn = Connection::open(&old).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let journal = store.stock_journal("v2-stock").unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].detail.as_deref(), Some(r#"{"kept":true}"#));
    assert_eq!(journal[0].operator, None);

    let fresh_conn = new_database(dir.path());
    assert_eq!(schema_of(&conn), schema_of(&fresh_conn));
    let columns = |c: &Connection| -> Vec<(String, String, bool)> {
        let mut stmt = c.prepare("PRAGMA table_info(journal)").unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? == 1)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(columns(&conn), columns(&fresh_conn));
    let cols = columns(&conn);
    assert_eq!(
        cols[cols.len() - 2..],
        [
            ("operator".to_string(), "TEXT".to_string(), false),
            ("coupon_seq".to_string(), "INTEGER".to_string(), false)
        ]
    );

    // A new row written through the store carries its operator.
    let origin = Origin {
        source: Source::Admin,
        seq_id: None,
        now: coupon_ledger::domain::time::now_ms(),
        operator: Some("alice".into()),
    };
    store
        .set_stock_status(
            "v2-stock",
            coupon_ledger::domain::stock::StockStatus::Paused,
            origin,
        )
        .unwrap();
    let journal = store.stock_journal("v2-stock").unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[1].operator.as_deref(), Some("alice"));
    drop(store);
    drop(conn);
    let (ok, out) = check(&old);
    assert!(ok, "{out}");
}

#[test]
fn a_version_3_database_gains_stock_counters_and_checks_without_in_lists() {
    let dir = TempDir::new();
    let old = dir.path().join("v3.db");
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch(SCHEMA_V3).unwrap();
    // Coupons in every state, inserted the way version 3 allowed.
    let mut rows = String::from(
        "PRAGMA user_version = 3;
         INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions, coupon_name,
             coupon_desc, coupon_type, coupon_amount, transaction_minimum, max_coupons,
             max_coupons_per_user, available_begin_ms, available_end_ms, create_ms, stock_status)
         VALUES ('v3-stock', 'v3', 1, 'wx1', 'i', 'n', 'd', 1, 1000, 10000, 100, 1,
             1000, 4102444800000, 1000, 3);",
    );
    for i in 1..=10 {
        rows.push_str(&format!(
            "INSERT INTO coupons (coupon_id, stock_id, app_channel_id, user_code, issuer, request_id,
                 app_id, coupon_type, coupon_amount, transaction_minimum, available_begin_ms,
                 available_end_ms, receive_ms, status, status_ms)
             VALUES ('10000000000000000{i:02}', 'v3-stock', 1, 'u{i}', 'admin', 'r{i}', 'wx1', 1,
                 1000, 10000, 1000, 4102444800000, 2000, 1, 2000);"
        ));
    }
    // 3 used (with their redemptions), 2 expired, 1 deactivated, 4 available.
    rows.push_str(
        "UPDATE coupons SET status = 2, usage_ms = 3000 WHERE user_code IN ('u1', 'u2', 'u3');
         INSERT INTO redemptions (order_id, coupon_id, order_amount, discount_amount, pay_amount, usage_ms)
             SELECT 'o-' || user_code, coupon_id, 20000, 1000, 19000, 3000 FROM coupons WHERE status = 2;
         UPDATE coupons SET status = 3 WHERE user_code IN ('u4', 'u5');
         UPDATE coupons SET status = 4 WHERE user_code = 'u6';",
    );
    conn.execute_batch(&rows).unwrap();
    assert!(conn.prepare("SELECT used FROM stocks").is_err());
    drop(conn);

    let store = open(&old);
    let (stock, counts) = store.stock_with_counts("v3-stock").unwrap();
    assert_eq!(stock.issued, 10);
    assert_eq!(
        (
            counts.issued,
            counts.available,
            counts.used,
            counts.expired,
            counts.deactivated
        ),
        (10, 4, 3, 2, 1)
    );
    let conn = Connection::open(&old).unwrap();
    let fresh_conn = new_database(dir.path());
    assert_eq!(schema_of(&conn), schema_of(&fresh_conn));
    // The tables every claim writes check no IN list (stocks and vouchers,
    // written rarely, keep theirs).
    for (_, name, sql) in schema_of(&conn) {
        if ["coupons", "journal", "outbox"].contains(&name.as_str()) {
            assert!(!sql.contains(" IN ("), "{name}: {sql}");
        }
    }
    // The rewritten CHECKs still refuse what they refused.
    let e = conn
        .execute(
            "INSERT INTO journal (entity, entity_id, event, source, at_ms)
             VALUES ('nobody', 'x', 'e', 'admin', 1)",
            [],
        )
        .unwrap_err();
    assert!(e.to_string().contains("CHECK"), "{e}");
    // The counters follow later moves.
    drop(conn);
    let origin = Origin {
        source: Source::Admin,
        seq_id: None,
        now: coupon_ledger::domain::time::now_ms(),
        operator: None,
    };
    let coupon = store
        .coupons(&coupon_ledger::domain::ledger::CouponQuery {
            user_code: Some("u7".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let id = coupon.items[0].coupon_id.clone();
    store.redeem(&id, "o-u7", 20000, origin).unwrap();
    let (_, counts) = store.stock_with_counts("v3-stock").unwrap();
    assert_eq!((counts.available, counts.used), (3, 4));
    drop(store);
    // The rows above were written without journal rows, which `check`
    // reports; the counters themselves must agree with the coupons.
    let (ok, out) = check(&old);
    assert!(!ok && out.contains("no journal rows"), "{out}");
    assert!(!out.contains("counters"), "{out}");
}

#[test]
fn a_database_newer_than_this_build_is_refused() {
    let dir = TempDir::new();
    let db = dir.path().join("future.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let e = Store::open(
        &db,
        StoreOptions {
            durability: Durability::Full,
            timestamp_window_s: 300,
            sync_calls: None,
            max_batch: coupon_ledger::store::DEFAULT_MAX_BATCH,
        },
    )
    .err()
    .unwrap();
    assert!(e.contains("newer"), "{e}");
}

#[test]
fn a_version_4_database_files_its_coupon_journal_by_seq() {
    // A ledger with claims and a redeem made by this build, then taken back to
    // version 4's journal: no coupon_seq, one index over every entity.
    let mut server = TestServer::start();
    let c = server.client();
    let (_, ids) = c.stock_with_claims(3);
    let a = c.admin(
        "POST",
        &format!("/admin/coupons/{}/redeem", ids[1]),
        Some(json!({"order_id": "o-1", "order_amount": 20000})),
    );
    assert_eq!(a.code(), 0, "{}", show(&a));
    let db = server.db();
    server.running.take().unwrap().shutdown();
    let dir = TempDir::new();
    let old = dir.path().join("v4.db");
    std::fs::copy(&db, &old).unwrap();
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch(
        "DROP INDEX journal_by_coupon;
         DROP INDEX journal_by_entity;
         ALTER TABLE journal DROP COLUMN coupon_seq;
         CREATE INDEX journal_by_entity ON journal (entity, entity_id, id);
         PRAGMA user_version = 4;",
    )
    .unwrap();
    nonces_as_in_version_5(&conn);
    drop(conn);

    let store = open(&old);
    for (i, id) in ids.iter().enumerate() {
        let (_, journal) = store.coupon_with_journal(id).unwrap();
        let events: Vec<&str> = journal.iter().map(|j| j.event.as_str()).collect();
        let expected: &[&str] = if i == 1 {
            &["issue", "redeem"]
        } else {
            &["issue"]
        };
        assert_eq!(events, expected, "coupon {id}");
    }
    drop(store);
    let (ok, out) = check(&old);
    assert!(ok, "{out}");
    let conn = Connection::open(&old).unwrap();
    assert_eq!(schema_of(&conn), schema_of(&new_database(dir.path())));
    // The journal stays append-only after the upgrade set its trigger aside.
    let e = conn
        .execute("UPDATE journal SET event = 'x'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

/// Gives the nonces table the shape of versions 1 to 5 (keyed by the nonce,
/// with an index by age; the text as version 3 shipped it), keeping its rows.
fn nonces_as_in_version_5(conn: &Connection) {
    let start = SCHEMA_V3.find("CREATE TABLE nonces").unwrap();
    let index = "CREATE INDEX nonces_by_age ON nonces (seen_ms);";
    let end = SCHEMA_V3.find(index).unwrap() + index.len();
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE kept AS SELECT api_key, nonce, seen_ms FROM nonces;
         DROP TABLE nonces;
         {}
         INSERT INTO nonces SELECT api_key, nonce, seen_ms FROM temp.kept;
         DROP TABLE temp.kept;",
        &SCHEMA_V3[start..end]
    ))
    .unwrap();
}

#[test]
fn a_version_5_database_keeps_its_replay_window_in_the_nonces_by_time() {
    let dir = TempDir::new();
    let old = dir.path().join("v5.db");
    drop(open(&old));
    let conn = Connection::open(&old).unwrap();
    nonces_as_in_version_5(&conn);
    let now = coupon_ledger::domain::time::now_ms();
    conn.execute(
        "INSERT INTO nonces (api_key, nonce, seen_ms)
         VALUES ('k', 'recent', ?1), ('k', 'long-ago', ?2), ('other', 'recent', ?2)",
        [now - 60_000, now - 3_600_000],
    )
    .unwrap();
    conn.execute_batch("PRAGMA user_version = 5").unwrap();
    drop(conn);

    let nonce = |key: &str, n: &str| NonceUse {
        api_key: key.into(),
        nonce: n.into(),
    };
    let store = open(&old);
    assert_eq!(
        store.use_nonce(nonce("k", "recent")),
        Err(LedgerError::NonceReused),
        "a nonce of the window is still refused after the upgrade"
    );
    store.use_nonce(nonce("k", "long-ago")).unwrap();
    store.use_nonce(nonce("other", "recent")).unwrap();
    store.use_nonce(nonce("k", "new")).unwrap();
    assert_eq!(
        store.use_nonce(nonce("k", "new")),
        Err(LedgerError::NonceReused)
    );
    drop(store);
    let conn = Connection::open(&old).unwrap();
    assert_eq!(schema_of(&conn), schema_of(&new_database(dir.path())));
}
