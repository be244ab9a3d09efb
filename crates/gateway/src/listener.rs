//! Client listeners: accept with a connection limit, TLS with ALPN, HTTP/1.1 and HTTP/2
//! (h2c by prior knowledge) on one port, graceful drain when stopped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rampart_model::ListenerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::gateway::Shared;
use crate::proxy::{ConnInfo, handle};

/// Deadline for a client's TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for a client to send a complete request head (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONCURRENT_STREAMS: u32 = 256;

pub struct RunningListener {
    /// The listener as configured (address as written, before the OS picked a port for `:0`).
    pub config: ListenerConfig,
    pub local_addr: SocketAddr,
    /// Swapped on reload so certificate rotation needs no rebind.
    pub tls: Arc<ArcSwapOption<TlsAcceptor>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningListener {
    pub async fn bind(
        config: &ListenerConfig,
        tls: Option<TlsAcceptor>,
        shared: Arc<Shared>,
        drain: Duration,
    ) -> Result<RunningListener, String> {
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|e| format!("listener {}: binding {}: {e}", config.name, config.address))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("listener {}: {e}", config.name))?;
        let tls = Arc::new(ArcSwapOption::from(tls.map(Arc::new)));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, tls.clone(), shared, stop_rx, drain));
        tracing::info!(listener = %config.name, address = %local_addr, tls = config.tls.is_some(), "listening");
        Ok(RunningListener {
            config: config.clone(),
            local_addr,
            tls,
            stop,
            task,
        })
    }

    /// Stops accepting, lets open connections finish their requests (up to the drain time), then returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ArcSwapOption<TlsAcceptor>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Some(permit) = shared.connections.try_acquire() else {
                    shared.metrics.shed("connections");
                    drop(stream);
                    continue;
                };
                shared.metrics.connection_accepted();
                let watcher = graceful.watcher();
                let shared = shared.clone();
                let acceptor = tls.load_full();
                tokio::spawn(async move {
                    let gauge = shared.metrics.connections().clone();
                    gauge.inc();
                    serve_connection(stream, remote, acceptor, shared, watcher).await;
                    gauge.dec();
                    drop(permit);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain time over; closing remaining connections"),
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: Option<Arc<TlsAcceptor>>,
    shared: Arc<Shared>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared
        .snapshot
        .load()
        .as_ref()
        .map(|s| s.config.limits.clone());
    let max_header_bytes = limits.map_or(65_536, |l| l.max_header_bytes);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(max_header_bytes.max(8192) as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(max_header_bytes)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let proto = if acceptor.is_some() { "https" } else { "http" };
    let info = Arc::new(ConnInfo { remote, proto });
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(handle(&shared, &info, req).await) }
    });
    let result = match acceptor {
        None => {
            watcher
                .watch(
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                )
                .await
        }
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    watcher
                        .watch(
                            builder
                                .serve_connection(TokioIo::new(tls), service)
                                .into_owned(),
                        )
                        .await
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
