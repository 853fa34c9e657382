//! Running in production: one server per database, start order, health
//! endpoints, graceful shutdown on real signals, storage faults, backup,
//! logs and the admin listener — against the real binary where a user meets it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// A child process killed when dropped, so a failing test leaves no server behind.
struct Spawned(Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary serving `cfg` on `port`, its stderr written to `log`.
fn spawn_logged(cfg: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> Spawned {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config"])
        .arg(cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .env_remove("COUPON_LEDGER_LOG")
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = Spawned(cmd.spawn().unwrap());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect(addr).is_ok()),
        "server did not come up; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    child
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Waits for the child to exit; its exit code.
fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the server did not exit within {within:?}");
}

/// Runs the binary with `args`; (exit ok, stdout, stderr, how long it took).
fn run(args: &[&str], dir: &Path) -> (bool, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("COUPON_LEDGER_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        started.elapsed(),
    )
}

/// Like [`run`] for a command that must end by itself: one still running
/// after `within` (a server that should have been refused) is killed and
/// fails the test.
fn run_to_exit(args: &[&str], dir: &Path, within: Duration) -> (bool, String) {
    let err_file = dir.join(unique("stderr-"));
    let mut child = Spawned(
        Command::new(bin())
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env_remove("COUPON_LEDGER_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let code = wait_exit(&mut child, within);
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    (code == Some(0), err)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    raw_request(addr, "GET", path, &[], b"")
}

// ---------------------------------------------------------------- lock

#[test]
fn a_second_server_on_the_same_database_is_refused_and_the_first_is_unaffected() {
    let (dir, db, cfg) = config_file("");
    let first = BinServer::start(&cfg, free_port());
    let c = first.client();
    let stock = c.create_stock(json!({}));

    let (ok, _, err, took) = run(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ],
        dir.path(),
    );
    assert!(!ok, "a second server started");
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "the holder's pid: {err}"
    );

    // CLI writes are refused the same way.
    let line = dir.path().join("v.jsonl");
    std::fs::write(&line, "{}\n").unwrap();
    for args in [
        vec![
            "voucher",
            "import",
            line.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
        vec!["outbox", "retry", "1", "--db", db.to_str().unwrap()],
        vec![
            "outbox",
            "abandon",
            "1",
            "--reason",
            "x",
            "--db",
            db.to_str().unwrap(),
        ],
    ] {
        let (ok, _, err, took) = run(&args, dir.path());
        assert!(!ok, "{args:?} ran beside the server");
        assert!(took < Duration::from_secs(2));
        assert!(err.contains("in use by"), "{args:?}: {err}");
    }

    // The first server still serves and writes.
    let a = c.claim(&sid(&stock), "u-lock", &unique("r"));
    assert_eq!(a.code(), 0, "{}", show(&a));
}

#[test]
fn a_second_name_for_the_same_database_is_refused_too() {
    use std::os::unix::fs::symlink;
    let (dir, _db, cfg) = config_file("");
    let real = dir.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    symlink(&real, dir.path().join("alias")).unwrap();
    // The first server names its database through a symlinked directory,
    // before the file exists.
    let first_db = dir.path().join("alias").join("ledger.db");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--db")
        .arg(&first_db)
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _first = BinServer { child, addr };
    let up = wait_until(Duration::from_secs(20), || TcpStream::connect(addr).is_ok());
    assert!(up, "the first server did not come up");
    symlink("real/ledger.db", dir.path().join("link.db")).unwrap();
    for other in ["real/ledger.db", "link.db", "real/../alias/ledger.db"] {
        let listen = format!("127.0.0.1:{}", free_port());
        let serve = ["serve", "--config", cfg.to_str().unwrap(), "--db", other];
        let (ok, err) = run_to_exit(
            &[&serve[..], &["--listen", &listen]].concat(),
            dir.path(),
            Duration::from_secs(10),
        );
        assert!(!ok, "a second server started on {other}");
        assert!(err.contains("in use by"), "{other}: {err}");
        let (ok, _, err, _) = run(&["outbox", "retry", "1", "--db", other], dir.path());
        assert!(!ok && err.contains("in use by"), "{other}: {err}");
    }
    assert_eq!(get(addr, "/readyz").status, 200);
}

#[test]
fn the_lock_goes_with_a_killed_server() {
    let (_dir, _db, cfg) = config_file("");
    let port = free_port();
    BinServer::start(&cfg, port).kill9();
    let again = BinServer::start(&cfg, free_port());
    assert_eq!(get(again.addr, "/readyz").status, 200);
}

// ---------------------------------------------------------------- start order

#[test]
fn a_busy_port_stops_the_start_before_anything_is_created() {
    let dir = TempDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let db = dir.path().join("ledger.db");
    let cfg = dir.path().join("ledger.toml");
    write_private(&cfg, &config_toml(&db, &format!("127.0.0.1:{port}"), ""));
    let before = files_in(dir.path());
    let (ok, _, err, _) = run(&["serve", "--config", cfg.to_str().unwrap()], dir.path());
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert_eq!(files_in(dir.path()), before, "files were left behind");

    let (ok, _, err, _) = run(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "not-an-address",
        ],
        dir.path(),
    );
    assert!(!ok);
    assert!(err.contains("not-an-address"), "{err}");
    assert_eq!(files_in(dir.path()), before, "files were left behind");
}

/// A read-only database: as root, a read-only mount (root ignores file modes);
/// otherwise the file's mode.
#[test]
fn a_database_that_cannot_be_written_is_refused_at_start() {
    let dir = TempDir::new();
    let as_root = is_root();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    if as_root {
        assert!(mount_tmpfs(&data, "4m"), "mount tmpfs");
    }
    let db = data.join("ledger.db");
    let cfg = dir.path().join("ledger.toml");
    write_private(&cfg, &config_toml(&db, "127.0.0.1:0", ""));
    let mut child = spawn_logged(&cfg, free_port(), &dir.path().join("first.log"), &[]);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    if as_root {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&data)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount read-only");
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let (ok, _, err, _) = run(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ],
        dir.path(),
    );
    if as_root {
        unmount(&data);
    }
    assert!(!ok, "a read-only database was served");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("ledger.db"), "{err}");
}

