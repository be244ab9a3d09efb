//! The control plane's listener, with the limits a server facing the public needs: a deadline
//! on reading a request's head (a client that sends nothing, or a byte at a time, is cut
//! off), a cap on open connections and a smaller one per client address (past either, new
//! connections are closed at once rather than queued), and a bound on concurrent HTTP/2
//! streams. Each connection's peer address reaches handlers as `ConnectInfo`.
//!
//! Other replicas of the control plane (`Peers`) forward their clients' requests here: their
//! connections are not held to the per-client cap, and the client and replica they name
//! (`x-rampart-client`, `x-rampart-replica`) are believed; from anyone else those headers are
//! removed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

/// How the listener bounds its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accepting a connection (or the end of the previous request on it) to the end of
    /// a request's head.
    pub header_read: Duration,
    /// Open connections, all clients together.
    pub connections: usize,
    /// Open connections from one client address.
    pub per_client: usize,
    /// Concurrent HTTP/2 streams on one connection.
    pub streams: u32,
    /// Public writes (subscribe, confirm, unsubscribe) a minute from one client address.
    pub public_writes_per_client: u32,
    /// Public writes a minute from everyone together.
    pub public_writes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            connections: 2048,
            per_client: 64,
            streams: 32,
            public_writes_per_client: 10,
            public_writes: 600,
        }
    }
}

/// Headers a forwarding replica sets: the client it forwards for, and its own name.
pub const CLIENT_HEADER: &str = "x-rampart-client";
pub const REPLICA_HEADER: &str = "x-rampart-replica";

/// The addresses of the other replicas of this control plane, kept current by the replica's
/// election loop.
#[derive(Clone, Default)]
pub struct Peers(Arc<std::sync::RwLock<std::collections::HashSet<IpAddr>>>);

impl Peers {
    pub fn set(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        *known = ips.into_iter().collect();
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(ip)
    }
}

/// Open connections per client address, and in all.
#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; leaving drops it from the counts.
struct Admitted {
    open: Arc<Mutex<Open>>,
    client: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

fn lock(m: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn admit(open: &Arc<Mutex<Open>>, client: IpAddr, limits: &Limits, peer: bool) -> Option<Admitted> {
    let mut o = lock(open);
    let mine = o.by_client.get(&client).copied().unwrap_or(0);
    if o.total >= limits.connections || (mine >= limits.per_client && !peer) {
        return None;
    }
    o.total += 1;
    o.by_client.insert(client, mine + 1);
    Some(Admitted {
        open: open.clone(),
        client,
    })
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peers: Option<Peers>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let open: Arc<Mutex<Open>> = Arc::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, never spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.as_mut() => break,
        };
        let forwarder = peers.as_ref().is_some_and(|p| p.contains(&peer.ip()));
        let Some(admitted) = admit(&open, peer.ip(), &limits, forwarder) else {
            tracing::debug!(%peer, "connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // Telling HTTP/1 from HTTP/2 waits for the first bytes, before hyper's head
            // deadline runs: a client that sends nothing is cut here.
            let mut first = [0u8; 1];
            let sent = tokio::time::timeout(limits.header_read, stream.peek(&mut first)).await;
            if !matches!(sent, Ok(Ok(n)) if n > 0) {
                tracing::debug!(%peer, "connection closed: nothing sent within the head deadline");
                drop(admitted);
                return;
            }
            match tls {
                None => serve_connection(stream, app, peer, forwarder, &limits, watcher).await,
                Some(acceptor) => {
                    // The handshake is part of the head: it has the same deadline.
                    match tokio::time::timeout(limits.header_read, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, app, peer, forwarder, &limits, watcher).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not done within the head deadline")
                        }
                    }
                }
            }
            drop(admitted);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection's HTTP (1.1 or 2), its requests carrying the peer's address.
async fn serve_connection<IO>(
    io: IO,
    app: axum::Router,
    peer: SocketAddr,
    forwarder: bool,
    limits: &Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
        let client = forwarded_client(&mut req, forwarder).unwrap_or(peer);
        req.extensions_mut().insert(ConnectInfo(client));
        let mut app = app.clone();
        async move {
            let resp = tower_service::Service::call(&mut app, req.map(axum::body::Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.streams);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The client a replica forwarded `req` for, if a replica sent it; the forwarding headers are
/// removed from anyone else's requests.
fn forwarded_client<B>(req: &mut http::Request<B>, forwarder: bool) -> Option<SocketAddr> {
    if !forwarder {
        req.headers_mut().remove(CLIENT_HEADER);
        req.headers_mut().remove(REPLICA_HEADER);
        return None;
    }
    req.headers()
        .get(CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The replica that forwarded a request, if one did.
pub fn replica_of(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(REPLICA_HEADER).and_then(|v| v.to_str().ok())
}

/// The client a request came from (the connection's peer, or the client a replica forwarded
/// it for).
pub fn client_of(req: &http::request::Parts) -> Option<SocketAddr> {
    req.extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
