//! One client connection: TLS or not, HTTP/2's preface or HTTP/1.1, served by hyper under the
//! connection's deadlines (`client_conn`); an idle HTTP/1.1 connection, plain or TLS, is parked:
//! its protocol state dropped and its task ended, the socket and any TLS session handed to the
//! listener's parking lot (`lot.rs`, `park.rs`) until its next request's bytes arrive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Version;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_model::ListenerConfig;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::client_conn::{ClientBody, ConnState, Deadlines, Expired, Watchdog, Watched};
use crate::forward::Client;
use crate::proxy::{ConnInfo, handle};
use crate::rewind::{Rewind, read_preface};
use crate::shared::Shared;

use super::Stop;
use super::lot::{Parked, Socket};
use super::park::{Park, ParkableTls};

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
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A request's future, boxed (see `Conn::service`).
type RequestFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    http::Response<ClientBody<crate::response::ResponseBody>>,
                    Infallible,
                >,
            > + Send,
    >,
>;

/// A connection as its task gets it.
pub(super) struct Connection {
    pub remote: SocketAddr,
    pub listener: Arc<ListenerConfig>,
    pub shared: Arc<Shared>,
    pub stop: watch::Receiver<Stop>,
}

/// How a connection's task begins.
pub(super) enum Begin {
    /// Just accepted: TLS (with this acceptor) or not, then HTTP/2 or HTTP/1.1.
    Accepted {
        stream: TcpStream,
        acceptor: Option<Arc<TlsAcceptor>>,
    },
    /// An HTTP/1.1 connection out of the parking lot: its next request's bytes arrived.
    Resumed(Socket),
}

/// Serves a connection until it ends, or (`parkable`: a parking lot takes it) until it goes
/// idle on HTTP/1.1: then what the lot keeps of it is returned.
pub(super) async fn serve_connection(
    connection: Connection,
    begin: Begin,
    parkable: bool,
) -> Option<Parked> {
    let Connection {
        remote,
        listener,
        shared,
        mut stop,
    } = connection;
    let limits = shared
        .snapshot
        .load()
        .as_ref()
        .map(|s| s.config.limits.clone());
    let limits = limits?;
    let state = ConnState::new();
    let mut watchdog = std::pin::pin!(Watchdog::new(
        state.clone(),
        Deadlines::from_limits(&limits)
    ));
    let proto = match &begin {
        Begin::Accepted {
            acceptor: Some(_), ..
        }
        | Begin::Resumed(Socket::Tls(_)) => "https",
        Begin::Accepted { acceptor: None, .. } | Begin::Resumed(Socket::Plain(_)) => "http",
    };
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
        parkable,
    };
    let (stream, acceptor) = match begin {
        Begin::Accepted { stream, acceptor } => (stream, acceptor),
        // The next request's bytes are there: HTTP/1.1, as before the connection was parked.
        Begin::Resumed(Socket::Plain(socket)) => {
            let io = Watched::new(TcpStream::from_std(socket).ok()?, conn.state.clone());
            let pre = bytes::Bytes::new();
            return Box::pin(conn.serve_http1(io, pre, &limits, watchdog, &mut stop)).await;
        }
        Begin::Resumed(Socket::Tls(mut tls)) => {
            tls.get_mut().0.rewatch(conn.state.clone());
            let io = ParkableTls::new(*tls, conn.state.clone());
            let pre = bytes::Bytes::new();
            return Box::pin(conn.serve_http1(io, pre, &limits, watchdog, &mut stop)).await;
        }
    };
    // Set once, on accept: a resumed socket keeps it through the parking.
    let _ = stream.set_nodelay(true);
    let io = Watched::new(stream, conn.state.clone());
    match acceptor {
        // Each protocol's connection boxed on its own: a plain connection does not carry
        // room for a TLS session's state, nor a TLS one for the handshake's.
        None => Box::pin(conn.serve_by_preface(io, &limits, watchdog, &mut stop)).await,
        Some(acceptor) => {
            // The handshake's result (the TLS session, 1.2 KiB) in a block that ends before
            // the connection's long wait: otherwise every connection's task, plain or TLS,
            // keeps room for it after it has moved into the boxed serving future.
            let serving = {
                let handshake = tokio::select! {
                    biased;
                    tls = Box::pin(acceptor.accept(io)) => tls,
                    expired = watchdog.as_mut() => {
                        conn.expired(expired);
                        return None;
                    }
                };
                match handshake {
                    Ok(tls) => {
                        let io = ParkableTls::new(tls, conn.state.clone());
                        Box::pin(conn.serve_by_preface(io, &limits, watchdog, &mut stop))
                    }
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return None;
                    }
                }
            };
            serving.await
        }
    }
}

/// One client connection being served.
struct Conn {
    info: Arc<ConnInfo>,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    /// Whether an idle HTTP/1.1 connection leaves its task for the parking lot.
    parkable: bool,
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

    /// HTTP/2 (its preface: by prior knowledge, or as ALPN agreed), or HTTP/1.1 parked when
    /// idle.
    async fn serve_by_preface<IO: Park>(
        self,
        mut io: IO,
        limits: &rampart_model::LimitsConfig,
        mut watchdog: std::pin::Pin<&mut Watchdog>,
        stop: &mut watch::Receiver<Stop>,
    ) -> Option<Parked> {
        let detected = tokio::select! {
            biased;
            read = read_preface(&mut io) => read,
            expired = watchdog.as_mut() => {
                self.expired(expired);
                return None;
            }
            _ = stop.changed() => return None,
        };
        // Each boxed on its own: a parked HTTP/1.1 connection does not carry room for an
        // HTTP/2 connection's state, nor an HTTP/2 one for HTTP/1.1's.
        match detected {
            Ok((true, pre)) => {
                let io = TokioIo::new(Rewind::new(io, pre));
                Box::pin(self.serve(io, limits, watchdog, stop)).await;
                None
            }
            Ok((false, pre)) => Box::pin(self.serve_http1(io, pre, limits, watchdog, stop)).await,
            Err(e) => {
                tracing::debug!(remote = %self.info.remote, error = %e, "connection ended before a request");
                None
            }
        }
    }