// ---------------------------------------------------------------- health

#[test]
fn livez_readyz_and_healthz_on_a_healthy_server() {
    let s = TestServer::start();
    let live = get(s.addr, "/livez");
    assert_eq!((live.status, live.code()), (200, 0));
    let ready = get(s.addr, "/readyz");
    assert_eq!((ready.status, ready.code()), (200, 0));
    let h = expect(&get(s.addr, "/healthz"), 0)["data"].clone();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["problems"], json!([]));
    assert_eq!(raw_request(s.addr, "POST", "/readyz", &[], b"").status, 405);
}

#[test]
fn a_dead_sync_call_makes_health_degraded_and_names_it() {
    // The platform never answers: the first call dies after one attempt.
    let closed = free_port();
    let s = TestServer::start_stepped(&format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"P\"\nsecret = \"S\"\nmax_attempts = 1\n"
    ));
    let c = s.client();
    c.create_stock(json!({}));
    assert_eq!(get(s.addr, "/healthz").json()["data"]["status"], "ok");
    assert_eq!(s.deliver_all(), 1);
    let h = expect(&get(s.addr, "/healthz"), 0)["data"].clone();
    assert_eq!(h["status"], "degraded", "{h}");
    let problems = h["problems"].to_string();
    assert!(problems.contains("dead sync call"), "{problems}");
    // Readiness is about writes, which still commit.
    assert_eq!(get(s.addr, "/readyz").status, 200);
    assert_eq!(get(s.addr, "/livez").status, 200);
}

#[test]
fn calls_waiting_behind_a_dead_call_are_named_in_health_problems() {
    let closed = free_port();
    let s = TestServer::start_stepped(&format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"P\"\nsecret = \"S\"\nmax_attempts = 1\n"
    ));
    let c = s.client();
    let stock = sid(&c.create_stock(json!({})));
    // The stock's first call dies; everything queued after it about the
    // stock, or a coupon of it, waits behind it.
    assert_eq!(s.deliver_all(), 1);
    for user in ["u-1", "u-2"] {
        let issued = c.admin(
            "POST",
            "/admin/coupons",
            Some(
                json!({"stock_id": stock, "user_code": user, "app_channel_id": 1,
                        "request_id": unique("r")}),
            ),
        );
        expect(&issued, 0);
    }
    assert_eq!(s.deliver_all(), 0, "a blocked call was sent");
    let h = expect(&get(s.addr, "/healthz"), 0)["data"].clone();
    // One call for each issued coupon.
    assert_eq!(h["outbox"]["blocked_by_dead"], 2, "{h}");
    assert_eq!(h["outbox"]["pending"], 2, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let line = "2 sync call(s) blocked behind a dead call";
    let problems = h["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p == &json!(line)), "{h}");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("1 dead sync call(s)")),
        "{h}"
    );
}

