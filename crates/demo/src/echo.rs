//! An echo backend with switchable latency, error rate and health.
//!
//! - `GET /healthz`: 200 when healthy, 503 otherwise.
//! - `/fixed`: a small constant answer (for benchmarks).
//! - `/stream`: streams the request body back as it arrives.
//! - `/bytes/N`: N bytes, sent in 64 KiB chunks.
//! - anything else: a JSON description of the request (method, path, version, headers, body size).
//!
//! Every answer carries `x-backend: NAME`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::serve::{Running, serve};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Run-time switches and counters of an echo server.
#[derive(Debug)]
pub struct EchoControl {
    latency_ms: AtomicU64,
    error_ppm: AtomicU32,
    error_status: AtomicU16,
    healthy: AtomicBool,
    hits: AtomicU64,
    health_hits: AtomicU64,
}

impl EchoControl {
    /// Delay before every answer except /healthz.
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Share of requests (0.0 to 1.0) answered with the error status.
    pub fn set_error_rate(&self, rate: f64) {
        self.error_ppm
            .store((rate.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    pub fn set_error_status(&self, status: u16) {
        self.error_status.store(status, Ordering::Relaxed);
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Requests served, /healthz excluded.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn health_hits(&self) -> u64 {
        self.health_hits.load(Ordering::Relaxed)
    }

    pub fn reset_hits(&self) {
        self.hits.store(0, Ordering::Relaxed);
    }
}

pub struct EchoServer {
    pub addr: SocketAddr,
    pub name: String,
    pub control: Arc<EchoControl>,
    _running: Running,
}

impl EchoServer {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(name: &str) -> std::io::Result<EchoServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), name).await
    }

    pub async fn start_on(addr: SocketAddr, name: &str) -> std::io::Result<EchoServer> {
        let control = Arc::new(EchoControl {
            latency_ms: AtomicU64::new(0),
            error_ppm: AtomicU32::new(0),
            error_status: AtomicU16::new(503),
            healthy: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            health_hits: AtomicU64::new(0),
        });
        let c = control.clone();
        let server_name: Arc<str> = name.into();
        let tag = HeaderValue::try_from(name).unwrap_or(HeaderValue::from_static("echo"));
        let running = serve(addr, move |req| {
            let c = c.clone();
            let name = server_name.clone();
            let tag = tag.clone();
            async move {
                let mut resp = handle(&c, &name, req).await;
                resp.headers_mut().insert("x-backend", tag);
                resp
            }
        })
        .await?;
        Ok(EchoServer {
            addr: running.addr,
            name: name.to_owned(),
            control,
            _running: running,
        })
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp
}

async fn handle(c: &EchoControl, name: &str, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        c.health_hits.fetch_add(1, Ordering::Relaxed);
        return if c.healthy.load(Ordering::Relaxed) {
            full(StatusCode::OK, "ok")
        } else {
            full(StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
        };
    }
    c.hits.fetch_add(1, Ordering::Relaxed);
    let latency = c.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let ppm = c.error_ppm.load(Ordering::Relaxed);
    if ppm > 0 && fastrand::u32(..1_000_000) < ppm {
        let status = StatusCode::from_u16(c.error_status.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        // Drain the body so the connection stays reusable.
        let _ = req.into_body().collect().await;
        return full(
            status,
            format!("{{\"error\":\"injected\",\"backend\":\"{name}\"}}"),
        );
    }
    if path == "/fixed" {
        return full(
            StatusCode::OK,
            Bytes::from_static(b"hello from rampart echo\n"),
        );
    }
    if path == "/stream" {
        let body = req
            .into_body()
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            .boxed();
        return Response::new(body);
    }
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut left = n;
        let frames = std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let take = left.min(chunk.len());
            left -= take;
            Some(Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                Frame::data(chunk.slice(..take)),
            ))
        });
        let stream = futures_util::stream::iter(frames);
        return Response::new(StreamBody::new(stream).boxed());
    }
    let (parts, body) = req.into_parts();
    let body_bytes = match body.collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => return full(StatusCode::BAD_REQUEST, "body error"),
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let doc = serde_json::json!({
        "backend": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut resp = full(StatusCode::OK, doc.to_string());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
