//! Prometheus metrics of one gateway, served on the admin listener.
//!
//! Per-route handles are looked up once when a config snapshot is built, so the request path
//! touches only atomics and one uncontended histogram lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// All metrics of one gateway; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    inflight: Gauge,
    shed: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    retry_budget_exhausted: Family<Labels, Counter>,
    endpoint_healthy: Family<Labels, Gauge>,
    endpoint_ejections: Family<Labels, Counter>,
    dns: Family<Labels, Counter>,
    auth: Family<Labels, Counter>,
    config_info: Family<Labels, Gauge>,
    reloads: Family<Labels, Counter>,
    connections: Gauge,
    connections_total: Counter,
    connections_parked: Counter,
    parked_connections: Gauge,
    deadlines: Family<Labels, Counter>,
    probes: Family<Labels, Counter>,
    request_body_stalls: Counter,
    upstream_body_stalls: Counter,
    access_log_written: Counter,
    access_log_dropped: Family<Labels, Counter>,
    rate_limited: Family<Labels, Counter>,
    rate_limit_store: Family<Labels, Counter>,
    websocket_tunnels: Gauge,
    websocket_opened: Counter,
    trace_spans: Family<Labels, Counter>,
    /// Totals across routes, read by the agent's reports.
    totals: Arc<Totals>,
}

/// Running totals an agent turns into per-report deltas.
#[derive(Default, Debug)]
pub struct Totals {
    pub requests: [AtomicU64; 5],
    pub shed: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Buckets of `rampart_api::LATENCY_BOUNDS_MS`, plus one for the rest.
    pub latency: [AtomicU64; 13],
    /// Requests by status class, per route (the control plane's per-component SLIs).
    pub routes: std::sync::Mutex<std::collections::BTreeMap<String, Arc<[AtomicU64; 5]>>>,
}

/// A reading of the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotalsReading {
    pub requests: [u64; 5],
    pub shed: u64,
    pub auth_failures: u64,
    pub inflight: u64,
    pub latency: [u64; 13],
    pub routes: std::collections::BTreeMap<String, [u64; 5]>,
}

/// Status classes as label values, indexed by `status / 100 - 1`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Outcome counters of one auth provider.
#[derive(Clone)]
pub struct AuthOutcomes {
    pub totals: Arc<Totals>,
    pub ok: Counter,
    pub unverified: Counter,
    pub missing: Counter,
    pub invalid: Counter,
    pub forbidden: Counter,
    pub unavailable: Counter,
}

