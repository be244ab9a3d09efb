//! Upstream pools: endpoints, their keep-alive connections (`conn`), balancing,
//! active health checks and passive outlier ejection.

pub mod balance;
pub mod conn;
pub mod endpoint;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};

use http::uri::PathAndQuery;
use http::{Request, Uri};
use rampart_model::{HealthCheckConfig, UpstreamConfig};

use crate::admission::Limit;
use crate::body::{ProxyBody, empty};
use crate::clock::now_ms;
use crate::metrics::Metrics;
pub use endpoint::Endpoint;
use rampart_net::Resolver;

pub struct Upstream {
    pub config: UpstreamConfig,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Per-upstream concurrency limit (`max_concurrency`; unlimited when absent).
    pub limit: Arc<Limit>,
    rr: AtomicUsize,
    metrics: Metrics,
    resolver: Resolver,
}

impl Upstream {
    /// Builds a pool. `previous` is the pool of the same name in the config being replaced:
    /// endpoints it had keep their health verdicts; endpoints it lacked ramp up under slow start.
    pub fn new(
        config: &UpstreamConfig,
        resolver: &Resolver,
        metrics: &Metrics,
        previous: Option<&Upstream>,
    ) -> Result<Arc<Upstream>, String> {
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for addr in &config.endpoints {
            let gauge = metrics.endpoint_healthy(&config.name, &addr.to_string());
            let mut ep = Endpoint::new(addr.clone(), gauge)?;
            match previous.and_then(|p| p.endpoints.iter().find(|e| e.addr == *addr)) {
                Some(old) => {
                    ep.inherit(old);
                    // Warm connections survive a reload.
                    ep.idle = old.idle.clone();
                }
                None if previous.is_some() => ep.start_ramp(),
                None => {}
            }
            endpoints.push(Arc::new(ep));
        }
        let upstream = Arc::new(Upstream {
            config: config.clone(),
            endpoints,
            limit: Limit::new(config.max_concurrency.unwrap_or(u32::MAX)),
            rr: AtomicUsize::new(0),
            metrics: metrics.clone(),
            resolver: resolver.clone(),
        });
        if config.health_check.is_some() {
            tokio::spawn(health_check_loop(Arc::downgrade(&upstream)));
        }
        Ok(upstream)
    }

    pub fn pick(&self, avoid: Option<usize>) -> Option<usize> {
        balance::pick(
            &self.endpoints,
            self.config.balance,
            &self.rr,
            self.config.slow_start,
            now_ms(),
            avoid,
        )
    }

    /// Sends a request to endpoint `index` on one of its pooled connections.
    pub async fn send(
        &self,
        index: usize,
        req: Request<ProxyBody>,
    ) -> Result<http::Response<conn::DrivenBody>, conn::SendError> {
        let ep = &self.endpoints[index];
        let host = match &ep.addr.host {
            rampart_model::Host::Ip(ip) => ip.to_string(),
            rampart_model::Host::Name(n) => n.clone(),
        };
        conn::send(
            &ep.idle,
            &self.resolver,
            &host,
            ep.addr.port,
            self.config.connect_timeout,
            req,
        )
        .await
    }

    /// Sends an upgrade request to endpoint `index` on a connection of its own.
    pub async fn send_upgrade(
        &self,
        index: usize,
        deadline: std::time::Duration,
        req: Request<ProxyBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, conn::SendError> {
        let ep = &self.endpoints[index];
        let host = match &ep.addr.host {
            rampart_model::Host::Ip(ip) => ip.to_string(),
            rampart_model::Host::Name(n) => n.clone(),
        };
        conn::send_upgrade(
            &self.resolver,
            &host,
            ep.addr.port,
            self.config.connect_timeout,
            deadline,
            req,
        )
        .await
    }

    /// Records a request's outcome for passive outlier detection.
    pub fn record(&self, index: usize, success: bool) {
        let ep = &self.endpoints[index];
        if ep.record(
            success,
            self.config.outlier.consecutive_5xx,
            self.config.outlier.ejection,
        ) {
            tracing::warn!(upstream = %self.config.name, endpoint = %ep.label, ejection = ?self.config.outlier.ejection, "endpoint ejected after consecutive failures");
            self.metrics.ejection(&self.config.name, &ep.label);
        }
    }
}

/// Probes every endpoint each interval while the pool exists; stops when it is dropped.
async fn health_check_loop(pool: Weak<Upstream>) {
    // A consecutive streak per endpoint: positive successes, negative failures.
    let mut streaks: Vec<i64> = Vec::new();
    loop {
        let Some(up) = pool.upgrade() else { return };
        let Some(hc) = up.config.health_check.clone() else {
            return;
        };
        streaks.resize(up.endpoints.len(), 0);
        let probes = up
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, _)| probe(&up, i, &hc));
        let results = futures_util::future::join_all(probes).await;
        for (i, ok) in results.into_iter().enumerate() {
            let s = &mut streaks[i];
            *s = match (ok, *s) {
                (true, s) if s > 0 => s + 1,
                (true, _) => 1,
                (false, s) if s < 0 => s - 1,
                (false, _) => -1,
            };
            let ep = &up.endpoints[i];
            if ep.is_healthy() && *s <= -i64::from(hc.unhealthy_after) {
                tracing::warn!(upstream = %up.config.name, endpoint = %ep.label, "endpoint failed health checks; out of rotation");
                ep.set_healthy(false);
            } else if !ep.is_healthy() && *s >= i64::from(hc.healthy_after) {
                tracing::info!(upstream = %up.config.name, endpoint = %ep.label, "endpoint passed health checks; back in rotation");
                ep.set_healthy(true);
            }
        }
        let interval = hc.interval;
        drop(up);
        tokio::time::sleep(interval).await;
    }
}

/// One probe: `GET path` in origin form with a Host header (the configured one, or the
/// endpoint's authority), as any HTTP/1.1 server expects; a 2xx within the timeout is healthy.
async fn probe(up: &Upstream, index: usize, hc: &HealthCheckConfig) -> bool {
    let Ok(path) = PathAndQuery::try_from(hc.path.as_str()) else {
        return false;
    };
    let host = match &hc.host {
        Some(h) => match http::HeaderValue::from_str(h) {
            Ok(v) => v,
            Err(_) => return false,
        },
        None => up.endpoints[index].host_header.clone(),
    };
    let Ok(req) = Request::get(Uri::from(path))
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "rampart-health-check")
        .body(empty())
    else {
        return false;
    };
    match tokio::time::timeout(hc.timeout, up.send(index, req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}
