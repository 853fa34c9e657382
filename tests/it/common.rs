//! Test harness: start the real server on a temp database and a free port, and
//! talk to it over HTTP the way a partner or an operator would.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coupon_ledger::config::Config;
use coupon_ledger::sign::{self, SignFields, SignRule};
use serde_json::{json, Map, Value};

pub const KEY: &str = "PSUBZLHOKUO6HV52A5CAUSSE5KSB6Y";
pub const SECRET: &str = "test-secret-1";
/// A second partner that signs only the common fields, with `secretKey`.
pub const KEY2: &str = "COMMONSIGNER";
pub const SECRET2: &str = "test-secret-2";
pub const ADMIN: &str = "admin-token-for-tests";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique value for nonces, request ids and names.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{}", std::process::id(), t % 1_000_000_000)
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("coupon-ledger-test-"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The TOML of a test config on `db`, listening on `listen`, in +08:00
/// unless `extra` sets its own `utc_offset`.
pub fn config_toml(db: &Path, listen: &str, extra: &str) -> String {
    let offset = if extra
        .lines()
        .any(|l| l.trim_start().starts_with("utc_offset"))
    {
        ""
    } else {
        "utc_offset = \"+08:00\"\n"
    };
    format!(
        r#"listen = "{listen}"
db = "{}"
{offset}admin_token = "{ADMIN}"
merchant_id = "88888888"
timestamp_window_s = 300
{extra}
[[partners]]
api_key = "{KEY}"
secret = "{SECRET}"
name = "travel-platform"

[[partners]]
api_key = "{KEY2}"
secret = "{SECRET2}"
name = "common-signer"
sign_fields = "common"
sign_key_name = "secretKey"
"#,
        db.display()
    )
}

/// A temp dir holding a config file (with `extra` top-level TOML) for the
/// binary; returns the dir, the database path and the config path.
pub fn config_file(extra: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new();
    let db = dir.path().join("ledger.db");
    let cfg = dir.path().join("ledger.toml");
    write_private(&cfg, &config_toml(&db, "127.0.0.1:0", extra));
    (dir, db, cfg)
}

/// Writes a config file readable by its owner only, as an operator should.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The platform protocol's fields of a stock as the platform API answers it (查询批次信息).
pub const STOCK_FIELDS: [&str; 15] = [
    "app_channel_id",
    "app_id",
    "stock_id",
    "stock_name",
    "instructions",
    "coupon_name",
    "coupon_desc",
    "coupon_type",
    "fixed_normal_coupon",
    "max_coupons",
    "max_coupons_per_user",
    "available_begin_time",
    "available_end_time",
    "create_time",
    "stock_status",
];

/// The server, in-process, on a temp database and a free port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub running: Option<coupon_ledger::app::Running>,
    pub dir: TempDir,
    extra: String,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with("")
    }

    /// Starts with extra top-level TOML lines.
    pub fn start_with(extra: &str) -> TestServer {
        let dir = TempDir::new();
        let db = dir.path().join("ledger.db");
        let cfg = Config::from_toml(&config_toml(&db, "127.0.0.1:0", extra), &|_| None).unwrap();
        let running = coupon_ledger::app::start(cfg).unwrap();
        TestServer {
            addr: running.local_addr(),
            running: Some(running),
            dir,
            extra: extra.to_string(),
        }
    }

    /// Stops the server (releasing its database lock), runs `f` on the
    /// database file, and starts it again on the same file and a new port.
    pub fn while_stopped(&mut self, f: impl FnOnce(&Path)) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
        f(&self.db());
        let cfg = Config::from_toml(
            &config_toml(&self.db(), "127.0.0.1:0", &self.extra),
            &|_| None,
        )
        .unwrap();
        let running = coupon_ledger::app::start(cfg).unwrap();
        self.addr = running.local_addr();
        self.running = Some(running);
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// Like [`TestServer::start_with`] (which must configure `[platform]`),
    /// but with no background dispatcher: sync calls queue up and go out only
    /// at [`TestServer::deliver_step`] or [`TestServer::deliver_all`].
    pub fn start_stepped(extra: &str) -> TestServer {
        let mut server = Self::start_with(extra);
        server.running_mut().stop_dispatcher();
        server
    }

    pub fn running(&self) -> &coupon_ledger::app::Running {
        self.running.as_ref().expect("the server is running")
    }

    pub fn running_mut(&mut self) -> &mut coupon_ledger::app::Running {
        self.running.as_mut().expect("the server is running")
    }

    /// The ledger behind the running server.
    pub fn store(&self) -> coupon_ledger::store::Store {
        self.running().store().clone()
    }

    /// One dispatcher step at `now`: every call due by then that heads its
    /// lane is sent once. Returns how many were sent.
    pub fn deliver_step(&self, now: i64) -> usize {
        let running = self.running();
        let platform = running
            .config()
            .platform
            .as_ref()
            .expect("a [platform] is configured");
        coupon_ledger::outbox::dispatcher::deliver_due(running.store(), platform, now)
            .expect("the attempts are recorded")
    }

    /// Dispatcher steps until nothing is due, a day ahead so every scheduled
    /// retry is due at once: each call ends delivered or dead, or waits
    /// behind a dead call. Returns how many attempts were made.
    pub fn deliver_all(&self) -> usize {
        let later = coupon_ledger::domain::time::now_ms() + 86_400_000;
        let mut attempts = 0;
        for _ in 0..10_000 {
            match self.deliver_step(later) {
                0 => return attempts,
                n => attempts += n,
            }
        }
        panic!("the outbox was still sending after 10000 steps");
    }

    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn code(&self) -> i64 {
        self.json()["code"].as_i64().unwrap_or(-1)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection and reads the whole answer.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_answer(&mut s)
}

