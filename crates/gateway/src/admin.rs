//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `/config`.
//!
//! Architecture invariant: it runs on its own OS thread with its own single-threaded runtime,
//! and reads only in-memory state (atomics, the metrics registry, the current snapshot). It never
//! calls auth, DNS or upstreams and is never shed, so it answers while the serving runtime is
//! saturated or stuck.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;

use crate::shared::Shared;

pub struct AdminServer {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds now (so errors surface to the caller) and serves on a dedicated thread.
    pub fn start(address: SocketAddr, shared: Arc<Shared>) -> Result<AdminServer, String> {
        let std_listener = std::net::TcpListener::bind(address)
            .map_err(|e| format!("admin listener: binding {address}: {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("admin listener: {e}"))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| format!("admin listener: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("admin runtime: {e}"))?;
        let (stop, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("rampart-admin".into())
            .spawn(move || runtime.block_on(serve(std_listener, shared, stop_rx)))
            .map_err(|e| format!("admin thread: {e}"))?;
        tracing::info!(address = %local_addr, "admin listening");
        Ok(AdminServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin listener could not start");
            return;
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(route(&shared, &req)) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut stop => return,
        }
    }
}

/// How long a started gateway's advertised weight takes to reach 1.
pub const WARMUP: std::time::Duration = std::time::Duration::from_secs(10);

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let ready =
                shared.ready.load(Ordering::Acquire) && !shared.draining.load(Ordering::Acquire);
            if ready {
                // A freshly started gateway asks for a share of traffic that ramps from 10 % to
                // all of it over `WARMUP` (caches and pools are cold): balancers that honour
                // the weight ramp it up instead of giving it full load at once.
                let warm = shared.started.elapsed().as_secs_f64() / WARMUP.as_secs_f64();
                let mut resp = text(StatusCode::OK, "ready\n");
                if let Ok(v) =
                    header::HeaderValue::from_str(&format!("{:.2}", warm.clamp(0.1, 1.0)))
                {
                    resp.headers_mut().insert("x-rampart-weight", v);
                }
                resp
            } else if shared.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no config applied\n",
                )
            }
        }
        "/metrics" => {
            let mut resp = text(StatusCode::OK, "");
            *resp.body_mut() = Full::new(Bytes::from(shared.metrics.encode()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        "/config" => match shared.snapshot.load_full() {
            Some(s) => {
                // Secrets never leave the gateway: client secrets are redacted.
                let body = serde_json::json!({ "version": s.config.version(), "document": s.config.document().redacted() });
                let mut resp = text(StatusCode::OK, "");
                *resp.body_mut() = Full::new(Bytes::from(body.to_string()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                resp
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no config applied\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz /readyz /metrics /config\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
