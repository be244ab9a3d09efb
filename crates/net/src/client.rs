//! An HTTP(S) client whose every DNS lookup goes through [`Resolver`] (so it has a deadline), and
//! a bounded read of the answer. Callers wrap each call in their own overall deadline.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::resolve::Resolver;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// A client for `http` and `https` URLs (the web's roots), HTTP/1.1, with a connect deadline.
pub fn https_client(resolver: &Resolver, connect_timeout: std::time::Duration) -> HttpsClient {
    crate::install_crypto_provider();
    let mut http = HttpConnector::new_with_resolver(resolver.clone());
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends a request and reads at most `max_bytes` of the answer. No deadline of its own.
pub async fn fetch(
    client: &HttpsClient,
    req: Request<Full<Bytes>>,
    max_bytes: usize,
) -> Result<(StatusCode, Bytes), String> {
    let resp = client.request(req).await.map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| format!("reading answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// An error with its causes, `outer: inner: innermost`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
