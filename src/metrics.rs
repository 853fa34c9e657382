//! `GET /metrics`: what the server counts, in the Prometheus text format
//! (version 0.0.4), through the Prometheus project's own client
//! (`prometheus-client`).
//!
//! Two kinds of numbers:
//!
//! - counted on the request path: requests by route, status and protocol
//!   code, latency by route, claims, redemptions and voucher verifies, and
//!   partner calls refused at the edge (by partner name). Each
//!   costs a read lock that is never contended once a label set exists (a
//!   write lock is taken only the first time a label set is seen) and a few
//!   relaxed atomic adds: nothing a claim waits for.
//! - read at scrape time from their owners: the writer's commit batch sizes
//!   (counted by the writer thread under the lock it takes once per commit),
//!   the outbox (`Store::outbox_health`, one read), the sweeper's counters
//!   and the listeners' open connections.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::domain::time::now_ms;
use crate::http::ConnectionGauge;
use crate::store::{Store, BATCH_SECONDS_BOUNDS, BATCH_SIZE_BOUNDS};
use crate::sweeper::SweepStats;

/// The `Content-Type` of the answer to `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The labels of a request: the route's method and path template (`GET` for
/// `HEAD`), or `-` and `unmatched` for paths the server does not serve, so
/// a scan of random paths cannot grow the label sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

/// A partner, by its configured name: the set is bounded by the config.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartnerLabels {
    partner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
    code: Code,
}

/// The protocol code of an answer; `none` where the answer carries none.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Code(Option<i64>);

impl EncodeLabelValue for Code {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        use std::fmt::Write;
        match self.0 {
            Some(c) => write!(encoder, "{c}"),
            None => encoder.write_str("none"),
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram of atomics: observing is a bucket search and two
/// relaxed adds, with no lock (the client's own `Histogram` takes a mutex).
#[derive(Debug, Default)]
struct Latency {
    /// One per bound, then `+Inf`; not cumulative.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, micros: u64) {
        let secs = micros as f64 / 1e6;
        let i = LATENCY_BOUNDS.partition_point(|&b| b < secs);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        // The count is the buckets' sum, so the two always agree.
        let count = counts.iter().sum();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Everything `/metrics` shows. One per server, in [`crate::api::App`].
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Latency>,
    claims: Counter,
    redemptions: Counter,
    voucher_verifies: Counter,
    rate_limited: Family<PartnerLabels, Counter>,
    not_allowed: Family<PartnerLabels, Counter>,
    scraped: Arc<AtScrape>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a server on `store`, with its sweeper's counters when it runs one.
    pub fn new(store: Store, sweeper: Option<Arc<SweepStats>>) -> Metrics {
        let mut registry = Registry::with_prefix("coupon_ledger");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Latency>::default();
        let (claims, redemptions, voucher_verifies) =
            (Counter::default(), Counter::default(), Counter::default());
        registry.register(
            "http_requests",
            "HTTP requests answered, by route (method and path template), HTTP status and protocol code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a parsed request to its answer, by route",
            latency.clone(),
        );
        registry.register(
            "claims",
            "Claims answered with success (POST /sp/coupon/receive, code 0)",
            claims.clone(),
        );
        registry.register(
            "redemptions",
            "Coupons redeemed (POST /admin/coupons/{id}/redeem with success)",
            redemptions.clone(),
        );
        registry.register(
            "voucher_verifies",
            "Voucher verifies answered with success (gateway method verify)",
            voucher_verifies.clone(),
        );
        let (rate_limited, not_allowed) = (
            Family::<PartnerLabels, Counter>::default(),
            Family::<PartnerLabels, Counter>::default(),
        );
        registry.register(
            "partner_rate_limited",
            "Partner calls refused by the partner's rate limit (42900), by partner name",
            rate_limited.clone(),
        );
        registry.register(
            "partner_not_allowed",
            "Partner calls refused because the source address is outside the partner's allow_ips (40301), by partner name",
            not_allowed.clone(),
        );
        let scraped = Arc::new(AtScrape {
            store,
            sweeper,
            started_ms: now_ms(),
            listeners: Mutex::new(Vec::new()),
        });
        registry.register_collector(Box::new(scraped.clone()));
        Metrics {
            registry,
            requests,
            latency,
            claims,
            redemptions,
            voucher_verifies,
            rate_limited,
            not_allowed,
            scraped,
        }
    }

    /// Reports the open connections of a listener (`public` or `admin`) from now on.
    pub fn watch_listener(&self, listener: &'static str, gauge: ConnectionGauge) {
        self.scraped.listeners.lock().push((listener, gauge));
    }

    /// Counts one answered request. `route` is the route's method and path
    /// template, `None` for a path not served.
    pub fn request(
        &self,
        route: Option<(&'static str, &'static str)>,
        status: u16,
        code: Option<i64>,
        micros: u64,
    ) {
        let (method, route) = route.unwrap_or(("-", "unmatched"));
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
                code: Code(code),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method, route })
            .observe(micros);
    }

    /// Counts a successful claim.
    pub fn claimed(&self) {
        self.claims.inc();
    }

    /// Counts a successful redemption.
    pub fn redeemed(&self) {
        self.redemptions.inc();
    }

    /// Counts a successful voucher verify.
    pub fn verified(&self) {
        self.voucher_verifies.inc();
    }

