//! WebSocket tunnelling for routes with `websocket: true`: an HTTP/1.1 `Upgrade: websocket`
//! request, or an HTTP/2 extended CONNECT (RFC 8441), is authenticated, limited and admitted
//! like any other, then sent to an endpoint as an HTTP/1.1 upgrade on a connection of its own;
//! when the upstream switches protocols (101) the gateway answers the client (with the
//! upstream's 101, or 200 on HTTP/2) and relays bytes both ways until either side closes or
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
use crate::forward::{has_token, strip_hop_by_hop};
use crate::response::{ResponseBody, full};
use crate::upstream::Upstream;

/// Largest body of a refused handshake passed back to the client.
const REFUSAL_BODY_LIMIT: usize = 64 * 1024;

/// How a request asks to become a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// HTTP/1.1: GET with `Connection: upgrade` and `Upgrade: websocket` (RFC 6455).
    Upgrade,
    /// HTTP/2: extended CONNECT with `:protocol websocket` (RFC 8441).
    ExtendedConnect,
}

/// Whether, and how, a request asks to become a WebSocket.
pub fn handshake(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Option<Handshake> {
    if version == Version::HTTP_11
        && method == Method::GET
        && has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
    {
        return Some(Handshake::Upgrade);
    }
    let protocol = extensions.get::<hyper::ext::Protocol>()?;
    (version == Version::HTTP_2
        && method == Method::CONNECT
        && protocol.as_str().eq_ignore_ascii_case("websocket"))
    .then_some(Handshake::ExtendedConnect)
}

/// RFC 6455's `Sec-WebSocket-Accept` for a key.
fn accept_for(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
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
    handshake: Handshake,
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
    // The upstream always gets RFC 6455's handshake; an HTTP/2 client's extended CONNECT
    // carries no key, so the gateway makes one and checks the upstream's answer to it.
    *request.method_mut() = Method::GET;
    mark_upgrade(request.headers_mut());
    let expected_accept = match handshake {
        Handshake::Upgrade => None,
        Handshake::ExtendedConnect => {
            use base64::Engine;
            let key =
                base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_be_bytes());
            let accept = accept_for(key.as_bytes());
            request.headers_mut().insert(
                header::SEC_WEBSOCKET_KEY,
                HeaderValue::from_str(&key).unwrap_or_else(|_| HeaderValue::from_static("")),
            );
            request
                .headers_mut()
                .entry(header::SEC_WEBSOCKET_VERSION)
                .or_insert(HeaderValue::from_static("13"));
            Some(accept)
        }
    };
    if !request.headers().contains_key(header::HOST) {
        request
            .headers_mut()
            .insert(header::HOST, endpoint.host_header.clone());
    }
    let exchange = async {
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
        if let Some(accept) = &expected_accept
            && resp
                .headers()
                .get(header::SEC_WEBSOCKET_ACCEPT)
                .is_none_or(|v| v.as_bytes() != accept.as_bytes())
        {
            return Err(ProxyError::Upstream {
                upstream: upstream.config.name.clone(),
                endpoint: endpoint.label.clone(),
                reason: "switched protocols without the right Sec-WebSocket-Accept".into(),
            });
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
    let outcome = match tokio::time::timeout(deadline, exchange).await {
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
    match handshake {
        Handshake::Upgrade => mark_upgrade(&mut parts.headers),
        // RFC 8441: a 2xx answers an extended CONNECT; the accept key was for the gateway.
        Handshake::ExtendedConnect => {
            parts.status = StatusCode::OK;
            parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
        }
    }
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
