//! Limits under concurrency, and acknowledged claims across `kill -9`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// One signed claim on a fresh connection; `None` when the server is gone.
fn try_claim(addr: SocketAddr, stock: &str, user: &str, request_id: &str) -> Option<Value> {
    let body = signed(json!({
        "app_channel_id": 1, "user_code": user, "stock_id": stock, "request_id": request_id
    }))
    .to_string();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let req = format!(
        "POST /sp/coupon/receive HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// (request_id, user, code, coupon_id) of one claim.
type Outcome = (String, String, i64, Option<String>);

#[test]
fn concurrent_claims_never_exceed_stock_or_user_limits() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({"max_coupons": 20, "max_coupons_per_user": 3}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    let addr = server.addr;
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let threads: Vec<_> = (0..24)
        .map(|t| {
            let (stock_id, results) = (stock_id.clone(), results.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1000_0001));
                for _ in 0..15 {
                    let user = format!("user{}", rng.next(10));
                    // The same request id always carries the same parameters, and
                    // several threads send each one.
                    let request_id = format!("{user}-k{}", rng.next(5));
                    let a = try_claim(addr, &stock_id, &user, &request_id).expect("server answers");
                    let code = a["code"].as_i64().unwrap();
                    let coupon = a["data"]["coupon_id"].as_str().map(str::to_string);
                    results
                        .lock()
                        .unwrap()
                        .push((request_id, user, code, coupon));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap();
    let mut by_request: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut by_user: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut all = HashSet::new();
    for (request_id, user, code, coupon) in results.iter() {
        assert!([0, 40903, 40904].contains(code), "unexpected code {code}");
        if let Some(coupon) = coupon {
            assert_eq!(*code, 0);
            by_request.entry(request_id).or_default().insert(coupon);
            by_user.entry(user).or_default().insert(coupon);
            all.insert(coupon.as_str());
        }
    }
    assert!(all.len() <= 20, "{} coupons issued of 20", all.len());
    assert_eq!(all.len(), 20, "the stock should sell out under this load");
    for (r, coupons) in &by_request {
        assert_eq!(
            coupons.len(),
            1,
            "request_id {r} got several coupons: {coupons:?}"
        );
    }
    for (u, coupons) in &by_user {
        assert!(coupons.len() <= 3, "user {u} holds {}", coupons.len());
    }
    let got = c
        .admin("GET", &format!("/admin/stocks/{stock_id}"), None)
        .json();
    assert_eq!(got["data"]["counts"]["issued"], 20);
    let (ok, out) = check(&server.db());
    assert!(ok, "check failed:\n{out}");
}

#[test]
fn acknowledged_claims_survive_kill_9() {
    let (_dir, db, cfg) = config_file("");
    let server = BinServer::start(&cfg, free_port());
    let c = server.client();
    let stock = c.create_stock(json!({"max_coupons": 100000, "max_coupons_per_user": 100000}));
    let stock_id = stock["stock_id"].as_str().unwrap().to_string();
    let addr = server.addr;

    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (stock_id, acked, stop) = (stock_id.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("crash-user{}", i % 7);
                    let request_id = format!("t{t}-r{i}");
                    i += 1;
                    match try_claim(addr, &stock_id, &user, &request_id) {
                        Some(a) if a["code"] == 0 => {
                            let coupon = a["data"]["coupon_id"].as_str().unwrap().to_string();
                            acked.lock().unwrap().push((user, request_id, coupon));
                        }
                        Some(a) => panic!("unexpected answer {a}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(60), || acked.lock().unwrap().len()
            >= 150),
        "load did not get going"
    );
    // Kill while requests are in flight.
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let server = BinServer::start(&cfg, free_port());
    let c = server.client();
    let got = c
        .admin("GET", &format!("/admin/stocks/{stock_id}"), None)
        .json();
    let issued = got["data"]["counts"]["issued"].as_u64().unwrap() as usize;
    assert!(
        issued >= acked.len(),
        "{issued} coupons on disk, {} acknowledged",
        acked.len()
    );
    for (user, request_id, coupon) in &acked {
        let a = c.claim(&stock_id, user, request_id).json();
        assert_eq!(a["code"], 0, "{a}");
        assert_eq!(
            a["data"]["coupon_id"].as_str(),
            Some(coupon.as_str()),
            "replay of {request_id}"
        );
    }
    drop(server);
    let (ok, out) = check(&db);
    assert!(ok, "check failed:\n{out}");
}

#[test]
fn many_concurrent_reads_share_a_bounded_pool_of_connections() {
    let dir = TempDir::new();
    let store = coupon_ledger::store::Store::open(
        &dir.path().join("ledger.db"),
        coupon_ledger::store::StoreOptions {
            durability: coupon_ledger::config::Durability::Full,
            timestamp_window_s: 300,
            sync_calls: None,
            max_batch: coupon_ledger::store::DEFAULT_MAX_BATCH,
        },
    )
    .unwrap();
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..300)
        .map(|_| {
            let (store, most) = (store.clone(), most.clone());
            std::thread::spawn(move || {
                store
                    .read(|c| {
                        most.fetch_max(store.readers_open(), std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        Ok(c.query_row("SELECT count(*) FROM stocks", [], |r| r.get::<_, i64>(0))?)
                    })
                    .unwrap()
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), 0);
    }
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most > 1, "reads ran one at a time: {most}");
    assert!(most <= 64, "{most} read connections were open at once");
    assert!(store.readers_open() <= 64);
}