#[test]
fn an_old_pending_call_makes_health_degraded() {
    let closed = free_port();
    let s = TestServer::start_with(&format!(
        "health_max_pending_age_s = 1\n[platform]\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"P\"\nsecret = \"S\"\nretry_base_ms = 60000\nretry_max_ms = 60000\n"
    ));
    s.client().create_stock(json!({}));
    let degraded = wait_until(Duration::from_secs(10), || {
        get(s.addr, "/healthz").json()["data"]["problems"]
            .to_string()
            .contains("oldest pending sync call")
    });
    assert!(degraded, "{}", show(&get(s.addr, "/healthz")));
}

// ---------------------------------------------------------------- shutdown

enum Outcome {
    Answered(Answer),
    Refused,
    Broken(String),
}

/// One request on a fresh connection, reporting what happened instead of panicking.
fn try_post(addr: SocketAddr, path: &str, body: &Value) -> Outcome {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(e) => return Outcome::Broken(format!("connect: {e}")),
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Outcome::Broken(format!("write: {e}"));
    }
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf) {
        return Outcome::Broken(format!("read after sending: {e}"));
    }
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Outcome::Broken(format!(
            "closed after sending without an answer ({} bytes)",
            buf.len()
        ));
    };
    let status: u16 = String::from_utf8_lossy(&buf[9..12]).parse().unwrap_or(0);
    Outcome::Answered(Answer {
        status,
        headers: Vec::new(),
        body: buf[head_end + 4..].to_vec(),
    })
}

#[test]
fn sigterm_under_concurrent_claims_answers_everything_and_exits_0() {
    let (_dir, db, cfg) = config_file("shutdown_grace_s = 10\n");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[("COUPON_LEDGER_LOG", "warn")]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = Client { addr };
    let stock =
        client.create_stock(json!({"max_coupons": 1000000, "max_coupons_per_user": 1000000}));
    let stock_id = sid(&stock);

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (ack, broken, refused, signalled, stock_id) = (
            acknowledged.clone(),
            broken.clone(),
            refused.clone(),
            signalled.clone(),
            stock_id.clone(),
        );
        workers.push(thread::spawn(move || {
            // Until connections are refused: the server has stopped.
            for i in 0..100_000 {
                let body = signed(json!({"app_channel_id": 1, "user_code": format!("u{w}"),
                    "stock_id": stock_id, "request_id": format!("w{w}-{i}")}));
                match try_post(addr, "/sp/coupon/receive", &body) {
                    Outcome::Answered(a) => {
                        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                        if v["code"] == 0 {
                            ack.lock()
                                .unwrap()
                                .push(v["data"]["coupon_id"].as_str().unwrap().to_string());
                        } else {
                            broken
                                .lock()
                                .unwrap()
                                .push(format!("answer {}: {v}", a.status));
                        }
                    }
                    Outcome::Refused => {
                        refused.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A connection the kernel completed after the server's
                    // last look at its listen queue is reset when the
                    // listener closes: the request was never read, so it is
                    // a refusal. (Had it been committed, the count of stored
                    // coupons below would exceed the acknowledged ones.)
                    Outcome::Broken(why)
                        if signalled.load(Ordering::SeqCst)
                            && why.starts_with("read after sending") =>
                    {
                        refused.store(true, Ordering::SeqCst);
                        return;
                    }
                    Outcome::Broken(why) => broken.lock().unwrap().push(why),
                }
            }
        }));
    }
    assert!(wait_until(Duration::from_secs(20), || acknowledged
        .lock()
        .unwrap()
        .len()
        >= 200));
    signalled.store(true, Ordering::SeqCst);
    signal(&child, "TERM");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        code,
        Some(0),
        "log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        refused.load(Ordering::SeqCst),
        "connections were never refused"
    );
    let broken = broken.lock().unwrap();
    assert!(
        broken.is_empty(),
        "{} requests broken: {:?}",
        broken.len(),
        &broken[..broken.len().min(5)]
    );

    // Every acknowledged claim is in the ledger, which holds every invariant.
    let ack = acknowledged.lock().unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM coupons WHERE stock_id = ?1",
            [&stock_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored as usize, ack.len(), "acknowledged vs stored");
    for id in ack.iter().step_by(7) {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM coupons WHERE coupon_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged coupon {id} missing");
    }
    let (ok, report) = check(&db);
    assert!(ok, "{report}");
}

#[test]
fn sigint_also_shuts_down_gracefully_and_sighup_does_not_stop() {
    let (_dir, db, cfg) = config_file("");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    signal(&child, "HUP");
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the server"
    );
    assert_eq!(get(addr, "/livez").status, 200);
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
}

/// A connection with half a request sent: the server waits for the rest
/// until its read timeout (10 s), so a graceful stop waits for it too.
fn half_a_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    s
}