    /// Counts a call of `partner` refused by its rate limit.
    pub fn rate_limited(&self, partner: &str) {
        self.rate_limited
            .get_or_create(&partner_labels(partner))
            .inc();
    }

    /// Counts a call of `partner` refused by its source allowlist.
    pub fn not_allowed(&self, partner: &str) {
        self.not_allowed
            .get_or_create(&partner_labels(partner))
            .inc();
    }

    /// The text answered to `GET /metrics`.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn partner_labels(partner: &str) -> PartnerLabels {
    PartnerLabels {
        partner: partner.to_string(),
    }
}

/// The numbers read from their owners when `/metrics` is scraped.
struct AtScrape {
    store: Store,
    sweeper: Option<Arc<SweepStats>>,
    started_ms: i64,
    listeners: Mutex<Vec<(&'static str, ConnectionGauge)>>,
}

impl fmt::Debug for AtScrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtScrape").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// A histogram already counted elsewhere, encoded as it is.
struct Snapshot {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("count", &self.count)
            .finish()
    }
}

impl TypedMetric for Snapshot {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Snapshot {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), fmt::Error> {
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

fn labelled<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: &[(S, M)],
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for AtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let e = &mut encoder;
        let now = now_ms();
        one(
            e,
            "uptime_seconds",
            "Seconds since the server started",
            &ConstGauge::new((now - self.started_ms).max(0) / 1000),
        )?;

        let stats = self.store.batch_stats();
        one(
            e,
            "commit_batch_size",
            "Write jobs per commit of the writer (group commit)",
            &Snapshot {
                buckets: BATCH_SIZE_BOUNDS
                    .iter()
                    .map(|&b| b as f64)
                    .zip(stats.buckets.iter().copied())
                    .collect(),
                count: stats.commits,
                sum: stats.jobs as f64,
            },
        )?;
        one(
            e,
            "commit_duration_seconds",
            "Seconds the writer spent on one batch: running its jobs, the commit with its fsync, and answering its callers",
            &Snapshot {
                buckets: BATCH_SECONDS_BOUNDS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(stats.durations.iter().copied())
                    .collect(),
                count: stats.timed,
                sum: stats.timed_micros as f64 / 1e6,
            },
        )?;
        one(
            e,
            "write_errors",
            "Write jobs answered with an error because their commit failed",
            &ConstCounter::new(self.store.writer_status().errors),
        )?;

        // The outbox is one read; when it fails, its families are left out
        // (and /healthz says why).
        if let Ok(o) = self.store.outbox_health() {
            let depth = [
                (StateLabel { state: "pending" }, ConstGauge::new(o.pending)),
                (StateLabel { state: "dead" }, ConstGauge::new(o.dead)),
                (
                    StateLabel {
                        state: "blocked_by_dead",
                    },
                    ConstGauge::new(o.blocked),
                ),
            ];
            labelled(
                e,
                "outbox_calls",
                "Sync calls waiting in the outbox: pending (being tried), dead (parked), blocked_by_dead (pending behind a dead call)",
                MetricType::Gauge,
                &depth,
            )?;
            let done = [
                (
                    StateLabel { state: "delivered" },
                    ConstCounter::new(o.delivered as u64),
                ),
                (
                    StateLabel { state: "abandoned" },
                    ConstCounter::new(o.abandoned as u64),
                ),
            ];
            labelled(
                e,
                "outbox_final_calls",
                "Sync calls delivered or abandoned since the database was created",
                MetricType::Counter,
                &done,
            )?;
            let age_ms = o.oldest_pending_ms.map_or(0, |t| (now - t).max(0));
            one(
                e,
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest pending sync call; 0 when none is pending",
                &ConstGauge::new(age_ms as f64 / 1000.0),
            )?;
        }

        if let Some(s) = &self.sweeper {
            let n = |c: &AtomicU64| ConstCounter::new(c.load(Ordering::Relaxed));
            one(
                e,
                "sweeper_runs",
                "Passes of the expiry sweeper",
                &n(&s.runs),
            )?;
            one(
                e,
                "sweeper_expired_coupons",
                "Coupons the sweeper expired",
                &n(&s.expired),
            )?;
            one(
                e,
                "sweeper_pruned_calls",
                "Final sync calls deleted by outbox retention",
                &n(&s.pruned),
            )?;
            one(
                e,
                "sweeper_errors",
                "Sweeper passes that ended with an error",
                &n(&s.errors),
            )?;
        }

        let open: Vec<(ListenerLabel, ConstGauge<i64>)> = self
            .listeners
            .lock()
            .iter()
            .map(|(listener, g)| {
                (
                    ListenerLabel { listener },
                    ConstGauge::new(i64::try_from(g.open()).unwrap_or(i64::MAX)),
                )
            })
            .collect();
        labelled(
            e,
            "open_connections",
            "HTTP connections open now, by listener",
            MetricType::Gauge,
            &open,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_falls_in_the_smallest_bucket_that_holds_it() {
        let l = Latency::default();
        l.observe(400); // 0.0004 s ≤ 0.0005
        l.observe(1_000); // exactly 0.001
        l.observe(20_000_000); // 20 s: +Inf
        let counts: Vec<u64> = l
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[LATENCY_BOUNDS.len()], 1);
        assert_eq!(l.sum_micros.load(Ordering::Relaxed), 20_001_400);
    }
}
