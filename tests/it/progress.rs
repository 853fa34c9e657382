//! Long CLI work (`voucher import` of a large file, `backup`) shows a progress
//! line on a terminal and writes nothing but its result when piped.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::common::*;

/// A JSON-lines file of `n` vouchers numbered from `prefix`.
fn voucher_file(path: &Path, prefix: &str, n: usize) {
    let mut text = String::with_capacity(n * 300);
    for i in 0..n {
        let record = json!({"type": "mtdz", "couponNo": format!("{prefix}{i}"), "shopIds": [147],
            "couponName": "百货券", "valueFen": 1000, "priceFen": 10, "count": 1,
            "validityBegin": "2025-05-14T00:00:00.000+08:00", "validityEnd": "2099-12-31T23:59:59.000+08:00",
            "deal": {"dealId": "1316147453"}});
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Runs the binary with `args` under a pseudo-terminal (`script`), so its
/// stderr is a terminal; `None` when `script` is missing.
fn on_a_terminal(test: &str, args: &[&str]) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        missing_tool(test, "script (util-linux)");
        return None;
    }
    let command = std::iter::once(bin())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    Some(
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .unwrap(),
    )
}

fn piped(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn progress_of_a_large_voucher_import_shows_on_a_terminal_only() {
    let test = "progress_of_a_large_voucher_import_shows_on_a_terminal_only";
    let mut server = TestServer::start();
    let dir = TempDir::new();
    let (quiet, loud) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    voucher_file(&quiet, "A", 20_000);
    voucher_file(&loud, "B", 20_000);
    server.while_stopped(|db| {
        let db = db.to_str().unwrap();
        let out = piped(&["voucher", "import", quiet.to_str().unwrap(), "--db", db]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "imported 20000 vouchers\n");
        assert_eq!(text(&out.stderr), "", "piped stderr must stay empty");

        let Some(out) = on_a_terminal(
            test,
            &["voucher", "import", loud.to_str().unwrap(), "--db", db],
        ) else {
            return;
        };
        let screen = text(&out.stdout);
        assert!(out.status.success(), "{screen}");
        assert!(screen.contains("\r\x1b[K"), "no progress line: {screen:?}");
        assert!(
            screen.contains("importing 20000 vouchers in one transaction"),
            "{screen:?}"
        );
        assert!(screen.contains("imported 20000 vouchers"), "{screen:?}");
    });
    let c = server.client();
    assert_eq!(
        c.admin("GET", "/admin/vouchers/mtdz/A19999", None).code(),
        0
    );
    assert_eq!(
        c.admin("GET", "/admin/vouchers/mtdz/B19999", None).code(),
        0
    );
}

#[test]
fn progress_of_a_backup_shows_on_a_terminal_only() {
    let test = "progress_of_a_backup_shows_on_a_terminal_only";
    let server = TestServer::start();
    let c = server.client();
    let stock = sid(&c.create_stock(json!({})));
    claim_ok(&c, &stock, "u1");
    let dir = TempDir::new();
    let db = server.db();
    let db = db.to_str().unwrap();
    let quiet = dir.path().join("quiet.db");
    let out = piped(&["backup", quiet.to_str().unwrap(), "--db", db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "", "piped stderr must stay empty");

    let loud = dir.path().join("loud.db");
    let Some(out) = on_a_terminal(test, &["backup", loud.to_str().unwrap(), "--db", db]) else {
        return;
    };
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("checking every ledger invariant on the copy"),
        "{screen:?}"
    );
    assert!(screen.contains("\r\x1b[K"), "{screen:?}");
    assert!(screen.contains("ok: "), "{screen:?}");
    assert!(loud.is_file());
}
