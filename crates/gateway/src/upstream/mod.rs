//! Upstream pools: endpoints, their connections (`dial`: TCP and TLS; `conn`: HTTP/1.1
//! keep-alive; `h2`: one multiplexed HTTP/2 connection), balancing, active health checks
//! (HTTP or gRPC) and passive outlier ejection.

pub mod balance;
pub mod conn;
pub mod dial;
pub mod endpoint;
pub mod h2;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use http::uri::PathAndQuery;
use http::{Request, Uri};
use http_body_util::Either;
use rampart_model::{HealthCheckConfig, UpstreamConfig, UpstreamProtocol};

use self::dial::{Dialer, TlsDial};

use crate::admission::Limit;
use crate::body::{ProxyBody, empty};
use crate::clock::now_ms;
use crate::metrics::Metrics;
pub use endpoint::Endpoint;
use rampart_net::Resolver;

/// An upstream's response body: from an HTTP/1.1 connection driven by whoever reads it, or
/// from an HTTP/2 stream.
pub type UpstreamBody = Either<conn::DrivenBody, hyper::body::Incoming>;

const SPEAKS_HTTP1: u8 = 1;
const SPEAKS_H2: u8 = 2;

pub struct Upstream {
    pub config: UpstreamConfig,
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Per-upstream concurrency limit (`max_concurrency`; unlimited when absent).
    pub limit: Arc<Limit>,
    rr: AtomicUsize,
    metrics: Metrics,
    resolver: Resolver,
    tls: Option<Arc<TlsDial>>,
}

impl Upstream {
    /// Builds a pool. `previous` is the pool of the same name in the config being replaced:
    /// endpoints it had keep their health verdicts; endpoints it lacked ramp up under slow start.
    pub fn new(
        config: &UpstreamConfig,
        resolver: &Resolver,
        metrics: &Metrics,
        previous: Option<&Upstream>,
        tls: Option<Arc<TlsDial>>,
    ) -> Result<Arc<Upstream>, String> {
        // Connections are kept across a reload only when they speak the same way.
        let same_transport = previous
            .is_some_and(|p| p.config.protocol == config.protocol && p.config.tls == config.tls);
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for addr in &config.endpoints {
            let gauge = metrics.endpoint_healthy(&config.name, &addr.to_string());
            let mut ep = Endpoint::new(addr.clone(), gauge)?;
            match previous.and_then(|p| p.endpoints.iter().find(|e| e.addr == *addr)) {
                Some(old) => {
                    ep.inherit(old);
                    // Warm connections survive a reload.
                    if same_transport {
                        ep.idle = old.idle.clone();
                        ep.h2 = old.h2.clone();
                    }
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
            tls,
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
    fn dialer<'a>(&'a self, ep: &'a Endpoint) -> Dialer<'a> {
        Dialer {
            resolver: &self.resolver,
            host: &ep.host,
            port: ep.addr.port,
            connect_timeout: self.config.connect_timeout,
            tls: self.tls.as_deref(),
        }
    }

    /// Sends `req` (origin form, with a Host header) to endpoint `index` in the protocol the
    /// upstream speaks, and waits for the response head. The caller bounds it with its deadline.
    pub async fn send(
        &self,
        index: usize,
        req: Request<ProxyBody>,
    ) -> Result<http::Response<UpstreamBody>, conn::SendError> {
        let ep = &self.endpoints[index];
        let dialer = self.dialer(ep);
        let h2 = match (self.config.protocol, &self.tls) {
            (UpstreamProtocol::Http1, _) | (UpstreamProtocol::Auto, None) => false,
            (UpstreamProtocol::H2, _) => true,
            (UpstreamProtocol::Auto, Some(_)) => match ep.speaks.load(Ordering::Relaxed) {
                SPEAKS_HTTP1 => false,
                SPEAKS_H2 => true,
                _ => return Box::pin(self.send_first(ep, &dialer, req)).await,
            },
        };
        // The other protocol's path is boxed: its state is not part of every request's
        // future (a connection's request future lives as long as the request).
        if h2 {
            Box::pin(self.send_h2(ep, &dialer, None, req)).await
        } else {
            conn::send(&ep.idle, &dialer, None, req)
                .await
                .map(|r| r.map(Either::Left))
        }
    }

    /// The first request to an `auto` endpoint over TLS: its connection learns what the
    /// endpoint speaks (ALPN).
    async fn send_first(
        &self,
        ep: &Endpoint,
        dialer: &Dialer<'_>,
        req: Request<ProxyBody>,
    ) -> Result<http::Response<UpstreamBody>, conn::SendError> {
        let (stream, h2) = dialer.dial(dial::Offer::Both).await?;
        ep.speaks
            .store(if h2 { SPEAKS_H2 } else { SPEAKS_HTTP1 }, Ordering::Relaxed);
        if h2 {
            self.send_h2(ep, dialer, Some(stream), req).await
        } else {
            let fresh = conn::handshake(stream).await?;
            conn::send(&ep.idle, dialer, Some(fresh), req)
                .await
                .map(|r| r.map(Either::Left))
        }
    }

    /// HTTP/2 wants the target in absolute form (`:scheme`, `:authority`): the Host header
    /// becomes the authority.
    async fn send_h2(
        &self,
        ep: &Endpoint,
        dialer: &Dialer<'_>,
        fresh: Option<dial::Stream>,
        mut req: Request<ProxyBody>,
    ) -> Result<http::Response<UpstreamBody>, conn::SendError> {
        let authority = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| ep.authority.clone());
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        *req.uri_mut() =
            Uri::from_parts(parts).map_err(|e| conn::SendError::Connect(e.to_string()))?;
        *req.version_mut() = http::Version::HTTP_2;
        ep.h2
            .send(dialer, fresh, req)
            .await
            .map(|r| r.map(Either::Right))
    }

    /// Sends an upgrade request to endpoint `index` on an HTTP/1.1 connection of its own.
    pub async fn send_upgrade(
        &self,
        index: usize,
        deadline: std::time::Duration,
        req: Request<ProxyBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, conn::SendError> {
        let ep = &self.endpoints[index];
        conn::send_upgrade(&self.dialer(ep), deadline, req).await
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
/// With `grpc_service`, a gRPC health check instead: SERVING within the timeout is healthy.
async fn probe(up: &Upstream, index: usize, hc: &HealthCheckConfig) -> bool {
    if let Some(service) = &hc.grpc_service {
        return tokio::time::timeout(hc.timeout, grpc_probe(up, index, service))
            .await
            .unwrap_or(false);
    }
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

/// `grpc.health.v1.Health/Check` for `service`: grpc-status 0 and status SERVING.
async fn grpc_probe(up: &Upstream, index: usize, service: &str) -> bool {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(crate::grpc::health_request(service))
        .map_err(|never| match never {})
        .boxed();
    let Ok(req) = Request::post("/grpc.health.v1.Health/Check")
        .header(http::header::HOST, up.endpoints[index].host_header.clone())
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "rampart-health-check")
        .body(body)
    else {
        return false;
    };
    let Ok(resp) = up.send(index, req).await else {
        return false;
    };
    let (parts, body) = resp.into_parts();
    let Ok(collected) = http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
    else {
        return false;
    };
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))
        .map(http::HeaderValue::as_bytes);
    parts.status.is_success()
        && status == Some(b"0")
        && crate::grpc::health_serving(&collected.to_bytes())
}