/// One `read`, again after an interruption: a socket with a read timeout
/// reports EINTR when the process was stopped and continued meanwhile.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r.unwrap(),
        }
    }
}

/// Reads one answer (Content-Length framed) from a stream.
pub fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_some(s, &mut chunk);
        assert!(
            n > 0,
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = read_some(s, &mut chunk);
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Answer {
        status,
        headers,
        body,
    }
}

/// Adds the common parameters and a valid sign to business fields.
pub fn signed_as(key: &str, secret: &str, rule: &SignRule, fields: Value) -> Value {
    let mut m: Map<String, Value> = match fields {
        Value::Object(m) => m,
        _ => panic!("fields must be an object"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    m.entry("api_key").or_insert(json!(key));
    m.entry("seq_id").or_insert(json!(unique("seq-")));
    m.entry("timestamp").or_insert(json!(now.to_string()));
    m.entry("nonce").or_insert(json!(unique("n")));
    let s = sign::sign(&m, rule, secret);
    m.insert("sign".into(), json!(s));
    Value::Object(m)
}

/// Signs as the main test partner.
pub fn signed(fields: Value) -> Value {
    signed_as(KEY, SECRET, &SignRule::default(), fields)
}

/// Signs as the common-fields partner.
pub fn signed_common(fields: Value) -> Value {
    let rule = SignRule {
        fields: SignFields::Common,
        key_name: "secretKey".into(),
    };
    signed_as(KEY2, SECRET2, &rule, fields)
}

/// A client of one server.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        raw_request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// Posts business fields signed by the main test partner.
    pub fn call(&self, path: &str, fields: Value) -> Answer {
        self.post(path, &signed(fields))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {ADMIN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        raw_request(
            self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    /// Creates a running stock; `overrides` replaces fields of the default.
    pub fn create_stock(&self, overrides: Value) -> Value {
        let mut stock = stock_fields(&unique("s"));
        if let (Value::Object(m), Value::Object(o)) = (&mut stock, overrides) {
            for (k, v) in o {
                m.insert(k, v);
            }
        }
        let a = self.admin("POST", "/admin/stocks", Some(stock));
        assert_eq!(
            a.code(),
            0,
            "create stock: {}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()["data"].clone()
    }

    /// A new stock (see [`stock_fields`]) with `n` coupons claimed by users
    /// `u0`, `u1`, ...: its id and the coupon ids in claim order.
    pub fn stock_with_claims(&self, n: usize) -> (String, Vec<String>) {
        let stock = self.create_stock(json!({}));
        let stock_id = stock["stock_id"].as_str().unwrap().to_string();
        let ids = (0..n)
            .map(|i| {
                let a = self.claim(&stock_id, &format!("u{i}"), &format!("r{i}"));
                assert_eq!(a.code(), 0, "{}", show(&a));
                a.json()["data"]["coupon_id"].as_str().unwrap().to_string()
            })
            .collect();
        (stock_id, ids)
    }

    /// Claims a coupon of `stock_id` for `user` on channel 1.
    pub fn claim(&self, stock_id: &str, user: &str, request_id: &str) -> Answer {
        self.call(
            "/sp/coupon/receive",
            json!({"app_channel_id": 1, "user_code": user, "stock_id": stock_id, "request_id": request_id}),
        )
    }
}

/// A running 满减 stock on channel 1: 10 元 off from 100 元, 100 coupons, 2 per user,
/// valid from yesterday to next year. `stock_id` must be at most 30 characters.
pub fn stock_fields(stock_id: &str) -> Value {
    let id: String = stock_id
        .chars()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    json!({
        "stock_id": id,
        "stock_name": "代驾10元代金券",
        "app_channel_id": 1,
        "app_id": "wx1111111111",
        "instructions": "优惠券使用简介",
        "coupon_name": "代驾代金券",
        "coupon_desc": "消费满100元可用,仅限深圳使用",
        "coupon_type": 1,
        "fixed_normal_coupon": {"coupon_amount": 1000, "transaction_minimum": 10000},
        "max_coupons": 100,
        "max_coupons_per_user": 2,
        "available_begin_time": time_from_now(-86_400),
        "available_end_time": time_from_now(365 * 86_400),
        "stock_status": 3
    })
}

/// A seed-format time `secs` seconds from now, in +08:00.
pub fn time_from_now(secs: i64) -> String {
    let ms = coupon_ledger::domain::time::now_ms() + secs * 1000;
    coupon_ledger::domain::time::render_millis(
        ms,
        coupon_ledger::domain::time::parse_offset("+08:00").unwrap(),
    )
}

/// Polls `f` every 10 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Polls until the clock has passed the rendered time `t`, so a later change
/// gets a later time, or a window ending at `t` has closed.
pub fn wait_past(t: &Value) {
    let t = ms(t);
    assert!(wait_until(Duration::from_secs(10), || {
        coupon_ledger::domain::time::now_ms() > t
    }));
}

/// The real binary serving a config file, for crash tests.
pub struct BinServer {
    pub child: Child,
    pub addr: SocketAddr,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coupon-ledger")
}

/// A free port, found by binding port 0 and letting it go.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BinServer {
    /// Starts `coupon-ledger serve --config` and waits for `/healthz`.
    pub fn start(config_path: &Path, port: u16) -> BinServer {
        Self::start_with_env(config_path, port, &[])
    }

    /// [`BinServer::start`] with these environment variables set.
    pub fn start_with_env(config_path: &Path, port: u16, env: &[(&str, &str)]) -> BinServer {
        let child = Command::new(bin())
            .args(["serve", "--config"])
            .envs(env.iter().copied())
            .arg(config_path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = wait_until(Duration::from_secs(20), || TcpStream::connect(addr).is_ok());
        assert!(up, "server did not come up on {addr}");
        BinServer { child, addr }
    }

    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `coupon-ledger check DB`; returns (exit ok, stdout).
pub fn check(db: &Path) -> (bool, String) {
    let out = Command::new(bin()).arg("check").arg(db).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

// ---------- assertions shared by the API tests ----------

pub fn show(a: &Answer) -> String {
    format!("HTTP {} {}", a.status, String::from_utf8_lossy(&a.body))
}

/// Asserts HTTP 200 with protocol `code` and a message; returns the whole answer.
pub fn expect(a: &Answer, code: i64) -> Value {
    assert_eq!(a.status, 200, "{}", show(a));
    assert_eq!(a.code(), code, "{}", show(a));
    let v = a.json();
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        show(a)
    );
    v
}

/// Asserts a 40001 whose message names `field`.
pub fn expect_invalid(a: &Answer, field: &str) {
    let v = expect(a, 40001);
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(&format!("{field}:")),
        "message should name {field}: {}",
        show(a)
    );
}

/// The sorted keys of an object.
pub fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

pub fn sorted(mut k: Vec<&str>) -> Vec<&str> {
    k.sort_unstable();
    k
}

/// A rendered platform-protocol time as UTC milliseconds; also checks its format.
pub fn ms(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a time string: {v}"));
    assert_eq!(s.len(), 29, "yyyy-MM-ddTHH:mm:ss.SSS+08:00 expected: {s}");
    assert!(s.ends_with("+08:00"), "rendered in +08:00: {s}");
    coupon_ledger::domain::time::parse_time(s).unwrap()
}

// ---------- ledger operations shared by the API tests ----------

/// Moves stock `id` to status `to` through the admin API.
pub fn set_status(client: &Client, id: &str, to: i64) -> Answer {
    client.admin(
        "POST",
        &format!("/admin/stocks/{id}/status"),
        Some(json!({ "stock_status": to })),
    )
}

/// Redeems `coupon_id` against order `order_id` of `amount` fen through the admin API.
pub fn redeem(client: &Client, coupon_id: &str, order_id: &str, amount: i64) -> Answer {
    client.admin(
        "POST",
        &format!("/admin/coupons/{coupon_id}/redeem"),
        Some(json!({"order_id": order_id, "order_amount": amount})),
    )
}

/// The coupon as the operator sees it.
pub fn coupon(client: &Client, id: &str) -> Value {
    let a = client.admin("GET", &format!("/admin/coupons/{id}"), None);
    expect(&a, 0)["data"]["coupon"].clone()
}

/// Claims a coupon of `stock_id` for `user` on channel 1; returns its id.
pub fn claim_ok(client: &Client, stock_id: &str, user: &str) -> String {
    let a = client.claim(stock_id, user, &unique("r"));
    expect(&a, 0)["data"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Expires (3) or deactivates (4) a coupon of channel 1 through the platform API.
pub fn deactivate(client: &Client, stock_id: &str, user: &str, coupon_id: &str, to: i64) -> Answer {
    client.call(
        "/sp/coupon/deactivate",
        json!({"app_channel_id": 1, "user_code": user, "stock_id": stock_id,
               "coupon_id": coupon_id, "coupon_status": to}),
    )
}

pub fn sid(stock: &Value) -> String {
    stock["stock_id"].as_str().unwrap().to_string()
}

pub fn assert_checked(server: &TestServer) {
    let (ok, out) = check(&server.db());
    assert!(ok, "coupon-ledger check failed:\n{out}");
}

/// A signed body built as text, for numbers a round trip through a `Value`
/// would respell: each field is `(key, JSON text as sent, its text in the
/// string-to-sign)`. The string-to-sign is assembled here by hand, not by the
/// server's canonicaliser, and the common parameters are added as strings.
pub fn signed_raw_as(key: &str, secret: &str, fields: &[(&str, &str, &str)]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let (seq, nonce) = (unique("seq-"), unique("n"));
    let mut all: Vec<(&str, String, String)> = vec![
        ("api_key", format!("\"{key}\""), key.to_string()),
        ("seq_id", format!("\"{seq}\""), seq.clone()),
        ("timestamp", format!("\"{now}\""), now.clone()),
        ("nonce", format!("\"{nonce}\""), nonce.clone()),
    ];
    all.extend(
        fields
            .iter()
            .map(|(k, raw, text)| (*k, raw.to_string(), text.to_string())),
    );
    let mut sorted: Vec<&(&str, String, String)> = all.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut to_sign: String = sorted.iter().map(|(k, _, t)| format!("{k}={t}&")).collect();
    to_sign.push_str(&format!("key={secret}"));
    let sign = sign::md5_upper(&to_sign);
    let body: Vec<String> = all
        .iter()
        .map(|(k, raw, _)| format!("\"{k}\": {raw}"))
        .collect();
    format!("{{{}, \"sign\": \"{sign}\"}}", body.join(", "))
}

/// [`signed_raw_as`] for the main test partner; a string field's text is
/// the string without quotes, anything else is signed as written.
pub fn signed_raw(fields: &[(&str, &str)]) -> String {
    let triples: Vec<(&str, &str, &str)> = fields
        .iter()
        .map(|(k, raw)| {
            let text = raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(raw);
            (*k, *raw, text)
        })
        .collect();
    signed_raw_as(KEY, SECRET, &triples)
}

/// Posts a body given as text.
pub fn post_text(addr: SocketAddr, path: &str, body: &str) -> Answer {
    raw_request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// An admin request with a body given as text.
pub fn admin_text(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let auth = format!("Bearer {ADMIN}");
    raw_request(
        addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

// ---------- outside tools (Python packages, litestream, systemd-analyze) ----------

/// Whether a missing outside tool fails the test instead of skipping it:
/// under CI (`CI` set), where `.ci/run` installs every tool.
pub fn tools_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (with a loud line on stderr), or under CI fails, for a missing tool.
/// Returns `false` so callers can `if !have(...) { return; }`.
pub fn missing_tool(test: &str, what: &str) -> bool {
    let line = format!("SKIPPED {test}: {what} is missing (.ci/run installs it)");
    assert!(!tools_required(), "{line}; CI must not skip");
    eprintln!("\n*** {line} ***\n");
    false
}

/// Runs `python3 -c script` with `input` on stdin when python3 can import
/// every module of `modules`; `None` (after a loud skip line) when it cannot.
/// Returns (exit ok, stdout, stderr).
pub fn python(
    test: &str,
    modules: &[&str],
    script: &str,
    input: &[u8],
) -> Option<(bool, String, String)> {
    let probe = Command::new("python3")
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        missing_tool(test, &format!("python3 with {}", modules.join(", ")));
        return None;
    }
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// `GET path` on a fresh connection, no authentication.
pub fn get_path(addr: SocketAddr, path: &str) -> Answer {
    raw_request(addr, "GET", path, &[], b"")
}

/// `bench --target ADDR --seconds 1` with `args`: (success, stdout, stderr).
pub fn bench_target(addr: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(["bench", "--target", addr, "--seconds", "1"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