    /// HTTP/1.1. Once idle for `limits.park_after` (and with a parking lot to take it) the
    /// connection is parked: the protocol's state (hyper's read and write buffers, 24 KiB) is
    /// dropped and the socket (with its TLS session) returned for the lot, which starts a new
    /// task when the next request's bytes arrive. Bytes the protocol had read past the last
    /// request go to a new protocol state at once instead.
    async fn serve_http1<IO: Park>(
        &self,
        mut io: IO,
        mut pre: bytes::Bytes,
        limits: &rampart_model::LimitsConfig,
        mut watchdog: std::pin::Pin<&mut Watchdog>,
        stop: &mut watch::Receiver<Stop>,
    ) -> Option<Parked> {
        let park_after = limits.park_after;
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The same settings as `serve`'s for HTTP/1.1 (TLS connections).
        builder
            .timer(TokioTimer::new())
            // The watchdog owns the head deadline (hyper's would also cut idle keep-alives).
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes.max(8192) as usize);
        loop {
            let io_in = TokioIo::new(Rewind::new(io, pre));
            let mut conn = Box::new(
                builder
                    .serve_connection(io_in, self.service())
                    .with_upgrades(),
            );
            let mut park_check = Box::pin(tokio::time::sleep(park_after));
            // While parking: how many requests the connection had started.
            let mut parking: Option<u64> = None;
            let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
            let mut draining = false;
            let ended = loop {
                tokio::select! {
                    biased;
                    result = std::pin::Pin::new(&mut *conn) => break result,
                    expired = watchdog.as_mut(), if grace.is_none() => {
                        self.expired(expired);
                        if expired != Expired::Idle {
                            return None;
                        }
                        parking = None;
                        self.state.set_parking(false);
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                        grace = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                    }
                    () = async { if let Some(g) = grace.as_mut() { g.await } }, if grace.is_some() => return None,
                    () = park_check.as_mut(), if self.parkable && parking.is_none() && grace.is_none() && !draining => {
                        // Parked once idle for `park_after`, not merely idle when the check runs.
                        let idle = self.state.idle_for().filter(|_| self.state.parkable());
                        match idle {
                            Some(idle) if idle >= park_after => {
                                parking = Some(self.state.served());
                                self.state.set_parking(true);
                                std::pin::Pin::new(&mut *conn).graceful_shutdown();
                            }
                            _ => {
                                let wait = park_after.saturating_sub(idle.unwrap_or_default());
                                park_check.as_mut().reset(tokio::time::Instant::now() + wait);
                            }
                        }
                    }
                    changed = stop.changed() => match (changed, *stop.borrow()) {
                        (Ok(()), Stop::Run) => {}
                        (Ok(()), Stop::Drain) => {
                            if !draining {
                                draining = true;
                                parking = None;
                                self.state.set_parking(false);
                                std::pin::Pin::new(&mut *conn).graceful_shutdown();
                            }
                        }
                        (Ok(()), Stop::Abort) | (Err(_), _) => return None,
                    },
                }
            };
            self.state.set_parking(false);
            drop(park_check);
            // Parked only when the protocol ended because of it and served nothing meanwhile
            // (a request that slipped in was answered with `Connection: close`).
            let parked = parking.filter(|&n| ended.is_ok() && n == self.state.served());
            if parked.is_none() {
                if let Err(e) = ended {
                    tracing::debug!(remote = %self.info.remote, error = %e, "connection ended with an error");
                }
                self.tunnel(stop).await;
                return None;
            }
            // In a block of its own: hyper's parts (its read buffer among them) are gone
            // before the connection is parked.
            (io, pre) = {
                let parts = conn.into_parts()?;
                let (watched, unread) = parts.io.into_inner().into_inner();
                // Copied: what hyper gives back is a view of its whole read buffer, which
                // would stay allocated for as long as the view lives.
                let pre = if parts.read_buf.is_empty() && unread.is_empty() {
                    bytes::Bytes::new()
                } else {
                    [parts.read_buf, unread].concat().into()
                };
                (watched, pre)
            };
            if !pre.is_empty() || io.holds_bytes() {
                continue;
            }
            // To the parking lot: the socket (and its TLS session) alone; this task ends.
            let idle_deadline = watchdog.idle_deadline()?;
            self.shared.metrics.connection_parked();
            return Some(Parked {
                socket: io.into_parked()?,
                remote: self.info.remote,
                idle_deadline,
            });
        }
    }

    /// The service that runs each request of this connection.
    fn service(
        &self,
    ) -> impl hyper::service::Service<
        http::Request<hyper::body::Incoming>,
        Response = http::Response<ClientBody<crate::response::ResponseBody>>,
        Error = Infallible,
        Future = RequestFuture,
    > + Clone
    + Send
    + 'static {
        let shared = self.shared.clone();
        let state = self.state.clone();
        let info = self.info.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let token = state.request_started(req.version() == Version::HTTP_2);
            let shared = shared.clone();
            let info = info.clone();
            // Boxed: hyper keeps the slot a request's future runs in for the connection's
            // whole life, so unboxed every idle connection would hold a request's worth
            // of state it is not using.
            let fut: RequestFuture = Box::pin(async move {
                let resp = handle(&shared, &info, req).await;
                Ok(resp.map(|body| ClientBody::new(body, token)))
            });
            fut
        })
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
        let service = self.service();
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
