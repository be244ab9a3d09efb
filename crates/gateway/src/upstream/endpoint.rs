//! The state of one upstream endpoint: load, health verdicts and slow-start ramp.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::uri::Authority;
use prometheus_client::metrics::gauge::Gauge;
use rampart_model::Endpoint as EndpointAddr;

use crate::clock::{ms, now_ms};

/// Lowest share of traffic a slow-starting endpoint gets.
const MIN_WEIGHT: f64 = 0.05;

#[derive(Debug)]
pub struct Endpoint {
    pub addr: EndpointAddr,
    pub authority: Authority,
    /// The authority as a Host header: what requests without a Host and health probes carry.
    pub host_header: http::HeaderValue,
    pub label: String,
    /// The host to resolve and connect to (and the TLS name when none is set).
    pub host: String,
    inflight: AtomicU32,
    /// Verdict of active health checks (true when none are configured).
    healthy: AtomicBool,
    /// When the endpoint last became healthy; 0 = from the start (full weight at once).
    healthy_since_ms: AtomicU64,
    /// Passive ejection: out of rotation until this instant; 0 = not ejected.
    ejected_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    healthy_gauge: Gauge,
    /// Idle keep-alive connections to this endpoint.
    pub idle: Arc<super::conn::IdleList>,
    /// The endpoint's HTTP/2 connection (upstreams that speak HTTP/2).
    pub h2: Arc<super::h2::H2Conn>,
    /// What an `auto` upstream's endpoint settled on: 0 not known yet, 1 HTTP/1.1, 2 HTTP/2.
    pub speaks: std::sync::atomic::AtomicU8,
}

impl Endpoint {
    pub fn new(addr: EndpointAddr, healthy_gauge: Gauge) -> Result<Endpoint, String> {
        let label = addr.to_string();
        let authority = label
            .parse::<Authority>()
            .map_err(|e| format!("endpoint {label}: {e}"))?;
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("endpoint {label}: {e}"))?;
        let host = match &addr.host {
            rampart_model::Host::Ip(ip) => ip.to_string(),
            rampart_model::Host::Name(n) => n.clone(),
        };
        healthy_gauge.set(1);
        Ok(Endpoint {
            addr,
            authority,
            host_header,
            host,
            label,
            inflight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            healthy_since_ms: AtomicU64::new(0),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            healthy_gauge,
            idle: Arc::default(),
            h2: Arc::default(),
            speaks: std::sync::atomic::AtomicU8::new(0),
        })
    }

    /// Copies health verdicts from the same endpoint in a previous pool (config reload).
    pub fn inherit(&self, old: &Endpoint) {
        self.set_healthy(old.healthy.load(Ordering::Relaxed));
        self.healthy_since_ms.store(
            old.healthy_since_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.ejected_until_ms.store(
            old.ejected_until_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// A new endpoint joining a pool that already serves: it ramps up under slow start.
    pub fn start_ramp(&self) {
        self.healthy_since_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn is_available(&self, now: u64) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.ejected_until_ms.load(Ordering::Relaxed) <= now
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Share of full traffic under slow start, in (0, 1].
    pub fn weight(&self, now: u64, slow_start: Duration) -> f64 {
        let since = self.healthy_since_ms.load(Ordering::Relaxed);
        if since == 0 || slow_start.is_zero() {
            return 1.0;
        }
        let elapsed = now.saturating_sub(since) as f64;
        (elapsed / ms(slow_start) as f64).clamp(MIN_WEIGHT, 1.0)
    }

    pub fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.clone())
    }

    /// Active health check verdict. Becoming healthy starts the slow-start ramp.
    pub fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if healthy && !was {
            self.healthy_since_ms.store(now_ms(), Ordering::Relaxed);
        }
        self.healthy_gauge.set(i64::from(healthy));
    }

    /// Passive outcome of a request. Returns true if this failure ejected the endpoint.
    pub fn record(&self, success: bool, consecutive_limit: u32, ejection: Duration) -> bool {
        if success {
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let n = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= consecutive_limit {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            let now = now_ms();
            self.ejected_until_ms
                .store(now + ms(ejection), Ordering::Relaxed);
            // It comes back through slow start.
            self.healthy_since_ms
                .store(now + ms(ejection), Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Counts a request against an endpoint until dropped (least-request balancing).
pub struct InflightGuard(Arc<Endpoint>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}
