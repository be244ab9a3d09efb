//! The validated config: what `compile()` proved, in types the gateway uses directly.
//!
//! A [`Config`] has no constructor other than [`crate::compile`]; code downstream never
//! re-checks what compile proved (addresses parse, names resolve, durations are in range).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};

use crate::raw::Document;
pub use crate::raw::{Balance, LogFormat, OnFailure, OnUnavailable, UpstreamProtocol};
use crate::version::VersionId;

/// A validated gateway config.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) version: VersionId,
    pub(crate) document: Document,
    pub listeners: Vec<ListenerConfig>,
    pub admin: Option<SocketAddr>,
    pub resolver: ResolverConfig,
    pub auth_providers: Vec<AuthProviderConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub limits: LimitsConfig,
    pub access_log: Option<AccessLogConfig>,
    pub redis: Option<RedisConfig>,
    pub tracing: Option<TracingConfig>,
    /// Findings that do not block the config (an unused upstream, a probe timeout above its interval).
    pub warnings: Vec<String>,
}

impl Config {
    /// The version id: SHA-256 of the canonical form of the document.
    pub fn version(&self) -> &VersionId {
        &self.version
    }

    /// The document this config was compiled from.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// Overrides listener and admin addresses (the `--listen NAME=ADDR` and `--admin ADDR`
    /// flags), so several gateways can share one machine. The version id is unchanged: it names
    /// the document, and the overrides are a property of the process.
    pub fn override_addresses(
        &mut self,
        listen: &[(String, SocketAddr)],
        admin: Option<SocketAddr>,
    ) -> Result<(), String> {
        for (name, addr) in listen {
            let listener = self
                .listeners
                .iter_mut()
                .find(|l| &l.name == name)
                .ok_or_else(|| format!("--listen {name}={addr}: no listener named {name:?}"))?;
            listener.address = *addr;
        }
        if admin.is_some() {
            self.admin = admin;
        }
        Ok(())
    }

    /// The upstream with this name; compile proved every route's upstream exists.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub name: String,
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Peers whose forwarding headers are extended rather than replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub escaped_slashes: crate::path::EscapedSlashes,
}

impl ListenerConfig {
    /// Whether `peer` is a trusted proxy of this listener.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolverConfig {
    /// `None`: the system's resolv.conf.
    pub nameservers: Option<Vec<SocketAddr>>,
    pub timeout: Duration,
    pub attempts: u32,
    pub cache_ttl: Duration,
    pub negative_ttl: Duration,
    pub serve_stale: Duration,
}