#[test]
fn a_second_signal_during_the_graceful_stop_exits_at_once() {
    let (_dir, db, cfg) = config_file("shutdown_grace_s = 60\n");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _stuck = half_a_request(addr);
    thread::sleep(Duration::from_millis(200));
    signal(&child, "TERM");
    // The stop waits for the request under way.
    thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the stop did not wait for the request under way"
    );
    let second = Instant::now();
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(5)), Some(1));
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "the second signal took {:?}",
        second.elapsed()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("second signal"), "{text}");
}

/// A platform that accepts connections and never answers; counts them.
struct HangingPlatform {
    port: u16,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HangingPlatform {
    fn start() -> HangingPlatform {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            let mut held = Vec::new();
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HangingPlatform {
            port,
            accepted,
            stop,
        }
    }

    fn toml(&self, grace_s: u64) -> String {
        platform_section(&format!("127.0.0.1:{}", self.port), grace_s)
    }

    /// Waits until a sync call is under way: the dispatcher has connected.
    fn wait_for_a_call(&self) {
        let called = wait_until(Duration::from_secs(20), || {
            self.accepted.load(Ordering::SeqCst) > 0
        });
        assert!(called, "the dispatcher never called the platform");
    }
}

impl Drop for HangingPlatform {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const PLATFORM_SECRET: &str = "platform-secret-for-shutdown";

/// Top-level `shutdown_grace_s`, then a `[platform]` at `addr`.
fn platform_section(addr: &str, grace_s: u64) -> String {
    format!(
        "shutdown_grace_s = {grace_s}\n[platform]\nbase_url = \"http://{addr}\"\n\
         api_key = \"SP-1\"\nsecret = \"{PLATFORM_SECRET}\"\nretry_base_ms = 100\nretry_max_ms = 200\n"
    )
}

#[test]
fn a_stuck_request_and_a_hanging_platform_do_not_hold_the_exit_past_the_grace_time() {
    let platform = HangingPlatform::start();
    let grace = 2;
    let (_dir, db, cfg) = config_file(&platform.toml(grace));
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Client { addr }.create_stock(json!({}));
    platform.wait_for_a_call();
    let _stuck = half_a_request(addr);
    thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    signal(&child, "TERM");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let took = asked.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        took < Duration::from_secs(grace) + Duration::from_millis(1500),
        "the stop took {took:?} with shutdown_grace_s = {grace}:\n{text}"
    );
    assert!(
        took >= Duration::from_secs(grace) - Duration::from_millis(100),
        "the stop did not wait for the request under way ({took:?})"
    );
    assert!(
        text.contains("did not stop within the grace time"),
        "{text}"
    );
}

/// The outbox straight from the database file: (seq_id, state, attempts).
fn outbox_rows(db: &Path) -> Vec<(String, String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq_id, state, attempts FROM outbox ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_sync_call_in_flight_at_sigterm_is_kept_and_sent_after_the_restart() {
    let platform = HangingPlatform::start();
    let (dir, db, cfg) = config_file(&platform.toml(2));
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Client { addr }.create_stock(json!({}));
    platform.wait_for_a_call();
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));

    // Nothing was delivered and nothing is lost: each call is still pending,
    // with or without an attempt recorded.
    let stopped = outbox_rows(&db);
    assert!(!stopped.is_empty(), "no sync call was queued");
    for (seq_id, state, attempts) in &stopped {
        assert_eq!(state, "pending", "{seq_id} ({attempts} attempts)");
    }

    // After a restart against a platform that answers, every call arrives.
    let mock =
        coupon_ledger::outbox::mock::MockPlatform::start("127.0.0.1:0", PLATFORM_SECRET, 0.0)
            .unwrap();
    let mock_addr = mock.local_addr().to_string();
    write_private(
        &cfg,
        &config_toml(&db, "127.0.0.1:0", &platform_section(&mock_addr, 2)),
    );
    let mut again = spawn_logged(&cfg, free_port(), &dir.path().join("again.log"), &[]);
    let delivered = wait_until(Duration::from_secs(20), || {
        outbox_rows(&db)
            .iter()
            .all(|(_, state, _)| state == "delivered")
    });
    signal(&again, "TERM");
    assert_eq!(wait_exit(&mut again, Duration::from_secs(15)), Some(0));
    assert!(delivered, "{:?}", outbox_rows(&db));
    let received: Vec<String> = mock.received().iter().map(|r| r.seq_id.clone()).collect();
    for (seq_id, _, _) in &stopped {
        assert!(
            received.contains(seq_id),
            "{seq_id} never reached the platform"
        );
    }
}

// ---------------------------------------------------------------- storage faults

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).status();
}

