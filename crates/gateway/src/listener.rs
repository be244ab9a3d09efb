//! Client listeners: accept with a connection limit, TLS with ALPN, HTTP/1.1 and HTTP/2
//! (h2c by prior knowledge) on one port, client-side deadlines on every connection
//! (`client_conn`), graceful drain when stopped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::Version;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_model::ListenerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::client_conn::{ClientBody, ConnState, Deadlines, Expired, Watchdog, Watched};
use crate::forward::Client;
use crate::proxy::{ConnInfo, handle};
use crate::shared::Shared;

/// HTTP/2 abuse limits (ARCHITECTURE.md lists what enforces each).
mod h2_limits {
    /// Streams a client may have open at once on one connection.
    pub const MAX_CONCURRENT_STREAMS: u32 = 256;
    /// Streams a client opened and reset before the server accepted them (rapid reset,
    /// CVE-2023-44487); beyond this the connection gets GOAWAY ENHANCE_YOUR_CALM.
    pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
    /// Streams the server had to reset because of the client's errors (CVE-2025-8671).
    pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
    /// Bytes buffered per stream towards the client.
    pub const MAX_SEND_BUF_SIZE: usize = 256 * 1024;
}

/// How long a connection told to close (idle GOAWAY, drain) may take to finish on its own.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a listener tells its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    /// Finish the requests in flight, take no new ones.
    Drain,
    /// Close now.
    Abort,
}

pub struct RunningListener {
    pub local_addr: SocketAddr,
    /// Swapped on reload so certificate rotation needs no rebind.
    pub tls: Arc<ArcSwapOption<TlsAcceptor>>,
    /// The listener as configured (address as written, before the OS picked a port for `:0`),
    /// swapped on reload: new connections take its trusted proxies and path options.
    settings: Arc<ArcSwap<ListenerConfig>>,
    stop: Arc<watch::Sender<Stop>>,
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
        let settings = Arc::new(ArcSwap::from_pointee(config.clone()));
        let stop = Arc::new(watch::channel(Stop::Run).0);
        let accept = Accept {
            listener,
            tls: tls.clone(),
            settings: settings.clone(),
            shared,
        };
        let task = tokio::spawn(accept.run(stop.clone(), drain));
        tracing::info!(listener = %config.name, address = %local_addr, tls = config.tls.is_some(), "listening");
        Ok(RunningListener {
            local_addr,
            tls,
            settings,
            stop,
            task,
        })
    }

    /// The listener's current config.
    pub fn config(&self) -> Arc<ListenerConfig> {
        self.settings.load_full()
    }

    /// Replaces the config of a listener kept across a reload (same address and TLS or not).
    pub fn reconfigure(&self, config: ListenerConfig) {
        self.settings.store(Arc::new(config));
    }

    /// Stops accepting, lets open connections finish their requests (up to the drain time),
    /// closes the rest, then returns.
    pub async fn stop(self) {
        self.stop.send_replace(Stop::Drain);
        let _ = self.task.await;
    }
}

struct Accept {
    listener: TcpListener,
    tls: Arc<ArcSwapOption<TlsAcceptor>>,
    settings: Arc<ArcSwap<ListenerConfig>>,
    shared: Arc<Shared>,
}

impl Accept {
    async fn run(self, stop: Arc<watch::Sender<Stop>>, drain: Duration) {
        let mut stopping = stop.subscribe();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Typically EMFILE: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    self.spawn(stream, remote, stop.subscribe());
                }
                _ = stopping.changed() => break,
            }
        }
        drop(self.listener);
        drop(stopping);
        // Every connection holds a receiver: closed() is "all connections are done".
        if tokio::time::timeout(drain, stop.closed()).await.is_err() {
            tracing::warn!(?drain, "drain time over; closing remaining connections");
            stop.send_replace(Stop::Abort);
            let _ = tokio::time::timeout(CLOSE_GRACE, stop.closed()).await;
        }
    }

    fn spawn(&self, stream: TcpStream, remote: SocketAddr, stop: watch::Receiver<Stop>) {
        let shared = &self.shared;
        let Some(permit) = shared.connections.try_acquire() else {
            shared.metrics.shed("connections");
            drop(stream);
            return;
        };
        shared.metrics.connection_accepted();
        let shared = shared.clone();
        let acceptor = self.tls.load_full();
        let listener = self.settings.load_full();
        tokio::spawn(async move {
            let gauge = shared.metrics.connections().clone();
            gauge.inc();
            serve_connection(stream, remote, acceptor, listener, shared, stop).await;
            gauge.dec();
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: Option<Arc<TlsAcceptor>>,
    listener: Arc<ListenerConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared
        .snapshot
        .load()
        .as_ref()
        .map(|s| s.config.limits.clone());
    let Some(limits) = limits else { return };
    let state = ConnState::new();
    let mut watchdog = std::pin::pin!(Watchdog::new(
        state.clone(),
        Deadlines::from_limits(&limits)
    ));
    let io = Watched::new(stream, state.clone());
    let proto = if acceptor.is_some() { "https" } else { "http" };
    let conn = Conn {
        info: Arc::new(ConnInfo {
            remote,
            client: Client::new(remote.ip(), listener.trusts(remote.ip())),
            proto,
            listener,
            tunnel: std::sync::Mutex::new(None),
        }),
        shared,
        state,
    };
    match acceptor {
        // Each protocol's connection boxed on its own: a plain connection does not carry
        // room for a TLS session's state, nor a TLS one for the handshake's.
        None => Box::pin(conn.serve(TokioIo::new(io), &limits, watchdog, &mut stop)).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                biased;
                tls = Box::pin(acceptor.accept(io)) => tls,
                expired = watchdog.as_mut() => {
                    conn.expired(expired);
                    return;
                }
            };
            match handshake {
                Ok(tls) => {
                    Box::pin(conn.serve(TokioIo::new(tls), &limits, watchdog, &mut stop)).await
                }
                Err(e) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
            }
        }
    }
}

