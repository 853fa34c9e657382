//! The network edge: per-partner source allowlists and rate limits, the
//! admin allowlist, and when `X-Forwarded-For` is believed.

use std::process::Command;

use coupon_ledger::sign::SignRule;
use serde_json::{json, Value};

use crate::common::*;

const EDGE_KEY: &str = "EDGEPARTNER";
const EDGE_SECRET: &str = "edge-secret";

fn edge_partner(lines: &str) -> String {
    format!("[[partners]]\napi_key = \"{EDGE_KEY}\"\nsecret = \"{EDGE_SECRET}\"\nname = \"edge\"\n{lines}\n")
}

fn edge_query(stock_id: &str) -> Value {
    signed_as(
        EDGE_KEY,
        EDGE_SECRET,
        &SignRule::default(),
        json!({"stock_id": stock_id}),
    )
}

/// POSTs `body` from the local address `from` with curl; (HTTP status, body).
fn post_from(from: &str, s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--interface", from])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(body.to_string())
        .arg(format!("http://{}{path}", s.addr))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json_text, status) = text.rsplit_once('\n').expect("a status line");
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

#[test]
fn a_signed_call_from_outside_the_allowlist_answers_40301() {
    let s = TestServer::start_with(&edge_partner("allow_ips = [\"127.0.0.1/32\"]"));
    let (status, body) = post_from("127.0.0.2", &s, "/sp/stock/query", &edge_query("nope"));
    assert_eq!(
        (status, body["code"].as_i64()),
        (403, Some(40301)),
        "{body}"
    );
    assert_eq!(body["message"], "source address not allowed");
    // From an allowed address the call goes through (to the ledger's 40401).
    let (status, body) = post_from("127.0.0.1", &s, "/sp/stock/query", &edge_query("nope"));
    assert_eq!(
        (status, body["code"].as_i64()),
        (200, Some(40401)),
        "{body}"
    );
    // Partners without an allowlist are unaffected.
    let (_, body) = post_from(
        "127.0.0.2",
        &s,
        "/sp/stock/query",
        &signed(json!({"stock_id": "nope"})),
    );
    assert_eq!(body["code"], 40401);
    let h = expect(&raw_request(s.addr, "GET", "/healthz", &[], b""), 0);
    let edge = &h["data"]["edge"]["partners"];
    let mine = edge
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "edge")
        .unwrap();
    assert_eq!(mine["not_allowed"], 1, "{edge}");
}

#[test]
fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let s = TestServer::start_with(&format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        edge_partner("allow_ips = [\"198.51.100.0/24\"]")
    ));
    let send = |xff: &str| {
        raw_request(
            s.addr,
            "POST",
            "/sp/stock/query",
            &[("X-Forwarded-For", xff)],
            edge_query("nope").to_string().as_bytes(),
        )
    };
    assert_eq!(send("198.51.100.7").code(), 40401);
    assert_eq!(send("203.0.113.5").code(), 40301);
    // Without trusted proxies, the header changes nothing.
    let plain = TestServer::start_with(&edge_partner("allow_ips = [\"198.51.100.0/24\"]"));
    let a = raw_request(
        plain.addr,
        "POST",
        "/sp/stock/query",
        &[("X-Forwarded-For", "198.51.100.7")],
        edge_query("nope").to_string().as_bytes(),
    );
    assert_eq!(a.code(), 40301);
}