/// Fills the filesystem holding `dir` until writing fails; the filler file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // Small writes to take the last partial blocks too.
    while f.write_all(&[7u8; 512]).is_ok() {}
    let _ = f.sync_all();
    filler
}

/// Disk full on a real small filesystem (as root), or SQLite's page limit
/// otherwise: writes answer 50301 at once, reads work, `/readyz` is 503;
/// space comes back and writes recover without a restart.
#[test]
fn disk_full_answers_storage_unavailable_and_recovers_without_a_restart() {
    let dir = TempDir::new();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let real_fs = is_root() && mount_tmpfs(&data, "4m");
    if !real_fs {
        eprintln!(
            "NOTE: not root (or tmpfs unavailable): disk full is simulated with PRAGMA max_page_count"
        );
    }
    let db = data.join("ledger.db");
    let cfg =
        coupon_ledger::config::Config::from_toml(&config_toml(&db, "127.0.0.1:0", ""), &|_| None)
            .unwrap();
    let running = coupon_ledger::app::start(cfg).unwrap();
    let addr = running.local_addr();
    let c = Client { addr };
    let stock = c.create_stock(json!({"max_coupons": 1000000, "max_coupons_per_user": 1000000}));
    let stock_id = sid(&stock);
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let a = c.claim(&stock_id, "u-full", &format!("before-{i}"));
        acknowledged.push(
            expect(&a, 0)["data"]["coupon_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    let filler = if real_fs {
        Some(fill(&data))
    } else {
        running
            .store()
            .write(|conn| {
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))?;
                Ok(())
            })
            .unwrap();
        None
    };

    // Writes fail cleanly and fast; keep writing until the storage refuses.
    let mut refused = None;
    for i in 0..2000 {
        let started = Instant::now();
        let body = signed(json!({"app_channel_id": 1, "user_code": "u-full",
            "stock_id": stock_id, "request_id": format!("during-{i}")}));
        let a = c.post("/sp/coupon/receive", &body);
        assert!(started.elapsed() < Duration::from_secs(10), "a write hung");
        match a.code() {
            0 => acknowledged.push(a.json()["data"]["coupon_id"].as_str().unwrap().to_string()),
            50301 => {
                refused = Some((a, body));
                break;
            }
            other => panic!("unexpected code {other}: {}", show(&a)),
        }
    }
    let (refused, refused_body) = refused.expect("the full disk never refused a write");
    assert_eq!(refused.status, 503);
    assert!(refused.json()["message"]
        .as_str()
        .unwrap()
        .contains("storage unavailable"));
    let not_ready = get(addr, "/readyz");
    assert_eq!(
        (not_ready.status, not_ready.code()),
        (503, 50301),
        "{}",
        show(&not_ready)
    );
    let h = expect(&get(addr, "/healthz"), 0)["data"].clone();
    assert_eq!(h["status"], "degraded", "{h}");
    // Reads that need no write still work.
    let one = c.admin("GET", &format!("/admin/coupons/{}", acknowledged[0]), None);
    expect(&one, 0);
    assert_eq!(get(addr, "/livez").status, 200);

    // Space comes back.
    match &filler {
        Some(f) => std::fs::remove_file(f).unwrap(),
        None => running
            .store()
            .write(|conn| {
                conn.execute_batch("PRAGMA max_page_count = 1073741823")?;
                Ok(())
            })
            .unwrap(),
    }
    let ready = wait_until(Duration::from_secs(10), || {
        get(addr, "/readyz").status == 200
    });
    assert!(ready, "readiness did not come back");
    let a = c.claim(&stock_id, "u-full", "after");
    acknowledged.push(
        expect(&a, 0)["data"]["coupon_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    // The refused claim committed nothing, its nonce included: the very same
    // signed request goes through now, once.
    let retried = c.post("/sp/coupon/receive", &refused_body);
    acknowledged.push(
        expect(&retried, 0)["data"]["coupon_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    expect(&c.post("/sp/coupon/receive", &refused_body), 40104);

    running.shutdown();
    let conn = rusqlite::Connection::open(&db).unwrap();
    for id in &acknowledged {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM coupons WHERE coupon_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged coupon {id} lost");
    }
    drop(conn);
    let (ok, report) = check(&db);
    assert!(ok, "{report}");
    if real_fs {
        unmount(&data);
    }
}

// ---------------------------------------------------------------- backup

#[test]
fn backup_under_load_is_consistent_and_passes_check() {
    let s = TestServer::start();
    let c = s.client();
    let stock = c.create_stock(json!({"max_coupons": 1000000, "max_coupons_per_user": 1000000}));
    let stock_id = sid(&stock);
    for i in 0..50 {
        expect(&c.claim(&stock_id, "u-b", &format!("pre-{i}")), 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..3 {
        let (stop, stock_id) = (stop.clone(), stock_id.clone());
        load.push(thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let a = c.claim(&stock_id, &format!("u{w}"), &format!("load-{w}-{i}"));
                assert_eq!(a.code(), 0, "{}", show(&a));
                i += 1;
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    let dest = s.dir.path().join("backup.db");
    let (ok, out, err, _) = run(
        &[
            "backup",
            "--db",
            s.db().to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
        s.dir.path(),
    );
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.join().unwrap();
    }
    assert!(ok, "backup failed: {err}");
    assert!(out.starts_with("ok: "), "{out}");
    let (ok, report) = check(&dest);
    assert!(ok, "{report}");
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM coupons", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 50, "the copy has {n} coupons");

    // A backup never overwrites.
    let (ok, _, err, _) = run(
        &[
            "backup",
            "--db",
            s.db().to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
        s.dir.path(),
    );
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    // A missing source is named.
    let (ok, _, err, _) = run(
        &["backup", "--db", "/nonexistent/x.db", "/tmp/never.db"],
        s.dir.path(),
    );
    assert!(!ok);
    assert!(err.contains("/nonexistent/x.db"), "{err}");
}

#[test]
fn backup_with_a_config_file_copies_the_database_it_names() {
    let s = TestServer::start();
    let c = s.client();
    let stock = sid(&c.create_stock(json!({})));
    let claimed = claim_ok(&c, &stock, "u-cfg");
    let cfg = s.dir.path().join("ledger.toml");
    write_private(&cfg, &config_toml(&s.db(), "127.0.0.1:0", ""));
    // From another directory, so no ./ledger.db can stand in for the configured one.
    let elsewhere = TempDir::new();
    let dest = elsewhere.path().join("copy.db");
    let (ok, out, err, _) = run(
        &[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
        elsewhere.path(),
    );
    assert!(ok, "backup --config failed: {err}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains(&s.db().display().to_string()), "{out}");
    let (ok, report) = check(&dest);
    assert!(ok, "{report}");
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM coupons WHERE coupon_id = ?1",
            [&claimed],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1, "the claimed coupon is not in the copy");
    assert_eq!(files_in(elsewhere.path()), ["copy.db"]);
}

// ---------------------------------------------------------------- logs

/// The line `serve` prints once it listens: a message to the person who
/// started it, not a log line, so it carries no timestamp.
const START_BANNER: &str = "coupon-ledger listening on ";

/// Every line of a server's stderr, but the start banner, begins with an
/// RFC 3339 UTC timestamp: `[2026-11-24T13:48:19.824Z INFO  target] ...`.
fn assert_every_line_is_timestamped(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let banners = lines.iter().filter(|l| l.starts_with(START_BANNER)).count();
    assert_eq!(banners, 1, "one start banner expected:\n{text}");
    let logged: Vec<&str> = lines
        .into_iter()
        .filter(|l| !l.starts_with(START_BANNER))
        .collect();
    assert!(logged.len() >= 3, "too few log lines to judge:\n{text}");
    for line in logged {
        let ts = line
            .strip_prefix('[')
            .and_then(|rest| rest.get(..24))
            .unwrap_or_else(|| panic!("a log line without a timestamp: {line:?}"));
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "no RFC 3339 timestamp: {line:?}"
        );
        assert!(ts.ends_with('Z'), "not UTC: {line:?}");
    }
}

#[test]
fn a_line_without_a_timestamp_fails_the_log_check() {
    let good = "[2026-11-24T13:48:19.824Z INFO  access] GET /livez status=200\n\
                coupon-ledger listening on http://127.0.0.1:1 (database x)\n\
                [2026-11-24T13:48:19.825Z INFO  app] stopping\n\
                [2026-11-24T13:48:19.826Z INFO  app] stopped\n";
    assert_every_line_is_timestamped(good);
    for bad in [
        format!("{good}continued on a second line\n"),
        format!("{good}[not a time at all, but in brackets] x\n"),
        format!("{good}[2026-11-24T21:48:19.826+08:00 INFO  app] local time\n"),
    ] {
        let caught = std::panic::catch_unwind(|| assert_every_line_is_timestamped(&bad));
        assert!(caught.is_err(), "not caught:\n{bad}");
    }
}

#[test]
fn logs_have_timestamps_access_lines_with_codes_and_no_secrets() {
    let (_dir, db, cfg) = config_file("");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[("COUPON_LEDGER_LOG", "INFO")]);
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let stock = c.create_stock(json!({}));
    let body = signed(
        json!({"app_channel_id": 1, "user_code": "u-log", "stock_id": sid(&stock),
        "request_id": "r-log", "mobile_phone": "13912342222", "seq_id": "seq-for-the-log"}),
    );
    expect(&c.post("/sp/coupon/receive", &body), 0);
    let mut bad = signed(json!({"stock_id": "x"}));
    bad["stock_id"] = json!("y");
    assert_eq!(c.post("/sp/stock/query", &bad).code(), 40102);
    let a = raw_request(
        c.addr,
        "GET",
        "/admin/stocks",
        &[("Authorization", "Bearer wrong-token-xyz")],
        b"",
    );
    assert_eq!(a.status, 401);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));

    let text = std::fs::read_to_string(&log).unwrap();
    assert_every_line_is_timestamped(&text);
    let access = text
        .lines()
        .find(|l| l.contains("/sp/coupon/receive"))
        .unwrap_or_else(|| panic!("no access line:\n{text}"));
    for part in [
        "INFO",
        "POST",
        "status=200",
        "code=0",
        "ms=",
        "partner=travel-platform",
        "seq_id=seq-for-the-log",
    ] {
        assert!(access.contains(part), "{part} missing: {access}");
    }
    let bad_sign = text
        .lines()
        .find(|l| l.contains("bad signature"))
        .unwrap_or_else(|| panic!("no auth line:\n{text}"));
    assert!(
        bad_sign.contains("WARN") && bad_sign.contains(KEY) && bad_sign.contains("127.0.0.1"),
        "{bad_sign}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("bad admin token")),
        "{text}"
    );
    assert!(text.contains("code=40102"), "{text}");
    for secret in [
        SECRET,
        ADMIN,
        "13912342222",
        "wrong-token-xyz",
        body["sign"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} is in the log:\n{text}");
    }
}

/// A stock query from the main partner with a sign that does not match.
fn badly_signed_query(c: &Client) -> Answer {
    let mut bad = signed(json!({"stock_id": "x"}));
    bad["stock_id"] = json!("y");
    c.post("/sp/stock/query", &bad)
}

#[test]
fn refused_authentications_beyond_the_budget_are_counted_in_one_line() {
    use coupon_ledger::logging::{AUTH_LINES_PER_WINDOW, AUTH_WINDOW};
    let (_dir, db, cfg) = config_file("");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[("COUPON_LEDGER_LOG", "warn")]);
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let over = 7;
    let sent = AUTH_LINES_PER_WINDOW as usize + over;
    let first = Instant::now();
    for _ in 0..sent {
        assert_eq!(badly_signed_query(&c).code(), 40102);
    }
    assert!(
        first.elapsed() < AUTH_WINDOW,
        "the flood took {:?}, longer than one window",
        first.elapsed()
    );
    let refusals = |text: &str| text.matches("refused: bad signature").count();
    // Within the window, the lines stop at the budget (give the log a moment).
    thread::sleep(Duration::from_millis(300));
    let during = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        refusals(&during),
        AUTH_LINES_PER_WINDOW as usize,
        "{during}"
    );
    assert!(!during.contains("not logged"), "{during}");

    // The first refusal of the next window logs the count of the rest, then itself.
    thread::sleep(AUTH_WINDOW.saturating_sub(first.elapsed()) + Duration::from_millis(200));
    assert_eq!(badly_signed_query(&c).code(), 40102);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let summary = format!("{over} more refused authentications were not logged");
    let at = text
        .find(&summary)
        .unwrap_or_else(|| panic!("no summary line {summary:?}:\n{text}"));
    assert!(text[..at]
        .lines()
        .last()
        .is_some_and(|l| l.contains("WARN  auth]")));
    assert_eq!(
        refusals(&text),
        AUTH_LINES_PER_WINDOW as usize + 1,
        "{text}"
    );
    assert_eq!(refusals(&text[at..]), 1, "{text}");
}

/// Sends `raw` on a fresh connection and reads until the server closes it.
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

/// The access line in `text` holding every one of `parts`.
fn access_line<'a>(text: &'a str, parts: &[&str]) -> &'a str {
    text.lines()
        .find(|l| l.contains("INFO  access]") && parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no access line with {parts:?}:\n{text}"))
}

#[test]
fn answers_of_the_http_layer_itself_have_access_lines() {
    let (_dir, db, cfg) = config_file("");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // 408: a head that never ends (the read timeout is 10 s).
    let slow = thread::spawn(move || exchange(addr, b"GET /livez HTTP/1.1\r\nHost: t\r\n"));
    let a = exchange(addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 400 "), "{a}");
    let a = exchange(
        addr,
        b"POST /sp/coupon/receive?k=secret-in-query HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 413 "), "{a}");
    let big = format!(
        "GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "x".repeat(9 * 1024)
    );
    let a = exchange(addr, big.as_bytes());
    assert!(a.starts_with("HTTP/1.1 431 "), "{a}");

    // 503: one address holds its share (256) of connections, each with a
    // request under way, so the next is turned away at accept. A connection
    // whose thread has not read its first bytes yet still looks idle and may
    // be closed to make room, so more are opened until one is turned away.
    let partial = || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
        s
    };
    let mut held: Vec<TcpStream> = (0..256).map(|_| partial()).collect();
    let busy = wait_until(Duration::from_secs(10), || {
        if held.len() < 512 {
            held.push(partial());
        }
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("status=503"))
    });
    assert!(busy, "no connection was turned away");
    drop(held);
    let a = slow.join().unwrap();
    assert!(a.starts_with("HTTP/1.1 408 "), "{a}");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));

    let text = std::fs::read_to_string(&log).unwrap();
    access_line(&text, &["- - status=400 code=40000 ms=", "peer=127.0.0.1:"]);
    let too_large = access_line(
        &text,
        &["POST /sp/coupon/receive status=413 code=41300 ms="],
    );
    assert!(!too_large.contains("secret-in-query"), "{too_large}");
    access_line(&text, &["- - status=431 code=43100 ms="]);
    access_line(&text, &["- - status=503 code=50300 ms="]);
    let timeout = access_line(&text, &["status=408 code=40800 ms="]);
    // The latency is the time the request took to fail: the read timeout.
    let ms: f64 = timeout
        .split("ms=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no latency: {timeout}"));
    assert!(ms >= 9_000.0, "{timeout}");
}

