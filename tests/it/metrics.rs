//! `GET /metrics`: the Prometheus text format, checked by the Prometheus
//! Python client's own parser, and numbers that move with the ledger.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::*;

/// One sample line of the text format: `name{labels} value`, labels sorted.
type Samples = BTreeMap<String, f64>;

/// The samples of a scrape, keyed by `name{k="v",...}` with labels sorted.
/// A small reader for the assertions; the format itself is checked by
/// [`parses_with_the_prometheus_python_parser`].
fn samples(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let key = match series.split_once('{') {
            None => series.to_string(),
            Some((name, labels)) => {
                let mut l: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                l.sort_unstable();
                format!("{name}{{{}}}", l.join(","))
            }
        };
        out.insert(key, value);
    }
    out
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let a = get_path(addr, "/metrics");
    assert_eq!(a.status, 200, "{}", show(&a));
    assert_eq!(
        a.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(a.body).unwrap()
}

fn value(s: &Samples, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in\n{:#?}", s.keys().collect::<Vec<_>>()))
}

const CLAIM_200: &str = r#"coupon_ledger_http_requests_total{code="0",method="POST",route="/sp/coupon/receive",status="200"}"#;
const CLAIM_COUNT: &str = r#"coupon_ledger_http_request_duration_seconds_count{method="POST",route="/sp/coupon/receive"}"#;

#[test]
fn metrics_move_with_claims_redemptions_and_the_outbox() {
    // A platform that never answers, and no dispatcher: sync calls stay pending.
    let closed = free_port();
    let s = TestServer::start_stepped(&format!(
        "[platform]\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key = \"P\"\nsecret = \"S\"\n"
    ));
    let c = s.client();
    let stock = c.create_stock(json!({}));
    let before = samples(&scrape(s.addr));
    assert_eq!(before.get(CLAIM_200), None, "no claim yet");
    assert_eq!(value(&before, "coupon_ledger_claims_total"), 0.0);
    let pending_before = value(&before, r#"coupon_ledger_outbox_calls{state="pending"}"#);
    let commits_before = value(&before, "coupon_ledger_commit_batch_size_count");

    let id = claim_ok(&c, &sid(&stock), "u1");
    expect(&redeem(&c, &id, "o1", 20000), 0);
    // A refused claim: another code on the same route.
    let refused = c.claim("no-such-stock", "u1", &unique("r"));
    assert_ne!(refused.code(), 0);

    // The writer counts a commit just after it answers the commit's jobs,
    // so the last commit may show a moment after its answer.
    let mut after = samples(&scrape(s.addr));
    wait_until(std::time::Duration::from_secs(5), || {
        after = samples(&scrape(s.addr));
        value(&after, "coupon_ledger_commit_batch_size_count") >= commits_before + 3.0
    });
    assert_eq!(value(&after, "coupon_ledger_claims_total"), 1.0);
    assert_eq!(value(&after, "coupon_ledger_redemptions_total"), 1.0);
    assert_eq!(value(&after, CLAIM_200), 1.0);
    let refused_key = format!(
        r#"coupon_ledger_http_requests_total{{code="{}",method="POST",route="/sp/coupon/receive",status="{}"}}"#,
        refused.code(),
        refused.status
    );
    assert_eq!(value(&after, &refused_key), 1.0);
    assert_eq!(value(&after, CLAIM_COUNT), 2.0);
    assert!(
        value(
            &after,
            r#"coupon_ledger_http_request_duration_seconds_sum{method="POST",route="/sp/coupon/receive"}"#
        ) > 0.0
    );
    // Admin calls are labelled with their path template, not the coupon id.
    assert_eq!(
        value(
            &after,
            r#"coupon_ledger_http_requests_total{code="0",method="POST",route="/admin/coupons/{id}/redeem",status="200"}"#
        ),
        1.0
    );
    assert!(
        !after.keys().any(|k| k.contains(&id)),
        "a coupon id became a label"
    );
    // The claim, the redemption and the refused claim's nonce each committed.
    assert!(value(&after, "coupon_ledger_commit_batch_size_count") >= commits_before + 3.0);
    // Each batch is timed once the writer is done with it, a moment after
    // its callers are answered.
    wait_until(std::time::Duration::from_secs(5), || {
        after = samples(&scrape(s.addr));
        value(&after, "coupon_ledger_commit_duration_seconds_count")
            == value(&after, "coupon_ledger_commit_batch_size_count")
    });
    assert_eq!(
        value(&after, "coupon_ledger_commit_duration_seconds_count"),
        value(&after, "coupon_ledger_commit_batch_size_count")
    );
    assert_eq!(
        value(
            &after,
            r#"coupon_ledger_commit_duration_seconds_bucket{le="+Inf"}"#
        ),
        value(&after, "coupon_ledger_commit_duration_seconds_count")
    );
    assert!(value(&after, "coupon_ledger_commit_duration_seconds_sum") > 0.0);
    assert!(
        value(
            &after,
            r#"coupon_ledger_commit_batch_size_bucket{le="+Inf"}"#
        ) >= commits_before + 3.0
    );
    // The redemption queued a sync call (a claim is the platform's own request).
    assert_eq!(
        value(&after, r#"coupon_ledger_outbox_calls{state="pending"}"#),
        pending_before + 1.0
    );
    assert!(value(&after, "coupon_ledger_outbox_oldest_pending_age_seconds") >= 0.0);
    // The scrape itself is on an open connection.
    assert!(
        value(
            &after,
            r#"coupon_ledger_open_connections{listener="public"}"#
        ) >= 1.0
    );
    assert!(value(&after, "coupon_ledger_sweeper_runs_total") >= 1.0);

    // An unknown path is counted under one label, whatever the path.
    get_path(s.addr, "/nope/123");
    get_path(s.addr, "/nope/456");
    let later = samples(&scrape(s.addr));
    assert_eq!(
        value(
            &later,
            r#"coupon_ledger_http_requests_total{code="40400",method="-",route="unmatched",status="404"}"#
        ),
        2.0
    );
}

/// Two partners the edge refuses: one over its rate limit after one call,
/// one whose allowlist excludes the loopback the tests call from.
const EDGE_PARTNERS: &str = r#"
[[partners]]
api_key = "LIMITED"
secret = "limited-secret"
name = "limited"
rate_limit_per_s = 1
burst = 1

[[partners]]
api_key = "FENCED"
secret = "fenced-secret"
name = "fenced"
allow_ips = ["192.0.2.0/24"]
"#;

/// A signed stock query of `key`, answered with `code`.
fn query_as(c: &Client, key: &str, secret: &str, code: i64) {
    let body = signed_as(
        key,
        secret,
        &coupon_ledger::sign::SignRule::default(),
        json!({"stock_id": "nope"}),
    );
    let a = c.post("/sp/stock/query", &body);
    assert_eq!(a.code(), code, "{key}: {}", show(&a));
}

#[test]
fn metrics_parses_with_the_prometheus_python_parser() {
    let s = TestServer::start_with(EDGE_PARTNERS);
    let c = s.client();
    let stock = c.create_stock(json!({}));
    claim_ok(&c, &sid(&stock), "u1");
    // Refusals at the edge, counted by partner name.
    query_as(&c, "LIMITED", "limited-secret", 40401);
    query_as(&c, "LIMITED", "limited-secret", 42900);
    query_as(&c, "FENCED", "fenced-secret", 40301);
    query_as(&c, "FENCED", "fenced-secret", 40301);
    let text = scrape(s.addr);
    // The Prometheus client's parser; it raises on anything malformed. The
    // script prints each family's name and type, and checks each histogram.
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
seen = {}
for f in text_string_to_metric_families(text):
    seen[f.name] = f.type
    if f.type == "histogram":
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, []).append(s)
        for key, ss in series.items():
            buckets = [s.value for s in ss if s.name.endswith("_bucket")]
            count = [s.value for s in ss if s.name.endswith("_count")]
            assert buckets == sorted(buckets), (f.name, key, "buckets not cumulative")
            assert count and buckets[-1] == count[0], (f.name, key, "+Inf bucket is not the count")
for name, kind in sorted(seen.items()):
    print(name, kind)
for f in text_string_to_metric_families(text):
    if f.name.startswith("coupon_ledger_partner_"):
        for s in f.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print("sample", s.name, labels, float(s.value))
"#;
    let Some((ok, out, err)) = python(
        "metrics_parses_with_the_prometheus_python_parser",
        &["prometheus_client"],
        script,
        text.as_bytes(),
    ) else {
        return;
    };
    assert!(ok, "the Prometheus parser refused /metrics: {err}\n{text}");
    for family in [
        "coupon_ledger_http_requests counter",
        "coupon_ledger_http_request_duration_seconds histogram",
        "coupon_ledger_claims counter",
        "coupon_ledger_redemptions counter",
        "coupon_ledger_voucher_verifies counter",
        "coupon_ledger_commit_batch_size histogram",
        "coupon_ledger_commit_duration_seconds histogram",
        "coupon_ledger_write_errors counter",
        "coupon_ledger_outbox_calls gauge",
        "coupon_ledger_outbox_final_calls counter",
        "coupon_ledger_outbox_oldest_pending_age_seconds gauge",
        "coupon_ledger_sweeper_runs counter",
        "coupon_ledger_sweeper_expired_coupons counter",
        "coupon_ledger_sweeper_pruned_calls counter",
        "coupon_ledger_sweeper_errors counter",
        "coupon_ledger_open_connections gauge",
        "coupon_ledger_uptime_seconds gauge",
        "coupon_ledger_partner_rate_limited counter",
        "coupon_ledger_partner_not_allowed counter",
        "sample coupon_ledger_partner_rate_limited_total partner=limited 1.0",
        "sample coupon_ledger_partner_not_allowed_total partner=fenced 2.0",
    ] {
        assert!(
            out.lines().any(|l| l == family),
            "no family {family:?} in:\n{out}"
        );
    }
}

#[test]
fn metrics_is_served_on_both_listeners_without_a_token() {
    let admin_port = free_port();
    let s = TestServer::start_with(&format!("admin_listen = \"127.0.0.1:{admin_port}\""));
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let public = samples(&scrape(s.addr));
    assert!(public.contains_key("coupon_ledger_claims_total"));
    let on_admin = samples(&scrape(admin));
    // Both listeners show one set of numbers, and each its own connections.
    assert!(
        value(
            &on_admin,
            r#"coupon_ledger_open_connections{listener="admin"}"#
        ) >= 1.0
    );
    assert!(on_admin.contains_key(r#"coupon_ledger_open_connections{listener="public"}"#));
    assert_eq!(
        value(
            &on_admin,
            r#"coupon_ledger_http_requests_total{code="none",method="GET",route="/metrics",status="200"}"#
        ),
        1.0
    );
    let post = raw_request(s.addr, "POST", "/metrics", &[], b"");
    assert_eq!(post.status, 405, "{}", show(&post));
}