#[test]
fn over_the_rate_limit_answers_429_with_retry_after_and_writes_nothing() {
    let s = TestServer::start_with(&edge_partner("rate_limit_per_s = 1\nburst = 2"));
    let c = s.client();
    let writes = || -> i64 {
        raw_request(s.addr, "GET", "/healthz", &[], b"").json()["data"]["writer"]["writes"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(c.post("/sp/stock/query", &edge_query("nope")).code(), 40401);
    assert_eq!(c.post("/sp/stock/query", &edge_query("nope")).code(), 40401);
    let before = writes();
    let a = c.post("/sp/stock/query", &edge_query("nope"));
    assert_eq!((a.status, a.code()), (429, 42900), "{}", show(&a));
    let retry: u64 = a.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(writes(), before, "a refused call wrote to the database");
    // Other partners are not affected.
    assert_eq!(
        c.call("/sp/stock/query", json!({"stock_id": "nope"}))
            .code(),
        40401
    );
    let h = expect(&raw_request(s.addr, "GET", "/healthz", &[], b""), 0);
    let mine = h["data"]["edge"]["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "edge")
        .unwrap()
        .clone();
    assert_eq!(mine["rate_limited"], 1);
    assert_eq!(mine["rate_limit_per_s"], 1);
    assert_eq!(mine["burst"], 2);
}

#[test]
fn the_admin_allowlist_refuses_other_sources() {
    let s = TestServer::start_with("admin_allow_ips = [\"10.0.0.0/8\"]\n");
    let a = s.client().admin("GET", "/admin/stocks", None);
    assert_eq!((a.status, a.code()), (403, 40301), "{}", show(&a));
    let open = TestServer::start_with("admin_allow_ips = [\"127.0.0.1\"]\n");
    expect(&open.client().admin("GET", "/admin/stocks", None), 0);
}

#[test]
fn bad_edge_settings_are_refused_on_one_line() {
    for (extra, needle) in [
        (
            "admin_allow_ips = [\"10.0.0.0/99\"]\n".to_string(),
            "admin_allow_ips[0]",
        ),
        (
            "trusted_proxies = [\"proxy\"]\n".to_string(),
            "trusted_proxies[0]",
        ),
        (edge_partner("rate_limit_per_s = 0"), "rate_limit_per_s"),
        (edge_partner("burst = 5"), "burst"),
        (edge_partner("allow_ips = [\"1.2.3.4/40\"]"), "allow_ips[0]"),
        ("max_connections = 0\n".to_string(), "max_connections"),
        ("max_connections = 100000\n".to_string(), "max_connections"),
        (
            "max_connections = 10\nmax_connections_per_ip = 11\n".to_string(),
            "max_connections_per_ip",
        ),
        (
            "max_connections_per_ip = 0\n".to_string(),
            "max_connections_per_ip",
        ),
    ] {
        let e = coupon_ledger::config::Config::from_toml(
            &config_toml(std::path::Path::new("x.db"), "127.0.0.1:0", &extra),
            &|_| None,
        )
        .unwrap_err();
        assert!(e.contains(needle), "{extra}: {e}");
        assert!(!e.contains('\n'));
    }
}

/// A connection with a request head begun and not finished: busy, so the
/// server cannot close it to make room.
fn busy_connection(s: &TestServer) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(s.addr).expect("connects");
    c.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n")
        .expect("writes");
    c
}

#[test]
fn max_connections_per_ip_caps_one_address_and_not_another() {
    let s = TestServer::start_with("max_connections_per_ip = 2\n");
    let held: Vec<_> = (0..2).map(|_| busy_connection(&s)).collect();
    // The server takes a moment to see both as busy.
    let mut answered = 0;
    for _ in 0..50 {
        answered = post_from("127.0.0.1", &s, "/livez", &json!({})).0;
        if answered == 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        answered, 503,
        "a third connection from 127.0.0.1 is refused"
    );
    let (status, _) = post_from("127.0.0.2", &s, "/livez", &json!({}));
    assert_ne!(status, 503, "another address still gets in");
    assert_ne!(status, 0, "curl reached the server from 127.0.0.2");
    drop(held);
}

/// `fields` signed as the edge partner for the coupon query (`agent_no`, no `api_key`).
fn edge_wx(fields: Value) -> Value {
    let mut m = fields.as_object().unwrap().clone();
    m.insert("agent_no".into(), json!(EDGE_KEY));
    let s = coupon_ledger::sign::sign(&m, &SignRule::default(), EDGE_SECRET);
    m.insert("sign".into(), json!(s));
    Value::Object(m)
}

/// The same body with a sign that is not the partner's.
fn forged(mut body: Value) -> Value {
    body["sign"] = json!("0123456789ABCDEF0123456789ABCDEF");
    body
}

#[test]
fn calls_with_a_bad_signature_do_not_spend_the_partners_rate_limit() {
    let s = TestServer::start_with(&edge_partner("rate_limit_per_s = 1\nburst = 2"));
    let c = s.client();
    let gateway = || {
        signed_as(
            EDGE_KEY,
            EDGE_SECRET,
            &SignRule::default(),
            json!({"method": "allinpay.shopoint.thirdCouponService.prepare", "version": "1.0",
                   "type": "meituan", "couponNo": "nope", "shopId": 147}),
        )
    };
    let wx = || edge_wx(json!({"coupon_id": "1", "openid": "o", "nonce": unique("n")}));
    // A flood from someone who knows the api key but not the secret, on
    // every signed protocol: each call is refused for its sign, none for the rate.
    for _ in 0..10 {
        let a = c.post("/sp/stock/query", &forged(edge_query("nope")));
        assert_eq!(a.code(), 40102, "{}", show(&a));
        let a = c.post("/gateway", &forged(gateway()));
        assert_eq!(a.json()["sub_code"], 40102, "{}", show(&a));
        let a = c.post("/wx/coupon/query", &forged(wx()));
        assert_eq!(a.json()["result_code"], "40102", "{}", show(&a));
    }
    // A signed call outside the timestamp window spends nothing either.
    let mut stale = edge_query("nope").as_object().unwrap().clone();
    stale.insert("timestamp".into(), json!("1000000000"));
    stale.remove("sign");
    let stale = signed_as(
        EDGE_KEY,
        EDGE_SECRET,
        &SignRule::default(),
        Value::Object(stale),
    );
    assert_eq!(c.post("/sp/stock/query", &stale).code(), 40103);
    let h = expect(&raw_request(s.addr, "GET", "/healthz", &[], b""), 0);
    let edge = h["data"]["edge"]["partners"].clone();
    let mine = edge
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "edge");
    assert_eq!(mine.unwrap()["rate_limited"], 0, "{edge}");
    // The partner itself still has its whole burst, and then the limit holds.
    assert_eq!(c.post("/sp/stock/query", &edge_query("nope")).code(), 40401);
    let a = c.post("/wx/coupon/query", &wx());
    assert_eq!(a.json()["result_code"], "40402", "{}", show(&a));
    let a = c.post("/gateway", &gateway());
    assert_eq!(
        (a.status, a.json()["sub_code"].as_i64()),
        (429, Some(42900)),
        "{}",
        show(&a)
    );
    let a = c.post("/wx/coupon/query", &wx());
    assert_eq!(
        (a.status, a.json()["result_code"].as_str()),
        (429, Some("42900")),
        "{}",
        show(&a)
    );
}
