//! The HTTP client auth providers use: our resolver (DNS with deadlines), HTTP or HTTPS, and a
//! bounded read of the answer. Callers wrap each call in their own overall deadline.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::resolve::Resolver;

pub type AuthClient = Client<hyper_rustls::HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

pub fn build(
    resolver: &Resolver,
    connect_timeout: std::time::Duration,
) -> Result<AuthClient, String> {
    crate::tls::install_crypto_provider();
    let mut http = HttpConnector::new_with_resolver(resolver.clone());
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Sends a request and reads at most `max_bytes` of the answer. No deadline of its own.
pub async fn fetch(
    client: &AuthClient,
    req: Request<Full<Bytes>>,
    max_bytes: usize,
) -> Result<(StatusCode, Bytes), String> {
    let resp = client.request(req).await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| format!("reading answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}