#[test]
fn the_log_level_is_read_case_insensitively_with_filters() {
    let (_dir, db, cfg) = config_file("");
    let port = free_port();
    let log = db.with_extension("log");
    let mut child = spawn_logged(&cfg, port, &log, &[("RUST_LOG", "WARN")]);
    let c = Client {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let mut bad = signed(json!({"stock_id": "x"}));
    bad["stock_id"] = json!("y");
    assert_eq!(c.post("/sp/stock/query", &bad).code(), 40102);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("bad signature"),
        "warn lines missing:\n{text}"
    );
    assert!(!text.contains("status=200"), "info lines at warn:\n{text}");
}

// ---------------------------------------------------------------- admin safety

#[test]
fn admin_listen_moves_the_admin_api_off_the_public_listener() {
    let admin_port = free_port();
    let s = TestServer::start_with(&format!("admin_listen = \"127.0.0.1:{admin_port}\"\n"));
    let public = s.client();
    let admin = Client {
        addr: format!("127.0.0.1:{admin_port}").parse().unwrap(),
    };
    let a = public.admin("GET", "/admin/stocks", None);
    assert_eq!((a.status, a.code()), (404, 40400));
    expect(&admin.admin("GET", "/admin/stocks", None), 0);
    // Partner paths are not on the admin listener; ops paths are on both.
    let q = admin.call("/sp/stock/query", json!({"stock_id": "x"}));
    assert_eq!(q.status, 404);
    assert_eq!(get(admin.addr, "/readyz").status, 200);
    assert_eq!(
        public
            .call("/sp/stock/query", json!({"stock_id": "x"}))
            .code(),
        40401
    );
}

