//! `coupon-ledger bench` and the store options it relies on. No figure is
//! asserted here: only that every row runs, that the issued count matches the
//! claims that succeeded, and that the bulk fill leaves a valid ledger.

use std::process::Command;

use crate::common::*;
use coupon_ledger::domain::LedgerError;
use coupon_ledger::store::check_database;
use serde_json::json;

const ROWS: [&str; 10] = [
    "http-ceiling",
    "healthz",
    "claim",
    "query",
    "claim-no-group",
    "writer-direct",
    "ceiling-tls",
    "claim-tls",
    "query-tls",
    "handshake-tls",
];

/// The table line of `row`, split in columns.
fn row_columns<'a>(stdout: &'a str, row: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(row))
        .unwrap_or_else(|| panic!("no {row} row in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

/// The group-commit server's stock issued exactly the claims that succeeded.
fn assert_group_server_issued_ok(stdout: &str) {
    let check = stdout
        .lines()
        .find(|l| l.starts_with("issued vs successes, group-commit server"))
        .unwrap_or_else(|| panic!("no check line:\n{stdout}"));
    assert!(check.ends_with(": ok"), "{check}");
}

/// Runs `bench ARGS` with its temp databases in `tmp`; its stdout, once it
/// has exited with success.
fn bench_ok(tmp: &TempDir, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("bench")
        .args(args)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn self_contained_bench_prints_every_row_checks_the_issued_count_and_cleans_up() {
    let tmp = TempDir::new();
    let out = Command::new(bin())
        .args(["bench", "--seconds", "1", "--connections", "2"])
        .env("TMPDIR", tmp.path())
        .env_remove("COUPON_LEDGER_LOG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for row in ROWS {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(row))
            .unwrap_or_else(|| panic!("no {row} row in:\n{stdout}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "2", "connections column of {line:?}");
        assert!(
            cols[2].parse::<f64>().is_ok_and(|r| r > 0.0),
            "{row}: requests/s should be a positive number: {line:?}"
        );
        // The servers' CPU per request, and the writers' share of it.
        let cpu: f64 = cols[7]
            .parse()
            .unwrap_or_else(|_| panic!("cpu us of {line:?}"));
        let writer: f64 = cols[8]
            .parse()
            .unwrap_or_else(|_| panic!("wr us of {line:?}"));
        // The process's CPU time comes from /proc in 10 ms clock ticks,
        // read at the start and end of the row: the servers' figure may be
        // short by up to two ticks over the row's requests (at least its
        // req/s, since each row runs a second or a little more).
        let rate: f64 = cols[2].parse().unwrap_or(1.0);
        let ticks_us = 2.0 * 10_000.0 / rate.max(1.0);
        assert!(cpu > 0.0 && writer <= cpu + ticks_us, "{line:?}");
        if matches!(row, "claim" | "claim-no-group" | "writer-direct") {
            // Every claim is written by a writer: it cannot cost it nothing.
            assert!(writer > 0.0, "{row}: no writer time: {line:?}");
        }
        if row == "http-ceiling" {
            // The router alone never reaches the writer; the writer's only
            // work meanwhile is a checkpoint of what came before.
            assert!(writer < 1.0, "{line:?}");
        }
    }
    let checks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("issued vs successes"))
        .collect();
    assert_eq!(checks.len(), 2, "one check line per server:\n{stdout}");
    for c in checks {
        assert!(c.ends_with(": ok"), "{c}");
    }
    assert!(stdout.contains("group commit at 2 conns"), "{stdout}");
    // Piped stderr: no progress line; the temp databases are gone.
    assert!(!stderr.contains("conns ·"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "bench left {left:?} behind");
}

#[test]
fn https_rows_run_with_no_errors_and_are_compared_with_plain_http() {
    let tmp = TempDir::new();
    let stdout = bench_ok(
        &tmp,
        &[
            "--seconds",
            "1",
            "--connections",
            "2",
            "--rows",
            "claim,claim-tls,query-tls,handshake-tls",
        ],
    );
    for row in [
        "http-ceiling",
        "claim",
        "claim-tls",
        "query-tls",
        "handshake-tls",
    ] {
        let cols = row_columns(&stdout, row);
        assert!(
            cols[2].parse::<f64>().is_ok_and(|r| r > 0.0),
            "{row}: requests/s should be a positive number: {cols:?}"
        );
        assert!(cols[6].parse::<f64>().is_ok(), "{row}: x ceiling {cols:?}");
        assert_eq!(cols[9], "-", "{row} had errors: {cols:?}");
    }
    // Rows not asked for do not run.
    assert!(!stdout.contains("ceiling-tls "), "{stdout}");
    assert!(stdout.contains("HTTPS rows: TLSv1_3"), "{stdout}");
    assert!(
        stdout.contains("HTTPS over plain HTTP at 2 conns: claim-tls/claim "),
        "{stdout}"
    );
    // The HTTPS claims count in the issued check of the same server.
    assert_group_server_issued_ok(&stdout);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "bench left {left:?} behind");
}

#[test]
fn the_sweep_row_claims_while_every_filled_coupon_expires() {
    let tmp = TempDir::new();
    let stdout = bench_ok(
        &tmp,
        &[
            "--seconds",
            "1",
            "--connections",
            "2,3",
            "--rows",
            "claim",
            "--sweep",
            "700",
        ],
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() == 10 && cols[0] == "claim+sweep")
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "one claim+sweep row per connection count:\n{stdout}"
    );
    for (cols, conns) in rows.iter().zip(["2", "3"]) {
        assert_eq!(cols[1], conns, "{cols:?}");
        assert_eq!(cols[9], "-", "claims failed during the sweep: {cols:?}");
    }
    for conns in [2, 3] {
        let line = format!("claim+sweep at {conns} conns: the sweeper expired 700 of 700 coupons");
        assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
    }
    // The claims made while sweeping count in the issued check.
    assert_group_server_issued_ok(&stdout);
}

#[test]
fn repeated_rows_print_their_median_run_and_every_run() {
    let tmp = TempDir::new();
    let stdout = bench_ok(
        &tmp,
        &[
            "--seconds",
            "1",
            "--connections",
            "2",
            "--rows",
            "claim,writer-direct",
            "--repeat",
            "3",
        ],
    );
    assert!(
        stdout.contains("3 runs of each: its median run is shown"),
        "{stdout}"
    );
    for row in ["http-ceiling", "claim", "writer-direct"] {
        let lines = stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(row))
            .count();
        assert_eq!(lines, 1, "{row}: one line for its three runs:\n{stdout}");
        let cols = row_columns(&stdout, row);
        assert_eq!(
            cols.len(),
            13,
            "{row}: the figures, then three runs: {cols:?}"
        );
        let runs: Vec<f64> = cols[10..].iter().map(|c| c.parse().unwrap()).collect();
        assert!(runs.windows(2).all(|w| w[0] <= w[1]), "{row}: {runs:?}");
        // The row's req/s is the middle run's.
        assert_eq!(cols[2], cols[11], "{row}: {cols:?}");
        assert_eq!(cols[9], "-", "{row} had errors: {cols:?}");
    }
    // Every run's claims count in the issued check.
    assert_group_server_issued_ok(&stdout);
    let bad = Command::new(bin())
        .args(["bench", "--seconds", "1", "--repeat", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--repeat"));
}

#[test]
fn bench_options_for_a_running_server_need_target_and_connections_are_bounded() {
    let out = Command::new(bin())
        .args(["bench", "--mode", "claim", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
    for (count, says) in [
        ("2,x", "--connections"),
        ("2001", "--connections: 2001 is not between 1 and 2000"),
    ] {
        let out = Command::new(bin())
            .args(["bench", "--seconds", "1", "--connections", count])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn bulk_fill_issues_valid_coupons_with_their_journal_and_sync_calls() {
    // A platform nobody listens on: the calls stay queued, which is all we count.
    let dead = format!("127.0.0.1:{}", free_port());
    let s = TestServer::start_with(&format!(
        "[platform]\nbase_url = \"http://{dead}\"\napi_key = \"SP\"\nsecret = \"p\"\n"
    ));
    let c = s.client();
    let stock = c.create_stock(json!({"max_coupons": 5000, "max_coupons_per_user": 1}));
    let id = stock["stock_id"].as_str().unwrap().to_string();
    let store = s.running.as_ref().unwrap().store().clone();
    assert_eq!(store.bulk_fill(&id, 1234).unwrap(), 1234);
    assert_eq!(store.stock(&id).unwrap().issued, 1234);
    // One call for the stock, one per coupon.
    let h = store.outbox_health().unwrap();
    assert_eq!(h.pending + h.dead + h.delivered, 1 + 1234);
    // A claim afterwards still works, and the ledger holds every invariant.
    assert_eq!(c.claim(&id, "after-fill", "r-after-fill").code(), 0);
    let violations = check_database(&s.db()).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    // No room: refused, and nothing of it is kept.
    assert!(matches!(
        store.bulk_fill(&id, 5000),
        Err(LedgerError::SoldOut)
    ));
    assert_eq!(store.stock(&id).unwrap().issued, 1235);
}

#[test]
fn write_batch_max_one_commits_every_job_on_its_own() {
    let s = TestServer::start_with("write_batch_max = 1");
    let store = s.running.as_ref().unwrap().store().clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    store.probe().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.batch_stats();
    assert!(stats.jobs >= 160, "{stats:?}");
    assert_eq!(stats.largest, 1, "{stats:?}");
    assert_eq!(stats.commits, stats.jobs, "{stats:?}");
}

/// The figure after `word ` in a `--target` report.
fn figure(out: &str, word: &str) -> u64 {
    out.split(&format!("{word} "))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {word} in {out}"))
}

#[test]
fn bench_drives_a_running_server_and_every_claim_it_counts_was_issued() {
    let s = TestServer::start();
    let c = s.client();
    let stock = sid(&c.create_stock(json!({"max_coupons": 10_000_000})));
    let addr = s.addr.to_string();
    let partner = ["--api-key", KEY, "--secret", SECRET, "--stock", &stock];
    let (ok, out, err) = bench_target(
        &addr,
        &[&["--mode", "claim", "--connections", "3,5"], &partner[..]].concat(),
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("mode Claim · 3 connections"), "{out}");
    assert!(out.contains("mode Claim · 5 connections"), "{out}");
    let mut claimed = 0;
    for report in out.split("mode Claim").skip(1) {
        assert_eq!(figure(report, "errors"), 0, "{out}");
        let n = figure(report, "requests");
        assert!(n > 0, "{out}");
        claimed += n;
    }
    // Every claim it counted was issued: none lost, none left unanswered.
    let stock_now = expect(&c.admin("GET", &format!("/admin/stocks/{stock}"), None), 0);
    assert_eq!(
        stock_now["data"]["counts"]["issued"],
        json!(claimed),
        "{out}"
    );

    // Signed queries, and the unsigned modes, answer without errors too.
    for mode in ["query", "healthz", "livez", "ceiling"] {
        let (ok, out, err) = bench_target(
            &addr,
            &[&["--mode", mode, "--connections", "4"], &partner[..]].concat(),
        );
        assert!(ok, "{mode}: {out}\n{err}");
        assert_eq!(figure(&out, "errors"), 0, "{mode}: {out}");
        assert!(figure(&out, "requests") > 0, "{mode}: {out}");
    }

    // Nothing listening: every attempt is an `io` error, and the first reason is given.
    let port = free_port();
    let (_, out, err) = bench_target(&format!("127.0.0.1:{port}"), &["--mode", "healthz"]);
    assert_eq!(figure(&out, "requests"), 0, "{out}\n{err}");
    assert!(figure(&out, "errors") > 0, "{out}");
    assert!(
        out.contains(&format!(
            "first connection error: connect to 127.0.0.1:{port}"
        )),
        "{out}"
    );
}