/// Handles for one route.
#[derive(Clone)]
pub struct RouteMetrics {
    by_class: [Counter; 5],
    totals: Arc<Totals>,
    route_totals: Arc<[AtomicU64; 5]>,
    latency: Histogram,
    pub retries: Counter,
    pub retry_budget_exhausted: Counter,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.totals.requests[class].fetch_add(1, Ordering::Relaxed);
        self.route_totals[class].fetch_add(1, Ordering::Relaxed);
        let ms = elapsed.as_millis() as u64;
        let bucket = rampart_api::LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms < *b)
            .unwrap_or(12);
        self.totals.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let latency_family = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        let mut inner = Inner {
            registry: Registry::with_prefix("rampart"),
            requests: Family::default(),
            latency: latency_family,
            inflight: Gauge::default(),
            shed: Family::default(),
            retries: Family::default(),
            retry_budget_exhausted: Family::default(),
            endpoint_healthy: Family::default(),
            endpoint_ejections: Family::default(),
            dns: Family::default(),
            auth: Family::default(),
            config_info: Family::default(),
            reloads: Family::default(),
            connections: Gauge::default(),
            connections_total: Counter::default(),
            connections_parked: Counter::default(),
            parked_connections: Gauge::default(),
            deadlines: Family::default(),
            probes: Family::default(),
            request_body_stalls: Counter::default(),
            upstream_body_stalls: Counter::default(),
            access_log_written: Counter::default(),
            access_log_dropped: Family::default(),
            rate_limited: Family::default(),
            rate_limit_store: Family::default(),
            websocket_tunnels: Gauge::default(),
            websocket_opened: Counter::default(),
            trace_spans: Family::default(),
            totals: Arc::default(),
        };
        let r = &mut inner.registry;
        r.register(
            "requests",
            "Requests answered, by route and status class",
            inner.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to response headers, by route",
            inner.latency.clone(),
        );
        r.register(
            "inflight_requests",
            "Requests being served",
            inner.inflight.clone(),
        );
        r.register(
            "shed",
            "Requests or connections refused by admission control, by scope",
            inner.shed.clone(),
        );
        r.register("retries", "Retries sent, by route", inner.retries.clone());
        r.register(
            "retry_budget_exhausted",
            "Retries not sent because the budget was spent",
            inner.retry_budget_exhausted.clone(),
        );
        r.register(
            "upstream_endpoint_healthy",
            "1 if the endpoint takes traffic",
            inner.endpoint_healthy.clone(),
        );
        r.register(
            "upstream_endpoint_ejections",
            "Passive ejections after consecutive failures",
            inner.endpoint_ejections.clone(),
        );
        r.register("dns_lookups", "DNS lookups by outcome", inner.dns.clone());
        r.register(
            "auth_decisions",
            "Authentication outcomes by provider and result",
            inner.auth.clone(),
        );
        r.register(
            "config_info",
            "The config version being served",
            inner.config_info.clone(),
        );
        r.register(
            "config_reloads",
            "Config applies by result",
            inner.reloads.clone(),
        );
        r.register(
            "connections_active",
            "Open client connections",
            inner.connections.clone(),
        );
        r.register(
            "connections_accepted",
            "Client connections accepted",
            inner.connections_total.clone(),
        );
        r.register(
            "connections_parked",
            "Idle HTTP/1.1 client connections parked: their protocol state (buffers) dropped \
             until the next request's bytes arrive",
            inner.connections_parked.clone(),
        );
        r.register(
            "parked_connections",
            "Idle HTTP/1.1 client connections held by their listener's parking lot now: a \
             socket each (with its TLS session), no task and no protocol buffers",
            inner.parked_connections.clone(),
        );
        r.register(
            "deadlines_expired",
            "Client connections and bodies ended by a deadline, by kind (header, idle, send, \
             request_body, upstream_body)",
            inner.deadlines.clone(),
        );
        r.register(
            "probe_requests",
            "Synthetic probe requests answered, by route and status class (apart from \
             rampart_requests and the SLIs)",
            inner.probes.clone(),
        );
        r.register(
            "access_log_lines",
            "Access-log lines written",
            inner.access_log_written.clone(),
        );
        r.register(
            "access_log_dropped",
            "Access-log lines not written, by reason (buffer_full: the writer fell behind; \
             write_error: the write failed, e.g. a full disk)",
            inner.access_log_dropped.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a rate limit, by route and scope (local, global)",
            inner.rate_limited.clone(),
        );
        r.register(
            "rate_limit_store",
            "Exchanges with the Redis of global rate limits, by outcome (ok; failed: an error \
             or no answer within the deadline; skipped: left alone after a failure)",
            inner.rate_limit_store.clone(),
        );
        r.register(
            "websocket_tunnels",
            "WebSocket tunnels open",
            inner.websocket_tunnels.clone(),
        );
        r.register(
            "websocket_tunnels_opened",
            "WebSocket tunnels opened",
            inner.websocket_opened.clone(),
        );
        r.register(
            "trace_spans",
            "Spans by outcome (exported; failed: the export failed or took past its deadline; \
             dropped: the exporter's queue was full)",
            inner.trace_spans.clone(),
        );
        inner.request_body_stalls = inner
            .deadlines
            .get_or_create(&vec![("kind", "request_body".to_owned())])
            .clone();
        inner.upstream_body_stalls = inner
            .deadlines
            .get_or_create(&vec![("kind", "upstream_body".to_owned())])
            .clone();
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Request bodies failed by `body_timeout`.
    pub fn request_body_stalled(&self) -> &Counter {
        &self.inner.request_body_stalls
    }

    /// Upstream response bodies failed by `body_timeout`.
    pub fn upstream_body_stalled(&self) -> &Counter {
        &self.inner.upstream_body_stalls
    }

    pub fn access_log_written(&self) -> Counter {
        self.inner.access_log_written.clone()
    }

    /// The counter of access-log lines lost for `reason`.
    pub fn access_log_dropped(&self, reason: &'static str) -> Counter {
        self.inner
            .access_log_dropped
            .get_or_create(&vec![("reason", reason.to_owned())])
            .clone()
    }

    fn trace_spans(&self, outcome: &'static str) -> Counter {
        self.inner
            .trace_spans
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .clone()
    }

    pub fn trace_spans_exported(&self) -> Counter {
        self.trace_spans("exported")
    }

    pub fn trace_spans_failed(&self) -> Counter {
        self.trace_spans("failed")
    }

    pub fn trace_spans_dropped(&self) -> Counter {
        self.trace_spans("dropped")
    }

    pub fn websocket_tunnels(&self) -> &Gauge {
        &self.inner.websocket_tunnels
    }

    pub fn websocket_opened(&self) -> &Counter {
        &self.inner.websocket_opened
    }

    pub fn rate_limited(&self, route: &str, scope: &'static str) -> Counter {
        self.inner
            .rate_limited
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("scope", scope.to_owned()),
            ])
            .clone()
    }

    pub fn rate_limit_store(&self, outcome: &'static str) -> Counter {
        self.inner
            .rate_limit_store
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .clone()
    }

    /// Counts a deadline that ended a connection or a body.
    pub fn deadline_expired(&self, kind: &'static str) {
        self.inner
            .deadlines
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
    }

    /// Counts a synthetic probe's answer (`route` is "" when none matched).
    pub fn probe(&self, route: &str, status: u16) {
        let class = CLASSES[usize::from(status / 100).clamp(1, 5) - 1];
        self.inner
            .probes
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("class", class.to_owned()),
            ])
            .inc();
    }

    pub fn route(&self, route: &str) -> RouteMetrics {
        let l = |class: &str| vec![("route", route.to_owned()), ("class", class.to_owned())];
        let route_totals = self
            .inner
            .totals
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(route.to_owned())
            .or_default()
            .clone();
        RouteMetrics {
            route_totals,
            totals: self.inner.totals.clone(),
            by_class: CLASSES.map(|c| self.inner.requests.get_or_create(&l(c)).clone()),
            latency: self
                .inner
                .latency
                .get_or_create(&vec![("route", route.to_owned())])
                .clone(),
            retries: self
                .inner
                .retries
                .get_or_create(&vec![("route", route.to_owned())])
                .clone(),
            retry_budget_exhausted: self
                .inner
                .retry_budget_exhausted
                .get_or_create(&vec![("route", route.to_owned())])
                .clone(),
        }
    }

    pub fn inflight(&self) -> &Gauge {
        &self.inner.inflight
    }

    /// Totals since start, for agent reports.
    pub fn totals(&self) -> TotalsReading {
        let t = &self.inner.totals;
        TotalsReading {
            requests: std::array::from_fn(|i| t.requests[i].load(Ordering::Relaxed)),
            shed: t.shed.load(Ordering::Relaxed),
            auth_failures: t.auth_failures.load(Ordering::Relaxed),
            inflight: self.inner.inflight.get().max(0) as u64,
            latency: std::array::from_fn(|i| t.latency[i].load(Ordering::Relaxed)),
            routes: t
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(name, c)| {
                    (
                        name.clone(),
                        std::array::from_fn(|i| c[i].load(Ordering::Relaxed)),
                    )
                })
                .collect(),
        }
    }

    pub fn shed(&self, scope: &str) {
        self.inner.totals.shed.fetch_add(1, Ordering::Relaxed);
        self.inner
            .shed
            .get_or_create(&vec![("scope", scope.to_owned())])
            .inc();
    }

    pub fn endpoint_healthy(
        &self,
        upstream: &str,
        endpoint: &str,
    ) -> Gauge<i64, std::sync::atomic::AtomicI64> {
        self.inner
            .endpoint_healthy
            .get_or_create(&vec![
                ("upstream", upstream.to_owned()),
                ("endpoint", endpoint.to_owned()),
            ])
            .clone()
    }

    pub fn ejection(&self, upstream: &str, endpoint: &str) {
        self.inner
            .endpoint_ejections
            .get_or_create(&vec![
                ("upstream", upstream.to_owned()),
                ("endpoint", endpoint.to_owned()),
            ])
            .inc();
    }

    /// Counts the resolver's lookups by outcome.
    pub fn dns_observer(&self) -> rampart_net::DnsObserver {
        let dns = self.inner.dns.clone();
        std::sync::Arc::new(move |outcome: rampart_net::DnsOutcome| {
            dns.get_or_create(&vec![("outcome", outcome.as_str().to_owned())])
                .inc();
        })
    }

    /// Counters for one auth provider's outcomes, looked up once.
    pub fn auth_outcomes(&self, provider: &str) -> AuthOutcomes {
        let c = |result: &str| {
            self.inner
                .auth
                .get_or_create(&vec![
                    ("provider", provider.to_owned()),
                    ("result", result.to_owned()),
                ])
                .clone()
        };
        AuthOutcomes {
            totals: self.inner.totals.clone(),
            ok: c("ok"),
            unverified: c("unverified"),
            missing: c("missing"),
            invalid: c("invalid"),
            forbidden: c("forbidden"),
            unavailable: c("unavailable"),
        }
    }

    pub fn config_applied(&self, version: &str) {
        self.inner.config_info.clear();
        self.inner
            .config_info
            .get_or_create(&vec![("version", version.to_owned())])
            .set(1);
        self.reload("applied");
    }

    pub fn reload(&self, result: &str) {
        self.inner
            .reloads
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    pub fn connections(&self) -> &Gauge {
        &self.inner.connections
    }

    pub fn connection_accepted(&self) {
        self.inner.connections_total.inc();
    }

    pub fn connection_parked(&self) {
        self.inner.connections_parked.inc();
    }

    pub fn parked_connections(&self) -> &Gauge {
        &self.inner.parked_connections
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}