#[test]
fn repeated_bad_admin_tokens_from_one_address_are_refused_for_a_while() {
    let s = TestServer::start();
    let bad = [("Authorization", "Bearer nope")];
    for _ in 0..10 {
        assert_eq!(
            raw_request(s.addr, "GET", "/admin/stocks", &bad, b"").status,
            401
        );
    }
    // Now even the right token waits.
    let a = s.client().admin("GET", "/admin/stocks", None);
    assert_eq!((a.status, a.code()), (429, 42900), "{}", show(&a));
    let retry: u64 = a.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Partners are not affected.
    assert_eq!(
        s.client()
            .call("/sp/stock/query", json!({"stock_id": "x"}))
            .code(),
        40401
    );
}

#[test]
fn a_config_readable_by_others_is_warned_about() {
    let (dir, _db, cfg) = config_file("");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let log = dir.path().join("warn.log");
    let mut child = spawn_logged(&cfg, port, &log, &[]);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("readable by other users"), "{text}");

    // 0600, and 0640 (the service install: readable by the service's group).
    for mode in [0o600, 0o640] {
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut child = spawn_logged(&cfg, free_port(), &log, &[]);
        signal(&child, "TERM");
        assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains("readable by other users"),
            "{mode:o}: {text}"
        );
    }
}
