//! The admin web page at `/admin/`, in a real headless Chromium driven by
//! chromedriver: sign in with the token, change a stock's status, look up a
//! coupon and its journal, retry and abandon dead sync calls, the chart, the
//! create-stock form's messages, a phone-sized window, and no console errors.
//! Also the page's HTTP side (no token needed, headers) without a browser.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::*;
use crate::webdriver::{browser_available, Browser};

fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    raw_request(addr, "GET", path, headers, b"")
}

fn voucher_record(no: &str) -> String {
    format!(
        r#"{{"type": "meituan", "couponNo": "{no}", "shopIds": [147], "couponName": "Car wash x3",
            "valueFen": 5000, "priceFen": 990, "count": 3,
            "validityBegin": "{}", "validityEnd": "{}",
            "deal": {{"dealId": "D1"}}}}"#,
        time_from_now(-86_400).as_str(),
        time_from_now(30 * 86_400).as_str()
    )
}

fn dead_calls(c: &Client) -> Vec<Value> {
    let a = c.admin("GET", "/admin/outbox?state=dead", None);
    expect(&a, 0)["data"]["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn call_state(c: &Client, id: i64) -> String {
    let a = c.admin("GET", "/admin/outbox?limit=1000", None);
    expect(&a, 0)["data"]["calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|x| x["id"] == json!(id)).cloned())
        .map(|x| x["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Where the screenshot goes: the build's temp folder, and `docs/admin-page.png`
/// when `UPDATE_SCREENSHOT=1` (then commit it).
fn screenshot_paths(name: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)];
    if std::env::var("UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") && name == "admin-page.png" {
        paths.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/admin-page.png"));
    }
    paths
}

/// Console entries that are errors, less the one refusal the test causes
/// on purpose (the wrong token's 401). Script errors, CSP violations, a
/// 404 or 405 from a route the page expects, and 5xx all count.
fn console_errors(entries: &[(String, String, String)]) -> Vec<String> {
    entries
        .iter()
        .filter(|(level, _, _)| level == "SEVERE")
        .filter(|(_, source, message)| !(source == "network" && message.contains("status of 401")))
        .map(|(level, source, message)| format!("{level} {source}: {message}"))
        .collect()
}

#[test]
fn the_page_and_its_files_are_served_without_a_token_and_load_nothing_from_elsewhere() {
    let server = TestServer::start();
    let addr = server.addr;
    for path in ["/admin", "/admin/"] {
        let a = get(addr, path, &[]);
        assert_eq!(a.status, 200, "{path}: {}", show(&a));
        assert!(a
            .header("Content-Type")
            .unwrap_or("")
            .starts_with("text/html"));
        let csp = a.header("Content-Security-Policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        let html = String::from_utf8_lossy(&a.body);
        assert!(html.contains("/admin/assets/admin.js"), "{html}");
    }
    for (path, kind) in [
        ("/admin/assets/admin.js", "text/javascript"),
        ("/admin/assets/admin.css", "text/css"),
    ] {
        let a = get(addr, path, &[]);
        assert_eq!(a.status, 200, "{path}");
        assert!(a.header("Content-Type").unwrap_or("").starts_with(kind));
        assert_eq!(a.header("X-Content-Type-Options"), Some("nosniff"));
    }
    // The data behind it still needs the token.
    assert_eq!(get(addr, "/admin/stocks", &[]).status, 401);
    assert_eq!(get(addr, "/admin/activity", &[]).status, 401);
    let a = raw_request(addr, "POST", "/admin/", &[], b"");
    assert_eq!(a.status, 405, "{}", show(&a));
}

#[test]
fn the_page_is_not_on_the_public_listener_when_admin_listen_is_set() {
    let admin_port = free_port();
    let server = TestServer::start_with(&format!("admin_listen = \"127.0.0.1:{admin_port}\"\n"));
    assert_eq!(get(server.addr, "/admin/", &[]).status, 404);
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    assert_eq!(get(admin, "/admin/", &[]).status, 200);
}

#[test]
fn activity_counts_claims_redemptions_and_expiries_per_hour_and_day() {
    let server = TestServer::start();
    let c = server.client();
    let stock = c.create_stock(json!({}));
    let s = sid(&stock);
    let first = claim_ok(&c, &s, "act-u1");
    let second = claim_ok(&c, &s, "act-u2");
    expect(&redeem(&c, &first, &unique("o"), 20_000), 0);
    expect(&deactivate(&c, &s, "act-u2", &second, 3), 0);

    let a = c.admin("GET", "/admin/activity?days=2", None);
    let d = expect(&a, 0)["data"].clone();
    assert_eq!(d["days"], 2);
    let daily = d["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 2, "{d}");
    let total = |k: &str| {
        daily
            .iter()
            .map(|x| x[k].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(
        (
            total("issue"),
            total("redeem"),
            total("expire"),
            total("deactivate")
        ),
        (2, 1, 1, 0),
        "{d}"
    );
    let hourly = d["hourly"].as_array().expect("hourly");
    assert!(hourly.len() > 24 && hourly.len() <= 48, "{}", hourly.len());
    let sum: i64 = hourly
        .iter()
        .map(|h| h["issue"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(sum, 2);
    let last = hourly.last().expect("an hour");
    assert!(
        last["time"]
            .as_str()
            .unwrap_or("")
            .ends_with(":00:00.000+08:00"),
        "{last}"
    );
    assert_eq!(
        d["from_time"].as_str().map(|t| &t[10..]),
        Some("T00:00:00.000+08:00")
    );

    for bad in ["0", "32", "x", "1.5", "-1"] {
        let a = c.admin("GET", &format!("/admin/activity?days={bad}"), None);
        expect_invalid(&a, "days");
    }
    let a = c.admin("POST", "/admin/activity", Some(json!({})));
    assert_eq!(a.status, 405);
}

#[test]
fn the_admin_page_works_in_a_real_browser() {
    if !browser_available("the_admin_page_works_in_a_real_browser") {
        return;
    }
    // A platform that never answers, one attempt each: every sync call dies.
    let closed = free_port();
    let server = TestServer::start_stepped(&format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"P\"\nsecret = \"S\"\nmax_attempts = 1\n"
    ));
    let c = server.client();

    // Through the API: an inactive stock to move, a running one with a redeemed coupon.
    // Each test server has its own database, so plain names are unique here.
    let idle = c.create_stock(
        json!({"stock_id": "spring-sale", "stock_name": "Spring sale 10 off", "stock_status": 1}),
    );
    let idle_id = sid(&idle);
    let shop = c.create_stock(json!({"stock_id": "car-wash", "stock_name": "Car wash 10 off"}));
    let shop_id = sid(&shop);
    let coupon_id = claim_ok(&c, &shop_id, "page-user");
    let order_id = unique("order-");
    expect(&redeem(&c, &coupon_id, &order_id, 20_000), 0);
    claim_ok(&c, &shop_id, "walk-in");
    let lapsed = claim_ok(&c, &shop_id, "late-user");
    expect(&deactivate(&c, &shop_id, "late-user", &lapsed, 3), 0);
    let voucher_no = unique("V");
    expect(
        &admin_text(
            c.addr,
            "POST",
            "/admin/vouchers",
            &format!("[{}]", voucher_record(&voucher_no)),
        ),
        0,
    );
    server.deliver_all();
    let dead = dead_calls(&c);
    assert!(dead.len() >= 2, "two lanes with a dead call each: {dead:?}");
    let retry_id = dead[0]["id"].as_i64().expect("id");
    let abandon_id = dead[1]["id"].as_i64().expect("id");

    let b = Browser::start(1280, 1000);
    let page = format!("http://{}/admin/", server.addr);
    b.goto(&page);
    b.wait(
        "document.querySelector('#token') && !document.querySelector('#signin').hidden",
        "the sign-in form",
    );
    assert!(b.js("return document.querySelector('#app').hidden", json!([])) == json!(true));

    // A wrong token: a clear message, and no data shown.
    b.type_into("#token", "not-the-token");
    b.click("#sign-in");
    let msg = b.wait("document.querySelector('#signin-msg.error') && document.querySelector('#signin-msg').innerText", "the refusal");
    assert!(
        msg.as_str().unwrap_or("").contains("refused this token"),
        "{msg}"
    );
    assert_eq!(
        b.js("return sessionStorage.length", json!([])),
        json!(0),
        "a refused token is not kept"
    );

    // The right token: stocks with counts and status.
    b.type_into("#token", ADMIN);
    b.click("#sign-in");
    b.wait("document.body.dataset.loaded", "the page to load its data");
    assert_eq!(
        b.js(
            "return sessionStorage.getItem('coupon-ledger.admin-token')",
            json!([])
        ),
        json!(ADMIN)
    );
    let row = format!("#stocks-table tr[data-stock=\"{idle_id}\"]");
    assert!(b.text(&row).contains("1 inactive"), "{}", b.text(&row));
    let shop_row = b.text(&format!("#stocks-table tr[data-stock=\"{shop_id}\"]"));
    assert!(shop_row.contains("3 running"), "{shop_row}");
    // Only the allowed moves are offered: 1 → 2, 3, 4.
    let moves = b.js(
        "return [...document.querySelectorAll(arguments[0] + ' button.move')].map(b => b.dataset.to).join(',')",
        json!([row]),
    );
    assert_eq!(moves, json!("2,3,4"));

    // Change its status from the page, then see it through the API.
    b.click(&format!("{row} button[data-to=\"3\"]"));
    b.wait(
        &format!("document.querySelector('{row}').innerText.includes('3 running')"),
        "the stock to run",
    );
    let a = c.admin("GET", &format!("/admin/stocks/{idle_id}"), None);
    assert_eq!(expect(&a, 0)["data"]["stock_status"], 3);

    // Health shows the dead calls.
    let dead_stat = b.text("#health-cards [data-stat=dead] b");
    assert_eq!(dead_stat, dead.len().to_string());

    // Coupon lookup by the order that redeemed it, and its journal as a timeline.
    b.select("#lookup-by", "order");
    b.type_into("#lookup-value", &order_id);
    b.click("#lookup-go");
    b.wait(
        &format!("document.querySelector('#coupon-detail [data-coupon=\"{coupon_id}\"]')"),
        "the coupon",
    );
    let events = b.js(
        "return [...document.querySelectorAll('#coupon-detail .timeline li')].map(l => l.dataset.event).join(',')",
        json!([]),
    );
    assert_eq!(events, json!("issue,redeem"));
    let timeline = b.text("#coupon-detail .timeline");
    assert!(timeline.contains(&order_id), "{timeline}");
    assert!(timeline.contains("paid ¥190.00"), "{timeline}");

    // An unknown coupon: the API's message.
    b.select("#lookup-by", "coupon");
    b.type_into("#lookup-value", "1234");
    b.click("#lookup-go");
    let msg = b.wait("document.querySelector('#lookup-msg.error') && document.querySelector('#lookup-msg').innerText", "not found");
    assert!(msg.as_str().unwrap_or("").starts_with("4"), "{msg}");

    // Retry one dead call, abandon another with a reason.
    let retry_row = format!("#outbox-table tr[data-id=\"{retry_id}\"]");
    b.wait(
        &format!("document.querySelector('{retry_row}')"),
        "the dead call",
    );
    b.click(&format!("{retry_row} button.retry"));
    b.wait(&format!("!document.querySelector('{retry_row}') && document.querySelector('#outbox-msg').innerText.includes('pending again')"), "the retry");
    assert_eq!(call_state(&c, retry_id), "pending");

    let abandon_row = format!("#outbox-table tr[data-id=\"{abandon_id}\"]");
    b.click(&format!("{abandon_row} button.abandon"));
    let msg = b.wait("document.querySelector('#outbox-msg.error') && document.querySelector('#outbox-msg').innerText", "the missing reason");
    assert!(
        msg.as_str().unwrap_or("").contains("reason: required"),
        "{msg}"
    );
    b.type_into(
        &format!("{abandon_row} input.abandon-reason"),
        "platform dropped this stock",
    );
    b.click(&format!("{abandon_row} button.abandon"));
    b.wait(
        &format!("!document.querySelector('{abandon_row}')"),
        "the abandon",
    );
    assert_eq!(call_state(&c, abandon_id), "abandoned");

    // The chart: three claims, a redemption and an expiry today, stacked bars per hour, grouped per day.
    b.wait(
        "document.querySelector('#activity-svg[data-unit=hour] rect.issue')",
        "the hourly chart",
    );
    let summary = b.text("#activity-msg");
    assert!(
        summary.contains("3 claims, 1 redemptions, 1 expiries"),
        "{summary}"
    );
    b.select("#activity-unit", "day");
    b.wait(
        "document.querySelector('#activity-svg[data-unit=day] rect.issue')",
        "the daily chart",
    );

    // The create-stock form: its own check, then the API's 40001, then a stock.
    b.click("#new-stock summary");
    let new_id = "made-in-the-page";
    b.type_into("#stock-form [name=stock_id]", new_id);
    b.click("#create-stock");
    let msg = b.wait("document.querySelector('#stock-form-msg.error') && document.querySelector('#stock-form-msg').innerText", "the form's check");
    assert_eq!(msg, json!("stock_name: required"));
    for (name, v) in [
        ("stock_name", "Made in the page"),
        ("app_id", "wx-page"),
        ("instructions", "到店使用"),
        ("coupon_name", "洗车10元券"),
        ("coupon_desc", "满100可用"),
    ] {
        b.type_into(&format!("#stock-form [name={name}]"), v);
    }
    // The end before the begin: only the API knows that rule.
    b.js(
        "const f = document.querySelector('#stock-form'); \
         f.elements.available_end_time.value = '2020-01-01T00:00:00'",
        json!([]),
    );
    b.click("#create-stock");
    let msg = b.wait(
        "document.querySelector('#stock-form-msg').innerText.startsWith('40001')",
        "the API's 40001",
    );
    assert_eq!(
        b.text("#stock-form-msg"),
        "40001 available_end_time: must be later than available_begin_time",
        "{msg}"
    );
    b.js(
        "document.querySelector('#stock-form').elements.available_end_time.value = '2099-01-01T00:00:00'",
        json!([]),
    );
    b.click("#create-stock");
    b.wait(
        &format!("document.querySelector('#stocks-table tr[data-stock=\"{new_id}\"]')"),
        "the new stock",
    );
    // Its creation is a sync call that dies too: one dead call for the screenshot.
    server.deliver_all();
    let a = c.admin("GET", &format!("/admin/stocks/{new_id}"), None);
    let created = expect(&a, 0)["data"].clone();
    assert_eq!(created["stock_name"], "Made in the page");
    assert_eq!(created["stock_status"], 1);

    // Vouchers: one looked up, and the list with the imported one.
    b.select("#voucher-type", "meituan");
    b.type_into("#voucher-no", &voucher_no);
    b.click("#voucher-go");
    let detail = b.wait("document.querySelector('#voucher-detail .coupon') && document.querySelector('#voucher-detail').innerText", "the voucher");
    assert!(detail.as_str().unwrap_or("").contains("3 of 3"), "{detail}");
    assert_eq!(b.text("#voucher-list-msg"), "1 voucher(s).");
    let listed = b.js(
        "return [...document.querySelectorAll('#voucher-table tbody tr')].map(r => r.innerText.replace(/\\s+/g, ' ').trim())",
        json!([]),
    );
    let rows = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{listed}");
    let row = rows[0].as_str().unwrap_or("");
    assert!(
        row.contains("meituan") && row.contains(&voucher_no) && row.contains("Car wash x3"),
        "{row}"
    );

    // The daily report: today's statement, downloaded with the token.
    b.click("#report-go");
    let msg = b.wait("!document.querySelector('#report-msg').innerText.startsWith('Fetching') && document.querySelector('#report-msg').innerText", "the report");
    let msg = msg.as_str().unwrap_or("");
    assert!(msg.starts_with("Downloaded the report for "), "{msg}");
    let bytes: u64 = msg
        .rsplit_once('(')
        .and_then(|(_, n)| n.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The same statement through the API: the page saved all of it.
    let date = b.js(
        "return document.querySelector('#report-date').value",
        json!([]),
    );
    let date = date.as_str().unwrap_or("");
    let csv = c.admin("GET", &format!("/admin/report?date={date}"), None);
    assert_eq!(csv.status, 200, "{}", show(&csv));
    let text = String::from_utf8_lossy(&csv.body).to_string();
    assert!(
        text.contains(&coupon_id),
        "today's statement holds the redeemed coupon: {text}"
    );
    assert_eq!(bytes, csv.body.len() as u64, "{msg}");

    // A reload keeps the session (sessionStorage), and the screenshot at desktop width.
    b.goto(&page);
    b.wait("document.body.dataset.loaded", "the page after a reload");
    b.select("#lookup-by", "coupon");
    b.type_into("#lookup-value", &coupon_id);
    b.click("#lookup-go");
    b.wait(
        "document.querySelector('#coupon-detail .timeline li')",
        "the timeline",
    );
    b.js("window.scrollTo(0, 0)", json!([]));
    let height = b
        .js("return document.documentElement.scrollHeight", json!([]))
        .as_u64()
        .unwrap_or(1600);
    b.resize(1280, height.clamp(900, 2600) as u32 + 140);
    b.wait("document.body.dataset.loaded", "layout");
    for path in screenshot_paths("admin-page.png") {
        b.screenshot(&path);
        eprintln!("admin page screenshot: {}", path.display());
    }

    // A phone: nothing wider than the screen.
    b.resize(375, 812);
    let (inner, scroll) = {
        let v = b.js(
            "return [window.innerWidth, document.documentElement.scrollWidth]",
            json!([]),
        );
        (
            v[0].as_i64().unwrap_or(0),
            v[1].as_i64().unwrap_or(i64::MAX),
        )
    };
    assert!(inner <= 400, "the window did not shrink: {inner}");
    assert!(
        scroll <= inner,
        "horizontal scroll on a phone: {scroll} > {inner}"
    );
    let overflowing = b.js(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && e.getClientRects().length).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)",
        json!([]),
    );
    assert_eq!(overflowing, json!([]), "elements wider than a phone");
    b.screenshot(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-page-phone.png"));

    // Sign out forgets the token.
    b.click("#sign-out");
    b.wait(
        "!document.querySelector('#signin').hidden",
        "the sign-in form again",
    );
    assert_eq!(b.js("return sessionStorage.length", json!([])), json!(0));

    let console = b.console();
    assert!(
        console
            .iter()
            .any(|(_, _, m)| m.contains("/admin/stocks") && m.contains("401")),
        "the console log is read: the wrong token's 401 should be in it: {console:#?}"
    );
    let errors = console_errors(&console);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
