//! HTTP/2 to an endpoint: one multiplexed connection, shared by every request to it (h2c by
//! prior knowledge, or TLS where ALPN settled on h2). The connection runs as a task of its own
//! and keeps itself alive with pings; a closed one is replaced by the next request.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::conn::SendError;
use super::dial::{Dialer, Offer, Stream};
use crate::body::ProxyBody;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP/2 connection of one endpoint.
#[derive(Default)]
pub struct H2Conn {
    sender: tokio::sync::Mutex<Option<http2::SendRequest<ProxyBody>>>,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H2Conn")
    }
}

impl H2Conn {
    /// Sends `req` on the endpoint's connection, opening one (on `fresh` if given) when there
    /// is none. The caller bounds the exchange with its deadline.
    pub async fn send(
        &self,
        dialer: &Dialer<'_>,
        fresh: Option<Stream>,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = self.sender(dialer, fresh).await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(mut e) => match e.take_message() {
                // The connection closed before the request left: one more, on a new one.
                Some(req) => {
                    self.forget();
                    let mut sender = self.sender(dialer, None).await?;
                    Ok(sender.send_request(req).await?)
                }
                None => Err(SendError::Http(e.into_error())),
            },
        }
    }

    fn forget(&self) {
        if let Ok(mut slot) = self.sender.try_lock() {
            slot.take();
        }
    }

    async fn sender(
        &self,
        dialer: &Dialer<'_>,
        fresh: Option<Stream>,
    ) -> Result<http2::SendRequest<ProxyBody>, SendError> {
        let mut slot = self.sender.lock().await;
        if let Some(s) = slot.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let stream = match fresh {
            Some(s) => s,
            None => {
                let (stream, h2) = dialer.dial(Offer::H2).await?;
                if matches!(stream, Stream::Tls(_)) && !h2 {
                    return Err(SendError::Connect(format!(
                        "{}:{} did not agree to HTTP/2 (ALPN)",
                        dialer.host, dialer.port
                    )));
                }
                stream
            }
        };
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }
}
