//! Upstream HTTP/1.1 connections (plain or TLS) driven inside the request's own task.
//!
//! hyper's pooled client runs every upstream connection as a separate task, so each request
//! hops between tasks four times (request in, response head out, body frames out, readiness
//! back). Here the connection future is polled by whoever is waiting on it: the proxy while the
//! response head is awaited, then the response body as the client reads it. When the body ends
//! the connection goes back to its endpoint's idle list (most recently used first); a
//! connection taken from the list is polled once to notice a close by the upstream before use.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use super::dial::SendError;
use super::dial::{Dialer, Offer, Stream};
use crate::body::ProxyBody;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

type Conn = http1::Connection<TokioIo<Stream>, ProxyBody>;

/// An open connection: the request half and the connection future that does the I/O.
pub struct Pooled {
    sender: http1::SendRequest<ProxyBody>,
    conn: Option<Conn>,
    /// When it last went idle.
    since: Instant,
}

/// Idle connections of one endpoint.
#[derive(Default)]
pub struct IdleList {
    idle: Mutex<Vec<Pooled>>,
}

/// Most idle connections kept per endpoint.
const MAX_IDLE: usize = 1024;
/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for IdleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdleList({})", self.lock().len())
    }
}

impl IdleList {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready idle connection, if any; closed ones found on the way are dropped.
    fn take(&self) -> Option<Pooled> {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let mut p = self.lock().pop()?;
            if p.since.elapsed() < IDLE_TIMEOUT
                && p.drive(&mut cx)
                && matches!(p.sender.poll_ready(&mut cx), Poll::Ready(Ok(())))
            {
                return Some(p);
            }
        }
    }

    fn put(&self, mut p: Pooled) {
        p.since = Instant::now();
        let mut idle = self.lock();
        // The oldest are at the bottom: close those past the idle timeout.
        let stale = idle
            .iter()
            .take_while(|q| q.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(p);
        }
    }
}

impl Pooled {
    /// Polls the connection future; false once it has finished (the connection is closed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        match self.conn.as_mut().map(|c| Pin::new(c).poll(cx)) {
            Some(Poll::Pending) => true,
            Some(Poll::Ready(_)) => {
                self.conn = None;
                false
            }
            None => false,
        }
    }
}

/// An HTTP/1.1 connection over a stream already open.
pub async fn handshake(stream: Stream) -> Result<Pooled, SendError> {
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(e.to_string()))?;
    Ok(Pooled {
        sender,
        conn: Some(conn),
        since: Instant::now(),
    })
}

async fn connect(dialer: &Dialer<'_>) -> Result<Pooled, SendError> {
    let (stream, _) = dialer.dial(Offer::Http1).await?;
    handshake(stream).await
}

/// Sends an upgrade request (a WebSocket handshake) on a connection of its own, never pooled:
/// the connection runs as a task that ends when the upstream switches protocols (the caller
/// then takes the upgraded stream from the response), closes, or `deadline` passes. The
/// caller bounds its own wait for the response head by the same deadline.
pub async fn send_upgrade(
    dialer: &Dialer<'_>,
    deadline: Duration,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, SendError> {
    let (stream, _) = dialer.dial(Offer::Http1).await?;
    let (mut sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(e.to_string()))?;
    tokio::spawn(tokio::time::timeout(deadline, conn.with_upgrades()));
    Ok(sender.send_request(req).await?)
}

/// Sends `req` on `fresh` (a connection just made), an idle connection to the endpoint, or a
/// new one, and waits for the response head while driving the connection. The caller bounds
/// the whole exchange with its deadline.
pub async fn send(
    idle: &Arc<IdleList>,
    dialer: &Dialer<'_>,
    fresh: Option<Pooled>,
    req: Request<ProxyBody>,
) -> Result<Response<DrivenBody>, SendError> {
    let mut pooled = match fresh.or_else(|| idle.take()) {
        Some(p) => p,
        // Boxed, here and below: dialing is the rare path (connections are reused), and
        // unboxed its state would be part of every request's future.
        None => Box::pin(connect(dialer)).await?,
    };
    let head = match exchange(&mut pooled, req).await {
        Ok(head) => head,
        // An idle connection the upstream had closed: the request was not sent; use a new one.
        Err(mut e) => match e.take_message() {
            Some(req) => {
                pooled = Box::pin(connect(dialer)).await?;
                exchange(&mut pooled, req)
                    .await
                    .map_err(|e| SendError::Http(e.into_error()))?
            }
            None => return Err(SendError::Http(e.into_error())),
        },
    };
    let (parts, body) = head.into_parts();
    Ok(Response::from_parts(
        parts,
        DrivenBody {
            body,
            pooled: Some(pooled),
            idle: idle.clone(),
        },
    ))
}

/// Sends a request and drives the connection until the response head arrives.
async fn exchange(
    pooled: &mut Pooled,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<ProxyBody>>> {
    let mut response = std::pin::pin!(pooled.sender.try_send_request(req));
    poll_fn(|cx| {
        pooled.drive(cx);
        response.as_mut().poll(cx)
    })
    .await
}

pin_project_lite::pin_project! {
    /// The upstream response body; polling it also drives the connection it arrives on, which
    /// returns to the idle list when the body ends.
    pub struct DrivenBody {
        #[pin]
        body: Incoming,
        pooled: Option<Pooled>,
        idle: Arc<IdleList>,
    }

    impl PinnedDrop for DrivenBody {
        fn drop(this: Pin<&mut Self>) {
            // A body nobody read to the end (e.g. an empty one) still frees a clean connection.
            let this = this.project();
            if let Some(mut p) = this.pooled.take()
                && this.body.is_end_stream()
                && p.drive(&mut Context::from_waker(Waker::noop()))
            {
                this.idle.put(p);
            }
        }
    }
}

impl Body for DrivenBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        if let Some(p) = this.pooled.as_mut() {
            p.drive(cx);
        }
        let polled = this.body.poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(mut p) = this.pooled.take()
        {
            // Let the connection finish the message, then keep it if it stays open.
            if p.drive(cx) {
                this.idle.put(p);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
