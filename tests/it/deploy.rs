//! deploy/coupon-ledger.service: `systemd-analyze verify` accepts it, and it
//! holds the settings operations.md promises.

use std::process::Command;

use coupon_ledger::config::Config;

use crate::common::*;

const UNIT: &str = include_str!("../../deploy/coupon-ledger.service");

/// `systemd-analyze verify` on `unit` (saved as coupon-ledger.service);
/// `None` when systemd-analyze is missing. Returns every complaint: its exit
/// status is 0 even for an unknown key, so any line naming the file counts.
fn verify(test: &str, unit: &str) -> Option<Vec<String>> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        missing_tool(test, "systemd-analyze (apt-get install systemd)");
        return None;
    }
    let dir = TempDir::new();
    let path = dir.path().join("coupon-ledger.service");
    // The binary must exist for verify; use the one under test.
    std::fs::write(&path, unit.replace("/usr/local/bin/coupon-ledger", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| l.contains("coupon-ledger.service"))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        problems.push(format!(
            "systemd-analyze verify exited {:?}: {text}",
            out.status
        ));
    }
    Some(problems)
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let test = "systemd_unit_passes_systemd_analyze_verify";
    let Some(problems) = verify(test, UNIT) else {
        return;
    };
    assert!(
        problems.is_empty(),
        "deploy/coupon-ledger.service: {problems:#?}"
    );
    // The check sees a misspelt key, so a clean pass means something.
    let Some(typo) = verify(test, &UNIT.replace("ProtectSystem=", "ProtectSytem=")) else {
        return;
    };
    assert!(
        typo.iter().any(|l| l.contains("ProtectSytem")),
        "systemd-analyze did not flag a misspelt key: {typo:?}"
    );
}

fn setting<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_unit_runs_hardened_as_its_own_user_and_outwaits_the_grace_time() {
    for (key, value) in [
        ("User", "coupon-ledger"),
        ("StateDirectory", "coupon-ledger"),
        ("WorkingDirectory", "/var/lib/coupon-ledger"),
        ("ReadWritePaths", "/var/lib/coupon-ledger"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(setting(key), vec![value], "{key}");
    }
    // `systemctl reload` (the certificate's renewal hook) sends SIGHUP.
    assert_eq!(setting("ExecReload"), vec!["/bin/kill -HUP $MAINPID"]);
    let exec = setting("ExecStart");
    assert_eq!(
        exec,
        vec!["/usr/local/bin/coupon-ledger serve --config /etc/coupon-ledger/ledger.toml"]
    );
    // The stop timeout must leave the server its whole grace time.
    let dir = TempDir::new();
    let cfg = Config::from_toml(
        &config_toml(&dir.path().join("ledger.db"), "127.0.0.1:0", ""),
        &|_| None,
    )
    .unwrap();
    let stop: u64 = setting("TimeoutStopSec")[0].parse().unwrap();
    assert!(
        stop > cfg.shutdown_grace_s,
        "TimeoutStopSec={stop} must exceed shutdown_grace_s={}",
        cfg.shutdown_grace_s
    );
}
