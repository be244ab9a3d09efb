//! The config document as written: serde types that reject unknown fields.
//!
//! Nothing here is validated beyond types; `compile()` turns a [`Document`] into a checked
//! [`crate::Config`]. The JSON Schema (`rampart config schema`) is generated from these types,
//! so the doc comments are what editors show.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

mod features;
pub use features::{AccessLog, Cors, LogFormat, OnUnavailable, RateLimit, Redis, Tracing};

/// A rampart gateway configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Where the gateway accepts client traffic.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// The isolated admin listener: /healthz, /readyz, /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    /// Asynchronous DNS settings; omit nameservers to use the system's resolv.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Resolver>,
    /// Authentication providers that routes refer to by name.
    #[serde(default)]
    pub auth_providers: Vec<AuthProvider>,
    /// Pools of upstream endpoints that routes send traffic to.
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    /// Request routing rules; the most specific match wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Global limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// One line per request, to a file or stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// The Redis server global rate limits share their counters on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
    /// W3C trace context and spans exported over OTLP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
}

/// What stands in for a secret in a redacted document.
pub const REDACTED: &str = "<redacted>";

impl Document {
    /// The document with its secrets replaced by [`REDACTED`], for showing (the admin
    /// `/config`). Key hashes stay: they are hashes. The version id is of the original.
    pub fn redacted(&self) -> Document {
        let mut doc = self.clone();
        for p in &mut doc.auth_providers {
            if let AuthProvider::Introspection(i) = p
                && i.client_secret.is_some()
            {
                i.client_secret = Some(REDACTED.to_owned());
            }
        }
        doc
    }
}

/// A listener for client traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used by `--listen NAME=ADDR` and in metrics.
    pub name: String,
    /// Socket address to bind, e.g. "127.0.0.1:8080" or "[::1]:8443".
    pub address: String,
    /// TLS with ALPN (h2, http/1.1). Without it the listener speaks HTTP/1.1 and h2c.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Peers (CIDR, e.g. "10.0.0.0/8", or single addresses) whose `X-Forwarded-*` and
    /// `Forwarded` headers are extended; from anyone else they are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// What to do with an encoded `/` or `\` (`%2F`, `%5C`) in a request path: `reject`
    /// (400, the default) or `keep` (left encoded, never a separator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped_slashes: Option<EscapedSlashes>,
}

/// What a listener does with `%2F` and `%5C` in a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400.
    Reject,
    /// Keep them encoded and opaque.
    Keep,
}

/// Certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Socket address to bind, e.g. "127.0.0.1:9901".
    pub address: String,
}

/// DNS resolver settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    /// Nameserver socket addresses ("127.0.0.53:53"); a bare IP means port 53.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<String>>,
    /// Deadline of one query attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// Attempts per lookup (1 to 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Upper bound on how long a positive answer is cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<DurationStr>,
    /// How long a failed or empty answer is cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_ttl: Option<DurationStr>,
    /// How long an expired answer may still be served when fresh lookups fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_stale: Option<DurationStr>,
}

/// What an auth provider does when it cannot reach its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Answer 503 (auth unavailable).
    #[default]
    Deny,
    /// Let the request through unauthenticated (marked as such upstream).
    Allow,
}

/// An authentication provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthProvider {
    /// OAuth2 token introspection (RFC 7662).
    Introspection(Introspection),
    /// JWT validated locally against a JWKS.
    Jwt(Jwt),
    /// Static API keys, stored as SHA-256 hashes.
    ApiKey(ApiKey),
}

impl AuthProvider {
    /// The provider's name, whatever its type.
    pub fn name(&self) -> &str {
        match self {
            AuthProvider::Introspection(p) => &p.name,
            AuthProvider::Jwt(p) => &p.name,
            AuthProvider::ApiKey(p) => &p.name,
        }
    }
}

/// OAuth2 token introspection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    /// Unique provider name.
    pub name: String,
    /// Introspection endpoint URL (http or https).
    pub endpoint: String,
    /// Deadline of one introspection call: resolution, connect and request together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// How long a decision is cached (never beyond the token's exp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<DurationStr>,
    /// What to do when the server cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// Client id for HTTP basic authentication to the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret for HTTP basic authentication to the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// JWT settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Unique provider name.
    pub name: String,
    /// URL of the JSON Web Key Set.
    pub jwks_url: String,
    /// Required `iss` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Allowed signing algorithms (default RS256, ES256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// How often the JWKS is refreshed in the background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<DurationStr>,
    /// Deadline of one JWKS fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// What to do when no key set could ever be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

