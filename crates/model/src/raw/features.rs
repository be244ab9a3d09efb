//! The document's sections for what a gateway does beside forwarding: access logs, tracing,
//! rate limits (and the Redis that global limits share) and CORS.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

/// One line per request, written by a writer of its own: a request never waits for the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// A file (opened for appending, reopened on SIGHUP for log rotation) or "stdout".
    pub path: String,
    /// `json` (one object per line, the default) or `clf` (the NCSA Common Log Format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// The fields a JSON line carries, in this order; omit for all of them: time, request_id,
    /// trace_id, listener, route, upstream, endpoint, method, path, status, bytes_in,
    /// bytes_out, duration_headers_ms, duration_ms, auth_subject, client, reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Lines waiting for the writer (default 8192); past it lines are dropped and counted
    /// (`rampart_access_log_dropped_total`), never waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u32>,
}

/// How access-log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Clf,
}

/// The Redis server that global rate limits share their counters on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// HOST:PORT; a name is resolved through the gateway's resolver, under its deadline.
    pub address: String,
    /// Deadline for one exchange with Redis, connecting included (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// Prefix of the keys rampart writes (default "rampart").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// A per-route rate limit (GCRA): `rate` requests per unit, `burst` of them at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Whose requests are counted together: `client_ip`, `auth_subject` (needs `auth`),
    /// `api_key` (needs an `api_key` provider as `auth`) or `header:NAME`. Requests without
    /// the key share one bucket.
    pub key: String,
    /// Requests per unit: "100/s", "600/m" or "10000/h".
    pub rate: String,
    /// Requests one key may send at once (the bucket's size; default: the rate's count); the
    /// steady rate refills it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Share the counters with every gateway through `redis` (the local limit stays as the floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<bool>,
    /// What a global limit does when Redis does not answer in time: `allow` (the default;
    /// only the local limit applies) or `deny` (503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unavailable: Option<OnUnavailable>,
    /// Most keys tracked at once on one gateway (default 100000); the least recently seen
    /// is forgotten first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u32>,
}

/// What a global rate limit does without its shared counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Only the local limit applies.
    #[default]
    Allow,
    /// Answer 503 with Retry-After.
    Deny,
}

/// Cross-origin resource sharing for a route; the gateway answers preflights itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins: "https://app.example.com", "https://*.example.com" or "*".
    pub origins: Vec<String>,
    /// Methods a preflight allows (default: the route's methods, else GET, HEAD, POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Request headers a preflight allows; "*" allows whatever is asked (default: none beyond
    /// the CORS-safelisted ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Response headers the browser may show the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// How long a browser may cache a preflight answer (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<DurationStr>,
    /// Whether the browser may send cookies and credentials (not with origin "*").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<bool>,
}

/// W3C Trace Context and spans exported over OTLP/HTTP (JSON), from an exporter of its own: a
/// request never waits for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// The OTLP/HTTP traces endpoint, e.g. "http://127.0.0.1:4318/v1/traces".
    pub otlp_endpoint: String,
    /// Share of new traces recorded, 0 to 1 (default 0.01); a request that arrives with a
    /// `traceparent` follows its sampled flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
    /// `service.name` of the spans (default "rampart").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Deadline of one export (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// Spans waiting for export (default 4096); past it spans are dropped and counted
    /// (`rampart_trace_spans_total{outcome="dropped"}`), never waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u32>,
}
