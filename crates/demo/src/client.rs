//! Small HTTP clients for the demo's traffic and for tests: HTTP/1.1, h2c (prior knowledge) and
//! TLS trusting one CA, with a deadline on every call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Client = HyperClient<HttpConnector, Full<Bytes>>;

/// A client builder that reports every failure: hyper's own retry of a request canceled on a
/// pooled connection that was closed is off, so a request a server drops is seen as lost.
fn client_builder() -> hyper_util::client::legacy::Builder {
    let mut b = HyperClient::builder(TokioExecutor::new());
    b.retry_canceled_requests(false);
    b
}

/// An HTTP/1.1 client with keep-alive.
pub fn http1() -> Client {
    client_builder().build(HttpConnector::new())
}

/// An HTTP/2 client speaking h2c by prior knowledge.
pub fn h2c() -> Client {
    client_builder()
        .http2_only(true)
        .build(HttpConnector::new())
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub version: http::Version,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Failed(String),
}

/// Sends a request and reads the whole answer, under a deadline.
pub async fn call<C>(
    client: &HyperClient<C, Full<Bytes>>,
    req: Request<Full<Bytes>>,
    deadline: Duration,
) -> Result<Answer, CallError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let fut = async {
        let resp: Response<hyper::body::Incoming> = client
            .request(req)
            .await
            .map_err(|e| CallError::Failed(format!("{e:?}")))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| CallError::Failed(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            version: parts.version,
            body,
        })
    };
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| CallError::Timeout(deadline))?
}

/// GET `uri` with a 10 s deadline.
pub async fn get(client: &Client, uri: &str) -> Result<Answer, CallError> {
    let uri: Uri = uri.parse().map_err(|e| CallError::Failed(format!("{e}")))?;
    let req = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| CallError::Failed(e.to_string()))?;
    call(client, req, Duration::from_secs(10)).await
}

/// A TLS client trusting exactly `ca_pem`, offering ALPN `h2` only or `http/1.1` only.
pub fn tls(
    ca_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let h2_only = alpn == [b"h2".as_slice()];
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    // The connector sets ALPN itself from the versions enabled.
    let connector = if h2_only {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Ok(client_builder().http2_only(h2_only).build(connector))
}