/// What a document without a `resolver` section gets: the system's nameservers and the
/// documented defaults.
impl Default for ResolverConfig {
    fn default() -> ResolverConfig {
        use crate::defaults as d;
        ResolverConfig {
            nameservers: None,
            timeout: d::RESOLVER_TIMEOUT,
            attempts: d::RESOLVER_ATTEMPTS,
            cache_ttl: d::RESOLVER_CACHE_TTL,
            negative_ttl: d::RESOLVER_NEGATIVE_TTL,
            serve_stale: d::RESOLVER_SERVE_STALE,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthProviderConfig {
    Introspection(IntrospectionConfig),
    Jwt(JwtConfig),
    ApiKey(ApiKeyConfig),
}

impl AuthProviderConfig {
    pub fn name(&self) -> &str {
        match self {
            AuthProviderConfig::Introspection(p) => &p.name,
            AuthProviderConfig::Jwt(p) => &p.name,
            AuthProviderConfig::ApiKey(p) => &p.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionConfig {
    pub name: String,
    pub endpoint: Uri,
    pub timeout: Duration,
    pub cache_ttl: Duration,
    pub on_failure: OnFailure,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    pub name: String,
    pub jwks_url: Uri,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub algorithms: Vec<String>,
    pub refresh: Duration,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyConfig {
    pub name: String,
    pub header: HeaderName,
    pub keys_sha256: Vec<[u8; 32]>,
}

/// A host in an endpoint or URL: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// An upstream endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub health_check: Option<HealthCheckConfig>,
    pub outlier: OutlierConfig,
    pub slow_start: Duration,
    pub max_concurrency: Option<u32>,
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTlsConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTlsConfig {
    /// `None`: each endpoint's own host (an IP address is checked as one).
    pub server_name: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckConfig {
    /// The HTTP path probed ("" with a gRPC check).
    pub path: String,
    /// A gRPC health check of this service instead of an HTTP GET.
    pub grpc_service: Option<String>,
    /// Host header of the probes; `None`: the endpoint's authority.
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    pub consecutive_5xx: u32,
    pub ejection: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com`: holds ".example.com".
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostMatch>,
    pub path: PathMatch,
    pub methods: Option<Vec<Method>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub upstream: String,
    pub auth: Option<String>,
    pub scopes: Vec<String>,
    pub timeout: Duration,
    pub retries: RetryConfig,
    pub max_concurrency: Option<u32>,
    pub rate_limit: Option<RateLimitConfig>,
    pub cors: Option<CorsConfig>,
    pub websocket: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub attempts: u32,
    pub budget_percent: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub max_connections: u32,
    pub max_inflight: u32,
    pub max_header_bytes: u32,
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub park_after: Duration,
    pub send_timeout: Duration,
    pub body_timeout: Duration,
}

/// Where and how access-log lines are written.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    pub target: LogTarget,
    pub format: LogFormat,
    /// The JSON fields, in order (every field when the document names none).
    pub fields: Vec<LogField>,
    /// Lines waiting for the writer before new ones are dropped.
    pub buffer: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(std::path::PathBuf),
}

/// A field of an access-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    Time,
    RequestId,
    TraceId,
    Listener,
    Route,
    Upstream,
    Endpoint,
    Method,
    Path,
    Status,
    BytesIn,
    BytesOut,
    DurationHeadersMs,
    DurationMs,
    AuthSubject,
    Client,
    Reason,
}

impl LogField {
    pub const ALL: [LogField; 17] = [
        LogField::Time,
        LogField::RequestId,
        LogField::TraceId,
        LogField::Listener,
        LogField::Route,
        LogField::Upstream,
        LogField::Endpoint,
        LogField::Method,
        LogField::Path,
        LogField::Status,
        LogField::BytesIn,
        LogField::BytesOut,
        LogField::DurationHeadersMs,
        LogField::DurationMs,
        LogField::AuthSubject,
        LogField::Client,
        LogField::Reason,
    ];

    /// The field's name in a JSON line and in the document.
    pub fn name(self) -> &'static str {
        match self {
            LogField::Time => "time",
            LogField::RequestId => "request_id",
            LogField::TraceId => "trace_id",
            LogField::Listener => "listener",
            LogField::Route => "route",
            LogField::Upstream => "upstream",
            LogField::Endpoint => "endpoint",
            LogField::Method => "method",
            LogField::Path => "path",
            LogField::Status => "status",
            LogField::BytesIn => "bytes_in",
            LogField::BytesOut => "bytes_out",
            LogField::DurationHeadersMs => "duration_headers_ms",
            LogField::DurationMs => "duration_ms",
            LogField::AuthSubject => "auth_subject",
            LogField::Client => "client",
            LogField::Reason => "reason",
        }
    }

    pub fn from_name(name: &str) -> Option<LogField> {
        LogField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The Redis server of global rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// A name is resolved through the gateway's resolver.
    pub endpoint: Endpoint,
    pub timeout: Duration,
    pub key_prefix: String,
}

/// Whose requests a rate limit counts together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    ClientIp,
    AuthSubject,
    /// The value of this header, the route's `api_key` provider's header.
    ApiKey(HeaderName),
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub key: RateLimitKey,
    /// The requests of one `period` (the rate as written: "600/m" is 600 per 60 s).
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
    pub global: bool,
    pub on_unavailable: OnUnavailable,
    pub max_keys: usize,
}

impl RateLimitConfig {
    /// The steady spacing between two requests of one key.
    pub fn interval(&self) -> Duration {
        self.period / self.count.max(1)
    }
}

/// Which origins a CORS policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginMatch {
    Any,
    Exact(String),
    /// "https://*.example.com": the scheme and a suffix beginning with a dot.
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

impl OriginMatch {
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginMatch::Any => true,
            OriginMatch::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginMatch::Subdomains { scheme, suffix } => {
                let Some(sub) = origin.len().checked_sub(suffix.len()).and_then(|end| {
                    let (head, tail) = (origin.get(..end)?, origin.get(end..)?);
                    tail.eq_ignore_ascii_case(suffix).then_some(head)
                }) else {
                    return false;
                };
                sub.get(..scheme.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                    && sub.get(scheme.len()..).is_some_and(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
                    })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CorsConfig {
    pub origins: Vec<OriginMatch>,
    pub methods: Vec<Method>,
    /// Allowed request headers, lower case; `None`: whatever the preflight asks for.
    pub headers: Option<Vec<HeaderName>>,
    pub expose_headers: Vec<HeaderName>,
    pub max_age: Duration,
    pub credentials: bool,
}

/// Where spans go and how many traces are recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    pub endpoint: Uri,
    /// 0 to 1.
    pub sample: f64,
    pub service_name: String,
    pub timeout: Duration,
    pub buffer: usize,
}
