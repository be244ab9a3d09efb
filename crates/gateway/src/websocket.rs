//! WebSocket tunnelling for routes with `websocket: true`: an HTTP/1.1 `Upgrade: websocket`
//! request is authenticated, limited and admitted like any other, then sent to an endpoint on
//! a connection of its own; when the upstream switches protocols (101) the gateway answers the
//! client with the upstream's 101 and relays bytes both ways until either side closes or
//! neither sends anything for `limits.idle_timeout`. The tunnel keeps the request's permits
//! (route and upstream `max_concurrency`, `max_inflight`) and its client connection's slot
//! until it ends; it is counted in `rampart_websocket_tunnels`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::clock;
use crate::error::ProxyError;
use crate::forward::strip_hop_by_hop;
use crate::response::{ResponseBody, full};
use crate::upstream::Upstream;

/// Largest body of a refused handshake passed back to the client.
const REFUSAL_BODY_LIMIT: usize = 64 * 1024;

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a request asks to become a WebSocket (HTTP/1.1 GET with `Connection: upgrade` and
/// `Upgrade: websocket`).
pub fn is_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && method == Method::GET
        && has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
}

fn mark_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Everything a tunnel holds until it ends: permits, the endpoint's in-flight count.
pub type Held = Box<dyn Send + Sync>;

/// The handshake and, once both sides switched, the tunnel (spawned; its handle is left in
/// `tunnel_slot` for the client connection to wait on).
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    upstream: &Upstream,
    mut request: Request<crate::body::ProxyBody>,
    client: OnUpgrade,
    deadline: Duration,
    idle_timeout: Duration,
    held: Held,
    tunnel_slot: &std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: &crate::metrics::Metrics,
) -> Result<Response<ResponseBody>, ProxyError> {
    let index = upstream.pick(None).ok_or_else(|| ProxyError::NoEndpoint {
        upstream: upstream.config.name.clone(),
    })?;
    let endpoint = upstream.endpoints[index].clone();
    let guard = endpoint.start_request();
    mark_upgrade(request.headers_mut());
    if !request.headers().contains_key(header::HOST) {
        request
            .headers_mut()
            .insert(header::HOST, endpoint.host_header.clone());
    }
    let handshake = async {
        let mut resp = upstream
            .send_upgrade(index, deadline, request)
            .await
            .map_err(|e| ProxyError::from_send(&upstream.config.name, &endpoint.label, &e))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // A refused handshake goes back as it came, its body bounded.
            let (mut parts, body) = resp.into_parts();
            let body = Limited::new(body, REFUSAL_BODY_LIMIT)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_else(|_| Bytes::new());
            strip_hop_by_hop(&mut parts.headers);
            return Ok(Err(Response::from_parts(parts, full(body))));
        }
        let upgraded = hyper::upgrade::on(&mut resp)
            .await
            .map_err(|e| ProxyError::Upstream {
                upstream: upstream.config.name.clone(),
                endpoint: endpoint.label.clone(),
                reason: format!("switching protocols: {e}"),
            })?;
        Ok(Ok((resp, upgraded)))
    };
    let outcome = match tokio::time::timeout(deadline, handshake).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::Timeout {
            upstream: upstream.config.name.clone(),
            after: deadline,
        }),
    };
    let (resp, upstream_io) = match outcome {
        Ok(Ok(switched)) => {
            upstream.record(index, true);
            switched
        }
        Ok(Err(refused)) => {
            upstream.record(index, !refused.status().is_server_error());
            return Ok(refused);
        }
        Err(e) => {
            upstream.record(index, false);
            return Err(e);
        }
    };
    let (mut parts, _) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    mark_upgrade(&mut parts.headers);
    let active = metrics.websocket_tunnels().clone();
    let opened = metrics.websocket_opened().clone();
    let relay = tokio::spawn(async move {
        // The client's side switches once hyper has written the 101.
        let client_io = match tokio::time::timeout(deadline, client).await {
            Ok(Ok(io)) => io,
            _ => return,
        };
        opened.inc();
        active.inc();
        relay(
            TokioIo::new(client_io),
            TokioIo::new(upstream_io),
            idle_timeout,
        )
        .await;
        active.dec();
        drop(guard);
        drop(held);
    });
    *tunnel_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay);
    Ok(Response::from_parts(parts, full(Bytes::new())))
}

/// Copies bytes both ways until one side closes, an error, or `idle` with no byte either way.
async fn relay<A, B>(a: A, b: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(clock::now_ms()));
    let mut a = Active {
        io: a,
        last: last.clone(),
    };
    let mut b = Active {
        io: b,
        last: last.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    loop {
        let quiet = clock::now_ms().saturating_sub(last.load(Ordering::Relaxed));
        let left = clock::ms(idle).saturating_sub(quiet);
        if left == 0 {
            return;
        }
        tokio::select! {
            _ = copy.as_mut() => return,
            () = tokio::time::sleep(Duration::from_millis(left)) => {}
        }
    }
}

/// A stream that notes when it last carried a byte.
struct Active<IO> {
    io: IO,
    last: Arc<AtomicU64>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Active<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.last.store(clock::now_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Active<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
