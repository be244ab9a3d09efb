//! A follower's requests, sent on to the leader: the same method, path, query, headers and
//! body (streamed both ways), plus who the client was and which replica forwarded it. The
//! leader believes those two headers only from another replica's address (`listener::Peers`).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::listener::{CLIENT_HEADER, REPLICA_HEADER, client_of};

/// Set on a request a follower's public listener forwarded: the leader serves it only the
/// public page's routes. (It can only narrow what a request reaches, so it needs no trust.)
pub const LISTENER_HEADER: &str = "x-rampart-listener";

/// A forward's deadline: longer than the longest long-poll (`POLL_WAIT`), so a wait the
/// leader holds is never cut short here, and still bounded.
const FORWARD_LIMIT: Duration = Duration::from_secs(60);

/// How long reaching the leader may take before the forward is given up as unreachable.
const CONNECT_LIMIT: Duration = Duration::from_secs(1);

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Why a forward failed.
pub enum Failed {
    /// The leader could not be reached: nothing was sent, the request may be retried.
    Unreachable(String),
    /// The leader was reached and the exchange failed part-way.
    Other(StatusCode, String),
}

pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    name: HeaderValue,
}

impl Forwarder {
    pub fn new(name: &str) -> Forwarder {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_LIMIT));
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        Forwarder {
            client,
            name: HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static("replica")),
        }
    }

    /// Sends `req` to the leader at `address` and returns its answer as it streams.
    pub async fn forward(
        &self,
        address: &str,
        req: axum::extract::Request,
        public: bool,
    ) -> Result<Response, Failed> {
        let (mut parts, body) = req.into_parts();
        let client = client_of(&parts);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("{}{path}", address.trim_end_matches('/'))
            .parse::<Uri>()
            .map_err(|e| Failed::Unreachable(format!("leader address {address:?}: {e}")))?;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Some(client) = client
            && let Ok(v) = HeaderValue::from_str(&client.to_string())
        {
            parts.headers.insert(CLIENT_HEADER, v);
        }
        parts.headers.insert(REPLICA_HEADER, self.name.clone());
        if public {
            parts
                .headers
                .insert(LISTENER_HEADER, HeaderValue::from_static("public"));
        }
        let sent = self.client.request(http::Request::from_parts(parts, body));
        match tokio::time::timeout(FORWARD_LIMIT, sent).await {
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(parts, Body::new(body)))
            }
            Ok(Err(e)) if e.is_connect() => Err(Failed::Unreachable(e.to_string())),
            Ok(Err(e)) => Err(Failed::Other(
                StatusCode::BAD_GATEWAY,
                format!("forwarding to the leading replica ({address}) failed: {e}"),
            )),
            Err(_) => Err(Failed::Other(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the leading replica ({address}) did not answer within {}s",
                    FORWARD_LIMIT.as_secs()
                ),
            )),
        }
    }
}

/// Whether a follower's public listener forwarded this request.
pub fn came_from_public(headers: &HeaderMap) -> bool {
    headers.get(LISTENER_HEADER).is_some_and(|v| v == "public")
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}