/// API key settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Unique provider name.
    pub name: String,
    /// Request header that carries the key.
    pub header: String,
    /// Lowercase hex SHA-256 of each accepted key.
    pub keys_sha256: Vec<String>,
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Power of two random choices, least outstanding requests.
    #[default]
    P2c,
    /// Round robin over healthy endpoints.
    RoundRobin,
}

/// A pool of upstream endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Unique name that routes refer to.
    pub name: String,
    /// "host:port" endpoints; hosts may be IP addresses or DNS names.
    pub endpoints: Vec<String>,
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    /// Deadline of one TCP connect (DNS resolution has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<DurationStr>,
    /// Active health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive ejection of failing endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
    /// How long a newly healthy endpoint takes to ramp up to its full share of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<DurationStr>,
    /// Most requests in flight to this upstream at once; more are shed with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// `http1` (the default), `h2` (HTTP/2: over TLS with ALPN when `tls` is set, else h2c by
    /// prior knowledge; what gRPC needs) or `auto` (over TLS, what ALPN settles; without TLS,
    /// HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<UpstreamProtocol>,
    /// TLS to the endpoints, checked against the web's roots plus `ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// The HTTP version spoken to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    H2,
    Auto,
}

/// TLS to an upstream's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// The name the certificates must carry (and SNI); default: the endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM file of a private CA trusted beside the web's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Active health checking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path probed with GET; a 2xx answer is healthy. (Or `grpc_service`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Probe with the gRPC health-checking protocol (`grpc.health.v1.Health/Check`) for this
    /// service ("" for the server as a whole); SERVING is healthy. Needs HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_service: Option<String>,
    /// Host header of the probes; default: the endpoint's authority (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// Deadline of one probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// Consecutive successes to become healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_after: Option<u32>,
    /// Consecutive failures to become unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_after: Option<u32>,
}

/// Passive outlier detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// Consecutive 5xx answers or connection failures that eject an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// How long an ejected endpoint stays out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejection: Option<DurationStr>,
}

/// A routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// What requests this route takes; an empty match takes everything.
    #[serde(rename = "match", default, skip_serializing_if = "RouteMatch::is_any")]
    pub matches: RouteMatch,
    /// The upstream that serves it.
    pub upstream: String,
    /// Auth provider; omit for a public route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Scopes the authenticated identity must all have; 403 otherwise. Needs `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Deadline for the whole request, retries included, until response headers arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// Retries for idempotent requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Most requests in flight on this route; more are shed with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Requests per client (or subject, key, header) over time; more get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Cross-origin requests from browsers; preflights are answered by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Tunnel WebSocket upgrades (HTTP/1.1 `Upgrade: websocket`) to the upstream; without it
    /// the upgrade headers are dropped like any hop-by-hop header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
}

/// Request matching.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Host (without port); "*.example.com" matches any subdomain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries ("/v1/users" matches "/v1/users/7", not "/v1/usersx").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Exact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_exact: Option<String>,
    /// HTTP methods; omit for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Request headers that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

impl RouteMatch {
    /// True when the match takes every request.
    pub fn is_any(&self) -> bool {
        *self == RouteMatch::default()
    }
}

/// Retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Retries after the first try (0 to 10). Only idempotent requests without a body are retried.
    pub attempts: u32,
    /// Retries may add at most this percentage of the route's requests (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_percent: Option<u32>,
}

/// Global limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most client connections open at once; further connections are closed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Most requests in flight at once; more are shed with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    /// Largest request head (request line and headers), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<u32>,
    /// Largest request body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// From accept to a complete request head (TLS handshake and protocol detection
    /// included), and from the first byte of each later HTTP/1.1 request head to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<DurationStr>,
    /// A connection with no request in flight for this long is closed (HTTP/2 with a GOAWAY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<DurationStr>,
    /// An HTTP/1.1 connection with nothing in flight for this long is parked: its buffers and
    /// task are freed and only its socket kept until its next request's bytes arrive. Shorter
    /// holds less memory per idle connection; longer spares clients that pause briefly
    /// between requests the cost of taking the connection back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_after: Option<DurationStr>,
    /// A response to which the client accepts no bytes for this long is abandoned, its
    /// connection closed and its permits released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_timeout: Option<DurationStr>,
    /// A request body from the client, or a response body from the upstream, that makes no
    /// progress for this long is abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<DurationStr>,
}