/// One client connection being served.
struct Conn {
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
}

impl Conn {
    fn expired(&self, expired: Expired) {
        self.shared.metrics.deadline_expired(expired.as_str());
        tracing::debug!(remote = %self.info.remote, deadline = expired.as_str(), "connection closed by a deadline");
    }

    /// Waits for the WebSocket tunnel this connection became, if any, so that it keeps its
    /// connection slot; a listener that aborts ends it.
    async fn tunnel(&self, stop: &mut watch::Receiver<Stop>) {
        let handle = self
            .info
            .tunnel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut handle) = handle else { return };
        loop {
            tokio::select! {
                _ = &mut handle => return,
                changed = stop.changed() => match (changed, *stop.borrow()) {
                    (Ok(()), Stop::Run | Stop::Drain) => {}
                    (Ok(()), Stop::Abort) | (Err(_), _) => {
                        handle.abort();
                        return;
                    }
                },
            }
        }
    }

    /// Serves HTTP until the connection ends, a deadline passes or the listener aborts it.
    /// An idle connection and a draining listener close gracefully (HTTP/2: GOAWAY).
    async fn serve<IO>(
        self,
        io: TokioIo<IO>,
        limits: &rampart_model::LimitsConfig,
        mut watchdog: std::pin::Pin<&mut Watchdog>,
        stop: &mut watch::Receiver<Stop>,
    ) where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let max_header_bytes = limits.max_header_bytes;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The watchdog owns the head deadline (hyper's would also cut idle keep-alives).
            .header_read_timeout(None)
            .max_buf_size(max_header_bytes.max(8192) as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(max_header_bytes)
            .max_concurrent_streams(h2_limits::MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(h2_limits::MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(h2_limits::MAX_LOCAL_ERROR_RESET_STREAMS)
            .max_send_buf_size(h2_limits::MAX_SEND_BUF_SIZE)
            // RFC 8441: WebSockets over HTTP/2 (extended CONNECT).
            .enable_connect_protocol();
        let service = {
            let shared = self.shared.clone();
            let state = self.state.clone();
            let info = self.info.clone();
            service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let token = state.request_started(req.version() == Version::HTTP_2);
                let shared = shared.clone();
                let info = info.clone();
                // Boxed: hyper keeps the slot a request's future runs in for the connection's
                // whole life, so unboxed every idle connection would hold a request's worth
                // of state (~9 KiB) it is not using.
                Box::pin(async move {
                    let resp = handle(&shared, &info, req).await;
                    Ok::<_, Infallible>(resp.map(|body| ClientBody::new(body, token)))
                })
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let mut conn = std::pin::pin!(conn);
        // Set once the connection was told to close: how long it has to finish.
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut draining = false;
        loop {
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(remote = %self.info.remote, error = %e, "connection ended with an error");
                    }
                    self.tunnel(stop).await;
                    return;
                }
                expired = watchdog.as_mut(), if grace.is_none() => {
                    self.expired(expired);
                    if expired != Expired::Idle {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    grace = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                }
                () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => return,
                changed = stop.changed() => match (changed, *stop.borrow()) {
                    (Ok(()), Stop::Run) => {}
                    (Ok(()), Stop::Drain) => {
                        if !draining {
                            draining = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                    (Ok(()), Stop::Abort) | (Err(_), _) => return,
                },
            }
        }
    }
}
